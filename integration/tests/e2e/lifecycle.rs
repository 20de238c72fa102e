//! Issue points 1 and 4: output, exit codes, detached lifecycle, stdio.

use crate::matrix;
use crate::util::{expect, remove, run_detached, task, wait_status};
use anyhow::{ensure, Context, Result};
use lxcri_integration::{cmd, procfs, Harness};
use std::process::Stdio;
use std::time::Duration;

matrix!(
    echo_hello,
    exit_code,
    killed_by_sigkill,
    stdout_and_stderr,
    stdin_to_container,
    detached_sigterm_handled,
    detached_sigkill,
);

/// Handles SIGTERM with exit 3, runs until signalled.
const TRAP_TERM: &str = "trap 'exit 3' TERM; while :; do sleep 0.1; done";

fn echo_hello(h: &mut Harness) -> Result<()> {
    let out = h.run_rootfs("t1", &[], &["/bin/echo", "hello"])?;
    expect(&out, 0, "hello\n")
}

fn exit_code(h: &mut Harness) -> Result<()> {
    let out = h.run_rootfs("exit7", &[], &["/bin/sh", "-c", "exit 7"])?;
    expect(&out, 7, "")
}

/// `ctr run` reports 137 when the container's init is SIGKILLed. (Init
/// cannot SIGKILL itself from inside its pid namespace, so the signal
/// comes from `ctr task kill`.)
fn killed_by_sigkill(h: &mut Harness) -> Result<()> {
    let id = h.id("kill9");
    let rootfs = h.rootfs();
    let args = [
        "run",
        "--rm",
        "--runtime",
        h.runtime.name(),
        "--rootfs",
        &rootfs,
        &id,
        "/bin/sleep",
        "1000",
    ];
    let mut run = h.ctd.ctr_command(&args);
    let mut run = run
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let running = wait_status(h, &id, "RUNNING");
    let killed = running.and_then(|_| h.ctr_ok(&["task", "kill", "-s", "SIGKILL", &id]));
    let code = cmd::wait_timeout(&mut run, Duration::from_secs(30));
    killed?;
    ensure!(code == Some(137), "ctr run rc {code:?}, want 137");
    Ok(())
}

fn stdout_and_stderr(h: &mut Harness) -> Result<()> {
    let script = "echo to-stdout; echo to-stderr >&2";
    let out = h.run_rootfs("stdio", &[], &["/bin/sh", "-c", script])?;
    expect(&out, 0, "to-stdout\n")?;
    ensure!(out.stderr == "to-stderr\n", "stderr: {out}");
    Ok(())
}

fn stdin_to_container(h: &mut Harness) -> Result<()> {
    let out = h.run_rootfs_stdin("stdin", &[], &["/bin/head", "-n1"], b"x\ny\n")?;
    expect(&out, 0, "x\n")
}

/// run -d, RUNNING with the init's real host pid in its own pid namespace,
/// SIGTERM handled (exit 3), STOPPED, delete, container rm.
fn detached_sigterm_handled(h: &mut Harness) -> Result<()> {
    let id = run_detached(h, "term", &[], &["/bin/sh", "-c", TRAP_TERM])?;
    let result = sigterm_lifecycle(h, &id);
    let cleanup = remove(h, &id);
    result.and(cleanup)
}

fn sigterm_lifecycle(h: &mut Harness, id: &str) -> Result<()> {
    let t = wait_status(h, id, "RUNNING")?;
    check_host_pid(t.pid)?;
    h.ctr_ok(&["task", "kill", id])?;
    let stopped = wait_status(h, id, "STOPPED")?;
    ensure!(stopped.pid == t.pid, "pid changed: {t:?} -> {stopped:?}");
    let out = h.ctr_ok(&["task", "delete", id])?;
    ensure!(
        out.stderr.contains("exit code 3"),
        "task delete should report exit code 3: {out}"
    );
    ensure!(task(h, id)?.is_none(), "task still listed after delete");
    h.ctr_ok(&["container", "rm", id])?;
    let containers = h.ctr_ok(&["container", "ls", "-q"])?;
    ensure!(!containers.stdout.contains(id), "container still listed");
    Ok(())
}

fn detached_sigkill(h: &mut Harness) -> Result<()> {
    let id = run_detached(h, "kill", &[], &["/bin/sleep", "1000"])?;
    let result = sigkill_lifecycle(h, &id);
    let cleanup = remove(h, &id);
    result.and(cleanup)
}

fn sigkill_lifecycle(h: &mut Harness, id: &str) -> Result<()> {
    let t = wait_status(h, id, "RUNNING")?;
    check_host_pid(t.pid)?;
    h.ctr_ok(&["task", "kill", "-s", "SIGKILL", id])?;
    wait_status(h, id, "STOPPED")?;
    let out = h.ctr_ok(&["task", "delete", id])?;
    ensure!(
        out.stderr.contains("exit code 137"),
        "task delete should report exit code 137: {out}"
    );
    Ok(())
}

/// The pid ctr shows is a live host process in a pid namespace of its own.
fn check_host_pid(pid: i32) -> Result<()> {
    let ns = procfs::pid_namespace(pid).with_context(|| format!("pid {pid} not on the host"))?;
    let host = procfs::pid_namespace(std::process::id() as i32)?;
    ensure!(ns != host, "pid {pid} shares the host pid namespace {host}");
    Ok(())
}
