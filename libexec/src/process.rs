//! Becoming a container process: what runs in the container right before `execve`,
//! shared by the init (at Start) and by exec'd processes (in the attached child).
//!
//! The order follows runc's: rlimits, oom_score_adj, the CPU affinity (an exec's
//! `execCPUAffinity.final`, else reset to every CPU), the scheduler, the I/O
//! priority and the memory policy (while CAP_SYS_NICE is still held), cwd, the
//! bounding set, groups, gid, uid (keeping capabilities across setuid), the
//! capability sets, ambient capabilities, no_new_privs, close-on-exec for every fd
//! above stderr, execve.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use caps::{CapSet, Capability};
use nix::errno::Errno;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};

use crate::channel::Channel;
use crate::proto::{
    exec_failure_code, InitMessage, MemoryPolicy, ProcessSpec, RuntimeMessage, SchedAttr,
    SeccompProgram, CAPABILITY_NAMES, PRESERVED_FDS_BASE,
};

/// Exit code for a failure of the setup itself (not of the exec).
pub const SETUP_FAILED: i32 = 1;

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

/// What a process does with the listener fd of a seccomp filter with
/// SCMP_ACT_NOTIFY rules, right after loading it: hand it to the runtime and
/// wait until the agent has it ([`hand_over_listener`]).
pub type ListenerHandler<'a> = &'a mut dyn FnMut(OwnedFd) -> Result<(), String>;

/// Turn this process into the spec's process; returns only on failure, with the
/// exit code to use and the message for the user.
pub fn become_process(spec: &ProcessSpec, on_listener: ListenerHandler<'_>) -> (i32, String) {
    if let Err(msg) = setup(spec, on_listener) {
        return (SETUP_FAILED, msg);
    }
    let (path, errno) = exec(spec);
    let arg0 = spec.args.first().map(String::as_str).unwrap_or("");
    let msg = match (errno, path) {
        (Errno::ENOENT, None) => format!("exec: {arg0:?}: executable file not found in $PATH"),
        (e, _) => format!("exec: {arg0:?}: {}", e.desc().to_lowercase()),
    };
    (exec_failure_code(errno), msg)
}

/// Set the window size of a terminal.
pub fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<(), Errno> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a valid, initialized winsize from the pointer.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    Errno::result(r).map(drop)
}

/// Allocate a pty from the devpts of the mount namespace we are in (the
/// container's /dev/ptmx), make its slave our controlling terminal and stdio, and
/// return the master for the runtime.
pub fn open_console(size: Option<(u16, u16)>) -> Result<OwnedFd, String> {
    use nix::fcntl::OFlag;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(|e| format!("open /dev/ptmx: {e}"))?;
    nix::pty::grantpt(&master).map_err(|e| format!("grantpt: {e}"))?;
    nix::pty::unlockpt(&master).map_err(|e| format!("unlockpt: {e}"))?;
    let name = nix::pty::ptsname_r(&master).map_err(|e| format!("ptsname: {e}"))?;
    if let Some((rows, cols)) = size {
        set_window_size(master.as_fd(), rows, cols).map_err(|e| format!("console size: {e}"))?;
    }
    // A new session (EPERM: we lead one already), then the slave as its terminal.
    let _ = nix::unistd::setsid();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&name)
        .map_err(|e| format!("open {name}: {e}"))?;
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal).
    let r = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(r).map_err(|e| format!("make {name} the controlling terminal: {e}"))?;
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard fds, which this process owns.
        Errno::result(unsafe { libc::dup2(slave.as_raw_fd(), fd) })
            .map_err(|e| format!("dup2 console: {e}"))?;
    }
    Ok(master.into())
}

/// Everything but the exec.
pub fn setup(spec: &ProcessSpec, on_listener: ListenerHandler<'_>) -> Result<(), String> {
    if let Some(profile) = &spec.apparmor_profile {
        apparmor_exec(profile)?;
    }
    if let Some(label) = &spec.selinux_label {
        selinux_exec(label)?;
    }
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
    // runc's order: the final affinity (set by its parent before the setns
    // process runs), then scheduler, I/O priority, memory policy.
    match spec
        .cpu_affinity
        .as_ref()
        .and_then(|a| a.final_cpus.as_ref())
    {
        Some(cpus) => {
            set_cpu_affinity(cpus).map_err(|e| format!("error setting final CPU affinity: {e}"))?
        }
        // Only `initial`: keep it (inherited from the helper).
        None if spec.cpu_affinity.is_some() => {}
        // Like runc: do not inherit the runtime's affinity; a failure only means
        // the process keeps that affinity (runc warns and goes on).
        None => {
            let _ = reset_cpu_affinity();
        }
    }
    if let Some(attr) = &spec.scheduler {
        set_scheduler(attr).map_err(|e| format!("error setting scheduler: {e}"))?;
    }
    if let Some(ioprio) = spec.io_priority {
        set_io_priority(ioprio).map_err(|e| format!("failed to set io priority: {e}"))?;
    }
    if let Some(mpol) = &spec.memory_policy {
        set_memory_policy(mpol).map_err(|e| format!("set_mempolicy: {e}"))?;
    }
    // Without no_new_privs the filter needs CAP_SYS_ADMIN: load it while we still
    // hold it (runc's order); the profile must then allow the rest of the setup.
    if let (Some(p), false) = (&spec.seccomp, spec.no_new_privileges) {
        if let Some(fd) = load_seccomp(p)? {
            on_listener(fd)?;
        }
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
    let gid = Gid::from_raw(spec.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| format!("setgid {}: {e}", spec.gid))?;
    if spec.uid != 0 {
        caps::securebits::set_keepcaps(true).map_err(|e| format!("keepcaps: {e}"))?;
        let uid = Uid::from_raw(spec.uid);
        nix::unistd::setresuid(uid, uid, uid).map_err(|e| format!("setuid {}: {e}", spec.uid))?;
        caps::securebits::set_keepcaps(false).map_err(|e| format!("keepcaps: {e}"))?;
        let permitted = caps::read(None, CapSet::Permitted).map_err(|e| e.to_string())?;
        caps::set(None, CapSet::Effective, &permitted).map_err(|e| format!("capset: {e}"))?;
    } else {
        // Root of the container: after joining a user namespace (an exec into
        // one) our ids are still the host's, unmapped there.
        let root = Uid::from_raw(0);
        nix::unistd::setresuid(root, root, root).map_err(|e| format!("setuid 0: {e}"))?;
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
    hand_over_preserved_fds(spec.preserved_fds)?;
    // With no_new_privs, as late as possible: only execve runs under the filter.
    if let (Some(p), true) = (&spec.seccomp, spec.no_new_privileges) {
        if let Some(fd) = load_seccomp(p)? {
            on_listener(fd)?;
        }
    }
    Ok(())
}

/// The highest CPU (and NUMA node) number accepted, as runc's `MaxCPU`.
pub const MAX_CPU: u32 = 64 * 1024;

/// A bit mask of `ids` in 64-bit words (at least one word).
fn bitmask(ids: &[u32]) -> Vec<u64> {
    let words = ids.iter().max().map_or(1, |m| *m as usize / 64 + 1);
    let mut mask = vec![0u64; words];
    for id in ids {
        mask[*id as usize / 64] |= 1 << (id % 64);
    }
    mask
}

fn sched_setaffinity(mask: &[u64]) -> Result<(), Errno> {
    // SAFETY: the kernel reads `len` bytes from the live mask; pid 0 is this thread.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            0,
            std::mem::size_of_val(mask),
            mask.as_ptr(),
        )
    };
    Errno::result(r).map(drop)
}

/// Restrict this thread (and what it forks) to `cpus`.
pub fn set_cpu_affinity(cpus: &[u32]) -> Result<(), Errno> {
    sched_setaffinity(&bitmask(cpus))
}

/// Allow every possible CPU (the kernel clamps the mask to the CPUs it has and to
/// the cgroup's cpuset), like runc's tryResetCPUAffinity.
pub fn reset_cpu_affinity() -> Result<(), Errno> {
    sched_setaffinity(&vec![u64::MAX; (MAX_CPU / 64) as usize])
}

/// `struct sched_attr` (SCHED_ATTR_SIZE_VER1: with the utilization clamps, which
/// stay 0, so that the UTIL_CLAMP flags are accepted as with runc).
#[repr(C)]
struct SchedAttrC {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

/// sched_setattr(2) on this thread.
pub fn set_scheduler(a: &SchedAttr) -> Result<(), Errno> {
    let attr = SchedAttrC {
        size: std::mem::size_of::<SchedAttrC>() as u32,
        policy: a.policy,
        flags: a.flags,
        nice: a.nice,
        priority: a.priority,
        runtime: a.runtime,
        deadline: a.deadline,
        period: a.period,
        util_min: 0,
        util_max: 0,
    };
    // SAFETY: the kernel reads `attr.size` bytes from the live struct; pid 0 is
    // this thread, flags must be 0.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttrC, 0) };
    Errno::result(r).map(drop)
}

/// ioprio_set(IOPRIO_WHO_PROCESS, 0, value) (runc's call).
pub fn set_io_priority(value: u32) -> Result<(), Errno> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    // SAFETY: plain integers.
    let r = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    Errno::result(r).map(drop)
}

/// set_mempolicy(2) for this thread.
pub fn set_memory_policy(p: &MemoryPolicy) -> Result<(), Errno> {
    let mask = bitmask(&p.nodes);
    let (ptr, maxnode) = if p.nodes.is_empty() {
        (std::ptr::null(), 0)
    } else {
        // The kernel reads maxnode - 1 bits.
        (mask.as_ptr(), mask.len() * 64 + 1)
    };
    // SAFETY: the kernel reads at most (maxnode - 1) bits from the live mask.
    let r = unsafe { libc::syscall(libc::SYS_set_mempolicy, p.mode, ptr, maxnode) };
    Errno::result(r).map(drop)
}

/// Install a compiled seccomp filter on this process.
/// Load the filter; with `SECCOMP_FILTER_FLAG_NEW_LISTENER` returns the listener
/// fd (close-on-exec) for the seccomp agent.
pub fn load_seccomp(p: &SeccompProgram) -> Result<Option<OwnedFd>, String> {
    let mut filter: Vec<libc::sock_filter> = p
        .instructions
        .iter()
        .map(|i| libc::sock_filter {
            code: i.0,
            jt: i.1,
            jf: i.2,
            k: i.3,
        })
        .collect();
    let len = u16::try_from(filter.len())
        .map_err(|_| format!("seccomp filter too long ({} instructions)", filter.len()))?;
    let prog = libc::sock_fprog {
        len,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: seccomp(2) reads `len` instructions from `prog.filter`, which points to
    // the live vector above; the kernel copies the program before returning.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            p.flags as libc::c_ulong,
            &prog as *const libc::sock_fprog,
        )
    };
    if r < 0 {
        return Err(format!("load seccomp filter: {}", Errno::last()));
    }
    if !p.has_listener() {
        return Ok(None);
    }
    // SAFETY: with NEW_LISTENER, seccomp(2) returned a new fd (close-on-exec) that
    // nothing else owns.
    Ok(Some(unsafe {
        <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(r as i32)
    }))
}

/// Send a seccomp listener fd over `ch` ([`InitMessage::SeccompListener`]) and wait
/// for [`RuntimeMessage::SeccompDone`]: the agent has it. Runs under the filter:
/// SCMP_ACT_NOTIFY is refused for sendmsg and recvmsg, which this needs.
pub fn hand_over_listener(ch: &Channel, fd: OwnedFd) -> Result<(), String> {
    ch.send_with_fd(&InitMessage::SeccompListener { pid: None }, fd.as_fd())
        .map_err(|e| format!("send the seccomp listener: {e}"))?;
    drop(fd);
    match ch.recv::<RuntimeMessage>() {
        Ok(Some(r)) if r.message == RuntimeMessage::SeccompDone => Ok(()),
        Ok(Some(r)) => Err(format!("seccomp agent: unexpected message {:?}", r.message)),
        Ok(None) => Err("seccomp agent: the runtime could not hand over the listener".into()),
        Err(e) => Err(format!("seccomp agent: {e}")),
    }
}

/// Enter AppArmor profile `profile` at the next execve (runc's
/// `apparmor.ApplyProfile`): "exec PROFILE" into this thread's exec attribute,
/// the LSM-stacking path first, the old one on kernels without it.
fn apparmor_exec(profile: &str) -> Result<(), String> {
    let value = format!("exec {profile}");
    let mut last = None;
    for path in [
        "/proc/thread-self/attr/apparmor/exec",
        "/proc/thread-self/attr/exec",
    ] {
        match std::fs::OpenOptions::new().write(true).open(path) {
            Ok(mut f) => {
                return std::io::Write::write_all(&mut f, value.as_bytes()).map_err(|e| {
                    format!("apply AppArmor profile {profile:?} (is it loaded?): {e}")
                })
            }
            Err(e) => last = Some(e),
        }
    }
    Err(format!(
        "apply AppArmor profile {profile:?}: no AppArmor exec attribute: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

/// Enter SELinux context `label` at the next execve (runc's
/// `selinux.SetExecLabel`): the label into this thread's exec attribute
/// (SELinux's `/proc/thread-self/attr/exec`; the kernel refuses a context its
/// policy does not know with EINVAL).
fn selinux_exec(label: &str) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/thread-self/attr/exec")
        .map_err(|e| format!("apply SELinux label {label:?}: no exec attribute: {e}"))?;
    std::io::Write::write_all(&mut f, label.as_bytes()).map_err(|e| {
        format!("apply SELinux label {label:?} (is it valid in the loaded policy?): {e}")
    })
}

/// Move the preserved fds from [`PRESERVED_FDS_BASE`].. down to 3.. (without
/// close-on-exec). Whatever the helper still needs after this must not sit at
/// 3..3+count: see [`move_above_preserved`].
fn hand_over_preserved_fds(count: u32) -> Result<(), String> {
    for i in 0..count as i32 {
        // SAFETY: dup2 between fds; sources (BASE+i) are read before any later
        // target (3+j, j > i, is below BASE+j) could replace them.
        let r = unsafe { libc::dup2(PRESERVED_FDS_BASE + i, 3 + i) };
        if r < 0 {
            return Err(format!(
                "preserved fd {}: {}",
                3 + i,
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Re-home `fd` above the preserved fds (close-on-exec), so that handing them
/// over at 3.. cannot replace it. A no-op without preserved fds.
pub fn move_above_preserved(fd: OwnedFd, count: u32) -> Result<OwnedFd, String> {
    if count == 0 {
        return Ok(fd);
    }
    let min = PRESERVED_FDS_BASE + count as i32;
    if fd.as_raw_fd() >= min {
        return Ok(fd);
    }
    nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(min))
        .map(|raw| {
            // SAFETY: F_DUPFD_CLOEXEC just returned this new fd; we own it.
            unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) }
        })
        .map_err(|e| format!("move fd {} above the preserved fds: {e}", fd.as_raw_fd()))
}

/// Mark every fd above stderr close-on-exec: nothing of the runtime may leak into
/// the container's process.
pub fn close_fds_on_exec() {
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

/// Look up and exec args[0] (with the PATH of the process's env, like execvp);
/// returns the resolved path (if any) and the error.
pub fn exec(spec: &ProcessSpec) -> (Option<PathBuf>, Errno) {
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
        if arg0.contains('/') || !matches!(e, Errno::ENOENT | Errno::ENOTDIR | Errno::EACCES) {
            break;
        }
    }
    match last {
        Some((p, e)) => (Some(p), e),
        None => (None, Errno::ENOENT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fds_move_above_the_preserved_ones() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let low = r.as_raw_fd();
        // Nothing to preserve: left where it is.
        let r = move_above_preserved(r, 0).unwrap();
        assert_eq!(r.as_raw_fd(), low);
        // Above PRESERVED_FDS_BASE + count, still the same pipe, close-on-exec.
        let r = move_above_preserved(r, 40).unwrap();
        assert!(
            r.as_raw_fd() >= PRESERVED_FDS_BASE + 40,
            "{}",
            r.as_raw_fd()
        );
        let flags = nix::fcntl::fcntl(&r, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
        nix::unistd::write(&w, b"x").unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(nix::unistd::read(&r, &mut buf).unwrap(), 1);
    }

    #[test]
    fn listener_hand_over_waits_for_the_runtime() {
        let (rt, process) = Channel::pair().unwrap();
        let runtime = std::thread::spawn(move || {
            let m = rt.recv::<InitMessage>().unwrap().unwrap();
            assert_eq!(m.message, InitMessage::SeccompListener { pid: None });
            assert_eq!(m.fds.len(), 1);
            rt.send(&RuntimeMessage::SeccompDone).unwrap();
            // Second time: the runtime gives up (no agent) and closes.
            let m = rt.recv::<InitMessage>().unwrap().unwrap();
            assert_eq!(m.fds.len(), 1);
        });
        let fd = || OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        hand_over_listener(&process, fd()).unwrap();
        let e = hand_over_listener(&process, fd()).unwrap_err();
        assert!(e.contains("could not hand over"), "{e}");
        runtime.join().unwrap();
    }

    #[test]
    fn bitmask_words() {
        assert_eq!(bitmask(&[]), vec![0]);
        assert_eq!(bitmask(&[0, 2, 3]), vec![0b1101]);
        assert_eq!(bitmask(&[1, 64]), vec![0b10, 1]);
    }

    /// Each call acts on the calling thread only: run them in a thread of their
    /// own and read the values back with the kernel's getters.
    #[test]
    fn scheduler_io_priority_affinity_and_memory_policy_apply() {
        std::thread::spawn(|| {
            set_cpu_affinity(&[0]).unwrap();
            set_scheduler(&SchedAttr {
                policy: libc::SCHED_BATCH as u32,
                nice: 4,
                ..Default::default()
            })
            .unwrap();
            set_io_priority(2 << 13 | 6).unwrap();
            set_memory_policy(&MemoryPolicy {
                mode: 1,
                nodes: vec![0],
            })
            .unwrap();
            // SAFETY: getters writing into live, large enough buffers.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                assert_eq!(
                    libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set),
                    0
                );
                assert!(libc::CPU_ISSET(0, &set));
                assert_eq!(libc::CPU_COUNT(&set), 1);
                assert_eq!(libc::sched_getscheduler(0), libc::SCHED_BATCH);
                assert_eq!(libc::getpriority(libc::PRIO_PROCESS, 0), 4);
                assert_eq!(libc::syscall(libc::SYS_ioprio_get, 1, 0), 2 << 13 | 6);
                let mut mode: libc::c_int = -1;
                let mut nodes = [0u64; 16];
                assert_eq!(
                    libc::syscall(
                        libc::SYS_get_mempolicy,
                        &mut mode as *mut libc::c_int,
                        nodes.as_mut_ptr(),
                        1025,
                        std::ptr::null::<u8>(),
                        0
                    ),
                    0
                );
                assert_eq!((mode, nodes[0]), (1, 1));
            }
            reset_cpu_affinity().unwrap();
        })
        .join()
        .unwrap();
    }
}
