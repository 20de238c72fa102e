//! `lxcri-start NAME LXCPATH CONFIG INIT_EXE LOG [TIME_NS]`: the LXC monitor of one
//! container. With TIME_NS (a time namespace file) it first enters that namespace,
//! which the container then inherits: liblxc's own `lxc.namespace.share.time`
//! fails, as its intermediate process shares this one's memory and the kernel
//! lets only a process that shares it with nobody enter a time namespace.
//!
//! Started by the runtime with the container's stdio on fds 0-2 and init's end of the
//! init channel on fd 3. It puts a sealed copy of the static init at fd 4, then runs
//! liblxc's `start` in the foreground: this process becomes the LXC monitor and the
//! parent of the container's init. It exits with the init's exit status (0-255, or
//! 128+signal). Errors of its own go to LOG, never to the container's stdio.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::exit;

use lxcri_ffi::Container;
use lxcri_libexec::proto::{INIT_EXE_FD, MONITOR_PID_ENV};
use lxcri_libexec::status::decode_wait_status;
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};

/// Exit code when liblxc could not start the container at all.
const START_FAILED: i32 = 255;

fn log_line(log: &Path, msg: &str) {
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(log) {
        let _ = writeln!(f, "lxcri-start: {msg}");
    }
}

/// Copy the init executable into a sealed memfd at INIT_EXE_FD, so that nothing in
/// the container can ever write to the host's binary through /proc/1/exe.
fn seal_init(init_exe: &Path) -> Result<OwnedFd, String> {
    let mfd = memfd_create("lxcri-init", MFdFlags::MFD_ALLOW_SEALING)
        .map_err(|e| format!("memfd_create: {e}"))?;
    let mut dst = File::from(mfd);
    {
        // Closed before the dup2 below, which must not land on this fd's number.
        let mut src =
            File::open(init_exe).map_err(|e| format!("open {}: {e}", init_exe.display()))?;
        std::io::copy(&mut src, &mut dst).map_err(|e| format!("copy init: {e}"))?;
    }
    let mfd = OwnedFd::from(dst);
    fcntl(
        &mfd,
        FcntlArg::F_ADD_SEALS(
            SealFlag::F_SEAL_SEAL
                | SealFlag::F_SEAL_SHRINK
                | SealFlag::F_SEAL_GROW
                | SealFlag::F_SEAL_WRITE,
        ),
    )
    .map_err(|e| format!("seal init: {e}"))?;
    if mfd.as_raw_fd() == INIT_EXE_FD {
        return Ok(mfd);
    }
    // SAFETY: INIT_EXE_FD is reserved for the init executable by the protocol: the
    // runtime passes nothing at that number, so replacing it closes nothing we own.
    let fd = unsafe { nix::unistd::dup2_raw(&mfd, INIT_EXE_FD) }
        .map_err(|e| format!("dup2 init: {e}"))?;
    Ok(fd)
}

fn run(args: &[String]) -> Result<i32, String> {
    let (args, time_ns) = match args {
        [a @ .., t] if a.len() == 5 => (a, Some(t)),
        a => (a, None),
    };
    let [name, lxcpath, config, init_exe, log] = args else {
        return Err("usage: lxcri-start NAME LXCPATH CONFIG INIT_EXE LOG [TIME_NS]".into());
    };
    let log = Path::new(log);
    if let Some(ns) = time_ns {
        let f = File::open(ns).map_err(|e| format!("open time namespace {ns}: {e}"))?;
        // SAFETY: setns on an open fd; this helper is single-threaded.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWTIME) } < 0 {
            return Err(format!(
                "join the time namespace {ns}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    // A session of its own: a signal to the caller's process group must not reach
    // the monitor, which would forward it to the container's init.
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    // Kept open (not close-on-exec) until liblxc execs the init from it.
    let _init = seal_init(Path::new(init_exe))?;

    // For lxcri-hook at liblxc's mount hook, to find the init among its ancestors.
    std::env::set_var(MONITOR_PID_ENV, std::process::id().to_string());
    let mut c = Container::new(name, Path::new(lxcpath)).map_err(|e| e.to_string())?;
    c.clear_config().map_err(|e| e.to_string())?;
    c.load_config(Path::new(config))
        .map_err(|e| e.to_string())?;
    c.want_daemonize(false).map_err(|e| e.to_string())?;
    c.want_close_all_fds(false).map_err(|e| e.to_string())?;
    // liblxc maps user namespace ids with newuidmap/newgidmap when it finds
    // them on PATH, even as root, and those want root's ranges in /etc/subuid
    // and /etc/subgid. Without PATH it writes the maps itself, as root may
    // (and runc does). Nothing liblxc runs for us needs PATH: the init and
    // lxcri-hook are absolute paths, the container's env comes from the spec.
    std::env::remove_var("PATH");
    let started = c.start().map_err(|e| e.to_string())?;
    if !started {
        log_line(
            log,
            &format!(
                "liblxc failed to start container {name} (error_num {})",
                c.error_num()
            ),
        );
        return Ok(START_FAILED);
    }
    let code = decode_wait_status(c.error_num());
    // The runtime shows this line when the init ended before it reported in
    // (e.g. killed during liblxc's set-up), where liblxc logs no error.
    log_line(
        log,
        &format!("the container's init ended with status {code}"),
    );
    Ok(code)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => exit(code),
        Err(msg) => {
            if let Some(log) = args.get(4) {
                log_line(Path::new(log), &msg);
            } else {
                eprintln!("lxcri-start: {msg}");
            }
            exit(START_FAILED)
        }
    }
}
