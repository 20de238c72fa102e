//! `lxcri-init`: the container's pid 1 until Start, linked statically (images carry
//! no libc we could rely on).
//!
//! It talks to the runtime over the init channel (see `lxcri_libexec::proto`): it
//! announces itself, applies the pre-start setup (masked and read-only paths), waits
//! at the barrier for Start, then becomes the OCI process: rlimits, cwd, user,
//! capabilities, no_new_privs, and finally `execve` as the same pid.

use std::collections::HashSet;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::exit;

use caps::{CapSet, Capability};
use lxcri_libexec::channel::Channel;
use lxcri_libexec::proto::{
    exec_failure_code, InitMessage, InitSpec, RuntimeMessage, CAPABILITY_NAMES, INIT_CHANNEL_FD,
    INIT_EXE_FD,
};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};

/// Exit code for a failure of init itself (not of the exec).
const INIT_FAILED: i32 = 1;

fn fail(msg: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "lxcri-init: {msg}");
    exit(INIT_FAILED)
}

fn main() {
    // SAFETY: fd 3 is init's end of the init channel by protocol; nothing else owns it.
    let ch = unsafe { Channel::from_raw_fd(INIT_CHANNEL_FD) };
    // The executable is mapped: its fd is no longer needed.
    let _ = nix::unistd::close(INIT_EXE_FD);
    if let Err(e) = ch.send_with_credentials(&InitMessage::Hello) {
        fail(&format!("hello: {e}"));
    }
    let spec = match ch.recv::<RuntimeMessage>() {
        Ok(Some(r)) => match r.message {
            RuntimeMessage::Setup { spec } => spec,
            m => fail(&format!("unexpected message {m:?}")),
        },
        Ok(None) => exit(INIT_FAILED),
        Err(e) => fail(&format!("receive setup: {e}")),
    };
    if let Err(message) = prepare(&spec) {
        let _ = ch.send(&InitMessage::Error {
            message: message.clone(),
        });
        fail(&message);
    }
    if let Err(e) = ch.send(&InitMessage::Ready) {
        fail(&format!("ready: {e}"));
    }
    // The barrier: wait for Start. End of file means the runtime deleted us.
    let result_pipe = match ch.recv::<RuntimeMessage>() {
        Ok(Some(r)) => match (r.message, r.fds.into_iter().next()) {
            (RuntimeMessage::Start, Some(fd)) => fd,
            (m, _) => fail(&format!("unexpected message {m:?}")),
        },
        Ok(None) => exit(INIT_FAILED),
        Err(e) => fail(&format!("receive start: {e}")),
    };
    drop(ch);
    let (code, message) = become_process(&spec);
    report(result_pipe, &message);
    exit(code)
}

/// Tell the runtime and the container's stderr why the exec failed.
fn report(pipe: OwnedFd, message: &str) {
    let _ = writeln!(std::io::stderr(), "lxcri: {message}");
    let mut f = std::fs::File::from(pipe);
    let _ = f.write_all(message.as_bytes());
}

/// Pre-start setup, done while init still holds every capability.
fn prepare(spec: &InitSpec) -> Result<(), String> {
    for p in &spec.masked_paths {
        mask_path(p).map_err(|e| format!("mask {p}: {e}"))?;
    }
    for p in &spec.readonly_paths {
        readonly_path(p).map_err(|e| format!("make {p} read-only: {e}"))?;
    }
    // runc's /dev/ptmx: a link to the container's devpts instance.
    if Path::new("/dev/pts/ptmx").exists() && std::fs::symlink_metadata("/dev/ptmx").is_err() {
        std::os::unix::fs::symlink("pts/ptmx", "/dev/ptmx")
            .map_err(|e| format!("/dev/ptmx: {e}"))?;
    }
    if spec.readonly_rootfs {
        remount_readonly("/").map_err(|e| format!("make the rootfs read-only: {e}"))?;
    }
    Ok(())
}

/// Remount a mount point read-only, keeping its nosuid/nodev/noexec flags.
fn remount_readonly(p: &str) -> Result<(), Errno> {
    use nix::sys::statvfs::FsFlags;
    let st = nix::sys::statvfs::statvfs(p)?;
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    for (f, m) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
    ] {
        if st.flags().contains(f) {
            flags |= m;
        }
    }
    mount(Some(p), p, None::<&str>, flags, None::<&str>)
}

fn mask_path(p: &str) -> Result<(), Errno> {
    let md = match std::fs::metadata(p) {
        Ok(md) => md,
        Err(_) => return Ok(()),
    };
    if md.is_dir() {
        mount(
            Some("tmpfs"),
            p,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        mount(
            Some("/dev/null"),
            p,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    }
}

fn readonly_path(p: &str) -> Result<(), Errno> {
    if std::fs::symlink_metadata(p).is_err() {
        return Ok(());
    }
    mount(
        Some(p),
        p,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )?;
    remount_readonly(p)
}

fn cap_set(nums: &[u8]) -> Result<HashSet<Capability>, String> {
    nums.iter()
        .map(|n| {
            CAPABILITY_NAMES
                .get(*n as usize)
                .and_then(|name| name.parse::<Capability>().ok())
                .ok_or_else(|| format!("unknown capability {n}"))
        })
        .collect()
}

/// Turn this process into the OCI process; returns only on failure, with the exit
/// code and the message.
fn become_process(spec: &InitSpec) -> (i32, String) {
    match setup_process(spec) {
        Ok(()) => {}
        Err(msg) => return (INIT_FAILED, msg),
    }
    let (path, errno) = exec(spec);
    let code = exec_failure_code(errno);
    let arg0 = spec.args.first().map(String::as_str).unwrap_or("");
    let msg = match (errno, path) {
        (Errno::ENOENT, None) => {
            format!("exec: {arg0:?}: executable file not found in $PATH")
        }
        (e, _) => format!("exec: {arg0:?}: {}", e.desc().to_lowercase()),
    };
    (code, msg)
}

fn setup_process(spec: &InitSpec) -> Result<(), String> {
    if let Some(u) = spec.umask {
        nix::sys::stat::umask(Mode::from_bits_truncate(u));
    }
    for r in &spec.rlimits {
        let rl = libc::rlimit {
            rlim_cur: r.soft,
            rlim_max: r.hard,
        };
        // SAFETY: plain syscall with a valid pointer to an initialized rlimit.
        if unsafe { libc::setrlimit(r.resource as _, &rl) } != 0 {
            return Err(format!("setrlimit {}: {}", r.resource, Errno::last()));
        }
    }
    if let Some(adj) = spec.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| format!("oom_score_adj: {e}"))?;
    }
    if !spec.cwd.is_empty() {
        nix::unistd::chdir(spec.cwd.as_str()).map_err(|e| {
            format!(
                "chdir to cwd ({:?}) set in config.json failed: {e}",
                spec.cwd
            )
        })?;
    }
    if let Some(c) = &spec.capabilities {
        let bounding = cap_set(&c.bounding)?;
        for cap in caps::all() {
            if !bounding.contains(&cap)
                && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false)
            {
                caps::drop(None, CapSet::Bounding, cap)
                    .map_err(|e| format!("drop bounding {cap}: {e}"))?;
            }
        }
    }
    let gids: Vec<Gid> = spec
        .additional_gids
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&gids).map_err(|e| format!("setgroups: {e}"))?;
    nix::unistd::setresgid(
        Gid::from_raw(spec.gid),
        Gid::from_raw(spec.gid),
        Gid::from_raw(spec.gid),
    )
    .map_err(|e| format!("setgid {}: {e}", spec.gid))?;
    if spec.uid != 0 {
        caps::securebits::set_keepcaps(true).map_err(|e| format!("keepcaps: {e}"))?;
        nix::unistd::setresuid(
            Uid::from_raw(spec.uid),
            Uid::from_raw(spec.uid),
            Uid::from_raw(spec.uid),
        )
        .map_err(|e| format!("setuid {}: {e}", spec.uid))?;
        caps::securebits::set_keepcaps(false).map_err(|e| format!("keepcaps: {e}"))?;
        let permitted = caps::read(None, CapSet::Permitted).map_err(|e| e.to_string())?;
        caps::set(None, CapSet::Effective, &permitted).map_err(|e| format!("capset: {e}"))?;
    }
    if let Some(c) = &spec.capabilities {
        caps::set(None, CapSet::Inheritable, &cap_set(&c.inheritable)?)
            .map_err(|e| format!("set inheritable capabilities: {e}"))?;
        caps::set(None, CapSet::Effective, &cap_set(&c.effective)?)
            .map_err(|e| format!("set effective capabilities: {e}"))?;
        caps::set(None, CapSet::Permitted, &cap_set(&c.permitted)?)
            .map_err(|e| format!("set permitted capabilities: {e}"))?;
        caps::clear(None, CapSet::Ambient).map_err(|e| format!("clear ambient: {e}"))?;
        for cap in cap_set(&c.ambient)? {
            caps::raise(None, CapSet::Ambient, cap)
                .map_err(|e| format!("raise ambient {cap}: {e}"))?;
        }
    }
    if spec.no_new_privileges {
        nix::sys::prctl::set_no_new_privs().map_err(|e| format!("no_new_privs: {e}"))?;
    }
    close_fds_on_exec();
    Ok(())
}

/// Mark every fd above stderr close-on-exec: nothing of the runtime may leak into
/// the container's process.
fn close_fds_on_exec() {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on fds; no memory
    // is touched.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r != 0 {
        // Older kernels: do it one by one.
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            let fds: Vec<i32> = dir
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter(|fd| *fd > 2)
                .collect();
            for fd in fds {
                // SAFETY: setting FD_CLOEXEC on a possibly-closed fd is harmless.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
        }
    }
}

fn cstrings(v: &[String]) -> Result<Vec<CString>, Errno> {
    v.iter()
        .map(|s| CString::new(s.as_bytes()).map_err(|_| Errno::EINVAL))
        .collect()
}

/// Look up and exec args[0]; returns the resolved path (if any) and the error.
fn exec(spec: &InitSpec) -> (Option<PathBuf>, Errno) {
    let Some(arg0) = spec.args.first() else {
        return (None, Errno::ENOENT);
    };
    let (Ok(argv), Ok(envp)) = (cstrings(&spec.args), cstrings(&spec.env)) else {
        return (None, Errno::EINVAL);
    };
    let candidates: Vec<PathBuf> = if arg0.contains('/') {
        vec![PathBuf::from(arg0)]
    } else {
        let path = spec
            .env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("");
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join(arg0))
            .collect()
    };
    let mut last: Option<(PathBuf, Errno)> = None;
    for c in candidates {
        let Ok(cpath) = CString::new(c.as_os_str().as_bytes()) else {
            continue;
        };
        let e = match nix::unistd::execve(&cpath, &argv, &envp) {
            Err(e) => e,
            Ok(never) => match never {},
        };
        // Like execvp: a permission error is remembered, a missing file is not.
        match (&last, e) {
            (_, Errno::ENOENT | Errno::ENOTDIR) if !arg0.contains('/') => {}
            _ => last = Some((c, e)),
        }
        if arg0.contains('/') {
            break;
        }
        if !matches!(e, Errno::ENOENT | Errno::ENOTDIR | Errno::EACCES) {
            break;
        }
    }
    match last {
        Some((p, e)) => (Some(p), e),
        None => (None, Errno::ENOENT),
    }
}
