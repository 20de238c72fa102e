//! One static program behind the CRI test images (built offline from
//! busybox, see `integration/src/registry.rs`); what it does depends on the
//! name it is called by (argv[0]'s file name):
//!
//! - `pause`: the pod sandbox's pid 1. Sleeps until SIGTERM or SIGINT, then
//!   exits 0; reaps every child it inherits (zombies of a shared pid
//!   namespace) meanwhile.
//! - `nnp`: prints `Effective uid: <euid>` (installed set-uid root: shows
//!   whether no_new_privs stopped the escalation), like the e2e
//!   `nonewprivs` image.
//! - `nginx`, `httpd`: a tiny HTTP/1.0 server answering 200 to every
//!   request, on the port given by `-p PORT` (default 80); writes its pid to
//!   `/var/run/<name>.pid` (or `--pid-file PATH`). Stands in for the nginx/httpd images critest
//!   uses (those are only checked for "a web server answers 200").
//! - `procinfo`: prints one line with what the runtime set on it before its
//!   exec: `ioprio=<class>/<level> policy=<n> nice=<n> rtprio=<n> cpus=<list>
//!   mempolicy=<mode with flags> nodes=<list>` (ioprio_get, sched_getattr,
//!   sched_getaffinity, get_mempolicy; lists like "0-1,3", "-" when empty).
//! - `keyring`: prints `session=<serial>`, the id of its session keyring
//!   (keyctl KEYCTL_GET_KEYRING_ID), to tell a new one from an inherited one.

use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{geteuid, Pid};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let name = args
        .first()
        .and_then(|a| a.rsplit('/').next())
        .unwrap_or("pause")
        .to_string();
    let result = match name.as_str() {
        "nnp" => nnp(),
        "procinfo" => procinfo(),
        "keyring" => keyring(),
        "nginx" | "httpd" => web_server(&name, &args[1..]),
        _ => pause(),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{name}: {err}");
            ExitCode::from(1)
        }
    }
}

/// Blocks SIGTERM, SIGINT and SIGCHLD and waits for them synchronously:
/// SIGCHLD reaps every exited child, SIGTERM/SIGINT end the pause with 0.
fn pause() -> Result<ExitCode, String> {
    let mut set = SigSet::empty();
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD] {
        set.add(sig);
    }
    set.thread_block()
        .map_err(|e| format!("sigprocmask: {e}"))?;
    loop {
        match set.wait().map_err(|e| format!("sigwait: {e}"))? {
            Signal::SIGCHLD => reap(),
            _ => return Ok(ExitCode::SUCCESS),
        }
    }
}

/// Collects every child that has exited, without blocking.
fn reap() {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

fn nnp() -> Result<ExitCode, String> {
    println!("Effective uid: {}", geteuid());
    Ok(ExitCode::SUCCESS)
}

fn web_server(name: &str, args: &[String]) -> Result<ExitCode, String> {
    let mut port = 80u16;
    let mut pid_file = format!("/var/run/{name}.pid");
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "-p" {
            let value = it.next().ok_or("-p needs a port")?;
            port = value.parse().map_err(|e| format!("port {value:?}: {e}"))?;
        } else if arg == "--pid-file" {
            pid_file = it.next().ok_or("--pid-file needs a path")?.clone();
        }
    }
    let listener =
        TcpListener::bind(("0.0.0.0", port)).map_err(|e| format!("listen on {port}: {e}"))?;
    std::fs::write(&pid_file, format!("{}\n", std::process::id()))
        .map_err(|e| format!("{pid_file}: {e}"))?;
    println!("{name}: listening on port {port}");
    let body = format!("<html><body>{name} (lxcri test image)</body></html>\n");
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request);
        let response = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes());
    }
    Ok(ExitCode::SUCCESS)
}

/// "0-2,5" from sorted numbers.
fn ranges(ids: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            ids[i].to_string()
        } else {
            format!("{}-{}", ids[i], ids[j])
        });
        i = j + 1;
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(",")
    }
}

fn bits(words: &[u64]) -> Vec<usize> {
    (0..words.len() * 64)
        .filter(|b| words[b / 64] & (1 << (b % 64)) != 0)
        .collect()
}

fn keyring() -> Result<ExitCode, String> {
    use nix::libc;
    // KEYCTL_GET_KEYRING_ID (0) of KEY_SPEC_SESSION_KEYRING (-3), not created.
    // SAFETY: plain integer arguments.
    let id = unsafe { libc::syscall(libc::SYS_keyctl, 0, -3, 0) };
    if id < 0 {
        return Err(format!(
            "keyctl session keyring: {}",
            std::io::Error::last_os_error()
        ));
    }
    println!("session={id}");
    Ok(ExitCode::SUCCESS)
}

fn procinfo() -> Result<ExitCode, String> {
    use nix::libc;
    let last = || std::io::Error::last_os_error();
    // SAFETY: plain integers: IOPRIO_WHO_PROCESS (1), this thread.
    let ioprio = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, 0) };
    if ioprio < 0 {
        return Err(format!("ioprio_get: {}", last()));
    }
    // struct sched_attr, SCHED_ATTR_SIZE_VER1 (56 bytes): size, policy, flags,
    // nice, priority, runtime, deadline, period, util_min, util_max.
    let mut attr = [0u8; 56];
    // SAFETY: the kernel writes at most 56 bytes (the size we pass) to the buffer.
    let r = unsafe { libc::syscall(libc::SYS_sched_getattr, 0, attr.as_mut_ptr(), 56u32, 0u32) };
    if r < 0 {
        return Err(format!("sched_getattr: {}", last()));
    }
    let u32_at = |o: usize| u32::from_ne_bytes(attr[o..o + 4].try_into().unwrap_or_default());
    let (policy, nice, rtprio) = (u32_at(4), u32_at(16) as i32, u32_at(20));
    let mut cpus = [0u64; 16];
    // SAFETY: the kernel writes at most the 128 bytes we pass.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_getaffinity,
            0,
            std::mem::size_of_val(&cpus),
            cpus.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(format!("sched_getaffinity: {}", last()));
    }
    let mut mode: libc::c_int = 0;
    let mut nodes = [0u64; 16];
    // SAFETY: the kernel writes the mode and at most 1024 bits of node mask.
    let r = unsafe {
        libc::syscall(
            libc::SYS_get_mempolicy,
            &mut mode as *mut libc::c_int,
            nodes.as_mut_ptr(),
            1024 + 1,
            std::ptr::null::<u8>(),
            0,
        )
    };
    if r < 0 {
        return Err(format!("get_mempolicy: {}", last()));
    }
    println!(
        "ioprio={}/{} policy={policy} nice={nice} rtprio={rtprio} cpus={} mempolicy={mode} nodes={}",
        ioprio >> 13,
        ioprio & 0x1fff,
        ranges(&bits(&cpus)),
        ranges(&bits(&nodes)),
    );
    Ok(ExitCode::SUCCESS)
}
