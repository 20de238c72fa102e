//! Issue 4: `linux.resources` beyond memory limit and pids, read from inside the
//! container through its own cgroup (a cgroup namespace and a cgroup mount), with
//! runc as the reference. This host is cgroup v1 (hybrid): the v1 files.

use crate::util::{default_spec, run_spec};
use crate::{matrix, matrix_lxcri};
use anyhow::{ensure, Context, Result};
use lxcri_integration::Harness;
use serde_json::{json, Value};

matrix!(
    memory_extras,
    cpu_extras,
    blkio_throttle,
    unified_refused_on_v1,
    rdma_without_controller,
    pids_and_cpuset,
);

// runc 1.1.5 ignores memory.kernelTCP, cpu.burst and cpu.idle.
matrix_lxcri!(memory_kernel_tcp, cpu_burst_and_idle);

/// A spec that runs `script` in its own cgroup namespace, with the cgroup
/// hierarchies mounted at /sys/fs/cgroup.
fn cgroup_spec(h: &mut Harness, id: &str, script: &str) -> Result<Value> {
    let mut spec = default_spec(h, id, &["/bin/sh", "-c", script])?;
    spec["linux"]["namespaces"]
        .as_array_mut()
        .context("namespaces")?
        .push(json!({"type": "cgroup"}));
    spec["mounts"]
        .as_array_mut()
        .context("mounts")?
        .push(json!({
            "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
            "options": ["ro", "nosuid", "noexec", "nodev"]
        }));
    Ok(spec)
}

fn check_lines(out: &str, want: &[&str]) -> Result<()> {
    let got: Vec<&str> = out.lines().collect();
    ensure!(got == want, "got {got:?}, want {want:?}");
    Ok(())
}

/// swap (memsw), swappiness, disableOOMKiller, reservation.
fn memory_extras(h: &mut Harness) -> Result<()> {
    let id = h.id("memx");
    let m = "/sys/fs/cgroup/memory";
    let script = format!(
        "cat {m}/memory.limit_in_bytes {m}/memory.memsw.limit_in_bytes {m}/memory.swappiness \
         {m}/memory.soft_limit_in_bytes; \
         grep oom_kill_disable {m}/memory.oom_control"
    );
    let mut spec = cgroup_spec(h, &id, &script)?;
    spec["linux"]["resources"]["memory"] = json!({
        "limit": 67108864, "swap": 134217728, "swappiness": 7,
        "reservation": 33554432, "disableOOMKiller": true
    });
    let out = run_spec(h, &id, &spec)?.ok()?;
    check_lines(
        &out.stdout,
        &[
            "67108864",
            "134217728",
            "7",
            "33554432",
            "oom_kill_disable 1",
        ],
    )
}

/// shares, quota, period and realtime period (a realtime runtime needs a budget
/// in every parent cgroup, which a test host's /default does not have).
fn cpu_extras(h: &mut Harness) -> Result<()> {
    let id = h.id("cpux");
    let c = "/sys/fs/cgroup/cpu";
    let script = format!(
        "cat {c}/cpu.shares {c}/cpu.cfs_quota_us {c}/cpu.cfs_period_us {c}/cpu.rt_period_us"
    );
    let mut spec = cgroup_spec(h, &id, &script)?;
    spec["linux"]["resources"]["cpu"] = json!({
        "shares": 256, "quota": 30000, "period": 60000, "realtimePeriod": 500000
    });
    let out = run_spec(h, &id, &spec)?.ok()?;
    check_lines(&out.stdout, &["256", "30000", "60000", "500000"])
}

/// cpu burst and idle; an idle group's shares read as the kernel's idle weight (3).
fn cpu_burst_and_idle(h: &mut Harness) -> Result<()> {
    let id = h.id("cpuidle");
    let c = "/sys/fs/cgroup/cpu";
    let script = format!("cat {c}/cpu.cfs_burst_us {c}/cpu.idle {c}/cpu.shares");
    let mut spec = cgroup_spec(h, &id, &script)?;
    spec["linux"]["resources"]["cpu"] =
        json!({"quota": 30000, "period": 60000, "burst": 5000, "idle": 1});
    let out = run_spec(h, &id, &spec)?.ok()?;
    check_lines(&out.stdout, &["5000", "1", "3"])
}

/// memory.kernelTCP.
fn memory_kernel_tcp(h: &mut Harness) -> Result<()> {
    let id = h.id("kmemtcp");
    let script = "cat /sys/fs/cgroup/memory/memory.kmem.tcp.limit_in_bytes";
    let mut spec = cgroup_spec(h, &id, script)?;
    spec["linux"]["resources"]["memory"] = json!({"kernelTCP": 8388608});
    let out = run_spec(h, &id, &spec)?.ok()?;
    check_lines(&out.stdout, &["8388608"])
}

/// blkio throttles on the host's first virtio disk.
fn blkio_throttle(h: &mut Harness) -> Result<()> {
    let dev = std::fs::read_to_string("/sys/block/vda/dev").context("no /sys/block/vda")?;
    let (major, minor) = dev.trim().split_once(':').context("dev")?;
    let (major, minor): (i64, i64) = (major.parse()?, minor.parse()?);
    let id = h.id("blkio");
    let b = "/sys/fs/cgroup/blkio";
    let script =
        format!("cat {b}/blkio.throttle.read_bps_device {b}/blkio.throttle.write_iops_device");
    let mut spec = cgroup_spec(h, &id, &script)?;
    spec["linux"]["resources"]["blockIO"] = json!({
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 150}]
    });
    let out = run_spec(h, &id, &spec)?.ok()?;
    let a = format!("{major}:{minor} 1048576");
    let b = format!("{major}:{minor} 150");
    check_lines(&out.stdout, &[&a, &b])
}

/// `unified` (cgroup v2 files) on a v1 host: create fails, for runc too.
fn unified_refused_on_v1(h: &mut Harness) -> Result<()> {
    let id = h.id("unified");
    let mut spec = default_spec(h, &id, &["/bin/true"])?;
    spec["linux"]["resources"]["unified"] = json!({"memory.high": "100000000"});
    let out = run_spec(h, &id, &spec)?;
    ensure!(out.code != 0, "unified accepted on a v1 host: {out}");
    if h.runtime == lxcri_integration::Runtime::Lxcri {
        ensure!(
            out.stderr.contains("linux.resources.unified.memory.high"),
            "{out}"
        );
    }
    let _ = h.ctr(&["container", "rm", &id]);
    Ok(())
}

/// `rdma` limits on this host, whose kernel has no rdma controller (no rdma
/// hierarchy): create fails, for runc too ("cannot set rdma limit"); lxcri's
/// error names the field.
fn rdma_without_controller(h: &mut Harness) -> Result<()> {
    let proc_cgroups = std::fs::read_to_string("/proc/cgroups")?;
    ensure!(
        !proc_cgroups.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 2 && f[0] == "rdma" && f[1] != "0"
        }),
        "this host has an rdma v1 hierarchy: the scenario needs a host without one"
    );
    let id = h.id("rdmav1");
    let mut spec = default_spec(h, &id, &["/bin/true"])?;
    spec["linux"]["resources"]["rdma"] = json!({"mlx5_0": {"hcaHandles": 3, "hcaObjects": 7}});
    let out = run_spec(h, &id, &spec)?;
    ensure!(
        out.code != 0,
        "rdma limits accepted without an rdma hierarchy: {out}"
    );
    if h.runtime == lxcri_integration::Runtime::Lxcri {
        ensure!(
            out.stderr.contains(
                "linux.resources.rdma.mlx5_0: no rdma controller in a cgroup v1 hierarchy"
            ),
            "{out}"
        );
    }
    let _ = h.ctr(&["container", "rm", &id]);
    Ok(())
}

/// pids.limit and cpu.cpus/mems.
fn pids_and_cpuset(h: &mut Harness) -> Result<()> {
    let id = h.id("pidsx");
    let script = "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpuset/cpuset.cpus \
                  /sys/fs/cgroup/cpuset/cpuset.mems";
    let mut spec = cgroup_spec(h, &id, script)?;
    spec["linux"]["resources"]["pids"] = json!({"limit": 42});
    spec["linux"]["resources"]["cpu"] = json!({"cpus": "0", "mems": "0"});
    let out = run_spec(h, &id, &spec)?.ok()?;
    check_lines(&out.stdout, &["42", "0", "0"])
}
