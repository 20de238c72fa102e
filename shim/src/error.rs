//! The shim's errors and their mapping to ttrpc status codes — in one place.

use containerd_shim::protos::ttrpc::{self, Code};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Runtime(#[from] runtime_core::Error),
    #[error("container {0} not found")]
    NotFound(String),
    #[error("container {0} already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0} is not implemented by lxcri yet")]
    Unimplemented(&'static str),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(op: &'static str, path: impl std::fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.to_string(),
            source,
        }
    }

    pub fn code(&self) -> Code {
        use runtime_core::Error as R;
        match self {
            Error::NotFound(_) | Error::Runtime(R::NotFound(_)) => Code::NOT_FOUND,
            Error::AlreadyExists(_) | Error::Runtime(R::AlreadyExists(_)) => Code::ALREADY_EXISTS,
            Error::FailedPrecondition(_) | Error::Runtime(R::InvalidState { .. }) => {
                Code::FAILED_PRECONDITION
            }
            Error::InvalidArgument(_) | Error::Runtime(R::Spec(_) | R::ReadSpec { .. }) => {
                Code::INVALID_ARGUMENT
            }
            Error::Unimplemented(_) => Code::UNIMPLEMENTED,
            Error::Runtime(R::Timeout(_)) => Code::DEADLINE_EXCEEDED,
            _ => Code::INTERNAL,
        }
    }
}

/// The full message with every source, as containerd shows it to the user.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}

impl From<Error> for ttrpc::Error {
    fn from(e: Error) -> Self {
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), chain(&e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(e: Error) -> Code {
        match ttrpc::Error::from(e) {
            ttrpc::Error::RpcStatus(s) => s.code(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn codes() {
        assert_eq!(code_of(Error::NotFound("x".into())), Code::NOT_FOUND);
        assert_eq!(
            code_of(Error::Runtime(runtime_core::Error::NotFound("x".into()))),
            Code::NOT_FOUND
        );
        assert_eq!(
            code_of(Error::AlreadyExists("x".into())),
            Code::ALREADY_EXISTS
        );
        assert_eq!(
            code_of(Error::Runtime(runtime_core::Error::AlreadyExists(
                "x".into()
            ))),
            Code::ALREADY_EXISTS
        );
        assert_eq!(
            code_of(Error::FailedPrecondition("x".into())),
            Code::FAILED_PRECONDITION
        );
        assert_eq!(
            code_of(Error::Runtime(runtime_core::Error::InvalidState {
                id: "x".into(),
                status: "running".into(),
                expected: "created"
            })),
            Code::FAILED_PRECONDITION
        );
        assert_eq!(
            code_of(Error::Runtime(
                runtime_core::SpecError::unsupported("linux.sysctl").into()
            )),
            Code::INVALID_ARGUMENT
        );
        assert_eq!(code_of(Error::Unimplemented("Exec")), Code::UNIMPLEMENTED);
        assert_eq!(code_of(Error::Internal("x".into())), Code::INTERNAL);
    }

    #[test]
    fn message_names_the_field() {
        let e = Error::Runtime(runtime_core::SpecError::unsupported("linux.sysctl").into());
        match ttrpc::Error::from(e) {
            ttrpc::Error::RpcStatus(s) => {
                assert!(s.message().contains("linux.sysctl"), "{}", s.message())
            }
            other => panic!("{other:?}"),
        }
    }
}
