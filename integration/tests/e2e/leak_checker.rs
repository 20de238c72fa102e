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

/// A private-network daemon: a veth, a named network namespace, a libcni
/// result cache and a host-local reservation left behind are reported (and
/// the CNI state is not the host's /var/lib/cni).
fn network_leaks_are_reported() -> Result<()> {
    let h = Harness::start_net(Runtime::Runc)?;
    let mut ip = h.ctd.in_net("ip");
    ip.args([
        "link",
        "add",
        "lxe2e-leak0",
        "type",
        "veth",
        "peer",
        "name",
        "lxe2e-leak1",
    ]);
    cmd::must(&mut ip)?;
    let pid = h.ctd.pid().to_string();
    cmd::must(Command::new("nsenter").args([
        "-t",
        &pid,
        "-m",
        "--",
        "ip",
        "netns",
        "add",
        "lxe2e-leak",
    ]))?;
    let state = h.ctd.cni_state_dir();
    std::fs::create_dir_all(state.join("results"))?;
    std::fs::write(state.join("results/bridge-lxe2e-leak-eth0"), "{}")?;
    std::fs::create_dir_all(state.join("networks/bridge"))?;
    for file in ["10.4.0.9", "lock", "last_reserved_ip.0"] {
        std::fs::write(state.join("networks/bridge").join(file), "x")?;
    }
    ensure!(
        !std::path::Path::new("/var/lib/cni/networks/bridge/10.4.0.9").exists(),
        "the temp CNI state dir is the host's"
    );
    let finished = h.finish();
    // The netns file is on the host's /run (a tmpfs); its bind mount died
    // with containerd's mount namespace.
    let _ = std::fs::remove_file("/run/netns/lxe2e-leak");
    let Err(err) = finished else {
        anyhow::bail!("finish() passed with a veth, a named netns and CNI state left");
    };
    let report = format!("{err:#}");
    for want in [
        "veth in containerd's netns: ",
        "named netns in containerd's namespace: /run/netns/lxe2e-leak",
        "lxe2e-leak",
        "CNI result cache: bridge-lxe2e-leak-eth0",
        "host-local IPAM reservation: ",
        "networks/bridge/10.4.0.9",
    ] {
        ensure!(report.contains(want), "report lacks {want:?}:\n{report}");
    }
    for not in ["networks/bridge/lock", "networks/bridge/last_reserved_ip"] {
        ensure!(!report.contains(not), "report names {not:?}:\n{report}");
    }
    Ok(())
}

#[test]
fn network_leaks_are_reported_containerd_2() {
    network_leaks_are_reported().unwrap_or_else(|e| panic!("{e:#}"));
}
