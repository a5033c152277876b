//! Temporary faults on containers the harness did not make, as data: what holds a
//! container (or an attached stack's store) and what undoes it, and the [`Journal`]
//! they are noted in.
//!
//! The attached cluster notes each hold before applying it and its release after
//! reverting it. The notes go to the run's reaper (`crate::reaper`), which keeps
//! the holds still open; should the harness die, it undoes them with
//! [`Hold::undo`], the same code the harness's own reverts run. Noting before
//! applying means a harness killed between the two leaves the reaper undoing a
//! fault that never took hold, which every undo here takes as done.

use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::engine::{Engine, EngineError};
use super::limits::{self, Limits};
use super::netns::{self, Shaping};

/// A network a container was on, to put it back as it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub network: String,
    pub aliases: Vec<String>,
    pub ip: Option<String>,
}

/// A temporary fault holding a container (addressed by id), and so what undoes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Hold {
    /// Frozen by `pause`: unpaused.
    Paused { container: String },
    /// Taken off these networks by `disconnect`: connected again under the same
    /// aliases, at the same address where the network allows it.
    Detached {
        container: String,
        endpoints: Vec<Endpoint>,
    },
    /// Its traffic changed by `blackhole`, `loss` or `bandwidth`: the change undone
    /// (the rules deleted, the qdisc removed).
    Shaped { container: String, shaping: Shaping },
    /// Its CPU (`cpu`) or memory (`oom`) limits changed: the ones it had put back.
    Limited {
        container: String,
        was: Limits,
        cpu: bool,
    },
    /// Killed or stopped: started again unless it runs (Docker may have restarted it
    /// by its restart policy).
    Down { container: String },
    /// An attached stack's Redis at `store` (`host:port`, as the harness reaches it)
    /// with its `maxmemory` lowered by `memory_pressure`: set back to `was`, the
    /// value it had before (0: none).
    StoreMemory { store: String, was: u64 },
}

impl Hold {
    /// What is held: a container's id, or the store's address.
    pub fn subject(&self) -> &str {
        match self {
            Hold::Paused { container }
            | Hold::Detached { container, .. }
            | Hold::Shaped { container, .. }
            | Hold::Limited { container, .. }
            | Hold::Down { container } => container,
            Hold::StoreMemory { store, .. } => store,
        }
    }

    /// Whether `other` releases this hold: the same kind of fault on the same
    /// container (for shaping, the same change; for limits, the same resource: a
    /// container may hold a loss and a rate limit, or a CPU and a memory limit, at once).
    pub fn released_by(&self, other: &Hold) -> bool {
        let same_kind = match (self, other) {
            (Hold::Shaped { shaping: a, .. }, Hold::Shaped { shaping: b, .. }) => a == b,
            (Hold::Limited { cpu: a, .. }, Hold::Limited { cpu: b, .. }) => a == b,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        };
        same_kind && self.subject() == other.subject()
    }

    /// Undoes the hold for run `run_id`. A shaping's revert runs a short-lived
    /// helper container labelled with the run (nothing unlabelled is ever made).
    pub async fn undo(&self, engine: &Engine, run_id: &str) -> Result<(), EngineError> {
        match self {
            Hold::Paused { container } => engine.unpause(container).await,
            Hold::Detached {
                container,
                endpoints,
            } => {
                for endpoint in endpoints {
                    engine
                        .connect_network(
                            &endpoint.network,
                            container,
                            &endpoint.aliases,
                            endpoint.ip.as_deref(),
                        )
                        .await?;
                }
                Ok(())
            }
            Hold::Shaped { container, shaping } => {
                let helper = format!(
                    "sessionstorm-{run_id}-nettools-off-{:08x}",
                    rand::random::<u32>()
                );
                let labels = super::run_labels(run_id, "helper");
                netns::shape(engine, &helper, labels, container, *shaping, false).await
            }
            Hold::Limited {
                container,
                was,
                cpu: true,
            } => limits::restore_cpu(engine, container, *was).await,
            Hold::Limited {
                container,
                was,
                cpu: false,
            } => limits::restore_memory(engine, container, *was).await,
            Hold::Down { container } => {
                if engine.is_running(container).await? {
                    Ok(())
                } else {
                    engine.start(container).await
                }
            }
            Hold::StoreMemory { store, was } => {
                crate::store::resp::config_set(store, "maxmemory", &was.to_string())
                    .await
                    .map_err(|why| {
                        EngineError::State(format!("cannot set the store's maxmemory back: {why}"))
                    })
            }
        }
    }
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Note {
    /// A fault is about to hold a container.
    Hold(Hold),
    /// That fault was reverted.
    Release(Hold),
    /// The harness tore down and reverted everything itself: nothing is left to undo.
    Bye,
}

impl Note {
    /// The note as one JSON line.
    pub fn line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("a note always serialises");
        line.push('\n');
        line
    }
}

type Sink = Pin<Box<dyn AsyncWrite + Send>>;

/// Where holds are noted: the reaper's standard input, or nowhere (no reaper).
/// Each note is written and flushed before the fault it announces is applied.
#[derive(Clone, Default)]
pub struct Journal(Option<Arc<tokio::sync::Mutex<Option<Sink>>>>);

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Journal(reaper)"
        } else {
            "Journal(none)"
        })
    }
}

impl Journal {
    pub fn to(sink: Sink) -> Journal {
        Journal(Some(Arc::new(tokio::sync::Mutex::new(Some(sink)))))
    }

    /// Writes one note. A reaper that cannot be told is a warning, never a failed
    /// fault: the run goes on, only without its safety net for that fault.
    pub async fn note(&self, note: &Note) {
        let Some(sink) = &self.0 else { return };
        let mut sink = sink.lock().await;
        let Some(writer) = sink.as_mut() else { return };
        let line = note.line();
        let written = async {
            writer.write_all(line.as_bytes()).await?;
            writer.flush().await
        };
        if let Err(err) = written.await {
            tracing::warn!(%err, note = line.trim_end(), "cannot tell the reaper");
            *sink = None;
        }
    }

    /// Ends the journal: the reaper reads the end of its input.
    pub async fn close(&self) {
        let Some(sink) = &self.0 else { return };
        if let Some(mut writer) = sink.lock().await.take() {
            let _ = writer.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_one_json_line_each_and_read_back() {
        let notes = [
            Note::Hold(Hold::Detached {
                container: "abc".into(),
                endpoints: vec![Endpoint {
                    network: "shop_default".into(),
                    aliases: vec!["app".into()],
                    ip: Some("172.20.0.5".into()),
                }],
            }),
            Note::Release(Hold::Paused {
                container: "abc".into(),
            }),
            Note::Hold(Hold::StoreMemory {
                store: "127.0.0.1:6379".into(),
                was: 0,
            }),
            Note::Bye,
        ];
        for note in notes {
            let line = note.line();
            assert_eq!(line.matches('\n').count(), 1, "{line}");
            assert!(line.ends_with('\n'));
            assert_eq!(serde_json::from_str::<Note>(&line).unwrap(), note);
        }
        assert_eq!(
            Note::Hold(Hold::Down {
                container: "x".into()
            })
            .line(),
            "{\"hold\":{\"fault\":\"down\",\"container\":\"x\"}}\n"
        );
    }

    #[test]
    fn a_release_matches_the_same_fault_on_the_same_container_only() {
        let paused = Hold::Paused {
            container: "a".into(),
        };
        assert!(paused.released_by(&Hold::Paused {
            container: "a".into()
        }));
        assert!(!paused.released_by(&Hold::Paused {
            container: "b".into()
        }));
        assert!(!paused.released_by(&Hold::Shaped {
            container: "a".into(),
            shaping: Shaping::Blackhole,
        }));
        let loss = Hold::Shaped {
            container: "a".into(),
            shaping: Shaping::Loss(5),
        };
        assert!(loss.released_by(&loss.clone()));
        assert!(!loss.released_by(&Hold::Shaped {
            container: "a".into(),
            shaping: Shaping::Rate(64_000),
        }));
        let cpu = Hold::Limited {
            container: "a".into(),
            was: Limits::default(),
            cpu: true,
        };
        assert!(!cpu.released_by(&Hold::Limited {
            container: "a".into(),
            was: Limits::default(),
            cpu: false,
        }));
        let detached = Hold::Detached {
            container: "a".into(),
            endpoints: Vec::new(),
        };
        let with_endpoints = Hold::Detached {
            container: "a".into(),
            endpoints: vec![Endpoint {
                network: "n".into(),
                aliases: Vec::new(),
                ip: None,
            }],
        };
        assert!(detached.released_by(&with_endpoints));
        let store = |at: &str| Hold::StoreMemory {
            store: at.into(),
            was: 1 << 20,
        };
        assert!(store("127.0.0.1:6379").released_by(&store("127.0.0.1:6379")));
        assert!(!store("127.0.0.1:6379").released_by(&store("127.0.0.1:6380")));
    }

    #[tokio::test]
    async fn a_journal_writes_flushed_lines_and_closes_its_sink() {
        let (ours, theirs) = tokio::io::duplex(4096);
        let journal = Journal::to(Box::pin(ours));
        journal.note(&Note::Bye).await;
        journal.close().await;
        // Closed: further notes go nowhere and do not fail.
        journal.note(&Note::Bye).await;
        let mut read = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut { theirs }, &mut read)
            .await
            .unwrap();
        assert_eq!(read, "\"bye\"\n");
    }
}
