//! The host side of image building: finding binaries, resolving their shared libraries the
//! way `ldd` does, and laying the result out as a root filesystem.
//!
//! Everything here is synchronous and Docker-free, so it runs on a blocking thread and is
//! unit-tested with fake files. The flow for one image is:
//!
//! 1. find the binary ([`locate_app`], [`locate_host_binary`]);
//! 2. run `ldd` on it and parse the answer ([`parse_ldd`]), and read the ELF interpreter
//!    the kernel will load ([`elf_interpreter`]);
//! 3. copy binary, libraries and interpreter into a [`Rootfs`], each at the path the
//!    dynamic loader will look for (symlinks are followed: the image holds plain files);
//! 4. hash it ([`Recipe::content_hash`]) and, only if the image is stale, pack it with its
//!    `Dockerfile` into a build context ([`Recipe::context_tar`]).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::{BuiltIn, ImageError, CONTENT_HASH_LABEL, IMAGE_LABEL};

/// Bumped whenever the image layout or the Dockerfile template changes, so images built by an
/// older harness are rebuilt even when the binaries are the same.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Minimal user database: enough for `getpwnam("nobody")`/`getgrnam(...)` in haproxy's
/// `user`/`group` settings and for libraries that look up the current user.
const ETC_PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n\
                          nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n";
const ETC_GROUP: &str = "root:x:0:\nnogroup:x:65534:\nnobody:x:65534:\n";
/// Without it glibc falls back to built-in defaults; spelling it out keeps name resolution
/// (`redis` on the run's Docker network, via Docker's embedded DNS) predictable.
const ETC_NSSWITCH: &str = "passwd: files\ngroup: files\nhosts: files dns\n";

/// Where haproxy's configuration is uploaded by the harness before the container starts.
pub(crate) const HAPROXY_CONFIG_DIR: &str = "/usr/local/etc/haproxy";

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

/// Everything needed to build one image: its files, how to start it, and its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recipe {
    pub(crate) image: BuiltIn,
    pub(crate) rootfs: Rootfs,
    pub(crate) entrypoint: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
}

impl Recipe {
    /// Collects the image's files from the host: the expensive part (reads and hashes the
    /// binaries), but not a Docker call.
    pub(crate) fn for_image(image: BuiltIn) -> Result<Recipe, ImageError> {
        let (binary, image_path) = match image {
            BuiltIn::SessionApp => (
                locate_app(
                    image,
                    std::env::var_os(super::APP_BIN_ENV).map(PathBuf::from),
                    std::env::current_exe().ok().as_deref(),
                )?,
                "/session-app",
            ),
            BuiltIn::CounterApp => (
                locate_app(
                    image,
                    std::env::var_os(super::COUNTER_APP_BIN_ENV).map(PathBuf::from),
                    std::env::current_exe().ok().as_deref(),
                )?,
                "/counter-app",
            ),
            BuiltIn::Redis => (
                locate_host_binary(
                    image,
                    "redis-server",
                    "redis-server",
                    &["/usr/bin", "/usr/sbin"],
                )?,
                "/usr/bin/redis-server",
            ),
            BuiltIn::Haproxy => (
                locate_host_binary(image, "haproxy", "haproxy", &["/usr/sbin"])?,
                "/usr/sbin/haproxy",
            ),
            BuiltIn::Nettools => (
                locate_host_binary(
                    image,
                    "xtables-nft-multi",
                    "iptables",
                    &["/usr/sbin", "/sbin"],
                )?,
                "/usr/sbin/xtables-nft-multi",
            ),
            BuiltIn::Memcached => (
                locate_host_binary(image, "memcached", "memcached", &["/usr/bin"])?,
                "/usr/bin/memcached",
            ),
            BuiltIn::LibApps => unreachable!("{image} is made from Debian packages (debian.rs)"),
        };
        let mut rootfs = Rootfs::skeleton();
        if image == BuiltIn::Haproxy {
            rootfs.add_dir(HAPROXY_CONFIG_DIR, 0o755);
        }
        let libraries = add_binary(&mut rootfs, image, &binary, image_path)?;
        let mut env = library_path_env(&libraries);
        if image == BuiltIn::Nettools {
            env.push(add_xtables_targets(&mut rootfs, &libraries)?);
        }
        Ok(Recipe {
            image,
            rootfs,
            entrypoint: match image {
                // memcached refuses to run as root unless told to, and a scratch image
                // has no other user.
                BuiltIn::Memcached => vec![image_path.to_string(), "-u".into(), "root".into()],
                _ => vec![image_path.to_string()],
            },
            env,
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
            "LABEL {IMAGE_LABEL}={} {CONTENT_HASH_LABEL}={}\n",
            quote(self.image.name()),
            quote(content_hash)
        ));
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
    let Entry::File { data, .. } = &rootfs.entries[image_path] else {
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
    rootfs.add_host_file(
        BuiltIn::Nettools,
        &format!("{dir_text}/libxt_standard.so"),
        &dir.join("libxt_standard.so"),
    )?;
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

/// Where a demo service binary (`session-app`) may be, in order: beside the running
/// executable, then one directory up (test binaries live in `target/<profile>/deps/`, the
/// app in `target/<profile>/`).
pub(crate) fn app_candidates(binary: &str, current_exe: &Path) -> Vec<PathBuf> {
    let file = format!("{binary}{}", std::env::consts::EXE_SUFFIX);
    let mut out = Vec::new();
    if let Some(dir) = current_exe.parent() {
        out.push(dir.join(&file));
        if let Some(parent) = dir.parent() {
            out.push(parent.join(&file));
        }
    }
    out
}

/// Finds the binary of a demo service built in this workspace: the path in its environment
/// variable (`SESSIONSTORM_APP_BIN`) when set, and then only there, else the first of
/// [`app_candidates`] that is an executable file.
pub(crate) fn locate_app(
    image: BuiltIn,
    env_override: Option<PathBuf>,
    current_exe: Option<&Path>,
) -> Result<PathBuf, ImageError> {
    let (binary, env) = image
        .workspace_binary()
        .expect("only images built from this workspace have an app binary");
    if let Some(path) = env_override {
        return if is_executable_file(&path) {
            Ok(path)
        } else {
            Err(ImageError::AppBinaryFromEnv { binary, env, path })
        };
    }
    let searched = current_exe
        .map(|exe| app_candidates(binary, exe))
        .unwrap_or_default();
    searched
        .iter()
        .find(|path| is_executable_file(path))
        .cloned()
        .ok_or(ImageError::AppBinaryNotFound {
            binary,
            env,
            searched,
        })
}

/// Directories of `PATH` in order, then `fallbacks`, each joined with `name`, without repeats.
pub(crate) fn host_candidates(
    name: &str,
    path_var: Option<&OsStr>,
    fallbacks: &[&str],
) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let from_path = path_var
        .map(|var| std::env::split_paths(var).collect::<Vec<_>>())
        .unwrap_or_default();
    let dirs = from_path
        .into_iter()
        .filter(|dir| !dir.as_os_str().is_empty())
        .chain(fallbacks.iter().map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if !out.contains(&candidate) {
            out.push(candidate);
        }
    }
    out
}

/// Finds a host binary for `image`; `package` is the Debian package that installs it.
pub(crate) fn locate_host_binary(
    image: BuiltIn,
    name: &'static str,
    package: &'static str,
    fallbacks: &[&str],
) -> Result<PathBuf, ImageError> {
    let path_var = std::env::var_os("PATH");
    host_candidates(name, path_var.as_deref(), fallbacks)
        .into_iter()
        .find(|path| is_executable_file(path))
        .ok_or(ImageError::HostBinaryNotFound {
            image,
            binary: name,
            package,
        })
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// How a binary is linked, as `ldd` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Linkage {
    /// Nothing to copy but the binary.
    Static,
    /// Files to copy (libraries and the interpreter), in `ldd`'s order; no vDSO.
    Dynamic(Vec<PathBuf>),
}

/// Why `ldd`'s answer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LddProblem {
    /// Libraries the binary needs that the host does not have.
    NotFound(Vec<String>),
    /// A line this parser does not understand (an `ldd:` error, say).
    Unrecognized(String),
}

/// Parses the output (stdout and stderr together) of `ldd BINARY`.
///
/// Understood lines: `name => /path (0x…)`, `/path (0x…)` (the interpreter),
/// `linux-vdso.so.1 (0x…)` and `name =>  (0x…)` (no file: skipped), `name => not found`,
/// `not a dynamic executable` / `statically linked`, and a `binary:` header.
pub(crate) fn parse_ldd(output: &str) -> Result<Linkage, LddProblem> {
    let mut libraries = Vec::new();
    let mut missing = Vec::new();
    let mut is_static = false;
    for raw in output.lines() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if line == "not a dynamic executable" || line == "statically linked" {
            is_static = true;
            continue;
        }
        if let Some((name, target)) = line.split_once("=>") {
            let (name, target) = (name.trim(), strip_address(target.trim()));
            if target.starts_with("not found") {
                missing.push(name.to_string());
            } else if target.starts_with('/') {
                libraries.push(PathBuf::from(target));
            } else if !target.is_empty() {
                return Err(LddProblem::Unrecognized(line.to_string()));
            }
            continue;
        }
        let Some((name, _)) = line.rsplit_once(" (0x") else {
            if line.ends_with(':') && !line.starts_with("ldd:") {
                continue; // "path:" header when ldd lists several files
            }
            return Err(LddProblem::Unrecognized(line.to_string()));
        };
        if name.starts_with('/') {
            libraries.push(PathBuf::from(name));
        }
        // else: the vDSO (`linux-vdso.so.1`, `linux-gate.so.1`), which has no file.
    }
    if !missing.is_empty() {
        return Err(LddProblem::NotFound(missing));
    }
    if is_static && libraries.is_empty() {
        Ok(Linkage::Static)
    } else {
        Ok(Linkage::Dynamic(libraries))
    }
}

/// `/lib/libc.so.6 (0x00007f…)` → `/lib/libc.so.6`.
fn strip_address(target: &str) -> &str {
    match target.rsplit_once(" (0x") {
        Some((path, _)) => path.trim(),
        None if target.starts_with("(0x") => "",
        None => target,
    }
}

fn run_ldd(binary: &Path) -> Result<Linkage, ImageError> {
    let output =
        Command::new("ldd")
            .arg(binary)
            .output()
            .map_err(|source| ImageError::LddUnavailable {
                binary: binary.to_path_buf(),
                source,
            })?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    match parse_ldd(&text) {
        Ok(linkage) => Ok(linkage),
        Err(LddProblem::NotFound(libraries)) => Err(ImageError::MissingLibraries {
            binary: binary.to_path_buf(),
            libraries,
        }),
        Err(LddProblem::Unrecognized(_)) => Err(ImageError::LddOutput {
            binary: binary.to_path_buf(),
            output: text.trim().to_string(),
        }),
    }
}

/// The program interpreter (`PT_INTERP`) named in an ELF file, e.g.
/// `/lib64/ld-linux-x86-64.so.2`; `None` for static binaries and non-ELF data.
pub(crate) fn elf_interpreter(elf: &[u8]) -> Option<PathBuf> {
    const PT_INTERP: u32 = 3;
    if !elf.starts_with(b"\x7fELF") || elf.len() < 0x34 {
        return None;
    }
    let little = match elf[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let read = |at: usize, len: usize| -> Option<u64> {
        let bytes = elf.get(at..at.checked_add(len)?)?;
        let mut value = 0u64;
        for i in 0..len {
            let byte = if little { bytes[len - 1 - i] } else { bytes[i] };
            value = (value << 8) | u64::from(byte);
        }
        Some(value)
    };
    // (e_phoff, e_phentsize, e_phnum) and (p_offset, p_filesz) offsets per ELF class.
    let (phoff, phentsize, phnum, word, p_offset, p_filesz) = match elf[4] {
        1 => (
            read(0x1c, 4)?,
            read(0x2a, 2)?,
            read(0x2c, 2)?,
            4,
            0x04,
            0x10,
        ),
        2 => (
            read(0x20, 8)?,
            read(0x36, 2)?,
            read(0x38, 2)?,
            8,
            0x08,
            0x20,
        ),
        _ => return None,
    };
    for i in 0..phnum {
        let header = usize::try_from(phoff.checked_add(i.checked_mul(phentsize)?)?).ok()?;
        if read(header, 4)? != u64::from(PT_INTERP) {
            continue;
        }
        let offset = usize::try_from(read(header + p_offset, word)?).ok()?;
        let size = usize::try_from(read(header + p_filesz, word)?).ok()?;
        let bytes = elf.get(offset..offset.checked_add(size)?)?;
        let name = bytes.split(|b| *b == 0).next()?;
        return Some(PathBuf::from(std::str::from_utf8(name).ok()?));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const LDD_REDIS: &str = "\tlinux-vdso.so.1 (0x00007f684911c000)
\tlibatomic.so.1 => /lib/x86_64-linux-gnu/libatomic.so.1 (0x00007f6849101000)
\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f6848d20000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f68486a5000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f684911e000)
\tlibcap.so.2 => /lib/x86_64-linux-gnu/libcap.so.2 (0x00007f68490cb000)
";

    #[test]
    fn ldd_dynamic_binary_lists_libraries_and_interpreter_but_not_the_vdso() {
        let linkage = parse_ldd(LDD_REDIS).unwrap();
        let expected: Vec<PathBuf> = [
            "/lib/x86_64-linux-gnu/libatomic.so.1",
            "/lib/x86_64-linux-gnu/libm.so.6",
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib64/ld-linux-x86-64.so.2",
            "/lib/x86_64-linux-gnu/libcap.so.2",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(linkage, Linkage::Dynamic(expected));
    }

    #[test]
    fn ldd_old_vdso_format_and_header_are_skipped() {
        let out = "/usr/bin/x:\n\tlinux-gate.so.1 =>  (0xb7fd8000)\n\tlibc.so.6 => /lib/libc.so.6 (0xb7e00000)\n";
        assert_eq!(
            parse_ldd(out).unwrap(),
            Linkage::Dynamic(vec![PathBuf::from("/lib/libc.so.6")])
        );
    }

    #[test]
    fn ldd_static_binary_needs_nothing_but_itself() {
        assert_eq!(
            parse_ldd("\tnot a dynamic executable\n").unwrap(),
            Linkage::Static
        );
        assert_eq!(parse_ldd("\tstatically linked\n").unwrap(), Linkage::Static);
    }

    #[test]
    fn ldd_not_found_names_every_missing_library() {
        let out = format!("{LDD_REDIS}\tlibfoo.so.1 => not found\n\tlibbar.so.2 => not found\n");
        assert_eq!(
            parse_ldd(&out),
            Err(LddProblem::NotFound(vec![
                "libfoo.so.1".into(),
                "libbar.so.2".into()
            ]))
        );
        let err = ImageError::MissingLibraries {
            binary: "/usr/bin/x".into(),
            libraries: vec!["libfoo.so.1".into(), "libbar.so.2".into()],
        };
        let message = err.to_string();
        assert!(message.contains("libfoo.so.1, libbar.so.2"), "{message}");
        assert!(message.contains("/usr/bin/x"), "{message}");
    }

    #[test]
    fn ldd_errors_are_not_mistaken_for_libraries() {
        let out = "ldd: /nope: No such file or directory\n";
        assert_eq!(
            parse_ldd(out),
            Err(LddProblem::Unrecognized(out.trim().to_string()))
        );
    }

    #[test]
    fn ldd_on_this_test_binary_finds_libc() {
        let exe = std::env::current_exe().unwrap();
        match run_ldd(&exe).unwrap() {
            Linkage::Dynamic(libs) => assert!(
                libs.iter().any(|l| l.to_string_lossy().contains("libc.so")),
                "{libs:?}"
            ),
            Linkage::Static => {} // a static test build is fine too
        }
    }

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
            let Entry::File { mode, .. } = &fs.entries[interp.to_str().unwrap()] else {
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

    #[test]
    fn elf_interpreter_of_this_test_binary_is_an_existing_absolute_path() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        if let Some(interp) = elf_interpreter(&exe) {
            assert!(interp.is_absolute(), "{interp:?}");
            assert!(interp.exists(), "{interp:?}");
        }
    }

    #[test]
    fn elf_interpreter_of_a_hand_made_elf64() {
        // ELF header (64 bytes) + one program header (56 bytes) + the interpreter string.
        let interp = b"/lib/ld-test.so.1\0";
        let mut elf = vec![0u8; 64 + 56];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2; // 64-bit
        elf[5] = 1; // little-endian
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        elf[64..68].copy_from_slice(&3u32.to_le_bytes()); // PT_INTERP
        elf[64 + 8..64 + 16].copy_from_slice(&120u64.to_le_bytes()); // p_offset
        elf[64 + 32..64 + 40].copy_from_slice(&(interp.len() as u64).to_le_bytes()); // p_filesz
        elf.extend_from_slice(interp);
        assert_eq!(
            elf_interpreter(&elf),
            Some(PathBuf::from("/lib/ld-test.so.1"))
        );

        elf[64] = 1; // PT_LOAD: no interpreter any more
        assert_eq!(elf_interpreter(&elf), None);
        assert_eq!(elf_interpreter(b"#!/bin/sh\necho hi\n"), None);
        assert_eq!(elf_interpreter(b"\x7fELF"), None);
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

        let mut changed = fake_recipe();
        changed.rootfs.add_file(
            "/lib/x86_64-linux-gnu/libc.so.6",
            b"fake libC".to_vec(),
            0o644,
        );
        assert_ne!(changed.content_hash(), hash, "file bytes");

        let mut changed = fake_recipe();
        changed.rootfs.add_file(
            "/lib/x86_64-linux-gnu/libc.so.6",
            b"fake libc".to_vec(),
            0o755,
        );
        assert_ne!(changed.content_hash(), hash, "file mode");

        let mut changed = fake_recipe();
        changed.rootfs.add_file(
            "/lib/x86_64-linux-gnu/libd.so.6",
            b"fake libc".to_vec(),
            0o644,
        );
        assert_ne!(changed.content_hash(), hash, "extra file");

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

    fn executable(path: &Path) {
        std::fs::write(path, b"\x7fELF").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn app_is_looked_for_beside_the_executable_then_one_level_up() {
        let exe = Path::new("/w/target/debug/deps/images-0123abcd");
        assert_eq!(
            app_candidates("session-app", exe),
            vec![
                PathBuf::from("/w/target/debug/deps/session-app"),
                PathBuf::from("/w/target/debug/session-app"),
            ]
        );
    }

    #[test]
    fn app_lookup_finds_the_binary_in_the_profile_dir() {
        let dir = tempfile::tempdir().unwrap();
        let deps = dir.path().join("debug/deps");
        std::fs::create_dir_all(&deps).unwrap();
        let exe = deps.join("images-0123");
        let app = dir.path().join("debug/session-app");

        let err = locate_app(BuiltIn::SessionApp, None, Some(&exe)).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("cargo build --workspace"), "{message}");
        assert!(message.contains("cargo build -p session-app"), "{message}");
        assert!(message.contains(&app.display().to_string()), "{message}");

        executable(&app);
        assert_eq!(
            locate_app(BuiltIn::SessionApp, None, Some(&exe)).unwrap(),
            app
        );

        let beside = deps.join("session-app");
        executable(&beside);
        assert_eq!(
            locate_app(BuiltIn::SessionApp, None, Some(&exe)).unwrap(),
            beside,
            "beside wins"
        );
    }

    #[test]
    fn app_lookup_env_override_is_used_alone() {
        let dir = tempfile::tempdir().unwrap();
        let custom = dir.path().join("my-app");
        let exe = dir.path().join("sessionstorm");
        executable(&dir.path().join("session-app")); // would be found without the override

        let err = locate_app(BuiltIn::SessionApp, Some(custom.clone()), Some(&exe)).unwrap_err();
        let message = err.to_string();
        assert!(message.contains(super::super::APP_BIN_ENV), "{message}");
        assert!(message.contains(&custom.display().to_string()), "{message}");

        executable(&custom);
        assert_eq!(
            locate_app(BuiltIn::SessionApp, Some(custom.clone()), Some(&exe)).unwrap(),
            custom
        );
    }

    #[test]
    fn host_binaries_are_searched_in_path_then_fallbacks() {
        let path = std::env::join_paths(["/opt/bin", "", "/usr/bin"]).unwrap();
        assert_eq!(
            host_candidates("redis-server", Some(&path), &["/usr/bin", "/usr/sbin"]),
            vec![
                PathBuf::from("/opt/bin/redis-server"),
                PathBuf::from("/usr/bin/redis-server"),
                PathBuf::from("/usr/sbin/redis-server"),
            ]
        );
        assert_eq!(
            host_candidates("haproxy", None, &["/usr/sbin"]),
            vec![PathBuf::from("/usr/sbin/haproxy")]
        );
    }

    #[test]
    fn missing_host_binary_names_the_package() {
        let err = ImageError::HostBinaryNotFound {
            image: BuiltIn::Redis,
            binary: "redis-server",
            package: "redis-server",
        };
        let message = err.to_string();
        assert!(
            message.contains("apt-get install redis-server"),
            "{message}"
        );
        assert!(message.contains("sessionstorm/redis"), "{message}");
    }
}
