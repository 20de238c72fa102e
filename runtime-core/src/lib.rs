//! runtime-core: the OCI runtime spec → liblxc config translation, the container
//! lifecycle and (later) process attach, shared by the containerd shim and the
//! `lxcri` CLI.

pub mod cgroup;
pub mod container;
pub mod error;
pub mod lxcconf;
pub mod spec;
pub mod sys;

pub use container::{destroy, Container, ContainerState, Exec, RuntimeConfig, Stdio};
pub use error::{Error, Result, SpecError};
