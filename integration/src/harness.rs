//! One end-to-end test: a private containerd, a busybox rootfs, the
//! runtime under test, and the leak check at the end.

use crate::cmd::Output;
use crate::containerd::{Containerd, Version, CRI_NAMESPACE, PAUSE_IMAGE};
use crate::leaks::{self, Snapshot};
use crate::registry::{ImageSet, Registry};
use crate::{image, rootfs};
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

/// The shim under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// containerd's runc shim: the reference behaviour.
    Runc,
    /// Our shim, containerd-shim-lxcri-v2 in /usr/local/bin.
    Lxcri,
}

impl Runtime {
    /// The runtime name ctr passes with --runtime.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Runc => "io.containerd.runc.v2",
            Runtime::Lxcri => "io.containerd.lxcri.v2",
        }
    }

    fn shim_binary(self) -> &'static str {
        match self {
            Runtime::Runc => "containerd-shim-runc-v2",
            Runtime::Lxcri => "/usr/local/bin/containerd-shim-lxcri-v2",
        }
    }
}

/// A test's world; dropping it stops containerd and removes the temp dir.
pub struct Harness {
    pub runtime: Runtime,
    pub ctd: Containerd,
    rootfs: PathBuf,
    /// Image tarballs built so far: (image name, path).
    images: Vec<(&'static str, PathBuf)>,
    ids: Vec<String>,
    snapshot: Snapshot,
    /// The local registry of a pod-network CRI daemon.
    registry: Option<Registry>,
    finished: bool,
}

impl Harness {
    /// Starts containerd `version` (with `extra` config) for `runtime`.
    pub fn start_with(version: Version, runtime: Runtime, extra: &str) -> Result<Self> {
        Self::start_daemon(runtime, || Containerd::start_with(version, extra))
    }

    /// Starts containerd `version` with the CRI plugin, whose default
    /// runtime handler is lxcri (see `Version::cri_config`). `runtime` is
    /// the shim the test expects to see (its binary must be installed).
    pub fn start_cri(version: Version, runtime: Runtime) -> Result<Self> {
        check_shim(Runtime::Lxcri)?;
        Self::start_daemon(runtime, || Containerd::start_cri(version))
    }

    fn start_daemon(runtime: Runtime, start: impl FnOnce() -> Result<Containerd>) -> Result<Self> {
        check_shim(runtime)?;
        let host_mounts = leaks::host_mounts()?;
        let ctd = start()?;
        let rootfs = ctd.dir().join("rootfs");
        rootfs::busybox_rootfs(&rootfs)?;
        let snapshot = Snapshot::take(&ctd, host_mounts)?;
        Ok(Harness {
            runtime,
            ctd,
            rootfs,
            images: Vec::new(),
            ids: Vec::new(),
            snapshot,
            registry: None,
            finished: false,
        })
    }

    /// Starts containerd 2.x with the CRI plugin in a private network
    /// namespace with a CNI pod network ([`Containerd::start_cri_net`]),
    /// and the local registry there with the images of `set`
    /// ([`Registry::start`]). `runtime` is the shim the test expects.
    pub fn start_cri_net(runtime: Runtime, set: ImageSet) -> Result<Self> {
        check_shim(Runtime::Lxcri)?;
        check_shim(runtime)?;
        let host_mounts = leaks::host_mounts()?;
        let ctd = Containerd::start_cri_net(Version::V2)?;
        let registry = Registry::start(&ctd, set)
            .with_context(|| format!("local registry:\n{}", ctd.log_tail(20)))?;
        let rootfs = ctd.dir().join("rootfs");
        rootfs::busybox_rootfs(&rootfs)?;
        let snapshot = Snapshot::take(&ctd, host_mounts)?;
        Ok(Harness {
            runtime,
            ctd,
            rootfs,
            images: Vec::new(),
            ids: Vec::new(),
            snapshot,
            registry: Some(registry),
            finished: false,
        })
    }

    /// Starts containerd 2.x without CRI in a private network namespace
    /// ([`Containerd::start_net`]), for nerdctl's bridge networks.
    pub fn start_net(runtime: Runtime) -> Result<Self> {
        Self::start_daemon(runtime, || Containerd::start_net(Version::V2))
    }

    /// The busybox rootfs directory (for `ctr run --rootfs`).
    pub fn rootfs(&self) -> String {
        self.rootfs.display().to_string()
    }

    /// A container id; tracked so the leak check looks for its processes.
    pub fn id(&mut self, name: &str) -> String {
        let id = format!("lxe2e-{name}");
        self.ids.push(id.clone());
        id
    }

    /// Tracks an id the runtime chose (a CRI pod or container id) so the
    /// leak check looks for its processes and cgroups.
    pub fn track(&mut self, id: &str) {
        self.ids.push(id.to_string());
    }

    /// `ctr args...` (in containerd's namespace).
    pub fn ctr(&self, args: &[&str]) -> Result<Output> {
        self.ctd.ctr(args)
    }

    /// `ctr args...` that must succeed.
    pub fn ctr_ok(&self, args: &[&str]) -> Result<Output> {
        self.ctd.ctr_ok(args)
    }

    /// `ctr run --rm --runtime R [opts] --rootfs ROOTFS ID cmd...`.
    pub fn run_rootfs(&mut self, name: &str, opts: &[&str], cmd: &[&str]) -> Result<Output> {
        let args = self.run_args(name, opts, cmd);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ctr(&args)
    }

    /// Like [`Harness::run_rootfs`], with `stdin` fed to the container.
    pub fn run_rootfs_stdin(
        &mut self,
        name: &str,
        opts: &[&str],
        cmd: &[&str],
        stdin: &[u8],
    ) -> Result<Output> {
        let args = self.run_args(name, opts, cmd);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ctd.ctr_stdin(&args, stdin)
    }

    fn run_args(&mut self, name: &str, opts: &[&str], cmd: &[&str]) -> Vec<String> {
        let id = self.id(name);
        let mut args: Vec<String> = ["run", "--rm", "--runtime", self.runtime.name()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(opts.iter().map(|s| s.to_string()));
        args.extend(["--rootfs".to_string(), self.rootfs(), id]);
        args.extend(cmd.iter().map(|s| s.to_string()));
        args
    }

    /// Builds the busybox OCI tarball (once) and imports it; returns the image name.
    pub fn import_image(&mut self) -> Result<&'static str> {
        let tarball = self.image_tarball(rootfs::IMAGE, image::SHELL)?;
        let tarball = tarball.display().to_string();
        self.ctr_ok(&["image", "import", &tarball])?;
        Ok(rootfs::IMAGE)
    }

    /// The busybox OCI tarball (built once; not imported), for loaders
    /// other than ctr (`nerdctl load`).
    pub fn busybox_tarball(&mut self) -> Result<PathBuf> {
        self.image_tarball(rootfs::IMAGE, image::SHELL)
    }

    /// Imports the busybox image and the pause image (the config's sandbox
    /// image) into CRI's namespace and waits until CRI lists both (it
    /// learns about images from containerd's events); returns the busybox
    /// image name.
    pub fn import_cri_images(&mut self) -> Result<&'static str> {
        for (name, process) in [(rootfs::IMAGE, image::SHELL), (PAUSE_IMAGE, image::PAUSE)] {
            let tarball = self.image_tarball(name, process)?;
            let tarball = tarball.display().to_string();
            self.ctr_ok(&["-n", CRI_NAMESPACE, "image", "import", &tarball])?;
        }
        let start = Instant::now();
        loop {
            let listed = self.crictl_ok(&["images", "-o", "json"])?;
            let tags = image_tags(&listed.stdout)?;
            if [rootfs::IMAGE, PAUSE_IMAGE]
                .iter()
                .all(|n| tags.iter().any(|t| t == n))
            {
                return Ok(rootfs::IMAGE);
            }
            if start.elapsed() > Duration::from_secs(10) {
                bail!("CRI does not list the imported images after 10 s: {tags:?}");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn image_tarball(&mut self, name: &'static str, process: image::Process) -> Result<PathBuf> {
        if let Some((_, path)) = self.images.iter().find(|(n, _)| *n == name) {
            return Ok(path.clone());
        }
        let file = name.rsplit('/').next().unwrap_or(name).replace(':', "-");
        let work = self.ctd.dir().join(format!("image-work-{file}"));
        fs::create_dir_all(&work)?;
        let out = self.ctd.dir().join(format!("{file}.oci.tar"));
        image::oci_image(&self.rootfs, name, process, &work, &out)
            .with_context(|| format!("build image {name}"))?;
        self.images.push((name, out.clone()));
        Ok(out)
    }

    /// `crictl args...` against the daemon's CRI plugin.
    pub fn crictl(&self, args: &[&str]) -> Result<Output> {
        self.ctd.crictl(args)
    }

    /// `crictl args...` that must succeed.
    pub fn crictl_ok(&self, args: &[&str]) -> Result<Output> {
        self.ctd.crictl_ok(args)
    }

    /// `nerdctl args...` against the daemon (containerd 2.x only; see
    /// [`Containerd::nerdctl_command`]).
    pub fn nerdctl(&self, args: &[&str]) -> Result<Output> {
        self.ctd.nerdctl(args)
    }

    /// `nerdctl args...` that must succeed.
    pub fn nerdctl_ok(&self, args: &[&str]) -> Result<Output> {
        self.ctd.nerdctl_ok(args)
    }

    /// Restarts containerd, leaving shims and containers running (see
    /// [`Containerd::restart`]).
    pub fn restart(&mut self) -> Result<()> {
        self.ctd.restart()
    }

    /// Asserts no leaks, stops containerd, asserts again on the host.
    pub fn finish(mut self) -> Result<()> {
        self.finished = true;
        let ids = self.ids.clone();
        let running = self.snapshot.check_running(&self.ctd, &ids);
        self.ctd.stop();
        self.registry.take();
        let stopped = self.snapshot.check_stopped(&ids);
        self.snapshot.clean_up(&ids);
        running.context("while containerd ran")?;
        stopped.context("after containerd stopped")
    }

    /// Prints the daemon's log tail (shim logs included) for a failed test.
    pub fn dump_log(&self) {
        eprintln!(
            "---- {} log tail ({}) ----\n{}\n----",
            self.ctd.version.name(),
            self.ctd.log_path().display(),
            self.ctd.log_tail(60)
        );
    }
}

/// A test that failed before `finish` still ends its daemon and shims (the
/// daemon's mount namespace, with the rootfs mounts, goes with them) and
/// removes the containers' processes and cgroups.
impl Drop for Harness {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.ctd.stop();
        self.registry.take();
        self.snapshot.clean_up(&self.ids);
    }
}

/// Fails loudly when the shim binary for `runtime` is not installed.
fn check_shim(runtime: Runtime) -> Result<()> {
    if runtime == Runtime::Lxcri && !PathBuf::from(runtime.shim_binary()).exists() {
        anyhow::bail!(
            "{} is not installed: run `make install-bin` first",
            runtime.shim_binary()
        );
    }
    Ok(())
}

/// Runs `scenario` against `version` + `runtime` with a fresh containerd,
/// then the leak check. Panics (fails the test) with everything that went wrong.
pub fn run_scenario(
    version: Version,
    runtime: Runtime,
    scenario: impl FnOnce(&mut Harness) -> Result<()>,
) {
    if let Err(err) = try_scenario(version, runtime, "", scenario) {
        panic!("{} / {}: {err:#}", version.name(), runtime.name());
    }
}

/// Like [`run_scenario`] with extra containerd config.
pub fn try_scenario(
    version: Version,
    runtime: Runtime,
    extra_config: &str,
    scenario: impl FnOnce(&mut Harness) -> Result<()>,
) -> Result<()> {
    let h = Harness::start_with(version, runtime, extra_config)?;
    run_and_check(h, scenario)
}

/// Like [`run_scenario`] against a CRI-enabled containerd
/// ([`Harness::start_cri`]); `runtime` is the shim the scenario expects.
pub fn run_cri_scenario(
    version: Version,
    runtime: Runtime,
    scenario: impl FnOnce(&mut Harness) -> Result<()>,
) {
    let result = Harness::start_cri(version, runtime).and_then(|h| run_and_check(h, scenario));
    if let Err(err) = result {
        panic!("{} (CRI) / {}: {err:#}", version.name(), runtime.name());
    }
}

/// Like [`run_cri_scenario`] against a pod-network CRI daemon with the
/// local registry ([`Harness::start_cri_net`], basic images).
pub fn run_cri_net_scenario(runtime: Runtime, scenario: impl FnOnce(&mut Harness) -> Result<()>) {
    let result =
        Harness::start_cri_net(runtime, ImageSet::Basic).and_then(|h| run_and_check(h, scenario));
    if let Err(err) = result {
        panic!(
            "containerd 2.x (CRI, pod network) / {}: {err:#}",
            runtime.name()
        );
    }
}

/// Like [`run_scenario`] against containerd 2.x in a private network
/// namespace ([`Harness::start_net`]); the leak check then also looks for
/// veths and CNI state left in it.
pub fn run_net_scenario(runtime: Runtime, scenario: impl FnOnce(&mut Harness) -> Result<()>) {
    let result = Harness::start_net(runtime).and_then(|h| run_and_check(h, scenario));
    if let Err(err) = result {
        panic!(
            "containerd 2.x (private network) / {}: {err:#}",
            runtime.name()
        );
    }
}

/// Runs `scenario`, dumps the log if it failed, then the leak check.
fn run_and_check(mut h: Harness, scenario: impl FnOnce(&mut Harness) -> Result<()>) -> Result<()> {
    let result = scenario(&mut h);
    if result.is_err() {
        h.dump_log();
    }
    let leaks = h.finish();
    match (result, leaks) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), Ok(())) => Err(e),
        (Ok(()), Err(l)) => Err(l),
        (Err(e), Err(l)) => Err(e.context(format!("{l:#}"))),
    }
}

/// The repo tags in `crictl images -o json` output.
fn image_tags(json: &str) -> Result<Vec<String>> {
    let value: serde_json::Value = serde_json::from_str(json).context("crictl images")?;
    let images = value["images"].as_array().cloned().unwrap_or_default();
    Ok(images
        .iter()
        .flat_map(|i| i["repoTags"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().map(String::from))
        .collect())
}

/// A task as listed by `ctr task ls`.
#[derive(Debug, PartialEq, Eq)]
pub struct Task {
    pub pid: i32,
    pub status: String,
}

/// The task `id` from `ctr task ls`, None if not listed.
pub fn task(h: &Harness, id: &str) -> Result<Option<Task>> {
    let out = h.ctr_ok(&["task", "ls"])?;
    for line in out.stdout.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [name, pid, status] = fields[..] {
            if name == id {
                let pid = pid.parse().with_context(|| format!("pid in {line:?}"))?;
                let status = status.to_string();
                return Ok(Some(Task { pid, status }));
            }
        }
    }
    Ok(None)
}

/// Polls `ctr task ls` until task `id` has `status` (10 s).
pub fn wait_status(h: &Harness, id: &str, status: &str) -> Result<Task> {
    let start = Instant::now();
    loop {
        let current = task(h, id)?;
        match current {
            Some(t) if t.status == status => return Ok(t),
            _ if start.elapsed() > Duration::from_secs(10) => {
                bail!("task {id} not {status} after 10 s: {current:?}")
            }
            _ => thread::sleep(Duration::from_millis(50)),
        }
    }
}
