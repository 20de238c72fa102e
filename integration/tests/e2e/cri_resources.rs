//! Issue 6: container resources through CRI (pod network, local registry;
//! see `cri_lifecycle.rs`), lxcri and runc handlers.
//!
//! `cri_update_resources`: a container created with a memory limit and CPU
//! shares has them in its cgroup; `crictl update` (UpdateContainerResources)
//! changes memory, shares and the CFS quota of the running container, and
//! the cgroup files follow. critest does not test UpdateContainerResources.

use crate::cri_util::*;
use anyhow::{ensure, Context, Result};
use lxcri_integration::registry::BUSYBOX;
use lxcri_integration::Harness;
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};

crate::cri_matrix!(cri_update_resources);

const MIB: u64 = 1024 * 1024;

fn cri_update_resources(h: &mut Harness) -> Result<()> {
    pull(h, BUSYBOX)?;
    let config = pod_config(h, "res", json!({}))?;
    let pod = run_pod(h, &config)?;
    let checked = (|| {
        let resources = json!({"linux": {"resources": {
            "memory_limit_in_bytes": 128 * MIB,
            "cpu_shares": 512,
        }}});
        let id = create(
            h,
            &pod,
            &config,
            "res",
            BUSYBOX,
            &["sleep", "3600"],
            resources,
        )?;
        h.crictl_ok(&["start", &id])?;
        wait_state(h, &id, "CONTAINER_RUNNING")?;
        let pid = pid_of(h, &id)?;
        expect_limits(pid, 128 * MIB, 512, None)?;
        h.crictl_ok(&[
            "update",
            "--memory",
            &(64 * MIB).to_string(),
            "--cpu-share",
            "256",
            "--cpu-period",
            "100000",
            "--cpu-quota",
            "50000",
            &id,
        ])?;
        expect_limits(pid, 64 * MIB, 256, Some(50000))
    })();
    let removed = remove_pod(h, &pod);
    checked.and(removed)
}

/// The cgroup dir of `pid` for v1 `controller` (e.g. `memory`,
/// `cpu,cpuacct`), or its unified (v2) dir when there is no such v1
/// hierarchy.
fn cgroup_dir(pid: i32, controller: &str) -> Result<(PathBuf, bool)> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if controllers.split(',').any(|c| c == controller) {
            let dir = PathBuf::from(format!("/sys/fs/cgroup/{controllers}{path}"));
            return Ok((dir, false));
        }
    }
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .with_context(|| format!("no {controller} cgroup for {pid}: {text}"))?;
    Ok((PathBuf::from(format!("/sys/fs/cgroup{path}")), true))
}

fn read(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    Ok(fs::read_to_string(&path)
        .with_context(|| format!("read {}", path.display()))?
        .trim()
        .to_string())
}

/// The container's memory limit, CPU shares (v2: the weight runc derives)
/// and CFS quota are the expected ones.
fn expect_limits(pid: i32, memory: u64, shares: u64, quota: Option<u64>) -> Result<()> {
    let (mem_dir, v2) = cgroup_dir(pid, "memory")?;
    let (cpu_dir, _) = cgroup_dir(pid, "cpu")?;
    let (mem_file, shares_file, quota_file) = if v2 {
        ("memory.max", "cpu.weight", "cpu.max")
    } else {
        ("memory.limit_in_bytes", "cpu.shares", "cpu.cfs_quota_us")
    };
    eventually(&format!("{mem_file} = {memory}"), || {
        Ok(read(&mem_dir, mem_file)? == memory.to_string())
    })?;
    let want_shares = if v2 {
        // runc's conversion of shares to cpu.weight.
        (1 + ((shares - 2) * 9999) / 262142).to_string()
    } else {
        shares.to_string()
    };
    let got = read(&cpu_dir, shares_file)?;
    ensure!(
        got == want_shares,
        "{shares_file} = {got}, want {want_shares}"
    );
    if let Some(quota) = quota {
        let got = read(&cpu_dir, quota_file)?;
        ensure!(
            got.split_whitespace().next() == Some(&quota.to_string()),
            "{quota_file} = {got}, want {quota}"
        );
    }
    Ok(())
}
