//! Issue 4, OCI hooks: every phase runs at its moment, in its namespace, with
//! the container's state on stdin; failures and timeouts fail the create like
//! runc's.

use crate::matrix;
use crate::util::{default_spec, run_spec};
use anyhow::{ensure, Context, Result};
use lxcri_integration::{Harness, Runtime};
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

matrix!(hooks_all_phases, hook_failure_fails_create, hook_timeout);

/// A host hook: `sh -c SCRIPT` with the hook's phase as $1 and DIR as $2.
fn sh_hook(script: &str, phase: &str, dir: &Path) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", script, "hook", phase, dir.display().to_string()],
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOOK_ENV=set"]
    })
}

fn read_state(dir: &Path, phase: &str) -> Result<Value> {
    let p = dir.join(format!("{phase}.json"));
    let text = fs::read_to_string(&p).with_context(|| format!("{phase} hook did not run"))?;
    serde_json::from_str(&text).with_context(|| format!("{phase} state: {text:?}"))
}

fn hooks_all_phases(h: &mut Harness) -> Result<()> {
    let id = h.id("hooks");
    let dir = h.ctd.dir().join(format!("{id}-hooks"));
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    // Host phases record their state and the order; createContainer also
    // records its mount and UTS namespaces (the container's, while the host's
    // filesystem is still visible: before pivot_root).
    let host = "cat > \"$2/$1.json\"; echo \"$1 $HOOK_ENV\" >> \"$2/order\"";
    let in_ctr = "cat > \"$2/$1.json\"; echo \"$1 $HOOK_ENV\" >> \"$2/order\"; \
                  { readlink /proc/self/ns/mnt; readlink /proc/self/ns/uts; } > \"$2/$1.ns\"";
    // startContainer runs in the container (busybox's sh); the process prints
    // what it saw.
    let start = json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", "cat > /tmp/start.json; hostname > /tmp/start.hostname"],
    });
    let mut spec = default_spec(
        h,
        &id,
        &[
            "/bin/sh",
            "-c",
            "cat /tmp/start.hostname; cat /tmp/start.json; echo; \
             readlink /proc/self/ns/mnt; readlink /proc/self/ns/uts",
        ],
    )?;
    spec["hostname"] = json!("hooked");
    spec["annotations"] = json!({"org.lxcri.test": "yes"});
    spec["hooks"] = json!({
        "prestart": [sh_hook(host, "prestart", &dir)],
        "createRuntime": [sh_hook(host, "createRuntime", &dir)],
        "createContainer": [sh_hook(in_ctr, "createContainer", &dir)],
        "startContainer": [start],
        "poststart": [sh_hook(host, "poststart", &dir)],
        "poststop": [sh_hook(host, "poststop", &dir)],
    });
    let out = run_spec(h, &id, &spec).context("ctr run")?;
    ensure!(out.code == 0, "run: {out}");
    let mut lines = out.stdout.lines();
    ensure!(
        lines.next() == Some("hooked"),
        "startContainer hostname: {out}"
    );
    let start: Value = serde_json::from_str(lines.next().unwrap_or(""))
        .with_context(|| format!("startContainer state: {out}"))?;
    ensure!(start["id"] == id.as_str(), "startContainer state {start}");

    let order = fs::read_to_string(dir.join("order")).context("no hook wrote the order file")?;
    ensure!(
        order
            == "prestart set\ncreateRuntime set\ncreateContainer set\npoststart set\npoststop set\n",
        "order: {order:?}"
    );
    let ns = fs::read_to_string(dir.join("createContainer.ns"))
        .context("createContainer wrote no namespaces")?;
    let own: Vec<&str> = lines.collect();
    ensure!(
        ns.lines().collect::<Vec<_>>() == own,
        "createContainer ran in {ns:?}, the container is in {own:?}"
    );
    let mut pid = None;
    for (phase, status) in [
        ("prestart", "creating"),
        ("createRuntime", "creating"),
        ("createContainer", "creating"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ] {
        let s = read_state(&dir, phase)?;
        ensure!(s["id"] == id.as_str(), "{phase}: {s}");
        // runc 1.1.5 still says "created" to poststart hooks; lxcri says "running".
        let runc_quirk = h.runtime == Runtime::Runc && phase == "poststart";
        ensure!(
            s["status"] == status || (runc_quirk && s["status"] == "created"),
            "{phase} status: {s}"
        );
        ensure!(
            s["annotations"]["org.lxcri.test"] == "yes",
            "{phase} annotations: {s}"
        );
        ensure!(
            s["bundle"]
                .as_str()
                .is_some_and(|b| Path::new(b).is_absolute()),
            "{phase} bundle: {s}"
        );
        if phase != "poststop" {
            let p = s["pid"].as_i64().filter(|p| *p > 0);
            ensure!(p.is_some(), "{phase} pid: {s}");
            // The host pid everywhere for lxcri; runc 1.1.5 runs createContainer
            // from inside the container and reports its pid there (1).
            if phase != "createContainer" || h.runtime == Runtime::Lxcri {
                ensure!(pid.is_none() || pid == p, "{phase} pid differs: {s}");
            }
            pid = pid.or(p);
        }
    }
    Ok(())
}

/// A failing createRuntime hook fails the create with the hook's output; the
/// process never runs, and nothing is left behind (the leak check).
fn hook_failure_fails_create(h: &mut Harness) -> Result<()> {
    let id = h.id("hookfail");
    let mut spec = default_spec(h, &id, &["/bin/echo", "must-not-run"])?;
    spec["hooks"] = json!({"createRuntime": [{
        "path": "/bin/sh", "args": ["sh", "-c", "echo hook-said-no >&2; exit 3"]
    }]});
    let out = run_spec(h, &id, &spec)?;
    ensure!(out.code != 0, "run succeeded: {out}");
    ensure!(!out.stdout.contains("must-not-run"), "process ran: {out}");
    ensure!(
        out.stderr.contains("hook #0") && out.stderr.contains("hook-said-no"),
        "error does not name the hook: {out}"
    );
    let _ = h.ctr(&["container", "rm", &id]);
    Ok(())
}

/// A hook that outlives its timeout is killed and fails the create.
fn hook_timeout(h: &mut Harness) -> Result<()> {
    let id = h.id("hooktimeout");
    let mut spec = default_spec(h, &id, &["/bin/echo", "must-not-run"])?;
    spec["hooks"] = json!({"prestart": [{
        "path": "/bin/sh", "args": ["sh", "-c", "exec sleep 30"], "timeout": 1
    }]});
    let t = std::time::Instant::now();
    let out = run_spec(h, &id, &spec)?;
    ensure!(out.code != 0, "run succeeded: {out}");
    ensure!(out.stderr.contains("timeout"), "no timeout error: {out}");
    ensure!(t.elapsed().as_secs() < 20, "took {:?}", t.elapsed());
    let _ = h.ctr(&["container", "rm", &id]);
    Ok(())
}
