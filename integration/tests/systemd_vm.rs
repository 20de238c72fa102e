//! The systemd cgroup driver, end to end. These tests need systemd as PID 1 on
//! a pure cgroup v2 host: they run in the VM of scripts/vm (`make e2e-vm`,
//! see docs/architecture.md), never on the build host, whose PID 1 is not
//! systemd (there they fail at once, saying so).
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

fn need_systemd_v2() -> Result<()> {
    ensure!(
        Path::new("/run/systemd/system").is_dir(),
        "these tests need systemd as PID 1 (run them in the VM: make e2e-vm)"
    );
    ensure!(
        Path::new("/sys/fs/cgroup/cgroup.controllers").exists(),
        "these tests need a pure cgroup v2 host (the VM)"
    );
    Ok(())
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

/// The files of the limits the spec below sets, as cgroup v2 shows them.
const LIMITS: &[(&str, &str)] = &[
    ("memory.max", "67108864"),
    ("cpu.max", "50000 100000"),
    ("pids.max", "100"),
    ("cpu.weight", "39"),
];

fn limits_of(cg: &Path) -> Result<Vec<(String, String)>> {
    LIMITS
        .iter()
        .map(|(f, _)| Ok((f.to_string(), read(&cg.join(f))?)))
        .collect()
}

fn want_limits() -> Vec<(String, String)> {
    LIMITS
        .iter()
        .map(|(f, v)| (f.to_string(), v.to_string()))
        .collect()
}

fn lifecycle(rt: &Rt) -> Result<()> {
    need_systemd_v2()?;
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
    let cg = PathBuf::from("/sys/fs/cgroup/system.slice").join(&unit);
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
    let own = read(Path::new(&format!("/proc/{pid}/cgroup")))?;
    ensure!(
        own == format!("0::/system.slice/{unit}"),
        "{}: init {pid} is in {own:?}",
        rt.name
    );
    let procs = read(&cg.join("cgroup.procs"))?;
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
            "MemoryMax",
            "CPUQuotaPerSecUSec",
            "CPUQuotaPeriodUSec",
            "TasksMax",
            "CPUWeight",
        ],
    )?;
    for (name, want) in [
        ("ActiveState", "active".to_string()),
        ("Slice", "system.slice".to_string()),
        ("ControlGroup", format!("/system.slice/{unit}")),
        ("Delegate", "yes".to_string()),
        ("MemoryMax", "67108864".to_string()),
        ("CPUQuotaPerSecUSec", "500ms".to_string()),
        ("CPUQuotaPeriodUSec", "100ms".to_string()),
        ("TasksMax", "100".to_string()),
        ("CPUWeight", "39".to_string()),
    ] {
        ensure!(prop(&p, name) == want, "{}: {name}: {p:?}", rt.name);
    }
    ensure!(
        limits_of(&cg)? == want_limits(),
        "{}: {:?}",
        rt.name,
        limits_of(&cg)?
    );

    // A daemon-reload realizes the unit again: the limits stay.
    sh(env.dir.path(), "systemctl", &["daemon-reload"])?.ok()?;
    ensure!(
        limits_of(&cg)? == want_limits(),
        "{}: after daemon-reload: {:?}",
        rt.name,
        limits_of(&cg)?
    );

    rt_cmd(&env, rt, &root, &["start", &id])?.ok()?;
    // A live update goes to systemd too: it survives a daemon-reload.
    rt_cmd(
        &env,
        rt,
        &root,
        &["update", "--memory", "134217728", "--pids-limit", "50", &id],
    )?
    .ok()?;
    let p = show(env.dir.path(), &unit, &["MemoryMax", "TasksMax"])?;
    ensure!(
        prop(&p, "MemoryMax") == "134217728" && prop(&p, "TasksMax") == "50",
        "{}: after update: {p:?}",
        rt.name
    );
    sh(env.dir.path(), "systemctl", &["daemon-reload"])?.ok()?;
    let (mem, pids) = (read(&cg.join("memory.max"))?, read(&cg.join("pids.max"))?);
    ensure!(
        mem == "134217728" && pids == "50",
        "{}: after update and daemon-reload: memory.max {mem}, pids.max {pids}",
        rt.name
    );

    rt_cmd(&env, rt, &root, &["kill", &id, "KILL"])?.ok()?;
    reaper.wait(pid, Duration::from_secs(30))?;
    rt_cmd(&env, rt, &root, &["delete", &id])?.ok()?;
    wait_unit_gone(env.dir.path(), &unit).with_context(|| rt.name)?;
    ensure!(!cg.exists(), "{}: {} left", rt.name, cg.display());
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
        need_systemd_v2()?;
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
            out.stdout.trim() == "0::/",
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
        let own = read(Path::new(&format!("/proc/{pid}/cgroup")))?;
        ensure!(
            own == format!("0::/lxe2e.slice/{name}"),
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
            let gone = !Path::new("/sys/fs/cgroup/lxe2e.slice").join(&name).exists();
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
