//! Run a bundle in the foreground with runtime-core directly (a debugging aid):
//! `run LIBEXEC_DIR ROOT ID BUNDLE` (as root). Prints the init pid, starts the
//! container, waits for the start helper and prints its exit code.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

use runtime_core::{Container, RuntimeConfig, Stdio};

fn dup(fd: i32) -> OwnedFd {
    use std::os::fd::BorrowedFd;
    // SAFETY: fds 0-2 are open for the life of this process.
    unsafe { BorrowedFd::borrow_raw(fd) }
        .try_clone_to_owned()
        .unwrap()
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let mut cfg = RuntimeConfig::new(&a[1], &a[2]);
    cfg.log_level = std::env::var("LXC_LOG_LEVEL").unwrap_or("WARN".into());
    let stdio = Stdio::new(dup(0), dup(1), dup(2));
    let mut monitor = 0;
    let mut c = match Container::create(&cfg, &a[3], &PathBuf::from(&a[4]), stdio, &mut |p| {
        monitor = p
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("create: {e}: {:?}", std::error::Error::source(&e));
            std::process::exit(1);
        }
    };
    eprintln!("created: init pid {} monitor {monitor}", c.init_pid());
    match c.start(Duration::from_secs(10)) {
        Ok(None) => eprintln!("started"),
        Ok(Some(m)) => eprintln!("exec failed: {m}"),
        Err(e) => eprintln!("start: {e}"),
    }
    let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(monitor as i32), None).unwrap();
    eprintln!("monitor: {st:?}");
    if let Ok(dst) = std::env::var("KEEP_LOG") {
        let _ = std::fs::copy(c.state.rundir.join("lxc.log"), dst);
    }
    runtime_core::destroy(&c.state).unwrap();
}
