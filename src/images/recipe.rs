//! The recipe of one image: which files it holds, how it starts, its content hash and
//! its build context. The host side of image building, put together from the pieces
//! in [`super::locate`], [`super::linkage`] and [`super::rootfs`].
//!
//! Everything here is synchronous and Docker-free, so it runs on a blocking thread and is
//! unit-tested with fake files. The flow for one image is:
//!
//! 1. find the binary ([`locate_app`], [`locate_host_binary`]);
//! 2. run `ldd` on it and parse the answer ([`super::linkage::parse_ldd`]), and read the
//!    ELF interpreter the kernel will load ([`elf_interpreter`]);
//! 3. copy binary, libraries and interpreter into a [`Rootfs`], each at the path the
//!    dynamic loader will look for (symlinks are followed: the image holds plain files);
//! 4. hash it ([`Recipe::content_hash`]) and, only if the image is stale, pack it with its
//!    `Dockerfile` into a build context ([`Recipe::context_tar`]).

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::linkage::{elf_interpreter, run_ldd, Linkage};
use super::locate::{locate_host_binary, locate_workspace};
use super::rootfs::{Entry, Rootfs};
use super::stamp::STAMP_LABEL;
use super::{BuiltIn, ImageError, CONTENT_HASH_LABEL, IMAGE_LABEL};

/// Bumped whenever the image layout or the Dockerfile template changes, so images built by an
/// older harness are rebuilt even when the binaries are the same.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Where haproxy's configuration is uploaded by the harness before the container starts.
pub(crate) const HAPROXY_CONFIG_DIR: &str = "/usr/local/etc/haproxy";

/// Everything needed to build one image: its files, how to start it, and its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recipe {
    pub(crate) image: BuiltIn,
    pub(crate) rootfs: Rootfs,
    pub(crate) entrypoint: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    /// For a binary cargo builds here, its [`super::stamp`] when it was read: a
    /// label, so the next run can skip reading it. Not part of the content hash.
    pub(crate) stamp: Option<String>,
}

impl Recipe {
    /// Collects the image's files from the host: the expensive part (reads and hashes the
    /// binaries), but not a Docker call.
    pub(crate) fn for_image(image: BuiltIn) -> Result<Recipe, ImageError> {
        let mut stamp = None;
        let (binary, image_path) = match image {
            BuiltIn::SessionApp | BuiltIn::CounterApp | BuiltIn::ActixApp | BuiltIn::Reaper => {
                let (name, _) = super::workspace_binary(image)
                    .expect("the demo services are built in this workspace");
                let binary = locate_workspace(image)?;
                // Before the read: a write after it only makes the stamp miss.
                stamp = super::stamp::of(&binary, FORMAT_VERSION).ok();
                (binary, format!("/{name}"))
            }
            BuiltIn::Redis => (
                locate_host_binary(
                    image,
                    "redis-server",
                    "redis-server",
                    &["/usr/bin", "/usr/sbin"],
                )?,
                "/usr/bin/redis-server".to_string(),
            ),
            BuiltIn::Haproxy => (
                locate_host_binary(image, "haproxy", "haproxy", &["/usr/sbin"])?,
                "/usr/sbin/haproxy".to_string(),
            ),
            BuiltIn::Nettools => (
                locate_host_binary(
                    image,
                    "xtables-nft-multi",
                    "iptables",
                    &["/usr/sbin", "/sbin"],
                )?,
                "/usr/sbin/xtables-nft-multi".to_string(),
            ),
            BuiltIn::Memcached => (
                locate_host_binary(image, "memcached", "memcached", &["/usr/bin"])?,
                "/usr/bin/memcached".to_string(),
            ),
            BuiltIn::LibApps | BuiltIn::Dind => {
                unreachable!("{image} is made from Debian packages (debian.rs)")
            }
        };
        let mut rootfs = Rootfs::skeleton();
        if image == BuiltIn::Haproxy {
            rootfs.add_dir(HAPROXY_CONFIG_DIR, 0o755);
        }
        let mut libraries = add_binary(&mut rootfs, image, &binary, &image_path)?;
        let mut extra_env = Vec::new();
        if image == BuiltIn::Nettools {
            extra_env.push(add_xtables_targets(&mut rootfs, &libraries)?);
            // tc, for the `bandwidth` fault's qdisc, beside iptables.
            let tc = locate_host_binary(image, "tc", "iproute2", &["/usr/sbin", "/sbin"])?;
            libraries.extend(add_binary(&mut rootfs, image, &tc, "/usr/sbin/tc")?);
            libraries.sort();
            libraries.dedup();
        }
        let mut env = library_path_env(&libraries);
        env.extend(extra_env);
        Ok(Recipe {
            image,
            rootfs,
            entrypoint: match image {
                // memcached refuses to run as root unless told to, and a scratch image
                // has no other user.
                BuiltIn::Memcached => vec![image_path.clone(), "-u".into(), "root".into()],
                BuiltIn::Reaper => vec![image_path.clone(), "reaper".into()],
                _ => vec![image_path.clone()],
            },
            env,
            stamp,
        })
    }

    /// sha256 over the format version, the image name, every entry (path, mode and bytes,
    /// each length-prefixed so no two trees hash alike), the entrypoint and the environment.
    pub(crate) fn content_hash(&self) -> String {
        let mut hasher = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        field(b"sessionstorm-image");
        field(&FORMAT_VERSION.to_le_bytes());
        field(self.image.name().as_bytes());
        for (path, entry) in self.rootfs.entries() {
            match entry {
                Entry::Dir { mode } => {
                    field(b"dir");
                    field(path.as_bytes());
                    field(&mode.to_le_bytes());
                }
                Entry::File { data, mode } => {
                    field(b"file");
                    field(path.as_bytes());
                    field(&mode.to_le_bytes());
                    field(data);
                }
            }
        }
        field(b"entrypoint");
        for arg in &self.entrypoint {
            field(arg.as_bytes());
        }
        field(b"env");
        for (key, value) in &self.env {
            field(key.as_bytes());
            field(value.as_bytes());
        }
        format!("{:x}", hasher.finalize())
    }

    /// The build's `Dockerfile`. The hash goes into a label, so it is an argument rather than
    /// part of what is hashed.
    pub(crate) fn dockerfile(&self, content_hash: &str) -> String {
        let quote = |s: &str| serde_json::to_string(s).expect("a string always serialises");
        let mut out = String::from("FROM scratch\nCOPY rootfs/ /\n");
        for (key, value) in &self.env {
            out.push_str(&format!("ENV {key}={}\n", quote(value)));
        }
        out.push_str(&format!(
            "LABEL {IMAGE_LABEL}={} {CONTENT_HASH_LABEL}={}",
            quote(self.image.name()),
            quote(content_hash)
        ));
        if let Some(stamp) = &self.stamp {
            out.push_str(&format!(" {STAMP_LABEL}={}", quote(stamp)));
        }
        out.push('\n');
        out.push_str(&format!(
            "ENTRYPOINT {}\n",
            serde_json::to_string(&self.entrypoint).expect("strings always serialise")
        ));
        out
    }

    /// The build context: `Dockerfile` plus `rootfs/...`, owned by root, with a fixed mtime
    /// so the same content gives the same bytes.
    pub(crate) fn context_tar(&self, content_hash: &str) -> io::Result<Vec<u8>> {
        self.context_tar_over(content_hash, |_| Ok(()))
    }

    /// The build context with `base` appending files under `rootfs/` first (a Debian tree)
    /// and this recipe's entries laid over them.
    pub(crate) fn context_tar_over(
        &self,
        content_hash: &str,
        base: impl FnOnce(&mut tar::Builder<Vec<u8>>) -> io::Result<()>,
    ) -> io::Result<Vec<u8>> {
        let mut tar = tar::Builder::new(Vec::with_capacity(
            self.rootfs.file_bytes() as usize + 64 * 1024,
        ));
        let dockerfile = self.dockerfile(content_hash);
        append(
            &mut tar,
            "Dockerfile",
            tar::EntryType::Regular,
            0o644,
            dockerfile.as_bytes(),
        )?;
        append(&mut tar, "rootfs/", tar::EntryType::Directory, 0o755, &[])?;
        base(&mut tar)?;
        for (path, entry) in self.rootfs.entries() {
            match entry {
                Entry::Dir { mode } => append(
                    &mut tar,
                    &format!("rootfs{path}/"),
                    tar::EntryType::Directory,
                    *mode,
                    &[],
                )?,
                Entry::File { data, mode } => append(
                    &mut tar,
                    &format!("rootfs{path}"),
                    tar::EntryType::Regular,
                    *mode,
                    data,
                )?,
            }
        }
        tar.into_inner()
    }
}

fn append(
    tar: &mut tar::Builder<Vec<u8>>,
    path: &str,
    kind: tar::EntryType,
    mode: u32,
    data: &[u8],
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(data.len() as u64);
    tar.append_data(&mut header, path, data)
}

/// Copies `binary` to `image_path` with every shared library `ldd` reports, each at the path
/// `ldd` printed, plus the ELF interpreter at the exact path written in the binary (the
/// kernel opens that path; nothing searches for it). Returns the library paths.
fn add_binary(
    rootfs: &mut Rootfs,
    image: BuiltIn,
    binary: &Path,
    image_path: &str,
) -> Result<Vec<PathBuf>, ImageError> {
    rootfs.add_host_file(image, image_path, binary)?;
    let Some(Entry::File { data, .. }) = rootfs.entry(image_path) else {
        unreachable!("add_host_file just stored a file at {image_path}")
    };
    if !data.starts_with(b"\x7fELF") {
        return Err(ImageError::NotElf {
            image,
            binary: binary.to_path_buf(),
        });
    }
    let interpreter = elf_interpreter(data);
    let mut libraries = match run_ldd(binary)? {
        Linkage::Static => Vec::new(),
        Linkage::Dynamic(libraries) => libraries,
    };
    if let Some(interpreter) = interpreter {
        if !libraries.contains(&interpreter) {
            libraries.push(interpreter);
        }
    }
    for library in &libraries {
        let Some(path) = library.to_str() else {
            return Err(ImageError::Read {
                image,
                path: library.clone(),
                source: io::Error::new(io::ErrorKind::InvalidData, "path is not UTF-8"),
            });
        };
        if !rootfs.contains(path) {
            rootfs.add_host_file(image, path, library)?;
        }
    }
    Ok(libraries)
}

/// iptables loads even its standard targets (`-j DROP`) with `dlopen` from its
/// extension directory, which `ldd` cannot see: copy `libxt_standard.so` from beside
/// `libxtables` and point `XTABLES_LIBDIR` at it.
fn add_xtables_targets(
    rootfs: &mut Rootfs,
    libraries: &[PathBuf],
) -> Result<(String, String), ImageError> {
    let beside = libraries
        .iter()
        .filter(|lib| lib.to_string_lossy().contains("libxtables"))
        .filter_map(|lib| Some(lib.parent()?.join("xtables")));
    let fallbacks = ["/usr/lib/x86_64-linux-gnu/xtables", "/usr/lib/xtables"]
        .into_iter()
        .map(PathBuf::from);
    let dir = beside
        .chain(fallbacks)
        .find(|dir| dir.join("libxt_standard.so").is_file())
        .ok_or(ImageError::HostBinaryNotFound {
            image: BuiltIn::Nettools,
            binary: "libxt_standard.so",
            package: "iptables",
        })?;
    let dir_text = dir.to_string_lossy().to_string();
    // DROP (standard) for every rule; statistic for `loss`'s random drops; tcp and
    // DNAT for `store_lag`'s turn of the replication link through the harness.
    for target in [
        "libxt_standard.so",
        "libxt_statistic.so",
        "libxt_tcp.so",
        "libxt_DNAT.so",
    ] {
        rootfs.add_host_file(
            BuiltIn::Nettools,
            &format!("{dir_text}/{target}"),
            &dir.join(target),
        )?;
    }
    Ok(("XTABLES_LIBDIR".to_string(), dir_text))
}

/// `LD_LIBRARY_PATH` listing every directory a library came from. The image has no
/// `/etc/ld.so.cache`, so a library that the host found through the cache (say in
/// `/usr/local/lib`) would otherwise be invisible to the loader inside the container.
fn library_path_env(libraries: &[PathBuf]) -> Vec<(String, String)> {
    let dirs: BTreeSet<&str> = libraries
        .iter()
        .filter_map(|lib| lib.parent()?.to_str())
        .filter(|dir| !dir.is_empty())
        .collect();
    if dirs.is_empty() {
        return Vec::new();
    }
    let joined = dirs.into_iter().collect::<Vec<_>>().join(":");
    vec![("LD_LIBRARY_PATH".to_string(), joined)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_is_packed_with_its_libraries_and_interpreter() {
        // This test binary is a dynamic ELF like the ones we pack.
        let exe = std::env::current_exe().unwrap();
        let mut fs = Rootfs::skeleton();
        let libraries = add_binary(&mut fs, BuiltIn::SessionApp, &exe, "/session-app").unwrap();
        assert!(fs.contains("/session-app"));
        for library in &libraries {
            assert!(
                fs.contains(library.to_str().unwrap()),
                "{library:?} not packed"
            );
        }
        let data = std::fs::read(&exe).unwrap();
        if let Some(interp) = elf_interpreter(&data) {
            let Some(Entry::File { mode, .. }) = fs.entry(interp.to_str().unwrap()) else {
                panic!("interpreter {interp:?} is not a file in the image");
            };
            assert_ne!(
                mode & 0o111,
                0,
                "the kernel needs to execute the interpreter"
            );
        }

        let script = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(script.path(), "#!/bin/sh\n").unwrap();
        let err = add_binary(&mut fs, BuiltIn::SessionApp, script.path(), "/x").unwrap_err();
        assert!(matches!(err, ImageError::NotElf { .. }), "{err}");
    }

    fn fake_recipe() -> Recipe {
        let mut rootfs = Rootfs::skeleton();
        rootfs.add_dir(HAPROXY_CONFIG_DIR, 0o755);
        rootfs.add_file("/usr/sbin/haproxy", b"\x7fELF fake binary".to_vec(), 0o755);
        rootfs.add_file(
            "/lib/x86_64-linux-gnu/libc.so.6",
            b"fake libc".to_vec(),
            0o644,
        );
        rootfs.add_file("/lib64/ld-linux-x86-64.so.2", b"fake ld.so".to_vec(), 0o755);
        Recipe {
            image: BuiltIn::Haproxy,
            rootfs,
            entrypoint: vec!["/usr/sbin/haproxy".into()],
            env: library_path_env(&[
                "/lib/x86_64-linux-gnu/libc.so.6".into(),
                "/lib64/ld-linux-x86-64.so.2".into(),
            ]),
            stamp: None,
        }
    }

    #[test]
    fn content_hash_is_stable_and_sensitive_to_every_input() {
        let base = fake_recipe();
        let hash = base.content_hash();
        assert_eq!(hash.len(), 64);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            fake_recipe().content_hash(),
            hash,
            "same content, same hash"
        );

        let with_file = |path: &str, data: &[u8], mode| {
            let mut changed = fake_recipe();
            changed.rootfs.add_file(path, data.to_vec(), mode);
            changed.content_hash()
        };
        let libc = "/lib/x86_64-linux-gnu/libc.so.6";
        assert_ne!(with_file(libc, b"fake libC", 0o644), hash, "file bytes");
        assert_ne!(with_file(libc, b"fake libc", 0o755), hash, "file mode");
        let libd = "/lib/x86_64-linux-gnu/libd.so.6";
        assert_ne!(with_file(libd, b"fake libc", 0o644), hash, "extra file");

        let mut changed = fake_recipe();
        changed.entrypoint.push("-v".into());
        assert_ne!(changed.content_hash(), hash, "entrypoint");

        let mut changed = fake_recipe();
        changed.image = BuiltIn::Redis;
        assert_ne!(changed.content_hash(), hash, "image name");

        let mut changed = fake_recipe();
        changed.env.clear();
        assert_ne!(changed.content_hash(), hash, "environment");
    }

    #[test]
    fn content_hash_cannot_be_fooled_by_moving_bytes_between_path_and_content() {
        let mut a = Rootfs::default();
        a.add_file("/ab", b"c".to_vec(), 0o644);
        let mut b = Rootfs::default();
        b.add_file("/a", b"bc".to_vec(), 0o644);
        let recipe = |rootfs| Recipe {
            image: BuiltIn::Redis,
            rootfs,
            entrypoint: vec![],
            env: vec![],
            stamp: None,
        };
        assert_ne!(recipe(a).content_hash(), recipe(b).content_hash());
    }

    #[test]
    fn dockerfile_labels_the_image_and_sets_the_entrypoint() {
        let recipe = fake_recipe();
        assert_eq!(
            recipe.dockerfile("abc123"),
            "FROM scratch\n\
             COPY rootfs/ /\n\
             ENV LD_LIBRARY_PATH=\"/lib/x86_64-linux-gnu:/lib64\"\n\
             LABEL sessionstorm.image=\"sessionstorm/haproxy\" sessionstorm.content-hash=\"abc123\"\n\
             ENTRYPOINT [\"/usr/sbin/haproxy\"]\n"
        );
        let stamped = Recipe {
            stamp: Some("v1 /x size 3".into()),
            ..fake_recipe()
        };
        assert_eq!(
            stamped.content_hash(),
            recipe.content_hash(),
            "the stamp is no content"
        );
        assert!(stamped.dockerfile("abc123").contains(
            "sessionstorm.content-hash=\"abc123\" sessionstorm.source-stamp=\"v1 /x size 3\"\n"
        ));
    }

    #[test]
    fn static_binaries_get_no_library_path() {
        assert!(library_path_env(&[]).is_empty());
    }

    #[test]
    fn context_tar_holds_the_dockerfile_and_the_rootfs() {
        let recipe = fake_recipe();
        let bytes = recipe.context_tar("abc123").unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let header = entry.header();
            assert_eq!(header.uid().unwrap(), 0, "{path}");
            assert_eq!(header.gid().unwrap(), 0, "{path}");
            let mode = header.mode().unwrap();
            let kind = header.entry_type();
            let mut data = Vec::new();
            io::Read::read_to_end(&mut entry, &mut data).unwrap();
            if path == "Dockerfile" {
                assert_eq!(
                    String::from_utf8(data).unwrap(),
                    recipe.dockerfile("abc123")
                );
            }
            seen.push((path, kind.is_dir(), mode));
        }
        let expected: Vec<(String, bool, u32)> = [
            ("Dockerfile", false, 0o644),
            ("rootfs/", true, 0o755),
            ("rootfs/etc/", true, 0o755),
            ("rootfs/etc/group", false, 0o644),
            ("rootfs/etc/nsswitch.conf", false, 0o644),
            ("rootfs/etc/passwd", false, 0o644),
            ("rootfs/lib/", true, 0o755),
            ("rootfs/lib/x86_64-linux-gnu/", true, 0o755),
            ("rootfs/lib/x86_64-linux-gnu/libc.so.6", false, 0o644),
            ("rootfs/lib64/", true, 0o755),
            ("rootfs/lib64/ld-linux-x86-64.so.2", false, 0o755),
            ("rootfs/run/", true, 0o755),
            ("rootfs/tmp/", true, 0o1777),
            ("rootfs/usr/", true, 0o755),
            ("rootfs/usr/local/", true, 0o755),
            ("rootfs/usr/local/etc/", true, 0o755),
            ("rootfs/usr/local/etc/haproxy/", true, 0o755),
            ("rootfs/usr/sbin/", true, 0o755),
            ("rootfs/usr/sbin/haproxy", false, 0o755),
        ]
        .iter()
        .map(|(p, d, m)| (p.to_string(), *d, *m))
        .collect();
        assert_eq!(seen, expected);
        assert_eq!(
            recipe.context_tar("abc123").unwrap(),
            bytes,
            "deterministic bytes"
        );
    }
}
