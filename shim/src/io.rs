//! The container's stdio, from the paths containerd gives (normally fifos).
//!
//! stdout/stderr are handed to the container directly (no copying): the shim opens
//! each fifo read-write first (that never blocks and keeps a reader, so the
//! container's early writes cannot fail with EPIPE before containerd's reader is
//! there), and gives the container a write-only reopen of it. The read-write fd is
//! dropped when the container exits, so that containerd sees end of file.
//!
//! stdin goes through a pipe fed by a copy task: the fifo's writer (containerd's
//! client) may connect late, and the container must not see end of file before it
//! has.

use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use runtime_core::Stdio;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, Result};

/// What the shim keeps of a process's stdio.
#[derive(Debug, Default)]
pub struct IoKeep {
    /// Read-write fds on the stdout/stderr fifos; dropped at exit.
    keepalive: Vec<OwnedFd>,
    stdin_copy: Option<tokio::task::JoinHandle<()>>,
    /// The pty master of a process with a terminal.
    console: Option<Arc<AsyncFd<OwnedFd>>>,
}

impl IoKeep {
    /// The process has exited: let containerd's readers see end of file (a
    /// terminal's output copy ends by itself once the pty is drained).
    pub fn release(&mut self) {
        self.keepalive.clear();
        self.close_stdin();
    }

    /// CloseIO: no more input. The process sees end of file (for a terminal: an
    /// EOF character, as typed).
    pub fn close_stdin(&mut self) {
        if let Some(t) = self.stdin_copy.take() {
            t.abort();
            if let Some(c) = &self.console {
                // SAFETY: writing one byte from a valid buffer to an open fd.
                unsafe { libc::write(c.get_ref().as_raw_fd(), b"\x04".as_ptr().cast(), 1) };
            }
        }
    }

    /// ResizePty.
    pub fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        let Some(c) = &self.console else {
            return Ok(());
        };
        lxcri_libexec::process::set_window_size(c.get_ref().as_fd(), rows, cols)
            .map_err(|e| Error::io("resize", "pty", e.into()))
    }
}

fn dev_null(write: bool) -> Result<OwnedFd> {
    OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/null")
        .map(OwnedFd::from)
        .map_err(|e| Error::io("open", "/dev/null", e))
}

fn open_output(path: &str, keep: &mut IoKeep) -> Result<OwnedFd> {
    if path.is_empty() {
        return dev_null(true);
    }
    let path = path.strip_prefix("fifo://").unwrap_or(path);
    if path.contains("://") {
        return Err(Error::InvalidArgument(format!(
            "stdio {path}: only fifo stdio is supported yet"
        )));
    }
    let rw = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::io("open", path, e))?;
    let proc_path = format!("/proc/self/fd/{}", rw.as_raw_fd());
    let wo = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&proc_path)
        .map_err(|e| Error::io("reopen", path, e))?;
    keep.keepalive.push(OwnedFd::from(rw));
    Ok(OwnedFd::from(wo))
}

fn open_stdin(path: &str, keep: &mut IoKeep) -> Result<OwnedFd> {
    if path.is_empty() {
        return dev_null(false);
    }
    let path = path.strip_prefix("fifo://").unwrap_or(path).to_string();
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::io("pipe", &path, e.into()))?;
    let receiver = tokio::net::unix::pipe::OpenOptions::new()
        .open_receiver(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    let sender = tokio::net::unix::pipe::Sender::from_owned_fd(w)
        .map_err(|e| Error::io("stdin pipe", &path, e))?;
    keep.stdin_copy = Some(tokio::spawn(copy_stdin(receiver, sender, path)));
    Ok(r)
}

async fn copy_stdin(
    mut from: tokio::net::unix::pipe::Receiver,
    mut to: tokio::net::unix::pipe::Sender,
    path: String,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                log::warn!("read stdin {path}: {e}");
                break;
            }
        }
    }
    // Dropping the pipe's write end gives the container end of file.
}

/// The stdio of a process that gets a terminal: it replaces them with the pty.
pub fn null_stdio() -> Result<Stdio> {
    Ok(Stdio {
        stdin: dev_null(false)?,
        stdout: dev_null(true)?,
        stderr: dev_null(true)?,
    })
}

/// Copy between containerd's fifos and the pty master of a process with a
/// terminal: stdin → master, master → stdout (a terminal has no separate stderr).
pub fn attach_console(master: OwnedFd, stdin: &str, stdout: &str) -> Result<IoKeep> {
    let mut keep = IoKeep::default();
    nix::fcntl::fcntl(
        &master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .map_err(|e| Error::io("set non-blocking", "pty", e.into()))?;
    // SAFETY: the OwnedFd keeps its fd open and unchanged for the AsyncFd's life.
    let master = unsafe { AsyncFd::register(master) }
        .map_err(|e| Error::io("register", "pty", std::io::Error::other(e.to_string())))?;
    let master = Arc::new(master);
    keep.console = Some(master.clone());
    let out = std::fs::File::from(open_output(stdout, &mut keep)?);
    tokio::spawn(copy_from_console(master.clone(), out));
    if !stdin.is_empty() {
        let path = stdin.strip_prefix("fifo://").unwrap_or(stdin).to_string();
        let receiver = tokio::net::unix::pipe::OpenOptions::new()
            .open_receiver(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        keep.stdin_copy = Some(tokio::spawn(copy_to_console(receiver, master)));
    }
    Ok(keep)
}

async fn copy_from_console(master: Arc<AsyncFd<OwnedFd>>, mut out: std::fs::File) {
    use std::io::Write;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let Ok(mut guard) = master.readable().await else {
            break;
        };
        // SAFETY: reading into a valid buffer of the given length from an open fd.
        let n = unsafe {
            libc::read(
                guard.get_inner().as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::WouldBlock {
                guard.clear_ready();
                continue;
            }
            // EIO: every slave is closed, the process is gone.
            break;
        }
        if n == 0 || out.write_all(&buf[..n as usize]).is_err() {
            break;
        }
    }
    // Dropping `out` lets containerd's reader see end of file.
}

async fn copy_to_console(
    mut from: tokio::net::unix::pipe::Receiver,
    master: Arc<AsyncFd<OwnedFd>>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut off = 0;
        while off < n {
            let Ok(mut guard) = master.writable().await else {
                return;
            };
            // SAFETY: writing from a valid buffer range to an open fd.
            let w = unsafe {
                libc::write(
                    guard.get_inner().as_raw_fd(),
                    buf[off..n].as_ptr().cast(),
                    n - off,
                )
            };
            if w < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock {
                    guard.clear_ready();
                    continue;
                }
                return;
            }
            off += w as usize;
        }
    }
}

/// Open the container's stdio.
pub fn open(stdin: &str, stdout: &str, stderr: &str) -> Result<(Stdio, IoKeep)> {
    let mut keep = IoKeep::default();
    let stdin = open_stdin(stdin, &mut keep)?;
    let stdout = open_output(stdout, &mut keep)?;
    let stderr = open_output(stderr, &mut keep)?;
    Ok((
        Stdio {
            stdin,
            stdout,
            stderr,
        },
        keep,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fifo_stdio_roundtrip() {
        let d = tempfile::tempdir().unwrap();
        let (i, o) = (d.path().join("in"), d.path().join("out"));
        for p in [&i, &o] {
            nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        }
        let (stdio, mut keep) = open(i.to_str().unwrap(), o.to_str().unwrap(), "").unwrap();
        // The writer connects after the shim opened stdin: no early EOF.
        let mut w = std::fs::OpenOptions::new().write(true).open(&i).unwrap();
        w.write_all(b"x\n").unwrap();
        drop(w);
        let mut got = String::new();
        std::fs::File::from(stdio.stdin)
            .read_to_string(&mut got)
            .unwrap();
        assert_eq!(got, "x\n");

        let mut reader = std::fs::File::open(&o).unwrap();
        std::fs::File::from(stdio.stdout)
            .write_all(b"hello")
            .unwrap();
        drop(stdio.stderr);
        keep.release();
        let mut out = String::new();
        reader.read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello");
    }
}
