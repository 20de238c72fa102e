//! The systemd cgroup driver, end to end. These tests need systemd as PID 1 on
//! a pure cgroup v2 host or a hybrid one (v1 controllers, as on our CI hosts):
//! they run in the VM of scripts/vm, booted once each way (`make e2e-vm`, see
//! docs/vm.md), never on the build host, whose PID 1 is not systemd (there they
//! fail at once, saying so).
//!
//! Each scenario runs for lxcri (`--systemd-cgroup`) and, as the reference,
//! Debian's runc 1.1.5 (`--systemd-cgroup`), with the same bundle and the same
//! assertions: the init in `/system.slice/<prefix>-<id>.scope`, the unit's
//! properties as `systemctl show` prints them, the limits after `systemctl
//! daemon-reload`, a live update, and no unit and no cgroup after delete.

use anyhow::{bail, ensure, Context, Result};
use lxcri_integration::cli::{run_files, CliEnv, Subreaper, LXCRI};
use lxcri_integration::Output;
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn check(r: Result<()>) {
    if let Err(e) = r {
        panic!("{e:#}");
    }
}

/// The VM's cgroup layout.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Host {
    /// Pure cgroup v2.
    V2,
    /// systemd's hybrid layout: v1 controllers, systemd's own v2 tree at
    /// /sys/fs/cgroup/unified.
    Hybrid,
}

fn need_systemd() -> Result<Host> {
    ensure!(
        Path::new("/run/systemd/system").is_dir(),
        "these tests need systemd as PID 1 (run them in the VM: make e2e-vm)"
    );
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return Ok(Host::V2);
    }
    ensure!(
        Path::new("/sys/fs/cgroup/systemd").is_dir() && Path::new("/sys/fs/cgroup/memory").is_dir(),
        "these tests need a cgroup v2 or a hybrid cgroup host (the VM)"
    );
    Ok(Host::Hybrid)
}

impl Host {
    /// The dir of cgroup `rel` for `controller` (its v1 hierarchy on a hybrid host).
    fn dir(self, controller: &str, rel: &str) -> PathBuf {
        let root = Path::new("/sys/fs/cgroup");
        match self {
            Host::V2 => root.join(rel),
            Host::Hybrid => root.join(controller).join(rel),
        }
    }

    /// The cgroup of `pid`: v2's, or its memory controller's on a hybrid host.
    fn cgroup_of(self, pid: &str) -> Result<String> {
        let all = read(Path::new(&format!("/proc/{pid}/cgroup")))?;
        let key = match self {
            Host::V2 => "0:",
            Host::Hybrid => ":memory:",
        };
        all.lines()
            .find_map(|l| {
                l.find(key)
                    .map(|i| l[i + key.len()..].trim_start_matches(':').to_string())
            })
            .with_context(|| format!("no {key} line in /proc/{pid}/cgroup: {all:?}"))
    }

    /// The files of the limits the spec below sets: (controller, file, value).
    fn limits(self) -> &'static [(&'static str, &'static str, &'static str)] {
        match self {
            Host::V2 => &[
                ("", "memory.max", "67108864"),
                ("", "cpu.max", "50000 100000"),
                ("", "pids.max", "100"),
                ("", "cpu.weight", "39"),
            ],
            Host::Hybrid => &[
                ("memory", "memory.limit_in_bytes", "67108864"),
                ("cpu,cpuacct", "cpu.cfs_quota_us", "50000"),
                ("cpu,cpuacct", "cpu.cfs_period_us", "100000"),
                ("pids", "pids.max", "100"),
                ("cpu,cpuacct", "cpu.shares", "1024"),
            ],
        }
    }

    /// systemd's names of the memory limit and the CPU share.
    fn memory_prop(self) -> &'static str {
        match self {
            Host::V2 => "MemoryMax",
            Host::Hybrid => "MemoryLimit",
        }
    }

    fn cpu_share(self) -> (&'static str, &'static str) {
        match self {
            Host::V2 => ("CPUWeight", "39"),
            Host::Hybrid => ("CPUShares", "1024"),
        }
    }

    /// The memory limit file and the pids limit file of cgroup `rel`.
    fn memory_and_pids(self, rel: &str) -> (PathBuf, PathBuf) {
        match self {
            Host::V2 => (
                self.dir("", rel).join("memory.max"),
                self.dir("", rel).join("pids.max"),
            ),
            Host::Hybrid => (
                self.dir("memory", rel).join("memory.limit_in_bytes"),
                self.dir("pids", rel).join("pids.max"),
            ),
        }
    }
}

fn sh(dir: &Path, prog: &str, args: &[&str]) -> Result<Output> {
    run_files(Command::new(prog).args(args), dir, Duration::from_secs(120))
}

/// `systemctl show -p A -p B unit` as a map.
fn show(dir: &Path, unit: &str, props: &[&str]) -> Result<Vec<(String, String)>> {
    let mut args = vec!["show"];
    for p in props {
        args.push("-p");
        args.push(p);
    }
    args.push(unit);
    let out = sh(dir, "systemctl", &args)?.ok()?;
    Ok(out
        .stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect())
}

fn prop(props: &[(String, String)], name: &str) -> String {
    props
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// Wait (up to 10 s) until systemd has unloaded `unit` (a stopped transient
/// unit is garbage-collected on systemd's next loop iteration).
fn wait_unit_gone(dir: &Path, unit: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = show(dir, unit, &["LoadState", "ActiveState"])?;
        if prop(&p, "LoadState") == "not-found" && prop(&p, "ActiveState") == "inactive" {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("unit {unit} left: {p:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read(p: &Path) -> Result<String> {
    Ok(fs::read_to_string(p)
        .with_context(|| format!("read {}", p.display()))?
        .trim()
        .to_string())
}

/// A runtime under test: its binary and global flags.
struct Rt {
    name: &'static str,
    bin: &'static str,
    prefix: &'static str,
}

const LXCRI_RT: Rt = Rt {
    name: "lxcri",
    bin: LXCRI,
    prefix: "lxcri",
};
const RUNC_RT: Rt = Rt {
    name: "runc",
    bin: "/usr/sbin/runc",
    prefix: "runc",
};

fn rt_cmd(env: &CliEnv, rt: &Rt, root: &Path, args: &[&str]) -> Result<Output> {
    let mut cmd = Command::new(rt.bin);
    cmd.arg("--root")
        .arg(root)
        .arg("--systemd-cgroup")
        .args(args);
    run_files(&mut cmd, env.dir.path(), Duration::from_secs(120))
}

fn limits_of(host: Host, rel: &str) -> Result<Vec<(String, String)>> {
    host.limits()
        .iter()
        .map(|(c, f, _)| Ok((f.to_string(), read(&host.dir(c, rel).join(f))?)))
        .collect()
}

fn want_limits(host: Host) -> Vec<(String, String)> {
    host.limits()
        .iter()
        .map(|(_, f, v)| (f.to_string(), v.to_string()))
        .collect()
}

fn lifecycle(rt: &Rt) -> Result<()> {
    let host = need_systemd()?;
    let mut env = CliEnv::new()?;
    let reaper = Subreaper::new()?;
    let id = env.id(&format!("sd{}", rt.name));
    // lxcri's state in the env's root (its leak check looks there).
    let root = if rt.bin == LXCRI {
        env.root.clone()
    } else {
        env.dir.path().join("root-runc")
    };
    let cgpath = format!("system.slice:{}:{id}", rt.prefix);
    let b = env.bundle(rt.name, &["sleep", "600"], |v| {
        v["linux"]["cgroupsPath"] = json!(cgpath);
        v["linux"]["resources"] = json!({
            "memory": {"limit": 67108864},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
            "pids": {"limit": 100}
        });
    })?;
    let unit = format!("{}-{id}.scope", rt.prefix);
    let rel = format!("system.slice/{unit}");
    let pidfile = env.dir.path().join(format!("pid-{}", rt.name));
    let t0 = Instant::now();
    rt_cmd(
        &env,
        rt,
        &root,
        &[
            "create",
            "--bundle",
            b.to_str().unwrap(),
            "--pid-file",
            pidfile.to_str().unwrap(),
            &id,
        ],
    )?
    .ok()?;
    eprintln!(
        "{}: create with the systemd driver took {:?}",
        rt.name,
        t0.elapsed()
    );
    let pid: i32 = read(&pidfile)?.parse()?;

    // The init is in the unit's cgroup, alone (the monitor is elsewhere).
    let own = host.cgroup_of(&pid.to_string())?;
    ensure!(
        own == format!("/{rel}"),
        "{}: init {pid} is in {own:?}",
        rt.name
    );
    let procs = read(&host.dir("memory", &rel).join("cgroup.procs"))?;
    ensure!(
        procs == pid.to_string(),
        "{}: cgroup.procs {procs:?}",
        rt.name
    );

    // systemd knows the unit and its limits.
    let p = show(
        env.dir.path(),
        &unit,
        &[
            "ActiveState",
            "Slice",
            "ControlGroup",
            "Delegate",
            host.memory_prop(),
            "CPUQuotaPerSecUSec",
            "CPUQuotaPeriodUSec",
            "TasksMax",
            host.cpu_share().0,
        ],
    )?;
    for (name, want) in [
        ("ActiveState", "active".to_string()),
        ("Slice", "system.slice".to_string()),
        ("ControlGroup", format!("/system.slice/{unit}")),
        ("Delegate", "yes".to_string()),
        (host.memory_prop(), "67108864".to_string()),
        ("CPUQuotaPerSecUSec", "500ms".to_string()),
        ("CPUQuotaPeriodUSec", "100ms".to_string()),
        ("TasksMax", "100".to_string()),
        (host.cpu_share().0, host.cpu_share().1.to_string()),
    ] {
        ensure!(prop(&p, name) == want, "{}: {name}: {p:?}", rt.name);
    }
    ensure!(
        limits_of(host, &rel)? == want_limits(host),
        "{}: {:?}",
        rt.name,
        limits_of(host, &rel)?
    );

    // A daemon-reload realizes the unit again: the limits stay.
    sh(env.dir.path(), "systemctl", &["daemon-reload"])?.ok()?;
    ensure!(
        limits_of(host, &rel)? == want_limits(host),
        "{}: after daemon-reload: {:?}",
        rt.name,
        limits_of(host, &rel)?
    );

    rt_cmd(&env, rt, &root, &["start", &id])?.ok()?;
    // The freezer (on a hybrid host a v1 hierarchy systemd does not manage).
    for (cmd, want) in [("pause", "paused"), ("resume", "running")] {
        rt_cmd(&env, rt, &root, &[cmd, &id])?.ok()?;
        let st: serde_json::Value =
            serde_json::from_str(&rt_cmd(&env, rt, &root, &["state", &id])?.ok()?.stdout)?;
        ensure!(st["status"] == want, "{}: after {cmd}: {st}", rt.name);
    }
    // A live update goes to systemd too: it survives a daemon-reload.
    rt_cmd(
        &env,
        rt,
        &root,
        &["update", "--memory", "134217728", "--pids-limit", "50", &id],
    )?
    .ok()?;
    let p = show(env.dir.path(), &unit, &[host.memory_prop(), "TasksMax"])?;
    ensure!(
        prop(&p, host.memory_prop()) == "134217728" && prop(&p, "TasksMax") == "50",
        "{}: after update: {p:?}",
        rt.name
    );
    sh(env.dir.path(), "systemctl", &["daemon-reload"])?.ok()?;
    let (mem_file, pids_file) = host.memory_and_pids(&rel);
    let (mem, pids) = (read(&mem_file)?, read(&pids_file)?);
    ensure!(
        mem == "134217728" && pids == "50",
        "{}: after update and daemon-reload: memory {mem}, pids {pids}",
        rt.name
    );

    rt_cmd(&env, rt, &root, &["kill", &id, "KILL"])?.ok()?;
    reaper.wait(pid, Duration::from_secs(30))?;
    rt_cmd(&env, rt, &root, &["delete", &id])?.ok()?;
    wait_unit_gone(env.dir.path(), &unit).with_context(|| rt.name)?;
    for c in ["memory", "pids", "cpu,cpuacct"] {
        let d = host.dir(c, &rel);
        ensure!(!d.exists(), "{}: {} left", rt.name, d.display());
    }
    if host == Host::Hybrid && rt.name == "runc" {
        // runc 1.1.5 leaves the `system.slice` dirs it made in the v1
        // hierarchies systemd does not manage (cpuset, freezer, ...); lxcri
        // removes the ones it made. Only empty ones go (systemd's have units).
        for e in fs::read_dir("/sys/fs/cgroup")? {
            let _ = fs::remove_dir(e?.path().join("system.slice"));
        }
    }
    drop(reaper);
    env.finish()
}

#[test]
fn lxcri_lifecycle() {
    check(lifecycle(&LXCRI_RT));
}

#[test]
fn runc_lifecycle() {
    check(lifecycle(&RUNC_RT));
}

/// lxcri's own checks of the driver: a cgroupfs path is an error naming the
/// field (like runc's); `run` (create + start + wait) removes the unit; a
/// slice unit (`slice::name.slice`) holds the container at its own path.
#[test]
fn lxcri_paths_and_run() {
    check((|| {
        let host = need_systemd()?;
        let mut env = CliEnv::new()?;
        let id = env.id("sdrun");
        let root = env.root.clone();
        let b = env.bundle("bad", &["true"], |v| {
            v["linux"]["cgroupsPath"] = json!("/lxe2e/x");
        })?;
        let out = rt_cmd(
            &env,
            &LXCRI_RT,
            &root,
            &["run", "-b", b.to_str().unwrap(), &id],
        )?;
        ensure!(
            out.code == 1
                && out.stderr.contains("linux.cgroupsPath")
                && out.stderr.contains("expected cgroupsPath to be of format"),
            "{out}"
        );
        let b = env.bundle("run", &["cat", "/proc/self/cgroup"], |v| {
            v["linux"]["cgroupsPath"] = json!(format!("system.slice:lxe2e:{id}"));
        })?;
        let out = rt_cmd(
            &env,
            &LXCRI_RT,
            &root,
            &["run", "-b", b.to_str().unwrap(), &id],
        )?;
        ensure!(out.code == 0, "run: {out}");
        ensure!(
            !out.stdout.trim().is_empty() && out.stdout.lines().all(|l| l.ends_with(":/")),
            "inside its cgroup namespace the container sees its root: {out}"
        );
        wait_unit_gone(env.dir.path(), &format!("lxe2e-{id}.scope"))?;

        // A slice unit as the container's cgroup (`slice::name.slice`): the
        // init in the slice's own cgroup, the slice active, gone after delete.
        let reaper = Subreaper::new()?;
        let slice = "lxe2e.slice";
        let name = format!("lxe2e-{}.slice", id.replace('-', "_"));
        let b = env.bundle("slice", &["sleep", "600"], |v| {
            v["linux"]["cgroupsPath"] = json!(format!("{slice}::{name}"));
        })?;
        let pidfile = env.dir.path().join("pid-slice");
        let b = b.to_str().unwrap();
        let p = pidfile.to_str().unwrap();
        let out = rt_cmd(
            &env,
            &LXCRI_RT,
            &root,
            &["create", "-b", b, "--pid-file", p, &id],
        )?;
        ensure!(out.code == 0, "create in a slice unit: {out}");
        let pid: i32 = read(&pidfile)?.parse()?;
        let own = host.cgroup_of(&pid.to_string())?;
        ensure!(
            own == format!("/lxe2e.slice/{name}"),
            "slice: init in {own:?}"
        );
        let p = show(env.dir.path(), &name, &["ActiveState"])?;
        ensure!(prop(&p, "ActiveState") == "active", "slice unit: {p:?}");
        rt_cmd(&env, &LXCRI_RT, &root, &["delete", "--force", &id])?.ok()?;
        reaper.wait(pid, Duration::from_secs(30))?;
        // Stopped, and its cgroup gone. (systemd 252 keeps the stopped transient
        // slice loaded, unlike a scope: LoadState stays "loaded".)
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let p = show(env.dir.path(), &name, &["ActiveState", "LoadState"])?;
            let gone = !host.dir("memory", &format!("lxe2e.slice/{name}")).exists();
            if prop(&p, "ActiveState") == "inactive" && gone {
                eprintln!("slice unit after delete: {p:?}");
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "slice unit after delete: {p:?}, cgroup gone: {gone}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(reaper);
        let _ = sh(env.dir.path(), "systemctl", &["stop", slice]);
        env.finish()
    })());
}
