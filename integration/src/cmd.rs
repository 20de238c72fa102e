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

/// `cmd` gets `fds` at 3, 4, ... and no other fd above stderr (as conmon
/// hands fds to the runtime).
pub fn with_fds(cmd: &mut Command, fds: &[&std::os::fd::OwnedFd]) {
    use std::os::unix::process::CommandExt;
    let mut moves: Vec<i32> = fds
        .iter()
        .map(|f| std::os::fd::AsRawFd::as_raw_fd(*f))
        .collect();
    let above = 3 + moves.len() as i32;
    // SAFETY: fcntl/dup2 only (async-signal-safe), on fds open in the parent
    // until spawn returns; `moves` is allocated before the fork.
    unsafe {
        cmd.pre_exec(move || {
            for fd in moves.iter_mut() {
                *fd = nix::libc::fcntl(*fd, nix::libc::F_DUPFD_CLOEXEC, above);
                if *fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, fd) in moves.iter().enumerate() {
                if nix::libc::dup2(*fd, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // Nothing else (e.g. flock(1)'s lock fd, inherited by this test).
            nix::libc::syscall(nix::libc::SYS_close_range, above as u32, u32::MAX, 0u32);
            Ok(())
        });
    }
}
