//! Issue 3: containerd restarts while a container runs; the new daemon
//! reconnects to the shim (its socket under the private /run/containerd)
//! and manages the task as before.

use crate::matrix;
use crate::util::{expect, remove, run_detached, task, wait_status};
use anyhow::{ensure, Result};
use lxcri_integration::harness::Task;
use lxcri_integration::{procfs, Harness};

matrix!(containerd_restart);

fn containerd_restart(h: &mut Harness) -> Result<()> {
    let id = run_detached(h, "restart", &[], &["/bin/sleep", "1000"])?;
    let result = restart_and_manage(h, &id);
    let cleanup = remove(h, &id);
    result.and(cleanup)
}

fn restart_and_manage(h: &mut Harness, id: &str) -> Result<()> {
    let before = wait_status(h, id, "RUNNING")?;
    let shims: Vec<i32> = h.ctd.shims().iter().map(|p| p.pid).collect();
    ensure!(!shims.is_empty(), "no shim for {id}");
    let old_daemon = h.ctd.pid();
    h.restart()?;
    ensure!(h.ctd.pid() != old_daemon, "containerd pid unchanged");
    ensure!(
        procfs::process(before.pid).is_some(),
        "container init {} died with containerd",
        before.pid
    );
    let after: Vec<i32> = h.ctd.shims().iter().map(|p| p.pid).collect();
    ensure!(
        after == shims,
        "shims before {shims:?}, after restart {after:?}"
    );
    let listed = task(h, id)?;
    let expected = Task {
        pid: before.pid,
        status: "RUNNING".to_string(),
    };
    ensure!(
        listed.as_ref() == Some(&expected),
        "after restart: {listed:?}, expected {expected:?}"
    );
    // The reconnected shim still serves exec (stdio through new fifos).
    let out = h.ctr(&["task", "exec", "--exec-id", "after", id, "/bin/echo", "hi"])?;
    expect(&out, 0, "hi\n")?;
    h.ctr_ok(&["task", "kill", "-s", "SIGKILL", id])?;
    wait_status(h, id, "STOPPED")?;
    h.ctr_ok(&["task", "delete", id])?;
    h.ctr_ok(&["container", "rm", id])?;
    ensure!(task(h, id)?.is_none(), "task still listed");
    ensure!(
        procfs::process(before.pid).is_none(),
        "container init {} still alive",
        before.pid
    );
    Ok(())
}
