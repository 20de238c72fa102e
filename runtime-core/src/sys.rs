//! Small Linux process helpers: pidfds, process start times, liveness.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// `pidfd_open(pid, 0)`.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `pidfd_send_signal(fd, sig, NULL, 0)`.
pub fn pidfd_send_signal(fd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: plain syscall on a valid pidfd with a NULL siginfo.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Wait until the process behind a pidfd has terminated (the pidfd polls readable),
/// at most `timeout`; true when it has.
pub fn pidfd_wait(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    lxcri_libexec::channel::wait_readable(fd, timeout).is_ok()
}

/// The start time (clock ticks since boot, field 22 of /proc/PID/stat) of a
/// process, to recognise it again after a pid might have been reused.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The state letter (field 3 of /proc/PID/stat), None when there is no such pid.
fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

/// Whether `pid` is the same live (not zombie) process that started at `start`.
pub fn is_alive(pid: i32, start: u64) -> bool {
    pid > 0 && start_time(pid) == Some(start) && !matches!(state(pid), Some('Z' | 'X'))
}

/// Wait until the process is gone or a zombie, at most `timeout`.
pub fn wait_dead(pid: i32, start: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while is_alive(pid, start) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pidfd_signal_and_wait() {
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let st = start_time(pid).unwrap();
        assert!(is_alive(pid, st));
        assert!(!is_alive(pid, st + 1));
        let fd = pidfd_open(pid).unwrap();
        assert!(!pidfd_wait(fd.as_fd(), Duration::from_millis(10)));
        pidfd_send_signal(fd.as_fd(), libc::SIGKILL).unwrap();
        assert!(pidfd_wait(fd.as_fd(), Duration::from_secs(5)));
        assert!(wait_dead(pid, st, Duration::from_secs(5)));
        child.wait().unwrap();
        assert!(!is_alive(pid, st));
    }

    use std::os::fd::AsFd;
}
