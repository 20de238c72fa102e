//! Running external commands with a timeout and captured output.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Default limit for one command: nothing in the suite may hang.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// What a finished command returned.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code, or 128 + signal number when the process was killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Fails with the full output when the command did not exit 0.
    pub fn ok(self) -> Result<Self> {
        if self.code != 0 {
            bail!("command failed: {self}");
        }
        Ok(self)
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rc={} stdout={:?} stderr={:?}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` to completion, feeding `stdin`, killing it after `timeout`.
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Result<Output> {
    let what = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("spawn {what}"))?;
    if let Some(data) = stdin {
        feed_stdin(&mut child, data.to_vec());
    }
    let stdout = collect(child.stdout.take());
    let stderr = collect(child.stderr.take());
    let status = wait_timeout(&mut child, timeout);
    let deadline = Duration::from_secs(5);
    let stdout = stdout.recv_timeout(deadline).unwrap_or_default();
    let stderr = stderr.recv_timeout(deadline).unwrap_or_default();
    match status {
        Some(code) => Ok(Output {
            code,
            stdout,
            stderr,
        }),
        None => bail!("timed out after {timeout:?}: {what}\nstdout: {stdout}\nstderr: {stderr}"),
    }
}

/// Waits for `child` up to `timeout`; on timeout kills it and returns None.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(exit_code(status)),
            Ok(None) if start.elapsed() < timeout => thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Converts a wait status to the shell convention: code, or 128 + signal.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => -1,
    }
}

fn feed_stdin(child: &mut Child, data: Vec<u8>) {
    if let Some(mut pipe) = child.stdin.take() {
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
}

/// Reads a pipe to the end on a thread; the receiver gets the text.
pub fn collect<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

/// Runs a command that must succeed within the default timeout.
pub fn must(cmd: &mut Command) -> Result<Output> {
    run(cmd, None, TIMEOUT)?.ok()
}
