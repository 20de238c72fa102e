//! Issue 3: runtime options and Checkpoint, with runc as the reference.

use crate::util::{expect, remove, run_detached, wait_status};
use crate::{matrix, matrix_lxcri};
use anyhow::{ensure, Result};
use lxcri_integration::Harness;
use std::time::{Duration, Instant};

matrix!(runtime_config_path_is_accepted, checkpoint_fails_cleanly);
matrix_lxcri!(runtime_config_path_errors);

/// `ctr run --runtime-config-path` sends containerd's runtimeoptions.v1.Options
/// to a non-runc runtime (runc's own options to runc, without the path): lxcri
/// reads the TOML file, here runc option keys that change nothing visible.
fn runtime_config_path_is_accepted(h: &mut Harness) -> Result<()> {
    let cfg = h.ctd.dir().join("runtime.toml");
    std::fs::write(
        &cfg,
        "# runtime options\nSystemdCgroup = false\nNoPivotRoot = false\n",
    )?;
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

/// A bad options file fails Create with an error naming the file and the key,
/// never a silent default; nothing is left behind (leak check).
fn runtime_config_path_errors(h: &mut Harness) -> Result<()> {
    let dir = h.ctd.dir().to_path_buf();
    for (name, text, want) in [
        (
            "rtunknown",
            Some("SystemdCgroups = true\n"),
            "unknown key \"SystemdCgroups\"",
        ),
        (
            "rttype",
            Some("SystemdCgroup = \"yes\"\n"),
            "SystemdCgroup must be a boolean",
        ),
        ("rtmissing", None, "cannot read ConfigPath"),
    ] {
        let path = dir.join(format!("{name}.toml"));
        if let Some(text) = text {
            std::fs::write(&path, text)?;
        }
        let path = path.display().to_string();
        let out = h.run_rootfs(name, &["--runtime-config-path", &path], &["/bin/true"])?;
        remove(h, &format!("lxe2e-{name}"))?;
        ensure!(
            out.code != 0 && out.stderr.contains(&path) && out.stderr.contains(want),
            "{name}: want an error naming {path} and {want:?}: {out}"
        );
    }
    Ok(())
}
