//! The leak checker itself: a container and a mount left behind on purpose
//! must make `Harness::finish` fail, naming them.

use crate::util::{run_detached, wait_status};
use anyhow::{ensure, Result};
use lxcri_integration::{cmd, Harness, Runtime, Version};
use std::process::Command;

fn leaks_are_reported(version: Version) -> Result<()> {
    let mut h = Harness::start_with(version, Runtime::Runc, "")?;
    let id = run_detached(&mut h, "leaky", &[], &["/bin/sleep", "1000"])?;
    wait_status(&h, &id, "RUNNING")?;
    let target = h.ctd.dir().join("leak-mount");
    std::fs::create_dir(&target)?;
    let pid = h.ctd.pid().to_string();
    cmd::must(
        Command::new("nsenter")
            .args(["-t", &pid, "-m", "--", "mount", "-t", "tmpfs", "none"])
            .arg(&target),
    )?;
    let Err(err) = h.finish() else {
        anyhow::bail!("finish() passed with a running container and a mount left");
    };
    let report = format!("{err:#}");
    for want in [
        "LEAKED",
        "process: ",
        "containerd-shim-runc-v2",
        "/bin/sleep",
        "cgroup: ",
        "mount in containerd's namespace: ",
        "runtime dir: ",
    ] {
        ensure!(report.contains(want), "report lacks {want:?}:\n{report}");
    }
    Ok(())
}

#[test]
fn leaks_are_reported_containerd_1_6() {
    leaks_are_reported(Version::V1_6).unwrap_or_else(|e| panic!("{e:#}"));
}

#[test]
fn leaks_are_reported_containerd_2() {
    leaks_are_reported(Version::V2).unwrap_or_else(|e| panic!("{e:#}"));
}
