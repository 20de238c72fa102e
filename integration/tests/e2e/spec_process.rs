//! Runtime spec 1.2/1.3 fields of the process and of `linux` that runc 1.2/1.3
//! applies right before the exec: `process.ioPriority`, `process.scheduler`,
//! `process.execCPUAffinity`, `linux.memoryPolicy`, and `linux.netDevices`.
//!
//! The reference runc of this host (Debian's 1.1.5) knows none of them, and
//! containerd 1.6's ctr drops them from a `--config` spec: lxcri on containerd
//! 2.x only. The values are read by the test program's `procinfo` mode (ioprio_get,
//! sched_getattr, sched_getaffinity, get_mempolicy), bind-mounted into a tmpfs of
//! the container.

use crate::matrix_lxcri_v2;
use crate::util::{default_spec, exec, expect, remove, run_spec, run_spec_detached, wait_status};
use anyhow::{ensure, Context, Result};
use lxcri_integration::registry::TESTIMG;
use lxcri_integration::Harness;
use serde_json::{json, Value};
use std::process::Command;

matrix_lxcri_v2!(
    io_priority_and_scheduler,
    scheduler_refused_like_runc,
    exec_cpu_affinity,
    memory_policy,
    net_devices_moved_and_renamed,
);

/// Where `procinfo` is inside the container.
const PROCINFO: &str = "/lxe2e/procinfo";

/// The default spec running `args`, with the procinfo program mounted.
fn probe_spec(h: &Harness, id: &str, args: &[&str]) -> Result<Value> {
    let mut spec = default_spec(h, id, args)?;
    let mounts = spec["mounts"]
        .as_array_mut()
        .context("no mounts in the default spec")?;
    mounts.push(
        json!({"destination": "/lxe2e", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", "size=1m"]}),
    );
    mounts.push(
        json!({"destination": PROCINFO, "type": "bind", "source": TESTIMG,
                       "options": ["rbind", "ro"]}),
    );
    Ok(spec)
}

/// A detached container (sleeping) from `spec`; `f` runs against it, then it
/// is removed.
fn with_container(
    h: &mut Harness,
    id: &str,
    spec: &Value,
    f: impl FnOnce(&mut Harness, &str) -> Result<()>,
) -> Result<()> {
    run_spec_detached(h, id, spec)?;
    let result = wait_status(h, id, "RUNNING").and_then(|_| f(h, id));
    let cleanup = remove(h, id);
    result.and(cleanup)
}

/// The I/O priority and the scheduler reach the init and every exec (ctr
/// copies the container's process for an exec). The RT I/O class, a negative
/// nice and SCHED_DEADLINE need CAP_SYS_NICE or CAP_SYS_ADMIN, which the
/// default spec's process does not keep: they are set before the capabilities
/// are dropped, as runc does.
fn io_priority_and_scheduler(h: &mut Harness) -> Result<()> {
    let id = h.id("ioprio");
    let mut spec = probe_spec(h, &id, &[PROCINFO])?;
    spec["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_RT", "priority": 3});
    // The runtime spec's flag name (oci-spec 0.9 spells it otherwise).
    spec["process"]["scheduler"] =
        json!({"policy": "SCHED_OTHER", "nice": -5, "flags": ["SCHED_FLAG_RESET_ON_FORK"]});
    expect(
        &run_spec(h, &id, &spec)?,
        0,
        "ioprio=1/3 policy=0 nice=-5 rtprio=0 cpus=0-1 mempolicy=0 nodes=-\n",
    )?;

    let id = h.id("sched-dl");
    let mut spec = probe_spec(h, &id, &[PROCINFO])?;
    spec["process"]["scheduler"] = json!({"policy": "SCHED_DEADLINE",
        "runtime": 1_000_000, "deadline": 10_000_000, "period": 10_000_000});
    expect(
        &run_spec(h, &id, &spec)?,
        0,
        "ioprio=0/0 policy=6 nice=0 rtprio=0 cpus=0-1 mempolicy=0 nodes=-\n",
    )?;

    let id = h.id("sched-exec");
    let mut spec = probe_spec(h, &id, &["/bin/sleep", "1000"])?;
    spec["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    // The runtime spec's flag name again: the shim parses each exec's process
    // (ctr copies the container's) with runtime-core's parser too.
    spec["process"]["scheduler"] =
        json!({"policy": "SCHED_BATCH", "nice": 3, "flags": ["SCHED_FLAG_RESET_ON_FORK"]});
    with_container(h, &id, &spec, |h, id| {
        // The init (pid 1 in the container) too.
        let out = exec(
            h,
            id,
            "init",
            &["/bin/sh", "-c", "cut -d' ' -f19,41 /proc/1/stat"],
        )?;
        expect(&out, 0, "3 3\n")?;
        let out = exec(h, id, "probe", &[PROCINFO])?;
        expect(
            &out,
            0,
            "ioprio=3/0 policy=3 nice=3 rtprio=0 cpus=0-1 mempolicy=0 nodes=-\n",
        )
    })
}

/// runc's validation: errors name the field, nothing runs.
fn scheduler_refused_like_runc(h: &mut Harness) -> Result<()> {
    for (name, field, value) in [
        (
            "sched-prio",
            "process.scheduler.priority",
            json!({"scheduler": {"policy": "SCHED_OTHER", "priority": 5}}),
        ),
        (
            "sched-nice",
            "process.scheduler.nice",
            json!({"scheduler": {"policy": "SCHED_BATCH", "nice": 25}}),
        ),
        (
            "ioprio-bad",
            "process.ioPriority.priority",
            json!({"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 9}}),
        ),
    ] {
        let id = h.id(name);
        let mut spec = default_spec(h, &id, &["/bin/echo", "ran"])?;
        for (k, v) in value.as_object().context("object")? {
            spec["process"][k] = v.clone();
        }
        let out = run_spec(h, &id, &spec)?;
        ensure!(
            out.code != 0 && !out.stdout.contains("ran") && out.stderr.contains(field),
            "{name}: want a failure naming {field}, got {out}"
        );
    }
    Ok(())
}

/// `execCPUAffinity` is not the init's (it keeps every CPU); an exec ends on
/// `final`, or on `initial` when there is no `final` (runc 1.3); the runtime's
/// helper that enters the container runs on `initial`.
fn exec_cpu_affinity(h: &mut Harness) -> Result<()> {
    let status_cpus = "grep Cpus_allowed_list /proc/1/status | cut -f2";
    for (name, affinity, want) in [
        ("aff-both", json!({"initial": "1", "final": "0"}), "0"),
        ("aff-initial", json!({"initial": "1"}), "1"),
        ("aff-final", json!({"final": "1"}), "1"),
    ] {
        let id = h.id(name);
        let mut spec = probe_spec(h, &id, &["/bin/sleep", "1000"])?;
        spec["process"]["execCPUAffinity"] = affinity;
        with_container(h, &id, &spec, |h, id| {
            expect(
                &exec(h, id, "init", &["/bin/sh", "-c", status_cpus])?,
                0,
                "0-1\n",
            )?;
            let out = exec(h, id, "probe", &[PROCINFO])?;
            expect(
                &out,
                0,
                &format!("ioprio=0/0 policy=0 nice=0 rtprio=0 cpus={want} mempolicy=0 nodes=-\n"),
            )?;
            if name == "aff-both" {
                // The runtime's side (the attach helper, which waits for the
                // process) runs on `initial`.
                h.ctr_ok(&[
                    "task",
                    "exec",
                    "-d",
                    "--exec-id",
                    "bg",
                    id,
                    "/bin/sleep",
                    "30",
                ])?;
                let cpus = helper_cpus(id)?;
                ensure!(
                    cpus == "1",
                    "the attach helper runs on CPUs {cpus:?}, want 1"
                );
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Cpus_allowed_list of the container's attach helper (`lxcri-attach ID ...`).
fn helper_cpus(id: &str) -> Result<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let helper = lxcri_integration::procfs::processes()
            .into_iter()
            .find(|p| {
                let mut args = p.cmdline.split(' ');
                args.next().is_some_and(|a| a.ends_with("/lxcri-attach")) && args.next() == Some(id)
            });
        if let Some(p) = helper {
            let status = std::fs::read_to_string(format!("/proc/{}/status", p.pid))?;
            return status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|v| v.trim().to_string())
                .context("no Cpus_allowed_list");
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "no lxcri-attach process for {id}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `linux.memoryPolicy` applies to the init and to execs (MPOL_BIND is 2,
/// MPOL_F_STATIC_NODES 1 << 15).
fn memory_policy(h: &mut Harness) -> Result<()> {
    let id = h.id("mpol");
    let mut spec = probe_spec(h, &id, &[PROCINFO])?;
    spec["linux"]["memoryPolicy"] =
        json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]});
    expect(
        &run_spec(h, &id, &spec)?,
        0,
        "ioprio=0/0 policy=0 nice=0 rtprio=0 cpus=0-1 mempolicy=32770 nodes=0\n",
    )?;

    let id = h.id("mpol-exec");
    let mut spec = probe_spec(h, &id, &["/bin/sleep", "1000"])?;
    spec["linux"]["memoryPolicy"] = json!({"mode": "MPOL_PREFERRED", "nodes": "0"});
    with_container(h, &id, &spec, |h, id| {
        expect(
            &exec(h, id, "probe", &[PROCINFO])?,
            0,
            "ioprio=0/0 policy=0 nice=0 rtprio=0 cpus=0-1 mempolicy=1 nodes=0\n",
        )
    })?;

    let id = h.id("mpol-bad");
    let mut spec = default_spec(h, &id, &["/bin/echo", "ran"])?;
    spec["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND"});
    let out = run_spec(h, &id, &spec)?;
    ensure!(
        out.code != 0 && out.stderr.contains("linux.memoryPolicy.nodes"),
        "want a failure naming linux.memoryPolicy.nodes, got {out}"
    );
    Ok(())
}

const HOST_DEV: &str = "lxcritest0";
/// Its veth peer, which stays on the host (this host's kernel has no dummy
/// device type).
const PEER_DEV: &str = "lxcritest1";

/// The pair, with a permanent global IPv4 and IPv6 address on the end that moves.
fn add_host_dev() -> Result<()> {
    ip(&[
        "link", "add", HOST_DEV, "type", "veth", "peer", "name", PEER_DEV,
    ])?;
    ip(&["addr", "add", "192.0.2.10/24", "dev", HOST_DEV])?;
    ip(&["addr", "add", "2001:db8::10/64", "dev", HOST_DEV])
}

/// Removes the pair, wherever its host end is.
fn del_host_dev() -> Result<()> {
    for dev in [HOST_DEV, PEER_DEV] {
        if host_has(dev) {
            return ip(&["link", "del", dev]);
        }
    }
    Ok(())
}

fn host_has(dev: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(dev).exists()
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().context("run ip")?;
    ensure!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A veth end of the host is moved into the container's network
/// namespace under a new name and is up there, with its global addresses (as
/// runc); the host no longer has it while
/// the container runs. After the delete it is back on the host under its name
/// (the LXC monitor returns it) or gone with its peer (a virtual device dies
/// with the namespace, what runc leaves to the kernel); never under the
/// container's name.
fn net_devices_moved_and_renamed(h: &mut Harness) -> Result<()> {
    del_host_dev()?;
    add_host_dev()?;
    let result = net_devices_inner(h);
    let cleanup = del_host_dev();
    result.and(cleanup)
}

fn net_devices_inner(h: &mut Harness) -> Result<()> {
    let id = h.id("netdev");
    let mut spec = default_spec(h, &id, &["/bin/sleep", "1000"])?;
    spec["linux"]["netDevices"] = json!({HOST_DEV: {"name": "ctr0"}});
    with_container(h, &id, &spec, |h, id| {
        ensure!(
            !host_has(HOST_DEV),
            "{HOST_DEV} is still on the host while the container runs"
        );
        let script = "ls /sys/class/net | sort | tr '\\n' ' '; echo; \
                      echo $(( $(cat /sys/class/net/ctr0/flags) & 1 )); \
                      ip -o addr show dev ctr0 scope global | awk '{print $3, $4}'";
        expect(
            &exec(h, id, "ls", &["/bin/sh", "-c", script])?,
            0,
            "ctr0 lo \n1\ninet 192.0.2.10/24\ninet6 2001:db8::10/64\n",
        )
    })?;
    let back = host_has(HOST_DEV);
    eprintln!("net_devices: after the delete {HOST_DEV} is back on the host: {back}");
    ensure!(
        back == host_has(PEER_DEV),
        "{HOST_DEV} on the host: {back}, its peer: {}",
        !back
    );
    ensure!(
        !Command::new("ip")
            .args(["-o", "link"])
            .output()?
            .stdout
            .windows(5)
            .any(|w| w == b"ctr0:"),
        "the renamed device is left on the host"
    );

    // Without a new network namespace: refused, the device stays.
    let id = h.id("netdev-hostnet");
    let mut spec = default_spec(h, &id, &["/bin/echo", "ran"])?;
    spec["linux"]["netDevices"] = json!({HOST_DEV: {}});
    if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "network");
    }
    if !host_has(HOST_DEV) {
        del_host_dev()?;
        add_host_dev()?;
    }
    let out = run_spec(h, &id, &spec)?;
    ensure!(
        out.code != 0 && out.stderr.contains("linux.netDevices"),
        "want a failure naming linux.netDevices, got {out}"
    );
    ensure!(host_has(HOST_DEV), "{HOST_DEV} left the host");
    Ok(())
}
