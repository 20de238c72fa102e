//! Issue 3: the cgroup v2 code paths of runtime-core (`stats::v2`, the v2
//! branch of `cgroup::freeze`) against a real container's cgroup on this
//! hybrid host: lxcri puts the container into the unified hierarchy too
//! (/sys/fs/cgroup/unified/<cgroupsPath>), which has no controllers there
//! but the core files cgroup.procs, cgroup.events, cgroup.freeze and
//! cpu.stat. The test calls the runtime-core functions directly, with the
//! unified hierarchy as the only one, and checks what a user would see:
//! the container's processes, CPU time that grows while it burns CPU (and
//! agrees with the v1 cpuacct controller), and a freeze that stops the
//! processes (frozen 1, no CPU time) until the thaw.

use crate::matrix_lxcri_v2;
use crate::util::{remove, run_detached, wait_status};
use anyhow::{bail, ensure, Context, Result};
use lxcri_integration::Harness;
use runtime_core::stats;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

matrix_lxcri_v2!(v2_stats_and_freeze);

/// The unified hierarchy of a hybrid host.
const UNIFIED: &str = "/sys/fs/cgroup/unified";

/// The cgroup of `pid` in the unified hierarchy (the `0::PATH` line of
/// /proc/PID/cgroup), relative to [`UNIFIED`].
fn unified_cgroup(pid: i32) -> Result<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .with_context(|| format!("no unified cgroup in /proc/{pid}/cgroup: {text}"))?;
    Ok(PathBuf::from(path.trim_start_matches('/')))
}

/// cpuacct.usage (ns) of cgroup `rel` in the host's v1 cpuacct hierarchy.
fn cpuacct_usage(rel: &Path) -> Result<u64> {
    let hierarchies = runtime_core::cgroup::hierarchies();
    let p = runtime_core::cgroup::file(&hierarchies, rel, "cpuacct.usage")
        .with_context(|| format!("no cpuacct.usage for /{} in {hierarchies:?}", rel.display()))?;
    let s = std::fs::read_to_string(&p).with_context(|| p.display().to_string())?;
    s.trim()
        .parse()
        .with_context(|| format!("{}: {s:?}", p.display()))
}

fn events(dir: &Path) -> Result<String> {
    let p = dir.join("cgroup.events");
    std::fs::read_to_string(&p).with_context(|| p.display().to_string())
}

/// usage_usec from the v2 reader over the container's unified dir.
fn usage_usec(dir: &Path) -> u64 {
    stats::v2(&stats::dir_reader(dir)).cpu_stat("usage_usec")
}

fn v2_stats_and_freeze(h: &mut Harness) -> Result<()> {
    if !Path::new(UNIFIED).join("cgroup.controllers").exists() {
        bail!("{UNIFIED} is not a cgroup2 mount: this test needs a hybrid host");
    }
    // The init burns CPU; a sleeping child makes it two processes.
    let script = "sleep 1000 & while :; do :; done";
    let id = run_detached(h, "v2", &[], &["/bin/sh", "-c", script])?;
    let hierarchy = [PathBuf::from(UNIFIED)];
    let mut rel = PathBuf::new();
    let result = (|| {
        let init = wait_status(h, &id, "RUNNING")?.pid;
        rel = unified_cgroup(init)?;
        ensure!(
            rel.ends_with(&id),
            "init {init} is in unified cgroup /{}, not the container's",
            rel.display()
        );
        let dir = Path::new(UNIFIED).join(&rel);

        // The process list: init and its sleeping child, nothing else.
        let mut s = stats::v2(&stats::dir_reader(&dir));
        for _ in 0..50 {
            if s.procs.len() >= 2 {
                break;
            }
            thread::sleep(Duration::from_millis(100));
            s = stats::v2(&stats::dir_reader(&dir));
        }
        ensure!(
            s.procs.len() == 2 && s.procs.contains(&init),
            "cgroup.procs of /{}: {:?} (init {init})",
            rel.display(),
            s.procs
        );
        ensure!(
            s.pids
                .as_ref()
                .is_some_and(|p| p.current == 2 && p.limit.is_none()),
            "pids without the pids controller: {:?}",
            s.pids
        );

        // CPU time grows while the init burns CPU, and agrees with cpuacct.
        let before = usage_usec(&dir);
        thread::sleep(Duration::from_millis(500));
        let (after, cpuacct) = (usage_usec(&dir), cpuacct_usage(&rel)?);
        ensure!(
            after >= before + 100_000,
            "usage_usec grew by {} µs in 500 ms of a busy loop",
            after.saturating_sub(before)
        );
        let v1_usec = cpuacct / 1000;
        ensure!(
            v1_usec.abs_diff(after) < 100_000,
            "v2 usage_usec {after} vs v1 cpuacct.usage {v1_usec} µs"
        );

        // Freeze: cgroup.events says frozen, no CPU time passes.
        runtime_core::cgroup::freeze(&hierarchy, &rel, true).context("v2 freeze")?;
        ensure!(
            events(&dir)?.lines().any(|l| l == "frozen 1"),
            "cgroup.events after freeze: {}",
            events(&dir)?
        );
        let frozen = usage_usec(&dir);
        thread::sleep(Duration::from_millis(500));
        let still = usage_usec(&dir);
        ensure!(
            still.saturating_sub(frozen) < 5_000,
            "frozen container used {} µs of CPU",
            still.saturating_sub(frozen)
        );
        let procs = stats::v2(&stats::dir_reader(&dir)).procs;
        ensure!(procs.len() == 2, "processes while frozen: {procs:?}");

        // Thaw: frozen 0, the busy loop runs again.
        runtime_core::cgroup::freeze(&hierarchy, &rel, false).context("v2 thaw")?;
        ensure!(
            events(&dir)?.lines().any(|l| l == "frozen 0"),
            "cgroup.events after thaw: {}",
            events(&dir)?
        );
        let thawed = usage_usec(&dir);
        thread::sleep(Duration::from_millis(500));
        let resumed = usage_usec(&dir);
        ensure!(resumed >= thawed + 100_000, "no CPU time after the thaw");
        eprintln!(
            "v2 usage_usec per 500 ms: running +{}, frozen +{}, thawed +{}; \
             v2 {after} µs vs v1 cpuacct {v1_usec} µs",
            after - before,
            still.saturating_sub(frozen),
            resumed - thawed
        );
        Ok(())
    })();
    if result.is_err() && !rel.as_os_str().is_empty() {
        let _ = runtime_core::cgroup::freeze(&hierarchy, &rel, false);
    }
    let cleanup = remove(h, &id);
    result.and(cleanup)
}
