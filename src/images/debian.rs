//! Images made from Debian packages: a root filesystem made by `debootstrap`, with app
//! files laid over it.
//!
//! Some demo apps are built on real third-party session libraries (Django, PHP sessions),
//! which are whole interpreters with hundreds of files: the ELF-and-`ldd` recipe of
//! [`super::rootfs`] cannot pack them. `debootstrap --variant=minbase --include=PACKAGES`
//! installs them from the Debian mirror apt already uses, no container registry needed.
//!
//! The content hash covers what decides the image: a format version, the suite, the
//! package list and the app files (embedded in sessionstorm at compile time, so the image
//! is the same wherever the harness runs). It does not cover the tree itself: the same
//! packages installed a month later are the same image as far as the harness is concerned,
//! and `images build --force` takes the newer ones.
//!
//! The tree is kept in a cache folder keyed by suite and packages
//! (`$XDG_CACHE_HOME/sessionstorm/debian/<key>`, else `~/.cache/…`, else the temp dir),
//! so changing an app file rebuilds the image in seconds rather than re-running
//! debootstrap for minutes; a tree for another package list is removed once a new one is
//! complete.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::locate::locate_host_binary;
use super::recipe::Recipe;
use super::rootfs::Rootfs;
use super::{BuiltIn, ImageError};

/// Bumped whenever the tree's preparation (debootstrap options, pruning) or the overlay's
/// layout changes, so older images and cached trees are not reused.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// The Debian release the trees are made from.
pub(crate) const SUITE: &str = "bookworm";

/// What `sessionstorm/lib-apps` installs: Django with django-redis under gunicorn, and the
/// PHP command line (with its built-in web server) with phpredis.
pub(crate) const LIB_APPS_PACKAGES: &[&str] = &[
    "python3-django",
    "python3-django-redis",
    "python3-redis",
    "gunicorn",
    "php-cli",
    "php-redis",
];

/// What `sessionstorm/dind` installs: Docker's engine and the iptables it drives.
pub(crate) const DIND_PACKAGES: &[&str] = &["docker.io", "iptables", "ca-certificates"];

/// The entry point of `sessionstorm/dind` (`docker/dind`).
const DIND_FILES: &[(&str, &[u8], u32)] = &[(
    "/usr/local/bin/dind",
    include_bytes!("../../docker/dind/entrypoint.sh"),
    0o755,
)];

/// The apps of `docker/lib-apps`, as (path in the image, bytes, mode).
const LIB_APPS_FILES: &[(&str, &[u8], u32)] = &[
    (
        "/usr/local/bin/lib-apps",
        include_bytes!("../../docker/lib-apps/entrypoint.sh"),
        0o755,
    ),
    (
        "/srv/lib-apps/django/libapp/__init__.py",
        include_bytes!("../../docker/lib-apps/django/libapp/__init__.py"),
        0o644,
    ),
    (
        "/srv/lib-apps/django/libapp/settings.py",
        include_bytes!("../../docker/lib-apps/django/libapp/settings.py"),
        0o644,
    ),
    (
        "/srv/lib-apps/django/libapp/urls.py",
        include_bytes!("../../docker/lib-apps/django/libapp/urls.py"),
        0o644,
    ),
    (
        "/srv/lib-apps/django/libapp/views.py",
        include_bytes!("../../docker/lib-apps/django/libapp/views.py"),
        0o644,
    ),
    (
        "/srv/lib-apps/django/libapp/wsgi.py",
        include_bytes!("../../docker/lib-apps/django/libapp/wsgi.py"),
        0o644,
    ),
    (
        "/srv/lib-apps/php/router.php",
        include_bytes!("../../docker/lib-apps/php/router.php"),
        0o644,
    ),
];

/// Paths (relative to the tree) whose contents are removed after debootstrap: downloaded
/// packages, documentation and translations nobody reads in a container, the host's
/// `resolv.conf` and `hostname` that debootstrap copies in (Docker provides its own), and
/// the device nodes of `/dev` (Docker mounts its own `/dev`).
const PRUNED_DIRS: &[&str] = &[
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "dev",
];
const PRUNED_FILES: &[&str] = &["etc/resolv.conf", "etc/hostname"];

/// Lines of debootstrap's output kept for an error message.
const LOG_LINES: usize = 15;

/// Everything needed to build a Debian-based image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DebianRecipe {
    pub(crate) suite: &'static str,
    pub(crate) packages: &'static [&'static str],
    /// The app files laid over the tree, with the image's entry point and environment.
    pub(crate) overlay: Recipe,
}

impl DebianRecipe {
    /// The recipe of `image`; only `sessionstorm/lib-apps` and `sessionstorm/dind`
    /// are made this way.
    pub(crate) fn for_image(image: BuiltIn) -> DebianRecipe {
        let path = (
            "PATH".to_string(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        );
        let (packages, files, entrypoint, env) = match image {
            BuiltIn::LibApps => (
                LIB_APPS_PACKAGES,
                LIB_APPS_FILES,
                "/usr/local/bin/lib-apps",
                vec![
                    path,
                    ("LANG".into(), "C.UTF-8".into()),
                    // Python's output reaches `docker logs` as it is written.
                    ("PYTHONUNBUFFERED".into(), "1".into()),
                ],
            ),
            BuiltIn::Dind => (DIND_PACKAGES, DIND_FILES, "/usr/local/bin/dind", vec![path]),
            other => panic!("{other} is not a Debian-based image"),
        };
        let mut rootfs = Rootfs::default();
        for (path, data, mode) in files {
            rootfs.add_file(path, data.to_vec(), *mode);
        }
        DebianRecipe {
            suite: SUITE,
            packages,
            overlay: Recipe {
                image,
                rootfs,
                entrypoint: vec![entrypoint.into()],
                env,
                stamp: None,
            },
        }
    }

    /// sha256 over the format version, suite, packages and the overlay's own hash (its
    /// files, entry point and environment), each length-prefixed.
    pub(crate) fn content_hash(&self) -> String {
        let mut hasher = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        field(b"sessionstorm-debian-image");
        field(&FORMAT_VERSION.to_le_bytes());
        field(self.suite.as_bytes());
        for package in self.packages {
            field(package.as_bytes());
        }
        field(self.overlay.content_hash().as_bytes());
        format!("{:x}", hasher.finalize())
    }

    /// The cache key of the tree: what debootstrap is asked for, not the app files.
    pub(crate) fn tree_key(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(FORMAT_VERSION.to_le_bytes());
        hasher.update(self.suite.as_bytes());
        for package in self.packages {
            hasher.update((package.len() as u64).to_le_bytes());
            hasher.update(package.as_bytes());
        }
        format!(
            "{}{}-{:.16x}",
            tree_prefix(self.overlay.image),
            self.suite,
            hasher.finalize()
        )
    }

    /// The build context: the generated `Dockerfile`, the tree under `rootfs/` (modes,
    /// owners and symlinks as they are), and the overlay's files over it.
    pub(crate) fn context_tar(&self, content_hash: &str, tree: &Path) -> io::Result<Vec<u8>> {
        self.overlay.context_tar_over(content_hash, |tar| {
            tar.mode(tar::HeaderMode::Complete);
            tar.follow_symlinks(false);
            tar.append_dir_all("rootfs", tree)
        })
    }

    /// The debootstrapped tree for this recipe: from the cache, or made now (minutes).
    pub(crate) fn tree(&self) -> Result<PathBuf, ImageError> {
        let image = self.overlay.image;
        let root = cache_root();
        let dir = root.join(self.tree_key());
        if dir.is_dir() {
            tracing::info!(%image, tree = %dir.display(), "using the cached Debian tree");
            return Ok(dir);
        }
        let debootstrap = locate_host_binary(image, "debootstrap", "debootstrap", &["/usr/sbin"])?;
        let cache_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ImageError::Cache {
                image,
                path,
                source,
            }
        };
        std::fs::create_dir_all(&root).map_err(cache_err(&root))?;
        // Unique per process: two harnesses building at once each make their own, and the
        // first to finish wins the rename.
        let partial = root.join(format!(
            "{}.partial-{}",
            self.tree_key(),
            std::process::id()
        ));
        remove_tree(&partial).map_err(cache_err(&partial))?;
        tracing::info!(%image, packages = self.packages.join(","), tree = %partial.display(),
            "running debootstrap (a few minutes)");
        let output = Command::new(&debootstrap)
            .arg("--variant=minbase")
            .arg(format!("--include={}", self.packages.join(",")))
            .arg(self.suite)
            .arg(&partial)
            .output()
            .map_err(|source| ImageError::Debootstrap {
                image,
                status: format!("could not start `{}`: {source}", debootstrap.display()),
                log: String::new(),
            })?;
        if !output.status.success() {
            // Best effort: the error below is what matters.
            let _ = remove_tree(&partial);
            return Err(ImageError::Debootstrap {
                image,
                status: output.status.to_string(),
                log: log_tail(&output.stdout, &output.stderr),
            });
        }
        prune(&partial).map_err(cache_err(&partial))?;
        if let Err(err) = std::fs::rename(&partial, &dir) {
            if !dir.is_dir() {
                return Err(cache_err(&dir)(err));
            }
            // Another harness finished first: use its tree.
            remove_tree(&partial).map_err(cache_err(&partial))?;
        }
        remove_other_trees(&root, &dir, &tree_prefix(image));
        Ok(dir)
    }
}

/// `$XDG_CACHE_HOME/sessionstorm/debian`, else `$HOME/.cache/sessionstorm/debian`, else
/// the same under the temp dir.
fn cache_root() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|dir| !dir.is_empty())
                .map(|home| PathBuf::from(home).join(".cache"))
        })
        .unwrap_or_else(std::env::temp_dir);
    base.join("sessionstorm").join("debian")
}

/// Empties [`PRUNED_DIRS`] (keeping the directories and, for apt's download cache, its
/// `partial/` folder and lock) and removes [`PRUNED_FILES`].
pub(crate) fn prune(tree: &Path) -> io::Result<()> {
    for dir in PRUNED_DIRS {
        let dir = tree.join(dir);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if dir.ends_with("var/cache/apt/archives") && (name == "partial" || name == "lock") {
                continue;
            }
            remove_tree(&entry.path())?;
        }
    }
    for file in PRUNED_FILES {
        remove_tree(&tree.join(file))?;
    }
    Ok(())
}

/// Removes a file, symlink or directory tree; a missing path is fine.
fn remove_tree(path: &Path) -> io::Result<()> {
    let result = match std::fs::symlink_metadata(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    match result {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The start of an image's tree keys (`lib-apps-`): each image keeps its own tree.
fn tree_prefix(image: BuiltIn) -> String {
    let name = image.name();
    format!("{}-", name.strip_prefix("sessionstorm/").unwrap_or(name))
}

/// Removes the complete trees of `image`'s other keys beside `keep` (an older package
/// list or format), and trees from before keys named their image (`bookworm-…`);
/// another image's tree stays. Trees being made (`*.partial-PID`) are left alone:
/// another harness may be making one.
fn remove_other_trees(root: &Path, keep: &Path, prefix: &str) {
    let ours = |name: &str| name.starts_with(prefix) || name.starts_with(&format!("{SUITE}-"));
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path != keep && !name.contains(".partial-") && ours(&name) {
            match remove_tree(&path) {
                Ok(()) => tracing::debug!(tree = %path.display(), "removed an old Debian tree"),
                Err(err) => {
                    tracing::warn!(tree = %path.display(), %err, "could not remove an old Debian tree")
                }
            }
        }
    }
}

/// The last [`LOG_LINES`] lines of debootstrap's output (it logs to both streams).
fn log_tail(stdout: &[u8], stderr: &[u8]) -> String {
    let (stdout, stderr) = (
        String::from_utf8_lossy(stdout),
        String::from_utf8_lossy(stderr),
    );
    let lines: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|line| !line.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(LOG_LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn recipe() -> DebianRecipe {
        DebianRecipe::for_image(BuiltIn::LibApps)
    }

    #[test]
    fn lib_apps_carries_both_apps_and_an_executable_entrypoint() {
        let recipe = recipe();
        let paths: Vec<&str> = recipe.overlay.rootfs.entries().map(|(p, _)| p).collect();
        for path in [
            "/usr/local/bin/lib-apps",
            "/srv/lib-apps/django/libapp/settings.py",
            "/srv/lib-apps/django/libapp/views.py",
            "/srv/lib-apps/php/router.php",
        ] {
            assert!(paths.contains(&path), "{path} missing from {paths:?}");
        }
        let (_, entry) = recipe
            .overlay
            .rootfs
            .entries()
            .find(|(p, _)| *p == "/usr/local/bin/lib-apps")
            .unwrap();
        assert!(
            matches!(entry, super::super::rootfs::Entry::File { mode: 0o755, data } if data.starts_with(b"#!/bin/sh")),
            "{entry:?}"
        );
        let dockerfile = recipe.overlay.dockerfile("abc");
        assert!(
            dockerfile.starts_with("FROM scratch\nCOPY rootfs/ /\n"),
            "{dockerfile}"
        );
        assert!(
            dockerfile.contains("sessionstorm.image=\"sessionstorm/lib-apps\""),
            "{dockerfile}"
        );
        assert!(
            dockerfile.ends_with("ENTRYPOINT [\"/usr/local/bin/lib-apps\"]\n"),
            "{dockerfile}"
        );
    }

    #[test]
    fn content_hash_follows_packages_suite_and_app_files_but_the_tree_key_only_packages() {
        let base = recipe();
        let (hash, key) = (base.content_hash(), base.tree_key());
        assert_eq!(hash.len(), 64);
        assert_eq!(recipe().content_hash(), hash, "same recipe, same hash");
        assert_eq!(recipe().tree_key(), key);
        assert!(key.starts_with("lib-apps-bookworm-"), "{key}");

        let mut changed = recipe();
        changed.packages = &["python3-django"];
        assert_ne!(changed.content_hash(), hash, "packages");
        assert_ne!(changed.tree_key(), key, "packages");

        let mut changed = recipe();
        changed.suite = "trixie";
        assert_ne!(changed.content_hash(), hash, "suite");
        assert_ne!(changed.tree_key(), key, "suite");

        let mut changed = recipe();
        changed
            .overlay
            .rootfs
            .add_file("/srv/lib-apps/php/router.php", b"<?php".to_vec(), 0o644);
        assert_ne!(changed.content_hash(), hash, "an app file");
        assert_eq!(changed.tree_key(), key, "app files do not need a new tree");

        let mut changed = recipe();
        changed.overlay.env.clear();
        assert_ne!(changed.content_hash(), hash, "environment");

        // A package list split differently is another list.
        let mut a = recipe();
        a.packages = &["ab", "c"];
        let mut b = recipe();
        b.packages = &["a", "bc"];
        assert_ne!(a.content_hash(), b.content_hash());
        assert_ne!(a.tree_key(), b.tree_key());
    }

    /// (path, kind, mode, link target or data) of every tar entry, in order.
    fn tar_entries(bytes: &[u8]) -> Vec<(String, tar::EntryType, u32, Vec<u8>)> {
        let mut archive = tar::Archive::new(bytes);
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let path = entry.path().unwrap().to_string_lossy().into_owned();
                let kind = entry.header().entry_type();
                let mode = entry.header().mode().unwrap();
                let mut data = Vec::new();
                if kind.is_symlink() {
                    data = entry.link_name_bytes().unwrap().into_owned();
                } else {
                    io::Read::read_to_end(&mut entry, &mut data).unwrap();
                }
                (path.trim_end_matches('/').to_string(), kind, mode, data)
            })
            .collect()
    }

    #[test]
    fn context_holds_the_tree_as_it_is_with_the_apps_laid_over_it() {
        let tree = tempfile::tempdir().unwrap();
        let root = tree.path();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("usr/bin/python3"), b"interpreter").unwrap();
        std::fs::set_permissions(
            root.join("usr/bin/python3"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        std::fs::create_dir(root.join("tmp")).unwrap();
        std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
        std::fs::create_dir_all(root.join("srv/lib-apps/php")).unwrap();
        std::fs::write(root.join("srv/lib-apps/php/router.php"), b"old").unwrap();

        let recipe = recipe();
        let bytes = recipe.context_tar("abc", root).unwrap();
        let entries = tar_entries(&bytes);
        assert_eq!(entries[0].0, "Dockerfile");
        assert_eq!(entries[0].3, recipe.overlay.dockerfile("abc").into_bytes());
        let find = |path: &str| {
            entries
                .iter()
                .rposition(|e| e.0 == path)
                .unwrap_or_else(|| {
                    panic!(
                        "{path} not in {:?}",
                        entries.iter().map(|e| &e.0).collect::<Vec<_>>()
                    )
                })
        };
        let python = &entries[find("rootfs/usr/bin/python3")];
        assert_eq!(
            (python.2 & 0o7777, python.3.as_slice()),
            (0o755, &b"interpreter"[..])
        );
        let bin = &entries[find("rootfs/bin")];
        assert!(bin.1.is_symlink(), "symlinks are kept as symlinks");
        assert_eq!(bin.3, b"usr/bin");
        assert_eq!(
            entries[find("rootfs/tmp")].2 & 0o7777,
            0o1777,
            "sticky bit kept"
        );
        // The app file is in the tree too (an old copy): the overlay's comes later and wins.
        let last = find("rootfs/srv/lib-apps/php/router.php");
        assert_eq!(
            entries[last].3,
            include_bytes!("../../docker/lib-apps/php/router.php").to_vec()
        );
        assert!(last > find("rootfs/usr/bin/python3"));
        let entrypoint = &entries[find("rootfs/usr/local/bin/lib-apps")];
        assert_eq!(entrypoint.2, 0o755);
    }

    #[test]
    fn prune_empties_caches_docs_and_dev_and_drops_host_files() {
        let tree = tempfile::tempdir().unwrap();
        let root = tree.path();
        for dir in [
            "var/cache/apt/archives/partial",
            "usr/share/doc/php",
            "dev/pts",
            "usr/lib",
        ] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        for file in [
            "var/cache/apt/archives/php_1_all.deb",
            "var/cache/apt/archives/lock",
            "usr/share/doc/php/copyright",
            "usr/lib/libphp.so",
            "etc/resolv.conf",
            "etc/hostname",
            "etc/passwd",
        ] {
            std::fs::create_dir_all(root.join(file).parent().unwrap()).unwrap();
            std::fs::write(root.join(file), b"x").unwrap();
        }
        std::os::unix::fs::symlink("/proc/self/fd", root.join("dev/fd")).unwrap();

        prune(root).unwrap();
        let exists = |path: &str| std::fs::symlink_metadata(root.join(path)).is_ok();
        for gone in [
            "var/cache/apt/archives/php_1_all.deb",
            "usr/share/doc/php",
            "dev/pts",
            "dev/fd",
            "etc/resolv.conf",
            "etc/hostname",
        ] {
            assert!(!exists(gone), "{gone} should be pruned");
        }
        for kept in [
            "var/cache/apt/archives/partial",
            "var/cache/apt/archives/lock",
            "usr/share/doc",
            "dev",
            "usr/lib/libphp.so",
            "etc/passwd",
        ] {
            assert!(exists(kept), "{kept} should be kept");
        }
        prune(root).unwrap(); // again: nothing left to remove is fine
    }

    #[test]
    fn old_trees_of_the_image_are_removed_but_not_trees_being_made_nor_other_images() {
        let cache = tempfile::tempdir().unwrap();
        let root = cache.path();
        for dir in [
            "lib-apps-bookworm-new",
            "lib-apps-bookworm-old",
            "bookworm-unnamed",
            "lib-apps-bookworm-new.partial-42",
            "dind-bookworm-other",
        ] {
            std::fs::create_dir_all(root.join(dir).join("usr")).unwrap();
        }
        let keep = root.join("lib-apps-bookworm-new");
        remove_other_trees(root, &keep, &tree_prefix(BuiltIn::LibApps));
        let mut left: Vec<String> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "dind-bookworm-other",
                "lib-apps-bookworm-new",
                "lib-apps-bookworm-new.partial-42"
            ]
        );
    }

    #[test]
    fn debootstrap_errors_say_what_to_do() {
        let long: Vec<String> = (1..=40).map(|n| format!("I: line {n}")).collect();
        let tail = log_tail(
            long.join("\n").as_bytes(),
            b"E: Couldn't download packages\n",
        );
        assert_eq!(tail.lines().count(), LOG_LINES);
        assert!(
            tail.ends_with("I: line 40\nE: Couldn't download packages"),
            "{tail}"
        );

        let message = ImageError::Debootstrap {
            image: BuiltIn::LibApps,
            status: "exit status: 1".into(),
            log: tail,
        }
        .to_string();
        assert!(message.contains("sessionstorm/lib-apps"), "{message}");
        assert!(message.contains("as root"), "{message}");
        assert!(message.contains("reach the Debian mirror"), "{message}");
        assert!(
            message.ends_with("E: Couldn't download packages"),
            "{message}"
        );

        let message = ImageError::HostBinaryNotFound {
            image: BuiltIn::LibApps,
            binary: "debootstrap",
            package: "debootstrap",
        }
        .to_string();
        assert!(message.contains("apt-get install debootstrap"), "{message}");
    }
}
