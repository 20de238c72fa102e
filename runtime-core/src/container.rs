//! The container lifecycle: create (the init waits at the barrier), start, kill,
//! and destroy (clean up after the container has stopped, or force it to).
//!
//! Process model (see docs/architecture.md): the runtime spawns `lxcri-start`, a
//! single-threaded helper that runs liblxc's foreground start and so becomes the
//! LXC monitor and the parent of the container's init (`lxcri-init`). The helper
//! exits with init's exit status; whoever reaps it (the shim's reaper) gets the
//! container's exit code. The runtime never waits for the helper itself.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio as ProcStdio};
use std::time::{Duration, Instant};

use lxcri_libexec::channel::{wait_readable, Channel};
use lxcri_libexec::proto::{
    AttachMount, CpuAffinity, HookResult, HookRun, HookSpec, InitHooks, InitMessage, MemoryPolicy,
    RuntimeMessage, SchedAttr, SeccompProgram, INIT_CHANNEL_FD, PRESERVED_FDS_BASE,
};
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::cgroup::{self, Layout};
use crate::error::{sys, Error, IoContext, Result};
use crate::spec::{self, Context};
use crate::sys::{is_alive, pidfd_open, pidfd_send_signal, pidfd_wait, start_time, wait_dead};

/// Runtime-wide settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where `lxcri-start` and `lxcri-init` are.
    pub libexec_dir: PathBuf,
    /// The liblxc lxcpath; each container's runtime dir is `<root>/<id>`.
    pub root: PathBuf,
    /// liblxc log level.
    pub log_level: String,
    pub layout: Layout,
    /// How long liblxc may take to bring the init to the barrier.
    pub create_timeout: Duration,
    pub start_timeout: Duration,
    /// runc's `--no-new-keyring`: keep the caller's session keyring.
    pub no_new_keyring: bool,
    /// runc's `--systemd-cgroup`: the systemd cgroup driver.
    pub cgroup_driver: cgroup::Driver,
    /// `NAME=value` entries appended to the init's `process.env` (after the
    /// spec's, so they win): runc's socket activation sets `LISTEN_FDS` and
    /// `LISTEN_PID` so.
    pub extra_env: Vec<String>,
}

impl RuntimeConfig {
    pub fn new(libexec_dir: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Self {
        RuntimeConfig {
            libexec_dir: libexec_dir.into(),
            root: root.into(),
            log_level: "WARN".into(),
            layout: Layout::detect(),
            create_timeout: Duration::from_secs(60),
            start_timeout: Duration::from_secs(30),
            no_new_keyring: false,
            cgroup_driver: cgroup::Driver::Cgroupfs,
            extra_env: Vec::new(),
        }
    }

    pub fn rundir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }
}

/// The container's stdio, handed to the start helper (and so to init).
#[derive(Debug)]
pub struct Stdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// More fds for the process, which gets them at 3, 4, ... (runc's
    /// `--preserve-fds`).
    pub extra: Vec<OwnedFd>,
}

impl Stdio {
    /// Just stdin, stdout and stderr.
    pub fn new(stdin: OwnedFd, stdout: OwnedFd, stderr: OwnedFd) -> Stdio {
        Stdio {
            stdin,
            stdout,
            stderr,
            extra: Vec::new(),
        }
    }
}

/// What is persisted in `<rundir>/state.json`, enough to clean up after a crash of
/// whoever created the container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    pub bundle: PathBuf,
    pub rundir: PathBuf,
    pub rootfs: PathBuf,
    pub monitor_pid: i32,
    pub monitor_start_time: u64,
    pub init_pid: i32,
    pub init_start_time: u64,
    /// Relative to the hierarchy roots.
    pub cgroup: PathBuf,
    pub monitor_cgroup: PathBuf,
    pub hierarchies: Vec<PathBuf>,
    /// cgroup dirs that did not exist before this container: removed at destroy.
    pub created_cgroup_dirs: Vec<PathBuf>,
    /// The spec's annotations, for the OCI state.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The container's seccomp filter, also applied to execs (like runc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<SeccompProgram>,
    /// The container's AppArmor profile, for execs that name none (like runc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apparmor_profile: Option<String>,
    /// The container's SELinux label, for execs that name none (like runc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux_label: Option<String>,
    /// poststart hooks, run after a successful start through `hook_helper`.
    #[serde(default)]
    pub poststart: Vec<HookSpec>,
    /// poststop hooks, run by destroy through `hook_helper`.
    #[serde(default)]
    pub poststop: Vec<HookSpec>,
    #[serde(default)]
    pub hook_helper: PathBuf,
    /// What an exec gets from the container unless its process says otherwise
    /// (runc's rules): `process.ioPriority`, `scheduler`, `execCPUAffinity`; and
    /// `linux.memoryPolicy` always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<SchedAttr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_cpu_affinity: Option<CpuAffinity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_policy: Option<MemoryPolicy>,
    /// The systemd driver's transient unit of the container's cgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
}

const STATE_FILE: &str = "state.json";

/// The OCI spec version lxcri reports in its state.
pub const OCI_VERSION: &str = "1.2.0";

impl ContainerState {
    /// The OCI state JSON (what hooks read on stdin and `state` prints).
    pub fn oci_state(&self, status: &str, pid: i32) -> String {
        oci_state_json(&self.id, status, pid, &self.bundle, &self.annotations)
    }

    pub fn load(rundir: &Path) -> Result<ContainerState> {
        let p = rundir.join(STATE_FILE);
        let data = fs::read(&p).ctx("read", &p)?;
        serde_json::from_slice(&data)
            .map_err(std::io::Error::other)
            .ctx("parse", &p)
    }

    fn save(&self) -> Result<()> {
        let p = self.rundir.join(STATE_FILE);
        let tmp = self.rundir.join(".state.json.tmp");
        let data = serde_json::to_vec_pretty(self)
            .map_err(std::io::Error::other)
            .ctx("encode", &p)?;
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &data))
            .ctx("write", &tmp)?;
        fs::rename(&tmp, &p).ctx("rename", &p)
    }
}

/// A created (or started) container, as held by the process that created it.
#[derive(Debug)]
pub struct Container {
    pub state: ContainerState,
    /// Until Start: the runtime's end of the init channel.
    channel: Option<Channel>,
    init_pidfd: OwnedFd,
    /// The pty master of a process with a terminal, until taken.
    console: Option<OwnedFd>,
    /// The LXC monitor is gone (the CLI ends it): execs cannot use liblxc.
    detached: bool,
}

fn oci_state_json(
    id: &str,
    status: &str,
    pid: i32,
    bundle: &Path,
    annotations: &BTreeMap<String, String>,
) -> String {
    let mut v = serde_json::json!({
        "ociVersion": OCI_VERSION,
        "id": id,
        "status": status,
        "bundle": bundle,
        "annotations": annotations,
    });
    if pid > 0 {
        v["pid"] = pid.into();
    }
    v.to_string()
}

/// Hand a process's seccomp listener to the agent at the profile's listenerPath.
fn send_to_agent(
    program: Option<&SeccompProgram>,
    pid: i32,
    state: &str,
    fd: &OwnedFd,
) -> std::result::Result<(), String> {
    let path = program
        .and_then(|p| p.listener_path.as_deref())
        .ok_or("a seccomp listener without linux.seccomp.listenerPath")?;
    let state: serde_json::Value =
        serde_json::from_str(state).map_err(|e| format!("state JSON: {e}"))?;
    let metadata = program.and_then(|p| p.listener_metadata.as_deref());
    let doc = crate::seccomp_agent::process_state(pid, metadata, state);
    crate::seccomp_agent::send(path, &doc, fd.as_fd())?;
    log::info!("sent the seccomp listener of pid {pid} to the agent at {path}");
    Ok(())
}

/// Run one phase of hooks in the runtime's namespaces, through the `lxcri-hook`
/// helper (never forked-and-waited here: a shim's reaper would take the exits).
fn run_host_hooks(
    helper: &Path,
    phase: &str,
    hooks: &[HookSpec],
    state: &str,
) -> std::result::Result<(), String> {
    if hooks.is_empty() {
        return Ok(());
    }
    let input = serde_json::to_vec(&HookRun {
        phase: phase.to_string(),
        hooks: hooks.to_vec(),
        state: state.to_string(),
    })
    .map_err(|e| e.to_string())?;
    let mut child = Command::new(helper)
        .env_clear()
        .stdin(ProcStdio::piped())
        .stdout(ProcStdio::piped())
        .stderr(ProcStdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", helper.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        std::io::Write::write_all(&mut stdin, &input)
            .map_err(|e| format!("write to {}: {e}", helper.display()))?;
    }
    let mut out = Vec::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout
            .read_to_end(&mut out)
            .map_err(|e| format!("read from {}: {e}", helper.display()))?;
    }
    // In the shim the reaper may have collected it already (ECHILD): the result is
    // what the helper wrote, not its exit status.
    let _ = child.wait();
    match serde_json::from_slice::<HookResult>(&out) {
        Ok(HookResult { error: None }) => Ok(()),
        Ok(HookResult { error: Some(e) }) => Err(e),
        Err(_) => Err(format!("{phase} hooks: the hook helper died")),
    }
}

/// containerd's id rule: letters and digits, with single `.`, `_` or `-` between.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 76
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && id.starts_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::Spec(crate::error::SpecError::new(
            "id",
            format!("{id:?} is not a valid container id"),
        )))
    }
}

/// The last lines of the liblxc log, for error messages.
fn log_tail(rundir: &Path) -> String {
    let text = fs::read_to_string(rundir.join("lxc.log")).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("lxcri-start"))
        .collect();
    // liblxc's cause (e.g. the mount that failed) comes a few lines before
    // its summary lines.
    let start = lines.len().saturating_sub(10);
    lines[start..].join("; ")
}

/// Spawn a libexec helper with `stdio`, the channel end at fd 3 and the extra
/// fds at [`PRESERVED_FDS_BASE`].. .
fn spawn_helper(
    helper: &Path,
    args: &[&std::ffi::OsStr],
    rundir: &Path,
    stdio: Stdio,
    channel_end: Channel,
) -> Result<u32> {
    let fd = channel_end.into_fd();
    // Where each fd goes in the helper: the channel, then the extra fds.
    let mut moves: Vec<(i32, i32)> = vec![(fd.as_raw_fd(), INIT_CHANNEL_FD)];
    for (i, extra) in stdio.extra.iter().enumerate() {
        moves.push((extra.as_raw_fd(), PRESERVED_FDS_BASE + i as i32));
    }
    // Above every target, so that no move replaces a source not moved yet.
    let above = PRESERVED_FDS_BASE + stdio.extra.len() as i32;
    let mut cmd = Command::new(helper);
    cmd.args(args)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .current_dir(rundir)
        .stdin(ProcStdio::from(stdio.stdin))
        .stdout(ProcStdio::from(stdio.stdout))
        .stderr(ProcStdio::from(stdio.stderr));
    // SAFETY: the closure runs in the forked child before exec and only calls
    // fcntl/dup2, which are async-signal-safe, on fds that stay open in the parent
    // until spawn returns; it writes into the pre-allocated `moves` only.
    unsafe {
        cmd.pre_exec(move || {
            // First out of the way (close-on-exec copies), then into place: dup2
            // clears close-on-exec on the target.
            for (src, _) in moves.iter_mut() {
                let copy = libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, above);
                if copy < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                *src = copy;
            }
            for (src, dst) in moves.iter() {
                if libc::dup2(*src, *dst) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn().ctx("spawn", helper)?;
    drop(fd);
    drop(stdio.extra);
    // Never waited for here: the caller's reaper collects the exit status.
    Ok(child.id())
}

/// Append `env` to the spec's `process.env` (a spec without a process is
/// refused later, by the process translation).
fn append_env(spec: &mut oci_spec::runtime::Spec, env: &[String]) {
    if env.is_empty() {
        return;
    }
    if let Some(p) = spec.process_mut() {
        let mut all = p.env().clone().unwrap_or_default();
        all.extend(env.iter().cloned());
        p.set_env(Some(all));
    }
}

/// Spawn the start helper (the LXC monitor) with the container's stdio and init's
/// channel end.
fn spawn_monitor(
    cfg: &RuntimeConfig,
    id: &str,
    rundir: &Path,
    stdio: Stdio,
    init_end: Channel,
    join_time: Option<&Path>,
) -> Result<u32> {
    let init_exe = cfg.libexec_dir.join("lxcri-init");
    let config = rundir.join("config");
    let log = rundir.join("lxc.log");
    let mut args = vec![
        id.as_ref(),
        cfg.root.as_os_str(),
        config.as_os_str(),
        init_exe.as_os_str(),
        log.as_os_str(),
    ];
    if let Some(p) = join_time {
        args.push(p.as_os_str());
    }
    spawn_helper(
        &cfg.libexec_dir.join("lxcri-start"),
        &args,
        rundir,
        stdio,
        init_end,
    )
}

/// A process started in a running container by [`Container::exec`].
#[derive(Debug)]
pub struct Exec {
    /// The process's host pid.
    pub pid: i32,
    /// The attach helper's pid: its exit status is the process's.
    pub helper_pid: i32,
    /// None when the process had already exited (and been reaped by the helper)
    /// by the time the runtime heard of it.
    pidfd: Option<OwnedFd>,
    /// The pty master (with `terminal`).
    pub console: Option<OwnedFd>,
}

impl Exec {
    /// Send a signal to the exec'd process.
    pub fn kill(&self, signal: i32) -> Result<()> {
        let gone = || std::io::Error::from_raw_os_error(libc::ESRCH);
        let fd = self.pidfd.as_ref().ok_or_else(|| Error::Sys {
            op: "kill",
            source: gone(),
        })?;
        pidfd_send_signal(fd.as_fd(), signal).map_err(|source| Error::Sys { op: "kill", source })
    }
}

impl Container {
    /// Create the container: translate the bundle's spec, start liblxc through the
    /// start helper and wait until the init is at the barrier. Returns with the
    /// init's host pid; `on_monitor` is told the helper's pid as soon as it exists.
    pub fn create(
        cfg: &RuntimeConfig,
        id: &str,
        bundle: &Path,
        stdio: Stdio,
        on_monitor: &mut dyn FnMut(u32),
    ) -> Result<Container> {
        validate_id(id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&cfg.root)
            .ctx("create", &cfg.root)?;
        let rundir = cfg.rundir(id);
        match fs::DirBuilder::new().mode(0o700).create(&rundir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(id.to_string()))
            }
            Err(e) => return Err(e).ctx("create", &rundir),
        }
        let mut partial = Partial {
            rundir: rundir.clone(),
            monitor: None,
            init: None,
            cgroup: None,
            hierarchies: Vec::new(),
            created: Vec::new(),
            systemd_unit: None,
        };
        match Self::create_inner(cfg, id, bundle, stdio, &mut partial, on_monitor) {
            Ok(c) => Ok(c),
            Err(e) => {
                partial.destroy();
                Err(e)
            }
        }
    }

    fn create_inner(
        cfg: &RuntimeConfig,
        id: &str,
        bundle: &Path,
        stdio: Stdio,
        partial: &mut Partial,
        on_monitor: &mut dyn FnMut(u32),
    ) -> Result<Container> {
        let spec_path = bundle.join("config.json");
        let mut spec = fs::read(&spec_path)
            .and_then(|data| spec::parse_spec(&data).map_err(std::io::Error::from))
            .map_err(|source| Error::ReadSpec {
                path: spec_path.clone(),
                source,
            })?;
        if cfg.cgroup_driver == cgroup::Driver::Cgroupfs {
            resolve_v2_relative_cgroup(cfg.layout, &mut spec)?;
        }
        append_env(&mut spec, &cfg.extra_env);
        let ctx = Context {
            id,
            bundle,
            rundir: &partial.rundir,
            layout: cfg.layout,
            log_level: &cfg.log_level,
            host: spec::HostFeatures::detect(),
            cgroup_driver: cfg.cgroup_driver,
        };
        let mut t = spec::translate(&spec, &ctx)?;
        // The systemd driver: the unit's properties are the container's limits
        // (computed before anything runs, so that a bad value fails early), and
        // systemd must be reachable before liblxc does any work.
        let mut systemd = match &t.cgroups.systemd {
            Some(unit) => {
                let limits = match spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
                    Some(r) => spec::resources::limits(r, cfg.layout)?,
                    None => Vec::new(),
                };
                let props = crate::systemd::resource_properties(cfg.layout, &limits)?;
                let conn = crate::systemd::Systemd::connect(cfg.create_timeout)
                    .map_err(|e| Error::Systemd(e.to_string()))?;
                Some((unit.clone(), limits, props, conn))
            }
            None => None,
        };
        spec::hooks::lxc_keys(
            &t.hooks,
            !t.idmapped.is_empty(),
            &cfg.libexec_dir.join("lxcri-hook"),
            &mut t.lxc,
        )?;
        if cfg.no_new_keyring {
            // liblxc 5.0.2 stores this value as "disable the new session
            // keyring" (`keyring_disable_session`): 1 keeps the caller's
            // keyring, 0 (its default) makes a new one, whatever its manual says.
            t.lxc
                .push("(runtime) no-new-keyring", "lxc.keyring.session", "1")?;
        }
        // The dirs the container's cgroup paths are relative to: the hierarchy
        // roots, or the runtime's own cgroups for a relative cgroupsPath.
        // Hugepage limits liblxc cannot apply here (hybrid host: hugetlb only in
        // the unified hierarchy): written below, while the init waits.
        let hugetlb_v2 = spec::resources::hugetlb_for_host(
            &mut t.lxc,
            cfg.layout,
            cgroup::detect_hugetlb(cfg.layout),
        )?;
        spec::resources::rdma_for_host(&spec, cfg.layout, || cgroup::detect_rdma(cfg.layout))?;
        let hierarchies = if t.cgroups.relative {
            own_cgroup_bases()?
        } else {
            cgroup::hierarchies()
        };
        if !cgroup::procs(&hierarchies, &t.cgroups.container).is_empty() {
            return Err(Error::Spec(crate::error::SpecError::new(
                "linux.cgroupsPath",
                format!(
                    "cgroup {} already holds processes",
                    t.cgroups.container.display()
                ),
            )));
        }
        let mut created = cgroup::missing_dirs(&hierarchies, &t.cgroups.container);
        created.extend(cgroup::missing_dirs(&hierarchies, &t.cgroups.monitor));
        created.extend(cgroup::missing_dirs(
            &hierarchies,
            &t.cgroups.pivot.join("lxc.pivot"),
        ));
        created.sort();
        created.dedup();
        partial.hierarchies = hierarchies.clone();
        partial.created = created.clone();
        partial.cgroup = Some(t.cgroups.container.clone());

        let config = partial.rundir.join("config");
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&config)
            .and_then(|mut f| std::io::Write::write_all(&mut f, t.lxc.render().as_bytes()))
            .ctx("write", &config)?;

        let (rt_end, init_end) = Channel::pair().map_err(|source| Error::Sys {
            op: "socketpair",
            source,
        })?;
        let preserved_fds = stdio.extra.len() as u32;
        let monitor_pid = spawn_monitor(
            cfg,
            id,
            &partial.rundir,
            stdio,
            init_end,
            t.join_time.as_deref(),
        )? as i32;
        on_monitor(monitor_pid as u32);
        let monitor_start_time = start_time(monitor_pid).unwrap_or(0);
        partial.monitor = Some((
            monitor_pid,
            monitor_start_time,
            pidfd_open(monitor_pid).ok(),
        ));

        let fail = |reason: String| Error::StartFailed {
            id: id.to_string(),
            reason,
        };
        let recv = |what: &str| {
            rt_end
                .recv_timeout::<InitMessage>(cfg.create_timeout)
                .map_err(|e| {
                    fail(format!(
                        "waiting for {what}: {e}; {}",
                        log_tail(&partial.rundir)
                    ))
                })?
                .ok_or_else(|| {
                    fail(format!(
                        "liblxc did not start the init: {}",
                        log_tail(&partial.rundir)
                    ))
                })
        };
        let annotations: BTreeMap<String, String> = spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let hook_helper = cfg.libexec_dir.join("lxcri-hook");
        let mut hello = recv("init")?;
        // With prestart/createRuntime/createContainer hooks, `lxcri-hook` runs as
        // liblxc's mount hook (namespaces and mounts made, before pivot_root) and
        // stops there: the runtime's hooks run now, then the container's.
        let mut hook_pid = None;
        if let InitMessage::HookPoint { pid } = hello.message {
            hook_pid = Some(pid);
            // The id-mapped mounts first (runc makes its mounts before the
            // prestart hooks): made here, in the host's user namespace, and
            // attached in the rootfs by the hook, one at a time.
            for m in &t.idmapped {
                let tree = crate::idmap::detached_mount(m)
                    .map_err(|e| fail(format!("{}: id-mapped mount: {e}", m.field)))?;
                rt_end
                    .send_with_fds(
                        &RuntimeMessage::AttachMounts {
                            mounts: vec![AttachMount {
                                field: m.field.clone(),
                                destination: m.destination.clone(),
                                is_dir: m.is_dir,
                            }],
                        },
                        &[tree.as_fd()],
                    )
                    .map_err(|e| fail(format!("send the id-mapped mount: {e}")))?;
                drop(tree);
                match recv("id-mapped mounts")?.message {
                    InitMessage::MountsAttached => {}
                    InitMessage::Error { message } => return Err(fail(message)),
                    m => return Err(fail(format!("unexpected hook message {m:?}"))),
                }
            }
            let creating = oci_state_json(id, "creating", pid, bundle, &annotations);
            run_host_hooks(&hook_helper, "prestart", &t.hooks.prestart, &creating).map_err(fail)?;
            run_host_hooks(
                &hook_helper,
                "createRuntime",
                &t.hooks.create_runtime,
                &creating,
            )
            .map_err(fail)?;
            rt_end
                .send(&RuntimeMessage::RunHooks {
                    hooks: t.hooks.create_container.clone(),
                    state: creating,
                })
                .map_err(|e| fail(format!("send hooks: {e}")))?;
            match recv("createContainer hooks")?.message {
                InitMessage::HooksDone => {}
                InitMessage::Error { message } => return Err(fail(message)),
                m => return Err(fail(format!("unexpected hook message {m:?}"))),
            }
            hello = recv("init")?;
        }
        let init_pid = match (hello.message, hello.pid) {
            (InitMessage::Hello, Some(pid)) if pid > 0 && hook_pid.unwrap_or(pid) == pid => pid,
            (m, pid) => {
                return Err(fail(format!(
                    "unexpected init message {m:?} from pid {pid:?} (hook pid {hook_pid:?})"
                )))
            }
        };
        // The init is blocked on us: its pid cannot be reused before this pidfd exists.
        let init_pidfd = pidfd_open(init_pid).map_err(|source| Error::Sys {
            op: "pidfd_open",
            source,
        })?;
        let init_start_time = start_time(init_pid).unwrap_or(0);
        partial.init = Some(
            init_pidfd
                .try_clone()
                .map_err(|source| Error::Sys { op: "dup", source })?,
        );

        if !hugetlb_v2.is_empty() {
            set_unified_hugetlb(&hierarchies, &t.cgroups.container, &hugetlb_v2).map_err(fail)?;
        }
        // liblxc has made the cgroup, written the limits and put the init there:
        // now systemd adopts it as a transient unit with the same limits, then
        // the exact spec values are written again (systemd rounds a CPU quota).
        if let Some((unit, limits, resource_props, conn)) = systemd.as_mut() {
            let mut props = crate::systemd::unit_properties(
                unit,
                cfg.layout,
                init_pid as u32,
                &format!("lxcri container {id}"),
            );
            props.append(resource_props);
            partial.systemd_unit = Some(unit.name.clone());
            conn.start_unit(&unit.name, props)
                .map_err(|e| fail(e.to_string()))?;
            for (file, value) in limits.iter() {
                if crate::systemd::managed_file(cfg.layout, file) {
                    cgroup::write_file(&hierarchies, &t.cgroups.container, file, value)
                        .map_err(|e| fail(e.to_string()))?;
                }
            }
            log::info!("container id={id} systemd unit={} started", unit.name);
        }
        drop(systemd);
        let mut init = t.init.clone();
        init.process.preserved_fds = preserved_fds;
        init.hooks = InitHooks {
            start_container: t.hooks.start_container.clone(),
            start_state: oci_state_json(id, "created", init_pid, bundle, &annotations),
        };
        rt_end
            .send(&RuntimeMessage::Setup {
                spec: Box::new(init),
            })
            .map_err(|e| fail(format!("send setup to init: {e}")))?;
        let console = loop {
            match rt_end.recv_timeout::<InitMessage>(cfg.create_timeout) {
                Ok(Some(r)) if r.message == InitMessage::Ready => break r.fds.into_iter().next(),
                Ok(Some(r)) => match (r.message, r.fds.into_iter().next()) {
                    (InitMessage::Error { message }, _) => return Err(fail(message)),
                    // The init loaded a filter with SCMP_ACT_NOTIFY rules (runc's
                    // procSeccomp): its agent gets the state "creating".
                    (InitMessage::SeccompListener { .. }, Some(fd)) => {
                        let state = oci_state_json(id, "creating", init_pid, bundle, &annotations);
                        send_to_agent(t.init.process.seccomp.as_ref(), init_pid, &state, &fd)
                            .map_err(fail)?;
                        rt_end
                            .send(&RuntimeMessage::SeccompDone)
                            .map_err(|e| fail(format!("answer the init: {e}")))?;
                    }
                    (m, _) => return Err(fail(format!("unexpected init message {m:?}"))),
                },
                Ok(None) => {
                    return Err(fail(format!(
                        "init exited during setup; {}",
                        log_tail(&partial.rundir)
                    )))
                }
                Err(e) => return Err(fail(format!("waiting for init setup: {e}"))),
            }
        };

        let state = ContainerState {
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
            rundir: partial.rundir.clone(),
            rootfs: t.rootfs.clone(),
            monitor_pid,
            monitor_start_time,
            init_pid,
            init_start_time,
            cgroup: t.cgroups.container,
            monitor_cgroup: t.cgroups.monitor,
            hierarchies,
            created_cgroup_dirs: created,
            annotations,
            seccomp: t.init.process.seccomp.clone(),
            apparmor_profile: t.init.process.apparmor_profile.clone(),
            selinux_label: t.init.process.selinux_label.clone(),
            poststart: t.hooks.poststart.clone(),
            poststop: t.hooks.poststop.clone(),
            hook_helper,
            io_priority: t.init.process.io_priority,
            scheduler: t.init.process.scheduler,
            exec_cpu_affinity: t.exec_cpu_affinity.clone(),
            memory_policy: t.init.process.memory_policy.clone(),
            systemd_unit: t.cgroups.systemd.as_ref().map(|u| u.name.clone()),
        };
        state.save()?;
        log::info!("created container id={id} init_pid={init_pid} monitor_pid={monitor_pid}");
        if t.init.process.terminal && console.is_none() {
            return Err(fail("init did not send its console".into()));
        }
        Ok(Container {
            state,
            channel: Some(rt_end),
            init_pidfd,
            console,
            detached: false,
        })
    }

    /// Run another process in the running container (through the attach helper).
    /// `on_helper` is told the helper's pid as soon as it exists; the helper's exit
    /// status is the process's. An exec that fails (missing binary...) is an error.
    pub fn exec(
        &self,
        cfg: &RuntimeConfig,
        process: &oci_spec::runtime::Process,
        stdio: Stdio,
        on_helper: &mut dyn FnMut(u32),
    ) -> Result<Exec> {
        self.exec_inner(cfg, process, stdio, on_helper, false)
    }

    /// Like [`Container::exec`], but the helper exits (0) once it has reported the
    /// pid instead of waiting: the process is reparented to the caller's nearest
    /// subreaper, which sees its exit status (the CLI's `exec --detach`).
    pub fn exec_detached(
        &self,
        cfg: &RuntimeConfig,
        process: &oci_spec::runtime::Process,
        stdio: Stdio,
        on_helper: &mut dyn FnMut(u32),
    ) -> Result<Exec> {
        self.exec_inner(cfg, process, stdio, on_helper, true)
    }

    fn exec_inner(
        &self,
        cfg: &RuntimeConfig,
        process: &oci_spec::runtime::Process,
        stdio: Stdio,
        on_helper: &mut dyn FnMut(u32),
        detach: bool,
    ) -> Result<Exec> {
        let id = &self.state.id;
        let mut spec = spec::process::translate_process(process, &self.state.rootfs)?;
        spec.seccomp = self.state.seccomp.clone();
        if spec.apparmor_profile.is_none() {
            spec.apparmor_profile = self.state.apparmor_profile.clone();
        }
        if spec.selinux_label.is_none() {
            spec.selinux_label = self.state.selinux_label.clone();
        }
        spec.memory_policy = self.state.memory_policy.clone();
        if spec.io_priority.is_none() {
            spec.io_priority = self.state.io_priority;
        }
        if spec.scheduler.is_none() {
            spec.scheduler = self.state.scheduler;
        }
        if spec.cpu_affinity.is_none() {
            spec.cpu_affinity = self.state.exec_cpu_affinity.clone();
        }
        spec.preserved_fds = stdio.extra.len() as u32;
        let (rt_end, helper_end) = Channel::pair().map_err(|source| Error::Sys {
            op: "socketpair",
            source,
        })?;
        let log = self.state.rundir.join("lxc.log");
        let args = [id.as_ref(), cfg.root.as_os_str(), log.as_os_str()];
        let helper_pid = spawn_helper(
            &cfg.libexec_dir.join("lxcri-attach"),
            &args,
            &self.state.rundir,
            stdio,
            helper_end,
        )? as i32;
        on_helper(helper_pid as u32);
        let fail = |message: String| Error::Exec {
            id: id.clone(),
            message,
        };
        rt_end
            .send(&RuntimeMessage::Exec {
                process: Box::new(spec),
                detach,
                init_pid: self.detached.then_some(self.state.init_pid),
                cgroup_procs: if self.detached {
                    cgroup::procs_files(&self.state.hierarchies, &self.state.cgroup)
                } else {
                    Vec::new()
                },
            })
            .map_err(|e| fail(format!("send to the attach helper: {e}")))?;
        let (pid, console) = loop {
            let reply = rt_end
                .recv_timeout::<InitMessage>(cfg.start_timeout)
                .map_err(|e| fail(format!("waiting for the attach helper: {e}")))?
                .ok_or_else(|| {
                    fail(format!(
                        "the attach helper died; {}",
                        log_tail(&self.state.rundir)
                    ))
                })?;
            let fd = reply.fds.into_iter().next();
            match (reply.message, fd) {
                (InitMessage::Started { pid }, console) => break (pid, console),
                (InitMessage::Error { message }, _) => return Err(fail(message)),
                // The exec'd process loaded the container's filter with its
                // SCMP_ACT_NOTIFY rules: a new listener, for the process's pid
                // (runc's setns procSeccomp, state "running").
                (InitMessage::SeccompListener { pid: Some(pid) }, Some(fd)) => {
                    let state = oci_state_json(
                        id,
                        "running",
                        self.state.init_pid,
                        &self.state.bundle,
                        &self.state.annotations,
                    );
                    // On failure the helper sees the channel close and kills
                    // the process.
                    send_to_agent(self.state.seccomp.as_ref(), pid, &state, &fd).map_err(fail)?;
                    rt_end
                        .send(&RuntimeMessage::SeccompDone)
                        .map_err(|e| fail(format!("answer the attach helper: {e}")))?;
                }
                (m, _) => return Err(fail(format!("unexpected message {m:?}"))),
            }
        };
        // A short-lived process may already be gone (the helper reaps it).
        let pidfd = pidfd_open(pid).ok();
        log::info!("exec in container id={id} pid={pid} helper_pid={helper_pid}");
        Ok(Exec {
            pid,
            helper_pid,
            pidfd,
            console,
        })
    }

    /// The pty master of the init (with `process.terminal`), once.
    pub fn take_console(&mut self) -> Option<OwnedFd> {
        self.console.take()
    }

    pub fn init_pid(&self) -> i32 {
        self.state.init_pid
    }

    /// Release the init from the barrier. Returns `Some(message)` when the exec of
    /// the process failed (the init then exits 126/127 and its exit is reported as
    /// usual), `None` when the process runs.
    pub fn start(&mut self, timeout: Duration) -> Result<Option<String>> {
        let ch = self.channel.take().ok_or_else(|| Error::InvalidState {
            id: self.state.id.clone(),
            status: "started".into(),
            expected: "created",
        })?;
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe2"))?;
        ch.send_with_fd(&RuntimeMessage::Start, w.as_fd())
            .map_err(|e| Error::StartFailed {
                id: self.state.id.clone(),
                reason: format!("init is gone: {e}"),
            })?;
        drop(w);
        drop(ch);
        let msg = read_exec_result(r, &self.state.id, timeout)?;
        log::info!(
            "started container id={} exec_ok={}",
            self.state.id,
            msg.is_none()
        );
        run_poststart(&self.state, &msg);
        Ok(msg)
    }

    /// Send a signal to the container's init.
    pub fn kill(&self, signal: i32) -> Result<()> {
        pidfd_send_signal(self.init_pidfd.as_fd(), signal)
            .map_err(|source| Error::Sys { op: "kill", source })
    }

    /// Freeze (pause) or thaw (resume) every process of the container.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        cgroup::freeze(&self.state.hierarchies, &self.state.cgroup, frozen).map_err(|source| {
            Error::Sys {
                op: if frozen { "freeze" } else { "thaw" },
                source,
            }
        })
    }

    /// Change the live resource limits of the container's cgroup.
    pub fn update(&self, layout: Layout, r: &oci_spec::runtime::LinuxResources) -> Result<()> {
        // Without device rules in the request, limits() still lists the default
        // allow rules: they are in place already, and cgroup v2 has no files for
        // them (liblxc attaches an eBPF program).
        let devices = r.devices().as_ref().is_some_and(|d| !d.is_empty());
        if devices && layout == Layout::V2 {
            return Err(crate::error::SpecError::new(
                "linux.resources.devices",
                "live updates of device rules are not supported on cgroup v2",
            )
            .into());
        }
        // A hybrid host whose hugetlb is only in the unified hierarchy: the
        // hugepage limits go there, as at create.
        let hybrid_hugetlb = layout != Layout::V2
            && cgroup::detect_hugetlb(layout) == cgroup::Hugetlb::HybridUnified;
        let limits = spec::resources::limits(r, layout)?;
        // The systemd driver: the unit's properties first (as runc), so that
        // systemd keeps the new values; then the files (the exact values).
        if let Some(unit) = &self.state.systemd_unit {
            let mut props = crate::systemd::resource_properties(layout, &limits)?;
            if !devices {
                props.retain(|(n, _)| n != "DevicePolicy" && n != "DeviceAllow");
            }
            crate::systemd::Systemd::connect(SYSTEMD_TIMEOUT)
                .and_then(|mut c| c.set_properties(unit, props))
                .map_err(|e| Error::Systemd(e.to_string()))?;
        }
        let mut unified = Vec::new();
        for (name, value) in limits {
            if name.starts_with("devices.") && !devices {
                continue;
            }
            if hybrid_hugetlb && name.starts_with("hugetlb.") {
                unified.push((name.replace(".limit_in_bytes", ".max"), value));
                continue;
            }
            cgroup::write_file(&self.state.hierarchies, &self.state.cgroup, &name, &value)
                .map_err(|source| Error::Sys {
                    op: "update cgroup",
                    source,
                })?;
        }
        if !unified.is_empty() {
            set_unified_hugetlb(&self.state.hierarchies, &self.state.cgroup, &unified).map_err(
                |message| {
                    let reason = message.trim_start_matches("linux.resources.hugepageLimits: ");
                    crate::error::SpecError::new("linux.resources.hugepageLimits", reason)
                },
            )?;
        }
        Ok(())
    }

    /// Signal every process in the container's cgroup.
    pub fn kill_all(&self, signal: i32) -> Result<()> {
        kill_cgroup(&self.state, signal);
        Ok(())
    }
}

fn kill_cgroup(state: &ContainerState, signal: i32) {
    for pid in cgroup::procs(&state.hierarchies, &state.cgroup) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::try_from(signal).ok(),
        );
    }
}

/// Remove everything a container left: kill what still runs (init, monitor, any
/// process in its cgroup), remove the cgroup dirs it created and its runtime dir.
/// Works from the persisted state alone, so it also cleans up after a crash.
pub fn destroy(state: &ContainerState) -> Result<()> {
    let kill = |pid: i32, start: u64| {
        if is_alive(pid, start) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    };
    kill(state.init_pid, state.init_start_time);
    kill_cgroup(state, libc::SIGKILL);
    if !wait_dead(
        state.init_pid,
        state.init_start_time,
        Duration::from_secs(5),
    ) {
        log::warn!("init of {} did not die", state.id);
    }
    // The monitor exits by itself once init is gone; force it if it does not.
    if !wait_dead(
        state.monitor_pid,
        state.monitor_start_time,
        Duration::from_secs(5),
    ) {
        kill(state.monitor_pid, state.monitor_start_time);
        wait_dead(
            state.monitor_pid,
            state.monitor_start_time,
            Duration::from_secs(5),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cgroup::procs(&state.hierarchies, &state.cgroup).is_empty() && Instant::now() < deadline
    {
        kill_cgroup(state, libc::SIGKILL);
        std::thread::sleep(Duration::from_millis(20));
    }
    // The systemd driver: the unit goes (systemd removes its cgroup; a scope
    // whose processes are gone may have stopped by itself already).
    if let Some(unit) = &state.systemd_unit {
        stop_systemd_unit(unit);
    }
    let errors = cgroup::remove_dirs(&state.created_cgroup_dirs);
    for (d, e) in &errors {
        log::warn!("remove cgroup dir {}: {e}", d.display());
    }
    for rel in [&state.cgroup, &state.monitor_cgroup] {
        cgroup::prune_owned_parents(&state.hierarchies, rel);
    }
    // The rundir goes after the hooks: a poststop hook may still look at the state.
    if let Err(e) = run_host_hooks(
        &state.hook_helper,
        "poststop",
        &state.poststop,
        &state.oci_state("stopped", 0),
    ) {
        log::warn!("container id={}: {e}", state.id);
    }
    remove_rundir(&state.rundir)
}

/// How long a D-Bus call to systemd (and its job) may take outside create.
const SYSTEMD_TIMEOUT: Duration = Duration::from_secs(30);

/// Stop a container's systemd unit; a failure is logged (the delete goes on).
fn stop_systemd_unit(unit: &str) {
    let r = crate::systemd::Systemd::connect(SYSTEMD_TIMEOUT).and_then(|mut c| c.stop_unit(unit));
    match r {
        Ok(()) => log::info!("systemd unit={unit} stopped"),
        Err(e) => log::warn!("stop systemd unit {unit}: {e}"),
    }
}

/// liblxc's lock file of a container, `/run/lxc/lock/<lxcpath>/.<name>`. The
/// per-lxcpath directory is shared by all containers of that root and stays (another
/// container may be creating its lock in it right now).
fn lxc_lock_file(rundir: &Path) -> Option<PathBuf> {
    let lxcpath = rundir.parent()?;
    let name = rundir.file_name()?.to_string_lossy();
    let rel = lxcpath.strip_prefix("/").ok()?;
    Some(
        Path::new("/run/lxc/lock")
            .join(rel)
            .join(format!(".{name}")),
    )
}

fn remove_rundir(rundir: &Path) -> Result<()> {
    if let Some(lock) = lxc_lock_file(rundir) {
        match fs::remove_file(&lock) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                log::warn!("remove {}: {e}", lock.display())
            }
            _ => {}
        }
    }
    match fs::remove_dir_all(rundir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).ctx("remove", rundir),
    }
}

/// On a pure cgroup v2 host a relative `linux.cgroupsPath` is taken below the
/// parent of the runtime's own cgroup (runc's rule: the own cgroup holds
/// processes and cannot delegate controllers): made absolute here.
fn resolve_v2_relative_cgroup(layout: Layout, spec: &mut Spec) -> Result<()> {
    let Some(linux) = spec.linux_mut().as_mut() else {
        return Ok(());
    };
    let path = linux.cgroups_path().clone();
    if layout != Layout::V2 || !cgroup::is_relative(path.as_deref()) {
        return Ok(());
    }
    let rel = path.unwrap_or_default();
    let own =
        fs::read_to_string("/proc/self/cgroup").ctx("read", Path::new("/proc/self/cgroup"))?;
    let abs = cgroup::v2_relative_path(&own, &rel)
        .map_err(|e| crate::error::SpecError::new("linux.cgroupsPath", e))?;
    linux.set_cgroups_path(Some(Path::new("/").join(abs)));
    Ok(())
}

/// The runtime's own cgroup in each hierarchy (the start helper, and so liblxc
/// with `lxc.cgroup.relative = 1`, inherits them).
fn own_cgroup_bases() -> Result<Vec<PathBuf>> {
    let read = |p: &str| fs::read_to_string(p).ctx("read", Path::new(p));
    let (mountinfo, own) = (read("/proc/self/mountinfo")?, read("/proc/self/cgroup")?);
    cgroup::own_bases(&mountinfo, &own)
        .map_err(|e| crate::error::SpecError::new("linux.cgroupsPath", e).into())
}

/// Write hugepage limits (`hugetlb.<size>.max`) into the container's cgroup of
/// the unified hierarchy of a hybrid host, enabling the controller along the
/// path first. Runs while the init waits at the barrier, before any of the
/// container's own code.
fn set_unified_hugetlb(
    hierarchies: &[PathBuf],
    rel: &Path,
    limits: &[(String, String)],
) -> std::result::Result<(), String> {
    let unified = cgroup::unified_of(hierarchies)
        .ok_or("linux.resources.hugepageLimits: no unified cgroup hierarchy for hugetlb")?;
    cgroup::enable_v2_controller(unified, rel, "hugetlb")
        .map_err(|e| format!("linux.resources.hugepageLimits: {e}"))?;
    for (file, value) in limits {
        let p = unified.join(rel).join(file);
        fs::write(&p, value).map_err(|e| {
            format!(
                "linux.resources.hugepageLimits: write {value} to {}: {e}",
                p.display()
            )
        })?;
    }
    Ok(())
}

/// What a failed create has made so far.
struct Partial {
    rundir: PathBuf,
    monitor: Option<(i32, u64, Option<OwnedFd>)>,
    init: Option<OwnedFd>,
    cgroup: Option<PathBuf>,
    hierarchies: Vec<PathBuf>,
    created: Vec<PathBuf>,
    systemd_unit: Option<String>,
}

impl Partial {
    fn destroy(self) {
        if let Some(fd) = &self.init {
            let _ = pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
        }
        if let Some((pid, start, fd)) = &self.monitor {
            match fd {
                Some(fd) => {
                    if !pidfd_wait(fd.as_fd(), Duration::from_secs(5)) {
                        let _ = pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
                        pidfd_wait(fd.as_fd(), Duration::from_secs(5));
                    }
                }
                None => {
                    wait_dead(*pid, *start, Duration::from_secs(5));
                }
            }
        }
        if let Some(cg) = &self.cgroup {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !cgroup::procs(&self.hierarchies, cg).is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Some(unit) = &self.systemd_unit {
            stop_systemd_unit(unit);
        }
        for (d, e) in cgroup::remove_dirs(&self.created) {
            log::warn!("remove cgroup dir {}: {e}", d.display());
        }
        if let Err(e) = remove_rundir(&self.rundir) {
            log::warn!("{e}");
        }
    }
}

/// The name of the listening socket of a detached init in its runtime dir.
pub const INIT_SOCKET: &str = "init.sock";

/// The CLI path, where every command is a new process: the process that created
/// the container ends, so the barrier moves from the init channel to a listening
/// socket in the runtime dir, and later commands rebuild a handle from the state.
impl Container {
    /// Hand the barrier over to a listening socket at `<rundir>/init.sock`: the init
    /// clears its parent-death signal (so that ending the LXC monitor does not kill
    /// it) and then waits there for [`start_detached`]. Only for a created container.
    pub fn detach_init(&mut self, timeout: Duration) -> Result<()> {
        use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType};
        let id = self.state.id.clone();
        let ch = self.channel.take().ok_or_else(|| Error::InvalidState {
            id: id.clone(),
            status: "started".into(),
            expected: "created",
        })?;
        let path = self.state.rundir.join(INIT_SOCKET);
        let listener = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(sys("socket"))?;
        let addr = nix::sys::socket::UnixAddr::new(&path).ctx("socket address", &path)?;
        bind(listener.as_raw_fd(), &addr).ctx("bind", &path)?;
        listen(&listener, Backlog::new(4).map_err(sys("listen"))?).ctx("listen", &path)?;
        let fail = |reason: String| Error::StartFailed {
            id: id.clone(),
            reason,
        };
        ch.send_with_fd(&RuntimeMessage::Detach, listener.as_fd())
            .map_err(|e| fail(format!("detach the init: {e}")))?;
        match ch.recv_timeout::<InitMessage>(timeout) {
            Ok(Some(r)) if r.message == InitMessage::Detached => {
                self.detached = true;
                Ok(())
            }
            Ok(Some(r)) => Err(fail(format!("detach the init: {:?}", r.message))),
            Ok(None) => Err(fail("the init exited while detaching".into())),
            Err(e) => Err(fail(format!("detach the init: {e}"))),
        }
    }

    /// A handle on a created (detached) or running container, rebuilt from its
    /// persisted state by another process than its creator. Fails with
    /// [`Error::NotRunning`] when the init recorded in the state is gone.
    pub fn from_state(state: ContainerState) -> Result<Container> {
        let gone = || Error::NotRunning(state.id.clone());
        let init_pidfd = pidfd_open(state.init_pid).map_err(|_| gone())?;
        // The pidfd pins the process: if it is the one that started at the
        // recorded time now, signals through the pidfd reach it and no other.
        if !is_alive(state.init_pid, state.init_start_time) {
            return Err(gone());
        }
        Ok(Container {
            state,
            channel: None,
            init_pidfd,
            console: None,
            detached: true,
        })
    }
}

/// Release a detached init (see [`Container::detach_init`]) from the barrier: the
/// CLI's `start`. Returns like [`Container::start`].
pub fn start_detached(state: &ContainerState, timeout: Duration) -> Result<Option<String>> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType};
    let path = state.rundir.join(INIT_SOCKET);
    let fail = |reason: String| Error::StartFailed {
        id: state.id.clone(),
        reason,
    };
    let conn = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(sys("socket"))?;
    let addr = nix::sys::socket::UnixAddr::new(&path).ctx("socket address", &path)?;
    connect(conn.as_raw_fd(), &addr)
        .map_err(|e| fail(format!("the init does not wait at {}: {e}", path.display())))?;
    let ch = Channel::from(conn);
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe2"))?;
    ch.send_with_fd(&RuntimeMessage::Start, w.as_fd())
        .map_err(|e| fail(format!("init is gone: {e}")))?;
    drop(w);
    drop(ch);
    let msg = read_exec_result(r, &state.id, timeout)?;
    log::info!(
        "started container id={} exec_ok={}",
        state.id,
        msg.is_none()
    );
    run_poststart(state, &msg);
    Ok(msg)
}

/// poststart hooks, after a start whose exec succeeded (`exec_error` is None); a
/// failure is logged, as OCI says.
fn run_poststart(state: &ContainerState, exec_error: &Option<String>) {
    if exec_error.is_some() {
        return;
    }
    let st = state.oci_state("running", state.init_pid);
    if let Err(e) = run_host_hooks(&state.hook_helper, "poststart", &state.poststart, &st) {
        log::warn!("container id={}: {e}", state.id);
    }
}

/// Read the init's exec result pipe to its end: empty means the exec succeeded.
fn read_exec_result(r: OwnedFd, id: &str, timeout: Duration) -> Result<Option<String>> {
    let mut f = fs::File::from(r);
    let deadline = Instant::now() + timeout;
    let mut msg = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        wait_readable(f.as_fd(), left).map_err(|_| Error::Timeout(format!("start of {id}")))?;
        let mut buf = [0u8; 4096];
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => msg.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::Sys {
                    op: "read exec status",
                    source: e,
                })
            }
        }
    }
    Ok((!msg.is_empty()).then(|| String::from_utf8_lossy(&msg).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "t1", "a.b_c-d", "0123"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", "-a", "a/b", "..", "a b", "a\nb"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lock_file_path() {
        assert_eq!(
            lxc_lock_file(Path::new("/run/containerd/lxcri/default/t1")),
            Some(PathBuf::from(
                "/run/lxc/lock/run/containerd/lxcri/default/.t1"
            ))
        );
    }

    #[test]
    fn state_roundtrip() {
        let d = tempfile::tempdir().unwrap();
        let s = ContainerState {
            id: "x".into(),
            bundle: "/b".into(),
            rundir: d.path().to_path_buf(),
            rootfs: "/b/rootfs".into(),
            monitor_pid: 2,
            monitor_start_time: 3,
            init_pid: 4,
            init_start_time: 5,
            cgroup: "default/x".into(),
            monitor_cgroup: "lxcri.monitor/default/x".into(),
            hierarchies: vec!["/sys/fs/cgroup/memory".into()],
            created_cgroup_dirs: vec![],
            annotations: [("a".to_string(), "b".to_string())].into(),
            seccomp: None,
            apparmor_profile: None,
            selinux_label: None,
            poststart: vec![],
            poststop: vec![],
            hook_helper: "/usr/local/libexec/lxcri/lxcri-hook".into(),
            io_priority: Some(2 << 13 | 5),
            scheduler: Some(SchedAttr {
                policy: 3,
                nice: 5,
                ..Default::default()
            }),
            exec_cpu_affinity: Some(CpuAffinity {
                initial: Some(vec![0]),
                final_cpus: Some(vec![1]),
            }),
            memory_policy: Some(MemoryPolicy {
                mode: 2,
                nodes: vec![0],
            }),
            systemd_unit: Some("lxcri-x.scope".into()),
        };
        s.save().unwrap();
        assert_eq!(ContainerState::load(d.path()).unwrap(), s);
    }
}
