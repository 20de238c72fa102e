//! podman (Debian's podman and conmon) with `--runtime /usr/local/bin/lxcri`,
//! an image imported offline from a busybox rootfs, all podman state in a
//! temp dir. Each test ends with `rm -a -f` and the leak check.

use anyhow::{ensure, Result};
use lxcri_integration::cli::{Podman, LXCRI, PODMAN_IMAGE as IMG};
use std::time::{Duration, Instant};

fn check(r: Result<()>) {
    if let Err(e) = r {
        panic!("{e:#}");
    }
}

fn podman() -> Result<Podman> {
    Podman::new(LXCRI)
}

#[test]
fn run_output_exit_codes_and_process() {
    check((|| {
        let p = podman()?;
        let out = p.podman(&["run", "--rm", IMG, "echo", "hello"])?;
        ensure!(out.code == 0 && out.stdout == "hello\n", "{out}");
        let out = p.podman(&["run", "--rm", IMG, "sh", "-c", "echo err >&2; exit 42"])?;
        ensure!(out.code == 42 && out.stderr.contains("err"), "{out}");
        let out = p.podman(&["run", "--rm", IMG, "nosuchbinary"])?;
        ensure!(out.code == 127, "missing binary: {out}");
        let out = p.podman(&["run", "--rm", IMG, "/etc/passwd"])?;
        ensure!(out.code == 126, "not executable: {out}");
        let out = p.podman(&[
            "run",
            "--rm",
            "-e",
            "FOO=bar",
            "-w",
            "/tmp",
            "-u",
            "1000:1000",
            "--group-add",
            "2000",
            "--hostname",
            "myhost",
            IMG,
            "sh",
            "-c",
            "echo $FOO; pwd; id; hostname",
        ])?;
        ensure!(
            out.code == 0
                && out
                    .stdout
                    .starts_with("bar\n/tmp\nuid=1000(test) gid=1000(test)")
                && out.stdout.contains(",2000")
                && out.stdout.ends_with("\nmyhost\n"),
            "{out}"
        );
        let out = p.podman(&["run", "--rm", "-t", IMG, "tty"])?;
        ensure!(out.code == 0 && out.stdout.contains("/dev/pts/0"), "{out}");
        let out = p.podman_stdin(&["run", "--rm", "-i", IMG, "cat"], b"from stdin\n")?;
        ensure!(out.code == 0 && out.stdout == "from stdin\n", "{out}");
        let out = p.podman(&["run", "--rm", "--read-only", IMG, "touch", "/x"])?;
        ensure!(out.code != 0 && out.stderr.contains("Read-only"), "{out}");
        let out = p.podman(&[
            "run",
            "--rm",
            "--tmpfs",
            "/mnt",
            IMG,
            "grep",
            " /mnt ",
            "/proc/mounts",
        ])?;
        ensure!(
            out.code == 0 && out.stdout.starts_with("tmpfs /mnt tmpfs"),
            "{out}"
        );
        let out = p.podman(&[
            "run",
            "--rm",
            "--cap-drop",
            "all",
            "--cap-add",
            "NET_RAW",
            IMG,
            "grep",
            "CapEff",
            "/proc/self/status",
        ])?;
        ensure!(out.stdout.contains("0000000000002000"), "{out}");
        p.finish()
    })());
}

/// The container's cgroup dir in `controller` (v1) or the unified hierarchy.
fn cgroup_file(
    p: &Podman,
    name: &str,
    controller: &str,
    file_v1: &str,
    file_v2: &str,
) -> Result<String> {
    let id = p.inspect(name, "{{.Id}}")?;
    let v1 = format!("/sys/fs/cgroup/{controller}/libpod_parent/libpod-{id}/{file_v1}");
    let v2 = format!("/sys/fs/cgroup/libpod_parent/libpod-{id}/{file_v2}");
    let path = if std::path::Path::new(&v1).exists() {
        v1
    } else {
        v2
    };
    Ok(std::fs::read_to_string(&path)?.trim().to_string())
}

#[test]
fn detached_exec_top_stats_pause_limits() {
    check((|| {
        let p = podman()?;
        p.podman_ok(&[
            "run",
            "-d",
            "--name",
            "d1",
            "-m",
            "64m",
            "--pids-limit",
            "50",
            IMG,
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 0.1; done",
        ])?;
        let pid: i32 = p.inspect("d1", "{{.State.Pid}}")?.parse()?;
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))?;
        ensure!(
            cmdline.starts_with("sh\0-c\0"),
            "inspect's Pid is the real init: {cmdline:?}"
        );
        // The init is conmon's child.
        let ppid = lxcri_integration::procfs::ppid(pid).unwrap_or(0);
        let parent = std::fs::read_to_string(format!("/proc/{ppid}/comm"))?;
        ensure!(parent.trim() == "conmon", "parent of the init: {parent}");
        ensure!(
            cgroup_file(&p, "d1", "memory", "memory.limit_in_bytes", "memory.max")? == "67108864"
        );
        ensure!(cgroup_file(&p, "d1", "pids", "pids.max", "pids.max")? == "50");

        let out = p.podman(&["exec", "d1", "sh", "-c", "echo in-exec; exit 3"])?;
        ensure!(out.code == 3 && out.stdout == "in-exec\n", "{out}");
        let out = p.podman(&["exec", "-t", "d1", "tty"])?;
        ensure!(out.code == 0 && out.stdout.contains("/dev/pts/"), "{out}");
        let out = p.podman_stdin(&["exec", "-i", "d1", "cat"], b"exec stdin\n")?;
        ensure!(out.code == 0 && out.stdout == "exec stdin\n", "{out}");
        let out = p.podman(&["exec", "d1", "nosuch"])?;
        ensure!(out.code == 127, "{out}");
        let out = p.podman(&["exec", "-d", "d1", "sleep", "1"])?;
        ensure!(out.code == 0, "{out}");

        let out = p.podman_ok(&["ps", "--format", "{{.Names}} {{.Status}}"])?;
        ensure!(out.stdout.starts_with("d1 Up"), "{out}");
        let out = p.podman_ok(&["top", "d1"])?;
        ensure!(out.stdout.contains("while true"), "{out}");
        let out = p.podman_ok(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.PIDs}} {{.MemUsage}}",
            "d1",
        ])?;
        ensure!(!out.stdout.starts_with("0 "), "{out}");

        p.podman_ok(&["pause", "d1"])?;
        ensure!(p.inspect("d1", "{{.State.Status}}")? == "paused");
        p.podman_ok(&["unpause", "d1"])?;
        ensure!(p.inspect("d1", "{{.State.Status}}")? == "running");

        let start = Instant::now();
        p.podman_ok(&["stop", "d1"])?;
        ensure!(
            start.elapsed() < Duration::from_secs(5),
            "trapped TERM stops at once"
        );
        ensure!(p.inspect("d1", "{{.State.ExitCode}}")? == "0");
        p.podman_ok(&["restart", "d1"])?;
        ensure!(p.inspect("d1", "{{.State.Status}}")? == "running");
        // SIGTERM ignored: the stop timeout ends in SIGKILL.
        p.podman_ok(&[
            "run",
            "-d",
            "--name",
            "d2",
            IMG,
            "sh",
            "-c",
            "trap '' TERM; while true; do sleep 0.1; done",
        ])?;
        let start = Instant::now();
        p.podman_ok(&["stop", "-t", "1", "d2"])?;
        ensure!(start.elapsed() >= Duration::from_secs(1));
        ensure!(p.inspect("d2", "{{.State.ExitCode}}")? == "137");
        p.podman_ok(&["start", "d2"])?;
        p.podman_ok(&["kill", "d2"])?;
        let out = p.podman_ok(&["wait", "d2"])?;
        ensure!(out.stdout.trim() == "137", "{out}");
        // rm -f of a running container.
        p.podman_ok(&["rm", "-f", "d1"])?;
        p.finish()
    })());
}

#[test]
fn volumes_and_shared_namespaces() {
    check((|| {
        let p = podman()?;
        let host = p.dir.path().join("hostdir");
        std::fs::create_dir(&host)?;
        std::fs::write(host.join("f"), "from host")?;
        let bind = format!("{}:/data", host.display());
        let out = p.podman(&[
            "run",
            "--rm",
            "-v",
            &bind,
            IMG,
            "sh",
            "-c",
            "cat /data/f; echo back > /data/g",
        ])?;
        ensure!(out.code == 0 && out.stdout == "from host", "{out}");
        ensure!(std::fs::read_to_string(host.join("g"))? == "back\n");
        p.podman_ok(&["volume", "create", "vol1"])?;
        p.podman_ok(&[
            "run",
            "--rm",
            "-v",
            "vol1:/v",
            IMG,
            "sh",
            "-c",
            "echo kept > /v/x",
        ])?;
        let out = p.podman(&["run", "--rm", "-v", "vol1:/v", IMG, "cat", "/v/x"])?;
        ensure!(out.stdout == "kept\n", "{out}");

        p.podman_ok(&[
            "run",
            "-d",
            "--name",
            "base",
            "--hostname",
            "basehost",
            IMG,
            "sleep",
            "100",
        ])?;
        let out = p.podman(&[
            "run",
            "--rm",
            "--pid",
            "container:base",
            "--ipc",
            "container:base",
            "--uts",
            "container:base",
            "--network",
            "container:base",
            IMG,
            "sh",
            "-c",
            "hostname; ps -o args | grep -c '^sleep 100'",
        ])?;
        ensure!(out.code == 0 && out.stdout == "basehost\n1\n", "{out}");

        // create + start -a.
        p.podman_ok(&["create", "--name", "c1", IMG, "echo", "attached"])?;
        let out = p.podman(&["start", "-a", "c1"])?;
        ensure!(out.code == 0 && out.stdout == "attached\n", "{out}");
        p.podman_ok(&["volume", "rm", "-f", "vol1"])?;
        p.finish()
    })());
}

/// `podman run/exec --preserve-fds 1`: podman hands its fd 3 to conmon, which
/// passes `--preserve-fds 1` to lxcri; the container's process reads it at 3.
#[test]
fn preserve_fds() {
    check((|| {
        let p = podman()?;
        let input = p.dir.path().join("preserved");
        std::fs::write(&input, "through podman\n")?;
        let fd = || -> Result<std::os::fd::OwnedFd> { Ok(std::fs::File::open(&input)?.into()) };
        let out = p.podman_fds(
            &[
                "run",
                "--rm",
                "--preserve-fds",
                "1",
                IMG,
                "cat",
                "/proc/self/fd/3",
            ],
            &[&fd()?],
        )?;
        ensure!(
            out.code == 0 && out.stdout == "through podman\n",
            "run: {out}"
        );
        p.podman_ok(&["run", "-d", "--name", "pfd", IMG, "sleep", "60"])?;
        let out = p.podman_fds(
            &[
                "exec",
                "--preserve-fds",
                "1",
                "pfd",
                "cat",
                "/proc/self/fd/3",
            ],
            &[&fd()?],
        )?;
        ensure!(
            out.code == 0 && out.stdout == "through podman\n",
            "exec: {out}"
        );
        p.finish()
    })());
}
