//! A private containerd daemon for one test.
//!
//! The daemon runs in its own mount namespace where /run/containerd is a bind
//! mount of a temp dir: shims hard-code /run/containerd/s (sockets), ctr uses
//! /run/containerd/fifo, runc keeps state in /run/containerd/runc. The host's
//! /run/containerd is never used.

use crate::cmd::{self, Output, TIMEOUT};
use crate::procfs;
use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Where scripts/build-containerd2.sh installs containerd 2.x.
pub const CONTAINERD2_BIN: &str = "/var/cache/lxcri/containerd-2.4.2/bin";

/// crictl, built by scripts/build-cri-tools.sh.
pub const CRICTL: &str = "/var/cache/lxcri/cri-tools-1.37.0/bin/crictl";

/// nerdctl, built by scripts/build-nerdctl.sh (drives containerd 2.x only).
pub const NERDCTL: &str = "/var/cache/lxcri/nerdctl-2.2.2/bin/nerdctl";

/// The containerd namespace of the CRI plugin.
pub const CRI_NAMESPACE: &str = "k8s.io";

/// The sandbox (pause) image named in the CRI config; built offline from
/// the busybox rootfs and imported before a pod is run.
pub const PAUSE_IMAGE: &str = "docker.io/library/lxcri-pause:latest";

/// The sandbox image of a pod-network CRI daemon
/// ([`Containerd::start_cri_net`]): our static pause program, pulled from
/// the test's local registry (see `registry.rs`).
pub const NET_PAUSE_IMAGE: &str = "127.0.0.1:5000/lxcri/pause:1.0";

/// Where Debian's containernetworking-plugins installs the CNI plugins.
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";

/// The pod subnet of a pod-network CRI daemon (bridge `lxcri0` + host-local,
/// inside the daemon's private network namespace).
pub const POD_SUBNET: &str = "10.88.77.0/24";

/// The CRI runtime handler that a CRI daemon uses by default
/// (`default_runtime_name`): runtime_type io.containerd.lxcri.v2.
pub const CRI_DEFAULT_HANDLER: &str = "lxcri";

/// The shared host dir that the private namespace covers with a bind mount.
const RUN_CONTAINERD: &str = "/run/containerd";

/// libcni's default state dir (result cache, host-local IPAM without a
/// `dataDir`); a private-network daemon's mount namespace has the temp
/// dir's [`CNI_STATE`] bound over it.
const VAR_LIB_CNI: &str = "/var/lib/cni";

/// The temp dir's stand-in for [`VAR_LIB_CNI`].
const CNI_STATE: &str = "var-lib-cni";

/// Which containerd the test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Debian bookworm's containerd 1.6.
    V1_6,
    /// containerd 2.x built by scripts/build-containerd2.sh.
    V2,
}

impl Version {
    fn bin_dir(self) -> &'static str {
        match self {
            Version::V1_6 => "/usr/bin",
            Version::V2 => CONTAINERD2_BIN,
        }
    }

    pub fn containerd(self) -> PathBuf {
        Path::new(self.bin_dir()).join("containerd")
    }

    pub fn ctr(self) -> PathBuf {
        Path::new(self.bin_dir()).join("ctr")
    }

    /// PATH of the daemon: its own runc shim first (so that the runc
    /// comparison uses the matching shim), then /usr/local/bin (our shim).
    fn daemon_path(self) -> String {
        format!(
            "{}:/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            self.bin_dir()
        )
    }

    /// Config for a private daemon: own root/state/sockets/opt under `dir`,
    /// NRI (which would use /var/run/nri) disabled, overlayfs as the default
    /// snapshotter, and CRI disabled unless `cri` (then [`Version::cri_config`]
    /// is appended). 1.6 reads config version 2; 2.4 wants version 4 (it
    /// migrates 2 and 3 with a warning).
    fn config(self, dir: &Path, cri: bool, net: bool) -> String {
        let d = dir.display();
        let disabled = self
            .disabled_plugins()
            .iter()
            .filter(|p| !(cri && self.cri_plugins().contains(p)))
            .map(|p| format!("{p:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let base = match self {
            Version::V1_6 => format!(
                r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = [{disabled}]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  level = "debug"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#
            ),
            // Version 4: each server is a plugin with its own address.
            Version::V2 => format!(
                r#"version = 4
root = "{d}/root"
state = "{d}/state"
disabled_plugins = [{disabled}]
[debug]
  level = "debug"
[plugins."io.containerd.server.v1.grpc"]
  address = "{d}/containerd.sock"
[plugins."io.containerd.server.v1.ttrpc"]
  address = "{d}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#
            ),
        };
        if cri {
            base + &self.cri_config(dir, net)
        } else {
            base
        }
    }

    /// Plugins off in every private daemon (unused snapshotters, NRI) plus
    /// the CRI ones (enabled again by a CRI daemon).
    fn disabled_plugins(self) -> &'static [&'static str] {
        match self {
            Version::V1_6 => &[
                "io.containerd.grpc.v1.cri",
                "io.containerd.snapshotter.v1.btrfs",
                "io.containerd.snapshotter.v1.zfs",
                "io.containerd.snapshotter.v1.devmapper",
                "io.containerd.snapshotter.v1.aufs",
            ],
            Version::V2 => &[
                "io.containerd.grpc.v1.cri",
                "io.containerd.cri.v1.images",
                "io.containerd.cri.v1.runtime",
                "io.containerd.podsandbox.controller.v1.podsandbox",
                "io.containerd.nri.v1.nri",
                "io.containerd.snapshotter.v1.btrfs",
                "io.containerd.snapshotter.v1.zfs",
                "io.containerd.snapshotter.v1.devmapper",
                "io.containerd.snapshotter.v1.erofs",
                "io.containerd.snapshotter.v1.blockfile",
            ],
        }
    }

    /// The plugins that make up CRI.
    fn cri_plugins(self) -> &'static [&'static str] {
        match self {
            Version::V1_6 => &["io.containerd.grpc.v1.cri"],
            Version::V2 => &[
                "io.containerd.grpc.v1.cri",
                "io.containerd.cri.v1.images",
                "io.containerd.cri.v1.runtime",
                "io.containerd.podsandbox.controller.v1.podsandbox",
            ],
        }
    }

    /// The CRI plugin's config: default runtime handler `lxcri`
    /// (io.containerd.lxcri.v2), handler `runc` for comparison, our pause
    /// image as sandbox image, overlayfs, and every host path CRI would
    /// create or read (CNI conf/bin dirs, CDI spec dirs, registry hosts
    /// dir) in `dir`. CRI's own root and state are
    /// `<root>/io.containerd.grpc.v1.cri` and `<state>/...` on both
    /// versions, so in `dir` too. 1.6 has one plugin
    /// (`io.containerd.grpc.v1.cri`); 2.4 splits it into
    /// `io.containerd.cri.v1.runtime` (runtimes, CNI, CDI),
    /// `io.containerd.cri.v1.images` (snapshotter, `pinned_images.sandbox`,
    /// registry) and `io.containerd.grpc.v1.cri` (streaming server).
    ///
    /// `restrict_oom_score_adj`: CRI gives the sandbox oom_score_adj -998,
    /// which needs CAP_SYS_RESOURCE (without it runc fails with "can't get
    /// final child's PID from pipe: EOF", e.g. in a container or a
    /// restricted session); restricted, CRI raises it to the daemon's own
    /// value. AppArmor off: no host profile is loaded.
    ///
    /// `net` (a pod-network daemon, [`Containerd::start_cri_net`]): the
    /// sandbox image is [`NET_PAUSE_IMAGE`] and the CNI plugins are
    /// Debian's in [`CNI_BIN_DIR`] (the conflist is written by
    /// [`cni_conflist`]).
    fn cri_config(self, dir: &Path, net: bool) -> String {
        let d = dir.display();
        let (sandbox_image, cni_bin) = if net {
            (NET_PAUSE_IMAGE.to_string(), CNI_BIN_DIR.to_string())
        } else {
            (PAUSE_IMAGE.to_string(), format!("{d}/cni/bin"))
        };
        // The `containerd` table: default handler and the runtimes (plus,
        // on 1.6, the snapshotter).
        let runtimes = |table: &str, more: &str| {
            format!(
                r#"[{table}.containerd]
  default_runtime_name = "{CRI_DEFAULT_HANDLER}"
{more}[{table}.containerd.runtimes.{CRI_DEFAULT_HANDLER}]
  runtime_type = "io.containerd.lxcri.v2"
[{table}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
"#
            )
        };
        match self {
            Version::V1_6 => {
                let t = r#"plugins."io.containerd.grpc.v1.cri""#;
                format!(
                    r#"[{t}]
  sandbox_image = "{sandbox_image}"
  disable_apparmor = true
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
{runtimes}[{t}.cni]
  bin_dir = "{cni_bin}"
  conf_dir = "{d}/cni/net.d"
[{t}.registry]
  config_path = "{d}/certs.d"
"#,
                    runtimes = runtimes(t, "  snapshotter = \"overlayfs\"\n")
                )
            }
            Version::V2 => {
                let rt = r#"plugins."io.containerd.cri.v1.runtime""#;
                let img = r#"plugins."io.containerd.cri.v1.images""#;
                format!(
                    r#"[{rt}]
  disable_apparmor = true
  restrict_oom_score_adj = true
  cdi_spec_dirs = ["{d}/cdi"]
{runtimes}[{rt}.cni]
  bin_dirs = ["{cni_bin}"]
  conf_dir = "{d}/cni/net.d"
[{img}]
  snapshotter = "overlayfs"
[{img}.pinned_images]
  sandbox = "{sandbox_image}"
[{img}.registry]
  config_path = "{d}/certs.d"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"#,
                    runtimes = runtimes(rt, "")
                )
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Version::V1_6 => "containerd 1.6",
            Version::V2 => "containerd 2.x",
        }
    }
}

/// A running private containerd; stopped (with its shims) on drop.
pub struct Containerd {
    pub version: Version,
    /// Whether the CRI plugin is enabled ([`Containerd::start_cri`]).
    pub cri: bool,
    /// Whether the daemon has its own network namespace with a CNI pod
    /// network ([`Containerd::start_cri_net`]).
    pub private_net: bool,
    dir: TempDir,
    child: Option<Child>,
    pid: i32,
    created_run_dir: bool,
}

impl Containerd {
    /// Starts containerd with the default config.
    pub fn start(version: Version) -> Result<Self> {
        Self::start_with(version, "")
    }

    /// Starts containerd with `extra` TOML appended to the config.
    pub fn start_with(version: Version, extra: &str) -> Result<Self> {
        Self::start_inner(version, false, false, extra)
    }

    /// Starts containerd with the CRI plugin (see `Version::cri_config`);
    /// fails unless CRI answers `crictl info` with the runtime ready.
    pub fn start_cri(version: Version) -> Result<Self> {
        Self::start_inner(version, true, false, "")
    }

    /// Starts containerd with the CRI plugin in its own network namespace
    /// (besides its own mount namespace), with loopback up and a CNI
    /// bridge/host-local pod network on [`POD_SUBNET`] (bridge `lxcri0`,
    /// IPAM state in the temp dir), so that pods get their own network
    /// namespaces and the host's network is never touched. The sandbox
    /// image is [`NET_PAUSE_IMAGE`], pulled from a registry that the caller
    /// starts in the same network namespace (`registry::Registry`); the
    /// registry hosts dir (`<dir>/certs.d`) is the caller's too. Fails
    /// unless CRI reports RuntimeReady and NetworkReady. crictl runs in the
    /// daemon's network namespace (CRI's streaming server listens on its
    /// 127.0.0.1).
    pub fn start_cri_net(version: Version) -> Result<Self> {
        Self::start_inner(version, true, true, "")
    }

    /// Starts containerd (without CRI) in its own network namespace with
    /// loopback up: for nerdctl's bridge networks, whose CNI plugins (run
    /// by nerdctl's createRuntime hook from the shim) create bridges,
    /// veths and iptables rules in the daemon's network namespace, never
    /// the host's. nerdctl then runs in that namespace too
    /// ([`Containerd::nerdctl_command`]).
    pub fn start_net(version: Version) -> Result<Self> {
        Self::start_inner(version, false, true, "")
    }

    fn start_inner(version: Version, cri: bool, net: bool, extra: &str) -> Result<Self> {
        check_binaries(version, cri)?;
        let dir = tempfile::Builder::new().prefix("lxcri-e2e-").tempdir()?;
        fs::create_dir_all(dir.path().join("run"))?;
        if cri {
            for sub in ["cni/bin", "cni/net.d", "cdi", "certs.d", "pod-logs"] {
                fs::create_dir_all(dir.path().join(sub))?;
            }
            fs::write(dir.path().join("crictl.yaml"), crictl_config(dir.path()))?;
        }
        if net {
            fs::create_dir_all(dir.path().join(CNI_STATE))?;
        }
        if cri && net {
            fs::create_dir_all(dir.path().join("cni/ipam"))?;
            fs::write(
                dir.path().join("cni/net.d/10-lxcri-e2e.conflist"),
                cni_conflist(dir.path()),
            )?;
        }
        let config = version.config(dir.path(), cri, net) + extra;
        fs::write(dir.path().join("config.toml"), config)?;
        let created_run_dir = ensure_mount_point()?;
        let child = spawn_daemon(version, dir.path(), net)?;
        let mut ctd = Containerd {
            version,
            cri,
            private_net: net,
            pid: child.id() as i32,
            child: Some(child),
            dir,
            created_run_dir,
        };
        ctd.wait_ready()
            .with_context(|| format!("{} did not start:\n{}", version.name(), ctd.log_tail(30)))?;
        Ok(ctd)
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The test's temp dir (config, sockets, root, state, run, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn address(&self) -> PathBuf {
        self.dir().join("containerd.sock")
    }

    /// The temp dir mounted at /run/containerd inside the namespace.
    pub fn run_dir(&self) -> PathBuf {
        self.dir().join("run")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir().join("state")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir().join("containerd.log")
    }

    /// The daemon's mountinfo (its private mount namespace).
    pub fn mountinfo(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/mountinfo", self.pid))
    }

    /// The last `lines` lines of the daemon's log (which includes shim logs).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `ctr --address SOCK args...` in the daemon's mount namespace.
    pub fn ctr(&self, args: &[&str]) -> Result<Output> {
        let out = cmd::run(&mut self.ctr_command(args), None, TIMEOUT)?;
        Ok(without_deprecation_warnings(out))
    }

    /// Like [`Containerd::ctr`], feeding `stdin`.
    pub fn ctr_stdin(&self, args: &[&str], stdin: &[u8]) -> Result<Output> {
        let out = cmd::run(&mut self.ctr_command(args), Some(stdin), TIMEOUT)?;
        Ok(without_deprecation_warnings(out))
    }

    /// Like [`Containerd::ctr`] but must exit 0.
    pub fn ctr_ok(&self, args: &[&str]) -> Result<Output> {
        self.ctr(args)?
            .ok()
            .with_context(|| format!("ctr {}", args.join(" ")))
    }

    /// The ctr command line, for running it in the background.
    pub fn ctr_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.pid.to_string())
            .arg("-m")
            .arg("--")
            .arg(self.version.ctr())
            .arg("--address")
            .arg(self.address())
            .args(args);
        cmd
    }

    /// What a private-network daemon's mount namespace sees at
    /// /var/lib/cni (see `spawn_daemon`): libcni's result cache
    /// (`results/`) and host-local IPAM state of networks without their own
    /// `dataDir` (`networks/<name>/`, e.g. nerdctl's default `bridge`).
    pub fn cni_state_dir(&self) -> PathBuf {
        self.dir().join(CNI_STATE)
    }

    /// nerdctl's own directories under the test's temp dir: `data`
    /// (--data-root: container metadata, logs, name store, hosts store)
    /// and `cni/net.d` (--cni-netconfpath: empty until nerdctl writes its
    /// default `bridge` network there), and `cni/bin` (empty: the
    /// --cni-path of a daemon without its own network namespace, whose
    /// containers run with --net none).
    pub fn nerdctl_dir(&self) -> PathBuf {
        self.dir().join("nerdctl")
    }

    /// `nerdctl args...` in the daemon's mount namespace (it uses
    /// /run/containerd like ctr, and its OCI hooks and logging binary run
    /// from the shim), talking to our socket in namespace `default`, with
    /// its data root, CNI conf dir and (absent) config file in the temp
    /// dir. With a private-network daemon ([`Containerd::start_net`]) it
    /// runs in the daemon's network namespace too and its --cni-path is
    /// Debian's plugins ([`CNI_BIN_DIR`]); otherwise the CNI bin dir is
    /// empty. Fails loudly when nerdctl is not built or the daemon is not
    /// 2.x.
    pub fn nerdctl_command(&self, args: &[&str]) -> Result<Command> {
        if self.version != Version::V2 {
            bail!(
                "nerdctl tests need containerd 2.x, not {}",
                self.version.name()
            );
        }
        if !Path::new(NERDCTL).exists() {
            bail!("{NERDCTL} missing: run `make install` (scripts/build-nerdctl.sh)");
        }
        let dir = self.nerdctl_dir();
        for sub in ["data", "cni/bin", "cni/net.d"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let cni_bin = if self.private_net {
            PathBuf::from(CNI_BIN_DIR)
        } else {
            dir.join("cni/bin")
        };
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t").arg(self.pid.to_string()).arg("-m");
        if self.private_net {
            cmd.arg("-n");
        }
        cmd.arg("--")
            .arg(NERDCTL)
            .arg("--address")
            .arg(self.address())
            .args(["--namespace", crate::leaks::NAMESPACE])
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--cni-path")
            .arg(cni_bin)
            .arg("--cni-netconfpath")
            .arg(dir.join("cni/net.d"))
            .args(args)
            .env("NERDCTL_TOML", dir.join("nerdctl.toml"))
            .env_remove("CONTAINERD_ADDRESS")
            .env_remove("CONTAINERD_NAMESPACE")
            .env_remove("CONTAINERD_SNAPSHOTTER");
        Ok(cmd)
    }

    /// `nerdctl args...` (see [`Containerd::nerdctl_command`]).
    pub fn nerdctl(&self, args: &[&str]) -> Result<Output> {
        let out = cmd::run(&mut self.nerdctl_command(args)?, None, TIMEOUT)?;
        Ok(without_deprecation_warnings(out))
    }

    /// Like [`Containerd::nerdctl`] but must exit 0.
    pub fn nerdctl_ok(&self, args: &[&str]) -> Result<Output> {
        self.nerdctl(args)?
            .ok()
            .with_context(|| format!("nerdctl {}", args.join(" ")))
    }

    /// `crictl --config <dir>/crictl.yaml args...`: crictl talks to the
    /// daemon's socket only (no namespace needed); the config names the
    /// endpoints, so crictl never probes /run/containerd or the host's
    /// /etc/crictl.yaml.
    pub fn crictl(&self, args: &[&str]) -> Result<Output> {
        cmd::run(&mut self.crictl_command(args), None, TIMEOUT)
    }

    /// Like [`Containerd::crictl`] but must exit 0.
    pub fn crictl_ok(&self, args: &[&str]) -> Result<Output> {
        self.crictl(args)?
            .ok()
            .with_context(|| format!("crictl {}", args.join(" ")))
    }

    /// The crictl command line (see [`Containerd::crictl`]).
    pub fn crictl_command(&self, args: &[&str]) -> Command {
        let mut cmd = self.in_net(CRICTL);
        cmd.arg("--config")
            .arg(self.dir().join("crictl.yaml"))
            .args(args)
            .env_remove("CONTAINER_RUNTIME_ENDPOINT")
            .env_remove("IMAGE_SERVICE_ENDPOINT")
            .env_remove("CRI_CONFIG_FILE");
        cmd
    }

    /// A command running `program`: in the daemon's network namespace when
    /// it has one (`nsenter -t PID -n -- program`), else directly.
    pub fn in_net(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        if !self.private_net {
            return Command::new(program);
        }
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.pid.to_string())
            .args(["-n", "--"])
            .arg(program);
        cmd
    }

    /// The directory CRI pods log to (`log_directory` of the pod config).
    pub fn pod_log_dir(&self) -> PathBuf {
        self.dir().join("pod-logs")
    }

    /// Shim processes started by this daemon (their args name our socket).
    pub fn shims(&self) -> Vec<procfs::Process> {
        let address = self.address().display().to_string();
        procfs::processes()
            .into_iter()
            .filter(|p| p.cmdline.contains("containerd-shim") && p.cmdline.contains(&address))
            .collect()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!("containerd exited: {status}");
                }
            }
            if self.address().exists() && self.ctr(&["version"])?.code == 0 {
                self.check_config_current()?;
                return if self.cri {
                    self.wait_cri_ready()
                } else {
                    Ok(())
                };
            }
            thread::sleep(Duration::from_millis(50));
        }
        bail!("socket {} not ready after 30 s", self.address().display())
    }

    /// CRI must be up and report RuntimeReady (1.6 merely logs a CRI plugin
    /// that failed to load; crictl would then get "unknown service").
    /// NetworkReady stays false without a CNI config (host-network pods
    /// only); a pod-network daemon must report it too.
    fn wait_cri_ready(&self) -> Result<()> {
        let start = Instant::now();
        loop {
            let out = self.crictl(&["info"])?;
            let ready = out.code == 0
                && condition(&out.stdout, "RuntimeReady")
                && (!self.private_net || condition(&out.stdout, "NetworkReady"));
            if ready {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!("CRI not ready after 30 s: crictl info: {out}");
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// A config in an old format is migrated in memory with a warning; keys
    /// the migration does not know would be silently ignored.
    fn check_config_current(&self) -> Result<()> {
        let log = fs::read_to_string(self.log_path())?;
        if log.contains("Configuration migrated") {
            bail!(
                "{} migrated our config: update its version",
                self.version.name()
            );
        }
        Ok(())
    }

    /// Stops the daemon with SIGTERM (fails if it does not exit within
    /// 10 s), leaving its shims and containers running, then starts it
    /// again with the same config, root, state and run dir. The new daemon
    /// gets a new mount namespace with the same bind mount at
    /// /run/containerd, so the shim sockets (files in the temp run dir)
    /// stay reachable; the shims keep the old namespace.
    pub fn restart(&mut self) -> Result<()> {
        if self.private_net {
            bail!("restart would give containerd a new network namespace");
        }
        let mut child = self.child.take().context("containerd is not running")?;
        kill(Pid::from_raw(self.pid), Signal::SIGTERM)?;
        if cmd::wait_timeout(&mut child, Duration::from_secs(10)).is_none() {
            bail!(
                "containerd {} did not exit within 10 s of SIGTERM",
                self.pid
            );
        }
        let child = spawn_daemon(self.version, self.dir.path(), false)?;
        self.pid = child.id() as i32;
        self.child = Some(child);
        self.wait_ready().with_context(|| {
            format!(
                "{} did not restart:\n{}",
                self.version.name(),
                self.log_tail(30)
            )
        })
    }

    /// SIGTERM the daemon, SIGKILL after 10 s, then SIGKILL leftover shims
    /// (the Rust shim crate ignores SIGTERM).
    pub fn stop(&mut self) {
        let shims = self.shims();
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGTERM);
            if cmd::wait_timeout(&mut child, Duration::from_secs(10)).is_none() {
                eprintln!("containerd {} ignored SIGTERM; killed", self.pid);
            }
        }
        for shim in shims.iter().chain(self.shims().iter()) {
            let _ = kill(Pid::from_raw(shim.pid), Signal::SIGKILL);
        }
        if self.created_run_dir {
            let _ = fs::remove_dir(RUN_CONTAINERD);
            self.created_run_dir = false;
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn check_binaries(version: Version, cri: bool) -> Result<()> {
    for bin in [version.containerd(), version.ctr()] {
        if !bin.exists() {
            bail!(
                "{} missing for {}: run `make install` (scripts/build-containerd2.sh)",
                bin.display(),
                version.name()
            );
        }
    }
    if cri && !Path::new(CRICTL).exists() {
        bail!("{CRICTL} missing: run `make install` (scripts/build-cri-tools.sh)");
    }
    Ok(())
}

fn crictl_config(dir: &Path) -> String {
    let sock = dir.join("containerd.sock");
    format!(
        "runtime-endpoint: unix://{s}\nimage-endpoint: unix://{s}\ntimeout: 30\n\
         debug: false\npull-image-on-create: false\ndisable-pull-on-run: true\n",
        s = sock.display()
    )
}

/// The CNI config of a pod-network daemon: a bridge `lxcri0` (gateway,
/// no masquerading: nothing leaves the namespace) with host-local IPAM on
/// [`POD_SUBNET`] (state in `<dir>/cni/ipam`, not /var/lib/cni), and
/// portmap for hostPort mappings (iptables rules in the daemon's network
/// namespace). CRI adds the loopback network itself.
pub fn cni_conflist(dir: &Path) -> String {
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "lxcri-e2e",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "lxcri0",
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": dir.join("cni/ipam"),
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    });
    serde_json::to_string_pretty(&conf).unwrap_or_default()
}

/// Whether `crictl info` output has the condition `kind` true.
fn condition(info: &str, kind: &str) -> bool {
    let Ok(info) = serde_json::from_str::<serde_json::Value>(info) else {
        return false;
    };
    info["status"]["conditions"]
        .as_array()
        .is_some_and(|conds| {
            conds
                .iter()
                .any(|c| c["type"] == kind && c["status"] == true)
        })
}

/// The bind mount needs /run/containerd to exist on the host. Creates it
/// (empty) when missing; returns whether it did so, to remove it again.
fn ensure_mount_point() -> Result<bool> {
    if Path::new(RUN_CONTAINERD).exists() {
        return Ok(false);
    }
    fs::create_dir_all(RUN_CONTAINERD)?;
    Ok(true)
}

/// unshare a private mount namespace (and with `net` a network namespace,
/// loopback up, and the temp dir's CNI state dir bound over /var/lib/cni, so
/// that CNI plugins run from the daemon, its shims and hooks never write
/// the host's), bind the temp run dir over /run/containerd, exec containerd
/// (so the child pid is the daemon).
fn spawn_daemon(version: Version, dir: &Path, net: bool) -> Result<Child> {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("containerd.log"))?;
    let net_setup = if net {
        format!(
            "ip link set lo up && mkdir -p {VAR_LIB_CNI} && mount --bind '{}' {VAR_LIB_CNI} && ",
            dir.join(CNI_STATE).display()
        )
    } else {
        String::new()
    };
    let script = format!(
        "{net_setup}mount --bind '{run}' {RUN_CONTAINERD} && exec '{bin}' --config '{dir}/config.toml'",
        run = dir.join("run").display(),
        bin = version.containerd().display(),
        dir = dir.display(),
    );
    let mut unshare = Command::new("unshare");
    if net {
        unshare.arg("-n");
    }
    let child = unshare
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .env_clear()
        .env("PATH", version.daemon_path())
        .env("HOME", "/root")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("spawn unshare containerd")?;
    Ok(child)
}

/// containerd 2.x's ctr prints a cgroup v1 deprecation warning on stderr
/// with every command on a v1 host; drop it so stderr is the container's.
fn without_deprecation_warnings(mut out: Output) -> Output {
    if out.stderr.contains("DEPRECATION") {
        out.stderr = out
            .stderr
            .lines()
            .filter(|l| !(l.starts_with("time=") && l.contains("msg=\"DEPRECATION:")))
            .map(|l| format!("{l}\n"))
            .collect();
    }
    out
}
