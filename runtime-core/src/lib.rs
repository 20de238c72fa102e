//! runtime-core: the OCI runtime spec → liblxc config translation, the container
//! lifecycle and (later) process attach, shared by the containerd shim and the
//! `lxcri` CLI.

pub mod cgroup;
pub mod container;
pub mod dbus;
pub mod error;
pub mod features;
pub mod idmap;
pub mod lxcconf;
pub mod netaddr;
pub mod seccomp_agent;
pub mod spec;
pub mod stats;
pub mod sys;
pub mod systemd;
pub mod userns;

pub use container::{
    destroy, start_detached, Container, ContainerState, Exec, RuntimeConfig, Stdio, INIT_SOCKET,
};
pub use error::{Error, Result, SpecError};
