//! Leak checker: what a test left behind after its containers are gone.
//!
//! A snapshot is taken before the test; afterwards anything new that
//! belongs to a container runtime is a leak: processes (monitor, init,
//! shims, container processes), cgroup directories in every hierarchy,
//! mounts (in containerd's namespace and on the host) and runtime state dirs.

use crate::containerd::{Containerd, CRI_NAMESPACE};
use crate::procfs::{self, Process};
use anyhow::{bail, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// Executables (argv[0] file names) that must not outlive a test.
pub const RUNTIME_BINARIES: &[&str] = &[
    "lxcri-start",
    "lxcri-init",
    "containerd-shim-lxcri-v2",
    "containerd-shim-runc-v2",
    "runc",
    "lxcri",
    "lxcri-attach",
    "conmon",
];

/// liblxc renames its monitor process to "[lxc monitor] <lxcpath> <name>".
const LXC_MONITOR: &str = "[lxc monitor]";

/// The containerd namespace ctr uses; its cgroup parent (/default) is
/// shared by all containers of the namespace and, like with runc, stays.
pub const NAMESPACE: &str = "default";

/// How long cleanup may lag behind the last ctr command (shims exit
/// asynchronously after Shutdown).
const SETTLE: Duration = Duration::from_secs(10);

/// How long [`Snapshot::clean_up`] retries removing cgroup dirs.
const CLEANUP: Duration = Duration::from_secs(5);

/// State before a test.
pub struct Snapshot {
    processes: BTreeSet<i32>,
    cgroups: BTreeSet<PathBuf>,
    host_mounts: BTreeSet<String>,
    ns_mounts: BTreeSet<String>,
    /// Named network namespaces (/run/netns) as containerd's mount
    /// namespace sees them.
    netns_files: BTreeSet<String>,
}

impl Snapshot {
    /// Takes the snapshot while `ctd` runs, before any container exists.
    pub fn take(ctd: &Containerd, host_mounts: BTreeSet<String>) -> Result<Self> {
        Ok(Snapshot {
            processes: suspects(&[]).iter().map(|p| p.pid).collect(),
            cgroups: procfs::cgroup_dirs(),
            host_mounts,
            ns_mounts: procfs::mounts(&ctd.mountinfo())?,
            netns_files: netns_files(ctd),
        })
    }

    /// Checks, while containerd still runs, that nothing of the containers
    /// `ids` remains. Waits up to SETTLE for asynchronous cleanup.
    pub fn check_running(&self, ctd: &Containerd, ids: &[String]) -> Result<()> {
        settle(|| self.leaks_running(ctd, ids))
    }

    /// Checks after containerd stopped: no runtime processes, no host mounts.
    pub fn check_stopped(&self, ids: &[String]) -> Result<()> {
        settle(|| self.leaks_stopped(ids))
    }

    fn leaks_running(&self, ctd: &Containerd, ids: &[String]) -> Vec<String> {
        let mut leaks = self.process_leaks(ids);
        leaks.extend(self.cgroup_leaks());
        leaks.extend(new_lines(
            "mount in containerd's namespace",
            &self.ns_mounts,
            &procfs::mounts(&ctd.mountinfo()).unwrap_or_default(),
        ));
        leaks.extend(runtime_dir_leaks(ctd));
        leaks.extend(new_lines(
            "named netns in containerd's namespace",
            &self.netns_files,
            &netns_files(ctd),
        ));
        if ctd.private_net {
            leaks.extend(network_leaks(ctd));
        }
        leaks
    }

    fn leaks_stopped(&self, ids: &[String]) -> Vec<String> {
        let mut leaks = self.process_leaks(ids);
        leaks.extend(self.cgroup_leaks());
        leaks.extend(new_lines(
            "host mount",
            &self.host_mounts,
            &host_mounts().unwrap_or_default(),
        ));
        leaks
    }

    fn process_leaks(&self, ids: &[String]) -> Vec<String> {
        suspects(ids)
            .into_iter()
            .filter(|p| !self.processes.contains(&p.pid))
            .map(|p| format!("process: {p}"))
            .collect()
    }

    fn cgroup_leaks(&self) -> Vec<String> {
        self.new_cgroups()
            .into_iter()
            .filter(|dir| !is_namespace_parent(dir))
            .map(|dir| format!("cgroup: {}", dir.display()))
            .collect()
    }

    /// Cgroup dirs that appeared since the snapshot, except those created
    /// by whoever manages the test process.
    fn new_cgroups(&self) -> Vec<PathBuf> {
        let foreign = foreign_cgroup_parents();
        procfs::cgroup_dirs()
            .into_iter()
            .filter(|dir| !self.cgroups.contains(dir) && !is_under(dir, &foreign))
            .collect()
    }

    /// After the checks: SIGKILLs leaked processes and removes the cgroup
    /// dirs this test created (deepest first), so that the next test starts
    /// from the same state. Best effort.
    pub fn clean_up(&self, ids: &[String]) {
        for p in suspects(ids) {
            if !self.processes.contains(&p.pid) {
                let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
            }
        }
        // A killed process keeps its cgroups busy until it is reaped (a
        // container's pid 1 orphaned by a killed shim takes a while), so
        // retry the removal for a few seconds.
        let start = Instant::now();
        loop {
            thread::sleep(Duration::from_millis(200));
            let left: Vec<PathBuf> = self
                .new_cgroups()
                .into_iter()
                .rev()
                .filter(|dir| fs::remove_dir(dir).is_err())
                .collect();
            if left.is_empty() || start.elapsed() > CLEANUP {
                break;
            }
        }
    }
}

impl Snapshot {
    /// A snapshot for tests without containerd (the lxcri CLI, podman): runtime
    /// processes, cgroup dirs and host mounts.
    pub fn take_host() -> Result<Self> {
        Ok(Snapshot {
            processes: suspects(&[]).iter().map(|p| p.pid).collect(),
            cgroups: procfs::cgroup_dirs(),
            host_mounts: host_mounts()?,
            ns_mounts: BTreeSet::new(),
            netns_files: BTreeSet::new(),
        })
    }

    /// Checks that nothing of the containers `ids` remains and that each of
    /// `state_dirs` (a runtime's `--root`, podman's state) holds no entry but
    /// the ones in `allowed`. Waits up to SETTLE.
    pub fn check_host(&self, ids: &[String], state_dirs: &[PathBuf]) -> Result<()> {
        settle(|| {
            let mut leaks = self.leaks_stopped(ids);
            for d in state_dirs {
                for e in procfs::tree(d) {
                    leaks.push(format!("state: {}", d.join(e).display()));
                }
            }
            leaks
        })
    }
}

/// The host's mounts.
pub fn host_mounts() -> Result<BTreeSet<String>> {
    Ok(procfs::mounts(Path::new("/proc/self/mountinfo"))?)
}

/// Retries `leaks` until it finds none or SETTLE passes; then fails listing them.
fn settle(leaks: impl Fn() -> Vec<String>) -> Result<()> {
    let start = Instant::now();
    loop {
        let found = leaks();
        if found.is_empty() {
            return Ok(());
        }
        if start.elapsed() > SETTLE {
            bail!("LEAKED after cleanup:\n  {}", found.join("\n  "));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Processes that belong to a container runtime or to one of `ids`.
fn suspects(ids: &[String]) -> Vec<Process> {
    let me = std::process::id() as i32;
    procfs::processes()
        .into_iter()
        .filter(|p| p.pid != me)
        .filter(|p| is_runtime_process(p) || ids.iter().any(|id| belongs_to(p, id)))
        .collect()
}

fn is_runtime_process(p: &Process) -> bool {
    let argv0 = p.cmdline.split(' ').next().unwrap_or_default();
    let name = argv0.rsplit('/').next().unwrap_or_default();
    RUNTIME_BINARIES.contains(&name) || p.cmdline.starts_with(LXC_MONITOR)
}

/// A process in container `id`'s cgroup, or one naming it on its command line.
fn belongs_to(p: &Process, id: &str) -> bool {
    let in_cgroup = p
        .cgroups
        .lines()
        .any(|l| l.ends_with(&format!("/{id}")) || l.contains(&format!("/{id}/")));
    let named = p.cmdline.split(' ').any(|arg| arg == id);
    in_cgroup || named
}

/// `<hierarchy>/default`, the parent runc leaves for the namespace (and
/// `<hierarchy>/k8s.io`, the CRI tests' pod cgroup parent); allowed only
/// while empty (no child cgroups: those would be listed themselves).
fn is_namespace_parent(dir: &Path) -> bool {
    let roots = procfs::cgroup_roots();
    dir.file_name()
        .is_some_and(|n| n == NAMESPACE || n == CRI_NAMESPACE)
        && dir
            .parent()
            .is_some_and(|parent| roots.iter().any(|r| r == parent))
}

/// Parents of the test process's own cgroups (relative, non-root): whoever
/// manages us (a CI runner, a session tool) creates sibling cgroups there
/// at any time; they are not the runtime's.
fn foreign_cgroup_parents() -> Vec<PathBuf> {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    own.lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .filter_map(|path| Path::new(path).parent().map(Path::to_path_buf))
        .filter(|parent| parent != Path::new("/"))
        .collect()
}

/// Whether `dir` (absolute, under some hierarchy root) lies below one of
/// the relative cgroup paths `parents`.
fn is_under(dir: &Path, parents: &[PathBuf]) -> bool {
    let roots = procfs::cgroup_roots();
    let Some(relative) = roots.iter().find_map(|r| dir.strip_prefix(r).ok()) else {
        return false;
    };
    let relative = Path::new("/").join(relative);
    parents
        .iter()
        .any(|p| relative.starts_with(p) && relative != *p)
}

fn new_lines(kind: &str, before: &BTreeSet<String>, after: &BTreeSet<String>) -> Vec<String> {
    after
        .difference(before)
        .map(|line| format!("{kind}: {line}"))
        .collect()
}

/// Per-container state dirs that must be gone once the containers are:
/// - /run/containerd/lxcri/<namespace>/<id> (our shim; empty namespace dirs may stay)
/// - /run/containerd/runc/<namespace>/<id> (runc)
/// - /run/containerd/s/<socket> (shim sockets)
/// - <state>/io.containerd.runtime.v2.task/<namespace>/<id> (bundles)
/// - <root|state>/io.containerd.grpc.v1.cri/{sandboxes,containers}/<id>
///   (CRI's per-pod and per-container files: resolv.conf, the /dev/shm
///   tmpfs, container io; on 1.6 and 2.x alike)
fn runtime_dir_leaks(ctd: &Containerd) -> Vec<String> {
    let run = ctd.run_dir();
    let task_state = ctd.state_dir().join("io.containerd.runtime.v2.task");
    let cri_root = ctd.dir().join("root/io.containerd.grpc.v1.cri");
    let cri_state = ctd.state_dir().join("io.containerd.grpc.v1.cri");
    let mut leaks = Vec::new();
    for (root, depth) in [
        (run.join("lxcri"), 1),
        (run.join("runc"), 1),
        (run.join("s"), 0),
        (task_state, 1),
        (cri_root.join("sandboxes"), 0),
        (cri_root.join("containers"), 0),
        (cri_state.join("sandboxes"), 0),
        (cri_state.join("containers"), 0),
    ] {
        for entry in procfs::tree(&root) {
            let allowed_parent =
                entry.components().count() <= depth && is_empty_dir(&root.join(&entry));
            if !allowed_parent {
                leaks.push(format!("runtime dir: {}", root.join(entry).display()));
            }
        }
    }
    leaks
}

/// What containers leave in a private-network daemon's network namespace
/// and CNI state once they are gone (their CNI DEL ran):
/// - veth interfaces (the host ends of container interfaces);
/// - libcni's cached results (`<cni state>/results/<net>-<id>-<ifname>`);
/// - host-local IPAM reservations (a file named by the address) in
///   `<cni state>/networks/<net>/` (nerdctl's networks) and
///   `<dir>/cni/ipam/<net>/` (the CRI daemon's conflist); `lock` and
///   `last_reserved_ip.N` stay by design.
fn network_leaks(ctd: &Containerd) -> Vec<String> {
    let mut leaks = Vec::new();
    match veths(ctd) {
        Ok(v) => leaks.extend(
            v.into_iter()
                .map(|l| format!("veth in containerd's netns: {l}")),
        ),
        Err(e) => leaks.push(format!("cannot list veths: {e:#}")),
    }
    let state = ctd.cni_state_dir();
    for entry in procfs::tree(&state.join("results")) {
        leaks.push(format!("CNI result cache: {}", entry.display()));
    }
    for ipam in [state.join("networks"), ctd.dir().join("cni/ipam")] {
        for entry in procfs::tree(&ipam) {
            let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let reservation = entry.components().count() == 2
                && name != "lock"
                && !name.starts_with("last_reserved_ip.");
            if reservation {
                leaks.push(format!(
                    "host-local IPAM reservation: {}",
                    ipam.join(&entry).display()
                ));
            }
        }
    }
    leaks
}

/// The entries of /run/netns in containerd's mount namespace (where CRI
/// binds its pods' network namespaces; the mounts themselves are in the
/// mountinfo check).
fn netns_files(ctd: &Containerd) -> BTreeSet<String> {
    let dir = PathBuf::from(format!("/proc/{}/root/run/netns", ctd.pid()));
    procfs::tree(&dir)
        .into_iter()
        .map(|p| format!("/run/netns/{}", p.display()))
        .collect()
}

/// `ip -o link show type veth` in the daemon's network namespace.
pub fn veths(ctd: &Containerd) -> Result<Vec<String>> {
    let mut cmd = ctd.in_net("ip");
    cmd.args(["-o", "link", "show", "type", "veth"]);
    let out = crate::cmd::run(&mut cmd, None, Duration::from_secs(10))?;
    if out.code != 0 {
        bail!("ip link: {out}");
    }
    Ok(out
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect())
}

fn is_empty_dir(path: &Path) -> bool {
    fs::read_dir(path).is_ok_and(|mut d| d.next().is_none())
}
