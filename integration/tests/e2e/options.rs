//! Issue 3: runtime options and Checkpoint, with runc as the reference.

use crate::matrix;
use crate::util::{expect, remove, run_detached, wait_status};
use anyhow::{ensure, Result};
use lxcri_integration::Harness;
use std::time::{Duration, Instant};

matrix!(runtime_config_path_is_accepted, checkpoint_fails_cleanly);

/// `ctr run --runtime-config-path` sends CRI's runtimeoptions.v1.Options to a
/// non-runc runtime (runc's own options to runc): accepted, never a failure.
fn runtime_config_path_is_accepted(h: &mut Harness) -> Result<()> {
    let cfg = h.ctd.dir().join("runtime.toml");
    std::fs::write(&cfg, "# runtime options\n")?;
    let cfg = cfg.display().to_string();
    let out = h.run_rootfs(
        "rtopts",
        &["--runtime-config-path", &cfg],
        &["/bin/echo", "options-ok"],
    )?;
    expect(&out, 0, "options-ok\n")
}

/// No criu on this host (`criu check` fails in this sandbox): Checkpoint
/// returns an error quickly, and the container keeps running.
fn checkpoint_fails_cleanly(h: &mut Harness) -> Result<()> {
    let id = run_detached(h, "ckpt", &[], &["/bin/sleep", "300"])?;
    h.track(&id);
    wait_status(h, &id, "RUNNING")?;
    let t = Instant::now();
    let out = h.ctr(&["task", "checkpoint", &id])?;
    ensure!(out.code != 0, "checkpoint succeeded: {out}");
    ensure!(
        out.stderr.to_lowercase().contains("criu") || out.stderr.contains("not implemented"),
        "unclear error: {out}"
    );
    ensure!(
        t.elapsed() < Duration::from_secs(60),
        "took {:?}",
        t.elapsed()
    );
    wait_status(h, &id, "RUNNING")?;
    remove(h, &id)
}
