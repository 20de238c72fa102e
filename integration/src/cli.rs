//! Harness for the `lxcri` CLI tests and the podman tests: the installed
//! `/usr/local/bin/lxcri` with a private `--root`, busybox bundles, podman with
//! all its state and configuration in a temp dir, and the leak checker.

use crate::cmd::{wait_timeout, Output, TIMEOUT};
use crate::leaks::Snapshot;
use crate::rootfs::busybox_rootfs;
use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The CLI as `make install-bin` installs it.
pub const LXCRI: &str = "/usr/local/bin/lxcri";

/// Runs `cmd` with stdout/stderr in files (never pipes: a container started by
/// the command inherits them and would hold a pipe open).
pub fn run_files(cmd: &mut Command, dir: &Path, timeout: Duration) -> Result<Output> {
    let what = format!("{cmd:?}");
    let out_p = dir.join(".cmd-out");
    let err_p = dir.join(".cmd-err");
    cmd.stdin(Stdio::null())
        .stdout(fs::File::create(&out_p)?)
        .stderr(fs::File::create(&err_p)?);
    let mut child = cmd.spawn().with_context(|| format!("spawn {what}"))?;
    let code = match wait_timeout(&mut child, timeout) {
        Some(c) => c,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} timed out after {timeout:?}");
        }
    };
    let out = Output {
        code,
        stdout: fs::read_to_string(&out_p).unwrap_or_default(),
        stderr: fs::read_to_string(&err_p).unwrap_or_default(),
    };
    let _ = fs::remove_file(out_p);
    let _ = fs::remove_file(err_p);
    Ok(out)
}

/// One CLI test: a temp dir with the runtime root and the bundles.
pub struct CliEnv {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    snapshot: Snapshot,
    ids: Vec<String>,
    /// `finish` ran (it checks for leaks and cleans up itself).
    finished: bool,
}

impl CliEnv {
    pub fn new() -> Result<Self> {
        ensure!(
            Path::new(LXCRI).exists(),
            "{LXCRI} is missing: run `make install-bin`"
        );
        ensure!(nix::unistd::geteuid().is_root(), "the CLI tests need root");
        let dir = tempfile::Builder::new().prefix("lxcri-cli-").tempdir()?;
        let root = dir.path().join("root");
        Ok(CliEnv {
            snapshot: Snapshot::take_host()?,
            dir,
            root,
            ids: Vec::new(),
            finished: false,
        })
    }

    /// A unique container id for this test (tracked for the leak check).
    pub fn id(&mut self, name: &str) -> String {
        let id = format!("cli-{name}-{}", std::process::id());
        self.ids.push(id.clone());
        id
    }

    /// A busybox bundle running `args`, from `lxcri spec`, without a terminal,
    /// with a writable rootfs; `edit` changes the config further.
    pub fn bundle(&self, name: &str, args: &[&str], edit: impl Fn(&mut Value)) -> Result<PathBuf> {
        let b = self.dir.path().join(format!("bundle-{name}"));
        busybox_rootfs(&b.join("rootfs"))?;
        self.lxcri_ok(&["spec", "--bundle", b.to_str().unwrap()])?;
        let p = b.join("config.json");
        let mut v: Value = serde_json::from_slice(&fs::read(&p)?)?;
        v["process"]["terminal"] = Value::Bool(false);
        v["process"]["args"] = serde_json::json!(args);
        v["root"]["readonly"] = Value::Bool(false);
        edit(&mut v);
        fs::write(&p, serde_json::to_vec_pretty(&v)?)?;
        Ok(b)
    }

    /// `lxcri --root <root> args...`.
    pub fn lxcri(&self, args: &[&str]) -> Result<Output> {
        let mut cmd = Command::new(LXCRI);
        cmd.arg("--root").arg(&self.root).args(args);
        run_files(&mut cmd, self.dir.path(), TIMEOUT)
    }

    pub fn lxcri_ok(&self, args: &[&str]) -> Result<Output> {
        self.lxcri(args)?.ok()
    }

    /// `lxcri create` of `bundle` as `id` with a pid file; the init's pid.
    pub fn create(&self, bundle: &Path, id: &str) -> Result<i32> {
        let pidfile = self.dir.path().join(format!("pid-{id}"));
        self.lxcri_ok(&[
            "create",
            "--bundle",
            bundle.to_str().context("bundle path")?,
            "--pid-file",
            pidfile.to_str().context("pid file path")?,
            id,
        ])?;
        Ok(fs::read_to_string(&pidfile)?.trim().parse()?)
    }

    /// `lxcri state` as JSON.
    pub fn state(&self, id: &str) -> Result<Value> {
        let out = self.lxcri_ok(&["state", id])?;
        serde_json::from_str(&out.stdout).with_context(|| format!("state JSON: {out}"))
    }

    /// Polls `state` until the status is `want`. A container that does not
    /// exist yet (a `run` started in the background is still creating it)
    /// counts as "not yet".
    pub fn wait_status(&self, id: &str, want: &str) -> Result<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.lxcri(&["state", id])?;
            let s = if out.code == 0 {
                serde_json::from_str(&out.stdout).with_context(|| format!("state JSON: {out}"))?
            } else if out.stderr.contains("does not exist") {
                Value::Null
            } else {
                bail!("state {id}: {out}");
            };
            if s["status"] == want {
                return Ok(s);
            }
            if std::time::Instant::now() > deadline {
                bail!("{id} never became {want}: {s} (last: {out})");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every container deleted; nothing left (processes, cgroups, mounts, the
    /// runtime root holds nothing).
    pub fn finish(mut self) -> Result<()> {
        self.finished = true;
        let r = self
            .snapshot
            .check_host(&self.ids, std::slice::from_ref(&self.root));
        if r.is_err() {
            for id in &self.ids {
                let _ = self.lxcri(&["delete", "--force", id]);
            }
            self.snapshot.clean_up(&self.ids);
        }
        r
    }
}

/// A test that failed before `finish` still removes its containers and what
/// they left (cgroups, processes), so that later tests start clean.
impl Drop for CliEnv {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        for id in &self.ids {
            let _ = self.lxcri(&["delete", "--force", id]);
        }
        self.snapshot.clean_up(&self.ids);
    }
}

/// While alive, this test process is a child subreaper (as conmon and the
/// containerd shims are): orphaned container processes become our children.
/// Drop reaps what is left and turns it off, so that later tests are not
/// affected.
pub struct Subreaper;

impl Subreaper {
    pub fn new() -> Result<Self> {
        nix::sys::prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER")?;
        Ok(Subreaper)
    }

    /// Wait for child `pid` (an orphan reparented to us); its exit code or
    /// 128+signal.
    pub fn wait(&self, pid: i32, timeout: Duration) -> Result<i32> {
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, c)) => return Ok(c),
                Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
                Ok(_) => {}
                Err(e) => bail!("wait for {pid}: {e}"),
            }
            if std::time::Instant::now() > deadline {
                bail!("{pid} did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Subreaper {
    /// Reap every child that has exited.
    pub fn reap(&self) {
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        while let Ok(s) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            if s == WaitStatus::StillAlive {
                break;
            }
        }
    }
}

impl Drop for Subreaper {
    fn drop(&mut self) {
        let _ = nix::sys::prctl::set_child_subreaper(false);
        // Orphans still running stay our children; the leak check reports them.
        self.reap();
    }
}

/// podman with everything in a temp dir: storage (vfs), libpod's tmp dir,
/// containers.conf (cgroupfs, the sandbox's ulimits, lxcri as runtime), and
/// an image imported from a busybox rootfs.
pub struct Podman {
    pub dir: tempfile::TempDir,
    snapshot: Snapshot,
    pub runtime: String,
    finished: bool,
}

/// The imported test image.
pub const PODMAN_IMAGE: &str = "localhost/lxcri-busybox:latest";

impl Podman {
    /// `runtime`: the OCI runtime binary podman calls (lxcri, or crun/runc to
    /// compare).
    pub fn new(runtime: &str) -> Result<Self> {
        ensure!(Path::new(runtime).exists(), "{runtime} is missing");
        for tool in ["podman", "conmon"] {
            let found = Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {tool}"))
                .output()?;
            ensure!(
                found.status.success(),
                "{tool} is missing: run scripts/install-deps.sh"
            );
        }
        let dir = tempfile::Builder::new().prefix("lxcri-podman-").tempdir()?;
        let d = dir.path();
        let name = Path::new(runtime)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        fs::write(
            d.join("containers.conf"),
            format!(
                r#"[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "{name}"
# podman then passes --log-format=json --log FILE and reads errors from it.
runtime_supports_json = ["{name}"]
[engine.runtimes]
{name} = ["{runtime}"]
"#
            ),
        )?;
        fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{0}/runroot\"\ngraphroot = \"{0}/graphroot\"\n",
                d.display()
            ),
        )?;
        let p = Podman {
            snapshot: Snapshot::take_host()?,
            dir,
            runtime: runtime.to_string(),
            finished: false,
        };
        let rootfs = p.dir.path().join("image-rootfs");
        busybox_rootfs(&rootfs)?;
        let tar = p.dir.path().join("image.tar");
        crate::cmd::must(
            Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg("-cf")
                .arg(&tar)
                .arg("."),
        )?;
        p.podman_ok(&["import", tar.to_str().unwrap(), PODMAN_IMAGE])?;
        Ok(p)
    }

    fn command(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .arg("--runtime")
            .arg(&self.runtime)
            .args(args);
        cmd
    }

    pub fn podman(&self, args: &[&str]) -> Result<Output> {
        run_files(&mut self.command(args), self.dir.path(), TIMEOUT)
    }

    /// With `fds` at 3, 4, ... (for `--preserve-fds`).
    pub fn podman_fds(&self, args: &[&str], fds: &[&std::os::fd::OwnedFd]) -> Result<Output> {
        let mut cmd = self.command(args);
        crate::cmd::with_fds(&mut cmd, fds);
        run_files(&mut cmd, self.dir.path(), TIMEOUT)
    }

    /// With `stdin` fed through a pipe.
    pub fn podman_stdin(&self, args: &[&str], stdin: &[u8]) -> Result<Output> {
        crate::cmd::run(&mut self.command(args), Some(stdin), TIMEOUT)
    }

    pub fn podman_ok(&self, args: &[&str]) -> Result<Output> {
        self.podman(args)?.ok()
    }

    /// `podman inspect -f FORMAT name`, trimmed.
    pub fn inspect(&self, name: &str, format: &str) -> Result<String> {
        Ok(self
            .podman_ok(&["inspect", "-f", format, name])?
            .stdout
            .trim()
            .to_string())
    }

    /// Removes every container and checks that nothing is left: no runtime
    /// process (conmon, lxcri helpers), cgroup, host mount, and no container
    /// in lxcri's default root.
    pub fn finish(mut self) -> Result<()> {
        self.finished = true;
        let rm = self.remove_all();
        let r = rm.and_then(|o| o.ok()).and_then(|_| {
            self.snapshot
                .check_host(&[], &[PathBuf::from("/run/lxcri")])
        });
        if r.is_err() {
            self.snapshot.clean_up(&[]);
        }
        r
    }

    /// `podman rm -a -f`, then podman's own cgroups.
    fn remove_all(&self) -> Result<Output> {
        let rm = self.podman(&["rm", "-a", "-f", "-t", "0"]);
        // podman's own cgroups (cgroupfs manager): the parent and conmon's
        // cgroup below it, which podman never removes. A container cgroup
        // left below the parent keeps it (rmdir fails) and is reported.
        // conmon may still be on its way out: retry for a while.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut left = false;
            for root in crate::procfs::cgroup_roots() {
                for d in ["libpod_parent/conmon", "libpod_parent"] {
                    let p = root.join(d);
                    left |= p.exists() && fs::remove_dir(&p).is_err();
                }
            }
            if !left || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        rm
    }
}

/// A test that failed before `finish` still removes its containers and what
/// they left.
impl Drop for Podman {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let _ = self.remove_all();
        self.snapshot.clean_up(&[]);
    }
}
