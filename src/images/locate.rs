//! Where the binaries packed into images are found: a demo service built by cargo in
//! this workspace (or the path in its environment variable), or a host binary from a
//! Debian package, searched in `PATH` and then in the usual directories.
//!
//! Separate so that "which file did it pack, and where else did it look" has one
//! answer, and the errors that name the command to install or build a binary are
//! tested without building anything.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{BuiltIn, ImageError};

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

/// The binary `image` is made of, for an image of a binary built in this workspace:
/// [`locate_app`] with this process's environment and executable.
pub(crate) fn locate_workspace(image: BuiltIn) -> Result<PathBuf, ImageError> {
    let (_, env) = super::workspace_binary(image)
        .expect("only images built from this workspace have an app binary");
    locate_app(
        image,
        std::env::var_os(env).map(PathBuf::from),
        std::env::current_exe().ok().as_deref(),
    )
}

/// Finds the binary of a demo service built in this workspace: the path in its environment
/// variable (`SESSIONSTORM_APP_BIN`) when set, and then only there, else the first of
/// [`app_candidates`] that is an executable file.
pub(crate) fn locate_app(
    image: BuiltIn,
    env_override: Option<PathBuf>,
    current_exe: Option<&Path>,
) -> Result<PathBuf, ImageError> {
    let (binary, env) = super::workspace_binary(image)
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

#[cfg(test)]
mod tests {
    use super::*;

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
