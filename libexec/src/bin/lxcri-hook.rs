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

use std::io::{Read, Write};

use lxcri_libexec::channel::Channel;
use lxcri_libexec::hooks::run_hooks;
use lxcri_libexec::proto::{
    HookResult, HookRun, InitMessage, RuntimeMessage, INIT_CHANNEL_FD, MONITOR_PID_ENV,
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
    let (hooks, state) = match ch.recv::<RuntimeMessage>() {
        Ok(Some(r)) => match r.message {
            RuntimeMessage::RunHooks { hooks, state } => (hooks, state),
            m => return Err(format!("unexpected message {m:?}")),
        },
        Ok(None) => return Err("the runtime gave up (prestart/createRuntime failed)".into()),
        Err(e) => return Err(format!("receive hooks: {e}")),
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
