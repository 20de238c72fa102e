//! The test-image program's modes, run as an ordinary process.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lxcri-testimg");

fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "did not exit");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn pause_exits_0_on_sigterm_and_sigint() {
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        let mut child = Command::new(BIN).arg0("/pause").spawn().unwrap();
        thread::sleep(Duration::from_millis(200));
        assert!(child.try_wait().unwrap().is_none(), "pause exited early");
        kill(Pid::from_raw(child.id() as i32), sig).unwrap();
        assert_eq!(wait_exit(&mut child).code(), Some(0), "after {sig}");
    }
}

#[test]
fn nnp_prints_effective_uid() {
    let out = Command::new(BIN).arg0("nnp").output().unwrap();
    let euid = nix::unistd::geteuid();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Effective uid: {euid}\n")
    );
}

#[test]
fn web_server_answers_200() {
    let pid_file = std::env::temp_dir().join(format!("lxcri-testimg-{}.pid", std::process::id()));
    let port = 18080 + (std::process::id() % 1000) as u16;
    let mut child = Command::new(BIN)
        .arg0("nginx")
        .args(["-p", &port.to_string(), "--pid-file"])
        .arg(&pid_file)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let response = loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
            let mut text = String::new();
            stream.read_to_string(&mut text).unwrap();
            break text;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "no listener");
        thread::sleep(Duration::from_millis(20));
    };
    let pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&pid_file);
    assert_eq!(pid.trim(), child.id().to_string(), "pid file");
    assert!(response.starts_with("HTTP/1.0 200 OK"), "{response}");
}

#[test]
fn procinfo_prints_scheduling_and_memory_policy() {
    use nix::libc;
    let mut cmd = Command::new(BIN);
    cmd.arg0("procinfo");
    // SAFETY: only async-signal-safe syscalls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let param = libc::sched_param { sched_priority: 0 };
            let mask: u64 = 1;
            let node: u64 = 1;
            let ok = libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) == 0
                && libc::setpriority(libc::PRIO_PROCESS, 0, 3) == 0
                && libc::syscall(libc::SYS_ioprio_set, 1, 0, 2 << 13 | 6) == 0
                && libc::syscall(libc::SYS_sched_setaffinity, 0, 8, &mask as *const u64) == 0
                && libc::syscall(libc::SYS_set_mempolicy, 1, &node as *const u64, 65) == 0;
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "ioprio=2/6 policy=3 nice=3 rtprio=0 cpus=0 mempolicy=1 nodes=0\n"
    );
}
