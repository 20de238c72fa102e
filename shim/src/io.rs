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
    /// The copy of a terminal's output into the stdout fifo.
    output_copy: Option<tokio::task::JoinHandle<()>>,
}

impl IoKeep {
    /// The process has exited: let containerd's readers see end of file (a
    /// terminal's output copy ends by itself once the pty is drained).
    ///
    /// The stdin fifo stays open for reading until Delete (drop), as in the
    /// runc shim: containerd's CRI exec closes the output streams as soon as
    /// its stdin copy fails, so an EPIPE on stdin right after a short-lived
    /// process exits would throw away output it has not read yet.
    pub fn release(&mut self) {
        self.keepalive.clear();
    }

    /// The terminal output copy, to wait for before the exit is published (as
    /// the runc shim waits for its IO): a short-lived process's output is still
    /// in the pty when its exit is seen.
    pub fn take_output_copy(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        self.output_copy.take()
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

impl Drop for IoKeep {
    /// Delete: the copies end and the fifos close.
    fn drop(&mut self) {
        if let Some(t) = self.stdin_copy.take() {
            t.abort();
        }
        if let Some(t) = self.output_copy.take() {
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

/// IoUid/IoGid (runc's options): the container's end of a stdio pipe or
/// fifo belongs to this user, so that a process whose user is not root on
/// the host (a user namespace) can reopen it (`/dev/stdout`, `/proc/self/fd/1`).
pub type IoOwner = Option<(u32, u32)>;

fn chown_stdio(fd: &OwnedFd, owner: IoOwner, what: &str) -> Result<()> {
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    nix::unistd::fchown(
        fd,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .map_err(|e| Error::io("chown (IoUid/IoGid)", what, e.into()))
}

fn open_output(path: &str, keep: &mut IoKeep, owner: IoOwner) -> Result<OwnedFd> {
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
    let wo = OwnedFd::from(wo);
    chown_stdio(&wo, owner, path)?;
    Ok(wo)
}

fn open_stdin(path: &str, keep: &mut IoKeep, owner: IoOwner) -> Result<OwnedFd> {
    if path.is_empty() {
        return dev_null(false);
    }
    let path = path.strip_prefix("fifo://").unwrap_or(path).to_string();
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::io("pipe", &path, e.into()))?;
    chown_stdio(&r, owner, &path)?;
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
    to: tokio::net::unix::pipe::Sender,
    path: String,
) {
    let mut buf = vec![0u8; 32 * 1024];
    let mut to = Some(to);
    loop {
        match from.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                if let Some(w) = to.as_mut() {
                    if w.write_all(&buf[..n]).await.is_err() {
                        // The process is gone: keep reading (and dropping)
                        // what containerd writes, so that it sees no EPIPE.
                        to = None;
                    }
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
    Ok(Stdio::new(
        dev_null(false)?,
        dev_null(true)?,
        dev_null(true)?,
    ))
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
    let out = std::fs::File::from(open_output(stdout, &mut keep, None)?);
    keep.output_copy = Some(tokio::spawn(copy_from_console(master.clone(), out)));
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
    let mut gone = false;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // After the terminal is gone, keep reading (and dropping) what
        // containerd writes, so that it sees no EPIPE (see IoKeep::release).
        let mut off = if gone { n } else { 0 };
        while off < n {
            let Ok(mut guard) = master.writable().await else {
                gone = true;
                break;
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
                gone = true;
                break;
            }
            off += w as usize;
        }
    }
}

/// Percent-decoding of a URI component (`+` is a space in a query, as Go's
/// url.ParseQuery reads it).
fn percent_decode(s: &str, query: bool) -> Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| Error::InvalidArgument(format!("bad escape in {s:?}")))?;
                out.push(hex);
                i += 3;
                continue;
            }
            b'+' if query => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| Error::InvalidArgument(format!("{s:?} is not UTF-8")))
}

/// A `binary://PATH?k=v&k2` log URI → the program and its arguments, as
/// containerd builds them (each key, then its value if it has one).
fn binary_command(uri: &str) -> Result<(String, Vec<String>)> {
    let rest = uri
        .strip_prefix("binary://")
        .ok_or_else(|| Error::InvalidArgument(format!("{uri}: not a binary:// URI")))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = percent_decode(path, false)?;
    if !path.starts_with('/') {
        return Err(Error::InvalidArgument(format!(
            "{uri}: the logging binary must be an absolute path"
        )));
    }
    let mut args = Vec::new();
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        args.push(percent_decode(k, true)?);
        let v = percent_decode(v, true)?;
        if !v.is_empty() {
            args.push(v);
        }
    }
    Ok((path, args))
}

/// containerd's binary logging: the logger gets the container's stdout and stderr
/// as the read ends of two pipes at fds 3 and 4, and at fd 5 a pipe it closes (or
/// writes to) once it is ready; its environment is CONTAINER_ID and
/// CONTAINER_NAMESPACE only. The shim never waits for it: it ends at end of file.
fn spawn_logger(uri: &str, id: &str, namespace: &str) -> Result<(OwnedFd, OwnedFd)> {
    use std::os::unix::process::CommandExt;
    let (path, args) = binary_command(uri)?;
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::io("pipe", uri, e.into()))
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (ready_r, ready_w) = pipe()?;
    let fds = [out_r.as_raw_fd(), err_r.as_raw_fd(), ready_w.as_raw_fd()];
    let mut cmd = std::process::Command::new(&path);
    cmd.args(&args)
        .env_clear()
        .env("CONTAINER_ID", id)
        .env("CONTAINER_NAMESPACE", namespace)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: the closure runs in the forked child before exec and only calls
    // dup/dup2/fcntl (async-signal-safe) on fds that stay open in the parent until
    // spawn returns. Each source is first moved above 5, so the dup2 onto 3, 4, 5
    // cannot clobber a source that sits at one of those numbers.
    unsafe {
        cmd.pre_exec(move || {
            let mut moved = [0; 3];
            for (i, fd) in fds.iter().enumerate() {
                let m = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10);
                if m < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                moved[i] = m;
            }
            for (i, m) in moved.iter().enumerate() {
                if libc::dup2(*m, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| Error::io("start logging binary", &path, e))?;
    log::debug!("logging binary pid={} path={path}", child.id());
    drop((out_r, err_r, ready_w));
    // Wait until it is ready: a byte or end of file on fd 5.
    lxcri_libexec::channel::wait_readable(ready_r.as_fd(), std::time::Duration::from_secs(30))
        .map_err(|e| Error::io("wait for logging binary", &path, e))?;
    Ok((out_w, err_w))
}

/// `file://PATH`: stdout and stderr appended to a file.
fn open_log_file(uri: &str) -> Result<(OwnedFd, OwnedFd)> {
    let path = percent_decode(uri.strip_prefix("file://").unwrap_or(uri), false)?;
    if let Some(dir) = std::path::Path::new(&path).parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", &path, e))?;
    }
    let f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    let f2 = f.try_clone().map_err(|e| Error::io("dup", &path, e))?;
    Ok((OwnedFd::from(f), OwnedFd::from(f2)))
}

/// Open the container's stdio (`id` and `namespace` name it to a logging
/// binary; `owner` from IoUid/IoGid for the stdin pipe and the output fifos,
/// not for a logging binary's pipes or a log file, as in the runc shim).
pub fn open(
    id: &str,
    namespace: &str,
    stdin: &str,
    stdout: &str,
    stderr: &str,
    owner: IoOwner,
) -> Result<(Stdio, IoKeep)> {
    let mut keep = IoKeep::default();
    if stdout.starts_with("binary://") || stdout.starts_with("file://") {
        // containerd passes the same URI for stdout and stderr, and no stdin.
        let (stdout, stderr) = if stdout.starts_with("binary://") {
            spawn_logger(stdout, id, namespace)?
        } else {
            open_log_file(stdout)?
        };
        let stdin = open_stdin(stdin, &mut keep, owner)?;
        return Ok((Stdio::new(stdin, stdout, stderr), keep));
    }
    let stdin = open_stdin(stdin, &mut keep, owner)?;
    let stdout = open_output(stdout, &mut keep, owner)?;
    let stderr = open_output(stderr, &mut keep, owner)?;
    Ok((Stdio::new(stdin, stdout, stderr), keep))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    /// The fifos containerd would make for stdin and stdout, in `dir`.
    fn stdin_stdout_fifos(dir: &Path) -> (PathBuf, PathBuf) {
        let (i, o) = (dir.join("in"), dir.join("out"));
        for p in [&i, &o] {
            nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        }
        (i, o)
    }

    #[test]
    fn binary_uri_like_containerd() {
        let (p, a) = binary_command(
            "binary:///usr/local/bin/nerdctl?_NERDCTL_INTERNAL_LOGGING=%2Fvar%2Flib%2Fnerdctl%2F1935db59",
        )
        .unwrap();
        assert_eq!(p, "/usr/local/bin/nerdctl");
        assert_eq!(
            a,
            vec!["_NERDCTL_INTERNAL_LOGGING", "/var/lib/nerdctl/1935db59"]
        );
        let (p, a) = binary_command("binary:///bin/logger?flag&k=a+b").unwrap();
        assert_eq!(
            (p.as_str(), a),
            (
                "/bin/logger",
                vec!["flag".into(), "k".into(), "a b".to_string()]
            )
        );
        assert!(binary_command("binary://relative/logger").is_err());
        assert!(binary_command("binary:///bin/x?k=%zz").is_err());
    }

    #[test]
    fn binary_logger_gets_output_and_ids() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("log");
        // The logger: env to the file, then fd 3 and fd 4, after closing fd 5.
        let script = d.path().join("logger.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nexec 5>&-\necho \"$CONTAINER_ID $CONTAINER_NAMESPACE $1\" > {o}\ncat <&3 >> {o}\ncat <&4 >> {o}\n",
                o = out.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let uri = format!("binary://{}?arg1", script.display());
        let (stdio, _keep) = open("c1", "ns1", "", &uri, &uri, None).unwrap();
        std::fs::File::from(stdio.stdout)
            .write_all(b"to-stdout\n")
            .unwrap();
        std::fs::File::from(stdio.stderr)
            .write_all(b"to-stderr\n")
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let got = std::fs::read_to_string(&out).unwrap_or_default();
            if got == "c1 ns1 arg1\nto-stdout\nto-stderr\n" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "got {got:?}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn file_uri_appends_both_streams() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/ctr.log");
        let uri = format!("file://{}", p.display());
        let (stdio, _keep) = open("c", "ns", "", &uri, &uri, None).unwrap();
        std::fs::File::from(stdio.stdout).write_all(b"a\n").unwrap();
        std::fs::File::from(stdio.stderr).write_all(b"b\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a\nb\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stdin_fifo_stays_open_after_exit_until_delete() {
        // containerd's CRI exec closes its output readers when its stdin copy
        // fails: a write to stdin after the process exited must not EPIPE.
        let d = tempfile::tempdir().unwrap();
        let (i, o) = stdin_stdout_fifos(d.path());
        let (stdio, mut keep) = open(
            "c",
            "ns",
            i.to_str().unwrap(),
            o.to_str().unwrap(),
            "",
            None,
        )
        .unwrap();
        let mut w = std::fs::OpenOptions::new().write(true).open(&i).unwrap();
        // The process exits: its end of the stdin pipe closes.
        drop(stdio);
        keep.release();
        for _ in 0..3 {
            w.write_all(b"late input\n").unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // Delete: the fifo's reader goes away, a writer now sees EPIPE.
        drop(keep);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut epipe = false;
        for _ in 0..100 {
            if let Err(e) = w.write_all(&[b'x'; 4096]) {
                assert_eq!(e.raw_os_error(), Some(libc::EPIPE));
                epipe = true;
                break;
            }
        }
        assert!(epipe, "the stdin fifo is still read after delete");
    }

    #[tokio::test]
    async fn io_uid_gid_own_the_containers_ends() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let (i, o) = stdin_stdout_fifos(d.path());
        let owner = Some((1234, 4321));
        let (stdio, _keep) = open(
            "c",
            "ns",
            i.to_str().unwrap(),
            o.to_str().unwrap(),
            "",
            owner,
        )
        .unwrap();
        let stat = |fd: &OwnedFd| {
            let m = std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
            (m.uid(), m.gid())
        };
        assert_eq!(stat(&stdio.stdin), (1234, 4321), "stdin pipe");
        assert_eq!(stat(&stdio.stdout), (1234, 4321), "stdout fifo");
        // No stderr fifo: /dev/null, which must never be chowned.
        assert_eq!(stat(&stdio.stderr), (0, 0), "/dev/null");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fifo_stdio_roundtrip() {
        let d = tempfile::tempdir().unwrap();
        let (i, o) = stdin_stdout_fifos(d.path());
        let (stdio, mut keep) = open(
            "c",
            "ns",
            i.to_str().unwrap(),
            o.to_str().unwrap(),
            "",
            None,
        )
        .unwrap();
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
