//! The library's error type. Every variant that a user sees names the file (and line when
//! known), what is wrong, and what to do.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Config { file: String, line: Option<u32>, message: String },
    // not a `source`: the message already says it, and a chain would say it twice
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error(
        "kustomize not found: tried --kustomize / the `kustomize` key of .agentops.yaml, `kustomize` on PATH, \
         `kubectl` on PATH and ./.tools/bin. Run scripts/setup-tools (installs kubectl with kustomize v5 into \
         ./.tools), or put kustomize v5 on PATH, or pass --kustomize PATH"
    )]
    KustomizeNotFound,
    #[error("kustomize at {path} does not run: {message}")]
    KustomizeBroken { path: String, message: String },
    #[error("git: {0}")]
    Git(String),
    #[error("{0}")]
    Usage(String),
    /// A workflow that stopped or refused: the message says why and what to do.
    #[error("{0}")]
    Workflow(String),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn workflow(message: impl Into<String>) -> Error {
        Error::Workflow(message.into())
    }

    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io { path: path.display().to_string(), err: source }
    }
}

impl From<git2::Error> for Error {
    fn from(e: git2::Error) -> Self {
        Error::Git(e.message().to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
