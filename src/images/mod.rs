//! Container images built from binaries on the host, because no registry is reachable.
//!
//! sessionstorm knows six images ([`BuiltIn`]): the three demo services (`session-app`,
//! `counter-app` and `actix-app`, built by cargo in this workspace), Redis and HAProxy (both
//! taken from the host's Debian packages), plus images built only on demand: `lib-apps`
//! (demo apps on real session libraries), `nettools` (the host's `iptables`, for the
//! `blackhole` fault), `memcached` (the host's `memcached`, as a session store) and
//! `reaper` (the sessionstorm binary itself, run as `sessionstorm reaper` beside
//! every run: `crate::reaper`).
//! `lib-apps` is a Debian tree made by `debootstrap` with the apps over it ([`debian`]);
//! each of the others is a `FROM scratch` image holding the ELF binary, the shared libraries `ldd` says it
//! links (at the paths `ldd` printed, symlinks resolved to plain files), its ELF interpreter,
//! and a small skeleton (`/etc/passwd`, `/etc/group`, `/etc/nsswitch.conf`, `/tmp`, `/run`).
//!
//! Layout:
//! - this file: the public API ([`build`], [`ensure`], [`list`]), the Docker calls and the
//!   error type;
//! - [`recipe`]: what one image holds and how it starts, its content hash and its build
//!   context, put together from
//!   - [`locate`]: where the binaries are found (cargo's output, or the host's `PATH`),
//!   - [`linkage`]: the shared libraries `ldd` reports and the ELF interpreter,
//!   - [`rootfs`]: the file tree and the skeleton every image gets.
//!
//!   No Docker in those, so they are unit-tested with fake files.
//! - [`debian`]: the `debootstrap` tree of `lib-apps`, its cache and its build context.
//!
//! Every image carries the label `sessionstorm.content-hash`: a sha256 over its files, entry
//! point and a format version. Building first computes the hash from the host files (cheap:
//! a few tens of MB read and hashed) and skips the Docker build when the local image already
//! carries that hash. So a rebuilt `session-app` binary leads to a rebuilt image. The
//! images of binaries built in this workspace (the demo services, the reaper's
//! sessionstorm) also carry a [`stamp`] of their binary (path, size, times, inode):
//! while it matches, nothing is read or hashed, and an unchanged image costs one
//! `stat` and one `inspect`.
//!
//! Images are made with `POST /build` (the classic builder, which engine 20.10 runs without
//! BuildKit) from a context holding a generated `Dockerfile` and `rootfs/`. We prefer it to
//! `POST /images/create?fromSrc=-` (import) because the Dockerfile states label, environment
//! and entry point in the one syntax everybody reads, the build stream reports failures as
//! `errorDetail` messages we can surface, and `--change` on import cannot express everything a
//! Dockerfile can on every engine version.

mod debian;
mod linkage;
mod locate;
mod recipe;
mod rootfs;
mod stamp;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use bollard::errors::Error as DockerError;
use bollard::models::ImageInspect;

use debian::DebianRecipe;
use recipe::Recipe;

use crate::cluster::engine::images::BuildError;
use crate::cluster::engine::Engine;

/// Which images these are is plan data (a scenario names them); building them is this
/// module's job.
pub use crate::plan::BuiltIn;

/// Environment variable that points at the `session-app` binary to pack, instead of the one
/// cargo built beside the running executable.
pub const APP_BIN_ENV: &str = "SESSIONSTORM_APP_BIN";
/// The same for the `counter-app` binary.
pub const COUNTER_APP_BIN_ENV: &str = "SESSIONSTORM_COUNTER_APP_BIN";
/// The same for the `actix-app` binary.
pub const ACTIX_APP_BIN_ENV: &str = "SESSIONSTORM_ACTIX_APP_BIN";
/// The same for the `sessionstorm` binary packed into the reaper's image (by default
/// the running one, or the one beside a test binary).
pub const REAPER_BIN_ENV: &str = "SESSIONSTORM_REAPER_BIN";
/// Label holding the image's name (`sessionstorm/redis`), so `list` can tell ours apart.
pub const IMAGE_LABEL: &str = "sessionstorm.image";
/// Label holding the content hash that decides whether a rebuild is needed.
pub const CONTENT_HASH_LABEL: &str = "sessionstorm.content-hash";
/// Where the harness uploads `haproxy.cfg` before starting the balancer; the directory exists
/// (empty) in the `sessionstorm/haproxy` image.
pub const HAPROXY_CONFIG_PATH: &str = "/usr/local/etc/haproxy/haproxy.cfg";

/// For the images of binaries cargo builds in this workspace (the demo services, and
/// sessionstorm itself for the reaper): the binary's name and the environment
/// variable that may point at it instead.
pub fn workspace_binary(image: BuiltIn) -> Option<(&'static str, &'static str)> {
    match image {
        BuiltIn::SessionApp => Some(("session-app", APP_BIN_ENV)),
        BuiltIn::CounterApp => Some(("counter-app", COUNTER_APP_BIN_ENV)),
        BuiltIn::ActixApp => Some(("actix-app", ACTIX_APP_BIN_ENV)),
        BuiltIn::Reaper => Some(("sessionstorm", REAPER_BIN_ENV)),
        BuiltIn::Redis
        | BuiltIn::Haproxy
        | BuiltIn::Nettools
        | BuiltIn::Memcached
        | BuiltIn::LibApps
        | BuiltIn::Dind => None,
    }
}

/// What [`build`] did for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The image was (re)built.
    Built,
    /// The local image already carries the same content hash.
    Skipped,
}

/// Result of [`build`] for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub image: BuiltIn,
    pub outcome: Outcome,
    /// The `sessionstorm.content-hash` label the image now carries (hex sha256).
    pub content_hash: String,
    /// Total size of the files in the image (binary, libraries, skeleton), in bytes; for
    /// an image made from Debian packages, the image's size as Docker reports it.
    pub bytes: u64,
}

/// A `sessionstorm/*` image present locally, for `sessionstorm images list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// `repository:tag`, e.g. `sessionstorm/redis:latest`.
    pub tag: String,
    /// Docker's image id (`sha256:…`).
    pub id: String,
    /// The `sessionstorm.content-hash` label, if the image has one.
    pub content_hash: Option<String>,
    /// Size as Docker reports it, in bytes.
    pub size: u64,
    /// Creation time, in seconds since the Unix epoch.
    pub created: i64,
}

/// Why an image could not be built or found. Every message names the image or binary and
/// says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "the demo service binary `{binary}` was not found (looked for {}); build it with \
         `cargo build --workspace` (or `cargo build -p {binary}`), or set {env} \
         to its path",
        list_paths(searched)
    )]
    AppBinaryNotFound {
        binary: &'static str,
        env: &'static str,
        searched: Vec<PathBuf>,
    },

    #[error(
        "{env} is set to `{}`, which is not an executable file; point it at the \
         `{binary}` binary (build it with `cargo build -p {binary}`), or unset it to use \
         the one cargo builds beside sessionstorm",
        path.display()
    )]
    AppBinaryFromEnv {
        binary: &'static str,
        env: &'static str,
        path: PathBuf,
    },

    #[error(
        "`{binary}` (needed for image `{image}`) was not found in PATH or the usual \
         directories; install it with `apt-get install {package}`"
    )]
    HostBinaryNotFound {
        image: BuiltIn,
        binary: &'static str,
        package: &'static str,
    },

    #[error(
        "`{}` (for image `{image}`) is not an ELF executable; only native Linux binaries can be \
         packed into an image, so point at the compiled program, not a script or wrapper",
        binary.display()
    )]
    NotElf { image: BuiltIn, binary: PathBuf },

    #[error(
        "could not run `ldd` to find the shared libraries of `{}`; install it with \
         `apt-get install libc-bin`",
        binary.display()
    )]
    LddUnavailable {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "`{}` needs shared libraries this machine does not have: {}; install the packages that \
         provide them (find them with `apt-file search NAME`), then retry",
        binary.display(),
        libraries.join(", ")
    )]
    MissingLibraries {
        binary: PathBuf,
        libraries: Vec<String>,
    },

    #[error(
        "could not understand what `ldd {}` printed, so its shared libraries are unknown; check \
         that the file is an executable for this machine (try running it). ldd said:\n{output}",
        binary.display()
    )]
    LddOutput { binary: PathBuf, output: String },

    #[error(
        "could not read `{}` to put it into image `{image}`; check that it exists and is readable",
        path.display()
    )]
    Read {
        image: BuiltIn,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "debootstrap could not make the Debian tree of image `{image}` ({status}); it must run \
         as root and reach the Debian mirror debootstrap downloads from by default, and it needs about 500 MB of \
         free disk{}",
        if log.is_empty() { String::new() } else { format!("; its last output:\n{log}") }
    )]
    Debootstrap {
        image: BuiltIn,
        status: String,
        log: String,
    },

    #[error(
        "could not write the Debian tree cache of image `{image}` at `{}`; check the disk and \
         the permissions there (set XDG_CACHE_HOME to use another folder)",
        path.display()
    )]
    Cache {
        image: BuiltIn,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("could not pack the build context of image `{image}`; check free memory and retry")]
    Pack {
        image: BuiltIn,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "Docker could not {op} image `{image}`; check that the engine is running and reachable \
         (`docker info`)"
    )]
    Docker {
        op: &'static str,
        image: String,
        #[source]
        source: DockerError,
    },

    #[error(
        "docker build of `{image}` failed: {message}; retry with `sessionstorm images build \
         --force`, and check the engine's free disk space with `docker system df`{}",
        if log.is_empty() { String::new() } else { format!("\nbuild output:\n{log}") }
    )]
    BuildFailed {
        image: BuiltIn,
        message: String,
        log: String,
    },

    #[error(
        "image `{image}` is not available locally and cannot be pulled (this machine has no \
         container registry); check the name with `docker images`, load it from a file with \
         `docker load -i FILE.tar`, or use an image sessionstorm builds itself ({})",
        BuiltIn::ALL.map(BuiltIn::name).join(", ")
    )]
    Missing { image: String },
}

fn list_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "nowhere: the running executable's path is unknown".to_string();
    }
    paths
        .iter()
        .map(|path| format!("`{}`", path.display()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds (or skips) the given images, in order; a repeated image is handled once.
/// `force` rebuilds even when the content hash is unchanged (and bypasses the build cache).
pub async fn build(
    engine: &Engine,
    images: &[BuiltIn],
    force: bool,
) -> Result<Vec<Built>, ImageError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for &image in images {
        if seen.insert(image) {
            out.push(build_one(engine, image, force).await?);
        }
    }
    Ok(out)
}

/// Makes sure `tag` exists locally: builds it when it is one of ours and missing or stale;
/// for any other image, succeeds if present locally, else [`ImageError::Missing`] naming the
/// image and saying it cannot be pulled (no registry).
///
/// If one of our images exists but the binary it is made from cannot be found on this host,
/// the existing image is used as it is (with a warning): staleness cannot be judged then.
pub async fn ensure(engine: &Engine, tag: &str) -> Result<(), ImageError> {
    if let Some(image) = BuiltIn::from_tag(tag) {
        return match build_one(engine, image, false).await {
            Ok(_) => Ok(()),
            // Without its source binary we cannot tell whether a local image is stale, but
            // one that is there (loaded with `docker load`, say) is better than failing.
            Err(
                err
                @ (ImageError::AppBinaryNotFound { .. } | ImageError::HostBinaryNotFound { .. }),
            ) => match inspect(engine, image.tag()).await? {
                Some(_) => {
                    tracing::warn!(%image, "using the local image as it is: {err}");
                    Ok(())
                }
                None => Err(err),
            },
            Err(err) => Err(err),
        };
    }
    match inspect(engine, tag).await? {
        Some(_) => Ok(()),
        None => Err(ImageError::Missing {
            image: tag.to_string(),
        }),
    }
}

/// Lists the `sessionstorm/*` images present locally, one entry per tag, sorted by tag.
pub async fn list(engine: &Engine) -> Result<Vec<ImageInfo>, ImageError> {
    let summaries =
        (engine.images("sessionstorm/*").await).map_err(|source| ImageError::Docker {
            op: "list",
            image: "sessionstorm/*".to_string(),
            source,
        })?;
    let mut out: Vec<ImageInfo> = summaries
        .into_iter()
        .flat_map(|summary| {
            let tags: Vec<String> = summary
                .repo_tags
                .iter()
                .filter(|tag| tag.starts_with("sessionstorm/"))
                .cloned()
                .collect();
            tags.into_iter().map(move |tag| ImageInfo {
                tag,
                id: summary.id.clone(),
                content_hash: summary.labels.get(CONTENT_HASH_LABEL).cloned(),
                size: u64::try_from(summary.size).unwrap_or(0),
                created: summary.created,
            })
        })
        .collect();
    out.sort_by(|a, b| a.tag.cmp(&b.tag));
    Ok(out)
}

/// How an image's files are gathered: host binaries with their libraries, or a Debian
/// tree with app files over it.
enum Source {
    Binaries(Recipe),
    Debian(DebianRecipe),
}

impl Source {
    fn for_image(image: BuiltIn) -> Result<Source, ImageError> {
        match image {
            BuiltIn::LibApps | BuiltIn::Dind => Ok(Source::Debian(DebianRecipe::for_image(image))),
            _ => Recipe::for_image(image).map(Source::Binaries),
        }
    }

    fn content_hash(&self) -> String {
        match self {
            Source::Binaries(recipe) => recipe.content_hash(),
            Source::Debian(recipe) => recipe.content_hash(),
        }
    }

    /// The size of the files, when known before building (not for a Debian tree).
    fn file_bytes(&self) -> Option<u64> {
        match self {
            Source::Binaries(recipe) => Some(recipe.rootfs.file_bytes()),
            Source::Debian(_) => None,
        }
    }

    /// The build context; for a Debian image, makes the tree first unless it is cached.
    fn context_tar(&self, image: BuiltIn, content_hash: &str) -> Result<Vec<u8>, ImageError> {
        let pack_err = |source| ImageError::Pack { image, source };
        match self {
            Source::Binaries(recipe) => recipe.context_tar(content_hash).map_err(pack_err),
            Source::Debian(recipe) => {
                let tree = recipe.tree()?;
                recipe.context_tar(content_hash, &tree).map_err(pack_err)
            }
        }
    }
}

async fn build_one(engine: &Engine, image: BuiltIn, force: bool) -> Result<Built, ImageError> {
    let started = Instant::now();
    let existing = inspect(engine, image.tag()).await?;
    if !force && workspace_binary(image).is_some() {
        let stamp = blocking(move || {
            let binary = locate::locate_workspace(image).ok()?;
            stamp::of(&binary, recipe::FORMAT_VERSION).ok()
        })
        .await;
        let current = existing.as_ref().zip(stamp.as_deref());
        if let Some(hash) = current.and_then(|(found, stamp)| stamped_hash(found, stamp)) {
            tracing::info!(%image, elapsed = ?started.elapsed(), "image up to date (stamp), build skipped");
            return Ok(Built {
                image,
                outcome: Outcome::Skipped,
                content_hash: hash.to_string(),
                bytes: (existing.as_ref())
                    .and_then(|found| u64::try_from(found.size?).ok())
                    .unwrap_or(0),
            });
        }
    }
    let recipe = blocking(move || Source::for_image(image)).await?;
    let content_hash = recipe.content_hash();
    let file_bytes = recipe.file_bytes();
    let built = |outcome, inspected: Option<&ImageInspect>| Built {
        image,
        outcome,
        content_hash: content_hash.clone(),
        bytes: file_bytes
            .or_else(|| u64::try_from(inspected?.size?).ok())
            .unwrap_or(0),
    };
    if !force && existing.as_ref().and_then(hash_label) == Some(content_hash.as_str()) {
        tracing::info!(%image, elapsed = ?started.elapsed(), "image up to date, build skipped");
        return Ok(built(Outcome::Skipped, existing.as_ref()));
    }

    let hash = content_hash.clone();
    let context = blocking(move || recipe.context_tar(image, &hash)).await?;
    tracing::info!(%image, context_bytes = context.len(), force, "building image");
    run_build(engine, image, context, force).await?;

    let new = inspect(engine, image.tag()).await?;
    if new.as_ref().and_then(hash_label) != Some(content_hash.as_str()) {
        return Err(ImageError::BuildFailed {
            image,
            message: "the build finished but the tagged image does not carry the new content \
                      hash"
                .to_string(),
            log: String::new(),
        });
    }
    let old_id = existing.and_then(|old| old.id);
    let new_id = new.as_ref().and_then(|new| new.id.clone());
    if let Some(old_id) = old_id.filter(|old| Some(old) != new_id.as_ref()) {
        remove_stale(engine, image, &old_id).await;
    }
    tracing::info!(%image, elapsed = ?started.elapsed(), "image built");
    Ok(built(Outcome::Built, new.as_ref()))
}

/// Sends the context to `POST /build` and drains the progress stream. An
/// `errorDetail` in the stream becomes [`ImageError::BuildFailed`] with the last lines
/// of build output for context.
async fn run_build(
    engine: &Engine,
    image: BuiltIn,
    context: Vec<u8>,
    force: bool,
) -> Result<(), ImageError> {
    const KEEP_LINES: usize = 20;
    let mut log: Vec<String> = Vec::new();
    let keep = |line: &str| {
        let line = line.trim_end();
        if !line.is_empty() {
            tracing::debug!(%image, "{line}");
            if log.len() == KEEP_LINES {
                log.remove(0);
            }
            log.push(line.to_string());
        }
    };
    match engine.build_image(image.tag(), context, force, keep).await {
        Ok(()) => Ok(()),
        Err(BuildError::Failed(message)) => Err(ImageError::BuildFailed {
            image,
            message,
            log: log.join("\n"),
        }),
        Err(BuildError::Call(source)) => Err(ImageError::Docker {
            op: "build",
            image: image.tag().to_string(),
            source,
        }),
    }
}

/// Removes the image a rebuild replaced, so rebuilds don't pile up `<none>` images. Best
/// effort: it may still be used by a container, which is fine.
async fn remove_stale(engine: &Engine, image: BuiltIn, old_id: &str) {
    match engine.remove_image(old_id).await {
        Ok(_) => tracing::debug!(%image, old_id, "removed the replaced image"),
        Err(err) => tracing::debug!(%image, old_id, %err, "kept the replaced image"),
    }
}

/// `inspect_image`, with "no such image" as `None`.
async fn inspect(engine: &Engine, tag: &str) -> Result<Option<ImageInspect>, ImageError> {
    engine
        .image(tag)
        .await
        .map_err(|source| ImageError::Docker {
            op: "inspect",
            image: tag.to_string(),
            source,
        })
}

fn hash_label(image: &ImageInspect) -> Option<&str> {
    label(image, CONTENT_HASH_LABEL)
}

fn label<'a>(image: &'a ImageInspect, name: &str) -> Option<&'a str> {
    image
        .config
        .as_ref()?
        .labels
        .as_ref()?
        .get(name)
        .map(String::as_str)
}

/// The content hash of `image` when it was built from the binary whose stamp is
/// `stamp` now: up to date without reading the binary.
fn stamped_hash<'a>(image: &'a ImageInspect, stamp: &str) -> Option<&'a str> {
    (label(image, stamp::STAMP_LABEL) == Some(stamp))
        .then(|| hash_label(image))
        .flatten()
}

/// Runs file reading, `ldd` and hashing off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => panic!("image preparation was cancelled: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image as `inspect` shows it, with these labels.
    fn inspected(labels: &[(&str, &str)]) -> ImageInspect {
        ImageInspect {
            config: Some(bollard::models::ImageConfig {
                labels: Some(
                    (labels.iter())
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The reaper's image is skipped unread while its binary's stamp holds, and
    /// goes back to the content hash once the binary is written again.
    #[test]
    fn an_image_is_up_to_date_by_stamp_only_while_its_binary_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("sessionstorm");
        std::fs::write(&binary, b"\x7fELF build one").unwrap();
        let built = stamp::of(&binary, recipe::FORMAT_VERSION).unwrap();
        let image = inspected(&[(CONTENT_HASH_LABEL, "abc"), (stamp::STAMP_LABEL, &built)]);
        assert_eq!(
            stamped_hash(&image, &stamp::of(&binary, recipe::FORMAT_VERSION).unwrap()),
            Some("abc")
        );

        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&binary, b"\x7fELF build two").unwrap();
        assert_eq!(
            stamped_hash(&image, &stamp::of(&binary, recipe::FORMAT_VERSION).unwrap()),
            None,
            "rebuilt binary"
        );
        // An image from before stamps, or without a content hash, is never up to date by stamp.
        let old = inspected(&[(CONTENT_HASH_LABEL, "abc")]);
        assert_eq!(stamped_hash(&old, &built), None);
        let unhashed = inspected(&[(stamp::STAMP_LABEL, &built)]);
        assert_eq!(stamped_hash(&unhashed, &built), None);
    }

    #[test]
    fn tags_round_trip_with_and_without_latest() {
        for image in BuiltIn::ALL {
            assert_eq!(BuiltIn::from_tag(image.tag()), Some(image));
            assert_eq!(BuiltIn::from_tag(image.name()), Some(image));
            assert!(image.tag().ends_with(":latest"));
            assert_eq!(image.to_string(), image.tag());
        }
        assert_eq!(BuiltIn::SessionApp.tag(), "sessionstorm/session-app:latest");
        assert_eq!(BuiltIn::Redis.name(), "sessionstorm/redis");
        assert_eq!(
            BuiltIn::from_tag("docker.io/sessionstorm/haproxy"),
            Some(BuiltIn::Haproxy)
        );
        assert_eq!(BuiltIn::from_tag("sessionstorm/redis:7"), None);
        assert_eq!(BuiltIn::from_tag("redis:latest"), None);
        assert_eq!(BuiltIn::from_tag("sessionstorm/redis-extra"), None);
    }

    #[test]
    fn missing_image_says_it_cannot_be_pulled_and_what_to_do() {
        let message = ImageError::Missing {
            image: "redis:7-alpine".to_string(),
        }
        .to_string();
        assert!(message.contains("`redis:7-alpine`"), "{message}");
        assert!(message.contains("cannot be pulled"), "{message}");
        assert!(message.contains("docker load"), "{message}");
        assert!(message.contains("docker images"), "{message}");
        assert!(message.contains("sessionstorm/redis"), "{message}");
    }

    #[test]
    fn build_failure_includes_the_build_output() {
        let message = ImageError::BuildFailed {
            image: BuiltIn::Redis,
            message: "no space left on device".to_string(),
            log: "Step 1/4 : FROM scratch".to_string(),
        }
        .to_string();
        assert!(message.contains("sessionstorm/redis:latest"), "{message}");
        assert!(message.contains("no space left on device"), "{message}");
        assert!(
            message.ends_with("build output:\nStep 1/4 : FROM scratch"),
            "{message}"
        );
    }
}
