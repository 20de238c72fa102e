//! `lxcri`: a runc-compatible command line runtime on liblxc.
//!
//! Each command is a fresh process; everything a later command needs lives in the
//! container's runtime dir `<root>/<id>` (see `docs/architecture.md`, "The CLI").
//! The command surface is runc's, as conmon/podman, CRI-O and containerd's runc
//! shim call it.

mod commands;
mod console;
mod features;
mod lock;
mod logging;
mod lookup;
mod meta;
mod signal;
mod spec;
mod stats;
mod time;
mod tty;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The OCI runtime spec version lxcri implements.
pub const SPEC_VERSION: &str = runtime_core::container::OCI_VERSION;

#[derive(Debug, Parser)]
#[command(
    name = "lxcri",
    about = "lxcri: an OCI runtime on liblxc (runc-compatible command line)",
    disable_version_flag = true
)]
pub struct Cli {
    /// Root directory for the containers' runtime state.
    #[arg(long, global = true, default_value = "/run/lxcri")]
    pub root: PathBuf,
    /// Log file (default: warnings and errors go to stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format.
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Debug logging.
    #[arg(long, global = true)]
    pub debug: bool,
    /// The systemd cgroup driver (as runc): linux.cgroupsPath is
    /// slice:prefix:name, the container's cgroup a transient systemd unit
    /// holding its limits. Needs systemd as PID 1.
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Accepted for runc compatibility (checkpoint/restore is not supported).
    #[arg(long, global = true, hide = true)]
    pub criu: Option<String>,
    /// runc's rootless mode: only "false" or "auto" (lxcri runs as root).
    #[arg(long, global = true, hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// Print the version.
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container (its process waits until `start`).
    Create(CreateArgs),
    /// Start the process of a created container.
    Start(IdArg),
    /// Create and start a container.
    Run(RunArgs),
    /// Print the OCI state of a container.
    State(IdArg),
    /// Send a signal to the container's init (or to all its processes).
    Kill(KillArgs),
    /// Delete a container and everything it left.
    Delete(DeleteArgs),
    /// Run a new process in a running container.
    Exec(ExecArgs),
    /// Freeze every process of a container.
    Pause(IdArg),
    /// Thaw a paused container.
    Resume(IdArg),
    /// List the processes of a container.
    Ps(PsArgs),
    /// Change the resource limits of a running container.
    Update(UpdateArgs),
    /// Print container statistics (and OOM events).
    Events(EventsArgs),
    /// List containers.
    List(ListArgs),
    /// Print what this runtime supports (runc's features JSON).
    Features,
    /// Write a default config.json into the bundle.
    Spec(SpecArgs),
}

#[derive(Debug, Args)]
pub struct IdArg {
    pub id: String,
}

#[derive(Debug, Args, Clone)]
pub struct CreateOpts {
    /// The bundle directory (holds config.json).
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// A unix socket that receives the pty master (SCM_RIGHTS).
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Write the container init's host pid to this file.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Accepted for runc compatibility; liblxc always uses pivot_root.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// No new session keyring for the container (it keeps the caller's), as runc.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Extra fds to pass to the container (only 0 is supported).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub opts: CreateOpts,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub opts: CreateOpts,
    /// Return once the container runs (do not wait for it).
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep the container after it exits (no delete).
    #[arg(long)]
    pub keep: bool,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal every process of the container.
    #[arg(short = 'a', long)]
    pub all: bool,
    pub id: String,
    /// Name (TERM, SIGTERM) or number; default TERM.
    pub signal: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Kill a running container, and remove whatever a failed create left.
    #[arg(short = 'f', long)]
    pub force: bool,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// A process.json (OCI process) instead of the arguments.
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Do not wait for the process (it is reparented to the caller's subreaper).
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Write the process's host pid to this file.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Give the process a terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// A unix socket that receives the pty master (SCM_RIGHTS).
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Working directory.
    #[arg(long)]
    pub cwd: Option<String>,
    /// KEY=value, repeatable.
    #[arg(short = 'e', long)]
    pub env: Vec<String>,
    /// uid[:gid].
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional group ids, repeatable.
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability, repeatable (CAP_...).
    #[arg(short = 'c', long)]
    pub cap: Vec<String>,
    /// Set no_new_privileges.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Extra fds to pass to the process (only 0 is supported).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Exec even when the container is paused.
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    pub id: String,
    /// The command and its arguments (without --process).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    #[arg(short = 'f', long, value_enum, default_value = "table")]
    pub format: ListFormat,
    pub id: String,
    /// Arguments for ps(1) in table format (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// LinuxResources JSON file, or - for stdin.
    #[arg(short = 'r', long)]
    pub resources: Option<String>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime")]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory limit in bytes (-1: unlimited).
    #[arg(short = 'm', long, allow_hyphen_values = true)]
    pub memory: Option<i64>,
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<i64>,
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<i64>,
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Print one stats event and exit.
    #[arg(long)]
    pub stats: bool,
    /// Interval between stats events (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s")]
    pub interval: String,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(short = 'f', long, value_enum, default_value = "table")]
    pub format: ListFormat,
    /// Print only the ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct SpecArgs {
    /// The bundle directory to write config.json into.
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
}

fn main() -> ExitCode {
    // Like runc and the C tools: a closed stdout (`lxcri list | head`) ends us
    // quietly instead of a panic in print!.
    // SAFETY: called first in main, before any thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    if let Err(e) = logging::init(&cli) {
        eprintln!("lxcri: {e:#}");
        return ExitCode::from(1);
    }
    log::debug!("argv={:?}", std::env::args().collect::<Vec<_>>());
    match commands::run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let msg = format!("{e:#}");
            log::error!("{msg}");
            logging::flush();
            eprintln!("{msg}");
            ExitCode::from(1)
        }
    }
}
