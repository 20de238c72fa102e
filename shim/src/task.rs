//! The containerd task service (`containerd.task.v2.Task`) over runtime-core.
//!
//! liblxc calls that fork never run in this (tokio) process: runtime-core spawns
//! the `lxcri-start` helper, which becomes the container's LXC monitor. The
//! helper's exit status is the container's; the shim crate's reaper reports it to
//! [`ExitWatcher`], which marks the task stopped and publishes /tasks/exit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use containerd_shim::asynchronous::monitor::monitor_subscribe;
use containerd_shim::asynchronous::publisher::RemotePublisher;
use containerd_shim::asynchronous::ExitSignal;
use containerd_shim::event::Event;
use containerd_shim::monitor::{Subject, Topic};
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::{Message, MessageDyn};
use containerd_shim::protos::shim::oci::ProcessDetails;
use containerd_shim::protos::shim::shim::{
    CheckpointTaskRequest, CloseIORequest, ConnectRequest, ConnectResponse, CreateTaskRequest,
    CreateTaskResponse, DeleteRequest, DeleteResponse, ExecProcessRequest, KillRequest,
    PauseRequest, PidsRequest, PidsResponse, ResizePtyRequest, ResumeRequest, ShutdownRequest,
    StartRequest, StartResponse, StateRequest, StateResponse, StatsRequest, StatsResponse,
    UpdateTaskRequest, WaitRequest, WaitResponse,
};
use containerd_shim::protos::shim_async::Task;
use containerd_shim::protos::ttrpc::r#async::TtrpcContext;
use containerd_shim::protos::ttrpc::{self};
use containerd_shim::protos::types::empty::Empty;
use containerd_shim::protos::types::task::{ProcessInfo, Status};
use runtime_core::{Container, Exec, RuntimeConfig};
use tokio::sync::{watch, Mutex};

use crate::error::{Error, Result};
use crate::io::{self, IoKeep};
use crate::mount;
use crate::options;
pub use crate::state::State;
use crate::state::{check, Op};

/// How a task ended.
#[derive(Debug, Clone, Copy)]
pub struct ExitInfo {
    pub code: u32,
    pub at: std::time::SystemTime,
}

fn timestamp(t: std::time::SystemTime) -> Timestamp {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut ts = Timestamp::new();
    ts.seconds = d.as_secs() as i64;
    ts.nanos = d.subsec_nanos() as i32;
    ts
}

struct TaskEntry {
    id: String,
    bundle: PathBuf,
    /// The init: its pid is the container's init pid.
    proc: Proc,
    /// The runtime-core handle; used on the blocking pool.
    container: Arc<std::sync::Mutex<Container>>,
    monitor_pid: u32,
    /// IoUid/IoGid of the task's options, for its execs' stdio too.
    io_owner: io::IoOwner,
    rootfs_mounted: bool,
    execs: HashMap<String, ExecEntry>,
}

/// A process added with Exec, and started with Start(exec_id).
struct ExecEntry {
    process: oci_spec::runtime::Process,
    proc: Proc,
    helper_pid: u32,
    handle: Option<Exec>,
}

/// What the init and an exec have alike: stdio, state and exit.
struct Proc {
    stdin: String,
    stdout: String,
    stderr: String,
    terminal: bool,
    /// Host pid (0 for an exec not started yet).
    pid: u32,
    state: State,
    exit: Option<ExitInfo>,
    exit_tx: watch::Sender<Option<ExitInfo>>,
    io: IoKeep,
}

impl Proc {
    fn new(stdin: &str, stdout: &str, stderr: &str, terminal: bool) -> Self {
        Proc {
            stdin: stdin.to_string(),
            stdout: stdout.to_string(),
            stderr: stderr.to_string(),
            terminal,
            pid: 0,
            state: State::Created,
            exit: None,
            exit_tx: watch::channel(None).0,
            io: IoKeep::default(),
        }
    }

    /// Record the exit (Wait returns, the output fifos close); the
    /// /tasks/exit event to publish.
    fn stopped(&mut self, container_id: &str, id: &str, info: ExitInfo) -> TaskExit {
        log::info!(
            "process exited id={container_id} exec_id={} pid={} exit_status={}",
            if id == container_id { "" } else { id },
            self.pid,
            info.code
        );
        self.state = State::Stopped;
        self.exit = Some(info);
        self.io.release();
        let _ = self.exit_tx.send(Some(info));
        TaskExit {
            container_id: container_id.to_string(),
            id: id.to_string(),
            pid: self.pid,
            exit_status: info.code,
            exited_at: Some(timestamp(info.at)).into(),
            ..Default::default()
        }
    }

    /// State of the init (`exec_id` empty) or of an exec.
    fn state_response(&self, id: &str, exec_id: &str, bundle: &Path) -> StateResponse {
        let mut resp = StateResponse {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            bundle: bundle.to_string_lossy().into_owned(),
            pid: self.pid,
            stdin: self.stdin.clone(),
            stdout: self.stdout.clone(),
            stderr: self.stderr.clone(),
            terminal: self.terminal,
            ..Default::default()
        };
        resp.set_status(status_of(self.state));
        if let Some(info) = self.exit {
            resp.exit_status = info.code;
            resp.exited_at = Some(timestamp(info.at)).into();
        }
        resp
    }

    /// The exit if there was one, else a receiver to wait for it on.
    fn exit_or_subscribe(&self) -> std::result::Result<ExitInfo, ExitRx> {
        self.exit.ok_or_else(|| self.exit_tx.subscribe())
    }
}

type ExitRx = watch::Receiver<Option<ExitInfo>>;

/// Wait on a receiver from [`Proc::exit_or_subscribe`]; `what` names the
/// process when the entry is removed meanwhile.
async fn wait_exit(mut rx: ExitRx, what: &str) -> Result<ExitInfo> {
    loop {
        if let Some(info) = *rx.borrow_and_update() {
            return Ok(info);
        }
        if rx.changed().await.is_err() {
            return Err(Error::NotFound(what.to_string()));
        }
    }
}

/// Shared between the task service and the exit watcher.
#[derive(Default)]
struct Tasks {
    by_id: HashMap<String, TaskEntry>,
    /// Exits of helper pids not (yet) claimed by a task, with when they arrived.
    unclaimed: HashMap<i32, (ExitInfo, Instant)>,
}

/// The task service of one shim process.
#[derive(Clone)]
pub struct TaskService {
    namespace: String,
    cfg: RuntimeConfig,
    tasks: Arc<Mutex<Tasks>>,
    publisher: Arc<RemotePublisher>,
    exit: Arc<ExitSignal>,
}

impl TaskService {
    pub fn new(
        namespace: &str,
        cfg: RuntimeConfig,
        publisher: RemotePublisher,
        exit: Arc<ExitSignal>,
    ) -> Self {
        let s = TaskService {
            namespace: namespace.to_string(),
            cfg,
            tasks: Arc::new(Mutex::new(Tasks::default())),
            publisher: Arc::new(publisher),
            exit,
        };
        s.spawn_exit_watcher();
        s
    }

    async fn publish(&self, topic: &str, event: Box<dyn MessageDyn>) {
        let ctx = containerd_shim::Context::default();
        if let Err(e) = self
            .publisher
            .publish(ctx, topic, &self.namespace, event)
            .await
        {
            log::error!("publish {topic}: {e}");
        }
    }

    /// Collect the exits the shim crate's reaper reports.
    fn spawn_exit_watcher(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut sub = match monitor_subscribe(Topic::Pid).await {
                Ok(s) => s,
                Err(e) => {
                    log::error!("subscribe to exits: {e}");
                    return;
                }
            };
            while let Some(ev) = sub.rx.recv().await {
                if let Subject::Pid(pid) = ev.subject {
                    let info = ExitInfo {
                        code: ev.exit_code as u32,
                        at: std::time::SystemTime::now(),
                    };
                    this.on_exit(pid, info).await;
                }
            }
        });
    }

    async fn on_exit(&self, pid: i32, info: ExitInfo) {
        // A terminal's output still in the pty goes out before the exit is seen
        // (Wait, /tasks/exit), as the runc shim waits for its IO.
        let output_copy = {
            let mut tasks = self.tasks.lock().await;
            tasks.by_id.values_mut().find_map(|t| {
                if t.monitor_pid as i32 == pid && t.proc.state != State::Stopped {
                    return t.proc.io.take_output_copy();
                }
                t.execs
                    .values_mut()
                    .find(|e| e.helper_pid as i32 == pid && e.proc.state == State::Running)
                    .and_then(|e| e.proc.io.take_output_copy())
            })
        };
        if let Some(copy) = output_copy {
            // The pty is drained (EIO) once the process and its children are gone.
            let _ = tokio::time::timeout(Duration::from_secs(2), copy).await;
        }
        let mut tasks = self.tasks.lock().await;
        let mut event = None;
        for t in tasks.by_id.values_mut() {
            if t.monitor_pid as i32 == pid && t.proc.state != State::Stopped {
                event = Some(t.proc.stopped(&t.id, &t.id, info));
                break;
            }
            let id = t.id.clone();
            if let Some((exec_id, e)) = t
                .execs
                .iter_mut()
                .find(|(_, e)| e.helper_pid as i32 == pid && e.proc.state == State::Running)
            {
                event = Some(e.proc.stopped(&id, exec_id, info));
                break;
            }
        }
        let Some(event) = event else {
            tasks
                .unclaimed
                .retain(|_, (_, at)| at.elapsed() < Duration::from_secs(60));
            tasks.unclaimed.insert(pid, (info, Instant::now()));
            return;
        };
        drop(tasks);
        self.publish(event.topic().as_str(), Box::new(event)).await;
    }

    fn runtime_root(&self) -> PathBuf {
        self.cfg.root.clone()
    }
}

fn status_of(s: State) -> Status {
    match s {
        State::Created => Status::CREATED,
        State::Running => Status::RUNNING,
        State::Paused => Status::PAUSED,
        State::Stopped => Status::STOPPED,
    }
}

/// The Pids info of an exec'd process, as runc's shim gives it.
fn process_details(exec_id: &str) -> Option<Any> {
    let d = ProcessDetails {
        exec_id: exec_id.to_string(),
        ..Default::default()
    };
    Some(Any {
        type_url: "containerd.runc.v1.ProcessDetails".to_string(),
        value: d.write_to_bytes().ok()?,
        ..Default::default()
    })
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("blocking task: {e}")))?
}

impl TaskService {
    async fn do_create(&self, req: CreateTaskRequest) -> Result<CreateTaskResponse> {
        let id = req.id.clone();
        if self.tasks.lock().await.by_id.contains_key(&id) {
            return Err(Error::AlreadyExists(id));
        }
        if !req.checkpoint.is_empty() || !req.parent_checkpoint.is_empty() {
            return Err(Error::Unimplemented("restore from checkpoint"));
        }
        let bundle = PathBuf::from(&req.bundle);
        let rootfs = bundle.join("rootfs");
        let mounts = req.rootfs.to_vec();
        for (i, m) in mounts.iter().enumerate() {
            log::info!(
                "create {id}: rootfs mount {i}: type={} source={} target={:?} options={:?}",
                m.type_,
                m.source,
                m.target,
                m.options
            );
        }
        let rootfs_mounted = !mounts.is_empty();
        if rootfs_mounted {
            let target = rootfs.clone();
            blocking(move || mount::mount_rootfs(&mounts, &target)).await?;
        }
        let opts = match options::parse(req.options.as_ref()).and_then(|o| {
            options::check_systemd(&o, Path::new("/run/systemd"))?;
            if let Some(cg) = &o.shim_cgroup {
                options::enter_shim_cgroup(&runtime_core::cgroup::hierarchies(), cg)?;
            }
            Ok(o)
        }) {
            Ok(o) => o,
            Err(e) => {
                if rootfs_mounted {
                    mount::unmount_rootfs(&rootfs);
                }
                return Err(e);
            }
        };
        let result = self.create_container(&req, &bundle, &opts).await;
        let (container, keep, monitor_pid) = match result {
            Ok(r) => r,
            Err(e) => {
                if rootfs_mounted {
                    mount::unmount_rootfs(&rootfs);
                }
                return Err(e);
            }
        };
        let mut proc = Proc::new(&req.stdin, &req.stdout, &req.stderr, req.terminal);
        proc.pid = container.init_pid() as u32;
        proc.io = keep;
        let init_pid = proc.pid;
        let mut entry = TaskEntry {
            id: id.clone(),
            bundle: bundle.clone(),
            proc,
            container: Arc::new(std::sync::Mutex::new(container)),
            monitor_pid,
            io_owner: opts.io_owner,
            rootfs_mounted,
            execs: HashMap::new(),
        };
        // Before Start: a process that is OOM-killed at once must not be missed.
        self.watch_oom(&entry);
        let mut tasks = self.tasks.lock().await;
        let early_exit = tasks.unclaimed.remove(&(monitor_pid as i32));
        let exit_event = early_exit.map(|(info, _)| entry.proc.stopped(&id, &id, info));
        tasks.by_id.insert(id.clone(), entry);
        drop(tasks);

        let event = TaskCreate {
            container_id: id.clone(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: Some(TaskIO {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
                ..Default::default()
            })
            .into(),
            checkpoint: req.checkpoint.clone(),
            pid: init_pid,
            ..Default::default()
        };
        self.publish(event.topic().as_str(), Box::new(event)).await;
        if let Some(e) = exit_event {
            self.publish(e.topic().as_str(), Box::new(e)).await;
        }
        Ok(CreateTaskResponse {
            pid: init_pid,
            ..Default::default()
        })
    }

    async fn create_container(
        &self,
        req: &CreateTaskRequest,
        bundle: &Path,
        opts: &options::RuntimeOptions,
    ) -> Result<(Container, IoKeep, u32)> {
        let (stdio, keep) = if req.terminal {
            (io::null_stdio()?, IoKeep::default())
        } else {
            io::open(
                &req.id,
                &self.namespace,
                &req.stdin,
                &req.stdout,
                &req.stderr,
                opts.io_owner,
            )?
        };
        let mut cfg = self.cfg.clone();
        cfg.no_new_keyring = opts.no_new_keyring;
        if opts.systemd_cgroup {
            cfg.cgroup_driver = runtime_core::cgroup::Driver::Systemd;
        }
        let id = req.id.clone();
        let bundle = bundle.to_path_buf();
        let (mut container, monitor_pid) = blocking(move || {
            let mut monitor = 0;
            let c = Container::create(&cfg, &id, &bundle, stdio, &mut |pid| monitor = pid)?;
            Ok((c, monitor))
        })
        .await?;
        let keep = match container.take_console() {
            Some(master) if req.terminal => io::attach_console(master, &req.stdin, &req.stdout)?,
            Some(_) => {
                return Err(Error::InvalidArgument(
                    "process.terminal is set but the task was created without a terminal".into(),
                ))
            }
            None if req.terminal => {
                return Err(Error::InvalidArgument(
                    "the task wants a terminal but process.terminal is not set in the spec".into(),
                ))
            }
            None => keep,
        };
        Ok((container, keep, monitor_pid))
    }

    async fn do_start(&self, req: StartRequest) -> Result<StartResponse> {
        if !req.exec_id.is_empty() {
            return self.start_exec(&req.id, &req.exec_id).await;
        }
        // Held across the start so that the exit of a process that fails to exec
        // is published after /tasks/start.
        let mut tasks = self.tasks.lock().await;
        let t = tasks
            .by_id
            .get_mut(&req.id)
            .ok_or_else(|| Error::NotFound(req.id.clone()))?;
        check(&format!("container {}", req.id), Op::Start, t.proc.state)?;
        let c = t.container.clone();
        let timeout = self.cfg.start_timeout;
        let exec_error = blocking(move || {
            let mut c = c.lock().map_err(|_| Error::Internal("poisoned".into()))?;
            Ok(c.start(timeout)?)
        })
        .await?;
        if let Some(msg) = exec_error {
            log::warn!("exec failed id={}: {msg}", req.id);
        }
        if t.proc.state == State::Created {
            t.proc.state = State::Running;
        }
        let pid = t.proc.pid;
        let event = TaskStart {
            container_id: req.id.clone(),
            pid,
            ..Default::default()
        };
        self.publish(event.topic().as_str(), Box::new(event)).await;
        drop(tasks);
        Ok(StartResponse {
            pid,
            ..Default::default()
        })
    }

    async fn do_kill(&self, req: KillRequest) -> Result<()> {
        if !req.exec_id.is_empty() {
            return self
                .kill_exec(&req.id, &req.exec_id, req.signal as i32)
                .await;
        }
        let tasks = self.tasks.lock().await;
        let t = tasks
            .by_id
            .get(&req.id)
            .ok_or_else(|| Error::NotFound(req.id.clone()))?;
        check(&format!("container {}", req.id), Op::Kill, t.proc.state)?;
        let c = t.container.clone();
        let (signal, all) = (req.signal as i32, req.all);
        drop(tasks);
        blocking(move || {
            let c = c.lock().map_err(|_| Error::Internal("poisoned".into()))?;
            if all {
                c.kill_all(signal)?;
            }
            match c.kill(signal) {
                Ok(()) => Ok(()),
                Err(runtime_core::Error::Sys { source, .. })
                    if source.raw_os_error() == Some(libc::ESRCH) =>
                {
                    Err(Error::NotFound("process already finished".into()))
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn wait_stopped(&self, id: &str, timeout: Option<Duration>) -> Result<ExitInfo> {
        let rx = {
            let tasks = self.tasks.lock().await;
            let t = tasks
                .by_id
                .get(id)
                .ok_or_else(|| Error::NotFound(id.to_string()))?;
            match t.proc.exit_or_subscribe() {
                Ok(info) => return Ok(info),
                Err(rx) => rx,
            }
        };
        let wait = wait_exit(rx, id);
        match timeout {
            None => wait.await,
            Some(d) => tokio::time::timeout(d, wait)
                .await
                .map_err(|_| Error::Internal(format!("container {id} did not stop")))?,
        }
    }

    async fn do_delete(&self, req: DeleteRequest) -> Result<DeleteResponse> {
        if !req.exec_id.is_empty() {
            return self.delete_exec(&req.id, &req.exec_id).await;
        }
        let state = {
            let tasks = self.tasks.lock().await;
            let t = tasks
                .by_id
                .get(&req.id)
                .ok_or_else(|| Error::NotFound(req.id.clone()))?;
            t.proc.state
        };
        check(&format!("container {}", req.id), Op::Delete, state)?;
        match state {
            State::Created => {
                // Like `runc delete` of a created container: kill the waiting init.
                self.do_kill(KillRequest {
                    id: req.id.clone(),
                    signal: libc::SIGKILL as u32,
                    ..Default::default()
                })
                .await
                .or_else(|e| match e {
                    Error::NotFound(_) => Ok(()),
                    e => Err(e),
                })?;
                self.wait_stopped(&req.id, Some(Duration::from_secs(10)))
                    .await?;
            }
            State::Stopped | State::Running | State::Paused => {}
        }
        // The task stays listed (stopped) until its cleanup is done, as with
        // runc's shim: containerd (CRI's RemoveContainer) looks it up meanwhile,
        // and a task it cannot find is one whose exit it takes as handled.
        let (c, rootfs) = {
            let tasks = self.tasks.lock().await;
            let t = tasks
                .by_id
                .get(&req.id)
                .ok_or_else(|| Error::NotFound(req.id.clone()))?;
            (
                t.container.clone(),
                t.rootfs_mounted.then(|| t.bundle.join("rootfs")),
            )
        };
        blocking(move || {
            let c = c.lock().map_err(|_| Error::Internal("poisoned".into()))?;
            Ok(runtime_core::destroy(&c.state)?)
        })
        .await?;
        if let Some(rootfs) = rootfs {
            blocking(move || {
                mount::unmount_rootfs(&rootfs);
                Ok(())
            })
            .await?;
        }
        // A concurrent Delete of the same task cleaned up too (destroy and
        // unmount are idempotent); only one removes it and reports.
        let entry = self
            .tasks
            .lock()
            .await
            .by_id
            .remove(&req.id)
            .ok_or_else(|| Error::NotFound(req.id.clone()))?;
        let info = entry.proc.exit.unwrap_or(ExitInfo {
            code: 137,
            at: std::time::SystemTime::now(),
        });
        let event = TaskDelete {
            container_id: req.id.clone(),
            pid: entry.proc.pid,
            exit_status: info.code,
            exited_at: Some(timestamp(info.at)).into(),
            ..Default::default()
        };
        self.publish(event.topic().as_str(), Box::new(event)).await;
        Ok(DeleteResponse {
            pid: entry.proc.pid,
            exit_status: info.code,
            exited_at: Some(timestamp(info.at)).into(),
            ..Default::default()
        })
    }

    async fn do_state(&self, req: StateRequest) -> Result<StateResponse> {
        let tasks = self.tasks.lock().await;
        let t = tasks
            .by_id
            .get(&req.id)
            .ok_or_else(|| Error::NotFound(req.id.clone()))?;
        if req.exec_id.is_empty() {
            return Ok(t.proc.state_response(&t.id, "", &t.bundle));
        }
        let e = t
            .execs
            .get(&req.exec_id)
            .ok_or_else(|| Error::NotFound(format!("exec {} in {}", req.exec_id, req.id)))?;
        Ok(e.proc.state_response(&req.exec_id, &req.exec_id, &t.bundle))
    }

    async fn do_pids(&self, req: PidsRequest) -> Result<PidsResponse> {
        let tasks = self.tasks.lock().await;
        let t = tasks
            .by_id
            .get(&req.id)
            .ok_or_else(|| Error::NotFound(req.id.clone()))?;
        let c = t.container.clone();
        let exec_pids: HashMap<u32, String> = t
            .execs
            .iter()
            .filter(|(_, e)| e.proc.state == State::Running)
            .map(|(id, e)| (e.proc.pid, id.clone()))
            .collect();
        drop(tasks);
        let pids = blocking(move || {
            let c = c.lock().map_err(|_| Error::Internal("poisoned".into()))?;
            Ok(runtime_core::cgroup::procs(
                &c.state.hierarchies,
                &c.state.cgroup,
            ))
        })
        .await?;
        Ok(PidsResponse {
            processes: pids
                .into_iter()
                .map(|pid| ProcessInfo {
                    pid: pid as u32,
                    info: exec_pids
                        .get(&(pid as u32))
                        .and_then(|exec_id| process_details(exec_id))
                        .into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }
}

/// Pause/Resume, Update, Stats, OOM: operations on the container's cgroup.
impl TaskService {
    /// Publish /tasks/oom for every OOM kill in the container's memory cgroup.
    fn watch_oom(&self, t: &TaskEntry) {
        let v1 = self.cfg.layout == runtime_core::cgroup::Layout::V1;
        let file = if v1 {
            "memory.oom_control"
        } else {
            "memory.events"
        };
        let dir = {
            let Ok(c) = t.container.lock() else { return };
            runtime_core::cgroup::file(&c.state.hierarchies, &c.state.cgroup, file)
                .and_then(|p| p.parent().map(Path::to_path_buf))
        };
        let Some(dir) = dir else {
            log::warn!("no memory cgroup for {}: no OOM events", t.id);
            return;
        };
        let this = self.clone();
        let id = t.id.clone();
        let handle = tokio::runtime::Handle::current();
        let on_oom = move || {
            let this = this.clone();
            let ev = TaskOOM {
                container_id: id.clone(),
                ..Default::default()
            };
            handle.spawn(async move { this.publish(ev.topic().as_str(), Box::new(ev)).await });
        };
        let r = if v1 {
            crate::oom::watch_v1(dir, on_oom)
        } else {
            crate::oom::watch_v2(dir, on_oom)
        };
        if let Err(e) = r {
            log::warn!("watch OOM of {}: {e}", t.id);
        }
    }

    /// The runtime-core handle of a task on which `op` is legal.
    async fn container_for(&self, id: &str, op: Op) -> Result<Arc<std::sync::Mutex<Container>>> {
        let tasks = self.tasks.lock().await;
        let t = tasks
            .by_id
            .get(id)
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        check(&format!("container {id}"), op, t.proc.state)?;
        Ok(t.container.clone())
    }

    async fn set_paused(&self, id: &str, paused: bool) -> Result<()> {
        let (from, op) = if paused {
            (State::Running, Op::Pause)
        } else {
            (State::Paused, Op::Resume)
        };
        let c = self.container_for(id, op).await?;
        blocking(move || {
            let c = c.lock().map_err(|_| Error::Internal("poisoned".into()))?;
            Ok(c.freeze(paused)?)
        })
        .await?;
        let mut tasks = self.tasks.lock().await;
        if let Some(t) = tasks.by_id.get_mut(id) {
            if t.proc.state == from {
                t.proc.state = if paused {
                    State::Paused
                } else {
                    State::Running
                };
            }
        }
        drop(tasks);
        if paused {
            let ev = TaskPaused {
                container_id: id.to_string(),
                ..Default::default()
            };
            self.publish(ev.topic().as_str(), Box::new(ev)).await;
        } else {
            let ev = TaskResumed {
                container_id: id.to_string(),
                ..Default::default()
            };
            self.publish(ev.topic().as_str(), Box::new(ev)).await;
        }
        Ok(())
    }

    async fn do_update(&self, req: UpdateTaskRequest) -> Result<()> {
        let c = self.container_for(&req.id, Op::Update).await?;
        let any = req
            .resources
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("update without resources".into()))?;
        let resources: oci_spec::runtime::LinuxResources = serde_json::from_slice(&any.value)
            .map_err(|e| Error::InvalidArgument(format!("update resources: {e}")))?;
        let layout = self.cfg.layout;
        blocking(move || {
            let c = c.lock().map_err(|_| Error::Internal("poisoned".into()))?;
            Ok(c.update(layout, &resources)?)
        })
        .await
    }

    async fn do_stats(&self, req: StatsRequest) -> Result<StatsResponse> {
        let layout = self.cfg.layout;
        let c = self.container_for(&req.id, Op::Stats).await?;
        let (type_url, value) = blocking(move || {
            let c = c.lock().map_err(|_| Error::Internal("poisoned".into()))?;
            let stats = runtime_core::stats::read(layout, &c.state.hierarchies, &c.state.cgroup);
            let encoded = match &stats {
                runtime_core::stats::Stats::V1(s) => (
                    crate::metrics::V1_METRICS_TYPE,
                    crate::metrics::v1(s).write_to_bytes(),
                ),
                runtime_core::stats::Stats::V2(s) => (
                    crate::metrics::V2_METRICS_TYPE,
                    crate::metrics::v2(s).write_to_bytes(),
                ),
            };
            match encoded {
                (t, Ok(v)) => Ok((t, v)),
                (_, Err(e)) => Err(Error::Internal(format!("encode metrics: {e}"))),
            }
        })
        .await?;
        Ok(StatsResponse {
            stats: Some(Any {
                type_url: type_url.to_string(),
                value,
                ..Default::default()
            })
            .into(),
            ..Default::default()
        })
    }
}

/// Exec processes.
impl TaskService {
    async fn add_exec(&self, req: ExecProcessRequest) -> Result<()> {
        let spec = req
            .spec
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("exec without a process spec".into()))?;
        let process: oci_spec::runtime::Process = runtime_core::spec::parse_process(&spec.value)
            .map_err(|e| Error::InvalidArgument(format!("exec process spec: {e}")))?;
        let mut tasks = self.tasks.lock().await;
        let t = tasks
            .by_id
            .get_mut(&req.id)
            .ok_or_else(|| Error::NotFound(req.id.clone()))?;
        check(&format!("container {}", req.id), Op::Exec, t.proc.state)?;
        if t.execs.contains_key(&req.exec_id) {
            return Err(Error::AlreadyExists(format!(
                "exec {} in {}",
                req.exec_id, req.id
            )));
        }
        t.execs.insert(
            req.exec_id.clone(),
            ExecEntry {
                process,
                proc: Proc::new(&req.stdin, &req.stdout, &req.stderr, req.terminal),
                helper_pid: 0,
                handle: None,
            },
        );
        drop(tasks);
        let event = TaskExecAdded {
            container_id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        };
        self.publish(event.topic().as_str(), Box::new(event)).await;
        Ok(())
    }

    async fn start_exec(&self, id: &str, exec_id: &str) -> Result<StartResponse> {
        // Held across the start so that the exit of a short-lived exec is
        // published after /tasks/exec-started.
        let mut tasks = self.tasks.lock().await;
        let t = tasks
            .by_id
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        check(&format!("container {id}"), Op::Exec, t.proc.state)?;
        let container = t.container.clone();
        let e = t
            .execs
            .get_mut(exec_id)
            .ok_or_else(|| Error::NotFound(format!("exec {exec_id} in {id}")))?;
        check(&format!("exec {exec_id}"), Op::Start, e.proc.state)?;
        let (stdio, keep) = if e.proc.terminal {
            (io::null_stdio()?, IoKeep::default())
        } else {
            io::open(
                exec_id,
                &self.namespace,
                &e.proc.stdin,
                &e.proc.stdout,
                &e.proc.stderr,
                t.io_owner,
            )?
        };
        let (term_stdin, term_stdout) = (e.proc.stdin.clone(), e.proc.stdout.clone());
        let mut process = e.process.clone();
        process.set_terminal(Some(e.proc.terminal));
        let cfg = self.cfg.clone();
        let result = blocking(move || {
            let c = container
                .lock()
                .map_err(|_| Error::Internal("poisoned".into()))?;
            let mut helper = 0;
            let r = c.exec(&cfg, &process, stdio, &mut |pid| helper = pid);
            Ok((r, helper))
        })
        .await?;
        let mut exec = match result {
            (Ok(exec), _) => exec,
            (Err(err), helper) => {
                tasks.unclaimed.remove(&(helper as i32));
                let e = tasks
                    .by_id
                    .get_mut(id)
                    .and_then(|t| t.execs.get_mut(exec_id));
                if let Some(e) = e {
                    // Like runc: an exec that cannot start is an error of Start, and
                    // the process counts as exited.
                    e.proc.state = State::Stopped;
                    let info = ExitInfo {
                        code: 127,
                        at: std::time::SystemTime::now(),
                    };
                    e.proc.exit = Some(info);
                    let _ = e.proc.exit_tx.send(Some(info));
                }
                return Err(Error::Runtime(err));
            }
        };
        let keep = match exec.console.take() {
            Some(master) => io::attach_console(master, &term_stdin, &term_stdout)?,
            None => keep,
        };
        let pid = exec.pid as u32;
        let helper_pid = exec.helper_pid;
        let early = tasks.unclaimed.remove(&helper_pid);
        let t = tasks
            .by_id
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        let e = t
            .execs
            .get_mut(exec_id)
            .ok_or_else(|| Error::NotFound(format!("exec {exec_id} in {id}")))?;
        e.proc.state = State::Running;
        e.proc.pid = pid;
        e.helper_pid = helper_pid as u32;
        e.handle = Some(exec);
        e.proc.io = keep;
        let exit_event = early.map(|(info, _)| e.proc.stopped(id, exec_id, info));
        let event = TaskExecStarted {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
            pid,
            ..Default::default()
        };
        self.publish(event.topic().as_str(), Box::new(event)).await;
        if let Some(ev) = exit_event {
            self.publish(ev.topic().as_str(), Box::new(ev)).await;
        }
        drop(tasks);
        Ok(StartResponse {
            pid,
            ..Default::default()
        })
    }

    async fn kill_exec(&self, id: &str, exec_id: &str, signal: i32) -> Result<()> {
        let tasks = self.tasks.lock().await;
        let e = tasks
            .by_id
            .get(id)
            .and_then(|t| t.execs.get(exec_id))
            .ok_or_else(|| Error::NotFound(format!("exec {exec_id} in {id}")))?;
        match (&e.handle, e.proc.state) {
            (Some(h), State::Running) => match h.kill(signal) {
                Ok(()) => Ok(()),
                Err(runtime_core::Error::Sys { source, .. })
                    if source.raw_os_error() == Some(libc::ESRCH) =>
                {
                    Err(Error::NotFound("process already finished".into()))
                }
                Err(e) => Err(e.into()),
            },
            (_, State::Created) => Err(Error::FailedPrecondition(format!(
                "exec {exec_id} is not started"
            ))),
            _ => Err(Error::NotFound("process already finished".into())),
        }
    }

    async fn wait_exec(&self, id: &str, exec_id: &str) -> Result<ExitInfo> {
        let what = format!("exec {exec_id} in {id}");
        let rx = {
            let tasks = self.tasks.lock().await;
            let e = tasks
                .by_id
                .get(id)
                .and_then(|t| t.execs.get(exec_id))
                .ok_or_else(|| Error::NotFound(what.clone()))?;
            match e.proc.exit_or_subscribe() {
                Ok(info) => return Ok(info),
                Err(rx) => rx,
            }
        };
        wait_exit(rx, &what).await
    }

    async fn delete_exec(&self, id: &str, exec_id: &str) -> Result<DeleteResponse> {
        let mut tasks = self.tasks.lock().await;
        let t = tasks
            .by_id
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        let e = t
            .execs
            .get(exec_id)
            .ok_or_else(|| Error::NotFound(format!("exec {exec_id} in {id}")))?;
        check(&format!("exec {exec_id}"), Op::Delete, e.proc.state)?;
        let e = t.execs.remove(exec_id).expect("checked above");
        let info = e.proc.exit.unwrap_or(ExitInfo {
            code: 0,
            at: std::time::SystemTime::now(),
        });
        Ok(DeleteResponse {
            pid: e.proc.pid,
            exit_status: info.code,
            exited_at: Some(timestamp(info.at)).into(),
            ..Default::default()
        })
    }
}

#[async_trait]
impl Task for TaskService {
    async fn create(
        &self,
        _ctx: &TtrpcContext,
        req: CreateTaskRequest,
    ) -> ttrpc::Result<CreateTaskResponse> {
        log::info!("Create id={} bundle={}", req.id, req.bundle);
        self.do_create(req).await.map_err(|e| {
            log::error!("create: {e}");
            e.into()
        })
    }

    async fn start(&self, _ctx: &TtrpcContext, req: StartRequest) -> ttrpc::Result<StartResponse> {
        log::info!("Start id={} exec_id={}", req.id, req.exec_id);
        Ok(self.do_start(req).await?)
    }

    async fn kill(&self, _ctx: &TtrpcContext, req: KillRequest) -> ttrpc::Result<Empty> {
        log::info!("Kill id={} signal={} all={}", req.id, req.signal, req.all);
        self.do_kill(req).await?;
        Ok(Empty::new())
    }

    async fn delete(
        &self,
        _ctx: &TtrpcContext,
        req: DeleteRequest,
    ) -> ttrpc::Result<DeleteResponse> {
        log::info!("Delete id={} exec_id={}", req.id, req.exec_id);
        Ok(self.do_delete(req).await?)
    }

    async fn exec(&self, _ctx: &TtrpcContext, req: ExecProcessRequest) -> ttrpc::Result<Empty> {
        log::info!("Exec id={} exec_id={}", req.id, req.exec_id);
        self.add_exec(req).await?;
        Ok(Empty::new())
    }

    async fn resize_pty(&self, _ctx: &TtrpcContext, req: ResizePtyRequest) -> ttrpc::Result<Empty> {
        let tasks = self.tasks.lock().await;
        let t = tasks
            .by_id
            .get(&req.id)
            .ok_or_else(|| Error::NotFound(req.id.clone()))?;
        let io = if req.exec_id.is_empty() {
            &t.proc.io
        } else {
            &t.execs
                .get(&req.exec_id)
                .ok_or_else(|| Error::NotFound(format!("exec {} in {}", req.exec_id, req.id)))?
                .proc
                .io
        };
        let clamp = |v: u32| v.min(u32::from(u16::MAX)) as u16;
        io.resize(clamp(req.height), clamp(req.width))?;
        Ok(Empty::new())
    }

    async fn close_io(&self, _ctx: &TtrpcContext, req: CloseIORequest) -> ttrpc::Result<Empty> {
        let mut tasks = self.tasks.lock().await;
        let t = tasks
            .by_id
            .get_mut(&req.id)
            .ok_or_else(|| Error::NotFound(req.id.clone()))?;
        let io = if req.exec_id.is_empty() {
            &mut t.proc.io
        } else {
            &mut t
                .execs
                .get_mut(&req.exec_id)
                .ok_or_else(|| Error::NotFound(format!("exec {} in {}", req.exec_id, req.id)))?
                .proc
                .io
        };
        if req.stdin {
            io.close_stdin();
        }
        Ok(Empty::new())
    }

    async fn pause(&self, _ctx: &TtrpcContext, req: PauseRequest) -> ttrpc::Result<Empty> {
        log::info!("Pause id={}", req.id);
        self.set_paused(&req.id, true).await?;
        Ok(Empty::new())
    }

    async fn resume(&self, _ctx: &TtrpcContext, req: ResumeRequest) -> ttrpc::Result<Empty> {
        log::info!("Resume id={}", req.id);
        self.set_paused(&req.id, false).await?;
        Ok(Empty::new())
    }

    async fn update(&self, _ctx: &TtrpcContext, req: UpdateTaskRequest) -> ttrpc::Result<Empty> {
        log::info!("Update id={}", req.id);
        self.do_update(req).await?;
        Ok(Empty::new())
    }

    /// No checkpoint/restore in lxcri yet: a clear error, FailedPrecondition when
    /// criu cannot work on this host at all, Unimplemented otherwise.
    async fn checkpoint(
        &self,
        _ctx: &TtrpcContext,
        req: CheckpointTaskRequest,
    ) -> ttrpc::Result<Empty> {
        log::info!("Checkpoint id={}", req.id);
        if !self.tasks.lock().await.by_id.contains_key(&req.id) {
            return Err(Error::NotFound(req.id).into());
        }
        let check = blocking(|| Ok(criu_check())).await?;
        Err(match check {
            Err(why) => Error::FailedPrecondition(format!("checkpoint needs criu: {why}")),
            Ok(()) => {
                Error::Unimplemented("checkpoint (criu works here, lxcri has no checkpoint yet)")
            }
        }
        .into())
    }

    async fn stats(&self, _ctx: &TtrpcContext, req: StatsRequest) -> ttrpc::Result<StatsResponse> {
        Ok(self.do_stats(req).await?)
    }

    async fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> ttrpc::Result<StateResponse> {
        Ok(self.do_state(req).await?)
    }

    async fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> ttrpc::Result<WaitResponse> {
        let info = if req.exec_id.is_empty() {
            self.wait_stopped(&req.id, None).await?
        } else {
            self.wait_exec(&req.id, &req.exec_id).await?
        };
        Ok(WaitResponse {
            exit_status: info.code,
            exited_at: Some(timestamp(info.at)).into(),
            ..Default::default()
        })
    }

    async fn pids(&self, _ctx: &TtrpcContext, req: PidsRequest) -> ttrpc::Result<PidsResponse> {
        Ok(self.do_pids(req).await?)
    }

    async fn connect(
        &self,
        _ctx: &TtrpcContext,
        req: ConnectRequest,
    ) -> ttrpc::Result<ConnectResponse> {
        let tasks = self.tasks.lock().await;
        let task_pid = tasks.by_id.get(&req.id).map(|t| t.proc.pid).unwrap_or(0);
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            ..Default::default()
        })
    }

    async fn shutdown(&self, _ctx: &TtrpcContext, _req: ShutdownRequest) -> ttrpc::Result<Empty> {
        let tasks = self.tasks.lock().await;
        if !tasks.by_id.is_empty() {
            log::info!("Shutdown refused: {} container(s) left", tasks.by_id.len());
            return Ok(Empty::new());
        }
        log::info!("Shutdown root={}", self.runtime_root().display());
        self.exit.signal();
        Ok(Empty::new())
    }
}

/// `criu check`: Ok when criu would work on this host, else why not. The output
/// decides ("Looks good."), not the exit status: the shim's reaper may take it.
fn criu_check() -> std::result::Result<(), String> {
    use std::io::Read;
    let mut child = std::process::Command::new("criu")
        .arg("check")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("criu check: {e}"))?;
    let mut out = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut out);
    }
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    let _ = child.wait();
    if out.contains("Looks good") {
        return Ok(());
    }
    let tail: Vec<&str> = out.lines().rev().take(2).collect();
    Err(format!(
        "criu check failed: {}",
        tail.into_iter().rev().collect::<Vec<_>>().join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: u32) -> ExitInfo {
        ExitInfo {
            code,
            at: std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(5),
        }
    }

    #[test]
    fn init_and_exec_states_alike() {
        let mut p = Proc::new("in", "out", "err", true);
        p.pid = 42;
        let before = p.state_response("c1", "", Path::new("/b"));
        assert_eq!(before.status(), Status::CREATED);
        assert_eq!(
            (before.id.as_str(), before.pid, before.terminal),
            ("c1", 42, true)
        );
        assert_eq!(
            (before.stdin.as_str(), before.bundle.as_str()),
            ("in", "/b")
        );
        assert_eq!(before.exit_status, 0);

        let ev = p.stopped("c1", "x1", exit(137));
        assert_eq!(
            (
                ev.container_id.as_str(),
                ev.id.as_str(),
                ev.pid,
                ev.exit_status
            ),
            ("c1", "x1", 42, 137)
        );
        assert_eq!(ev.exited_at.seconds, 5);
        let after = p.state_response("x1", "x1", Path::new("/b"));
        assert_eq!(after.status(), Status::STOPPED);
        assert_eq!((after.exec_id.as_str(), after.exit_status), ("x1", 137));
        assert_eq!(after.exited_at.seconds, 5);
    }

    #[tokio::test]
    async fn wait_returns_the_exit_or_not_found() {
        let mut p = Proc::new("", "", "", false);
        let rx = p.exit_or_subscribe().unwrap_err();
        let waiter = tokio::spawn(wait_exit(rx, "c1"));
        tokio::task::yield_now().await;
        p.stopped("c1", "c1", exit(3));
        assert_eq!(waiter.await.unwrap().unwrap().code, 3);
        // Later waiters get the recorded exit at once.
        assert_eq!(p.exit_or_subscribe().unwrap().code, 3);

        // The entry is removed (deleted) while someone waits: NotFound.
        let q = Proc::new("", "", "", false);
        let rx = q.exit_or_subscribe().unwrap_err();
        drop(q);
        assert!(matches!(wait_exit(rx, "c2").await, Err(Error::NotFound(_))));
    }
}
