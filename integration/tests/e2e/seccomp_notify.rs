//! Seccomp agents (SCMP_ACT_NOTIFY with `linux.seccomp.listenerPath`): the
//! runtime sends the ContainerProcessState JSON and the listener fd of the init
//! (at create, state "creating") and of every exec (state "running") to the
//! agent, a thread of the test (`lxcri_integration::seccomp_agent`), which
//! fakes `mkdir` and fails `rmdir` with EXDEV. Through containerd with runc
//! 1.1.5 as the reference, and through the `lxcri` CLI.

use std::path::Path;
use std::time::Duration;

use crate::matrix;
use crate::util::{default_spec, expect, remove, run_spec, run_spec_detached, wait_status};
use anyhow::{ensure, Context, Result};
use lxcri_integration::cli::{CliEnv, Subreaper};
use lxcri_integration::seccomp_agent::Agent;
use lxcri_integration::Harness;
use serde_json::{json, Value};

matrix!(notify_run_and_exec, notify_agent_absent);

/// mkdir "succeeds" (the agent does nothing), so the directory is absent;
/// rmdir fails with the agent's errno.
const SCRIPT: &str = "mkdir /tmp/a && echo mk-ok; test -d /tmp/a && echo exists || echo absent; \
                      rmdir /tmp 2>&1; echo rc=$?";
const SCRIPT_OUT: &str = "mk-ok\nabsent\nrmdir: '/tmp': Invalid cross-device link\nrc=1\n";
const METADATA: &str = "agent-test-metadata";

fn profile(listener: &Path) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "listenerPath": listener,
        "listenerMetadata": METADATA,
        "syscalls": [
            {"names": ["mkdir", "mkdirat", "rmdir"], "action": "SCMP_ACT_NOTIFY"},
            {"names": ["chroot"], "action": "SCMP_ACT_ERRNO"}
        ]
    })
}

/// The fields of one ContainerProcessState document.
fn check_document(d: &Value, id: &str, status: &str) -> Result<()> {
    ensure!(
        d["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{d}"
    );
    ensure!(d["fds"] == json!(["seccompFd"]), "{d}");
    ensure!(d["pid"].as_i64().is_some_and(|p| p > 0), "{d}");
    ensure!(d["metadata"] == METADATA, "{d}");
    let s = &d["state"];
    ensure!(s["id"] == id && s["status"] == status, "{d}");
    ensure!(s["pid"].as_i64().is_some_and(|p| p > 0), "{d}");
    ensure!(s["bundle"].as_str().is_some_and(|b| !b.is_empty()), "{d}");
    ensure!(
        s["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{d}"
    );
    Ok(())
}

fn agent_dir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("lxcri-agent")
        .tempdir_in("/tmp")
        .context("agent dir")
}

/// `ctr run` with the agent: the init's document at create, the faked mkdir
/// and the agent's errno; an exec gets a new listener with its own pid; without
/// the agent an exec fails.
fn notify_run_and_exec(h: &mut Harness) -> Result<()> {
    let dir = agent_dir()?;
    let agent = Agent::start(&dir.path().join("agent.sock"))?;
    let id = h.id("notify");
    let mut spec = default_spec(h, &id, &["/bin/sh", "-c", SCRIPT])?;
    spec["linux"]["seccomp"] = profile(&agent.path);
    expect(&run_spec(h, &id, &spec)?, 0, SCRIPT_OUT)?;
    let docs = agent.wait_documents(1, Duration::from_secs(5))?;
    ensure!(docs.len() == 1, "one process, one document: {docs:?}");
    check_document(&docs[0], &id, "creating")?;
    ensure!(docs[0]["pid"] == docs[0]["state"]["pid"], "{}", docs[0]);

    let id = h.id("notify-exec");
    let mut spec = default_spec(h, &id, &["/bin/sleep", "300"])?;
    spec["linux"]["seccomp"] = profile(&agent.path);
    run_spec_detached(h, &id, &spec)?;
    h.track(&id);
    let task = wait_status(h, &id, "RUNNING")?;
    let docs = agent.wait_documents(2, Duration::from_secs(5))?;
    check_document(&docs[1], &id, "creating")?;
    ensure!(
        docs[1]["pid"] == task.pid,
        "init pid {}: {}",
        task.pid,
        docs[1]
    );
    let out = h.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "mk",
        &id,
        "/bin/sh",
        "-c",
        SCRIPT,
    ])?;
    expect(&out, 0, SCRIPT_OUT)?;
    let docs = agent.wait_documents(3, Duration::from_secs(5))?;
    ensure!(docs.len() == 3, "{docs:?}");
    check_document(&docs[2], &id, "running")?;
    ensure!(docs[2]["state"]["pid"] == task.pid, "{}", docs[2]);
    ensure!(
        docs[2]["pid"] != task.pid,
        "the exec's own pid: {}",
        docs[2]
    );
    // The agent gone, an exec fails naming the path and leaves no process
    // (the leak check); the container runs on.
    let path = agent.path.clone();
    agent.stop()?;
    let out = h.ctr(&["task", "exec", "--exec-id", "gone", &id, "/bin/echo", "ran"])?;
    ensure!(
        out.code != 0 && !out.stdout.contains("ran") && out.stderr.contains(path.to_str().unwrap()),
        "{out}"
    );
    ensure!(
        crate::util::task(h, &id)?.is_some_and(|t| t.status == "RUNNING"),
        "still running"
    );
    remove(h, &id)
}

/// No agent at listenerPath: the create fails naming the path; nothing is left.
fn notify_agent_absent(h: &mut Harness) -> Result<()> {
    let dir = agent_dir()?;
    let path = dir.path().join("nobody.sock");
    let id = h.id("notify-absent");
    let mut spec = default_spec(h, &id, &["/bin/true"])?;
    spec["linux"]["seccomp"] = profile(&path);
    let out = run_spec(h, &id, &spec)?;
    h.track(&id);
    ensure!(
        out.code != 0 && out.stderr.contains(path.to_str().unwrap()),
        "{out}"
    );
    remove(h, &id)
}

fn check(r: Result<()>) {
    if let Err(e) = r {
        panic!("{e:#}");
    }
}

/// `lxcri run` (no_new_privs, WAIT_KILLABLE_RECV): the init's document, then
/// `create`/`start`/`exec` (without no_new_privs, as uid 1000): the exec's. An
/// exec whose agent is gone fails naming the path and leaves no process.
#[test]
fn cli_run_create_exec() {
    check((|| {
        let dir = agent_dir()?;
        let agent = Agent::start(&dir.path().join("agent.sock"))?;
        let mut env = CliEnv::new()?;
        let id = env.id("notify");
        let b = env.bundle("notify", &["sh", "-c", SCRIPT], |v| {
            v["linux"]["seccomp"] = profile(&agent.path);
            v["linux"]["seccomp"]["flags"] = json!(["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]);
            v["process"]["noNewPrivileges"] = Value::Bool(true);
        })?;
        let out = env.lxcri(&["run", "--bundle", b.to_str().unwrap(), &id])?;
        ensure!(out.code == 0 && out.stdout == SCRIPT_OUT, "{out}");
        let docs = agent.wait_documents(1, Duration::from_secs(5))?;
        check_document(&docs[0], &id, "creating")?;
        ensure!(
            docs[0]["state"]["bundle"] == b.to_str().unwrap(),
            "{}",
            docs[0]
        );

        let reaper = Subreaper::new()?;
        let b = env.bundle("notify2", &["sleep", "1000"], |v| {
            v["linux"]["seccomp"] = profile(&agent.path);
            v["process"]["noNewPrivileges"] = Value::Bool(false);
        })?;
        let pid = env.create(&b, &id)?;
        let docs = agent.wait_documents(2, Duration::from_secs(5))?;
        check_document(&docs[1], &id, "creating")?;
        ensure!(docs[1]["pid"] == pid, "pid file {pid}: {}", docs[1]);
        ensure!(env.state(&id)?["status"] == "created");
        env.lxcri_ok(&["start", &id])?;
        let out = env.lxcri(&["exec", "--user", "1000:1000", &id, "sh", "-c", SCRIPT])?;
        ensure!(out.code == 0 && out.stdout == SCRIPT_OUT, "{out}");
        let docs = agent.wait_documents(3, Duration::from_secs(5))?;
        check_document(&docs[2], &id, "running")?;
        ensure!(
            docs[2]["state"]["pid"] == pid && docs[2]["pid"] != pid,
            "{}",
            docs[2]
        );
        // The shell forks its mkdir; this exec is the mkdir itself: the agent
        // is asked by the pid its document names.
        let out = env.lxcri(&["exec", &id, "mkdir", "/tmp/direct"])?;
        ensure!(out.code == 0, "{out}");
        let docs = agent.wait_documents(4, Duration::from_secs(5))?;
        check_document(&docs[3], &id, "running")?;
        let exec_pid = docs[3]["pid"].as_i64().unwrap_or(0) as u32;
        ensure!(
            agent.notifications().iter().any(|(_, p)| *p == exec_pid),
            "a notification from the exec's pid {exec_pid}: {:?}",
            agent.notifications()
        );
        agent.stop()?;
        let out = env.lxcri(&["exec", &id, "sh", "-c", "echo ran"])?;
        ensure!(
            out.code != 0 && !out.stdout.contains("ran") && out.stderr.contains("agent.sock"),
            "{out}"
        );
        ensure!(env.state(&id)?["status"] == "running");
        env.lxcri_ok(&["kill", &id, "KILL"])?;
        reaper.wait(pid, Duration::from_secs(10))?;
        env.lxcri_ok(&["delete", "--force", &id])?;
        drop(reaper);
        env.finish()
    })());
}

/// `lxcri run` without an agent: fails naming listenerPath, leaves nothing.
#[test]
fn cli_agent_absent() {
    check((|| {
        let dir = agent_dir()?;
        let path = dir.path().join("nobody.sock");
        let mut env = CliEnv::new()?;
        let id = env.id("notify-absent");
        let b = env.bundle("absent", &["true"], |v| {
            v["linux"]["seccomp"] = profile(&path);
        })?;
        let out = env.lxcri(&["run", "--bundle", b.to_str().unwrap(), &id])?;
        ensure!(
            out.code != 0 && out.stderr.contains(path.to_str().unwrap()),
            "{out}"
        );
        let out = env.lxcri(&["state", &id])?;
        ensure!(out.stderr.contains("does not exist"), "{out}");
        env.finish()
    })());
}
