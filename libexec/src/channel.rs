//! A `SOCK_SEQPACKET` channel carrying one JSON message per datagram, with optional
//! `SCM_CREDENTIALS` and `SCM_RIGHTS` payloads.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, socketpair, sockopt, AddressFamily, ControlMessage,
    ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixCredentials,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::proto::MAX_MESSAGE;

/// The most file descriptors one message carries.
pub const MAX_FDS: usize = 32;

/// One end of a channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// A received message with what came along with it.
#[derive(Debug)]
pub struct Received<T> {
    pub message: T,
    /// The sender's pid, translated into the receiver's pid namespace
    /// (only when the sender attached its credentials).
    pub pid: Option<i32>,
    pub fds: Vec<OwnedFd>,
}

fn to_io(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

impl Channel {
    /// A connected pair (both ends close-on-exec). The runtime end receives
    /// credentials.
    pub fn pair() -> io::Result<(Channel, Channel)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(to_io)?;
        setsockopt(&a, sockopt::PassCred, &true).map_err(to_io)?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    /// Adopt an inherited fd.
    ///
    /// # Safety
    /// `fd` must be an open socket that nothing else owns.
    pub unsafe fn from_raw_fd(fd: RawFd) -> Channel {
        Channel {
            // SAFETY: guaranteed by the caller.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        }
    }

    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    pub fn send<T: Serialize>(&self, msg: &T) -> io::Result<()> {
        self.send_inner(msg, false, &[])
    }

    /// Send with file descriptors attached (at most [`MAX_FDS`]).
    pub fn send_with_fds<T: Serialize>(&self, msg: &T, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        if fds.len() > MAX_FDS {
            return Err(io::Error::other(format!(
                "{} fds exceed the channel's {MAX_FDS}",
                fds.len()
            )));
        }
        self.send_inner(msg, false, fds)
    }

    /// Send with this process's credentials (pid, uid, gid) attached.
    pub fn send_with_credentials<T: Serialize>(&self, msg: &T) -> io::Result<()> {
        self.send_inner(msg, true, &[])
    }

    /// Send with one file descriptor attached.
    pub fn send_with_fd<T: Serialize>(&self, msg: &T, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.send_inner(msg, false, &[fd])
    }

    fn send_inner<T: Serialize>(
        &self,
        msg: &T,
        creds: bool,
        fds: &[BorrowedFd<'_>],
    ) -> io::Result<()> {
        let data = serde_json::to_vec(msg).map_err(io::Error::other)?;
        if data.len() > MAX_MESSAGE {
            return Err(io::Error::other(format!(
                "message of {} bytes exceeds {MAX_MESSAGE}",
                data.len()
            )));
        }
        let iov = [IoSlice::new(&data)];
        let ucred = UnixCredentials::new();
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let mut cmsgs = Vec::new();
        if creds {
            cmsgs.push(ControlMessage::ScmCredentials(&ucred));
        }
        if !raw.is_empty() {
            cmsgs.push(ControlMessage::ScmRights(&raw));
        }
        sendmsg::<()>(
            self.fd.as_raw_fd(),
            &iov,
            &cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(to_io)?;
        Ok(())
    }

    /// Receive one message; `Ok(None)` when the peer has closed the channel.
    pub fn recv<T: DeserializeOwned>(&self) -> io::Result<Option<Received<T>>> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut cmsg = nix::cmsg_space!(libc::ucred, [RawFd; MAX_FDS]);
        let (len, pid, fds) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = loop {
                match recvmsg::<()>(
                    self.fd.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                ) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    r => break r.map_err(to_io)?,
                }
            };
            let mut pid = None;
            let mut fds = Vec::new();
            for c in msg.cmsgs().map_err(to_io)? {
                match c {
                    ControlMessageOwned::ScmCredentials(uc) => pid = Some(uc.pid()),
                    ControlMessageOwned::ScmRights(raw) => {
                        for r in raw {
                            // SAFETY: the kernel just installed this fd for us.
                            fds.push(unsafe { OwnedFd::from_raw_fd(r) });
                        }
                    }
                    _ => {}
                }
            }
            (msg.bytes, pid, fds)
        };
        if len == 0 {
            return Ok(None);
        }
        let message = serde_json::from_slice(&buf[..len]).map_err(io::Error::other)?;
        Ok(Some(Received { message, pid, fds }))
    }

    /// Like [`Channel::recv`], giving up with `TimedOut` after `timeout`.
    pub fn recv_timeout<T: DeserializeOwned>(
        &self,
        timeout: Duration,
    ) -> io::Result<Option<Received<T>>> {
        wait_readable(self.fd.as_fd(), timeout)?;
        self.recv()
    }
}

/// A connected `SOCK_SEQPACKET` socket (e.g. from `accept` or `connect`).
impl From<OwnedFd> for Channel {
    fn from(fd: OwnedFd) -> Channel {
        Channel { fd }
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Wait until `fd` is readable (or hung up), at most `timeout`.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")),
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(to_io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{InitMessage, RuntimeMessage};

    #[test]
    fn roundtrip_with_credentials_and_fd() {
        let (rt, init) = Channel::pair().unwrap();
        init.send_with_credentials(&InitMessage::Hello).unwrap();
        let got = rt
            .recv_timeout::<InitMessage>(Duration::from_secs(5))
            .unwrap()
            .unwrap();
        assert_eq!(got.message, InitMessage::Hello);
        assert_eq!(got.pid, Some(std::process::id() as i32));

        let (r, _w) = nix::unistd::pipe().unwrap();
        rt.send_with_fd(&RuntimeMessage::Start, r.as_fd()).unwrap();
        let got = init.recv::<RuntimeMessage>().unwrap().unwrap();
        assert_eq!(got.message, RuntimeMessage::Start);
        assert_eq!(got.fds.len(), 1);

        drop(init);
        assert!(rt.recv::<InitMessage>().unwrap().is_none());
    }

    #[test]
    fn timeout() {
        let (rt, _init) = Channel::pair().unwrap();
        let e = rt
            .recv_timeout::<InitMessage>(Duration::from_millis(10))
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
