//! The run's reaper: a small container started with every run that cleans up after
//! a harness that died without its teardown (SIGKILL, the OOM killer, a crash).
//!
//! It is the sessionstorm binary itself (`sessionstorm reaper --run ID`, image
//! `sessionstorm/reaper`, built from the host binary like the other helpers), on no
//! network, with the engine's socket mounted. A run that may lower an attached
//! store's `maxmemory` (`[attach] store`) starts it on the host's network instead:
//! the store's address is the one the harness reaches it at, from the engine's host
//! (a published port on 127.0.0.1, a bridge address), and the reaper must set it
//! back from there. Its lifeline is its standard input:
//! the harness attaches to it before starting it, and the container was created to
//! close its input when that one client goes (`stdin_once`). The kernel closes the
//! harness's socket however the harness dies, so the reaper reads the end of its
//! input within milliseconds; no heartbeat, no port, no timeout to tune.
//!
//! Over that input the harness notes every temporary fault it puts on a container
//! it did not make (an attached stack) before applying it, and its release after
//! reverting it ([`crate::cluster::hold`]). A clean end is the line `"bye"`, after
//! teardown: the reaper then just goes. An end without `"bye"` means the harness
//! died: after [`GRACE`] (for Docker calls the harness had in flight), the reaper
//! undoes every hold still open with the harness's own revert code, removes every
//! object labelled with the run, and removes itself. Should anything fail, it stays
//! (exited) so that its log says what, and the next run reports it ([`leftovers`]).
//!
//! Layout: this file is the harness's side ([`Reaper`]), [`watch`] the reaper's own,
//! [`leftovers`] what the next run reports about runs that died.

pub mod leftovers;
pub mod watch;

use std::time::Duration;

use crate::cluster::engine::{
    host_socket, ContainerSpec, Engine, EngineError, SOCKET_IN_CONTAINER,
};
use crate::cluster::hold::{Journal, Note};
use crate::cluster::{run_labels, REAPER_ROLE};
use crate::error::{Error, Result};
use crate::images::{self, BuiltIn};

/// How long the reaper waits after the harness died before it acts, so that a
/// fault the harness had asked Docker for just before is in place to be undone.
pub const GRACE: Duration = Duration::from_secs(1);

/// The reaper's container name for run `run_id`.
pub fn container_name(run_id: &str) -> String {
    format!("sessionstorm-{run_id}-reaper")
}

/// The harness's end of a running reaper.
#[derive(Debug)]
pub struct Reaper {
    engine: Engine,
    name: String,
    journal: Journal,
}

impl Reaper {
    /// Builds the reaper's image if needed and starts the reaper of run `run_id`,
    /// attached before it starts, so it can never miss the harness's end; on the
    /// host's network when it must reach a store (`reaches_store`), else on none.
    /// `None`, with a warning, when the engine is not reached through a local socket.
    pub async fn start(
        engine: &Engine,
        run_id: &str,
        reaches_store: bool,
    ) -> Result<Option<Reaper>> {
        let Some(socket) = host_socket() else {
            eprintln!(
                "warning: no reaper for this run: the Docker engine is not on a local socket \
                 (DOCKER_HOST); if the harness is killed, remove what it leaves with \
                 `sessionstorm cleanup --run {run_id}`"
            );
            return Ok(None);
        };
        images::ensure(engine, BuiltIn::Reaper.tag()).await?;
        let name = container_name(run_id);
        let spec = ContainerSpec {
            name: name.clone(),
            image: BuiltIn::Reaper.tag().to_string(),
            cmd: vec!["--run".into(), run_id.to_string()],
            labels: run_labels(run_id, REAPER_ROLE),
            network: if reaches_store { "host" } else { "none" }.into(),
            binds: vec![format!("{socket}:{SOCKET_IN_CONTAINER}")],
            stdin_once: true,
            ..Default::default()
        };
        let started = async {
            engine.create(&spec).await?;
            let input = engine.attach_stdin(&name).await?;
            engine.start(&name).await?;
            Ok::<_, EngineError>(input)
        }
        .await;
        match started {
            Ok(input) => {
                tracing::info!(container = %name, "reaper started");
                Ok(Some(Reaper {
                    engine: engine.clone(),
                    name,
                    journal: Journal::to(input),
                }))
            }
            Err(err) => {
                let _ = engine.remove(&name).await;
                Err(Error::infra(
                    anyhow::Error::new(err).context("the run's reaper did not start"),
                ))
            }
        }
    }

    /// Where the run notes the holds the reaper must undo should the harness die.
    pub fn journal(&self) -> Journal {
        self.journal.clone()
    }

    /// After teardown: tells the reaper the run ended cleanly and removes it.
    pub async fn dismiss(self) {
        self.journal.note(&Note::Bye).await;
        self.journal.close().await;
        if let Err(err) = self.engine.remove(&self.name).await {
            eprintln!(
                "warning: cannot remove the reaper {} ({err}); `sessionstorm cleanup` removes it",
                self.name
            );
            return;
        }
        // It may be removing itself at the same moment: wait until it is gone.
        for _ in 0..50 {
            if self.engine.inspect(&self.name).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
