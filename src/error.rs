//! The harness's error type and the exit codes a CI pipeline gates on.
//!
//! Every failure is sorted into one of three kinds because the caller (a person or
//! a CI job) acts differently on each: fix the scenario (invalid input), fix the
//! machine (infrastructure), or stop asking (interrupted). A failed verdict is not
//! an error: it is the harness doing its job, and is reported through [`ExitCode`].

/// Process exit codes, as fixed by DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Passed = 0,
    VerdictFailed = 1,
    InvalidInput = 2,
    Infrastructure = 3,
    Interrupted = 130,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Why the harness could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The scenario file or the command line is wrong; the message says where and how to fix it.
    #[error("{0}")]
    Invalid(String),
    /// Docker, an image, or the cluster under test did not cooperate.
    #[error(transparent)]
    Infra(anyhow::Error),
    /// The user asked us to stop before anything could be verified.
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Invalid(_) => ExitCode::InvalidInput,
            Error::Infra(_) => ExitCode::Infrastructure,
            Error::Interrupted => ExitCode::Interrupted,
        }
    }

    pub fn infra(err: impl Into<anyhow::Error>) -> Self {
        Error::Infra(err.into())
    }
}

impl From<crate::images::ImageError> for Error {
    fn from(err: crate::images::ImageError) -> Self {
        Error::Infra(err.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
