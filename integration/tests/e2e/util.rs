//! Helpers shared by the scenarios.

use anyhow::{ensure, Context, Result};
use lxcri_integration::{cmd, Harness, Output};
use serde_json::Value;
use std::process::Child;
use std::time::Duration;

/// Asserts exit code and exact stdout.
pub fn expect(out: &Output, code: i32, stdout: &str) -> Result<()> {
    ensure!(
        out.code == code && out.stdout == stdout,
        "expected rc={code} stdout={stdout:?}, got {out}"
    );
    Ok(())
}

pub use lxcri_integration::harness::{task, wait_status};

/// `ctr run -d --runtime R --rootfs ROOTFS [opts] ID cmd...`; returns the id.
pub fn run_detached(h: &mut Harness, name: &str, opts: &[&str], cmd: &[&str]) -> Result<String> {
    let id = h.id(name);
    let rootfs = h.rootfs();
    let mut args = vec!["run", "-d", "--runtime", h.runtime.name()];
    args.extend(opts);
    args.extend(["--rootfs", &rootfs, &id]);
    args.extend(cmd);
    h.ctr_ok(&args)?;
    Ok(id)
}

/// SIGKILL, delete and remove a detached container (test cleanup).
/// `ctr task exec --exec-id EXEC_ID ID CMD...`.
pub fn exec(h: &Harness, id: &str, exec_id: &str, cmd: &[&str]) -> Result<Output> {
    let mut args = vec!["task", "exec", "--exec-id", exec_id, id];
    args.extend(cmd);
    h.ctr(&args)
}

pub fn remove(h: &Harness, id: &str) -> Result<()> {
    if task(h, id)?.is_some_and(|t| t.status != "STOPPED") {
        h.ctr_ok(&["task", "kill", "-s", "SIGKILL", id])?;
        wait_status(h, id, "STOPPED")?;
    }
    if task(h, id)?.is_some() {
        h.ctr_ok(&["task", "delete", id])?;
    }
    let listed = h.ctr_ok(&["container", "ls", "-q"])?;
    if listed.stdout.lines().any(|l| l == id) {
        h.ctr_ok(&["container", "rm", id])?;
    }
    Ok(())
}

/// containerd's default OCI spec (`ctr oci spec`) adapted to run `args`
/// from the harness rootfs as container `id`.
pub fn default_spec(h: &Harness, id: &str, args: &[&str]) -> Result<Value> {
    let out = h.ctr_ok(&["oci", "spec"])?;
    let mut spec: Value = serde_json::from_str(&out.stdout).context("ctr oci spec")?;
    spec["root"] = serde_json::json!({"path": h.rootfs(), "readonly": false});
    spec["process"]["args"] = serde_json::json!(args);
    spec["linux"]["cgroupsPath"] = Value::from(format!("/default/{id}"));
    Ok(spec)
}

/// `ctr run --rm --runtime R --config SPEC ID` with `spec` written to a file.
pub fn run_spec(h: &Harness, id: &str, spec: &Value) -> Result<Output> {
    run_spec_runtime(h, h.runtime.name(), id, spec)
}

/// Like [`run_spec`] with an explicit runtime name.
pub fn run_spec_runtime(h: &Harness, runtime: &str, id: &str, spec: &Value) -> Result<Output> {
    let path = write_spec(h, id, spec)?;
    h.ctr(&["run", "--rm", "--runtime", runtime, "--config", &path, id])
}

/// `ctr run -d --config` of `spec` with the harness's runtime.
pub fn run_spec_detached(h: &Harness, id: &str, spec: &Value) -> Result<Output> {
    let path = write_spec(h, id, spec)?;
    h.ctr_ok(&[
        "run",
        "-d",
        "--runtime",
        h.runtime.name(),
        "--config",
        &path,
        id,
    ])
}

fn write_spec(h: &Harness, id: &str, spec: &Value) -> Result<String> {
    let path = h.ctd.dir().join(format!("{id}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(spec)?)?;
    Ok(path.display().to_string())
}

/// Kills a background child and returns its stdout.
pub fn stop_background(mut child: Child) -> String {
    let stdout = cmd::collect(child.stdout.take());
    let _ = child.kill();
    let _ = child.wait();
    stdout
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_default()
}

/// Runs `f` while `ctr events` listens (from half a second before to half a
/// second after); returns `f`'s result and the events text.
pub fn with_events<T>(h: &mut Harness, f: impl FnOnce(&mut Harness) -> T) -> Result<(T, String)> {
    let mut events = h.ctd.ctr_command(&["events"]);
    let events = events
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(500));
    let result = f(h);
    std::thread::sleep(Duration::from_millis(500));
    Ok((result, stop_background(events)))
}
