//! A pure cgroup v2 host with systemd as PID 1: the VM of scripts/vm
//! (`make e2e-vm`; `make e2e` skips this module). Every scenario first
//! asserts it runs on such a host and fails otherwise. The container's cgroup
//! is read on the host side (/sys/fs/cgroup/default/<id>, the cgroupsPath
//! containerd gives), with runc as the reference where it honours the field.

use crate::util::{default_spec, remove, run_detached, run_spec, run_spec_detached, wait_status};
use crate::{matrix, matrix_v2};
use anyhow::{ensure, Context, Result};
use lxcri_integration::{cmd, Harness, Runtime, Version};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

matrix!(
    memory_limits,
    pause_and_resume,
    metrics,
    oom_event,
    rdma,
    systemd_cgroup_option,
);
matrix_v2!(
    cpu_weight_and_max,
    cpuset_and_pids,
    io_weight_and_max,
    hugetlb,
    unified,
    devices,
    apparmor_label,
    apparmor_profile,
);

/// Fails unless /sys/fs/cgroup is cgroup2 with no v1 hierarchy mounted and
/// PID 1 is systemd.
fn v2_systemd_host() -> Result<()> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let (mut unified_root, mut v1) = (false, Vec::new());
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let target = pre.split(' ').nth(4).unwrap_or_default();
        match post.split(' ').next() {
            Some("cgroup2") if target == "/sys/fs/cgroup" => unified_root = true,
            Some("cgroup") => v1.push(target.to_string()),
            _ => {}
        }
    }
    ensure!(
        unified_root && v1.is_empty(),
        "not a pure cgroup v2 host (cgroup2 at /sys/fs/cgroup: {unified_root}, v1 hierarchies: \
         {v1:?}): the v2host tests run in the VM, `make e2e-vm`"
    );
    let comm = std::fs::read_to_string("/proc/1/comm")?;
    ensure!(
        comm.trim() == "systemd",
        "PID 1 is {:?}, not systemd: the v2host tests run in the VM, `make e2e-vm`",
        comm.trim()
    );
    Ok(())
}

/// The container's cgroup dir in the unified hierarchy.
fn cgroup_dir(id: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup/default").join(id)
}

fn read(id: &str, file: &str) -> Result<String> {
    let p = cgroup_dir(id).join(file);
    Ok(std::fs::read_to_string(&p)
        .with_context(|| p.display().to_string())?
        .trim()
        .to_string())
}

/// Runs `spec` (after `edit`) detached with a sleeping init, checks the
/// cgroup files `want` (file, content) on the host, removes the container.
fn check_files(
    h: &mut Harness,
    name: &str,
    edit: impl FnOnce(&mut Value),
    want: &[(&str, &str)],
) -> Result<()> {
    v2_systemd_host()?;
    let id = h.id(name);
    let mut spec = default_spec(h, &id, &["/bin/sleep", "1000"])?;
    edit(&mut spec);
    run_spec_detached(h, &id, &spec)?;
    let result = (|| {
        wait_status(h, &id, "RUNNING")?;
        let mut got = Vec::new();
        for (file, _) in want {
            got.push(read(&id, file)?);
        }
        let want: Vec<&str> = want.iter().map(|(_, v)| *v).collect();
        ensure!(got == want, "cgroup files: got {got:?}, want {want:?}");
        Ok(())
    })();
    let cleanup = remove(h, &id);
    result.and(cleanup)
}

/// limit -> memory.max, swap (memory+swap) -> memory.swap.max (swap alone,
/// runc's conversion), reservation -> memory.low.
fn memory_limits(h: &mut Harness) -> Result<()> {
    check_files(
        h,
        "v2mem",
        |s| {
            s["linux"]["resources"]["memory"] =
                json!({"limit": 67108864, "swap": 134217728, "reservation": 33554432});
        },
        &[
            ("memory.max", "67108864"),
            ("memory.swap.max", "67108864"),
            ("memory.low", "33554432"),
        ],
    )
}

/// shares 256 -> cpu.weight 10 (runc: 1 + (shares-2)*9999/262142), quota and
/// period -> cpu.max.
fn cpu_weight_and_max(h: &mut Harness) -> Result<()> {
    check_files(
        h,
        "v2cpu",
        |s| {
            s["linux"]["resources"]["cpu"] =
                json!({"shares": 256, "quota": 30000, "period": 60000});
        },
        &[("cpu.weight", "10"), ("cpu.max", "30000 60000")],
    )
}

fn cpuset_and_pids(h: &mut Harness) -> Result<()> {
    check_files(
        h,
        "v2set",
        |s| {
            s["linux"]["resources"]["cpu"] = json!({"cpus": "1", "mems": "0"});
            s["linux"]["resources"]["pids"] = json!({"limit": 42});
        },
        &[
            ("cpuset.cpus", "1"),
            ("cpuset.mems", "0"),
            ("cpuset.cpus.effective", "1"),
            ("pids.max", "42"),
        ],
    )
}

/// The VM's scratch disk (run.sh gives the guest a virtio disk, vda).
fn vda() -> Result<(i64, i64)> {
    let dev = std::fs::read_to_string("/sys/block/vda/dev")
        .context("no /sys/block/vda: the VM of scripts/vm/run.sh has a scratch disk")?;
    let (major, minor) = dev.trim().split_once(':').context("dev")?;
    Ok((major.parse()?, minor.parse()?))
}

/// weight 500 -> io.weight "default 4950" (runc's conversion without BFQ),
/// throttles -> one io.max line for the device.
fn io_weight_and_max(h: &mut Harness) -> Result<()> {
    v2_systemd_host()?;
    let (major, minor) = vda()?;
    let line = format!("{major}:{minor} rbps=1048576 wbps=max riops=max wiops=150");
    check_files(
        h,
        "v2io",
        |s| {
            s["linux"]["resources"]["blockIO"] = json!({
                "weight": 500,
                "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
                "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 150}]
            });
        },
        &[("io.weight", "default 4950"), ("io.max", &line)],
    )
}

fn hugetlb(h: &mut Harness) -> Result<()> {
    check_files(
        h,
        "v2huge",
        |s| {
            s["linux"]["resources"]["hugepageLimits"] =
                json!([{"pageSize": "2MB", "limit": 4194304}]);
        },
        &[("hugetlb.2MB.max", "4194304")],
    )
}

/// `unified` keys are written as given.
fn unified(h: &mut Harness) -> Result<()> {
    check_files(
        h,
        "v2uni",
        |s| {
            s["linux"]["resources"]["unified"] =
                json!({"memory.high": "50331648", "pids.max": "17"});
        },
        &[("memory.high", "50331648"), ("pids.max", "17")],
    )
}

/// A soft-RoCE RDMA device for one scenario: the rdma_rxe link `rxelx<n>` on
/// the dummy netdev `lxrdma<n>` (the VM has no network), so that the rdma
/// controller has a device to limit. [`SoftRoce::remove`] (or the drop, on an
/// early return) deletes both.
struct SoftRoce {
    /// The RDMA device's name, as rdma.max and /sys/class/infiniband show it.
    dev: String,
    netdev: String,
}

/// Runs a set-up command of the host; fails with its output unless it succeeds.
fn host_cmd(args: &[&str]) -> Result<()> {
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| args[0].to_string())?;
    ensure!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

impl SoftRoce {
    fn add(n: u32) -> Result<SoftRoce> {
        host_cmd(&["modprobe", "dummy"])?;
        host_cmd(&["modprobe", "rdma_rxe"])?;
        let d = SoftRoce {
            dev: format!("rxelx{n}"),
            netdev: format!("lxrdma{n}"),
        };
        host_cmd(&["ip", "link", "add", &d.netdev, "type", "dummy"])?;
        host_cmd(&["ip", "link", "set", &d.netdev, "up"])?;
        host_cmd(&[
            "rdma", "link", "add", &d.dev, "type", "rxe", "netdev", &d.netdev,
        ])?;
        let sys = Path::new("/sys/class/infiniband").join(&d.dev);
        ensure!(
            sys.exists(),
            "{} missing after rdma link add",
            sys.display()
        );
        Ok(d)
    }

    fn remove(mut self) -> Result<()> {
        self.delete()
    }

    fn delete(&mut self) -> Result<()> {
        if self.dev.is_empty() {
            return Ok(());
        }
        let sys = Path::new("/sys/class/infiniband").join(&self.dev);
        let link = if sys.exists() {
            host_cmd(&["rdma", "link", "delete", &self.dev])
        } else {
            Ok(())
        };
        let netdev = host_cmd(&["ip", "link", "delete", &self.netdev]);
        let dev = std::mem::take(&mut self.dev);
        link.and(netdev)?;
        ensure!(!sys.exists(), "RDMA device {dev} still there");
        Ok(())
    }
}

impl Drop for SoftRoce {
    fn drop(&mut self) {
        let _ = self.delete();
    }
}

/// `linux.resources.rdma` with three soft-RoCE devices made for the scenario:
/// the container's rdma.max holds both limits of the first, the handle limit
/// of the second (its objects stay max) and max for the third, which the spec
/// does not name.
fn rdma(h: &mut Harness) -> Result<()> {
    v2_systemd_host()?;
    let controllers = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")?;
    ensure!(
        controllers.split_whitespace().any(|c| c == "rdma"),
        "no rdma controller in the VM's /sys/fs/cgroup/cgroup.controllers: {controllers:?}"
    );
    let mut devs = Vec::new();
    let result = (|| {
        for n in 0..3 {
            devs.push(SoftRoce::add(n)?);
        }
        let id = h.id("v2rdma");
        let mut spec = default_spec(h, &id, &["/bin/sleep", "1000"])?;
        spec["linux"]["resources"]["rdma"] = json!({
            devs[0].dev.as_str(): {"hcaHandles": 3, "hcaObjects": 7},
            devs[1].dev.as_str(): {"hcaHandles": 2},
        });
        run_spec_detached(h, &id, &spec)?;
        let checked = wait_status(h, &id, "RUNNING").and_then(|_| {
            let text = read(&id, "rdma.max")?;
            let mut got: Vec<&str> = text.lines().map(str::trim).collect();
            got.sort_unstable();
            let want = [
                format!("{} hca_handle=3 hca_object=7", devs[0].dev),
                format!("{} hca_handle=2 hca_object=max", devs[1].dev),
                format!("{} hca_handle=max hca_object=max", devs[2].dev),
            ];
            ensure!(got == want, "rdma.max: got {got:?}, want {want:?}");
            Ok(())
        });
        let cleanup = remove(h, &id);
        checked.and(cleanup)
    })();
    let mut removed = Ok(());
    for d in devs.into_iter().rev() {
        removed = removed.and(d.remove());
    }
    result.and(removed)
}

/// liblxc's eBPF device program (runc's too): /dev/null works; mknod of any
/// device is allowed, opening one outside the allowed list is not.
fn devices(h: &mut Harness) -> Result<()> {
    v2_systemd_host()?;
    let id = h.id("v2dev");
    let script = "echo x >/dev/null && echo null-ok; \
                  mknod /dev/lxmem c 1 1 && echo mknod-ok; \
                  head -c1 /dev/lxmem >/dev/null 2>&1 && echo mem-read || echo mem-denied";
    let spec = default_spec(h, &id, &["/bin/sh", "-c", script])?;
    let out = run_spec(h, &id, &spec)?.ok()?;
    ensure!(
        out.stdout == "null-ok\nmknod-ok\nmem-denied\n",
        "devices: {out}"
    );
    Ok(())
}

/// The guest's kernel has AppArmor on (as Debian's does) with the host's
/// profiles loaded (liblxc's lxc-container-default-cgns among them). A spec
/// without `process.apparmorProfile` runs unconfined, under runc and lxcri
/// alike (liblxc applies no default profile to lxcri's containers).
fn apparmor_label(h: &mut Harness) -> Result<()> {
    v2_systemd_host()?;
    let enabled = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .context("AppArmor module parameters")?;
    ensure!(enabled.trim() == "Y", "AppArmor is not enabled in the VM");
    let id = h.id("v2aa");
    let spec = default_spec(h, &id, &["/bin/cat", "/proc/self/attr/current"])?;
    let out = run_spec(h, &id, &spec)?.ok()?;
    ensure!(out.stdout == "unconfined\n", "AppArmor label: {out}");
    Ok(())
}

/// `process.apparmorProfile`: the container's process runs confined by the
/// profile (loaded for the test with apparmor_parser): its label says so and
/// a write the profile denies fails while others work. A profile that is not
/// loaded fails the start. Same as runc.
fn apparmor_profile(h: &mut Harness) -> Result<()> {
    v2_systemd_host()?;
    let dir = tempfile::tempdir()?;
    let profile = dir.path().join("lxcri-e2e-test");
    std::fs::write(
        &profile,
        "profile lxcri-e2e-test flags=(attach_disconnected,mediate_deleted) {\n\
         file,\n capability,\n network,\n signal,\n ptrace,\n unix,\n\
         mount,\n umount,\n pivot_root,\n deny /tmp/aa-denied w,\n}\n",
    )?;
    let load = std::process::Command::new("apparmor_parser")
        .arg("-r")
        .arg(&profile)
        .output()
        .context("apparmor_parser")?;
    ensure!(load.status.success(), "load the test profile: {load:?}");
    let result = (|| {
        let id = h.id("v2aaprof");
        let script = "cat /proc/self/attr/current; \
            (echo x > /tmp/aa-denied) 2>/dev/null && echo written || echo denied; \
            echo x > /tmp/aa-allowed && echo written";
        let mut spec = default_spec(h, &id, &["/bin/sh", "-c", script])?;
        spec["process"]["apparmorProfile"] = serde_json::json!("lxcri-e2e-test");
        let out = run_spec(h, &id, &spec)?.ok()?;
        ensure!(
            out.stdout == "lxcri-e2e-test (enforce)\ndenied\nwritten\n",
            "confined process: {out}"
        );
        let id = h.id("v2aamissing");
        let mut spec = default_spec(h, &id, &["/bin/true"])?;
        spec["process"]["apparmorProfile"] = serde_json::json!("lxcri-no-such-profile");
        let out = run_spec(h, &id, &spec)?;
        ensure!(
            out.code != 0,
            "a profile that is not loaded was accepted: {out}"
        );
        if h.runtime.name().contains("lxcri") {
            ensure!(
                format!("{}{}", out.stdout, out.stderr).contains("lxcri-no-such-profile"),
                "error names the profile: {out}"
            );
        }
        Ok(())
    })();
    let _ = std::process::Command::new("apparmor_parser")
        .arg("-R")
        .arg(&profile)
        .output();
    result
}

/// `ctr task pause` sets cgroup.freeze (cgroup.events says frozen), resume
/// clears it.
fn pause_and_resume(h: &mut Harness) -> Result<()> {
    v2_systemd_host()?;
    let id = run_detached(
        h,
        "v2frz",
        &[],
        &["/bin/sh", "-c", "while :; do sleep 0.2; done"],
    )?;
    let result = (|| {
        wait_status(h, &id, "RUNNING")?;
        h.ctr_ok(&["task", "pause", &id])?;
        wait_status(h, &id, "PAUSED")?;
        ensure!(
            read(&id, "cgroup.freeze")? == "1",
            "cgroup.freeze after pause"
        );
        let events = read(&id, "cgroup.events")?;
        ensure!(events.lines().any(|l| l == "frozen 1"), "{events}");
        h.ctr_ok(&["task", "resume", &id])?;
        wait_status(h, &id, "RUNNING")?;
        ensure!(
            read(&id, "cgroup.freeze")? == "0",
            "cgroup.freeze after resume"
        );
        let events = read(&id, "cgroup.events")?;
        ensure!(events.lines().any(|l| l == "frozen 0"), "{events}");
        Ok(())
    })();
    let cleanup = remove(h, &id);
    result.and(cleanup)
}

fn metric(table: &str, name: &str) -> Result<u64> {
    table
        .lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(name)).then(|| f.next().and_then(|v| v.parse().ok()))?
        })
        .with_context(|| format!("metric {name} missing in:\n{table}"))
}

/// `ctr task metrics` prints v2 Metrics: cpu, memory (and its limit), pids.
fn metrics(h: &mut Harness) -> Result<()> {
    v2_systemd_host()?;
    let id = run_detached(
        h,
        "v2met",
        &["--memory-limit", "67108864"],
        &["/bin/sh", "-c", "while :; do sleep 0.2; done"],
    )?;
    let result = (|| {
        wait_status(h, &id, "RUNNING")?;
        std::thread::sleep(std::time::Duration::from_millis(500));
        let out = h.ctr_ok(&["task", "metrics", &id])?;
        let t = &out.stdout;
        ensure!(metric(t, "cpu.usage_usec")? > 0, "cpu.usage_usec 0:\n{t}");
        ensure!(metric(t, "memory.usage")? > 0, "memory.usage 0:\n{t}");
        ensure!(
            metric(t, "memory.usage_limit")? == 67108864,
            "memory.usage_limit:\n{t}"
        );
        ensure!(metric(t, "pids.current")? >= 1, "pids.current:\n{t}");
        Ok(())
    })();
    let cleanup = remove(h, &id);
    result.and(cleanup)
}

/// Over its memory.max: /tasks/oom (memory.events oom_kill), then exit 137.
fn oom_event(h: &mut Harness) -> Result<()> {
    v2_systemd_host()?;
    let hog = "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived";
    let (run, text) = crate::util::with_events(h, |h| {
        h.run_rootfs(
            "v2oom",
            &["--memory-limit", "16777216"],
            &["/bin/sh", "-c", hog],
        )
    })?;
    let run = run?;
    ensure!(run.code == 137, "want 137 from the OOM kill: {run}");
    ensure!(
        text.lines()
            .any(|l| l.contains("lxe2e-v2oom") && l.contains("/tasks/oom")),
        "no /tasks/oom event:\n{text}"
    );
    Ok(())
}

/// LoadState, ActiveState and ControlGroup of `unit` as `systemctl show`
/// prints them, in that order.
fn unit_state(unit: &str) -> Result<[String; 3]> {
    const PROPS: [&str; 3] = ["LoadState", "ActiveState", "ControlGroup"];
    let mut c = std::process::Command::new("systemctl");
    c.arg("show");
    for p in PROPS {
        c.args(["-p", p]);
    }
    c.arg(unit);
    let out = cmd::run(&mut c, None, std::time::Duration::from_secs(30))?.ok()?;
    Ok(PROPS.map(|p| {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(p)?.strip_prefix('='))
            .unwrap_or_default()
            .to_string()
    }))
}

/// The systemd cgroup driver through containerd: lxcri gets `SystemdCgroup =
/// true` from the TOML file of `ctr run --runtime-config-path` (containerd's
/// runtimeoptions.v1.Options, what CRI sends for an `options` table too), runc
/// from `--runc-systemd-cgroup`. With `--cgroup system.slice:lxcri-e2e:<id>`
/// the init is in the transient unit `lxcri-e2e-<id>.scope`, which systemd
/// shows active with that cgroup, and which is gone after delete. Without the
/// option lxcri refuses the same `slice:prefix:name` path at Create, naming
/// the field and the option (runc would take it as a plain cgroupfs path and
/// make a cgroup literally named so).
fn systemd_cgroup_option(h: &mut Harness) -> Result<()> {
    v2_systemd_host()?;
    let id = h.id("v2sdopt");
    let cgroup = format!("system.slice:lxcri-e2e:{id}");
    let unit = format!("lxcri-e2e-{id}.scope");
    let config = h.ctd.dir().join("lxcri-shim.toml");
    std::fs::write(&config, "# lxcri shim options\nSystemdCgroup = true\n")?;
    let config = config.display().to_string();
    let rootfs = h.rootfs();
    let run = |opts: &[&str]| {
        let mut args = vec!["run", "-d", "--runtime", h.runtime.name()];
        args.extend(opts);
        args.extend([
            "--cgroup",
            &cgroup,
            "--rootfs",
            &rootfs,
            &id,
            "/bin/sleep",
            "600",
        ]);
        h.ctr(&args)
    };
    if h.runtime == Runtime::Lxcri {
        let out = run(&[])?;
        let result = (|| {
            ensure!(out.code != 0, "created without SystemdCgroup: {out}");
            ensure!(
                out.stderr.contains("linux.cgroupsPath")
                    && out.stderr.contains("is a systemd cgroup path")
                    && out.stderr.contains("SystemdCgroup = true"),
                "unclear error: {out}"
            );
            Ok(())
        })();
        remove(h, &id)?;
        result?;
    }
    let opts: &[&str] = match h.runtime {
        Runtime::Lxcri => &["--runtime-config-path", &config],
        Runtime::Runc => &["--runc-systemd-cgroup"],
    };
    let out = run(opts)?;
    ensure!(out.code == 0, "ctr run {opts:?}: {out}");
    let result = (|| {
        let pid = wait_status(h, &id, "RUNNING")?.pid;
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
        ensure!(
            own.trim() == format!("0::/system.slice/{unit}"),
            "init {pid} is in {own:?}"
        );
        let state = unit_state(&unit)?;
        let want = ["loaded", "active", &format!("/system.slice/{unit}")];
        ensure!(state == want, "{unit}: {state:?}");
        Ok(())
    })();
    let cleanup = remove(h, &id);
    result.and(cleanup)?;
    // systemd unloads a stopped transient scope on its next loop iteration.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let state = unit_state(&unit)?;
        if state[..2] == ["not-found", "inactive"] {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "{unit} after delete: {state:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let dir = Path::new("/sys/fs/cgroup/system.slice").join(&unit);
    ensure!(!dir.exists(), "{} left", dir.display());
    Ok(())
}

/// The harness's leak check sees a container's cgroup left in the unified
/// tree (and removes it).
#[test]
fn leak_check_reports_v2_cgroup_lxcri_containerd_2() {
    let run = || -> Result<()> {
        v2_systemd_host()?;
        let mut h = Harness::start_with(Version::V2, Runtime::Lxcri, "")?;
        let id = run_detached(&mut h, "v2leak", &[], &["/bin/sleep", "1000"])?;
        wait_status(&h, &id, "RUNNING")?;
        let Err(err) = h.finish() else {
            anyhow::bail!("finish() passed with a running container left");
        };
        let report = format!("{err:#}");
        let want = format!("cgroup: {}", cgroup_dir(&id).display());
        ensure!(report.contains(&want), "report lacks {want:?}:\n{report}");
        ensure!(
            !cgroup_dir(&id).exists(),
            "the leak check left {}",
            cgroup_dir(&id).display()
        );
        Ok(())
    };
    run().unwrap_or_else(|e| panic!("{e:#}"));
}
