//! Errors of runtime-core.

use std::path::PathBuf;

/// A spec field that lxcri cannot honour or that carries an invalid value.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SpecError {
    /// The spec field, as a JSON path (e.g. `process.env[3]`).
    pub field: String,
    pub reason: String,
}

impl SpecError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SpecError {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A field that is set but not translated (yet).
    pub fn unsupported(field: impl Into<String>) -> Self {
        SpecError::new(field, "not supported by lxcri")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The message names the field itself: no `source`, or an error chain
    /// (anyhow's `{:#}`) would repeat it.
    #[error("invalid OCI spec: {0}")]
    Spec(SpecError),
    #[error("read bundle config {path}")]
    ReadSpec {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("container {0} already exists")]
    AlreadyExists(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    /// The container's init is gone (the CLI's commands on a stopped container).
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("container {id} is {status}, expected {expected}")]
    InvalidState {
        id: String,
        status: String,
        expected: &'static str,
    },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{op}")]
    Sys {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("container {id} failed to start: {reason}")]
    StartFailed { id: String, reason: String },
    #[error("container {id}: {message}")]
    Exec { id: String, message: String },
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// The systemd cgroup driver: systemd is absent or refused.
    #[error("{0}")]
    Systemd(String),
}

impl From<SpecError> for Error {
    fn from(e: SpecError) -> Self {
        Error::Spec(e)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Attach a path and an operation to an io::Error.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            op,
            path: path.into(),
            source,
        })
    }
}

impl<T> IoContext<T> for nix::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::Io {
            op,
            path: path.into(),
            source: std::io::Error::from_raw_os_error(e as i32),
        })
    }
}

pub(crate) fn sys(op: &'static str) -> impl FnOnce(nix::errno::Errno) -> Error {
    move |e| Error::Sys {
        op,
        source: std::io::Error::from_raw_os_error(e as i32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spec error says its field once, also in an error chain.
    #[test]
    fn spec_error_is_said_once() {
        let e: Error = SpecError::new("linux.resources.rdma.mlx5_0", "no rdma controller").into();
        let chain = anyhow_like(&e);
        assert_eq!(
            chain,
            "invalid OCI spec: linux.resources.rdma.mlx5_0: no rdma controller"
        );
    }

    /// The error and its sources joined with ": ", as anyhow's `{:#}` does.
    fn anyhow_like(e: &(dyn std::error::Error + 'static)) -> String {
        let mut parts = vec![e.to_string()];
        let mut src = e.source();
        while let Some(s) = src {
            parts.push(s.to_string());
            src = s.source();
        }
        parts.join(": ")
    }
}
