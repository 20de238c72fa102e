//! Issue point 7: what the container sees of its OCI spec, as with runc.

use crate::matrix;
use crate::util::{
    default_spec, expect, remove, run_detached, run_spec, run_spec_runtime, wait_status,
};
use anyhow::{ensure, Context, Result};
use lxcri_integration::{procfs, Harness, Runtime};
use serde_json::json;
use std::fs;
use std::path::Path;

matrix!(
    hostname,
    env,
    cwd,
    user_and_groups,
    read_only_rootfs,
    default_mounts,
    cgroup_mount,
    pid_namespace,
    capabilities_like_runc,
    no_new_privileges,
    oom_score_adj,
    rlimits,
    cgroup_placement,
    memory_limit,
);

fn hostname(h: &mut Harness) -> Result<()> {
    let id = h.id("hostname");
    let mut spec = default_spec(h, &id, &["/bin/hostname"])?;
    spec["hostname"] = json!("lxe2e-host");
    expect(&run_spec(h, &id, &spec)?, 0, "lxe2e-host\n")
}

fn env(h: &mut Harness) -> Result<()> {
    let cmd = ["/bin/sh", "-c", "echo $FOO-$BAR"];
    let out = h.run_rootfs("env", &["--env", "FOO=foo", "--env", "BAR=a b"], &cmd)?;
    expect(&out, 0, "foo-a b\n")
}

fn cwd(h: &mut Harness) -> Result<()> {
    let out = h.run_rootfs("cwd", &["--cwd", "/tmp"], &["/bin/pwd"])?;
    expect(&out, 0, "/tmp\n")
}

fn user_and_groups(h: &mut Harness) -> Result<()> {
    let id = h.id("user");
    let mut spec = default_spec(h, &id, &["/bin/id"])?;
    spec["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [1000, 65534]});
    let out = run_spec(h, &id, &spec)?;
    expect(
        &out,
        0,
        "uid=1000(test) gid=1000(test) groups=1000(test),65534(nogroup)\n",
    )
}

fn read_only_rootfs(h: &mut Harness) -> Result<()> {
    let out = h.run_rootfs("ro", &["--read-only"], &["/bin/touch", "/written"])?;
    ensure!(
        out.code != 0,
        "write to a read-only rootfs succeeded: {out}"
    );
    ensure!(out.stderr.contains("Read-only file system"), "{out}");
    Ok(())
}

/// Every mount of containerd's default spec (`ctr oci spec`: proc, /dev
/// tmpfs, devpts, shm, mqueue, sysfs, /run) shows up with its fs type.
fn default_mounts(h: &mut Harness) -> Result<()> {
    let id = h.id("mounts");
    let spec = default_spec(h, &id, &["/bin/cat", "/proc/mounts"])?;
    let out = run_spec(h, &id, &spec)?.ok()?;
    let mounted = mount_table(&out.stdout);
    let wanted = spec["mounts"].as_array().context("spec mounts")?;
    ensure!(wanted.len() >= 6, "default spec has few mounts: {wanted:?}");
    for m in wanted {
        let want = (m["destination"].as_str(), m["type"].as_str());
        let want = (want.0.unwrap_or_default(), want.1.unwrap_or_default());
        ensure!(
            mounted.contains(&want),
            "mount {want:?} missing:\n{}",
            out.stdout
        );
    }
    Ok(())
}

/// A cgroup mount at /sys/fs/cgroup (what CRI adds to the spec).
fn cgroup_mount(h: &mut Harness) -> Result<()> {
    let id = h.id("cgmount");
    let mut spec = default_spec(h, &id, &["/bin/cat", "/proc/mounts"])?;
    let options = ["ro", "nosuid", "noexec", "nodev"];
    let cgroup = json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": options});
    spec["mounts"]
        .as_array_mut()
        .context("spec mounts")?
        .push(cgroup);
    let out = run_spec(h, &id, &spec)?.ok()?;
    let found = mount_table(&out.stdout)
        .iter()
        .any(|(dst, ty)| dst.starts_with("/sys/fs/cgroup") && ty.starts_with("cgroup"));
    ensure!(
        found,
        "no cgroup mount under /sys/fs/cgroup:\n{}",
        out.stdout
    );
    Ok(())
}

/// (mount point, fs type) pairs of /proc/mounts text.
fn mount_table(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((*f.get(1)?, *f.get(2)?))
        })
        .collect()
}

fn pid_namespace(h: &mut Harness) -> Result<()> {
    let out = h.run_rootfs("pid1", &[], &["/bin/sh", "-c", "echo $$"])?;
    expect(&out, 0, "1\n")
}

/// Same capability sets as runc for the same (default) spec.
fn capabilities_like_runc(h: &mut Harness) -> Result<()> {
    let id = h.id("caps");
    let spec = default_spec(h, &id, &["/bin/grep", "Cap", "/proc/self/status"])?;
    let ours = run_spec(h, &id, &spec)?.ok()?;
    let ref_id = h.id("caps-runc");
    let spec = default_spec(h, &ref_id, &["/bin/grep", "Cap", "/proc/self/status"])?;
    let runc = run_spec_runtime(h, Runtime::Runc.name(), &ref_id, &spec)?.ok()?;
    ensure!(
        ours.stdout == runc.stdout,
        "capabilities differ from runc:\n{}\nrunc:\n{}",
        ours.stdout,
        runc.stdout
    );
    ensure!(
        ours.stdout.contains("CapBnd:\t00000000a80425fb"),
        "{}",
        ours.stdout
    );
    Ok(())
}

fn no_new_privileges(h: &mut Harness) -> Result<()> {
    let id = h.id("nnp");
    let mut spec = default_spec(h, &id, &["/bin/grep", "NoNewPrivs", "/proc/self/status"])?;
    spec["process"]["noNewPrivileges"] = json!(true);
    expect(&run_spec(h, &id, &spec)?, 0, "NoNewPrivs:\t1\n")
}

fn oom_score_adj(h: &mut Harness) -> Result<()> {
    let id = h.id("oom");
    let mut spec = default_spec(h, &id, &["/bin/cat", "/proc/self/oom_score_adj"])?;
    spec["process"]["oomScoreAdj"] = json!(321);
    expect(&run_spec(h, &id, &spec)?, 0, "321\n")
}

fn rlimits(h: &mut Harness) -> Result<()> {
    let id = h.id("rlimits");
    let script = "ulimit -n; ulimit -Hn";
    let mut spec = default_spec(h, &id, &["/bin/sh", "-c", script])?;
    spec["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 1234, "soft": 1000}]);
    expect(&run_spec(h, &id, &spec)?, 0, "1000\n1234\n")
}

/// The container sees itself in /default/<id> (ctr's cgroupsPath) in every
/// hierarchy (this host has no cgroup namespace in the default spec).
fn cgroup_placement(h: &mut Harness) -> Result<()> {
    let out = h
        .run_rootfs("cgroup", &[], &["/bin/cat", "/proc/self/cgroup"])?
        .ok()?;
    check_cgroup_lines(&out.stdout, "lxe2e-cgroup")
}

fn check_cgroup_lines(text: &str, id: &str) -> Result<()> {
    let want = format!("/default/{id}");
    ensure!(!text.is_empty(), "no cgroups");
    for line in text.lines() {
        ensure!(
            line.ends_with(&want),
            "cgroup {line:?}, want *{want}:\n{text}"
        );
    }
    Ok(())
}

/// `--memory-limit` lands in the container's memory cgroup on the host, and
/// the init (seen from the host) is in that cgroup in every hierarchy.
fn memory_limit(h: &mut Harness) -> Result<()> {
    let limit = "67108864";
    let id = run_detached(
        h,
        "memlimit",
        &["--memory-limit", limit],
        &["/bin/sleep", "1000"],
    )?;
    let result = check_memory_limit(h, &id, limit);
    let cleanup = remove(h, &id);
    result.and(cleanup)
}

fn check_memory_limit(h: &mut Harness, id: &str, limit: &str) -> Result<()> {
    let pid = wait_status(h, id, "RUNNING")?.pid;
    let v1 = Path::new("/sys/fs/cgroup/memory/default").join(id);
    let (dir, file) = if v1.exists() {
        (v1, "memory.limit_in_bytes")
    } else {
        (Path::new("/sys/fs/cgroup/default").join(id), "memory.max")
    };
    let value = fs::read_to_string(dir.join(file)).with_context(|| format!("{}", dir.display()))?;
    ensure!(value.trim() == limit, "{file} = {value}, want {limit}");
    let host = procfs::process(pid).context("init gone")?.cgroups;
    check_cgroup_lines(&host, id)?;
    let procs = fs::read_to_string(dir.join("cgroup.procs"))?;
    ensure!(
        procs.lines().any(|p| p == pid.to_string()),
        "init {pid} not in {}: {procs}",
        dir.display()
    );
    Ok(())
}
