//! A small seccomp agent for the e2e tests (a thread of the test process, so
//! that nothing of it outlives the test): it listens on a unix socket, receives
//! the runtime's ContainerProcessState JSON with the listener fd (SCM_RIGHTS),
//! records the document, and answers the notifications: `mkdir`/`mkdirat`
//! succeed without doing anything, `rmdir` fails with [`RMDIR_ERRNO`], anything
//! else continues as if unfiltered.

use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::Value;

/// The errno the agent answers `rmdir` with.
pub const RMDIR_ERRNO: i32 = libc::EXDEV;

/// struct seccomp_notif (linux/seccomp.h).
#[repr(C)]
#[derive(Default)]
struct Notif {
    id: u64,
    pid: u32,
    flags: u32,
    nr: i32,
    arch: u32,
    ip: u64,
    args: [u64; 6],
}

/// struct seccomp_notif_resp.
#[repr(C)]
struct NotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

// _IOWR('!', 0, struct seccomp_notif) and _IOWR('!', 1, struct seccomp_notif_resp).
const NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const NOTIF_SEND: libc::c_ulong = 0xc018_2101;
const USER_NOTIF_FLAG_CONTINUE: u32 = 1;

/// What the agent saw.
#[derive(Default)]
struct Seen {
    documents: Vec<Value>,
    /// (syscall number, pid) of each notification answered.
    notifications: Vec<(i32, u32)>,
}

pub struct Agent {
    pub path: PathBuf,
    stop: Option<OwnedFd>,
    thread: Option<JoinHandle<Result<()>>>,
    seen: Arc<Mutex<Seen>>,
}

impl Agent {
    /// Listen at `path` (a new socket).
    pub fn start(path: &Path) -> Result<Agent> {
        let _ = std::fs::remove_file(path);
        let listener =
            UnixListener::bind(path).with_context(|| format!("bind {}", path.display()))?;
        let (stop_r, stop_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let s = seen.clone();
        let thread = std::thread::spawn(move || serve(listener, stop_r, s));
        Ok(Agent {
            path: path.to_path_buf(),
            stop: Some(stop_w),
            thread: Some(thread),
            seen,
        })
    }

    /// Wait until `n` documents came; returns them all.
    pub fn wait_documents(&self, n: usize, timeout: Duration) -> Result<Vec<Value>> {
        let end = Instant::now() + timeout;
        loop {
            let docs = self.seen.lock().unwrap().documents.clone();
            if docs.len() >= n {
                return Ok(docs);
            }
            if Instant::now() > end {
                bail!(
                    "seccomp agent: {} documents after {timeout:?}, want {n}",
                    docs.len()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The syscall numbers the agent answered, with the pids (as the kernel
    /// names them in the agent's pid namespace: host pids).
    pub fn notifications(&self) -> Vec<(i32, u32)> {
        self.seen.lock().unwrap().notifications.clone()
    }

    /// Stop the thread (closing every listener fd it holds) and report its error.
    pub fn stop(mut self) -> Result<()> {
        self.halt()
    }

    fn halt(&mut self) -> Result<()> {
        drop(self.stop.take());
        let r = match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("agent thread panicked"))?,
            None => Ok(()),
        };
        let _ = std::fs::remove_file(&self.path);
        r
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

fn serve(listener: UnixListener, stop: OwnedFd, seen: Arc<Mutex<Seen>>) -> Result<()> {
    let mut listeners: Vec<OwnedFd> = Vec::new();
    loop {
        let mut fds = vec![
            libc::pollfd {
                fd: stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        fds.extend(listeners.iter().map(|l| libc::pollfd {
            fd: l.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }));
        // SAFETY: poll reads and writes `fds.len()` live pollfd structs.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            bail!("poll: {e}");
        }
        if fds[0].revents != 0 {
            return Ok(());
        }
        if fds[1].revents & libc::POLLIN != 0 {
            let (conn, _) = listener.accept().context("accept")?;
            let (doc, fd) = receive(&conn)?;
            seen.lock().unwrap().documents.push(doc);
            listeners.push(fd);
        }
        let mut gone = Vec::new();
        for (i, p) in fds[2..].iter().enumerate() {
            if p.revents & libc::POLLIN != 0 {
                answer(p.fd, &seen)?;
            } else if p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                // Every process of the filter is gone.
                gone.push(i);
            }
        }
        for i in gone.into_iter().rev() {
            listeners.remove(i);
        }
    }
}

/// One message: the JSON (possibly in several reads) and one fd.
fn receive(conn: &UnixStream) -> Result<(Value, OwnedFd)> {
    let mut buf = vec![0u8; 1 << 16];
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let (n, fds) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .context("recvmsg from the runtime")?;
        let mut fds = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(r) = c {
                // SAFETY: the kernel just installed these fds for us.
                fds.extend(r.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
        (msg.bytes, fds)
    };
    buf.truncate(n);
    let mut rest = Vec::new();
    (&*conn).read_to_end(&mut rest)?;
    buf.extend(rest);
    let doc: Value = serde_json::from_slice(&buf)
        .with_context(|| format!("state JSON {:?}", String::from_utf8_lossy(&buf)))?;
    let mut fds = fds.into_iter();
    let (Some(fd), None) = (fds.next(), fds.next()) else {
        bail!("want exactly one fd with {doc}");
    };
    Ok((doc, fd))
}

fn answer(fd: RawFd, seen: &Mutex<Seen>) -> Result<()> {
    let mut n = Notif::default();
    // SAFETY: NOTIF_RECV writes a struct seccomp_notif into the zeroed `n`.
    if unsafe { libc::ioctl(fd, NOTIF_RECV, &mut n as *mut Notif) } < 0 {
        let e = std::io::Error::last_os_error();
        // ENOENT: the process went away before we got it.
        if e.raw_os_error() == Some(libc::ENOENT) || e.kind() == std::io::ErrorKind::Interrupted {
            return Ok(());
        }
        bail!("SECCOMP_IOCTL_NOTIF_RECV: {e}");
    }
    let (val, error, flags) = match n.nr as libc::c_long {
        libc::SYS_mkdir | libc::SYS_mkdirat => (0, 0, 0),
        libc::SYS_rmdir => (0, -RMDIR_ERRNO, 0),
        _ => (0, 0, USER_NOTIF_FLAG_CONTINUE),
    };
    seen.lock().unwrap().notifications.push((n.nr, n.pid));
    let mut resp = NotifResp {
        id: n.id,
        val,
        error,
        flags,
    };
    // SAFETY: NOTIF_SEND reads a struct seccomp_notif_resp from `resp`.
    if unsafe { libc::ioctl(fd, NOTIF_SEND, &mut resp as *mut NotifResp) } < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOENT) {
            return Ok(());
        }
        bail!("SECCOMP_IOCTL_NOTIF_SEND: {e}");
    }
    Ok(())
}
