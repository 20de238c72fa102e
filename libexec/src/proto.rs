//! The protocol between the runtime and `lxcri-init`, the container's pid 1.
//!
//! liblxc starts `lxcri-init` (from a sealed memfd at [`INIT_EXE_FD`]) as the
//! container's init. It inherits one end of a `SOCK_SEQPACKET` socketpair at
//! [`INIT_CHANNEL_FD`]; the runtime holds the other end. Each message is one JSON
//! datagram:
//!
//! 1. init → runtime: [`InitMessage::Hello`], sent with `SCM_CREDENTIALS` so that the
//!    runtime learns the init's host pid from the kernel.
//! 2. runtime → init: [`RuntimeMessage::Setup`] with the [`InitSpec`].
//! 3. init → runtime: [`InitMessage::Ready`] (the container is *created*; init waits)
//!    or [`InitMessage::Error`]. With a terminal, Ready carries the pty master.
//! 4. runtime → init: [`RuntimeMessage::Start`], carrying with `SCM_RIGHTS` the write
//!    end of a pipe whose read end the runtime keeps. init marks it close-on-exec and
//!    `execve`s the process: end of file on the pipe means the exec succeeded; an
//!    error text on it means it failed (init then exits 126 or 127).
//!
//! The CLI, whose `create` process exits while the container waits, sends
//! [`RuntimeMessage::Detach`] after Ready: Start then comes, as step 4, over a new
//! connection to a listening socket in the runtime dir (`lxcri start` is a new
//! process).
//!
//! Nothing of this is visible in the container's filesystem.
//!
//! The attach helper (`lxcri-attach`, for exec) gets the same kind of channel at
//! [`INIT_CHANNEL_FD`]: runtime → helper [`RuntimeMessage::Exec`], helper → runtime
//! [`InitMessage::Started`] with the process's host pid, or [`InitMessage::Error`].
//!
//! Seccomp agents: a filter with SCMP_ACT_NOTIFY rules is loaded with
//! `SECCOMP_FILTER_FLAG_NEW_LISTENER`; the init (before Ready) or the attach helper
//! (for its child) sends the listener fd with [`InitMessage::SeccompListener`], the
//! runtime hands it to the agent at `listenerPath` and answers
//! [`RuntimeMessage::SeccompDone`].

use serde::{Deserialize, Serialize};

/// The fd at which init finds its end of the channel.
pub const INIT_CHANNEL_FD: i32 = 3;
/// The fd at which the start helper puts the sealed init executable.
pub const INIT_EXE_FD: i32 = 4;
/// Where the helpers get the fds the caller asked to preserve (runc's
/// `--preserve-fds`): at 5, 6, ...; the process finds them at 3, 4, ...
pub const PRESERVED_FDS_BASE: i32 = 5;
/// `lxc.init.cmd`: the init is exec'd from the inherited memfd.
pub const INIT_CMD: &str = "/proc/self/fd/4";
/// The environment variable in which `lxcri-start` exports its pid (the LXC
/// monitor's) for `lxcri-hook` at liblxc's mount hook.
pub const MONITOR_PID_ENV: &str = "LXCRI_MONITOR_PID";
/// The largest message on the channel.
pub const MAX_MESSAGE: usize = 4 << 20;

/// What a process of the container (the init's payload or an exec) is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ProcessSpec {
    pub args: Vec<String>,
    /// `KEY=value`, already deduplicated (last wins).
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    /// None: keep the (full) capabilities of the caller.
    pub capabilities: Option<CapabilitySets>,
    pub rlimits: Vec<Rlimit>,
    pub no_new_privileges: bool,
    pub oom_score_adj: Option<i32>,
    /// Give the process a new pty of the container's devpts as its controlling
    /// terminal and stdio; the master goes to the runtime (SCM_RIGHTS).
    #[serde(default)]
    pub terminal: bool,
    /// Initial window size (rows, columns).
    #[serde(default)]
    pub console_size: Option<(u16, u16)>,
    /// The seccomp filter, loaded right before the exec (or before the user and
    /// capability switch when no_new_privs is off, as runc does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<SeccompProgram>,
    /// `process.ioPriority` as ioprio_set(2) takes it: class << 13 | priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_priority: Option<u32>,
    /// `process.scheduler`, for sched_setattr(2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<SchedAttr>,
    /// `linux.memoryPolicy`, for set_mempolicy(2) (the container's, also for execs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_policy: Option<MemoryPolicy>,
    /// `process.execCPUAffinity` of an exec (the init's is never applied, as in
    /// runc). `None`: the affinity is reset to every CPU, like runc does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_affinity: Option<CpuAffinity>,
    /// How many fds to hand over (runc's `--preserve-fds`): the helper holds
    /// them at [`PRESERVED_FDS_BASE`].., the process gets them at 3.. .
    #[serde(default, skip_serializing_if = "is_zero")]
    pub preserved_fds: u32,
    /// `process.apparmorProfile`: the profile the exec enters (written to the
    /// process's AppArmor exec attribute before the user switch, as runc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apparmor_profile: Option<String>,
    /// `process.selinuxLabel`: the SELinux context the exec enters (written
    /// to the thread's exec attribute before the user switch, as runc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux_label: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// sched_setattr(2)'s `struct sched_attr`, without its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SchedAttr {
    /// SCHED_OTHER (0), FIFO (1), RR (2), BATCH (3), ISO (4), IDLE (5), DEADLINE (6).
    pub policy: u32,
    /// SCHED_FLAG_* bits.
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    /// SCHED_DEADLINE parameters, in nanoseconds.
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// set_mempolicy(2) arguments: `mode` is MPOL_* with the MPOL_F_* flags or'ed in,
/// `nodes` the node numbers of the mask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MemoryPolicy {
    pub mode: i32,
    pub nodes: Vec<u32>,
}

/// CPU numbers for sched_setaffinity(2): `initial` for the runtime's helper before
/// it enters the container, `final` for the process right before its exec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CpuAffinity {
    pub initial: Option<Vec<u32>>,
    #[serde(rename = "final")]
    pub final_cpus: Option<Vec<u32>>,
}

/// A compiled seccomp filter: classic BPF as `seccomp(SECCOMP_SET_MODE_FILTER)`
/// takes it, and the `SECCOMP_FILTER_FLAG_*` bits to load it with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SeccompProgram {
    pub instructions: Vec<SockFilter>,
    pub flags: u32,
    /// `linux.seccomp.listenerPath`, set when a rule is SCMP_ACT_NOTIFY (the flags
    /// then hold [`SECCOMP_FILTER_FLAG_NEW_LISTENER`]): the runtime sends the
    /// listener fd there. Not used by the process itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<String>,
    /// `linux.seccomp.listenerMetadata`, passed on to the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
}

/// seccomp(2): return a user-notification fd for the filter.
pub const SECCOMP_FILTER_FLAG_NEW_LISTENER: u32 = 1 << 3;
/// seccomp(2): a notified syscall waits killably once the agent received it.
pub const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: u32 = 1 << 5;

impl SeccompProgram {
    /// Whether loading the filter yields a listener fd for a seccomp agent.
    pub fn has_listener(&self) -> bool {
        self.flags & SECCOMP_FILTER_FLAG_NEW_LISTENER != 0
    }
}

/// One BPF instruction (`struct sock_filter`): code, jt, jf, k.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SockFilter(pub u16, pub u8, pub u8, pub u32);

/// An OCI hook as a helper runs it: `path` is executed with `args` (args[0] is
/// argv[0]) and exactly `env`; the container's state JSON goes to its stdin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HookSpec {
    pub path: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// Seconds; None: no timeout (like runc).
    pub timeout: Option<u32>,
}

/// startContainer hooks, run by the init at Start right before the exec (paths
/// resolved in the container).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct InitHooks {
    pub start_container: Vec<HookSpec>,
    /// The OCI state JSON for their stdin (status "created").
    pub start_state: String,
}

/// What the hook helper (`lxcri-hook`) reads on stdin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HookRun {
    /// The OCI name of the phase, for messages ("createRuntime").
    pub phase: String,
    pub hooks: Vec<HookSpec>,
    pub state: String,
}

/// What the hook helper writes on stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HookResult {
    pub error: Option<String>,
}

/// What init needs: the process, and the pre-start setup of the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct InitSpec {
    pub process: ProcessSpec,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    /// Remount / read-only once everything is mounted.
    pub readonly_rootfs: bool,
    #[serde(default)]
    pub hooks: InitHooks,
    /// `linux.devices`: nodes to create (mknod) before Start.
    #[serde(default)]
    pub devices: Vec<DeviceNode>,
    /// `linux.rootfsPropagation`: mount(2) propagation flags (MS_SHARED etc., with
    /// MS_REC for the r-forms) applied to / after pivot_root, as runc does.
    #[serde(default)]
    pub rootfs_propagation: Option<u64>,
    /// The propagation flags of `mounts` (container path, MS_* flags), in spec
    /// order: liblxc makes the whole tree rshared after pivot_root, so the init
    /// turns it back to rslave (runc's starting point) and re-applies these.
    #[serde(default)]
    pub mount_propagation: Vec<(String, u64)>,
    /// Mounts with the `rro` option: made read-only recursively (mount_setattr).
    #[serde(default)]
    pub recursive_readonly: Vec<String>,
}

/// The type of a device node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Char,
    Block,
    Fifo,
}

/// One device node of `linux.devices`, as runc creates it: mknod with the file
/// mode (0666 unless the spec says otherwise), then chown to uid/gid. An existing
/// node at the path is left alone (like runc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNode {
    /// Absolute path inside the container.
    pub path: String,
    pub kind: DeviceKind,
    pub major: u64,
    pub minor: u64,
    /// Permission bits (no file type bits).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Capability numbers (as in linux/capability.h) of each set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CapabilitySets {
    pub bounding: Vec<u8>,
    pub effective: Vec<u8>,
    pub permitted: Vec<u8>,
    pub inheritable: Vec<u8>,
    pub ambient: Vec<u8>,
}

/// One resource limit; `resource` is the RLIMIT_* number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}

/// Messages from init (or the attach helper) to the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InitMessage {
    Hello,
    Ready,
    /// The attach helper's process runs (exec succeeded); `pid` is its host pid.
    Started {
        pid: i32,
    },
    Error {
        message: String,
    },
    /// From `lxcri-hook` run as liblxc's mount hook (in the container's new
    /// namespaces, before pivot_root): the init's host pid; the runtime runs the
    /// prestart and createRuntime hooks and answers [`RuntimeMessage::RunHooks`].
    HookPoint {
        pid: i32,
    },
    /// From `lxcri-hook`: the createContainer hooks succeeded.
    HooksDone,
    /// From `lxcri-hook`: the mounts of [`RuntimeMessage::AttachMounts`] are
    /// attached.
    MountsAttached,
    /// Answer to [`RuntimeMessage::Detach`]: the init no longer dies with its
    /// parent and now waits for Start on the listening socket.
    Detached,
    /// Carries with `SCM_RIGHTS` the seccomp listener fd of a process that just
    /// loaded a filter with SCMP_ACT_NOTIFY rules; the process waits for
    /// [`RuntimeMessage::SeccompDone`] (runc's procSeccomp). `pid`: the host pid of
    /// an exec'd process (from the attach helper); None from the init.
    SeccompListener {
        #[serde(default)]
        pid: Option<i32>,
    },
}

/// Where `lxcri-hook` attaches one detached mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachMount {
    /// `mounts[i]`, for errors.
    pub field: String,
    /// Relative to the rootfs, resolved: no symlinks (refused), no `..`.
    pub destination: String,
    /// A missing mount point is made a directory (else an empty file).
    pub is_dir: bool,
}

/// Messages from the runtime to init.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RuntimeMessage {
    Setup {
        spec: Box<InitSpec>,
    },
    Start,
    /// To the attach helper: the process to run in the container.
    Exec {
        process: Box<ProcessSpec>,
        /// The CLI's `exec --detach`: the helper exits as soon as it has reported
        /// the pid, without waiting, so that the process is reparented to the
        /// caller's subreaper (conmon, a shim), which then sees its exit status.
        #[serde(default)]
        detach: bool,
        /// Without an LXC monitor (the CLI ends it at create), liblxc's attach
        /// cannot work: the helper then joins the namespaces of this init (host
        /// pid) through a pidfd and the cgroups whose `cgroup.procs` files are in
        /// `cgroup_procs` itself.
        #[serde(default)]
        init_pid: Option<i32>,
        #[serde(default)]
        cgroup_procs: Vec<String>,
    },
    /// To `lxcri-hook` at the mount hook, before [`RuntimeMessage::RunHooks`]:
    /// detached mounts (id-mapped binds, made by the runtime), one fd each with
    /// `SCM_RIGHTS` in this order, to attach inside the rootfs; answered by
    /// [`InitMessage::MountsAttached`] or an error.
    AttachMounts {
        mounts: Vec<AttachMount>,
    },
    /// To `lxcri-hook` at the mount hook: the createContainer hooks to run.
    RunHooks {
        hooks: Vec<HookSpec>,
        state: String,
    },
    /// To a created init (the CLI, whose process ends after create): carries with
    /// `SCM_RIGHTS` a listening `SOCK_SEQPACKET` unix socket. The init clears its
    /// parent-death signal (liblxc sets SIGKILL relative to the monitor, which the
    /// CLI ends so that the init is reparented to the caller's subreaper), answers
    /// [`InitMessage::Detached`], closes this channel and waits at the barrier for a
    /// connection on the listener that brings [`RuntimeMessage::Start`].
    Detach,
    /// Answer to [`InitMessage::SeccompListener`]: the seccomp agent has the fd
    /// (runc's procSeccompDone).
    SeccompDone,
}

/// The process exit code for a failed exec, like a shell: 127 when the program
/// does not exist, 126 when it exists but cannot be executed.
pub fn exec_failure_code(errno: nix::errno::Errno) -> i32 {
    match errno {
        nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR => 127,
        _ => 126,
    }
}

/// Capability names, indexed by number (linux/capability.h, up to CAP_CHECKPOINT_RESTORE).
pub const CAPABILITY_NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The number of a capability name ("CAP_SYS_ADMIN"), if known.
pub fn capability_number(name: &str) -> Option<u8> {
    CAPABILITY_NAMES
        .iter()
        .position(|n| *n == name)
        .map(|i| i as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_numbers_match_kernel() {
        assert_eq!(capability_number("CAP_CHOWN"), Some(0));
        assert_eq!(capability_number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(capability_number("CAP_AUDIT_READ"), Some(37));
        assert_eq!(capability_number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(capability_number("CAP_NOPE"), None);
    }

    #[test]
    fn messages_are_tagged_json() {
        let m = serde_json::to_string(&InitMessage::Hello).unwrap();
        assert_eq!(m, r#"{"type":"hello"}"#);
        let r: RuntimeMessage = serde_json::from_str(r#"{"type":"start"}"#).unwrap();
        assert_eq!(r, RuntimeMessage::Start);
    }

    #[test]
    fn exec_failure_codes() {
        assert_eq!(exec_failure_code(nix::errno::Errno::ENOENT), 127);
        assert_eq!(exec_failure_code(nix::errno::Errno::EACCES), 126);
    }
}
