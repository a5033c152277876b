//! The image's root filesystem as an ordered map of paths to files and directories,
//! with the skeleton every image gets (`/etc/passwd`, `/etc/group`,
//! `/etc/nsswitch.conf`, `/tmp`, `/run`).
//!
//! Only the layout lives here: what goes into it is [`super::recipe`], where the files
//! come from is [`super::locate`] and [`super::linkage`]. Paths are normalised on the
//! way in, so the content hash and the build context see one spelling per path.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{BuiltIn, ImageError};

/// Minimal user database: enough for `getpwnam("nobody")`/`getgrnam(...)` in haproxy's
/// `user`/`group` settings and for libraries that look up the current user.
const ETC_PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n\
                          nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n";
const ETC_GROUP: &str = "root:x:0:\nnogroup:x:65534:\nnobody:x:65534:\n";
/// Without it glibc falls back to built-in defaults; spelling it out keeps name resolution
/// (`redis` on the run's Docker network, via Docker's embedded DNS) predictable.
const ETC_NSSWITCH: &str = "passwd: files\ngroup: files\nhosts: files dns\n";

/// One node of the image's file tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    Dir { mode: u32 },
    File { data: Vec<u8>, mode: u32 },
}

/// The image's root filesystem, keyed by absolute path inside the image.
///
/// A `BTreeMap` gives the stable order that both the content hash and the tar need, and
/// puts every directory before its children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rootfs {
    entries: BTreeMap<String, Entry>,
}

impl Rootfs {
    /// The skeleton every image gets: a user database, `/tmp` and `/run`.
    pub(crate) fn skeleton() -> Self {
        let mut fs = Rootfs::default();
        fs.add_file("/etc/passwd", ETC_PASSWD.as_bytes().to_vec(), 0o644);
        fs.add_file("/etc/group", ETC_GROUP.as_bytes().to_vec(), 0o644);
        fs.add_file(
            "/etc/nsswitch.conf",
            ETC_NSSWITCH.as_bytes().to_vec(),
            0o644,
        );
        fs.add_dir("/tmp", 0o1777);
        fs.add_dir("/run", 0o755);
        fs
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries
            .iter()
            .map(|(path, entry)| (path.as_str(), entry))
    }

    /// What is at `path` in the image, if anything.
    pub(crate) fn entry(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    pub(crate) fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(path)
    }

    /// Adds a directory (and its parents). An existing directory keeps its mode.
    pub(crate) fn add_dir(&mut self, path: &str, mode: u32) {
        let path = normalize(path);
        self.add_parents(&path);
        self.entries.entry(path).or_insert(Entry::Dir { mode });
    }

    /// Adds (or replaces) a file, creating its parent directories.
    pub(crate) fn add_file(&mut self, path: &str, data: Vec<u8>, mode: u32) {
        let path = normalize(path);
        self.add_parents(&path);
        self.entries.insert(path, Entry::File { data, mode });
    }

    /// Copies a host file into the image at `image_path`. Symlinks are followed: the image
    /// gets the target's bytes and permission bits at the path asked for.
    pub(crate) fn add_host_file(
        &mut self,
        image: BuiltIn,
        image_path: &str,
        host_path: &Path,
    ) -> Result<(), ImageError> {
        let read_err = |source| ImageError::Read {
            image,
            path: host_path.to_path_buf(),
            source,
        };
        let data = std::fs::read(host_path).map_err(read_err)?;
        let mode = std::fs::metadata(host_path)
            .map_err(read_err)?
            .permissions()
            .mode()
            & 0o777;
        self.add_file(image_path, data, mode);
        Ok(())
    }

    /// Total size of the files, in bytes.
    pub(crate) fn file_bytes(&self) -> u64 {
        self.entries
            .values()
            .map(|entry| match entry {
                Entry::File { data, .. } => data.len() as u64,
                Entry::Dir { .. } => 0,
            })
            .sum()
    }

    fn add_parents(&mut self, path: &str) {
        let mut end = 0;
        while let Some(next) = path[end + 1..].find('/') {
            end += 1 + next;
            self.entries
                .entry(path[..end].to_string())
                .or_insert(Entry::Dir { mode: 0o755 });
        }
    }
}

/// `"usr/bin/"` → `"/usr/bin"`: one spelling per path, so the map has no duplicates.
fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etc_files_name_root_and_nobody() {
        let fs = Rootfs::skeleton();
        let text = |path: &str| match &fs.entries[path] {
            Entry::File { data, .. } => String::from_utf8(data.clone()).unwrap(),
            Entry::Dir { .. } => panic!("{path} is a directory"),
        };
        assert!(text("/etc/passwd").starts_with("root:x:0:0:"));
        assert!(text("/etc/passwd").contains("\nnobody:x:65534:65534:"));
        assert!(text("/etc/group").contains("nobody:x:65534:"));
    }

    #[test]
    fn paths_are_normalized_and_parents_created() {
        let mut fs = Rootfs::default();
        fs.add_file("usr//bin/./x", vec![1], 0o755);
        let paths: Vec<&str> = fs.entries().map(|(p, _)| p).collect();
        assert_eq!(paths, ["/usr", "/usr/bin", "/usr/bin/x"]);
        assert_eq!(fs.file_bytes(), 1);
    }

    #[test]
    fn host_file_copies_follow_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("libreal.so.1.2");
        std::fs::write(&real, b"library bytes").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o644)).unwrap();
        let link = dir.path().join("libreal.so.1");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let mut fs = Rootfs::default();
        fs.add_host_file(BuiltIn::Redis, "/lib/libreal.so.1", &link)
            .unwrap();
        assert_eq!(
            fs.entries["/lib/libreal.so.1"],
            Entry::File {
                data: b"library bytes".to_vec(),
                mode: 0o644
            }
        );
        let err = fs
            .add_host_file(BuiltIn::Redis, "/lib/x", &dir.path().join("missing"))
            .unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
