//! A cheap up-to-date check for the images of binaries cargo builds here (the demo
//! services, and sessionstorm itself for the reaper started with every run).
//!
//! The content hash reads and hashes every file of an image: for the reaper, a
//! debug sessionstorm binary of about 200 MB, 0.4–1.8 s on every run. So those
//! images also carry a stamp of their binary as it was when they were built: its
//! path, size, modification and change times and inode. When the local image's
//! stamp is the binary's stamp now, the binary has not been written since and
//! nothing is read. Any write to the file changes its change time (which no tool
//! can set back), and cargo writes a new file, so a rebuilt binary always misses
//! the stamp and goes through the content hash as before. A miss costs only that
//! hash: an image whose content hash still matches is kept as it is (its stamp
//! stays old), so worktrees with equal binaries at different paths never rebuild
//! each other's image.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Label holding the stamp of the binary an image was built from.
pub const STAMP_LABEL: &str = "sessionstorm.source-stamp";

/// The stamp of `binary` now, for an image of layout `format` (the recipe's format
/// version: a new layout misses every old stamp): its path, size, times and inode.
pub(crate) fn of(binary: &Path, format: u32) -> io::Result<String> {
    let meta = std::fs::metadata(binary)?;
    Ok(format!(
        "v{format} {} size {} mtime {}.{:09} ctime {}.{:09} inode {}",
        binary.display(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
        meta.ino()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn the_stamp_holds_while_the_binary_is_untouched_and_misses_any_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessionstorm");
        std::fs::write(&path, b"\x7fELF first build").unwrap();
        let built = of(&path, 1).unwrap();
        assert!(built.contains(&path.display().to_string()), "{built}");
        assert_eq!(of(&path, 1).unwrap(), built, "untouched: the same stamp");

        // Same size, modification time put back: the change time still tells.
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&path, b"\x7fELF other build").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert_ne!(of(&path, 1).unwrap(), built, "rewritten in place");

        // A new file in its place, as cargo writes it.
        let again = of(&path, 1).unwrap();
        let new = dir.path().join("new");
        std::fs::write(&new, b"\x7fELF third build!").unwrap();
        std::fs::rename(&new, &path).unwrap();
        assert_ne!(of(&path, 1).unwrap(), again, "replaced");

        // The same bytes at another path (another worktree) are another stamp.
        let copy = dir.path().join("copy");
        std::fs::copy(&path, &copy).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&copy)
            .unwrap()
            .set_modified(SystemTime::now())
            .unwrap();
        assert_ne!(of(&copy, 1).unwrap(), of(&path, 1).unwrap());
        assert_ne!(
            of(&path, 2).unwrap(),
            of(&path, 1).unwrap(),
            "another image format"
        );
        assert!(of(&dir.path().join("missing"), 1).is_err());
    }
}
