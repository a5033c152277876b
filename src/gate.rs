//! The verdict: did the run prove the claim, and which exit code says so.
//!
//! A run passes only when every session it created was checked and none broke the
//! contract. A session the sweep could not read is not a pass: the harness cannot
//! claim nothing was lost about a session it never saw again.

use serde::Serialize;

use crate::error::ExitCode;

/// What the verdict rests on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence {
    pub anomalies: u64,
    pub unverified: u64,
    pub interrupted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// `passed`, `failed` or `interrupted`.
    pub status: &'static str,
    /// Why it failed, one line each; empty when it passed.
    pub reasons: Vec<String>,
    pub exit_code: i32,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.status == "passed"
    }
}

pub fn judge(evidence: Evidence) -> Verdict {
    let mut reasons = Vec::new();
    if evidence.anomalies > 0 {
        reasons.push(format!(
            "{} session anomalies (sessions or acknowledged writes lost)",
            evidence.anomalies
        ));
    }
    if evidence.unverified > 0 {
        reasons.push(format!(
            "{} sessions could not be read back in the final sweep",
            evidence.unverified
        ));
    }
    let (status, code) = if evidence.interrupted {
        reasons.push("the run was interrupted".to_string());
        ("interrupted", ExitCode::Interrupted)
    } else if reasons.is_empty() {
        ("passed", ExitCode::Passed)
    } else {
        ("failed", ExitCode::VerdictFailed)
    };
    Verdict {
        status,
        reasons,
        exit_code: code.code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_run_passes() {
        let v = judge(Evidence::default());
        assert!(v.passed());
        assert_eq!(v.exit_code, 0);
        assert!(v.reasons.is_empty());
    }

    #[test]
    fn anomalies_or_unverified_sessions_fail() {
        let v = judge(Evidence {
            anomalies: 3,
            ..Default::default()
        });
        assert_eq!((v.status, v.exit_code), ("failed", 1));
        let v = judge(Evidence {
            unverified: 1,
            ..Default::default()
        });
        assert_eq!((v.status, v.exit_code), ("failed", 1));
        assert!(v.reasons[0].contains("could not be read back"));
    }

    #[test]
    fn interruption_wins_over_the_rest() {
        let v = judge(Evidence {
            anomalies: 1,
            interrupted: true,
            ..Default::default()
        });
        assert_eq!((v.status, v.exit_code), ("interrupted", 130));
        assert_eq!(v.reasons.len(), 2);
    }
}
