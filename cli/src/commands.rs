//! The commands. Each takes the container's lock first (see `lock`), then works
//! from the runtime dir: runtime-core's `state.json` plus the CLI's metadata.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill as send_signal, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Process, Spec};
use runtime_core::cgroup::{self, Layout};
use runtime_core::{Container, ContainerState, RuntimeConfig, Stdio};

use crate::lock::Lock;
use crate::meta::{self, Found, Meta, Status};
use crate::{Cli, Command, CreateOpts, ListFormat};

/// Where the libexec helpers are; env `LXCRI_LIBEXEC_DIR` overrides (as for the shim).
pub const DEFAULT_LIBEXEC_DIR: &str = "/usr/local/libexec/lxcri";

const NOT_EXIST: &str = "container does not exist";
const NOT_RUNNING: &str = "container not running";

fn runtime_config(cli: &Cli) -> RuntimeConfig {
    let libexec =
        std::env::var("LXCRI_LIBEXEC_DIR").unwrap_or_else(|_| DEFAULT_LIBEXEC_DIR.to_string());
    let mut cfg = RuntimeConfig::new(libexec, &cli.root);
    if cli.systemd_cgroup {
        cfg.cgroup_driver = cgroup::Driver::Systemd;
    }
    if cli.debug {
        cfg.log_level = "DEBUG".into();
    }
    cfg
}

pub fn run(cli: &Cli) -> Result<u8> {
    if cli.version {
        print_version();
        return Ok(0);
    }
    if let Some(r) = cli.rootless.as_deref() {
        if !matches!(r, "false" | "auto") {
            bail!("--rootless={r}: lxcri only runs containers as root");
        }
    }
    let Some(cmd) = &cli.command else {
        use clap::CommandFactory;
        let _ = crate::Cli::command().print_help();
        bail!("no command given");
    };
    match cmd {
        Command::Create(a) => create(cli, &a.opts, &a.id, false).map(|_| 0),
        Command::Start(a) => start(cli, &a.id).map(|_| 0),
        Command::Run(a) => run_container(cli, a),
        Command::State(a) => state(cli, &a.id).map(|_| 0),
        Command::Kill(a) => kill(cli, &a.id, a.signal.as_deref(), a.all).map(|_| 0),
        Command::Delete(a) => delete(cli, &a.id, a.force).map(|_| 0),
        Command::Exec(a) => exec(cli, a),
        Command::Pause(a) => pause(cli, &a.id, true).map(|_| 0),
        Command::Resume(a) => pause(cli, &a.id, false).map(|_| 0),
        Command::Ps(a) => ps(cli, a).map(|_| 0),
        Command::Update(a) => update(cli, a).map(|_| 0),
        Command::Events(a) => events(cli, a).map(|_| 0),
        Command::List(a) => list(cli, a.format, a.quiet).map(|_| 0),
        Command::Features => {
            println!(
                "{}",
                serde_json::to_string_pretty(&crate::features::features())?
            );
            Ok(0)
        }
        Command::Spec(a) => crate::spec::write_default(&a.bundle).map(|_| 0),
    }
}

fn print_version() {
    println!("lxcri version {}", env!("CARGO_PKG_VERSION"));
    println!("liblxc: {}", lxcri_ffi::version());
    println!("spec: {}", crate::SPEC_VERSION);
}

/// The container, which must exist.
fn find(cli: &Cli, id: &str) -> Result<Found> {
    meta::find(&cli.root, id)?.ok_or_else(|| anyhow!(NOT_EXIST))
}

fn state_of(f: &Found) -> Result<&ContainerState> {
    f.state
        .as_ref()
        .ok_or_else(|| anyhow!("container {} is not fully created", f.id))
}

/// A live handle (created, running or paused), else "container not running".
fn live(f: &Found) -> Result<Container> {
    match f.status {
        Status::Created | Status::Running | Status::Paused => {}
        Status::Stopped | Status::Creating => bail!(NOT_RUNNING),
    }
    Container::from_state(state_of(f)?.clone()).map_err(|e| match e {
        runtime_core::Error::NotRunning(_) => anyhow!(NOT_RUNNING),
        e => anyhow!(e),
    })
}

/// Our stdio for the process, with `extra` (the preserved fds).
fn stdio(extra: Vec<OwnedFd>) -> Result<Stdio> {
    let dup = |fd: std::os::fd::BorrowedFd<'_>| -> Result<OwnedFd> {
        fd.try_clone_to_owned().context("dup stdio")
    };
    let mut s = Stdio::new(
        dup(std::io::stdin().as_fd())?,
        dup(std::io::stdout().as_fd())?,
        dup(std::io::stderr().as_fd())?,
    );
    s.extra = extra;
    Ok(s)
}

/// `--preserve-fds N`: our fds 3..3+N, which the process gets at the same
/// numbers (as runc). Taken before this command opens files of its own.
fn preserved_fds(count: u32) -> Result<Vec<OwnedFd>> {
    (3..3 + count as i32)
        .map(|fd| {
            // SAFETY: fd is only borrowed for the duplicate, which F_DUPFD_CLOEXEC
            // makes; a closed fd is reported, not used.
            let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            borrowed
                .try_clone_to_owned()
                .with_context(|| format!("--preserve-fds {count}: fd {fd} is not open"))
        })
        .collect()
}

/// Socket activation, as runc's create and run: when `LISTEN_PID` names this
/// process, the `LISTEN_FDS` fds from 3 on go to the container's init (before
/// the `--preserve-fds` ones), which gets `LISTEN_FDS=N` and `LISTEN_PID=1`.
/// Variables meant for another process (another `LISTEN_PID`) are not ours.
fn listen_fds(fds: Option<&str>, pid: Option<&str>) -> Result<u32> {
    let (Some(fds), Some(pid)) = (fds, pid) else {
        return Ok(0);
    };
    if pid.parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(0);
    }
    fds.parse::<u32>()
        .map_err(|_| anyhow!("LISTEN_FDS={fds:?}: not a number of fds"))
}

/// Write a pid file atomically (runc: a temp file renamed into place).
fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("bad pid file {}", path.display()))?;
    let tmp = dir.join(format!(".{}", name.to_string_lossy()));
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .and_then(|mut f| f.write_all(pid.to_string().as_bytes()))
        .with_context(|| format!("write pid file {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("write pid file {}", path.display()))
}

/// Write a file through a temp file and a rename: a crash never leaves it
/// half-written.
fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("bad path {}", path.display()))?;
    let tmp = path.with_file_name(format!("{}.tmp", name.to_string_lossy()));
    fs::write(&tmp, data).with_context(|| format!("write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("rename {}", path.display()))
}

/// `<root>/.<id>.create.json`: what a create will make, kept until its state is
/// complete, so that `delete --force` can clean up after a create that crashed.
fn pending_path(root: &Path, id: &str) -> PathBuf {
    root.join(format!(".{id}.create.json"))
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    Ok(std::env::current_dir().context("cwd")?.join(p))
}

/// SIGKILL a child of ours and reap it.
fn kill_and_reap(pid: i32) {
    let pid = Pid::from_raw(pid);
    let _ = send_signal(pid, Signal::SIGKILL);
    while let Err(nix::errno::Errno::EINTR) = waitpid(pid, None) {}
}

/// Create: the init waits at the barrier, reparented to our caller's subreaper.
/// Returns the init's host pid, and the pty master of a terminal without a
/// console socket (foreground `run` only).
fn create(
    cli: &Cli,
    opts: &CreateOpts,
    id: &str,
    foreground: bool,
) -> Result<(i32, Option<OwnedFd>)> {
    runtime_core::container::validate_id(id)?;
    let listen = listen_fds(
        std::env::var("LISTEN_FDS").ok().as_deref(),
        std::env::var("LISTEN_PID").ok().as_deref(),
    )?;
    let extra = preserved_fds(listen + opts.preserve_fds)?;
    if opts.no_pivot {
        log::warn!("--no-pivot: ignored, liblxc always uses pivot_root");
    }
    let _lock = Lock::acquire(&cli.root, id)?;
    if cli.root.join(id).exists() {
        bail!("container with id exists: {id}");
    }
    let bundle = absolute(&opts.bundle)?;
    let spec_path = bundle.join("config.json");
    let data = fs::read(&spec_path).with_context(|| format!("read {}", spec_path.display()))?;
    let spec = runtime_core::spec::parse_spec(&data)
        .with_context(|| format!("load {}", spec_path.display()))?;
    let process = spec.process().clone();
    let terminal = process.as_ref().and_then(|p| p.terminal()).unwrap_or(false);
    match (terminal, &opts.console_socket) {
        (true, None) if !foreground => {
            bail!("cannot allocate tty if lxcri will detach without setting console socket")
        }
        (false, Some(_)) => {
            bail!("cannot use console socket if lxcri will not detach or allocate tty")
        }
        _ => {}
    }
    let mut cfg = runtime_config(cli);
    // As runc: no new session keyring; the container keeps the caller's.
    cfg.no_new_keyring = opts.no_new_keyring;
    if listen > 0 {
        cfg.extra_env = vec![format!("LISTEN_FDS={listen}"), "LISTEN_PID=1".into()];
    }
    let pending = pending_state(&cfg, id, &bundle, &spec)?;
    let pending_file = pending_path(&cli.root, id);
    write_atomic(&pending_file, &serde_json::to_vec(&pending)?)?;

    let mut monitor = 0u32;
    let created = Container::create(&cfg, id, &bundle, stdio(extra)?, &mut |pid| {
        monitor = pid;
        // So that delete --force can end a monitor whose create crashed.
        let mut p = pending.clone();
        p.monitor_pid = pid as i32;
        p.monitor_start_time = runtime_core::sys::start_time(pid as i32).unwrap_or(0);
        if let Ok(data) = serde_json::to_vec(&p) {
            if let Err(e) = write_atomic(&pending_file, &data) {
                log::warn!("{e:#}");
            }
        }
    });
    let mut c = match created {
        Ok(c) => c,
        Err(e) => {
            // runtime-core cleaned up; the monitor is our child.
            if monitor > 0 {
                kill_and_reap(monitor as i32);
            }
            let _ = fs::remove_file(&pending_file);
            return Err(e.into());
        }
    };
    match finish_create(cli, opts, &mut c, process, &spec, monitor as i32) {
        Ok((pid, master)) => {
            let _ = fs::remove_file(&pending_file);
            log::info!("created container id={id} init_pid={pid}");
            Ok((pid, master))
        }
        Err(e) => {
            kill_and_reap(monitor as i32);
            if let Err(d) = runtime_core::destroy(&c.state) {
                log::warn!("clean up {id}: {d}");
            }
            let _ = fs::remove_file(&pending_file);
            Err(e)
        }
    }
}

fn finish_create(
    cli: &Cli,
    opts: &CreateOpts,
    c: &mut Container,
    process: Option<Process>,
    spec: &Spec,
    monitor: i32,
) -> Result<(i32, Option<OwnedFd>)> {
    let rundir = c.state.rundir.clone();
    let meta = Meta {
        created: crate::time::now_rfc3339(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        started: false,
        process,
    };
    if let Some(p) = &meta.process {
        let args = p.args().clone().unwrap_or_default();
        let env = p.env().clone().unwrap_or_default();
        crate::lookup::check(c.init_pid(), &args, &env, &p.cwd().to_string_lossy())?;
    }
    meta.save(&rundir)?;
    let cfg = runtime_config(cli);
    c.detach_init(cfg.create_timeout)?;
    // The init no longer dies with the monitor: end the monitor, so that the init
    // is reparented to our caller's subreaper (conmon, a containerd shim), which
    // then reaps it and sees the container's exit status itself.
    kill_and_reap(monitor);
    let mut master = c.take_console();
    if let Some(sock) = &opts.console_socket {
        let m = master
            .take()
            .ok_or_else(|| anyhow!("the init sent no pty master"))?;
        crate::console::send_master(sock, m.as_fd())?;
    }
    let pid = c.init_pid();
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, pid)?;
    }
    Ok((pid, master))
}

/// The state a crashed create leaves to `delete --force`: the cgroup dirs it
/// will make (computed as runtime-core does), no pids.
fn pending_state(
    cfg: &RuntimeConfig,
    id: &str,
    bundle: &Path,
    spec: &Spec,
) -> Result<ContainerState> {
    let cgroups_path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    let (container, unit) = cgroup::placement(cfg.cgroup_driver, cgroups_path.as_deref(), id)?;
    let monitor = cgroup::monitor_path(&container);
    let hierarchies = cgroup::hierarchies();
    let mut created = cgroup::missing_dirs(&hierarchies, &container);
    created.extend(cgroup::missing_dirs(&hierarchies, &monitor));
    created.extend(cgroup::missing_dirs(
        &hierarchies,
        &cgroup::pivot_path(&monitor).join("lxc.pivot"),
    ));
    created.sort();
    created.dedup();
    Ok(ContainerState {
        id: id.to_string(),
        bundle: bundle.to_path_buf(),
        rundir: cfg.rundir(id),
        rootfs: PathBuf::new(),
        monitor_pid: 0,
        monitor_start_time: 0,
        init_pid: 0,
        init_start_time: 0,
        cgroup: container,
        monitor_cgroup: monitor,
        hierarchies,
        created_cgroup_dirs: created,
        annotations: Default::default(),
        seccomp: None,
        apparmor_profile: None,
        selinux_label: None,
        poststart: Vec::new(),
        poststop: Vec::new(),
        hook_helper: PathBuf::new(),
        io_priority: None,
        scheduler: None,
        exec_cpu_affinity: None,
        memory_policy: None,
        systemd_unit: unit.map(|u| u.name),
    })
}

fn start(cli: &Cli, id: &str) -> Result<()> {
    let _lock = Lock::acquire(&cli.root, id)?;
    let mut f = find(cli, id)?;
    match f.status {
        Status::Created => {}
        Status::Stopped => bail!("cannot start a container that has stopped"),
        Status::Running | Status::Paused => bail!("cannot start an already running container"),
        Status::Creating => bail!("cannot start a container that is not created"),
    }
    let cfg = runtime_config(cli);
    let failed = runtime_core::start_detached(state_of(&f)?, cfg.start_timeout)?;
    f.meta.started = true;
    f.meta.save(&f.rundir)?;
    match failed {
        Some(msg) => Err(anyhow!(msg)),
        None => Ok(()),
    }
}

/// `run`: create and start; in the foreground, become a subreaper so that the
/// init is reparented to us, wait for it, delete the container and exit with its
/// status.
fn run_container(cli: &Cli, a: &crate::RunArgs) -> Result<u8> {
    if !a.detach {
        nix::sys::prctl::set_child_subreaper(true).context("become a subreaper")?;
    }
    let (pid, master) = create(cli, &a.opts, &a.id, !a.detach)?;
    if let Err(e) = start(cli, &a.id) {
        if !a.detach {
            let _ = waitpid(Pid::from_raw(pid), None);
            let _ = delete(cli, &a.id, true);
        }
        return Err(e);
    }
    if a.detach {
        return Ok(0);
    }
    // Blocked only now: a blocked mask would be inherited by the helpers and the
    // container. An exit before this is seen by the first waitpid; one after it
    // leaves SIGCHLD pending for the signalfd.
    let forwarded = forwarded_signals();
    forwarded
        .thread_block()
        .context("block the signals to forward")?;
    let code = match master {
        Some(m) => crate::tty::proxy_and_wait(pid, pid, m, &forwarded)?,
        None => wait_forwarding(pid, &forwarded)?,
    };
    if !a.keep {
        delete(cli, &a.id, true)?;
    }
    Ok(code)
}

/// What a foreground `run` forwards to the container's init (as runc does), plus
/// SIGCHLD to notice its exit.
fn forwarded_signals() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        set.add(s);
    }
    set
}

/// Wait for the init (our child), forwarding the signals we receive to it.
fn wait_forwarding(pid: i32, set: &nix::sys::signal::SigSet) -> Result<u8> {
    use nix::sys::signalfd::SignalFd;
    use nix::sys::wait::WaitPidFlag;
    let sfd = SignalFd::new(set).context("signalfd")?;
    loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(c as u8),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32 as u8),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).with_context(|| format!("wait for {pid}")),
        }
        match sfd.read_signal() {
            Ok(Some(info)) if info.ssi_signo != Signal::SIGCHLD as u32 => {
                log::debug!("forward signal {} to {pid}", info.ssi_signo);
                // SAFETY: plain kill(2) with a signal number the kernel gave us.
                unsafe { libc::kill(pid, info.ssi_signo as i32) };
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("read signalfd"),
        }
    }
}

/// Wait for a child and turn its status into an exit code (128+signal).
fn wait_exit(pid: i32) -> Result<u8> {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(c as u8),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32 as u8),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).with_context(|| format!("wait for {pid}")),
        }
    }
}

fn state(cli: &Cli, id: &str) -> Result<()> {
    let _lock = Lock::acquire(&cli.root, id)?;
    let f = find(cli, id)?;
    println!("{}", serde_json::to_string_pretty(&f.state_json())?);
    Ok(())
}

fn kill(cli: &Cli, id: &str, signal: Option<&str>, all: bool) -> Result<()> {
    let sig = crate::signal::parse(signal.unwrap_or("TERM"))?;
    let _lock = Lock::acquire(&cli.root, id)?;
    let f = find(cli, id)?;
    let c = live(&f)?;
    if all {
        c.kill_all(sig)?;
    } else {
        c.kill(sig).map_err(|e| match e {
            runtime_core::Error::Sys { source, .. }
                if source.raw_os_error() == Some(libc::ESRCH) =>
            {
                anyhow!(NOT_RUNNING)
            }
            e => anyhow!(e),
        })?;
    }
    log::info!("killed container id={id} signal={sig} all={all}");
    Ok(())
}

fn delete(cli: &Cli, id: &str, force: bool) -> Result<()> {
    let lock = Lock::acquire(&cli.root, id)?;
    let pending_file = pending_path(&cli.root, id);
    let Some(f) = meta::find(&cli.root, id)? else {
        if pending_file.exists() && force {
            // A create that crashed before it made the runtime dir.
            delete_partial(&pending_file)?;
            lock.remove();
            return Ok(());
        }
        if force {
            lock.remove();
            return Ok(());
        }
        bail!(NOT_EXIST);
    };
    match (f.status, force) {
        (Status::Stopped | Status::Created, _) => {}
        (Status::Running | Status::Paused, true) => {
            if f.status == Status::Paused {
                // Frozen processes only die once thawed.
                let c = live(&f)?;
                c.kill_all(libc::SIGKILL)?;
                c.freeze(false)?;
            }
        }
        (Status::Creating, true) => {
            if f.state.is_none() {
                delete_partial(&pending_file)?;
                lock.remove();
                return Ok(());
            }
        }
        (s, false) => bail!(
            "cannot delete container {id} that is not stopped: {}",
            s.as_str()
        ),
    }
    let st = state_of(&f)?;
    runtime_core::destroy(st)?;
    let _ = fs::remove_file(&pending_file);
    lock.remove();
    log::info!("deleted container id={id}");
    Ok(())
}

/// Live processes that are the LXC monitor of container `id` under `root`.
fn stray_monitors(id: &str, root: &str) -> Vec<i32> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(raw) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&raw);
        let argv: Vec<&str> = text.split('\0').collect();
        let helper = argv.first().is_some_and(|a| a.ends_with("/lxcri-start"))
            && argv.get(1) == Some(&id)
            && argv.get(2) == Some(&root);
        let renamed = text.starts_with("[lxc monitor]")
            && text.split_whitespace().any(|w| w == id)
            && text.contains(root);
        if helper || renamed {
            out.push(pid);
        }
    }
    out
}

/// Clean up after a create that crashed before runtime-core saved the state:
/// kill whatever runs in the container's and the monitor's cgroups, remove the
/// cgroup dirs the create made and the runtime dir.
fn delete_partial(pending_file: &Path) -> Result<()> {
    if !pending_file.exists() {
        // Nothing was started (the pending file precedes the runtime dir).
        let rundir = pending_file.with_file_name(
            pending_file
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix('.'))
                .and_then(|n| n.strip_suffix(".create.json"))
                .ok_or_else(|| anyhow!("bad pending file {}", pending_file.display()))?,
        );
        return match fs::remove_dir_all(&rundir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("remove {}", rundir.display()))
            }
            _ => Ok(()),
        };
    }
    let data =
        fs::read(pending_file).with_context(|| format!("read {}", pending_file.display()))?;
    let st: ContainerState = serde_json::from_slice(&data)
        .with_context(|| format!("parse {}", pending_file.display()))?;
    // A monitor whose pid the crashed create had no time to record: found by
    // its argv (`lxcri-start ID ROOT ...`, or liblxc's `[lxc monitor] ROOT ID`).
    let root = st
        .rundir
        .parent()
        .unwrap_or(Path::new("/"))
        .to_string_lossy()
        .into_owned();
    for pid in stray_monitors(&st.id, &root) {
        let _ = send_signal(Pid::from_raw(pid), Signal::SIGKILL);
        let start = runtime_core::sys::start_time(pid);
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while start.is_some()
            && runtime_core::sys::start_time(pid) == start
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    if runtime_core::sys::is_alive(st.monitor_pid, st.monitor_start_time) {
        let _ = send_signal(Pid::from_raw(st.monitor_pid), Signal::SIGKILL);
        // Until its parent (our caller, a subreaper) has reaped it: a zombie
        // still holds its cgroups, which could not be removed.
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while runtime_core::sys::start_time(st.monitor_pid) == Some(st.monitor_start_time)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut pids = cgroup::procs(&st.hierarchies, &st.monitor_cgroup);
        pids.extend(cgroup::procs(&st.hierarchies, &st.cgroup));
        if pids.is_empty() || std::time::Instant::now() > deadline {
            break;
        }
        for p in pids {
            let _ = send_signal(Pid::from_raw(p), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    runtime_core::destroy(&st)?;
    fs::remove_file(pending_file).with_context(|| format!("remove {}", pending_file.display()))
}

fn pause(cli: &Cli, id: &str, frozen: bool) -> Result<()> {
    let _lock = Lock::acquire(&cli.root, id)?;
    let f = find(cli, id)?;
    match (frozen, f.status) {
        (true, Status::Running) | (false, Status::Paused) => {}
        (true, Status::Paused) => bail!("container already paused"),
        (false, _) => bail!("container not paused"),
        (true, _) => bail!(NOT_RUNNING),
    }
    live(&f)?.freeze(frozen)?;
    Ok(())
}

fn ps(cli: &Cli, a: &crate::PsArgs) -> Result<()> {
    let _lock = Lock::acquire(&cli.root, &a.id)?;
    let f = find(cli, &a.id)?;
    live(&f)?;
    let st = state_of(&f)?;
    let pids = cgroup::procs(&st.hierarchies, &st.cgroup);
    if a.format == ListFormat::Json {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let args: Vec<String> = if a.ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        a.ps_args.clone()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| anyhow!("ps output has no PID column"))?;
    println!("{header}");
    for l in lines {
        let pid = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{l}");
        }
    }
    Ok(())
}

fn update(cli: &Cli, a: &crate::UpdateArgs) -> Result<()> {
    let mut v: serde_json::Value = match a.resources.as_deref() {
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("read resources from stdin")?;
            serde_json::from_str(&s).context("parse resources from stdin")?
        }
        Some(p) => serde_json::from_slice(&fs::read(p).with_context(|| format!("read {p}"))?)
            .with_context(|| format!("parse {p}"))?,
        None => serde_json::json!({}),
    };
    let mut set = |section: &str, key: &str, value: serde_json::Value| {
        if !v[section].is_object() {
            v[section] = serde_json::json!({});
        }
        v[section][key] = value;
    };
    use serde_json::json;
    if let Some(x) = a.memory {
        set("memory", "limit", json!(x));
    }
    if let Some(x) = a.memory_reservation {
        set("memory", "reservation", json!(x));
    }
    if let Some(x) = a.memory_swap {
        set("memory", "swap", json!(x));
    }
    if let Some(x) = a.cpu_share {
        set("cpu", "shares", json!(x));
    }
    if let Some(x) = a.cpu_quota {
        set("cpu", "quota", json!(x));
    }
    if let Some(x) = a.cpu_period {
        set("cpu", "period", json!(x));
    }
    if let Some(x) = a.cpu_rt_period {
        set("cpu", "realtimePeriod", json!(x));
    }
    if let Some(x) = a.cpu_rt_runtime {
        set("cpu", "realtimeRuntime", json!(x));
    }
    if let Some(x) = &a.cpuset_cpus {
        set("cpu", "cpus", json!(x));
    }
    if let Some(x) = &a.cpuset_mems {
        set("cpu", "mems", json!(x));
    }
    if let Some(x) = a.pids_limit {
        set("pids", "limit", json!(x));
    }
    if let Some(x) = a.blkio_weight {
        set("blockIO", "weight", json!(x));
    }
    let r: LinuxResources = serde_json::from_value(v).context("parse resources")?;
    let _lock = Lock::acquire(&cli.root, &a.id)?;
    let f = find(cli, &a.id)?;
    live(&f)?.update(Layout::detect(), &r)?;
    Ok(())
}

fn parse_interval(s: &str) -> Result<Duration> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num.parse().with_context(|| format!("bad interval {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => bail!("bad interval {s:?}"),
    };
    if secs <= 0.0 {
        bail!("duration interval must be greater than 0");
    }
    Ok(Duration::from_secs_f64(secs))
}

fn events(cli: &Cli, a: &crate::EventsArgs) -> Result<()> {
    let interval = parse_interval(&a.interval)?;
    loop {
        let event = {
            let _lock = Lock::acquire(&cli.root, &a.id)?;
            let f = find(cli, &a.id)?;
            if a.stats {
                live(&f)?;
            } else if !matches!(f.status, Status::Created | Status::Running | Status::Paused) {
                return Ok(());
            }
            let st = state_of(&f)?;
            serde_json::json!({
                "type": "stats",
                "id": a.id,
                "data": crate::stats::read(st),
            })
        };
        println!("{event}");
        std::io::stdout().flush()?;
        if a.stats {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}

fn list(cli: &Cli, format: ListFormat, quiet: bool) -> Result<()> {
    let mut found = Vec::new();
    for id in meta::list_ids(&cli.root)? {
        if let Some(f) = meta::find(&cli.root, &id)? {
            found.push(f);
        }
    }
    if quiet {
        for f in &found {
            println!("{}", f.id);
        }
        return Ok(());
    }
    if format == ListFormat::Json {
        let v: Vec<_> = found.iter().map(Found::state_json).collect();
        println!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    let rows: Vec<[String; 6]> = found
        .iter()
        .map(|f| {
            let j = f.state_json();
            [
                f.id.clone(),
                f.pid().to_string(),
                f.status.as_str().to_string(),
                j["bundle"].as_str().unwrap_or("").to_string(),
                f.meta.created.clone(),
                "root".to_string(),
            ]
        })
        .collect();
    let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
    let mut widths = [0usize; 6];
    for r in std::iter::once(&header).chain(rows.iter()) {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.len());
        }
    }
    for r in std::iter::once(&header).chain(rows.iter()) {
        let line: Vec<String> = r
            .iter()
            .zip(widths.iter())
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
    Ok(())
}

/// The process for `exec`: `--process` as is, or the spec's process with the
/// arguments and flags applied (runc's rules).
fn exec_process(a: &crate::ExecArgs, meta: &Meta) -> Result<Process> {
    if let Some(p) = &a.process {
        let data = fs::read(p).with_context(|| format!("read {}", p.display()))?;
        return runtime_core::spec::parse_process(&data)
            .with_context(|| format!("parse {}", p.display()));
    }
    if a.command.is_empty() {
        bail!("exec args cannot be empty");
    }
    let base = meta
        .process
        .as_ref()
        .ok_or_else(|| anyhow!("the container's spec has no process"))?;
    let mut v = serde_json::to_value(base)?;
    v["args"] = serde_json::json!(a.command);
    v["terminal"] = serde_json::json!(a.tty);
    if let Some(obj) = v.as_object_mut() {
        obj.remove("consoleSize");
    }
    if let Some(cwd) = &a.cwd {
        v["cwd"] = serde_json::json!(cwd);
    }
    if !a.env.is_empty() {
        let mut env: Vec<String> = v["env"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        env.extend(a.env.iter().cloned());
        v["env"] = serde_json::json!(env);
    }
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        let uid: u32 = uid.parse().with_context(|| format!("bad --user {u:?}"))?;
        v["user"]["uid"] = serde_json::json!(uid);
        if let Some(g) = gid {
            let gid: u32 = g.parse().with_context(|| format!("bad --user {u:?}"))?;
            v["user"]["gid"] = serde_json::json!(gid);
        }
    }
    if !a.additional_gids.is_empty() {
        v["user"]["additionalGids"] = serde_json::json!(a.additional_gids);
    }
    if !a.cap.is_empty() {
        for set in ["bounding", "effective", "permitted"] {
            let mut caps: Vec<String> = v["capabilities"][set]
                .as_array()
                .map(|e| {
                    e.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            for c in &a.cap {
                if !caps.contains(c) {
                    caps.push(c.clone());
                }
            }
            if !v["capabilities"].is_object() {
                v["capabilities"] = serde_json::json!({});
            }
            v["capabilities"][set] = serde_json::json!(caps);
        }
    }
    if a.no_new_privs {
        v["noNewPrivileges"] = serde_json::json!(true);
    }
    serde_json::from_value(v).context("build the exec process")
}

fn exec(cli: &Cli, a: &crate::ExecArgs) -> Result<u8> {
    let extra = preserved_fds(a.preserve_fds)?;
    let lock = Lock::acquire(&cli.root, &a.id)?;
    let f = find(cli, &a.id)?;
    match f.status {
        Status::Running => {}
        Status::Paused if a.ignore_paused => {}
        Status::Paused => {
            bail!("cannot exec in a paused container (use --ignore-paused to override)")
        }
        Status::Created => bail!("cannot exec in a container that has not been started"),
        Status::Stopped | Status::Creating => bail!("cannot exec in a stopped container"),
    }
    let process = exec_process(a, &f.meta)?;
    let terminal = process.terminal().unwrap_or(false);
    match (terminal, &a.console_socket) {
        (true, None) if a.detach => {
            bail!("cannot allocate tty if lxcri will detach without setting console socket")
        }
        (false, Some(_)) => {
            bail!("cannot use console socket if lxcri will not detach or allocate tty")
        }
        _ => {}
    }
    let c = live(&f)?;
    let cfg = runtime_config(cli);
    let mut helper = 0u32;
    let stdio = stdio(extra)?;
    let e = if a.detach {
        c.exec_detached(&cfg, &process, stdio, &mut |p| helper = p)
    } else {
        c.exec(&cfg, &process, stdio, &mut |p| helper = p)
    };
    let e = match e {
        Ok(e) => e,
        Err(err) => {
            if helper > 0 {
                let _ = wait_exit(helper as i32);
            }
            return Err(err.into());
        }
    };
    // Execs do not hold the container's lock while they run.
    drop(lock);
    if let (Some(sock), Some(master)) = (&a.console_socket, &e.console) {
        crate::console::send_master(sock, master.as_fd())?;
    }
    if let Some(p) = &a.pid_file {
        write_pid_file(p, e.pid)?;
    }
    if let (None, false, Some(master)) = (&a.console_socket, a.detach, e.console) {
        // The helper is our child and exits with the process's status.
        let signals = forwarded_signals();
        signals
            .thread_block()
            .context("block the signals to forward")?;
        let master = master.try_clone().context("dup pty master")?;
        return crate::tty::proxy_and_wait(e.helper_pid, e.pid, master, &signals);
    }
    // Detached: the helper exits at once and the process is reparented to our
    // caller's subreaper. Attached: the helper's status is the process's.
    let code = wait_exit(e.helper_pid)?;
    if a.detach {
        if code != 0 {
            bail!("the attach helper failed with status {code}");
        }
        return Ok(0);
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_interval("2").unwrap(), Duration::from_secs(2));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("1h").is_err());
    }

    #[test]
    fn socket_activation_fds() {
        let me = std::process::id().to_string();
        assert_eq!(listen_fds(Some("2"), Some(&me)).unwrap(), 2);
        assert_eq!(listen_fds(None, None).unwrap(), 0);
        assert_eq!(listen_fds(Some("2"), None).unwrap(), 0);
        // Meant for another process.
        assert_eq!(listen_fds(Some("2"), Some("1")).unwrap(), 0);
        let e = listen_fds(Some("x"), Some(&me)).unwrap_err();
        assert!(e.to_string().contains("LISTEN_FDS=\"x\""), "{e}");
    }
}
