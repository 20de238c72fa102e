//! The `lxcri` CLI, command by command, with a busybox bundle and a private
//! `--root`. The test process plays conmon: a child subreaper that reaps the
//! container's init and execs (their pids come from `--pid-file`).

use anyhow::{ensure, Context, Result};
use lxcri_integration::cli::{CliEnv, Subreaper, LXCRI};
use serde_json::Value;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

fn check(r: Result<()>) {
    if let Err(e) = r {
        panic!("{e:#}");
    }
}

const LOOP_TRAP_TERM: &[&str] = &[
    "sh",
    "-c",
    "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.05; done",
];

fn ppid(pid: i32) -> Option<i32> {
    lxcri_integration::procfs::ppid(pid)
}

#[test]
fn lifecycle() {
    check((|| {
        let mut env = CliEnv::new()?;
        let reaper = Subreaper::new()?;
        let id = env.id("life");
        let b = env.bundle("life", LOOP_TRAP_TERM, |v| {
            v["annotations"] = serde_json::json!({"org.example/key": "value"});
        })?;
        let pid = env.create(&b, &id)?;
        let s = env.state(&id)?;
        ensure!(s["status"] == "created", "{s}");
        ensure!(s["pid"] == pid, "state pid = pid file: {s}");
        ensure!(s["bundle"] == b.to_str().unwrap(), "{s}");
        ensure!(s["annotations"]["org.example/key"] == "value", "{s}");
        // The container's init itself is ours (the subreaper's) now: the monitor
        // is gone and the pid file names the real init.
        ensure!(
            ppid(pid) == Some(std::process::id() as i32),
            "init reparented"
        );
        let out = env.lxcri(&["start", &id])?;
        ensure!(out.code == 0, "{out}");
        env.wait_status(&id, "running")?;
        let out = env.lxcri(&["start", &id])?;
        ensure!(out.code != 0 && out.stderr.contains("running"), "{out}");
        let out = env.lxcri(&["exec", &id, "sh", "-c", "echo out; exit 5"])?;
        ensure!(out.code == 5 && out.stdout == "out\n", "{out}");
        let out = env.lxcri(&["delete", &id])?;
        ensure!(out.code != 0 && out.stderr.contains("not stopped"), "{out}");
        env.lxcri_ok(&["kill", &id])?;
        ensure!(
            reaper.wait(pid, Duration::from_secs(10))? == 7,
            "exit status 7"
        );
        let s = env.wait_status(&id, "stopped")?;
        ensure!(s["pid"] == 0, "{s}");
        let out = env.lxcri(&["kill", &id, "KILL"])?;
        ensure!(
            out.code == 1 && out.stderr.contains("container not running"),
            "{out}"
        );
        env.lxcri_ok(&["delete", &id])?;
        for cmd in [
            &["state", &id][..],
            &["kill", &id],
            &["start", &id],
            &["delete", &id],
        ] {
            let out = env.lxcri(cmd)?;
            ensure!(
                out.code == 1 && out.stderr.contains("container does not exist"),
                "{cmd:?}: {out}"
            );
        }
        env.lxcri_ok(&["delete", "--force", &id])?;
        drop(reaper);
        env.finish()
    })());
}

#[test]
fn errors_version_and_log() {
    check((|| {
        let env = CliEnv::new()?;
        let out = env.lxcri(&["nosuchcommand"])?;
        ensure!(out.code != 0 && out.stderr.contains("Usage"), "{out}");
        let out = env.lxcri(&["create", "--nosuchflag", "x"])?;
        ensure!(out.code != 0 && out.stderr.contains("Usage"), "{out}");
        let out = env.lxcri(&["kill", "nope", "NOSIG"])?;
        ensure!(
            out.code == 1 && out.stderr.contains("invalid signal"),
            "{out}"
        );
        let out = env.lxcri_ok(&["--version"])?;
        let first = out.stdout.lines().next().unwrap_or_default();
        ensure!(first.starts_with("lxcri version "), "{out}");
        ensure!(
            out.stdout.contains("liblxc: 5.") && out.stdout.contains("spec: 1."),
            "{out}"
        );
        let log = env.dir.path().join("log.json");
        let out = env.lxcri(&[
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "kill",
            "nope",
        ])?;
        ensure!(
            out.code == 1 && out.stderr.contains("container does not exist"),
            "{out}"
        );
        let text = fs::read_to_string(&log)?;
        let last: Value = serde_json::from_str(text.lines().last().unwrap_or_default())
            .with_context(|| format!("JSON log line: {text}"))?;
        ensure!(last["level"] == "error", "{last}");
        ensure!(last["msg"] == "container does not exist", "{last}");
        ensure!(
            last["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{last}"
        );
        // CRI-O's and containerd's global flags are accepted.
        let out = env.lxcri(&["--systemd-cgroup", "--debug", "list", "-q"])?;
        ensure!(out.code == 0 && out.stdout.is_empty(), "{out}");
        env.finish()
    })());
}

#[test]
fn run_foreground_and_detached() {
    check((|| {
        let mut env = CliEnv::new()?;
        let id = env.id("run");
        let b = env.bundle("run", &["sh", "-c", "echo hello; exit 3"], |_| {})?;
        let out = env.lxcri(&["run", "--bundle", b.to_str().unwrap(), &id])?;
        ensure!(out.code == 3 && out.stdout == "hello\n", "{out}");
        let out = env.lxcri(&["state", &id])?;
        ensure!(out.stderr.contains("does not exist"), "run deletes: {out}");
        let b2 = env.bundle("run2", &["nosuchbinary"], |_| {})?;
        let out = env.lxcri(&["run", "-b", b2.to_str().unwrap(), &id])?;
        ensure!(
            out.code == 1 && out.stderr.contains("executable file not found in $PATH"),
            "{out}"
        );
        let b3 = env.bundle("run3", &["/bin/nope"], |_| {})?;
        let out = env.lxcri(&["create", "-b", b3.to_str().unwrap(), &id])?;
        ensure!(out.stderr.contains("no such file or directory"), "{out}");
        // A terminal without a console socket: lxcri holds the pty and copies.
        let b6 = env.bundle("run6", &["sh", "-c", "tty; exit 4"], |v| {
            v["process"]["terminal"] = Value::Bool(true);
        })?;
        let out = env.lxcri(&["run", "-b", b6.to_str().unwrap(), &id])?;
        ensure!(out.code == 4 && out.stdout.contains("/dev/pts/0"), "{out}");

        // Signals to a foreground run reach the container's init.
        let b5 = env.bundle("run5", LOOP_TRAP_TERM, |_| {})?;
        let mut fg = std::process::Command::new(LXCRI)
            .args([
                "--root",
                env.root.to_str().unwrap(),
                "run",
                "-b",
                b5.to_str().unwrap(),
                &id,
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()?;
        env.wait_status(&id, "running")?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(fg.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        let code = lxcri_integration::cmd::wait_timeout(&mut fg, Duration::from_secs(10));
        ensure!(code == Some(7), "forwarded TERM, trapped: {code:?}");

        let reaper = Subreaper::new()?;
        let b4 = env.bundle("run4", &["sleep", "30"], |_| {})?;
        let pidfile = env.dir.path().join("pid");
        env.lxcri_ok(&[
            "run",
            "-d",
            "--pid-file",
            pidfile.to_str().unwrap(),
            "-b",
            b4.to_str().unwrap(),
            &id,
        ])?;
        let pid: i32 = fs::read_to_string(&pidfile)?.trim().parse()?;
        env.wait_status(&id, "running")?;
        env.lxcri_ok(&["delete", "-f", &id])?;
        ensure!(
            reaper.wait(pid, Duration::from_secs(10))? == 137,
            "SIGKILLed"
        );
        drop(reaper);
        env.finish()
    })());
}

/// Receive one fd sent with SCM_RIGHTS on a connection to `listener`.
fn recv_fd(listener: &std::os::unix::net::UnixListener) -> Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        anyhow::ensure!(
            poll(&mut fds, PollTimeout::from(10_000u16))? == 1,
            "nothing connected to the console socket"
        );
    }
    let (conn, _) = listener.accept()?;
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel just installed this fd for us.
            return Ok(unsafe { OwnedFd::from_raw_fd(fds[0]) });
        }
    }
    anyhow::bail!("no fd received")
}

/// Read from a pty master until `want` shows up or EIO/timeout.
fn read_until(master: &OwnedFd, want: &str) -> Result<String> {
    let mut f = fs::File::from(master.try_clone()?);
    let mut got = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !got.contains(want) && std::time::Instant::now() < deadline {
        lxcri_libexec_wait(master)?;
        let mut buf = [0u8; 1024];
        match std::io::Read::read(&mut f, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    Ok(got)
}

fn lxcri_libexec_wait(fd: &OwnedFd) -> Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::from(10_000u16))?;
    Ok(())
}

#[test]
fn terminals_and_exec() {
    check((|| {
        let mut env = CliEnv::new()?;
        let reaper = Subreaper::new()?;
        let id = env.id("tty");
        let b = env.bundle("tty", &["sh", "-c", "tty; stty size; sleep 30"], |v| {
            v["process"]["terminal"] = Value::Bool(true);
            v["process"]["consoleSize"] = serde_json::json!({"height": 33, "width": 101});
        })?;
        let sock = env.dir.path().join("console.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock)?;
        let out = env.lxcri(&["create", "-b", b.to_str().unwrap(), &id])?;
        ensure!(
            out.code != 0 && out.stderr.contains("console socket"),
            "{out}"
        );
        env.lxcri_ok(&[
            "create",
            "-b",
            b.to_str().unwrap(),
            "--console-socket",
            sock.to_str().unwrap(),
            &id,
        ])?;
        let master = recv_fd(&listener)?;
        env.lxcri_ok(&["start", &id])?;
        let got = read_until(&master, "33 101")?;
        ensure!(
            got.contains("/dev/pts/0") && got.contains("33 101"),
            "{got:?}"
        );

        // exec --detach --pid-file: the process is ours (the subreaper's) and
        // carries its own exit status.
        let epid = env.dir.path().join("epid");
        env.lxcri_ok(&[
            "exec",
            "-d",
            "--pid-file",
            epid.to_str().unwrap(),
            &id,
            "sh",
            "-c",
            "sleep 0.3; exit 9",
        ])?;
        let pid: i32 = fs::read_to_string(&epid)?.trim().parse()?;
        ensure!(
            reaper.wait(pid, Duration::from_secs(10))? == 9,
            "exec exit 9"
        );

        // exec --process with a terminal over a console socket, cwd, env, user.
        let proc_file = env.dir.path().join("process.json");
        fs::write(
            &proc_file,
            serde_json::to_vec(&serde_json::json!({
                "terminal": true,
                "consoleSize": {"height": 12, "width": 34},
                "user": {"uid": 1000, "gid": 1000, "additionalGids": [2000]},
                "args": ["sh", "-c", "stty size; id; pwd; echo $FOO"],
                "env": ["PATH=/bin", "FOO=bar"],
                "cwd": "/tmp",
            }))?,
        )?;
        env.lxcri_ok(&[
            "exec",
            "-d",
            "--pid-file",
            epid.to_str().unwrap(),
            "--console-socket",
            sock.to_str().unwrap(),
            "--process",
            proc_file.to_str().unwrap(),
            &id,
        ])?;
        let m2 = recv_fd(&listener)?;
        let got = read_until(&m2, "bar")?;
        ensure!(
            got.contains("12 34")
                && got.contains("uid=1000")
                && got.contains("2000")
                && got.contains("/tmp")
                && got.contains("bar"),
            "{got:?}"
        );
        let pid: i32 = fs::read_to_string(&epid)?.trim().parse()?;
        ensure!(reaper.wait(pid, Duration::from_secs(10))? == 0);
        // Flags instead of a process file.
        let out = env.lxcri(&[
            "exec",
            "--cwd",
            "/etc",
            "-e",
            "A=1",
            "-u",
            "1000:1000",
            "--additional-gids",
            "3000",
            "--cap",
            "CAP_NET_RAW",
            "--no-new-privs",
            &id,
            "sh",
            "-c",
            "pwd; echo $A; id; grep NoNewPrivs /proc/self/status",
        ])?;
        ensure!(
            out.code == 0
                && out.stdout.contains("/etc\n1\nuid=1000")
                && out.stdout.contains("3000")
                && out.stdout.contains("NoNewPrivs:\t1"),
            "{out}"
        );
        let out = env.lxcri(&["exec", "-t", &id, "sh", "-c", "tty; exit 6"])?;
        ensure!(out.code == 6 && out.stdout.contains("/dev/pts/"), "{out}");
        let out = env.lxcri(&["exec", &id, "nosuch"])?;
        ensure!(
            out.code != 0 && out.stderr.contains("executable file not found"),
            "{out}"
        );
        env.lxcri_ok(&["delete", "--force", &id])?;
        drop(reaper);
        env.finish()
    })());
}

#[test]
fn pause_ps_events_update_kill_all() {
    check((|| {
        let mut env = CliEnv::new()?;
        let reaper = Subreaper::new()?;
        let id = env.id("ops");
        let b = env.bundle("ops", &["sh", "-c", "sleep 100 & sleep 100 & wait"], |_| {})?;
        let pid = env.create(&b, &id)?;
        env.lxcri_ok(&["start", &id])?;
        env.wait_status(&id, "running")?;
        env.lxcri_ok(&["pause", &id])?;
        env.wait_status(&id, "paused")?;
        let out = env.lxcri(&["pause", &id])?;
        ensure!(out.code != 0, "{out}");
        env.lxcri_ok(&["resume", &id])?;
        env.wait_status(&id, "running")?;
        let out = env.lxcri(&["resume", &id])?;
        ensure!(out.code != 0 && out.stderr.contains("not paused"), "{out}");

        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let pids = loop {
            let out = env.lxcri_ok(&["ps", "--format", "json", &id])?;
            let pids: Vec<i32> = serde_json::from_str(&out.stdout)?;
            if pids.len() >= 3 || std::time::Instant::now() > deadline {
                break pids;
            }
        };
        ensure!(pids.contains(&pid) && pids.len() == 3, "{pids:?}");
        let out = env.lxcri_ok(&["ps", &id])?;
        ensure!(
            out.stdout.starts_with("UID")
                && out
                    .stdout
                    .lines()
                    .filter(|l| l.ends_with("sleep 100"))
                    .count()
                    == 2,
            "{out}"
        );

        let out = env.lxcri_ok(&["events", "--stats", &id])?;
        let ev: Value = serde_json::from_str(&out.stdout)?;
        ensure!(ev["type"] == "stats" && ev["id"] == id.as_str(), "{ev}");
        ensure!(ev["data"]["pids"]["current"] == 3, "{ev}");
        ensure!(
            ev["data"]["memory"]["usage"]["usage"].as_u64() > Some(0),
            "{ev}"
        );
        // events without --stats streams until the container stops.
        let mut stream = std::process::Command::new(LXCRI)
            .args([
                "--root",
                env.root.to_str().unwrap(),
                "events",
                "--interval",
                "100ms",
                &id,
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()?;

        // update --resources - (CRI-O's call) and the individual flags.
        let cg = cgroup_of(&env, &id)?;
        let mut cmd = std::process::Command::new(LXCRI);
        cmd.args([
            "--root",
            env.root.to_str().unwrap(),
            "update",
            "--resources",
            "-",
            &id,
        ]);
        let out = lxcri_integration::cmd::run(
            &mut cmd,
            Some(br#"{"pids":{"limit":42}}"#),
            Duration::from_secs(30),
        )?;
        ensure!(out.code == 0, "{out}");
        let pids_max = find_cgroup_file(&cg, "pids.max")?;
        ensure!(fs::read_to_string(&pids_max)?.trim() == "42");
        env.lxcri_ok(&["update", "--pids-limit", "43", "--memory", "67108864", &id])?;
        ensure!(fs::read_to_string(&pids_max)?.trim() == "43");
        let mem = find_cgroup_file(&cg, "memory.limit_in_bytes")
            .or_else(|_| find_cgroup_file(&cg, "memory.max"))?;
        ensure!(fs::read_to_string(&mem)?.trim() == "67108864");

        // kill --all reaches every process; the init (sh waiting) goes last.
        env.lxcri_ok(&["kill", "--all", &id, "9"])?;
        ensure!(reaper.wait(pid, Duration::from_secs(10))? == 137);
        env.wait_status(&id, "stopped")?;
        let status = lxcri_integration::cmd::wait_timeout(&mut stream, Duration::from_secs(10));
        ensure!(
            status == Some(0),
            "events ends with the container: {status:?}"
        );
        let mut lines = String::new();
        std::io::Read::read_to_string(&mut stream.stdout.take().unwrap(), &mut lines)?;
        ensure!(
            lines.lines().count() >= 1 && lines.contains("\"stats\""),
            "{lines}"
        );
        env.lxcri_ok(&["delete", &id])?;
        drop(reaper);
        env.finish()
    })());
}

/// The container's cgroup path (relative to the hierarchies) from its state.
fn cgroup_of(env: &CliEnv, id: &str) -> Result<String> {
    let st: Value = serde_json::from_slice(&fs::read(env.root.join(id).join("state.json"))?)?;
    Ok(st["cgroup"].as_str().unwrap_or_default().to_string())
}

fn find_cgroup_file(rel: &str, name: &str) -> Result<std::path::PathBuf> {
    for root in lxcri_integration::procfs::cgroup_roots() {
        let p = root.join(rel).join(name);
        if p.exists() {
            return Ok(p);
        }
    }
    anyhow::bail!("no {name} for cgroup {rel}")
}

#[test]
fn list_features_spec() {
    check((|| {
        let mut env = CliEnv::new()?;
        let reaper = Subreaper::new()?;
        let (a, b) = (env.id("la"), env.id("lb"));
        let bundle = env.bundle("list", &["sleep", "30"], |_| {})?;
        env.lxcri_ok(&["create", "-b", bundle.to_str().unwrap(), &a])?;
        env.lxcri_ok(&["create", "-b", bundle.to_str().unwrap(), &b])?;
        env.lxcri_ok(&["start", &b])?;
        let out = env.lxcri_ok(&["list", "-q"])?;
        ensure!(out.stdout == format!("{a}\n{b}\n"), "{out}");
        let out = env.lxcri_ok(&["list"])?;
        ensure!(
            out.stdout.starts_with("ID")
                && out.stdout.contains("created")
                && out.stdout.contains("running"),
            "{out}"
        );
        let out = env.lxcri_ok(&["list", "--format", "json"])?;
        let v: Vec<Value> = serde_json::from_str(&out.stdout)?;
        ensure!(
            v.len() == 2 && v[0]["status"] == "created" && v[1]["status"] == "running",
            "{out}"
        );
        let out = env.lxcri(&["create", "-b", bundle.to_str().unwrap(), &a])?;
        ensure!(out.code == 1 && out.stderr.contains("exists"), "{out}");
        env.lxcri_ok(&["delete", &a])?;
        env.lxcri_ok(&["delete", "--force", &b])?;

        let out = env.lxcri_ok(&["features"])?;
        let f: Value = serde_json::from_str(&out.stdout)?;
        ensure!(f["ociVersionMin"] == "1.0.0", "{f}");
        ensure!(
            f["linux"]["namespaces"]
                .as_array()
                .is_some_and(|n| n.contains(&"pid".into())),
            "{f}"
        );
        ensure!(f["linux"]["seccomp"]["enabled"] == true, "{f}");
        ensure!(f["linux"]["apparmor"]["enabled"] == true, "{f}");
        ensure!(f["linux"]["selinux"]["enabled"] == true, "{f}");
        ensure!(f["hooks"].as_array().is_some_and(|h| h.len() == 6), "{f}");
        ensure!(f["linux"]["cgroup"]["v1"] == true, "{f}");

        let sb = env.dir.path().join("specbundle");
        fs::create_dir(&sb)?;
        env.lxcri_ok(&["spec", "-b", sb.to_str().unwrap()])?;
        let spec: Value = serde_json::from_slice(&fs::read(sb.join("config.json"))?)?;
        ensure!(
            spec["root"]["path"] == "rootfs" && spec["process"]["args"][0] == "sh",
            "{spec}"
        );
        let out = env.lxcri(&["spec", "-b", sb.to_str().unwrap()])?;
        ensure!(out.code == 1 && out.stderr.contains("exists"), "{out}");
        drop(reaper);
        env.finish()
    })());
}

/// A create killed at any point leaves something `delete --force` removes.
#[test]
fn delete_force_half_created() {
    check((|| {
        let mut env = CliEnv::new()?;
        let reaper = Subreaper::new()?;
        let id = env.id("half");
        let b = env.bundle("half", &["sleep", "30"], |_| {})?;
        // Like conmon, reap orphans (the killed create's monitor) at once; only
        // orphans: the lxcri commands this test runs are waited for by it.
        let _reaping = OrphanReaper::start();
        for delay_ms in [0u64, 5, 10, 20, 40, 80, 160] {
            let mut child = std::process::Command::new(LXCRI)
                .args([
                    "--root",
                    env.root.to_str().unwrap(),
                    "create",
                    "-b",
                    b.to_str().unwrap(),
                    &id,
                ])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()?;
            std::thread::sleep(Duration::from_millis(delay_ms));
            let _ = child.kill();
            let _ = child.wait();
            let out = env.lxcri(&["delete", "--force", &id])?;
            reaper.reap();
            ensure!(out.code == 0, "delay {delay_ms}ms: {out}");
            let out = env.lxcri(&["state", &id])?;
            ensure!(
                out.stderr.contains("does not exist"),
                "delay {delay_ms}ms: {out}"
            );
        }
        // A runtime dir with nothing in it (crash right after mkdir).
        fs::create_dir_all(env.root.join(&id))?;
        ensure!(env.state(&id)?["status"] == "creating");
        env.lxcri_ok(&["delete", "--force", &id])?;
        ensure!(!env.root.join(&id).exists());
        drop(reaper);
        env.finish()
    })());
}

/// SIGTERM ends a created (not started) container, as with runc: its waiting
/// init exits with 128+15 (runc's Go init exits 2, a Go runtime artifact of
/// being pid 1; the container stops either way), and SIGWINCH (default:
/// ignore) does not end it.
#[test]
fn sigterm_ends_created() {
    check((|| {
        let mut env = CliEnv::new()?;
        let reaper = Subreaper::new()?;
        let runc_root = env.dir.path().join("runc-root");
        let dir = env.dir.path().to_path_buf();
        let runc = |args: &[&str]| {
            let mut cmd = std::process::Command::new("runc");
            cmd.arg("--root").arg(&runc_root).args(args);
            lxcri_integration::cli::run_files(&mut cmd, &dir, Duration::from_secs(30))
        };
        let ids = [env.id("term-lxcri"), env.id("term-runc")];
        for (rt, id) in ["lxcri", "runc"].into_iter().zip(ids) {
            let b = env.bundle(&format!("term-{rt}"), &["sleep", "30"], |_| {})?;
            let pidfile = env.dir.path().join(format!("pid-{rt}"));
            let create = [
                "create",
                "--bundle",
                b.to_str().unwrap(),
                "--pid-file",
                pidfile.to_str().unwrap(),
                &id,
            ];
            let cmd = |args: &[&str]| {
                if rt == "lxcri" {
                    env.lxcri(args)
                } else {
                    runc(args)
                }
            };
            cmd(&create)?.ok()?;
            let pid: i32 = fs::read_to_string(&pidfile)?.trim().parse()?;
            cmd(&["kill", &id, "WINCH"])?.ok()?;
            std::thread::sleep(Duration::from_millis(200));
            let state: Value = serde_json::from_str(&cmd(&["state", &id])?.ok()?.stdout)?;
            ensure!(state["status"] == "created", "{rt} after SIGWINCH: {state}");
            cmd(&["kill", &id, "TERM"])?.ok()?;
            let code = reaper.wait(pid, Duration::from_secs(10))?;
            let want = if rt == "lxcri" { 143 } else { 2 };
            ensure!(code == want, "{rt}: init exit status {code}, want {want}");
            let state: Value = serde_json::from_str(&cmd(&["state", &id])?.ok()?.stdout)?;
            ensure!(state["status"] == "stopped", "{rt} after SIGTERM: {state}");
            cmd(&["delete", &id])?.ok()?;
        }
        drop(reaper);
        env.finish()
    })());
}

/// Hugepage limits on this hybrid host (hugetlb only in the unified
/// hierarchy): set at create and changed by `update --resources`, in the
/// container's cgroup of the unified hierarchy (runc 1.1.5 refuses the create).
#[test]
fn update_hugepage_limits_hybrid() {
    check((|| {
        let mut env = CliEnv::new()?;
        let reaper = Subreaper::new()?;
        let id = env.id("huge");
        let b = env.bundle("huge", &["sleep", "30"], |v| {
            v["linux"]["resources"]["hugepageLimits"] =
                serde_json::json!([{"pageSize": "2MB", "limit": 4194304}]);
        })?;
        env.lxcri_ok(&["create", "--bundle", b.to_str().unwrap(), &id])?;
        let cg = cgroup_of(&env, &id)?;
        let file = find_cgroup_file(&cg, "hugetlb.2MB.max")?;
        ensure!(
            file.starts_with("/sys/fs/cgroup/unified"),
            "hugetlb outside the unified hierarchy: {}",
            file.display()
        );
        ensure!(fs::read_to_string(&file)?.trim() == "4194304", "at create");
        let r = env.dir.path().join("huge.json");
        fs::write(
            &r,
            r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 8388608}]}"#,
        )?;
        env.lxcri_ok(&["update", "--resources", r.to_str().unwrap(), &id])?;
        ensure!(
            fs::read_to_string(&file)?.trim() == "8388608",
            "after update: {}",
            fs::read_to_string(&file)?
        );
        env.lxcri_ok(&["delete", "--force", &id])?;
        reaper.reap();
        drop(reaper);
        env.finish()
    })());
}

/// `--no-new-keyring`: the container keeps its caller's session keyring (as
/// with runc); without it, a new session keyring (liblxc's default, runc's
/// too).
#[test]
fn no_new_keyring() {
    check((|| {
        let mut env = CliEnv::new()?;
        // SAFETY: plain integer arguments: KEYCTL_GET_KEYRING_ID (0) of
        // KEY_SPEC_SESSION_KEYRING (-3), not created.
        let ours = unsafe { nix::libc::syscall(nix::libc::SYS_keyctl, 0, -3, 0) };
        ensure!(ours > 0, "keyctl: {}", std::io::Error::last_os_error());
        let id = env.id("keyring");
        let b = env.bundle("keyring", &["/lxe2e/keyring"], |v| {
            v["mounts"].as_array_mut().unwrap().push(serde_json::json!({
                "destination": "/lxe2e/keyring", "type": "bind",
                "source": lxcri_integration::registry::TESTIMG, "options": ["bind", "ro"]}));
        })?;
        let bundle = b.to_str().unwrap();
        let out = env.lxcri(&["run", "--no-new-keyring", "--bundle", bundle, &id])?;
        ensure!(
            out.code == 0 && out.stdout == format!("session={ours}\n"),
            "--no-new-keyring: {out} (ours {ours})"
        );
        let out = env.lxcri(&["run", "--bundle", bundle, &id])?;
        ensure!(
            out.code == 0
                && out.stdout.starts_with("session=")
                && out.stdout != format!("session={ours}\n"),
            "a new session keyring: {out} (ours {ours})"
        );
        env.finish()
    })());
}

/// Reaps the exited children of this process that are not `lxcri` commands
/// (orphans reparented to us, the subreaper), until dropped.
struct OrphanReaper {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OrphanReaper {
    fn start() -> OrphanReaper {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let me = std::process::id() as i32;
        let own = lxcri_integration::procfs::process(me)
            .map(|p| p.cmdline)
            .unwrap_or_default();
        let thread = std::thread::spawn(move || {
            // Only children seen alive as something else than an lxcri command
            // or a fork of ours not yet exec'd (a zombie's cmdline is empty).
            let mut orphans = std::collections::BTreeSet::new();
            while !s.load(Ordering::Relaxed) {
                for p in lxcri_integration::procfs::processes() {
                    if ppid(p.pid) == Some(me)
                        && !p.cmdline.is_empty()
                        && !p.cmdline.starts_with(LXCRI)
                        && p.cmdline != own
                    {
                        orphans.insert(p.pid);
                    }
                }
                orphans.retain(|pid| {
                    !matches!(
                        nix::sys::wait::waitpid(
                            nix::unistd::Pid::from_raw(*pid),
                            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                        ),
                        Ok(nix::sys::wait::WaitStatus::Exited(..))
                            | Ok(nix::sys::wait::WaitStatus::Signaled(..))
                            | Err(_)
                    )
                });
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        OrphanReaper {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for OrphanReaper {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Commands on one container wait for each other (flock on `<root>/.<id>.lock`).
#[test]
fn lock_serialises() {
    check((|| {
        let mut env = CliEnv::new()?;
        let id = env.id("lock");
        fs::create_dir_all(&env.root)?;
        let f = fs::File::create(env.root.join(format!(".{id}.lock")))?;
        let held =
            nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| e)?;
        let mut child = std::process::Command::new(LXCRI)
            .args(["--root", env.root.to_str().unwrap(), "state", &id])
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        std::thread::sleep(Duration::from_millis(500));
        ensure!(child.try_wait()?.is_none(), "state must wait for the lock");
        drop(held);
        let status = lxcri_integration::cmd::wait_timeout(&mut child, Duration::from_secs(10));
        ensure!(
            status == Some(1),
            "then fails (no such container): {status:?}"
        );
        let _ = fs::remove_file(env.root.join(format!(".{id}.lock")));
        env.finish()
    })());
}

/// `process.ioPriority`, `scheduler`, `execCPUAffinity` and
/// `linux.memoryPolicy` reach `lxcri exec` (the CLI's attach without an LXC
/// monitor): the container's values by default, an exec's own with
/// `--process` (runc's rules; runtime spec flag names).
#[test]
fn exec_scheduling_and_memory_policy() {
    check((|| {
        let mut env = CliEnv::new()?;
        let reaper = Subreaper::new()?;
        let id = env.id("sched");
        let b = env.bundle("sched", &["sleep", "1000"], |v| {
            v["process"]["ioPriority"] =
                serde_json::json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
            v["process"]["scheduler"] = serde_json::json!({"policy": "SCHED_BATCH", "nice": 4});
            v["process"]["execCPUAffinity"] = serde_json::json!({"final": "1"});
            v["linux"]["memoryPolicy"] = serde_json::json!({"mode": "MPOL_BIND", "nodes": "0"});
        })?;
        fs::copy(
            lxcri_integration::registry::TESTIMG,
            b.join("rootfs/bin/procinfo"),
        )?;
        let pid = env.create(&b, &id)?;
        env.lxcri_ok(&["start", &id])?;
        let out = env.lxcri(&["exec", &id, "/bin/procinfo"])?;
        ensure!(
            out.code == 0
                && out.stdout == "ioprio=2/6 policy=3 nice=4 rtprio=0 cpus=1 mempolicy=2 nodes=0\n",
            "{out}"
        );
        let proc_file = env.dir.path().join("process.json");
        fs::write(
            &proc_file,
            serde_json::to_vec(&serde_json::json!({
                "args": ["/bin/procinfo"],
                "cwd": "/",
                "user": {"uid": 0, "gid": 0},
                "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 0},
                "scheduler": {"policy": "SCHED_OTHER", "nice": -3,
                              "flags": ["SCHED_FLAG_RESET_ON_FORK"]},
                "execCPUAffinity": {"initial": "0"},
            }))?,
        )?;
        let out = env.lxcri(&["exec", "--process", proc_file.to_str().unwrap(), &id])?;
        ensure!(
            out.code == 0
                && out.stdout
                    == "ioprio=3/0 policy=0 nice=-3 rtprio=0 cpus=0 mempolicy=2 nodes=0\n",
            "{out}"
        );
        env.lxcri_ok(&["kill", &id, "KILL"])?;
        reaper.wait(pid, Duration::from_secs(10))?;
        env.lxcri_ok(&["delete", "--force", &id])?;
        drop(reaper);
        env.finish()
    })());
}

/// A shell snippet printing the fds 0..16 the shell has open, space-separated
/// (builtins only: a pipeline's pipes would show up in the list).
const LIST_FDS: &str = "for n in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do \
    [ -e /proc/$$/fd/$n ] && printf '%s ' $n; done; true";

/// `--preserve-fds N`: the caller's fds 3..3+N reach the container's process
/// at 3..3+N, and nothing else does — for `run`, for `create` + `start` (the
/// waiting init holds them) and for `exec`; same as runc.
#[test]
fn preserve_fds() {
    check((|| {
        let mut env = CliEnv::new()?;
        let reaper = Subreaper::new()?;
        let dir = env.dir.path().to_path_buf();
        let runc_root = dir.join("runc-root");
        let input = dir.join("input");
        fs::write(&input, "from-the-caller\n")?;
        let open_in = || -> Result<OwnedFd> { Ok(fs::File::open(&input)?.into()) };
        let open_out =
            |name: &str| -> Result<OwnedFd> { Ok(fs::File::create(dir.join(name))?.into()) };
        // Reads fd 3, writes it to fd 4, lists its own fds.
        // (Shell builtins only: a pipeline's pipes would show up in the list.)
        let script = format!("read l <&3; echo \"got $l\" >&4; {LIST_FDS}");
        let ids = [env.id("pfd-lxcri"), env.id("pfd-runc")];
        for (rt, id) in ["lxcri", "runc"].into_iter().zip(ids) {
            let runtime = |args: &[&str], fds: &[&OwnedFd]| {
                let mut cmd = if rt == "lxcri" {
                    let mut c = std::process::Command::new(LXCRI);
                    c.arg("--root").arg(&env.root);
                    c
                } else {
                    let mut c = std::process::Command::new("runc");
                    c.arg("--root").arg(&runc_root);
                    c
                };
                cmd.args(args);
                lxcri_integration::cmd::with_fds(&mut cmd, fds);
                lxcri_integration::cli::run_files(&mut cmd, &dir, Duration::from_secs(30))
            };
            // run, in the foreground.
            let b = env.bundle(&format!("pfd-run-{rt}"), &["sh", "-c", &script], |_| {})?;
            let (fin, fout) = (open_in()?, open_out(&format!("out-run-{rt}"))?);
            let out = runtime(
                &["run", "--preserve-fds", "2", "-b", b.to_str().unwrap(), &id],
                &[&fin, &fout],
            )?;
            ensure!(out.code == 0, "{rt} run: {out}");
            ensure!(out.stdout.trim() == "0 1 2 3 4", "{rt} run: fds {out}");
            let got = fs::read_to_string(dir.join(format!("out-run-{rt}")))?;
            ensure!(got == "got from-the-caller\n", "{rt} run wrote {got:?}");

            // create + start: the waiting init keeps the fd until start.
            let b = env.bundle(
                &format!("pfd-create-{rt}"),
                &["sh", "-c", "echo started >&3; sleep 30"],
                |_| {},
            )?;
            let fout = open_out(&format!("out-create-{rt}"))?;
            let pidfile = dir.join(format!("pid-{rt}"));
            let create = [
                "create",
                "--preserve-fds",
                "1",
                "--pid-file",
                pidfile.to_str().unwrap(),
                "-b",
                b.to_str().unwrap(),
                &id,
            ];
            runtime(&create, &[&fout])?.ok()?;
            drop(fout);
            runtime(&["start", &id], &[])?.ok()?;
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let out_create = dir.join(format!("out-create-{rt}"));
            while fs::read_to_string(&out_create)? != "started\n" {
                ensure!(
                    std::time::Instant::now() < deadline,
                    "{rt}: start wrote nothing"
                );
                std::thread::sleep(Duration::from_millis(50));
            }

            // exec: its own preserved fds.
            let (fin, fout) = (open_in()?, open_out(&format!("out-exec-{rt}"))?);
            let out = runtime(
                &["exec", "--preserve-fds", "2", &id, "sh", "-c", &script],
                &[&fin, &fout],
            )?;
            ensure!(out.code == 0, "{rt} exec: {out}");
            ensure!(out.stdout.trim() == "0 1 2 3 4", "{rt} exec: fds {out}");
            let got = fs::read_to_string(dir.join(format!("out-exec-{rt}")))?;
            ensure!(got == "got from-the-caller\n", "{rt} exec wrote {got:?}");

            // Not open in the caller: a clear error, nothing created.
            if rt == "lxcri" {
                let out = runtime(&["exec", "--preserve-fds", "1", &id, "true"], &[])?;
                ensure!(
                    out.code != 0 && out.stderr.contains("fd 3 is not open"),
                    "{out}"
                );
            }
            let pid: i32 = fs::read_to_string(&pidfile)?.trim().parse()?;
            runtime(&["kill", &id, "KILL"], &[])?.ok()?;
            reaper.wait(pid, Duration::from_secs(10))?;
            runtime(&["delete", &id], &[])?.ok()?;
        }
        drop(reaper);
        env.finish()
    })());
}

/// Socket activation (systemd starting the runtime with `LISTEN_FDS` and
/// `LISTEN_PID`), as runc: the listen fds reach the container's init at 3.., before
/// the `--preserve-fds` ones, with `LISTEN_FDS=N` and `LISTEN_PID=1` in its env;
/// variables naming another process pass nothing.
#[test]
fn socket_activation_listen_fds() {
    check((|| {
        let mut env = CliEnv::new()?;
        let dir = env.dir.path().to_path_buf();
        let runc_root = dir.join("runc-root");
        let input = dir.join("input");
        fs::write(&input, "from-the-socket\n")?;
        let ids: Vec<String> = ["la", "lb", "lc"]
            .iter()
            .flat_map(|n| [format!("{n}-lxcri"), format!("{n}-runc")])
            .map(|n| env.id(&n))
            .collect();
        let open = || -> Result<OwnedFd> { Ok(fs::File::open(&input)?.into()) };
        // Shell builtins only: a pipeline's pipes would show up in the list.
        let script = format!(
            "l=-; [ -e /proc/$$/fd/3 ] && read l <&3; echo \"$LISTEN_FDS/$LISTEN_PID/$l\"; {LIST_FDS}"
        );
        let b = env.bundle("listen", &["sh", "-c", &script], |_| {})?;
        for (i, rt) in ["lxcri", "runc"].into_iter().enumerate() {
            let root = if rt == "lxcri" { &env.root } else { &runc_root };
            let id = |n: usize| &ids[2 * n + i];
            // `$$` is the shell's pid, which the runtime's becomes at `exec`.
            let run = |listen_pid: &str, extra: &[&str], fds: &[&OwnedFd], id: &str| {
                let mut cmd = std::process::Command::new("sh");
                cmd.arg("-c")
                    .arg(format!(
                        "LISTEN_PID={listen_pid} LISTEN_FDS=1 exec \"$0\" \"$@\""
                    ))
                    .arg(if rt == "lxcri" { LXCRI } else { "runc" })
                    .arg("--root")
                    .arg(root)
                    .arg("run")
                    .args(extra)
                    .args(["-b", b.to_str().unwrap(), id]);
                lxcri_integration::cmd::with_fds(&mut cmd, fds);
                lxcri_integration::cli::run_files(&mut cmd, &dir, Duration::from_secs(30))
            };
            let out = run("$$", &[], &[&open()?], id(0))?;
            ensure!(out.code == 0, "{rt}: {out}");
            ensure!(
                out.stdout.trim() == "1/1/from-the-socket\n0 1 2 3",
                "{rt} with LISTEN_FDS=1: {out}"
            );
            // Listen fds first, then the preserved ones.
            let out = run("$$", &["--preserve-fds", "1"], &[&open()?, &open()?], id(1))?;
            ensure!(out.code == 0, "{rt}: {out}");
            ensure!(
                out.stdout.trim() == "1/1/from-the-socket\n0 1 2 3 4",
                "{rt} with LISTEN_FDS=1 and --preserve-fds 1: {out}"
            );
            // For another process: nothing passed.
            let out = run("1", &[], &[&open()?], id(2))?;
            ensure!(out.code == 0, "{rt}: {out}");
            ensure!(
                out.stdout.trim() == "//-\n0 1 2",
                "{rt} with another LISTEN_PID: {out}"
            );
        }
        env.finish()
    })());
}

/// `linux.seccomp.flags` SECCOMP_FILTER_FLAG_LOG: the kernel logs the actions
/// the filter takes (here an errno'd chdir of the init itself) as audit records
/// (type=1326, in the kernel log) naming the process; without the flag it logs
/// none. No reference runtime here: Debian's runc 1.1.5 refuses seccomp flags,
/// crun refuses this hybrid host's cgroups.
#[test]
fn seccomp_log_flag() {
    check((|| {
        let mut env = CliEnv::new()?;
        let reaper = Subreaper::new()?;
        for flag in [true, false] {
            let id = env.id(&format!("slog-{flag}"));
            let b = env.bundle(
                &format!("slog-{flag}"),
                &["sh", "-c", "cd /tmp; echo rc=$?"],
                |v| {
                    v["linux"]["seccomp"] = serde_json::json!({
                        "defaultAction": "SCMP_ACT_ALLOW",
                        "architectures": ["SCMP_ARCH_X86_64"],
                        "flags": if flag { vec!["SECCOMP_FILTER_FLAG_LOG"] } else { vec![] },
                        "syscalls": [{"names": ["chdir"], "action": "SCMP_ACT_ERRNO"}]
                    });
                },
            )?;
            let pid = env.create(&b, &id)?;
            env.lxcri_ok(&["start", &id])?;
            reaper.wait(pid, Duration::from_secs(10))?;
            env.lxcri_ok(&["delete", &id])?;
            // chdir is syscall 80 on x86_64; kauditd prints asynchronously.
            let mark = format!(" pid={pid} ");
            let logged = || -> Result<bool> {
                let out = std::process::Command::new("dmesg").output()?;
                ensure!(out.status.success(), "dmesg failed");
                Ok(String::from_utf8_lossy(&out.stdout).lines().any(|l| {
                    l.contains("type=1326") && l.contains(&mark) && l.contains(" syscall=80 ")
                }))
            };
            let wait = Duration::from_secs(if flag { 10 } else { 2 });
            let deadline = std::time::Instant::now() + wait;
            let mut seen = logged()?;
            while !seen && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
                seen = logged()?;
            }
            ensure!(
                seen == flag,
                "flag LOG {flag}: audit record for pid {pid} seen: {seen}"
            );
        }
        drop(reaper);
        env.finish()
    })());
}

/// `exec` into a container with its own user and time namespaces (the CLI's
/// container has no LXC monitor: lxcri-attach joins the init's namespaces
/// itself): the exec'd process is in the init's user and time namespaces,
/// sees the uid map and the clock offset, and is root inside.
#[test]
fn exec_joins_user_and_time_namespaces() {
    check((|| {
        let mut env = CliEnv::new()?;
        let reaper = Subreaper::new()?;
        let id = env.id("usertime");
        let b = env.bundle("usertime", &["sleep", "30"], |v| {
            let ns = v["linux"]["namespaces"].as_array_mut().unwrap();
            ns.push(serde_json::json!({"type": "user"}));
            ns.push(serde_json::json!({"type": "time"}));
            v["linux"]["uidMappings"] =
                serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            v["linux"]["gidMappings"] =
                serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            v["linux"]["timeOffsets"] =
                serde_json::json!({"boottime": {"secs": 86400, "nanosecs": 0}});
        })?;
        let pidfile = env.dir.path().join("pid");
        env.lxcri_ok(&[
            "run",
            "-d",
            "--pid-file",
            pidfile.to_str().unwrap(),
            "-b",
            b.to_str().unwrap(),
            &id,
        ])?;
        let pid: i32 = fs::read_to_string(&pidfile)?.trim().parse()?;
        let inode = |p: String| -> Result<String> {
            Ok(fs::read_link(&p)
                .with_context(|| p.clone())?
                .display()
                .to_string())
        };
        let (user, time) = (
            inode(format!("/proc/{pid}/ns/user"))?,
            inode(format!("/proc/{pid}/ns/time"))?,
        );
        ensure!(
            user != inode("/proc/self/ns/user".into())?,
            "no user namespace"
        );
        let out = env.lxcri_ok(&[
            "exec",
            &id,
            "sh",
            "-c",
            "readlink /proc/self/ns/user; readlink /proc/self/ns/time; cat /proc/self/uid_map; \
             cut -d' ' -f1 /proc/uptime; id -u",
        ])?;
        let lines: Vec<&str> = out.stdout.lines().collect();
        ensure!(lines.len() == 5, "{out}");
        ensure!(
            lines[0] == user && lines[1] == time,
            "namespaces {out} want {user} {time}"
        );
        let map: Vec<&str> = lines[2].split_whitespace().collect();
        ensure!(map == ["0", "100000", "65536"], "uid map {out}");
        let host_uptime: f64 = fs::read_to_string("/proc/uptime")?
            .split(' ')
            .next()
            .context("uptime")?
            .parse()?;
        let uptime: f64 = lines[3].parse()?;
        ensure!(
            uptime - host_uptime > 86000.0,
            "boottime offset: container {uptime}, host {host_uptime}"
        );
        ensure!(lines[4] == "0", "uid inside {out}");
        env.lxcri_ok(&["kill", &id, "KILL"])?;
        reaper.wait(pid, Duration::from_secs(10))?;
        env.lxcri_ok(&["delete", &id])?;
        drop(reaper);
        env.finish()
    })());
}

/// `--systemd-cgroup` on this host, where systemd is not PID 1: runc's
/// `slice:prefix:name` form is required (a cgroupfs path is an error like
/// runc's), and with it the create fails naming the missing systemd; nothing
/// is left (leak check). Without the flag the systemd form is refused with the
/// hint to select the driver. The driver itself runs in the systemd VM
/// (`systemd_vm::`).
#[test]
fn systemd_cgroup_without_systemd() {
    check((|| {
        let mut env = CliEnv::new()?;
        let id = env.id("sdcg");
        let b = env.bundle("sdcg", &["true"], |v| {
            v["linux"]["cgroupsPath"] = Value::String(format!("system.slice:lxe2e:{}", "x"));
        })?;
        let b = b.to_str().unwrap();
        let out = env.lxcri(&["--systemd-cgroup", "run", "-b", b, &id])?;
        ensure!(
            out.code == 1 && out.stderr.contains("systemd is not PID 1"),
            "{out}"
        );
        let out = env.lxcri(&["run", "-b", b, &id])?;
        ensure!(
            out.code == 1
                && out.stderr.contains("linux.cgroupsPath")
                && out.stderr.contains("systemd is not PID 1"),
            "{out}"
        );
        let b2 = env.bundle("sdcg2", &["true"], |v| {
            v["linux"]["cgroupsPath"] = Value::String("/lxe2e/x".into());
        })?;
        let out = env.lxcri(&[
            "--systemd-cgroup",
            "create",
            "-b",
            b2.to_str().unwrap(),
            &id,
        ])?;
        ensure!(
            out.code == 1
                && out.stderr.contains("linux.cgroupsPath")
                && out
                    .stderr
                    .contains("expected cgroupsPath to be of format \"slice:prefix:name\""),
            "{out}"
        );
        let out = env.lxcri(&["state", &id])?;
        ensure!(out.stderr.contains("does not exist"), "{out}");
        env.finish()
    })());
}

/// An id-mapped bind mount through the CLI (`uidMappings`/`gidMappings` that
/// swap host 0 and 1000): 1000's file is root's inside, root's is 1000's, and a
/// file root makes inside belongs to 1000 on the host. `lxcri features` says
/// so; a tmpfs with mappings is refused naming the field.
#[test]
fn idmapped_mount() {
    check((|| {
        use std::os::unix::fs::MetadataExt;
        let mut env = CliEnv::new()?;
        let id = env.id("idmap");
        let src = env.dir.path().join("idmapsrc");
        fs::create_dir(&src)?;
        fs::set_permissions(&src, std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
        fs::write(src.join("u1000"), "x")?;
        std::os::unix::fs::chown(src.join("u1000"), Some(1000), Some(1000))?;
        fs::write(src.join("root"), "x")?;
        let maps = serde_json::json!([
            {"containerID": 1000, "hostID": 0, "size": 1},
            {"containerID": 0, "hostID": 1000, "size": 1}
        ]);
        let script = "stat -c '%u:%g' /m/u1000 /m/root; touch /m/made";
        let b = env.bundle("idmap", &["sh", "-c", script], |v| {
            v["mounts"].as_array_mut().unwrap().push(serde_json::json!({
                "destination": "/m", "type": "bind", "source": src, "options": ["rbind", "ridmap"],
                "uidMappings": maps, "gidMappings": maps}));
        })?;
        let out = env.lxcri(&["run", "--bundle", b.to_str().unwrap(), &id])?;
        ensure!(out.code == 0 && out.stdout == "0:0\n1000:1000\n", "{out}");
        let md = fs::metadata(src.join("made"))?;
        ensure!((md.uid(), md.gid()) == (1000, 1000), "made: {md:?}");

        let out = env.lxcri_ok(&["features"])?;
        let f: Value = serde_json::from_str(&out.stdout)?;
        ensure!(
            f["linux"]["mountExtensions"]["idmap"]["enabled"] == Value::Bool(true),
            "{out}"
        );
        let b2 = env.bundle("idmap-tmpfs", &["true"], |v| {
            v["mounts"].as_array_mut().unwrap().push(serde_json::json!({
                "destination": "/t", "type": "tmpfs", "source": "tmpfs",
                "uidMappings": maps, "gidMappings": maps}));
        })?;
        let n = {
            let v: Value = serde_json::from_slice(&fs::read(b2.join("config.json"))?)?;
            v["mounts"].as_array().map(|a| a.len() - 1).unwrap_or(0)
        };
        let out = env.lxcri(&["run", "--bundle", b2.to_str().unwrap(), &id])?;
        ensure!(
            out.code != 0 && out.stderr.contains(&format!("mounts[{n}].uidMappings")),
            "{out}"
        );
        // A later mount below an id-mapped one: an order lxcri cannot keep
        // (id-mapped mounts are attached after liblxc's), refused naming it.
        let b3 = env.bundle("idmap-overlap", &["true"], |v| {
            let m = v["mounts"].as_array_mut().unwrap();
            m.push(serde_json::json!({
                "destination": "/m", "type": "bind", "source": src, "options": ["rbind"],
                "uidMappings": maps, "gidMappings": maps}));
            m.push(serde_json::json!({"destination": "/m/t", "type": "tmpfs", "source": "tmpfs"}));
        })?;
        let out = env.lxcri(&["run", "--bundle", b3.to_str().unwrap(), &id])?;
        ensure!(
            out.code != 0
                && out
                    .stderr
                    .contains(&format!("mounts[{}].destination", n + 1)),
            "{out}"
        );
        env.finish()
    })());
}
