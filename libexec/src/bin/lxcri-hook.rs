//! `lxcri-hook`: runs OCI hooks for the runtime, in two modes.
//!
//! - `lxcri-hook` (no arguments): one phase in the runtime's namespaces, for a
//!   multi-threaded caller (the shim must not fork-and-wait itself: its reaper
//!   would take the hooks' exits). stdin: a [`HookRun`] JSON; stdout: a
//!   [`HookResult`] JSON, exit status 0 whenever the result was written.
//! - `lxcri-hook NAME lxc mount`: liblxc's mount hook (`lxc.hook.mount`), run in
//!   the container's new namespaces after its mounts and before pivot_root, where
//!   OCI wants createContainer hooks. It tells the runtime the init's host pid over
//!   the init channel (fd 3, inherited from the container's init-to-be), waits
//!   while the runtime runs prestart and createRuntime hooks, runs the
//!   createContainer hooks it is sent, and reports. A non-zero exit makes liblxc
//!   abort the start.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use lxcri_libexec::channel::Channel;
use lxcri_libexec::hooks::run_hooks;
use lxcri_libexec::proto::{
    AttachMount, HookResult, HookRun, InitMessage, RuntimeMessage, INIT_CHANNEL_FD, MONITOR_PID_ENV,
};

fn host_mode() {
    let mut input = Vec::new();
    let result = match std::io::stdin().read_to_end(&mut input) {
        Err(e) => HookResult {
            error: Some(format!("lxcri-hook: read stdin: {e}")),
        },
        Ok(_) => match serde_json::from_slice::<HookRun>(&input) {
            Err(e) => HookResult {
                error: Some(format!("lxcri-hook: parse input: {e}")),
            },
            Ok(run) => HookResult {
                error: run_hooks(&run.phase, &run.hooks, &run.state, &[]).err(),
            },
        },
    };
    let out = serde_json::to_vec(&result).unwrap_or_default();
    let mut stdout = std::io::stdout();
    if stdout.write_all(&out).and_then(|_| stdout.flush()).is_err() {
        std::process::exit(1);
    }
}

/// The parent pid of a host pid, from the host's /proc (still mounted at /proc
/// before pivot_root).
fn ppid(pid: i32) -> Result<i32, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("read /proc/{pid}/stat: {e}"))?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| format!("bad /proc/{pid}/stat"))?;
    rest.split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("bad /proc/{pid}/stat"))
}

/// The host pid of the container's init-to-be: our ancestor whose parent is the
/// LXC monitor (`lxcri-start`, which exports its pid).
fn init_pid() -> Result<i32, String> {
    let monitor: i32 = std::env::var(MONITOR_PID_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{MONITOR_PID_ENV} is not set"))?;
    // /proc/self resolves in the procfs's pid namespace: the host's.
    let me: i32 = std::fs::read_link("/proc/self")
        .map_err(|e| format!("readlink /proc/self: {e}"))?
        .to_string_lossy()
        .parse()
        .map_err(|_| "bad /proc/self".to_string())?;
    let mut pid = me;
    for _ in 0..16 {
        let parent = ppid(pid)?;
        if parent == monitor {
            return Ok(pid);
        }
        if parent <= 1 {
            break;
        }
        pid = parent;
    }
    Err(format!(
        "no ancestor of pid {me} is a child of the monitor {monitor}"
    ))
}

fn mount_mode() -> Result<(), String> {
    // SAFETY: fd 3 is the init channel, inherited by liblxc's hooks from the
    // container's init-to-be; this process owns its copy.
    let ch = unsafe { Channel::from_raw_fd(INIT_CHANNEL_FD) };
    let pid = init_pid()?;
    ch.send(&InitMessage::HookPoint { pid })
        .map_err(|e| format!("send hook point: {e}"))?;
    let (hooks, state) = loop {
        match ch.recv::<RuntimeMessage>() {
            Ok(Some(r)) => match r.message {
                RuntimeMessage::RunHooks { hooks, state } => break (hooks, state),
                RuntimeMessage::AttachMounts { mounts } => {
                    let result = attach_mounts(&mounts, r.fds);
                    // The fds are closed: nothing of them reaches the container.
                    match result {
                        Ok(()) => ch
                            .send(&InitMessage::MountsAttached)
                            .map_err(|e| format!("send mounts attached: {e}"))?,
                        Err(message) => {
                            let _ = ch.send(&InitMessage::Error {
                                message: message.clone(),
                            });
                            return Err(message);
                        }
                    }
                }
                m => return Err(format!("unexpected message {m:?}")),
            },
            Ok(None) => return Err("the runtime gave up (prestart/createRuntime failed)".into()),
            Err(e) => return Err(format!("receive hooks: {e}")),
        }
    };
    match run_hooks("createContainer", &hooks, &state, &[]) {
        Ok(()) => ch
            .send(&InitMessage::HooksDone)
            .map_err(|e| format!("send result: {e}")),
        Err(message) => {
            let _ = ch.send(&InitMessage::Error {
                message: message.clone(),
            });
            Err(message)
        }
    }
}

/// Attach detached mounts (`fds`, in the order of `mounts`) at their
/// destinations in the rootfs liblxc mounted (`LXC_ROOTFS_MOUNT`), creating a
/// missing mount point like liblxc's create=dir/create=file.
fn attach_mounts(mounts: &[AttachMount], fds: Vec<OwnedFd>) -> Result<(), String> {
    if fds.len() != mounts.len() {
        return Err(format!(
            "{} mounts came with {} fds",
            mounts.len(),
            fds.len()
        ));
    }
    let rootfs =
        std::env::var("LXC_ROOTFS_MOUNT").map_err(|_| "LXC_ROOTFS_MOUNT is not set".to_string())?;
    let root = open_path(libc::AT_FDCWD, &rootfs, libc::O_DIRECTORY)
        .map_err(|e| format!("open the rootfs {rootfs}: {e}"))?;
    for (m, tree) in mounts.iter().zip(fds) {
        let target = mount_point(&root, &m.destination, m.is_dir)
            .map_err(|e| format!("{}: mount point /{}: {e}", m.field, m.destination))?;
        // SAFETY: move_mount with two open fds and empty NUL-terminated paths.
        let r = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                tree.as_raw_fd(),
                c"".as_ptr(),
                target.as_raw_fd(),
                c"".as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
            )
        };
        if r < 0 {
            return Err(format!(
                "{}: attach the id-mapped mount at /{}: {}",
                m.field,
                m.destination,
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// An `O_PATH` fd of `name` relative to `dir`, not following a symlink.
fn open_path(dir: libc::c_int, name: &str, extra: libc::c_int) -> std::io::Result<OwnedFd> {
    let c = CString::new(name).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: openat with a NUL-terminated name alive for the call; the new fd
    // is owned by the returned OwnedFd only.
    let fd = unsafe {
        libc::openat(
            dir,
            c.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC | extra,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just opened here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The mount point `rel` (resolved by the runtime: plain components) under
/// `root`, walked one component at a time without following symlinks (one is an
/// error: the path cannot leave the rootfs); missing components are created
/// (directories 0755, a missing last one a directory or an empty file).
fn mount_point(root: &OwnedFd, rel: &str, is_dir: bool) -> std::io::Result<OwnedFd> {
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    let einval = || std::io::Error::from_raw_os_error(libc::EINVAL);
    if parts.is_empty() || parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(einval());
    }
    let mut dir = root.try_clone()?;
    for (i, p) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let want_dir = !last || is_dir;
        let c = CString::new(*p).map_err(|_| einval())?;
        let flags = if want_dir { libc::O_DIRECTORY } else { 0 };
        let next = match open_path(dir.as_raw_fd(), p, flags) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                if want_dir {
                    // SAFETY: mkdirat with an open dir fd and a NUL-terminated name.
                    if unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o755) } != 0 {
                        let e = std::io::Error::last_os_error();
                        if e.raw_os_error() != Some(libc::EEXIST) {
                            return Err(e);
                        }
                    }
                } else {
                    // SAFETY: openat with an open dir fd and a NUL-terminated
                    // name; the fd it returns is closed right away.
                    let fd = unsafe {
                        libc::openat(
                            dir.as_raw_fd(),
                            c.as_ptr(),
                            libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                            0o000 as libc::c_uint,
                        )
                    };
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // SAFETY: fd was just opened here.
                    drop(unsafe { OwnedFd::from_raw_fd(fd) });
                }
                open_path(dir.as_raw_fd(), p, flags)?
            }
            Err(e) => return Err(e),
        };
        // O_PATH|O_NOFOLLOW opens a symlink itself: refuse it.
        // SAFETY: fstat of an open fd into a zeroed stat buffer.
        let mode = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(next.as_raw_fd(), &mut st) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            st.st_mode
        };
        if mode & libc::S_IFMT == libc::S_IFLNK {
            return Err(std::io::Error::from_raw_os_error(libc::ELOOP));
        }
        dir = next;
    }
    Ok(dir)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        return host_mode();
    }
    if args.len() >= 3 && args[1] == "lxc" && args[2] == "mount" {
        if let Err(e) = mount_mode() {
            eprintln!("lxcri-hook: {e}");
            std::process::exit(1);
        }
        return;
    }
    eprintln!("usage: lxcri-hook (HookRun JSON on stdin) | lxcri-hook NAME lxc mount");
    std::process::exit(2);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mount points: missing directories and a missing file are created inside
    /// the root; a symlink anywhere on the way (even one pointing inside) and
    /// `..` are refused, so nothing outside the root is touched.
    #[test]
    fn mount_points_stay_inside() {
        let d = tempfile::tempdir().unwrap();
        let root_path = d.path().join("root");
        std::fs::create_dir_all(root_path.join("etc")).unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root_path.join("escape")).unwrap();
        std::os::unix::fs::symlink("etc", root_path.join("inner")).unwrap();
        let root = open_path(
            libc::AT_FDCWD,
            root_path.to_str().unwrap(),
            libc::O_DIRECTORY,
        )
        .unwrap();
        mount_point(&root, "a/b/c", true).unwrap();
        assert!(root_path.join("a/b/c").is_dir());
        mount_point(&root, "etc/x/file", false).unwrap();
        assert!(root_path.join("etc/x/file").is_file());
        // Existing ones are taken as they are.
        mount_point(&root, "etc/x/file", false).unwrap();
        for bad in ["escape/x", "escape", "inner/y", "a/../b", ""] {
            assert!(mount_point(&root, bad, true).is_err(), "{bad}");
        }
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        assert!(!root_path.join("etc/y").exists());
    }
}
