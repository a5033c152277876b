//! The reaper's own side, `sessionstorm reaper --run ID`, run in its container: keep
//! the holds the harness notes, and when its input ends without `"bye"`, undo them
//! and remove the run's objects. Every line it writes (stderr, so `docker logs`)
//! says what it did, for the next run's report of a reaper that could not finish.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::{container_name, GRACE};
use crate::cluster::engine::{Engine, Removed};
use crate::cluster::hold::{Hold, Note};
use crate::error::{Error, ExitCode, Result};

/// How the harness's journal ended, and the holds still open then.
#[derive(Debug, PartialEq, Eq)]
pub struct Ending {
    /// The harness said `"bye"`: it tore down and reverted everything itself.
    pub bye: bool,
    pub open: Vec<Hold>,
}

/// How many times the run's objects are swept, [`GRACE`] apart.
const SWEEPS: usize = 2;

fn log(message: &str) {
    eprintln!(
        "{} reaper: {message}",
        chrono::Utc::now().format("%H:%M:%S%.3f")
    );
}

/// Reads notes until `"bye"` or the end of the input.
pub async fn read_journal(input: impl AsyncBufRead + Unpin) -> Ending {
    let mut lines = input.lines();
    let mut open: Vec<Hold> = Vec::new();
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(err) => {
                log(&format!("the harness's journal broke off: {err}"));
                break;
            }
        };
        match serde_json::from_str::<Note>(&line) {
            Ok(Note::Hold(hold)) => {
                log(&format!("hold noted: {line}"));
                open.push(hold);
            }
            Ok(Note::Release(hold)) => {
                if let Some(i) = open.iter().position(|h| h.released_by(&hold)) {
                    open.remove(i);
                }
            }
            Ok(Note::Bye) => return Ending { bye: true, open },
            Err(err) => log(&format!("unreadable note {line:?}: {err}")),
        }
    }
    Ending { bye: false, open }
}

/// Runs the reaper of `run_id` on its standard input until the harness ends.
pub async fn run(run_id: &str) -> Result<ExitCode> {
    let engine = Engine::connect().await.map_err(Error::infra)?;
    let own = container_name(run_id);
    log(&format!("watching run {run_id}"));
    let ending = read_journal(tokio::io::BufReader::new(tokio::io::stdin())).await;
    if ending.bye {
        log("the run ended and tore down; nothing to do");
        let _ = engine.remove(&own).await;
        return Ok(ExitCode::Passed);
    }
    log(&format!(
        "the harness is gone with {} faults holding; reverting them in {GRACE:?}",
        ending.open.len()
    ));
    tokio::time::sleep(GRACE).await;
    let mut failed = 0;
    for hold in ending.open.iter().rev() {
        match hold.undo(&engine, run_id).await {
            Ok(()) => log(&format!("reverted {hold:?}")),
            Err(err) => {
                failed += 1;
                log(&format!("could not revert {hold:?}: {err}"));
            }
        }
    }
    // Twice: a container the harness had asked for just before it died may appear
    // after the first sweep.
    for pass in 0..SWEEPS {
        if pass > 0 {
            tokio::time::sleep(GRACE).await;
        }
        match engine.remove_run(run_id).await {
            Ok(removed) if pass > 0 && removed == Removed::default() => {}
            Ok(removed) => log(&format!(
                "removed {}: {}",
                removed.describe(),
                removed.names().cloned().collect::<Vec<_>>().join(", ")
            )),
            Err(err) => {
                failed += 1;
                log(&format!("could not remove the run's objects: {err}"));
            }
        }
    }
    if failed > 0 {
        log(&format!(
            "{failed} steps failed; this container stays for its log. \
             Remove it with `sessionstorm cleanup --run {run_id}`"
        ));
        return Ok(ExitCode::Infrastructure);
    }
    log("done; removing myself");
    engine.remove(&own).await.map_err(Error::infra)?;
    Ok(ExitCode::Passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paused(container: &str) -> Hold {
        Hold::Paused {
            container: container.into(),
        }
    }

    async fn read(text: &str) -> Ending {
        read_journal(tokio::io::BufReader::new(text.as_bytes())).await
    }

    #[tokio::test]
    async fn an_end_without_bye_leaves_the_holds_not_released() {
        let text = [
            Note::Hold(paused("a")),
            Note::Hold(Hold::Down {
                container: "b".into(),
            }),
            Note::Hold(paused("c")),
            Note::Release(paused("a")),
        ]
        .iter()
        .map(Note::line)
        .collect::<String>();
        let ending = read(&text).await;
        assert!(!ending.bye);
        assert_eq!(
            ending.open,
            [
                Hold::Down {
                    container: "b".into()
                },
                paused("c")
            ]
        );
    }

    #[tokio::test]
    async fn bye_ends_the_journal_and_unreadable_lines_are_skipped() {
        let text = format!(
            "not json\n{}{}{}",
            Note::Hold(paused("a")).line(),
            Note::Bye.line(),
            Note::Hold(paused("z")).line()
        );
        let ending = read(&text).await;
        assert!(ending.bye);
        assert_eq!(ending.open, [paused("a")]);
    }

    #[tokio::test]
    async fn a_line_cut_off_by_the_crash_is_no_hold() {
        let text = format!(
            "{}{{\"hold\":{{\"fault\":\"pa",
            Note::Hold(paused("a")).line()
        );
        let ending = read(&text).await;
        assert!(!ending.bye);
        assert_eq!(ending.open, [paused("a")]);
    }
}
