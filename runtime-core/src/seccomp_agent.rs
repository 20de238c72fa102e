//! Seccomp agents (`linux.seccomp.listenerPath`): the runtime connects to the
//! agent's unix socket and sends, in one message, the ContainerProcessState JSON
//! and the process's seccomp listener fd (`SCM_RIGHTS`), as runc does
//! (libcontainer's sendContainerProcessState). The runtime does not wait for an
//! answer: the agent then serves the notifications on the fd.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
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

/// Connect to `path` and send `doc` with `fd`. Errors name the path.
pub fn send(path: &str, doc: &Value, fd: BorrowedFd<'_>) -> Result<(), String> {
    let conn = UnixStream::connect(path).map_err(|e| {
        format!("failed to connect with seccomp agent specified in the seccomp profile (listenerPath {path:?}): {e}")
    })?;
    let body = doc.to_string();
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(body.as_bytes())];
    let n = sendmsg::<()>(conn.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
        .map_err(|e| format!("cannot send seccomp fd to {path:?}: {e}"))?;
    if n != body.len() {
        return Err(format!(
            "cannot send seccomp fd to {path:?}: short write ({n} of {} bytes)",
            body.len()
        ));
    }
    Ok(())
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
}
