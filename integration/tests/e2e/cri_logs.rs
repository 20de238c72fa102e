//! Issue 6: container logs through CRI in the CRI log format
//! (`<RFC3339Nano> <stream> <P|F> <content>`) at the path CRI asks
//! (`<pod log_directory>/<container log_path>`), lxcri and runc handlers.
//!
//! - `cri_logs_partial`: a 20000-byte line is split into partial (`P`)
//!   records ending in a full (`F`) one (containerd's default
//!   max_container_log_line_size is 16384); stdout and stderr keep their
//!   streams; output without a final newline is logged; `crictl logs`
//!   works after the container exited, with `--tail`.
//! - `cri_logs_tty`: a container with a terminal logs its output as stdout.

use crate::cri_util::*;
use anyhow::{ensure, Context, Result};
use lxcri_integration::registry::BUSYBOX;
use lxcri_integration::Harness;
use serde_json::json;

crate::cri_matrix!(cri_logs_partial, cri_logs_tty);

/// Runs `command` (with `extra` container config) to its exit in a new pod;
/// returns the log records and `crictl logs` output; removes the pod.
fn run_to_exit(
    h: &mut Harness,
    name: &str,
    command: &[&str],
    extra: serde_json::Value,
) -> Result<(Vec<Record>, String, String)> {
    pull(h, BUSYBOX)?;
    let config = pod_config(h, name, json!({}))?;
    let pod = run_pod(h, &config)?;
    let ran = (|| {
        let id = create(h, &pod, &config, name, BUSYBOX, command, extra)?;
        h.crictl_ok(&["start", &id])?;
        let exited = wait_state(h, &id, "CONTAINER_EXITED")?;
        ensure!(
            exited["status"]["exitCode"] == 0,
            "exit: {}",
            exited["status"]
        );
        let path = exited["status"]["logPath"]
            .as_str()
            .context("no logPath")?
            .to_string();
        let want = h.ctd.pod_log_dir().join(name).join(format!("{name}.log"));
        ensure!(
            path == want.display().to_string(),
            "log path {path}, asked for {}",
            want.display()
        );
        let records = log_records(&path)?;
        let logs = h.crictl_ok(&["logs", &id])?;
        let tail = h.crictl_ok(&["logs", "--tail", "1", &id])?;
        h.crictl_ok(&["rm", &id])?;
        Ok((
            records,
            logs.stdout + &logs.stderr,
            tail.stdout + &tail.stderr,
        ))
    })();
    let removed = remove_pod(h, &pod);
    let ran = ran?;
    removed?;
    Ok(ran)
}

/// Joins partial records into lines: (stream, line, number of records).
fn lines(records: &[Record]) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String, usize)> = None;
    for (stream, tag, content) in records {
        let mut line = current.take().unwrap_or((stream.clone(), String::new(), 0));
        line.1.push_str(content);
        line.2 += 1;
        if tag == "F" {
            out.push(line);
        } else {
            current = Some(line);
        }
    }
    out.extend(current);
    out
}

fn cri_logs_partial(h: &mut Harness) -> Result<()> {
    let script = "head -c 20000 /dev/zero | tr '\\0' a; echo; echo to-stderr >&2; \
                  sleep 0.2; printf no-newline";
    let (records, logs, tail) = run_to_exit(h, "partial", &["sh", "-c", script], json!({}))?;
    ensure!(
        records.iter().any(|r| r.1 == "P"),
        "no partial record for a 20000-byte line: {:?}",
        records
            .iter()
            .map(|r| (&r.0, &r.1, r.2.len()))
            .collect::<Vec<_>>()
    );
    let lines = lines(&records);
    let long = "a".repeat(20000);
    ensure!(
        lines
            .iter()
            .any(|l| l.0 == "stdout" && l.1 == long && l.2 >= 2),
        "the long line is not rebuilt from P+F records"
    );
    ensure!(
        lines.iter().any(|l| l.0 == "stderr" && l.1 == "to-stderr"),
        "stderr line missing: {records:?}"
    );
    ensure!(
        lines.iter().any(|l| l.0 == "stdout" && l.1 == "no-newline"),
        "output without a newline missing: {:?}",
        records.iter().rev().take(3).collect::<Vec<_>>()
    );
    ensure!(
        logs.contains(&long) && logs.contains("to-stderr") && logs.contains("no-newline"),
        "crictl logs after exit: {} bytes",
        logs.len()
    );
    ensure!(
        tail.contains("no-newline") && !tail.contains(&long),
        "crictl logs --tail 1: {tail:?}"
    );
    Ok(())
}

fn cri_logs_tty(h: &mut Harness) -> Result<()> {
    let script = "tty; echo tty-line; echo tty-stderr >&2";
    let (records, logs, _) = run_to_exit(h, "tty", &["sh", "-c", script], json!({"tty": true}))?;
    let lines = lines(&records);
    let text: Vec<String> = lines
        .iter()
        .map(|l| l.1.trim_end_matches('\r').to_string())
        .collect();
    ensure!(
        lines.iter().all(|l| l.0 == "stdout"),
        "a terminal has one stream: {records:?}"
    );
    for want in ["tty-line", "tty-stderr"] {
        ensure!(
            text.iter().any(|t| t == want),
            "{want} missing: {records:?}"
        );
    }
    ensure!(
        text.iter().any(|t| t.starts_with("/dev/pts/")),
        "no terminal: {records:?}"
    );
    ensure!(logs.contains("tty-line"), "crictl logs: {logs:?}");
    Ok(())
}
