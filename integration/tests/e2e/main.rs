//! End-to-end tests: `ctr` against private containerd 1.6 and 2.x daemons,
//! each scenario with runc (the reference) and with lxcri.
//!
//! Every test is named `<scenario>::<runtime>_containerd_<version>`, so a
//! cargo test filter selects a runtime: `cargo test -p lxcri-integration --
//! --test-threads=1 runc_`. Needs root; run with --test-threads=1.

mod bad_input;
mod cgroups;
mod cgroups_v2_unified;
mod cli;
mod cri;
mod cri_lifecycle;
mod cri_logs;
mod cri_pod;
mod cri_resources;
mod cri_util;
mod events;
mod exec;
mod grouping;
mod hooks;
mod image;
mod leak_checker;
mod lifecycle;
mod nerdctl;
mod nerdctl_net;
mod options;
mod podman;
mod restart;
mod runc_shim_binary;
mod runtime_selection;
mod seccomp;
mod seccomp_notify;
mod selinux_vm;
mod spec;
mod spec_cgroups;
mod spec_idmap;
mod spec_linux;
mod spec_mounts;
mod spec_namespaces;
mod spec_process;
mod spec_resources;
mod terminal;
mod util;
mod v2host;

/// Generates one test per (runtime, containerd version) for each scenario
/// function `fn(&mut Harness) -> anyhow::Result<()>`.
#[macro_export]
macro_rules! matrix {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use lxcri_integration::{run_scenario, Runtime, Version};

            #[test]
            fn runc_containerd_1_6() {
                run_scenario(Version::V1_6, Runtime::Runc, super::$scenario);
            }

            #[test]
            fn runc_containerd_2() {
                run_scenario(Version::V2, Runtime::Runc, super::$scenario);
            }

            #[test]
            fn lxcri_containerd_1_6() {
                run_scenario(Version::V1_6, Runtime::Lxcri, super::$scenario);
            }

            #[test]
            fn lxcri_containerd_2() {
                run_scenario(Version::V2, Runtime::Lxcri, super::$scenario);
            }
        }
    )*};
}

/// Like [`matrix!`] for containerd 2.x only (both runtimes): scenarios that
/// need a 2.x daemon (nerdctl 2.x speaks the 2.x API only).
#[macro_export]
macro_rules! matrix_v2 {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use lxcri_integration::{run_scenario, Runtime, Version};

            #[test]
            fn runc_containerd_2() {
                run_scenario(Version::V2, Runtime::Runc, super::$scenario);
            }

            #[test]
            fn lxcri_containerd_2() {
                run_scenario(Version::V2, Runtime::Lxcri, super::$scenario);
            }
        }
    )*};
}

/// lxcri only, on containerd 1.6 and 2.x: spec fields the reference runc of
/// this host (Debian's 1.1.5) does not honour, so it cannot be the reference:
/// it ignores `domainname`, `linux.personality`, `linux.timeOffsets` and time
/// namespaces, cpu burst/idle and memory kernelTCP, and applies
/// `rootfsPropagation` differently (each scenario says which).
#[macro_export]
macro_rules! matrix_lxcri {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use lxcri_integration::{run_scenario, Runtime, Version};

            #[test]
            fn lxcri_containerd_1_6() {
                run_scenario(Version::V1_6, Runtime::Lxcri, super::$scenario);
            }

            #[test]
            fn lxcri_containerd_2() {
                run_scenario(Version::V2, Runtime::Lxcri, super::$scenario);
            }
        }
    )*};
}

/// lxcri on containerd 2.x only: fields that containerd 1.6's ctr drops from a
/// `--config` spec (its runtime-spec 1.0.2 has no `linux.timeOffsets`).
#[macro_export]
macro_rules! matrix_lxcri_v2 {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use lxcri_integration::{run_scenario, Runtime, Version};

            #[test]
            fn lxcri_containerd_2() {
                run_scenario(Version::V2, Runtime::Lxcri, super::$scenario);
            }
        }
    )*};
}
