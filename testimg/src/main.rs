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
