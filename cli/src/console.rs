//! `--console-socket`: the pty master goes to the caller over a unix socket with
//! `SCM_RIGHTS`, as runc sends it (conmon, containerd's runc shim receive it).

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

use anyhow::{Context, Result};
use nix::sys::socket::{
    connect, sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr,
};

/// Connect to `socket_path` and send `master` (the message names it, like runc's).
pub fn send_master(socket_path: &Path, master: BorrowedFd<'_>) -> Result<()> {
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("console socket")?;
    let addr = UnixAddr::new(socket_path)
        .with_context(|| format!("console socket address {}", socket_path.display()))?;
    connect(sock.as_raw_fd(), &addr)
        .with_context(|| format!("connect to console socket {}", socket_path.display()))?;
    let name = b"/dev/ptmx";
    let iov = [IoSlice::new(name)];
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .context("send the pty master over the console socket")?;
    Ok(())
}
