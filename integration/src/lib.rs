//! Test harness for the end-to-end tests: private containerd daemons
//! (Debian's 1.6 and a built 2.x, optionally with the CRI plugin), ctr and
//! crictl with timeouts, a local OCI registry (pod-network CRI daemons), a busybox rootfs and OCI images built offline, and
//! a leak checker. Needs root.

pub mod cli;
pub mod cmd;
pub mod containerd;
pub mod harness;
pub mod image;
pub mod leaks;
pub mod procfs;
pub mod registry;
pub mod rootfs;
pub mod seccomp_agent;

pub use cmd::Output;
pub use containerd::{Containerd, Version};
pub use harness::{
    run_cri_net_scenario, run_cri_scenario, run_net_scenario, run_scenario, try_scenario, Harness,
    Runtime,
};
