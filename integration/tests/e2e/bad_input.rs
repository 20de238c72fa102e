//! Issue point 6 and "bad input": clear errors, nothing left behind.

use crate::matrix;
use crate::util::{default_spec, remove, run_detached, run_spec, wait_status};
use anyhow::{ensure, Result};
use lxcri_integration::{Harness, Output, Runtime};
use serde_json::json;

matrix!(
    missing_binary,
    not_executable,
    missing_rootfs,
    invalid_config_json,
    bad_mount_in_spec,
    unsupported_oci_version,
    duplicate_id,
);

/// Fails with a message naming `what`. lxcri runs the process and reports
/// the shell convention `code` (127/126) with the message on the
/// container's stderr; runc refuses at create (ctr exits 1).
fn expect_exec_failure(h: &Harness, out: &Output, code: i32, what: &str) -> Result<()> {
    ensure!(out.stderr.contains(what), "stderr must name {what}: {out}");
    match h.runtime {
        Runtime::Lxcri => ensure!(out.code == code, "want rc {code}: {out}"),
        Runtime::Runc => ensure!(out.code != 0, "want failure: {out}"),
    }
    Ok(())
}

fn missing_binary(h: &mut Harness) -> Result<()> {
    let out = h.run_rootfs("nobin", &[], &["/bin/nonexistent"])?;
    expect_exec_failure(h, &out, 127, "/bin/nonexistent")
}

fn not_executable(h: &mut Harness) -> Result<()> {
    let out = h.run_rootfs("noexec", &[], &["/etc/passwd"])?;
    expect_exec_failure(h, &out, 126, "/etc/passwd")
}

/// Removes the container record if the failed `ctr run` left one (ctr's
/// own bookkeeping, not the runtime's).
fn forget(h: &Harness, id: &str) -> Result<()> {
    let listed = h.ctr_ok(&["container", "ls", "-q"])?;
    if listed.stdout.lines().any(|l| l == id) {
        h.ctr_ok(&["container", "rm", id])?;
    }
    Ok(())
}

fn missing_rootfs(h: &mut Harness) -> Result<()> {
    let id = h.id("norootfs");
    let args = [
        "run",
        "--rm",
        "--runtime",
        h.runtime.name(),
        "--rootfs",
        "/nonexistent-lxe2e-rootfs",
        &id,
        "/bin/true",
    ];
    let out = h.ctr(&args)?;
    forget(h, &id)?;
    ensure!(out.code != 0, "run with a missing rootfs succeeded: {out}");
    ensure!(!out.stderr.is_empty(), "no error message: {out}");
    Ok(())
}

fn invalid_config_json(h: &mut Harness) -> Result<()> {
    let id = h.id("badjson");
    let path = h.ctd.dir().join("bad.json");
    std::fs::write(&path, "{\"ociVersion\": \"1.0.2\", \"process\": ")?;
    let path = path.display().to_string();
    let out = h.ctr(&[
        "run",
        "--rm",
        "--runtime",
        h.runtime.name(),
        "--config",
        &path,
        &id,
    ])?;
    forget(h, &id)?;
    ensure!(
        out.code != 0 && !out.stderr.is_empty(),
        "broken config.json accepted: {out}"
    );
    Ok(())
}

/// A well-formed spec the runtime cannot apply: an unknown fs type.
fn bad_mount_in_spec(h: &mut Harness) -> Result<()> {
    let id = h.id("badmount");
    let mut spec = default_spec(h, &id, &["/bin/true"])?;
    let mount = json!({"destination": "/mnt", "type": "nosuchfs", "source": "none"});
    spec["mounts"].as_array_mut().expect("mounts").push(mount);
    let out = run_spec(h, &id, &spec)?;
    forget(h, &id)?;
    ensure!(
        out.code != 0 && !out.stderr.is_empty(),
        "bad mount accepted: {out}"
    );
    Ok(())
}

/// A spec of a runtime-spec version lxcri does not know (2.0.0) is refused
/// with an error naming `ociVersion`, the container never runs; runc does not
/// check the version and runs it.
fn unsupported_oci_version(h: &mut Harness) -> Result<()> {
    let id = h.id("ociversion");
    let mut spec = default_spec(h, &id, &["/bin/echo", "ran"])?;
    spec["ociVersion"] = json!("2.0.0");
    let out = run_spec(h, &id, &spec)?;
    forget(h, &id)?;
    match h.runtime {
        Runtime::Lxcri => ensure!(
            out.code != 0 && out.stderr.contains("ociVersion") && !out.stdout.contains("ran"),
            "ociVersion 2.0.0 accepted: {out}"
        ),
        Runtime::Runc => ensure!(out.code == 0 && out.stdout.contains("ran"), "{out}"),
    }
    Ok(())
}

/// A second container with the same id is refused; the first keeps running.
fn duplicate_id(h: &mut Harness) -> Result<()> {
    let id = run_detached(h, "dup", &[], &["/bin/sleep", "1000"])?;
    let result = check_duplicate(h, &id);
    let cleanup = remove(h, &id);
    result.and(cleanup)
}

fn check_duplicate(h: &mut Harness, id: &str) -> Result<()> {
    let first = wait_status(h, id, "RUNNING")?;
    let rootfs = h.rootfs();
    let args = [
        "run",
        "-d",
        "--runtime",
        h.runtime.name(),
        "--rootfs",
        &rootfs,
        id,
        "/bin/true",
    ];
    let out = h.ctr(&args)?;
    ensure!(out.code != 0, "duplicate id accepted: {out}");
    ensure!(out.stderr.contains("already exists"), "{out}");
    let still = wait_status(h, id, "RUNNING")?;
    ensure!(
        still.pid == first.pid,
        "first container changed: {first:?} -> {still:?}"
    );
    Ok(())
}
