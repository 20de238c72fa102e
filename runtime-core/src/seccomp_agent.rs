//! Seccomp agents (`linux.seccomp.listenerPath`): the runtime connects to the
//! agent's unix socket and sends, in one message, the ContainerProcessState JSON
//! and the process's seccomp listener fd (`SCM_RIGHTS`), as runc does
//! (libcontainer's sendContainerProcessState). The runtime does not wait for an
//! answer: the agent then serves the notifications on the fd.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    connect, sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr,
};
use serde_json::{json, Value};

use crate::container::OCI_VERSION;

/// The ContainerProcessState document (runtime-spec, "seccomp"): `state` is the
/// container's state JSON, `pid` the process's host pid.
pub fn process_state(pid: i32, metadata: Option<&str>, state: Value) -> Value {
    let mut v = json!({
        "ociVersion": OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "state": state,
    });
    if let Some(m) = metadata.filter(|m| !m.is_empty()) {
        v["metadata"] = m.into();
    }
    v
}

/// How long the runtime waits for an agent to take the connection and the
/// message (an agent that accepts nothing must not hang the create or exec).
pub const AGENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connect to `path` and send `doc` with `fd`. Errors name the path.
pub fn send(path: &str, doc: &Value, fd: BorrowedFd<'_>) -> Result<(), String> {
    send_within(path, doc, fd, AGENT_TIMEOUT)
}

fn send_within(
    path: &str,
    doc: &Value,
    fd: BorrowedFd<'_>,
    timeout: Duration,
) -> Result<(), String> {
    let conn = connect_within(path, timeout).map_err(|e| {
        format!("failed to connect with seccomp agent specified in the seccomp profile (listenerPath {path:?}): {e}")
    })?;
    let body = doc.to_string();
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(body.as_bytes())];
    let n = sendmsg::<()>(conn.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None).map_err(
        |e| match e {
            Errno::EAGAIN => format!(
                "cannot send seccomp fd to {path:?}: the agent took nothing within {timeout:?}"
            ),
            e => format!("cannot send seccomp fd to {path:?}: {e}"),
        },
    )?;
    if n != body.len() {
        return Err(format!(
            "cannot send seccomp fd to {path:?}: short write ({n} of {} bytes)",
            body.len()
        ));
    }
    Ok(())
}

/// A unix stream connection within `timeout`: a non-blocking connect, retried
/// while the agent's backlog is full (EAGAIN), then a blocking socket whose
/// sends time out at the deadline.
fn connect_within(path: &str, timeout: Duration) -> std::io::Result<UnixStream> {
    let deadline = Instant::now() + timeout;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    loop {
        match connect(fd.as_raw_fd(), &addr) {
            Ok(()) => break,
            Err(Errno::EAGAIN) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(Errno::EAGAIN) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the agent accepted no connection within {timeout:?} (backlog full)"),
                ))
            }
            Err(e) => return Err(e.into()),
        }
    }
    let conn = UnixStream::from(fd);
    conn.set_nonblocking(false)?;
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    conn.set_write_timeout(Some(left))?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::IoSliceMut;
    use std::os::fd::AsFd;

    #[test]
    fn process_state_fields() {
        let v = process_state(42, Some("m"), json!({"id": "c", "status": "creating"}));
        assert_eq!(v["fds"], json!(["seccompFd"]));
        assert_eq!(v["pid"], 42);
        assert_eq!(v["metadata"], "m");
        assert_eq!(v["ociVersion"], OCI_VERSION);
        assert_eq!(v["state"]["status"], "creating");
        let v = process_state(42, None, json!({}));
        assert!(v.get("metadata").is_none());
    }

    #[test]
    fn sends_the_document_and_the_fd() {
        let dir = std::env::temp_dir().join(format!("lxcri-agent-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agent.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        let doc = process_state(7, None, json!({"id": "x"}));
        send(path.to_str().unwrap(), &doc, file.as_fd()).unwrap();
        let (conn, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 4096];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = nix::sys::socket::recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .unwrap();
        let n = msg.bytes;
        let got: Vec<_> = msg.cmsgs().unwrap().collect();
        assert_eq!(got.len(), 1);
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = &got[0] {
            assert_eq!(fds.len(), 1);
            nix::unistd::close(fds[0]).unwrap();
        } else {
            panic!("not SCM_RIGHTS: {:?}", got[0]);
        }
        let v: Value = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(v, doc);
        let e = send(dir.join("nope.sock").to_str().unwrap(), &doc, file.as_fd()).unwrap_err();
        assert!(e.contains("nope.sock"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// An agent that never accepts: its backlog fills up, and the runtime gives
    /// up at the deadline with a clear error instead of hanging.
    #[test]
    fn an_agent_that_accepts_nothing_times_out() {
        let dir = std::env::temp_dir().join(format!("lxcri-agent-full-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agent.sock");
        let _ = std::fs::remove_file(&path);
        let lfd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        nix::sys::socket::bind(lfd.as_raw_fd(), &UnixAddr::new(&path).unwrap()).unwrap();
        nix::sys::socket::listen(&lfd, nix::sys::socket::Backlog::new(0).unwrap()).unwrap();
        let path_s = path.to_str().unwrap();
        // Fill the backlog (one pending connection with a backlog of 0).
        let mut pending = Vec::new();
        while let Ok(c) = connect_within(path_s, Duration::from_millis(50)) {
            pending.push(c);
            assert!(pending.len() < 16, "the backlog never filled up");
        }
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        let doc = process_state(7, None, json!({"id": "x"}));
        let t = Instant::now();
        let e = send_within(path_s, &doc, file.as_fd(), Duration::from_millis(300)).unwrap_err();
        assert!(
            e.contains("backlog full") && e.contains("agent.sock"),
            "{e}"
        );
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        drop(pending);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
