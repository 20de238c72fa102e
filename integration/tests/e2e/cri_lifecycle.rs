//! Issue 6: the Kubernetes path through containerd 2.x's CRI plugin, with
//! crictl, on a pod network (CNI bridge + host-local in the daemon's private
//! network namespace) and images pulled from the local registry
//! (`Harness::start_cri_net`). Each scenario runs with the `lxcri` handler
//! (runtime_type io.containerd.lxcri.v2) and the `runc` handler (the
//! reference); tests are `<scenario>::<handler>_containerd_2`.
//!
//! `cri_lifecycle`: pull → runp → create → start → exec (sync, exit code,
//! -it with a terminal) → logs → stats/statsp → stop → logs after exit →
//! rm → stopp → rmp. The sandbox is our static pause program, run by the
//! handler's shim (with lxcri: shim → lxcri-start → /pause, an LXC
//! container), with an IP on the pod subnet.

use crate::cri_util::*;
use anyhow::{ensure, Context, Result};
use lxcri_integration::containerd::{CRI_NAMESPACE, NET_PAUSE_IMAGE, POD_SUBNET};
use lxcri_integration::registry::BUSYBOX;
use lxcri_integration::{procfs, Harness, Runtime};
use serde_json::{json, Value};
use std::process::Command;

/// Generates one test per handler on containerd 2.x's pod network.
#[macro_export]
macro_rules! cri_matrix {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use lxcri_integration::{run_cri_net_scenario, Runtime};

            #[test]
            fn runc_containerd_2() {
                run_cri_net_scenario(Runtime::Runc, super::$scenario);
            }

            #[test]
            fn lxcri_containerd_2() {
                run_cri_net_scenario(Runtime::Lxcri, super::$scenario);
            }
        }
    )*};
}

cri_matrix!(cri_lifecycle, cri_exec_tty_repeated, cri_apparmor_refused);

fn cri_lifecycle(h: &mut Harness) -> Result<()> {
    pull(h, BUSYBOX)?;
    let config = pod_config(h, "life", json!({}))?;
    let pod = run_pod(h, &config)?;
    let checked = check_sandbox(h, &pod).and_then(|()| container_lifecycle(h, &pod, &config));
    let removed = remove_pod(h, &pod);
    checked.and(removed)
}

/// `crictl exec -it` of a short command, many times in a row: every run
/// shows the whole terminal output (a short-lived process's output must not
/// be lost between the pty, the shim and containerd's fifo).
fn cri_exec_tty_repeated(h: &mut Harness) -> Result<()> {
    pull(h, BUSYBOX)?;
    let config = pod_config(h, "tty", json!({}))?;
    let pod = run_pod(h, &config)?;
    let checked = (|| {
        let id = create(
            h,
            &pod,
            &config,
            "tty",
            BUSYBOX,
            &["sleep", "600"],
            json!({}),
        )?;
        h.crictl_ok(&["start", &id])?;
        wait_state(h, &id, "CONTAINER_RUNNING")?;
        let mut lost = Vec::new();
        for i in 0..20 {
            let out = exec_tty(h, &id, &format!("echo run-{i}; tty"))?;
            if !(out.contains(&format!("run-{i}")) && out.contains("/dev/pts/")) {
                lost.push(format!("run {i}: {out:?}"));
            }
        }
        ensure!(lost.is_empty(), "exec -it output lost: {lost:?}");
        Ok(())
    })();
    let removed = remove_pod(h, &pod);
    checked.and(removed)
}

/// An AppArmor profile on a host without AppArmor: a clear error at create
/// (CRI's own, before the runtime is asked; the same for every handler), and
/// no container is left.
fn cri_apparmor_refused(h: &mut Harness) -> Result<()> {
    pull(h, BUSYBOX)?;
    let config = pod_config(h, "aa", json!({}))?;
    let pod = run_pod(h, &config)?;
    let checked = (|| {
        let c = json!({
            "metadata": {"name": "aa"},
            "image": {"image": BUSYBOX},
            "command": ["true"],
            "linux": {"security_context": {"apparmor": {
                "profile_type": 2, "localhost_ref": "lxcri-test-profile"}}},
        });
        let path = h.ctd.dir().join("aa.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&c)?)?;
        let out = h.crictl(&["create", &pod, &path.display().to_string(), &config])?;
        ensure!(
            out.code != 0 && out.stderr.to_lowercase().contains("apparmor"),
            "create with an AppArmor profile: {out}"
        );
        let left = h.crictl_ok(&["ps", "-a", "-q"])?;
        ensure!(left.stdout.trim().is_empty(), "containers left: {left}");
        Ok(())
    })();
    let removed = remove_pod(h, &pod);
    checked.and(removed)
}

/// The sandbox is ready, run by the handler's shim, with our pause as pid
/// 1 and an address on the pod subnet.
fn check_sandbox(h: &Harness, pod: &str) -> Result<()> {
    let inspect = inspectp(h, pod)?;
    let status = &inspect["status"];
    ensure!(status["state"] == "SANDBOX_READY", "pod state: {status}");
    ensure!(
        status["runtimeHandler"] == handler(h.runtime),
        "runtime handler {}",
        status["runtimeHandler"]
    );
    ensure!(
        inspect["info"]["runtimeType"] == h.runtime.name(),
        "runtimeType {}",
        inspect["info"]["runtimeType"]
    );
    let record = h.ctr_ok(&["-n", CRI_NAMESPACE, "container", "info", pod])?;
    let record: Value = serde_json::from_str(&record.stdout).context("ctr container info")?;
    ensure!(
        record["Image"] == NET_PAUSE_IMAGE,
        "sandbox image {}",
        record["Image"]
    );
    let ip = status["network"]["ip"].as_str().unwrap_or_default();
    let prefix = POD_SUBNET.trim_end_matches("0/24");
    ensure!(ip.starts_with(prefix), "pod ip {ip:?} not in {POD_SUBNET}");
    let pid = sandbox_pid(h, pod)?;
    let pause = procfs::process(pid).with_context(|| format!("sandbox pid {pid} gone"))?;
    ensure!(pause.cmdline == "/pause", "sandbox process: {pause}");
    let shim = shim_above(h, pid)?;
    if h.runtime == Runtime::Lxcri {
        let parent = procfs::ancestors(pid);
        ensure!(
            parent
                .first()
                .is_some_and(|p| argv0_name(p) == "lxcri-start"),
            "pause is not under lxcri-start: {parent:?}"
        );
    }
    ensure!(
        namespace(pid, "net")? != namespace(shim.pid, "net")?,
        "the pod has the daemon's network namespace"
    );
    Ok(())
}

fn container_lifecycle(h: &mut Harness, pod: &str, config: &str) -> Result<()> {
    let script = "echo started; echo to-stderr >&2; trap 'echo bye; exit 0' TERM; \
                  while true; do sleep 0.1; done";
    let id = create(
        h,
        pod,
        config,
        "life",
        BUSYBOX,
        &["sh", "-c", script],
        json!({}),
    )?;
    ensure!(
        inspect(h, &id)?["status"]["state"] == "CONTAINER_CREATED",
        "not CREATED after crictl create"
    );
    h.crictl_ok(&["start", &id])?;
    wait_state(h, &id, "CONTAINER_RUNNING")?;

    // exec, sync: output, exit code, the pod's hostname.
    let out = exec_sync(h, &id, &["echo", "hello"])?;
    // crictl prints the output then a newline per stream.
    ensure!(
        out.code == 0 && out.stdout.starts_with("hello\n") && out.stdout.trim_end() == "hello",
        "exec -s echo: {out}"
    );
    let out = exec_sync(h, &id, &["sh", "-c", "echo err >&2; exit 3"])?;
    // crictl exits 1 and names the command's exit code and stderr.
    ensure!(
        out.code != 0 && out.stderr.contains("exited with 3: err"),
        "exec -s exit 3: {out}"
    );
    let out = exec_sync(h, &id, &["hostname"])?;
    ensure!(out.stdout.trim_end() == "life-host", "hostname: {out}");

    // exec -it: a terminal inside (util-linux `script` gives crictl one).
    let out = exec_tty(h, &id, "tty; echo cols=$(stty size)")?;
    ensure!(
        out.contains("/dev/pts/") && out.contains("cols="),
        "exec -it: {out:?}"
    );

    // logs while running, and the CRI log file.
    eventually("crictl logs shows started", || {
        Ok(h.crictl_ok(&["logs", &id])?.stdout == "started\n")
    })?;
    let logs = h.crictl_ok(&["logs", &id])?;
    ensure!(
        logs.stderr.contains("to-stderr"),
        "crictl logs stderr: {logs}"
    );

    // stats and statsp.
    check_stats(h, &id, pod)?;

    // stop: SIGTERM, the trap logs `bye` and exits 0.
    h.crictl_ok(&["stop", "--timeout", "10", &id])?;
    let exited = wait_state(h, &id, "CONTAINER_EXITED")?;
    ensure!(
        exited["status"]["exitCode"] == 0,
        "exit code after stop: {}",
        exited["status"]
    );
    let logs = h.crictl_ok(&["logs", &id])?;
    ensure!(logs.stdout == "started\nbye\n", "logs after exit: {logs}");
    let path = exited["status"]["logPath"]
        .as_str()
        .context("no logPath")?
        .to_string();
    let records = log_records(&path)?;
    let want = [
        ("stdout", "F", "started"),
        ("stderr", "F", "to-stderr"),
        ("stdout", "F", "bye"),
    ];
    for (stream, tag, content) in want {
        ensure!(
            records
                .iter()
                .any(|r| r.0 == stream && r.1 == tag && r.2 == content),
            "{path} lacks {stream} {tag} {content}: {records:?}"
        );
    }
    h.crictl_ok(&["rm", &id])?;
    let left = h.crictl_ok(&["ps", "-a", "-q"])?;
    ensure!(left.stdout.trim().is_empty(), "after rm: {left}");
    Ok(())
}

/// `crictl exec -it ID sh -c SCRIPT` under `script` (a pty for crictl's
/// stdin/stdout); the terminal output.
pub fn exec_tty(h: &Harness, id: &str, shell: &str) -> Result<String> {
    let crictl = h
        .ctd
        .crictl_command(&["exec", "-it", id, "sh", "-c", shell]);
    let line = shell_line(&crictl);
    let mut cmd = Command::new("script");
    cmd.args(["-qefc", &line, "/dev/null"]);
    let out = lxcri_integration::cmd::run(&mut cmd, None, lxcri_integration::cmd::TIMEOUT)?;
    ensure!(out.code == 0, "crictl exec -it: {out}");
    Ok(out.stdout)
}

/// A command as one shell line (each argument single-quoted).
fn shell_line(cmd: &Command) -> String {
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    std::iter::once(quote(cmd.get_program()))
        .chain(cmd.get_args().map(quote))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `crictl stats` and `statsp`: the container's and the pod's CPU and
/// memory usage are reported and nonzero.
fn check_stats(h: &Harness, id: &str, pod: &str) -> Result<()> {
    let out = h.crictl_ok(&["stats", "-o", "json", "--id", id])?;
    let stats: Value = serde_json::from_str(&out.stdout).context("crictl stats")?;
    let s = stats["stats"]
        .as_array()
        .and_then(|a| a.first())
        .with_context(|| format!("no stats: {stats}"))?;
    ensure!(s["attributes"]["id"] == id, "stats for another id: {s}");
    let mem = s["memory"]["workingSetBytes"]["value"]
        .as_str()
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(|| s["memory"]["workingSetBytes"]["value"].as_u64())
        .unwrap_or(0);
    ensure!(mem > 0, "container memory working set: {s}");
    ensure!(!s["cpu"]["usageCoreNanoSeconds"].is_null(), "no cpu: {s}");
    let out = h.crictl_ok(&["statsp", "-o", "json", "--id", pod])?;
    let stats: Value = serde_json::from_str(&out.stdout).context("crictl statsp")?;
    let p = stats["stats"]
        .as_array()
        .and_then(|a| a.first())
        .with_context(|| format!("no pod stats: {stats}"))?;
    ensure!(
        !p["linux"]["cpu"].is_null() && !p["linux"]["memory"].is_null(),
        "pod stats lack cpu/memory: {p}"
    );
    Ok(())
}
