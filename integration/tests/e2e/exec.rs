//! Issue 3: processes exec'd into a running container (`ctr task exec`).

use crate::matrix;
use crate::util::{exec, expect, remove, run_detached, wait_status};
use anyhow::{ensure, Result};
use lxcri_integration::Harness;

matrix!(
    exec_output_and_exit_code,
    exec_in_container_namespaces_and_cgroup,
    exec_cwd_and_env,
    exec_signaled,
    exec_missing_binary,
    exec_stdin,
    exec_detached_kill_and_ps,
);

/// A running container to exec into; `f` runs against it, then it is removed.
fn with_container(h: &mut Harness, f: impl FnOnce(&mut Harness, &str) -> Result<()>) -> Result<()> {
    let id = run_detached(
        h,
        "ex",
        &["--env", "FROM_SPEC=yes"],
        &["/bin/sleep", "1000"],
    )?;
    let result = wait_status(h, &id, "RUNNING").and_then(|_| f(h, &id));
    let cleanup = remove(h, &id);
    result.and(cleanup)
}

fn exec_output_and_exit_code(h: &mut Harness) -> Result<()> {
    with_container(h, |h, id| {
        let out = exec(
            h,
            id,
            "e1",
            &["/bin/sh", "-c", "echo in-exec; echo err >&2; exit 3"],
        )?;
        expect(&out, 3, "in-exec\n")?;
        ensure!(out.stderr.contains("err"), "stderr: {out}");
        let out = exec(h, id, "e2", &["/bin/true"])?;
        expect(&out, 0, "")
    })
}

/// The exec'd process shares the init's namespaces and cgroup.
fn exec_in_container_namespaces_and_cgroup(h: &mut Harness) -> Result<()> {
    with_container(h, |h, id| {
        let script = "for n in pid mnt net uts ipc; do \
             [ \"$(readlink /proc/1/ns/$n)\" = \"$(readlink /proc/self/ns/$n)\" ] || echo differs-$n; \
             done; hostname; grep -c . /proc/self/cgroup >/dev/null; \
             grep memory /proc/self/cgroup";
        let out = exec(h, id, "ns", &["/bin/sh", "-c", script])?;
        ensure!(out.code == 0, "{out}");
        ensure!(!out.stdout.contains("differs"), "namespaces differ: {out}");
        ensure!(
            out.stdout.contains(&format!(":/default/{id}")),
            "cgroup: {out}"
        );
        Ok(())
    })
}

fn exec_cwd_and_env(h: &mut Harness) -> Result<()> {
    with_container(h, |h, id| {
        let out = h.ctr(&[
            "task",
            "exec",
            "--exec-id",
            "cwd",
            "--cwd",
            "/tmp",
            id,
            "/bin/sh",
            "-c",
            "pwd; echo $FROM_SPEC",
        ])?;
        expect(&out, 0, "/tmp\nyes\n")
    })
}

/// A signalled exec reports 128+signal.
fn exec_signaled(h: &mut Harness) -> Result<()> {
    with_container(h, |h, id| {
        let out = exec(h, id, "sig", &["/bin/sh", "-c", "kill -9 $$"])?;
        ensure!(out.code == 137, "want 137: {out}");
        Ok(())
    })
}

/// A missing binary fails the exec with a message naming it, and the container
/// keeps running.
fn exec_missing_binary(h: &mut Harness) -> Result<()> {
    with_container(h, |h, id| {
        let out = exec(h, id, "nobin", &["/no/such/binary"])?;
        ensure!(out.code != 0, "exec of a missing binary succeeded: {out}");
        ensure!(
            out.stderr.contains("/no/such/binary") && out.stderr.contains("no such file"),
            "stderr should name the binary: {out}"
        );
        wait_status(h, id, "RUNNING")?;
        Ok(())
    })
}

fn exec_stdin(h: &mut Harness) -> Result<()> {
    with_container(h, |h, id| {
        let out = h.ctd.ctr_stdin(
            &["task", "exec", "--exec-id", "in", id, "/bin/head", "-n1"],
            b"x\ny\n",
        )?;
        expect(&out, 0, "x\n")
    })
}

/// A detached exec shows up in `ctr task ps` and can be killed by exec id.
fn exec_detached_kill_and_ps(h: &mut Harness) -> Result<()> {
    with_container(h, |h, id| {
        h.ctr_ok(&[
            "task",
            "exec",
            "-d",
            "--exec-id",
            "bg",
            id,
            "/bin/sleep",
            "1000",
        ])?;
        let ps = h.ctr_ok(&["task", "ps", id])?;
        let pids: Vec<&str> = ps.stdout.lines().skip(1).collect();
        ensure!(pids.len() == 2, "want init and exec in ps: {ps}");
        h.ctr_ok(&["task", "kill", "--exec-id", "bg", "-s", "SIGKILL", id])?;
        for _ in 0..100 {
            let ps = h.ctr_ok(&["task", "ps", id])?;
            if ps.stdout.lines().skip(1).count() == 1 {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        anyhow::bail!("exec still running after kill")
    })
}
