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
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use runtime_core::Stdio;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, Result};

/// What the shim keeps of a container's stdio.
#[derive(Debug, Default)]
pub struct IoKeep {
    /// Read-write fds on the stdout/stderr fifos; dropped at exit.
    keepalive: Vec<OwnedFd>,
    stdin_copy: Option<tokio::task::JoinHandle<()>>,
}

impl IoKeep {
    /// The container has exited: let containerd's readers see end of file.
    pub fn release(&mut self) {
        self.keepalive.clear();
        if let Some(t) = self.stdin_copy.take() {
            t.abort();
        }
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
