//! End-to-end tests: `ctr` against private containerd 1.6 and 2.x daemons,
//! each scenario with runc (the reference) and with lxcri.
//!
//! Every test is named `<scenario>::<runtime>_containerd_<version>`, so a
//! cargo test filter selects a runtime: `cargo test -p lxcri-integration --
//! --test-threads=1 runc_`. Needs root; run with --test-threads=1.

mod bad_input;
mod cgroups;
mod cri;
mod cri_lifecycle;
mod cri_logs;
mod cri_pod;
mod cri_resources;
mod cri_util;
mod events;
mod exec;
mod grouping;
mod image;
mod leak_checker;
mod lifecycle;
mod nerdctl;
mod restart;
mod runtime_selection;
mod spec;
mod terminal;
mod util;

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

/// containerd 2.x, runc only: nerdctl scenarios lxcri cannot pass yet. nerdctl
/// always adds OCI hooks (createRuntime/poststop), its default seccomp profile, a
/// sysctl, and a `binary://` log URI for detached containers; lxcri refuses the
/// first three (issue 4) and has no binary logging yet (issue 3). The runc runs
/// keep the scenarios honest until the lxcri variants can join `matrix_v2!`.
#[macro_export]
macro_rules! matrix_v2_runc_only {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use lxcri_integration::{run_scenario, Runtime, Version};

            #[test]
            fn runc_containerd_2() {
                run_scenario(Version::V2, Runtime::Runc, super::$scenario);
            }
        }
    )*};
}
