//! `lxcri-init`: the container's pid 1 until Start, linked statically (images carry
//! no libc we could rely on).
//!
//! It talks to the runtime over the init channel (see `lxcri_libexec::proto`): it
//! announces itself, applies the pre-start setup (masked and read-only paths), waits
//! at the barrier for Start, then becomes the OCI process: rlimits, cwd, user,
//! capabilities, no_new_privs, and finally `execve` as the same pid.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::exit;

use lxcri_libexec::channel::Channel;
use lxcri_libexec::hooks::run_hooks;
use lxcri_libexec::process::SETUP_FAILED as INIT_FAILED;
use lxcri_libexec::proto::{
    DeviceKind, DeviceNode, InitMessage, InitSpec, ProcessSpec, RuntimeMessage, INIT_CHANNEL_FD,
    INIT_EXE_FD,
};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

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
    let mut spec = match ch.recv::<RuntimeMessage>() {
        Ok(Some(r)) => match r.message {
            RuntimeMessage::Setup { spec } => *spec,
            m => fail(&format!("unexpected message {m:?}")),
        },
        Ok(None) => exit(INIT_FAILED),
        Err(e) => fail(&format!("receive setup: {e}")),
    };
    let setup_error = |message: String| -> ! {
        let _ = ch.send(&InitMessage::Error {
            message: message.clone(),
        });
        fail(&message)
    };
    if let Err(message) = prepare(&spec) {
        setup_error(message);
    }
    let console = if spec.process.terminal {
        match lxcri_libexec::process::open_console(spec.process.console_size) {
            Ok(master) => Some(master),
            Err(message) => setup_error(message),
        }
    } else {
        None
    };
    if let Err(message) = seccomp_agent(&ch, &mut spec.process) {
        setup_error(message);
    }
    let ready = match &console {
        Some(master) => ch.send_with_fd(&InitMessage::Ready, std::os::fd::AsFd::as_fd(master)),
        None => ch.send(&InitMessage::Ready),
    };
    drop(console);
    if let Err(e) = ready {
        fail(&format!("ready: {e}"));
    }
    // The barrier: wait for Start. End of file means the runtime deleted us.
    // A signal meant to end the container ends it here too, as it ends
    // runc's waiting init (a pid 1 without handlers would ignore it).
    end_on_signals();
    let result_pipe = match ch.recv::<RuntimeMessage>() {
        Ok(Some(r)) => match (r.message, r.fds.into_iter().next()) {
            (RuntimeMessage::Start, Some(fd)) => fd,
            (RuntimeMessage::Detach, Some(listener)) => {
                detach(&ch);
                drop(ch);
                wait_start(&listener)
            }
            (m, _) => fail(&format!("unexpected message {m:?}")),
        },
        Ok(None) => exit(INIT_FAILED),
        Err(e) => fail(&format!("receive start: {e}")),
    };
    // The preserved fds go to 3.. at the exec: the result pipe must not be there.
    let result_pipe =
        match lxcri_libexec::process::move_above_preserved(result_pipe, spec.process.preserved_fds)
        {
            Ok(fd) => fd,
            Err(message) => fail(&message),
        };
    let h = &spec.hooks;
    if let Err(message) = run_hooks("startContainer", &h.start_container, &h.start_state, &[]) {
        report(result_pipe, &message);
        exit(INIT_FAILED)
    }
    let mut no_listener = |_fd: OwnedFd| Err("a second seccomp listener".to_string());
    let (code, message) = lxcri_libexec::process::become_process(&spec.process, &mut no_listener);
    report(result_pipe, &message);
    exit(code)
}

/// A filter with SCMP_ACT_NOTIFY rules is loaded here, before Ready, as runc
/// loads it before its create returns: the runtime hands the listener to the
/// agent at `listenerPath` (state "creating"), and a missing agent fails the
/// create. Loaded while the init still holds CAP_SYS_ADMIN (no no_new_privs
/// needed); the rest of the setup then runs under it. Other filters keep their
/// place, right before the exec.
fn seccomp_agent(ch: &Channel, process: &mut ProcessSpec) -> Result<(), String> {
    if !process.seccomp.as_ref().is_some_and(|p| p.has_listener()) {
        return Ok(());
    }
    let Some(program) = process.seccomp.take() else {
        return Ok(());
    };
    match lxcri_libexec::process::load_seccomp(&program)? {
        Some(fd) => lxcri_libexec::process::hand_over_listener(ch, fd),
        None => Err("seccomp: no listener fd".into()),
    }
}

/// The signals whose default action ends a process (SIGPIPE aside: a closed
/// channel is an error we report).
const ENDING_SIGNALS: &[libc::c_int] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGABRT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGTERM,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGPOLL,
    libc::SIGPWR,
];

extern "C" fn exit_on_signal(sig: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(128 + sig) }
}

/// Until the exec, an ending signal makes the init exit with 128+signal (the
/// status runc's shim reports for its killed init). execve resets caught
/// signals to their defaults, so the OCI process is not affected.
fn end_on_signals() {
    for &sig in ENDING_SIGNALS {
        // SAFETY: installing a handler that only calls _exit; the sigaction
        // struct is fully initialised.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = exit_on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
    }
}

/// The CLI's create ends the LXC monitor once the init is at the barrier, so that
/// the init is reparented to the caller's subreaper (conmon, a containerd shim):
/// liblxc made SIGKILL our parent-death signal, which must go first.
fn detach(ch: &Channel) {
    if let Err(e) = nix::sys::prctl::set_pdeathsig(None) {
        let _ = ch.send(&InitMessage::Error {
            message: format!("clear the parent-death signal: {e}"),
        });
        fail(&format!("clear the parent-death signal: {e}"));
    }
    if let Err(e) = ch.send(&InitMessage::Detached) {
        fail(&format!("detached: {e}"));
    }
}

/// Accept connections on the CLI's listening socket until one brings Start with
/// the result pipe. A connection that closes without it (a `start` that died) is
/// dropped and the init keeps waiting.
fn wait_start(listener: &OwnedFd) -> OwnedFd {
    use std::os::fd::AsRawFd;
    loop {
        let conn = match nix::sys::socket::accept(listener.as_raw_fd()) {
            Ok(fd) => fd,
            Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
            Err(e) => fail(&format!("accept start: {e}")),
        };
        // SAFETY: accept just returned this fd; nothing else owns it.
        let conn = Channel::from(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(conn) });
        if let Ok(Some(r)) = conn.recv::<RuntimeMessage>() {
            if let (RuntimeMessage::Start, Some(fd)) = (r.message, r.fds.into_iter().next()) {
                return fd;
            }
        }
    }
}

/// Tell the runtime and the container's stderr why the exec failed.
fn report(pipe: OwnedFd, message: &str) {
    let _ = writeln!(std::io::stderr(), "lxcri: {message}");
    let mut f = std::fs::File::from(pipe);
    let _ = f.write_all(message.as_bytes());
}

/// Pre-start setup, done while init still holds every capability.
fn prepare(spec: &InitSpec) -> Result<(), String> {
    for d in &spec.devices {
        create_device(d).map_err(|e| format!("create device {}: {e}", d.path))?;
    }
    undo_liblxc_boot_id().map_err(|e| format!("boot_id: {e}"))?;
    // liblxc made the new root tree rshared after pivot_root; runc's mounts
    // start from rslave and then get the spec's own propagation.
    let slave = MsFlags::MS_SLAVE | MsFlags::MS_REC;
    mount(None::<&str>, "/", None::<&str>, slave, None::<&str>)
        .map_err(|e| format!("make / rslave: {e}"))?;
    for (path, flags) in &spec.mount_propagation {
        let flags = MsFlags::from_bits_truncate(*flags as libc::c_ulong);
        mount(
            None::<&str>,
            path.as_str(),
            None::<&str>,
            flags,
            None::<&str>,
        )
        .map_err(|e| format!("set the propagation of {path}: {e}"))?;
    }
    for path in &spec.recursive_readonly {
        recursive_readonly(path).map_err(|e| format!("make {path} recursively read-only: {e}"))?;
    }
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
    if let Some(flags) = spec.rootfs_propagation {
        // runc applies linux.rootfsPropagation to / after pivot_root.
        let flags = MsFlags::from_bits_truncate(flags as libc::c_ulong);
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .map_err(|e| format!("set the propagation of /: {e}"))?;
    }
    Ok(())
}

/// liblxc bind-mounts a random boot id (kept in /dev/.lxc-boot-id) over
/// /proc/sys/kernel/random/boot_id; runc shows the host's. Undo it.
fn undo_liblxc_boot_id() -> Result<(), Errno> {
    const MOCK: &str = "/dev/.lxc-boot-id";
    if std::fs::symlink_metadata(MOCK).is_err() {
        return Ok(());
    }
    match nix::mount::umount2(
        "/proc/sys/kernel/random/boot_id",
        nix::mount::MntFlags::MNT_DETACH,
    ) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(e),
    }
    std::fs::remove_file(MOCK).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

/// mknod a `linux.devices` node (after pivot_root: paths resolve inside the
/// container), as runc does: parents 0755, mode and owner from the spec; a node
/// that exists already is left alone.
fn create_device(d: &DeviceNode) -> Result<(), Errno> {
    use nix::sys::stat::{Mode, SFlag};
    let path = Path::new(&d.path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    }
    let kind = match d.kind {
        DeviceKind::Char => SFlag::S_IFCHR,
        DeviceKind::Block => SFlag::S_IFBLK,
        DeviceKind::Fifo => SFlag::S_IFIFO,
    };
    let mode = Mode::from_bits_truncate(d.mode as libc::mode_t);
    let dev = nix::sys::stat::makedev(d.major, d.minor);
    match nix::sys::stat::mknod(path, kind, mode, dev) {
        Ok(()) => {}
        Err(Errno::EEXIST) => return Ok(()),
        Err(e) => return Err(e),
    }
    // The umask applied to mknod's mode: set the bits exactly. (Nothing else runs
    // in the container yet: the node we just made is still there.)
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        path,
        mode,
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )?;
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        path,
        Some(nix::unistd::Uid::from_raw(d.uid)),
        Some(nix::unistd::Gid::from_raw(d.gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
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

/// `rro`: every mount at and below `p` read-only (mount_setattr, AT_RECURSIVE).
fn recursive_readonly(p: &str) -> Result<(), Errno> {
    /// struct mount_attr (linux/mount.h).
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    let path = std::ffi::CString::new(p).map_err(|_| Errno::EINVAL)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads a NUL-terminated path and `size` bytes of a
    // valid, initialized mount_attr, both alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(r).map(drop)
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
