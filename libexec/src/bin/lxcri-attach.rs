//! `lxcri-attach NAME LXCPATH LOG`: runs one exec process in a running container.
//!
//! Started by the runtime with the process's stdio on fds 0-2 and a channel at fd 3
//! (see `lxcri_libexec::proto`). It receives the process spec, attaches to the
//! container with liblxc (every namespace of the init, moved into its cgroup), sets
//! the process up like the init does and execs it. It reports the process's host
//! pid (or why the exec failed), waits for it, and exits with its exit status
//! (0-255, or 128+signal). Single-threaded: liblxc forks here, never in the shim.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::process::exit;

use lxcri_ffi::Container;
use lxcri_libexec::channel::Channel;
use lxcri_libexec::proto::{InitMessage, RuntimeMessage, INIT_CHANNEL_FD};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

/// Exit code when the process could not even be attached.
const ATTACH_FAILED: i32 = 255;

fn log_line(log: &Path, msg: &str) {
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(log) {
        let _ = writeln!(f, "lxcri-attach: {msg}");
    }
}

fn run(args: &[String], ch: &Channel) -> Result<i32, String> {
    let [name, lxcpath, _log] = args else {
        return Err("usage: lxcri-attach NAME LXCPATH LOG".into());
    };
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    let (process, detach, init_pid, cgroup_procs) = match ch.recv::<RuntimeMessage>() {
        Ok(Some(r)) => match r.message {
            RuntimeMessage::Exec {
                process,
                detach,
                init_pid,
                cgroup_procs,
            } => (*process, detach, init_pid, cgroup_procs),
            m => return Err(format!("unexpected message {m:?}")),
        },
        Ok(None) => return Err("the runtime closed the channel".into()),
        Err(e) => return Err(format!("receive exec: {e}")),
    };
    // `execCPUAffinity.initial`: this helper, which enters the container, runs on
    // those CPUs (the attached child inherits them) until the process sets its
    // final affinity, as runc's exec does.
    if let Some(cpus) = process
        .cpu_affinity
        .as_ref()
        .and_then(|a| a.initial.as_ref())
    {
        lxcri_libexec::process::set_cpu_affinity(cpus)
            .map_err(|e| format!("error setting initial CPU affinity: {e}"))?;
    }
    let (r, w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    // The preserved fds go to 3.. at the exec: the error pipe must not be there.
    let w = lxcri_libexec::process::move_above_preserved(w, process.preserved_fds)?;
    let wfd = w.as_raw_fd();
    // The attached child sends its pty master back through this pair.
    let (console_rx, console_tx) = Channel::pair().map_err(|e| format!("socketpair: {e}"))?;
    // And its seccomp listener fd (SCMP_ACT_NOTIFY), through this one.
    let (seccomp_rx, seccomp_tx) = Channel::pair().map_err(|e| format!("socketpair: {e}"))?;
    // Used after the preserved fds went to 3..: not there.
    let seccomp_tx = Channel::from(lxcri_libexec::process::move_above_preserved(
        seccomp_tx.into_fd(),
        process.preserved_fds,
    )?);
    let listener = process.seccomp.as_ref().is_some_and(|p| p.has_listener());
    let mut c = Container::new(name, Path::new(lxcpath)).map_err(|e| e.to_string())?;
    let mut payload = || -> i32 {
        // In the attached child, inside the container.
        if process.terminal {
            match lxcri_libexec::process::open_console(process.console_size) {
                Ok(master) => {
                    let _ = console_tx.send_with_fd(&InitMessage::Ready, master.as_fd());
                }
                Err(message) => {
                    let _ = console_tx.send(&InitMessage::Error { message });
                    return lxcri_libexec::process::SETUP_FAILED;
                }
            }
        }
        let mut on_listener = |fd| lxcri_libexec::process::hand_over_listener(&seccomp_tx, fd);
        let (code, message) = lxcri_libexec::process::become_process(&process, &mut on_listener);
        let _ = writeln!(std::io::stderr(), "lxcri: {message}");
        // SAFETY: wfd is the pipe's write end, open in this (forked) child.
        let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(wfd) };
        let _ = f.write_all(message.as_bytes());
        code
    };
    let pid = match init_pid {
        None => c.attach(&mut payload).map_err(|e| e.to_string())?,
        Some(init) => attach_setns(init, &cgroup_procs, &mut payload)?,
    };
    drop(w);
    drop(console_tx);
    drop(seccomp_tx);
    let mut console = None;
    if process.terminal {
        match console_rx.recv_timeout::<InitMessage>(std::time::Duration::from_secs(30)) {
            Ok(Some(m)) if m.message == InitMessage::Ready => console = m.fds.into_iter().next(),
            Ok(Some(m)) => return Err(format!("console: {:?}", m.message)),
            Ok(None) => {
                return Err("the attached process died before its console was set up".into())
            }
            Err(e) => return Err(format!("console: {e}")),
        }
    }
    if listener {
        if let Err(e) = forward_listener(ch, &seccomp_rx, pid) {
            // Like runc's exec: the process does not run without its agent.
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
            return Err(e);
        }
    }
    drop(seccomp_rx);
    let mut err = String::new();
    let _ = std::fs::File::from(r).read_to_string(&mut err);
    let reply = if err.is_empty() {
        InitMessage::Started { pid }
    } else {
        InitMessage::Error { message: err }
    };
    let _ = match (&reply, &console) {
        (InitMessage::Started { .. }, Some(master)) => ch.send_with_fd(&reply, master.as_fd()),
        _ => ch.send(&reply),
    };
    drop(console);
    if detach {
        // The process is reparented to our caller's subreaper, which reaps it.
        return Ok(0);
    }
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("wait for {pid}: {e}")),
        }
    }
}

/// Pass the attached child's seccomp listener on to the runtime with the child's
/// host pid, and the runtime's answer back to the child. A child that failed
/// before loading its filter closes its end: nothing to forward (its error comes
/// on the result pipe).
fn forward_listener(ch: &Channel, child: &Channel, pid: i32) -> Result<(), String> {
    let m = match child.recv::<InitMessage>() {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(()),
        Err(e) => return Err(format!("receive the seccomp listener: {e}")),
    };
    let fd = match (m.message, m.fds.into_iter().next()) {
        (InitMessage::SeccompListener { .. }, Some(fd)) => fd,
        (m, _) => return Err(format!("unexpected message {m:?} from the process")),
    };
    ch.send_with_fd(&InitMessage::SeccompListener { pid: Some(pid) }, fd.as_fd())
        .map_err(|e| format!("send the seccomp listener: {e}"))?;
    drop(fd);
    match ch.recv::<RuntimeMessage>() {
        Ok(Some(r)) if r.message == RuntimeMessage::SeccompDone => {}
        Ok(Some(r)) => return Err(format!("unexpected message {:?}", r.message)),
        Ok(None) => return Err("the runtime could not reach the seccomp agent".into()),
        Err(e) => return Err(format!("seccomp agent: {e}")),
    }
    child
        .send(&RuntimeMessage::SeccompDone)
        .map_err(|e| format!("answer the process: {e}"))
}

/// Attach without liblxc (no LXC monitor to ask): join the container's cgroups
/// (our child inherits them), every namespace of its init that differs from ours
/// (one `setns` on a pidfd; user and time included), and fork the process, which
/// the pid namespace only takes for children. Returns the child's host pid.
fn attach_setns(
    init_pid: i32,
    cgroup_procs: &[String],
    payload: &mut dyn FnMut() -> i32,
) -> Result<i32, String> {
    use std::os::unix::fs::MetadataExt;
    let me = std::process::id().to_string();
    for p in cgroup_procs {
        std::fs::write(p, &me).map_err(|e| format!("join cgroup {p}: {e}"))?;
    }
    // SAFETY: pidfd_open takes two integers and returns a new fd or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, init_pid, 0) };
    if pidfd < 0 {
        return Err(format!(
            "pidfd_open {init_pid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    let pidfd =
        unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd as i32) };
    let mut flags = 0;
    // The kernel enters the user namespace first, whatever the order here; the
    // time namespace needs a single-threaded caller with its own memory (ours).
    for (ns, flag) in [
        ("user", libc::CLONE_NEWUSER),
        ("time", libc::CLONE_NEWTIME),
        ("mnt", libc::CLONE_NEWNS),
        ("uts", libc::CLONE_NEWUTS),
        ("ipc", libc::CLONE_NEWIPC),
        ("net", libc::CLONE_NEWNET),
        ("pid", libc::CLONE_NEWPID),
        ("cgroup", libc::CLONE_NEWCGROUP),
    ] {
        let theirs = std::fs::metadata(format!("/proc/{init_pid}/ns/{ns}"))
            .map_err(|e| format!("namespace {ns} of {init_pid}: {e}"))?;
        let ours = std::fs::metadata(format!("/proc/self/ns/{ns}"))
            .map_err(|e| format!("own namespace {ns}: {e}"))?;
        if theirs.ino() != ours.ino() || theirs.dev() != ours.dev() {
            flags |= flag;
        }
    }
    // SAFETY: setns on a valid pidfd with namespace flags; this process is
    // single-threaded, as joining a mount namespace requires.
    if unsafe { libc::setns(pidfd.as_raw_fd(), flags) } < 0 {
        return Err(format!(
            "join the namespaces of {init_pid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    drop(pidfd);
    // SAFETY: this helper is single-threaded; the child only runs the payload
    // (process setup and execve) and exits.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
        nix::unistd::ForkResult::Child => exit(payload()),
        nix::unistd::ForkResult::Parent { child } => Ok(child.as_raw()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // SAFETY: fd 3 is the channel by protocol; nothing else owns it.
    let ch = unsafe { Channel::from_raw_fd(INIT_CHANNEL_FD) };
    match run(&args, &ch) {
        Ok(code) => exit(code),
        Err(msg) => {
            let _ = ch.send(&InitMessage::Error {
                message: msg.clone(),
            });
            if let Some(log) = args.get(2) {
                log_line(Path::new(log), &msg);
            }
            exit(ATTACH_FAILED)
        }
    }
}
