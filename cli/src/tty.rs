//! Foreground `run`/`exec` with a terminal and no `--console-socket`: like runc,
//! lxcri holds the pty master itself and copies between it and its own stdio
//! (stdin in raw mode when it is a terminal), while it waits for the process and
//! forwards signals to it (SIGWINCH resizes the pty instead).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Restores the terminal's mode on drop.
struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(stdin.as_fd()) else {
            return RawMode { saved: None };
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        if let Err(e) = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw) {
            log::warn!("raw mode on stdin: {e}");
        }
        RawMode { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, t);
        }
    }
}

/// Copy our window size (if stdin is a terminal) to the pty.
fn resize(master: &OwnedFd) {
    let mut ws: libc::winsize = empty_winsize();
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we pass.
    if unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0 {
        let _ = lxcri_libexec::process::set_window_size(master.as_fd(), ws.ws_row, ws.ws_col);
    }
}

fn empty_winsize() -> libc::winsize {
    libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// Proxy the pty until the child `pid` exits; its exit code (128+signal).
/// Signals go to `signal_to` (the process; `pid` may be the helper waiting for
/// it). `signals` is blocked in this thread already (it includes SIGCHLD).
pub fn proxy_and_wait(pid: i32, signal_to: i32, master: OwnedFd, signals: &SigSet) -> Result<u8> {
    let sfd = SignalFd::new(signals).context("signalfd")?;
    let _raw = RawMode::enter();
    resize(&master);
    let mut to_pty = std::fs::File::from(master.try_clone().context("dup pty master")?);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut stdin = std::io::stdin();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_pty.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut from_pty = std::fs::File::from(master.try_clone().context("dup pty master")?);
    let mut pty_open = true;
    let mut out = std::io::stdout();
    loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(drain(&mut from_pty, pty_open, c as u8)),
            Ok(WaitStatus::Signaled(_, s, _)) => {
                return Ok(drain(&mut from_pty, pty_open, 128 + s as i32 as u8))
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).with_context(|| format!("wait for {pid}")),
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if pty_open {
            fds.push(PollFd::new(master.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll"),
        }
        let pty_ready = pty_open
            && fds
                .get(1)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty());
        let sig_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        if pty_ready {
            let mut buf = [0u8; 4096];
            match from_pty.read(&mut buf) {
                Ok(0) | Err(_) => pty_open = false,
                Ok(n) => {
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
            }
        }
        if sig_ready {
            if let Ok(Some(info)) = sfd.read_signal() {
                let sig = info.ssi_signo as i32;
                if sig == Signal::SIGWINCH as i32 {
                    resize(&master);
                } else if sig != Signal::SIGCHLD as i32 {
                    // SAFETY: plain kill(2) with a signal number the kernel gave us.
                    unsafe { libc::kill(signal_to, sig) };
                }
            }
        }
    }
}

/// Copy what the pty still holds after the process exited; returns `code`.
fn drain(from_pty: &mut std::fs::File, open: bool, code: u8) -> u8 {
    if !open {
        return code;
    }
    let fd = from_pty.as_raw_fd();
    let mut out = std::io::stdout();
    loop {
        // SAFETY: fd is the pty master we own for this call's duration.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let mut fds = [PollFd::new(borrowed, PollFlags::POLLIN)];
        if !matches!(poll(&mut fds, PollTimeout::from(100u8)), Ok(n) if n > 0) {
            break;
        }
        let mut buf = [0u8; 4096];
        match from_pty.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let _ = out.write_all(&buf[..n]);
            }
        }
    }
    let _ = out.flush();
    code
}
