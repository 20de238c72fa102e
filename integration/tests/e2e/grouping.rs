//! Issue 3: containers of one group (a pod) share one shim process; the shim
//! stays while a container is left and exits after the last one; a killed shim
//! is cleaned up after.
//!
//! lxcri only: containerd's Go runc shim leaves its socket file behind in both
//! scenarios on containerd 2.x (and after a SIGKILL on 1.6), which the leak check
//! rightly reports.

use crate::util::{remove, run_detached, task, wait_status};
use anyhow::{ensure, Result};
use lxcri_integration::{procfs, run_scenario, Harness, Runtime, Version};

#[test]
fn grouped_containers_share_one_shim_lxcri_containerd_1_6() {
    run_scenario(
        Version::V1_6,
        Runtime::Lxcri,
        grouped_containers_share_one_shim,
    );
}

#[test]
fn grouped_containers_share_one_shim_lxcri_containerd_2() {
    run_scenario(
        Version::V2,
        Runtime::Lxcri,
        grouped_containers_share_one_shim,
    );
}

#[test]
fn killed_shim_is_cleaned_up_lxcri_containerd_1_6() {
    run_scenario(Version::V1_6, Runtime::Lxcri, killed_shim_is_cleaned_up);
}

#[test]
fn killed_shim_is_cleaned_up_lxcri_containerd_2() {
    run_scenario(Version::V2, Runtime::Lxcri, killed_shim_is_cleaned_up);
}

/// Shim server processes of this test's containerd (not the short-lived
/// `start`/`delete` invocations).
fn shim_servers(h: &Harness) -> Vec<procfs::Process> {
    let address = h.ctd.address().display().to_string();
    procfs::processes()
        .into_iter()
        .filter(|p| p.cmdline.contains("containerd-shim-") && p.cmdline.contains(&address))
        .filter(|p| !p.cmdline.ends_with(" start") && !p.cmdline.ends_with(" delete"))
        .collect()
}

fn grouped_containers_share_one_shim(h: &mut Harness) -> Result<()> {
    let group = ["--annotation", "io.containerd.runc.v2.group=lxe2e-grp"];
    let a = run_detached(h, "grp-a", &group, &["/bin/sleep", "1000"])?;
    let b = run_detached(h, "grp-b", &group, &["/bin/sleep", "1000"]);
    let result = b.and_then(|b| {
        let r = (|| {
            wait_status(h, &a, "RUNNING")?;
            wait_status(h, &b, "RUNNING")?;
            let shims = shim_servers(h);
            ensure!(shims.len() == 1, "want one shim for the group: {shims:?}");
            remove(h, &a)?;
            wait_status(h, &b, "RUNNING")?;
            let left = shim_servers(h);
            ensure!(
                left == shims,
                "the shim must stay for the container left: {left:?}"
            );
            Ok(())
        })();
        r.and(remove(h, &b))
    });
    let cleanup = remove(h, &a);
    result.and(cleanup)
}

/// When the shim is SIGKILLed, containerd's cleanup (`shim delete`) removes the
/// container's processes, cgroups and state (the leak check verifies).
fn killed_shim_is_cleaned_up(h: &mut Harness) -> Result<()> {
    let id = run_detached(h, "shimkill", &[], &["/bin/sleep", "1000"])?;
    let result = (|| {
        let t = wait_status(h, &id, "RUNNING")?;
        let shims = shim_servers(h);
        ensure!(shims.len() == 1, "one shim: {shims:?}");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(shims[0].pid),
            nix::sys::signal::Signal::SIGKILL,
        )?;
        // containerd notices, runs `shim delete` and drops (or stops) the task.
        for _ in 0..200 {
            let gone = task(h, &id)?.is_none_or(|t| t.status == "STOPPED");
            if gone && procfs::process(t.pid).is_none() {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        anyhow::bail!("the container's init {} survived its shim", t.pid)
    })();
    let cleanup = remove(h, &id);
    result.and(cleanup)
}
