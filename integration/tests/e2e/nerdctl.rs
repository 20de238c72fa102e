//! Issue 3: nerdctl (a docker-compatible CLI) against the private
//! containerd 2.x with `--runtime io.containerd.lxcri.v2` (and runc as the
//! reference), `--net none`, nerdctl's data root and CNI dirs in the test's
//! temp dir (see `Containerd::nerdctl_command`).
//!
//! nerdctl exercises paths ctr does not: OCI hooks (`nerdctl internal
//! oci-hook` for createRuntime/poststop), the shim-spawned logging binary
//! (`binary://` log URI, `nerdctl logs`), Metrics (`stats`), Update
//! (`update --memory`), and its own stop (SIGTERM, SIGKILL after -t).

use crate::matrix_v2;
use crate::util::expect;
use anyhow::{bail, ensure, Context, Result};
use lxcri_integration::{cmd, rootfs, Harness, Output};
use std::thread;
use std::time::{Duration, Instant};

matrix_v2!(
    nerdctl_load,
    nerdctl_run_foreground,
    nerdctl_run_rm,
    nerdctl_run_tty,
    nerdctl_exec,
    nerdctl_exec_tty,
    nerdctl_logs,
    nerdctl_ps_top_stats,
    nerdctl_pause_unpause,
    nerdctl_update_memory,
    nerdctl_kill,
    nerdctl_stop_trapped,
    nerdctl_stop_ignored,
    nerdctl_rm_force,
);

/// The network mode of every container: no network (nerdctl then sets the
/// sysctl net.ipv4.ip_unprivileged_port_start=0 in the spec).
const NET: &str = "none";

/// `nerdctl load -i` of the harness's busybox tarball; returns the image.
pub(crate) fn load(h: &mut Harness) -> Result<&'static str> {
    let tarball = h.busybox_tarball()?.display().to_string();
    let out = h.nerdctl_ok(&["load", "-i", &tarball])?;
    ensure!(
        out.stdout.contains(rootfs::IMAGE) || out.stderr.contains(rootfs::IMAGE),
        "nerdctl load did not name the image: {out}"
    );
    Ok(rootfs::IMAGE)
}

/// `nerdctl run --runtime R --net none --name lxe2e-NAME --cidfile F
/// [opts] IMAGE cmd...`; `opts` carry -d, --rm, -it. Tracks the container
/// id for the leak check. Returns the name and nerdctl's output.
fn run(h: &mut Harness, name: &str, opts: &[&str], cmd: &[&str]) -> Result<(String, Output)> {
    run_on(h, NET, name, opts, cmd)
}

/// Like [`run`] on network `net` (`--net net`).
pub(crate) fn run_on(
    h: &mut Harness,
    net: &str,
    name: &str,
    opts: &[&str],
    cmd: &[&str],
) -> Result<(String, Output)> {
    let args = run_args_on(h, net, name, opts, cmd)?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = h.nerdctl(&args)?;
    track_cid(h, name)?;
    Ok((h_name(name), out))
}

fn run_args(h: &mut Harness, name: &str, opts: &[&str], cmd: &[&str]) -> Result<Vec<String>> {
    run_args_on(h, NET, name, opts, cmd)
}

fn run_args_on(
    h: &mut Harness,
    net: &str,
    name: &str,
    opts: &[&str],
    cmd: &[&str],
) -> Result<Vec<String>> {
    let image = load(h)?;
    let full = h.id(name);
    let cidfile = cidfile(h, name);
    let mut args: Vec<String> = [
        "run",
        "--runtime",
        h.runtime.name(),
        "--net",
        net,
        "--name",
        &full,
        "--cidfile",
        &cidfile,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(opts.iter().map(|s| s.to_string()));
    args.push(image.to_string());
    args.extend(cmd.iter().map(|s| s.to_string()));
    Ok(args)
}

fn h_name(name: &str) -> String {
    format!("lxe2e-{name}")
}

fn cidfile(h: &Harness, name: &str) -> String {
    h.ctd
        .nerdctl_dir()
        .join(format!("{name}.cid"))
        .display()
        .to_string()
}

/// nerdctl's container id (the containerd id, the cgroup's name) from the
/// cidfile, tracked for the leak check.
fn track_cid(h: &mut Harness, name: &str) -> Result<()> {
    if let Ok(cid) = std::fs::read_to_string(cidfile(h, name)) {
        let cid = cid.trim();
        if !cid.is_empty() {
            h.track(cid);
        }
    }
    Ok(())
}

/// A detached container running `cmd`; `f` runs against its name, then
/// it is removed with `nerdctl rm -f` (which must succeed).
fn with_detached(
    h: &mut Harness,
    name: &str,
    cmd: &[&str],
    f: impl FnOnce(&mut Harness, &str) -> Result<()>,
) -> Result<()> {
    with_detached_on(h, NET, name, &[], cmd, f)
}

/// Like [`with_detached`] on network `net`, with more `opts` for run.
pub(crate) fn with_detached_on(
    h: &mut Harness,
    net: &str,
    name: &str,
    opts: &[&str],
    cmd: &[&str],
    f: impl FnOnce(&mut Harness, &str) -> Result<()>,
) -> Result<()> {
    let opts: Vec<&str> = ["-d"].iter().chain(opts).copied().collect();
    let (name, out) = run_on(h, net, name, &opts, cmd)?;
    ensure!(out.code == 0, "nerdctl run -d: {out}");
    let result = wait_state(h, &name, "running").and_then(|_| f(h, &name));
    let cleanup = remove(h, &name);
    result.and(cleanup)
}

/// `nerdctl rm -f NAME`, then it must be gone from `ps -a` and containerd.
pub(crate) fn remove(h: &Harness, name: &str) -> Result<()> {
    h.nerdctl_ok(&["rm", "-f", name])?;
    ensure!(!listed(h, name)?, "{name} still in nerdctl ps -a");
    let ctr = h.ctr_ok(&["container", "ls", "-q"])?;
    ensure!(
        ctr.stdout.trim().is_empty(),
        "containers left in containerd: {ctr}"
    );
    Ok(())
}

pub(crate) fn listed(h: &Harness, name: &str) -> Result<bool> {
    let ps = h.nerdctl_ok(&["ps", "-a", "--format", "{{.Names}}"])?;
    Ok(ps.stdout.lines().any(|l| l.trim() == name))
}

/// `nerdctl inspect -f TEMPLATE NAME`, trimmed.
pub(crate) fn inspect(h: &Harness, name: &str, template: &str) -> Result<String> {
    Ok(h.nerdctl_ok(&["inspect", "-f", template, name])?
        .stdout
        .trim()
        .to_string())
}

/// Polls `.State.Status` until it is `state` (10 s).
pub(crate) fn wait_state(h: &Harness, name: &str, state: &str) -> Result<()> {
    let start = Instant::now();
    loop {
        let current = inspect(h, name, "{{.State.Status}}")?;
        if current == state {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(10) {
            bail!("{name} not {state} after 10 s: {current}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// The container's init pid on the host (`.State.Pid`).
fn init_pid(h: &Harness, name: &str) -> Result<i32> {
    let pid = inspect(h, name, "{{.State.Pid}}")?;
    pid.parse().with_context(|| format!("pid {pid:?}"))
}

/// Quote for sh -c.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// nerdctl `args` under `script` (a pty of 40 rows, 100 columns).
fn nerdctl_on_tty(h: &Harness, args: &[&str]) -> Result<Output> {
    let c = h.ctd.nerdctl_command(args)?;
    let mut line: Vec<String> = c
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_str()?, quote(&v?.to_string_lossy()))))
        .collect();
    line.push(quote(&c.get_program().to_string_lossy()));
    line.extend(c.get_args().map(|a| quote(&a.to_string_lossy())));
    let script = format!("stty rows 40 cols 100; exec env {}", line.join(" "));
    let mut c = std::process::Command::new("script");
    c.args(["-qefc", &script, "/dev/null"]);
    cmd::run(&mut c, None, Duration::from_secs(60))
}

fn nerdctl_load(h: &mut Harness) -> Result<()> {
    let image = load(h)?;
    let images = h.nerdctl_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])?;
    ensure!(
        images
            .stdout
            .lines()
            .any(|l| format!("docker.io/library/{}", l.trim()) == image || l.trim() == image),
        "nerdctl images does not list {image}: {images}"
    );
    let ctr = h.ctr_ok(&["image", "ls", "-q"])?;
    ensure!(ctr.stdout.contains(image), "ctr image ls: {ctr}");
    Ok(())
}

/// Foreground run: stdout, stderr and the exit code come through; the
/// exited container stays listed until `nerdctl rm`.
fn nerdctl_run_foreground(h: &mut Harness) -> Result<()> {
    let (name, out) = run(
        h,
        "fg",
        &[],
        &["/bin/sh", "-c", "echo out; echo err >&2; exit 3"],
    )?;
    let result = (|| {
        expect(&out, 3, "out\n")?;
        ensure!(out.stderr.contains("err"), "stderr: {out}");
        ensure!(listed(h, &name)?, "exited {name} not in ps -a");
        let status = inspect(h, &name, "{{.State.Status}} {{.State.ExitCode}}")?;
        ensure!(status == "exited 3", "state: {status}");
        Ok(())
    })();
    let cleanup = remove(h, &name);
    result.and(cleanup)
}

/// `run --rm`: output and exit code, and the container is gone afterwards.
fn nerdctl_run_rm(h: &mut Harness) -> Result<()> {
    let (name, out) = run(h, "rm", &["--rm"], &["/bin/sh", "-c", "echo bye; exit 4"])?;
    expect(&out, 4, "bye\n")?;
    ensure!(!listed(h, &name)?, "--rm container {name} still listed");
    let ctr = h.ctr_ok(&["container", "ls", "-q"])?;
    ensure!(ctr.stdout.trim().is_empty(), "ctr container ls: {ctr}");
    let (_, out) = run(h, "rm-ok", &["--rm"], &["/bin/echo", "fine"])?;
    expect(&out, 0, "fine\n")
}

/// `run -it --rm` on a pty: the container gets a terminal of that size.
fn nerdctl_run_tty(h: &mut Harness) -> Result<()> {
    let args = run_args(
        h,
        "tty",
        &["--rm", "-it"],
        &[
            "/bin/sh",
            "-c",
            "tty; sleep 1; stty size; [ -t 0 ] && echo stdin-is-tty; exit 6",
        ],
    )?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = nerdctl_on_tty(h, &args)?;
    track_cid(h, "tty")?;
    ensure!(out.code == 6, "exit code: {out}");
    ensure!(out.stdout.contains("/dev/pts/"), "tty: {out}");
    ensure!(out.stdout.contains("40 100"), "window size: {out}");
    ensure!(out.stdout.contains("stdin-is-tty"), "stdin: {out}");
    ensure!(!listed(h, &h_name("tty"))?, "--rm container still listed");
    Ok(())
}

/// `exec` into a detached container: output, stderr, exit code, env.
fn nerdctl_exec(h: &mut Harness) -> Result<()> {
    with_detached(h, "ex", &["/bin/sleep", "1000"], |h, name| {
        let out = h.nerdctl(&[
            "exec",
            "-e",
            "FOO=bar",
            name,
            "/bin/sh",
            "-c",
            "echo $FOO; echo e >&2; exit 5",
        ])?;
        ensure!(out.stdout == "bar\n", "stdout: {out}");
        ensure!(exec_code(&out) == 5, "exit code: {out}");
        ensure!(out.stderr.starts_with("e\n"), "stderr: {out}");
        let out = h.nerdctl(&["exec", name, "/bin/cat", "/proc/1/cmdline"])?;
        expect(&out, 0, "/bin/sleep\x001000\x00")?;
        let out = h.nerdctl(&["exec", name, "/nonexistent"])?;
        ensure!(out.code != 0, "exec of a missing binary succeeded: {out}");
        wait_state(h, name, "running")
    })
}

/// `exec -it` on a pty.
fn nerdctl_exec_tty(h: &mut Harness) -> Result<()> {
    with_detached(h, "ext", &["/bin/sleep", "1000"], |h, name| {
        let out = nerdctl_on_tty(
            h,
            &[
                "exec",
                "-it",
                name,
                "/bin/sh",
                "-c",
                "tty; sleep 1; stty size; exit 4",
            ],
        )?;
        ensure!(exec_code(&out) == 4, "exit code: {out}");
        ensure!(out.stdout.contains("/dev/pts/"), "tty: {out}");
        ensure!(out.stdout.contains("40 100"), "window size: {out}");
        Ok(())
    })
}

/// The exit code of an exec'd process: nerdctl 2.2 exits 1 and logs
/// "exec failed with exit code N" when the process exits N != 0.
fn exec_code(out: &Output) -> i32 {
    const MARK: &str = "exec failed with exit code ";
    let text = format!("{}{}", out.stdout, out.stderr);
    match text.find(MARK) {
        Some(at) if out.code == 1 => text[at + MARK.len()..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(-1),
        _ => out.code,
    }
}

/// `logs` of a detached container, while it runs and after it exited
/// (the shim's logging binary writes nerdctl's json log).
fn nerdctl_logs(h: &mut Harness) -> Result<()> {
    let script = "echo start; while [ ! -f /stop ]; do sleep 0.1; done; \
                  echo end; echo oops >&2; exit 5";
    let (name, out) = run(h, "logs", &["-d"], &["/bin/sh", "-c", script])?;
    let result = (|| {
        ensure!(out.code == 0, "run -d: {out}");
        wait_until(|| Ok(h.nerdctl_ok(&["logs", &name])?.stdout == "start\n"))
            .context("logs while running")?;
        h.nerdctl_ok(&["exec", &name, "/bin/touch", "/stop"])?;
        let waited = h.nerdctl(&["wait", &name])?;
        expect(&waited, 0, "5\n").context("nerdctl wait")?;
        wait_state(h, &name, "exited")?;
        let logs = h.nerdctl_ok(&["logs", &name])?;
        ensure!(logs.stdout == "start\nend\n", "stdout logs: {logs}");
        ensure!(logs.stderr.contains("oops"), "stderr logs: {logs}");
        Ok(())
    })();
    let cleanup = remove(h, &name);
    result.and(cleanup)
}

/// Retries `f` for 10 s until it returns true.
pub(crate) fn wait_until(f: impl Fn() -> Result<bool>) -> Result<()> {
    let start = Instant::now();
    loop {
        if f()? {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(10) {
            bail!("condition not met after 10 s");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// `ps` (Up), `top` (the container's processes), `stats --no-stream`
/// (non-zero memory and CPU from the cgroup).
fn nerdctl_ps_top_stats(h: &mut Harness) -> Result<()> {
    // Burns CPU for a moment, then idles.
    let script = "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; exec /bin/sleep 1000";
    with_detached(h, "pts", &["/bin/sh", "-c", script], |h, name| {
        let ps = h.nerdctl_ok(&["ps", "--format", "{{.Names}} {{.Status}}"])?;
        ensure!(
            ps.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{name} Up"))),
            "ps: {ps}"
        );
        wait_until(|| {
            let top = h.nerdctl_ok(&["top", name])?;
            Ok(top.stdout.contains("/bin/sleep 1000"))
        })
        .context("top shows /bin/sleep 1000")?;
        let top = h.nerdctl_ok(&["top", name])?;
        let pid = init_pid(h, name)?;
        ensure!(
            top.stdout.lines().skip(1).any(|l| l
                .split_whitespace()
                .nth(1)
                .is_some_and(|p| p == pid.to_string())),
            "top does not list init pid {pid}: {top}"
        );
        let stats = h.nerdctl_ok(&["stats", "--no-stream", "--format", "{{json .}}", name])?;
        let v: serde_json::Value = serde_json::from_str(stats.stdout.trim())
            .with_context(|| format!("stats json: {stats}"))?;
        let mem = v["MemUsage"].as_str().unwrap_or_default();
        ensure!(
            !mem.is_empty() && !mem.starts_with("0B") && !mem.starts_with("0 B"),
            "memory usage: {v}"
        );
        let pids = v["PIDs"].as_str().unwrap_or_default();
        ensure!(pids != "0" && !pids.is_empty(), "pids: {v}");
        // CPU usage from cpuacct; the percentage needs two samples, so
        // compare with the cgroup file too.
        let cpu = v["CPUPerc"].as_str().unwrap_or_default();
        ensure!(!cpu.is_empty(), "cpu: {v}");
        let usage = cgroup_file(pid, "cpuacct", "cpuacct.usage")?;
        ensure!(usage.parse::<u64>()? > 0, "cpuacct.usage {usage}");
        Ok(())
    })
}

/// The container's v1 cgroup dir for `controller`, from /proc/PID/cgroup.
fn cgroup_file(pid: i32, controller: &str, file: &str) -> Result<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let line = text
        .lines()
        .find(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|c| c == controller))
        })
        .with_context(|| format!("no {controller} cgroup in {text}"))?;
    let path = line.splitn(3, ':').nth(2).unwrap_or_default();
    let dir = std::fs::read_dir("/sys/fs/cgroup")?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.split(',').any(|c| c == controller))
                && !p.is_symlink()
        })
        .with_context(|| format!("no {controller} hierarchy"))?;
    let f = dir.join(path.trim_start_matches('/')).join(file);
    Ok(std::fs::read_to_string(&f)
        .with_context(|| f.display().to_string())?
        .trim()
        .to_string())
}

fn nerdctl_pause_unpause(h: &mut Harness) -> Result<()> {
    let script = "while :; do sleep 0.2; done";
    with_detached(h, "pause", &["/bin/sh", "-c", script], |h, name| {
        h.nerdctl_ok(&["pause", name])?;
        wait_state(h, name, "paused")?;
        let ps = h.nerdctl_ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"])?;
        ensure!(
            ps.stdout.lines().any(|l| l == format!("{name} Paused")),
            "ps: {ps}"
        );
        let pid = init_pid(h, name)?;
        let freezer = cgroup_file(pid, "freezer", "freezer.state")?;
        ensure!(freezer == "FROZEN", "freezer: {freezer}");
        h.nerdctl_ok(&["unpause", name])?;
        wait_state(h, name, "running")?;
        let freezer = cgroup_file(pid, "freezer", "freezer.state")?;
        ensure!(freezer == "THAWED", "freezer: {freezer}");
        let out = h.nerdctl(&["exec", name, "/bin/echo", "alive"])?;
        expect(&out, 0, "alive\n")
    })
}

fn nerdctl_update_memory(h: &mut Harness) -> Result<()> {
    with_detached(h, "upd", &["/bin/sleep", "1000"], |h, name| {
        let pid = init_pid(h, name)?;
        h.nerdctl_ok(&["update", "--memory", "32m", name])?;
        let limit = cgroup_file(pid, "memory", "memory.limit_in_bytes")?;
        ensure!(limit == "33554432", "memory.limit_in_bytes: {limit}");
        let out = h.nerdctl(&["exec", name, "/bin/echo", "alive"])?;
        expect(&out, 0, "alive\n")
    })
}

/// `kill` (SIGKILL by default) ends the container: exited, 137.
fn nerdctl_kill(h: &mut Harness) -> Result<()> {
    with_detached(h, "kill", &["/bin/sleep", "1000"], |h, name| {
        let pid = init_pid(h, name)?;
        h.nerdctl_ok(&["kill", name])?;
        wait_state(h, name, "exited")?;
        let code = inspect(h, name, "{{.State.ExitCode}}")?;
        ensure!(code == "137", "exit code {code}");
        ensure!(
            lxcri_integration::procfs::process(pid).is_none(),
            "init {pid} alive"
        );
        Ok(())
    })
}

/// `stop` sends SIGTERM: a container trapping it exits with its code.
fn nerdctl_stop_trapped(h: &mut Harness) -> Result<()> {
    let script = "trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done";
    with_detached(h, "stopt", &["/bin/sh", "-c", script], |h, name| {
        wait_until(|| Ok(h.nerdctl_ok(&["logs", name])?.stdout == "ready\n"))?;
        let start = Instant::now();
        h.nerdctl_ok(&["stop", "-t", "10", name])?;
        let took = start.elapsed();
        let state = inspect(h, name, "{{.State.Status}} {{.State.ExitCode}}")?;
        ensure!(state == "exited 7", "after stop: {state}");
        ensure!(took < Duration::from_secs(5), "stop took {took:?}");
        Ok(())
    })
}

/// `stop -t 1` of a container ignoring SIGTERM: SIGKILL after 1 s.
fn nerdctl_stop_ignored(h: &mut Harness) -> Result<()> {
    let script = "trap '' TERM; echo ready; while :; do sleep 0.1; done";
    with_detached(h, "stopi", &["/bin/sh", "-c", script], |h, name| {
        wait_until(|| Ok(h.nerdctl_ok(&["logs", name])?.stdout == "ready\n"))?;
        let start = Instant::now();
        h.nerdctl_ok(&["stop", "-t", "1", name])?;
        let took = start.elapsed();
        let state = inspect(h, name, "{{.State.Status}} {{.State.ExitCode}}")?;
        ensure!(state == "exited 137", "after stop: {state}");
        ensure!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(8),
            "stop -t 1 took {took:?}"
        );
        Ok(())
    })
}

/// `rm -f` of a running container kills and removes it.
fn nerdctl_rm_force(h: &mut Harness) -> Result<()> {
    let (name, out) = run(h, "rmf", &["-d"], &["/bin/sleep", "1000"])?;
    ensure!(out.code == 0, "run -d: {out}");
    wait_state(h, &name, "running")?;
    let pid = init_pid(h, &name)?;
    remove(h, &name)?;
    ensure!(
        lxcri_integration::procfs::process(pid).is_none(),
        "init {pid} alive after rm -f"
    );
    let tasks = h.ctr_ok(&["task", "ls", "-q"])?;
    ensure!(tasks.stdout.trim().is_empty(), "tasks left: {tasks}");
    Ok(())
}
