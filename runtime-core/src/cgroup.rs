//! cgroup layout of the host and the container's cgroup paths.

use std::path::{Component, Path, PathBuf};

use crate::error::SpecError;

/// How the host mounts cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Layout {
    /// cgroup v1 controllers (legacy, or hybrid with an empty v2 beside them):
    /// liblxc takes `lxc.cgroup.*` keys and ignores `lxc.cgroup2.*` ones.
    V1,
    /// Pure cgroup v2 at /sys/fs/cgroup: `lxc.cgroup2.*` keys.
    V2,
}

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

impl Layout {
    /// The layout of this host: v2 when /sys/fs/cgroup itself is cgroup2.
    pub fn detect() -> Layout {
        match nix::sys::statfs::statfs("/sys/fs/cgroup") {
            Ok(st) if st.filesystem_type().0 == CGROUP2_SUPER_MAGIC => Layout::V2,
            _ => Layout::V1,
        }
    }

    /// The lxc config key prefix for resource limits.
    pub fn key_prefix(self) -> &'static str {
        match self {
            Layout::V1 => "lxc.cgroup.",
            Layout::V2 => "lxc.cgroup2.",
        }
    }
}

/// Where this host has the hugetlb controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hugetlb {
    /// A v1 hierarchy (or the pure v2 host's unified one): liblxc sets limits.
    Managed,
    /// Only in the unified hierarchy of a hybrid host, which liblxc does not
    /// configure (it ignores `lxc.cgroup2.*` there): the runtime writes the limits.
    HybridUnified,
    /// Nowhere.
    Absent,
}

/// Where the hugetlb controller is, from the `/proc/cgroups` text and the
/// unified hierarchy's root `cgroup.controllers` of a host of `layout` (None:
/// no unified hierarchy mounted).
pub fn hugetlb_place(layout: Layout, proc_cgroups: &str, unified: Option<&str>) -> Hugetlb {
    let in_unified = unified.is_some_and(|c| c.split_whitespace().any(|c| c == "hugetlb"));
    if layout == Layout::V2 {
        return if in_unified {
            Hugetlb::Managed
        } else {
            Hugetlb::Absent
        };
    }
    match (v1_bound(proc_cgroups, "hugetlb"), in_unified) {
        (true, _) => Hugetlb::Managed,
        (false, true) => Hugetlb::HybridUnified,
        (false, false) => Hugetlb::Absent,
    }
}

/// Whether `controller` is enabled and bound to a v1 hierarchy, from the
/// `/proc/cgroups` text (hierarchy 0: unbound, or in the unified hierarchy).
fn v1_bound(proc_cgroups: &str, controller: &str) -> bool {
    proc_cgroups.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 4 && f[0] == controller && f[1] != "0" && f[3] == "1"
    })
}

/// Whether liblxc can set rdma limits on a host of `layout`, from the
/// `/proc/cgroups` text and the root `cgroup.controllers` of /sys/fs/cgroup
/// (pure v2): on v1 (and hybrid) hosts liblxc writes only the v1 hierarchies,
/// so rdma must be bound to one; on a pure v2 host it must be available in the
/// unified hierarchy.
pub fn rdma_available(layout: Layout, proc_cgroups: &str, v2_controllers: Option<&str>) -> bool {
    match layout {
        Layout::V1 => v1_bound(proc_cgroups, "rdma"),
        Layout::V2 => v2_controllers.is_some_and(|c| c.split_whitespace().any(|c| c == "rdma")),
    }
}

/// The rdma controller of this host (see [`rdma_available`]).
pub fn detect_rdma(layout: Layout) -> bool {
    let proc_cgroups = std::fs::read_to_string("/proc/cgroups").unwrap_or_default();
    let v2 = match layout {
        Layout::V2 => std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").ok(),
        Layout::V1 => None,
    };
    rdma_available(layout, &proc_cgroups, v2.as_deref())
}

/// The unified (cgroup2) one among `hierarchies` (or among the bases built on
/// them), if any.
pub fn unified_of(hierarchies: &[PathBuf]) -> Option<&PathBuf> {
    hierarchies.iter().find(|h| {
        nix::sys::statfs::statfs(h.as_path())
            .is_ok_and(|st| st.filesystem_type().0 == CGROUP2_SUPER_MAGIC)
    })
}

/// The hugetlb controller of this host (see [`hugetlb_place`]).
pub fn detect_hugetlb(layout: Layout) -> Hugetlb {
    let proc_cgroups = std::fs::read_to_string("/proc/cgroups").unwrap_or_default();
    let unified = unified_of(&hierarchies())
        .and_then(|u| std::fs::read_to_string(u.join("cgroup.controllers")).ok());
    hugetlb_place(layout, &proc_cgroups, unified.as_deref())
}

/// Enable `controller` for the cgroup `rel` below `base` in a cgroup2 hierarchy:
/// `+controller` in `cgroup.subtree_control` of `base` and of each ancestor of
/// `rel` that lacks it (as runc does on v2; it is never disabled again: other
/// cgroups below may use it, and dirs the container created go with it).
pub fn enable_v2_controller(base: &Path, rel: &Path, controller: &str) -> std::io::Result<()> {
    let mut dir = base.to_path_buf();
    let mut parents = vec![dir.clone()];
    let comps: Vec<_> = rel.components().collect();
    for c in &comps[..comps.len().saturating_sub(1)] {
        dir.push(c);
        parents.push(dir.clone());
    }
    for p in parents {
        let f = p.join("cgroup.subtree_control");
        let cur = std::fs::read_to_string(&f)
            .map_err(|e| std::io::Error::new(e.kind(), format!("read {}: {e}", f.display())))?;
        if cur.split_whitespace().any(|c| c == controller) {
            continue;
        }
        std::fs::write(&f, format!("+{controller}")).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("enable {controller} in {}: {e}", f.display()),
            )
        })?;
    }
    Ok(())
}

/// The mount points of every cgroup hierarchy of this host (v1 controllers, named
/// hierarchies and the unified one).
pub fn hierarchies() -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    parse_hierarchies(&info)
}

fn parse_hierarchies(mountinfo: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let fstype = post.split_whitespace().next().unwrap_or("");
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        if let Some(mp) = pre.split_whitespace().nth(4) {
            let p = PathBuf::from(mp);
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// Who manages the containers' cgroups: the runtime through cgroupfs (liblxc
/// creates and fills the dirs), or systemd (runc's `--systemd-cgroup`: the
/// container's cgroup is a transient unit; liblxc still creates and fills it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Driver {
    #[default]
    Cgroupfs,
    Systemd,
}

/// The container's cgroup (relative to the hierarchy roots, or to the
/// runtime's own cgroups when [`is_relative`] with the cgroupfs driver) and,
/// with the systemd driver, its unit.
pub fn placement(
    driver: Driver,
    cgroups_path: Option<&Path>,
    id: &str,
) -> Result<(PathBuf, Option<crate::systemd::Unit>), SpecError> {
    match driver {
        Driver::Cgroupfs => Ok((container_path(cgroups_path, id)?, None)),
        Driver::Systemd => {
            let unit = crate::systemd::parse_cgroups_path(cgroups_path, id)?;
            Ok((unit.path.clone(), Some(unit)))
        }
    }
}

/// Validate `linux.cgroupsPath` and return it without a leading slash: relative
/// to the hierarchy roots when it is absolute, to the runtime's own cgroups (see
/// [`is_relative`], [`own_bases`]) when it is relative. An empty path gives
/// `lxcri/<id>` (under the hierarchy roots).
pub fn container_path(cgroups_path: Option<&Path>, id: &str) -> Result<PathBuf, SpecError> {
    const FIELD: &str = "linux.cgroupsPath";
    let Some(p) = cgroups_path.filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(Path::new("lxcri").join(id));
    };
    let s = p.to_string_lossy();
    crate::lxcconf::check_value(FIELD, &s)?;
    if s.contains(':') {
        // The systemd driver's slice:prefix:name form. It needs systemd (the
        // manager of the cgroup tree) as PID 1: sd_booted() checks /run/systemd/system.
        let reason = if crate::systemd::booted() {
            format!(
                "{s:?} is a systemd cgroup path: select the systemd cgroup driver \
                 (lxcri --systemd-cgroup, or the shim option SystemdCgroup = true)"
            )
        } else {
            format!(
                "{s:?} is a systemd cgroup path, but systemd is not PID 1 on this host \
                 (no /run/systemd/system): use a cgroupfs path"
            )
        };
        return Err(SpecError::new(FIELD, reason));
    }
    let mut rel = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => rel.push(n),
            _ => {
                return Err(SpecError::new(
                    FIELD,
                    format!("{s:?} must not contain '.' or '..'"),
                ))
            }
        }
    }
    if rel.as_os_str().is_empty() {
        return Err(SpecError::new(
            FIELD,
            "the root cgroup cannot hold a container",
        ));
    }
    Ok(rel)
}

/// Whether `linux.cgroupsPath` is relative: runc (cgroupfs driver) then places
/// the container relative to its own cgroup in each v1 hierarchy, and below the
/// parent of its own cgroup on a pure cgroup v2 host.
pub fn is_relative(cgroups_path: Option<&Path>) -> bool {
    cgroups_path.is_some_and(|p| !p.as_os_str().is_empty() && !p.is_absolute())
}

/// The caller's own cgroup in each hierarchy of `mountinfo` (as absolute dirs,
/// in mount order), from `/proc/self/cgroup` text: the bases a relative
/// `linux.cgroupsPath` is joined to on a v1 or hybrid host. liblxc computes the
/// same bases for `lxc.cgroup.relative = 1` from the start helper's
/// /proc/self/cgroup (the helper inherits the runtime's cgroups): the cgroup's
/// path joined to the hierarchy's mount point.
pub fn own_bases(mountinfo: &str, proc_cgroup: &str) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split_whitespace();
        let fstype = post.next().unwrap_or("");
        let super_opts: Vec<&str> = post.nth(1).unwrap_or("").split(',').collect();
        let Some(mp) = pre.split_whitespace().nth(4) else {
            continue;
        };
        let own = match fstype {
            "cgroup2" => proc_cgroup
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .map(str::to_string),
            "cgroup" => proc_cgroup.lines().find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
                let ctrls: Vec<&str> = ctrls.split(',').collect();
                let same = !ctrls.is_empty()
                    && !ctrls[0].is_empty()
                    && ctrls.iter().all(|c| super_opts.contains(c));
                same.then(|| path.to_string())
            }),
            _ => continue,
        };
        let own = own.ok_or_else(|| {
            format!("no line of /proc/self/cgroup for the cgroup hierarchy at {mp}")
        })?;
        let base = Path::new(mp).join(own.trim_start_matches('/'));
        if !out.contains(&base) {
            out.push(base);
        }
    }
    Ok(out)
}

/// The absolute cgroup (without the leading slash) of a relative `cgroupsPath`
/// on a pure cgroup v2 host, as runc makes it: below the parent of the caller's
/// own cgroup (which holds processes, so it cannot delegate controllers).
pub fn v2_relative_path(proc_cgroup: &str, rel: &Path) -> Result<PathBuf, String> {
    let own = proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("no cgroup v2 line in /proc/self/cgroup")?;
    let parent = Path::new(own).parent().unwrap_or(Path::new("/"));
    Ok(parent
        .join(rel)
        .strip_prefix("/")
        .map_err(|e| e.to_string())?
        .to_path_buf())
}

/// The cgroup of the LXC monitor (our start helper): beside, not inside, the
/// container's.
pub fn monitor_path(container: &Path) -> PathBuf {
    Path::new("lxcri.monitor").join(container)
}

/// Where liblxc parks the monitor of this container at exit.
pub fn pivot_path(monitor: &Path) -> PathBuf {
    let mut p = monitor.as_os_str().to_owned();
    p.push(".pivot");
    PathBuf::from(p)
}

/// The `cgroup.procs` files of cgroup `rel` in every hierarchy that has it (a
/// process written there joins the cgroup).
pub fn procs_files(hierarchies: &[PathBuf], rel: &Path) -> Vec<String> {
    hierarchies
        .iter()
        .map(|h| h.join(rel).join("cgroup.procs"))
        .filter(|p| p.exists())
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// The directories (absolute, in every hierarchy) that creating `rel` will make:
/// `rel` itself and each of its missing ancestors, deepest first.
pub fn missing_dirs(hierarchies: &[PathBuf], rel: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for h in hierarchies {
        let mut p = h.join(rel);
        while p != *h && !p.exists() {
            out.push(p.clone());
            p.pop();
        }
    }
    out
}

/// Remove the given cgroup dirs (deepest first); dirs that are gone are fine, and a
/// dir still in use (EBUSY, ENOTEMPTY) is left for whoever uses it.
pub fn remove_dirs(dirs: &[PathBuf]) -> Vec<(PathBuf, std::io::Error)> {
    let mut sorted: Vec<&PathBuf> = dirs.iter().collect();
    sorted.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    let mut errors = Vec::new();
    for d in sorted {
        match std::fs::remove_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => errors.push((d.clone(), e)),
        }
    }
    errors
}

/// After a container is gone: remove the now-empty parents of `rel` inside
/// lxcri's own default trees (`lxcri/`, `lxcri.monitor/`) in every hierarchy. A
/// container removes the dirs it created; a parent that another container
/// created (and that was deleted first, while this one still used it) would
/// otherwise stay forever. Other trees (a caller's `/default`, a pod's slice)
/// are not ours to remove.
pub fn prune_owned_parents(hierarchies: &[PathBuf], rel: &Path) {
    let owned = rel
        .components()
        .next()
        .is_some_and(|c| c.as_os_str() == "lxcri" || c.as_os_str() == "lxcri.monitor");
    if !owned {
        return;
    }
    for h in hierarchies {
        let mut p = h.join(rel);
        while p.pop() && p != *h {
            if std::fs::remove_dir(&p).is_err() {
                break;
            }
        }
    }
}

/// The path of a cgroup file of `rel`, in the first hierarchy that has it.
pub fn file(hierarchies: &[PathBuf], rel: &Path, name: &str) -> Option<PathBuf> {
    hierarchies
        .iter()
        .map(|h| h.join(rel).join(name))
        .find(|p| p.exists())
}

/// Write a limit file of the container's cgroup.
pub fn write_file(
    hierarchies: &[PathBuf],
    rel: &Path,
    name: &str,
    value: &str,
) -> std::io::Result<()> {
    let p = file(hierarchies, rel, name).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no cgroup file {name} for {}", rel.display()),
        )
    })?;
    std::fs::write(&p, value).map_err(|e| {
        std::io::Error::new(e.kind(), format!("write {value:?} to {}: {e}", p.display()))
    })
}

/// Freeze (true) or thaw the cgroup: the v1 freezer where there is one, else
/// cgroup v2's `cgroup.freeze`. Waits until the state is reached (at most 10 s).
pub fn freeze(hierarchies: &[PathBuf], rel: &Path, frozen: bool) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let timeout = || std::io::Error::new(std::io::ErrorKind::TimedOut, "freezer did not settle");
    if let Some(state) = file(hierarchies, rel, "freezer.state") {
        let want = if frozen { "FROZEN" } else { "THAWED" };
        loop {
            std::fs::write(&state, want)?;
            if std::fs::read_to_string(&state)?.trim() == want {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(timeout());
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    let freeze = file(hierarchies, rel, "cgroup.freeze").ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no freezer for the container's cgroup",
        )
    })?;
    std::fs::write(&freeze, if frozen { "1" } else { "0" })?;
    let events = freeze.with_file_name("cgroup.events");
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    loop {
        if std::fs::read_to_string(&events)?.lines().any(|l| l == want) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(timeout());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Pids in `cgroup.procs` of `rel` in any hierarchy.
pub fn procs(hierarchies: &[PathBuf], rel: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    for h in hierarchies {
        if let Ok(s) = std::fs::read_to_string(h.join(rel).join("cgroup.procs")) {
            for p in s.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                if !pids.contains(&p) {
                    pids.push(p);
                }
            }
        }
    }
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_removes_only_empty_owned_parents() {
        let d = tempfile::tempdir().unwrap();
        let h = vec![d.path().to_path_buf()];
        let busy = d.path().join("lxcri.monitor/default/b");
        std::fs::create_dir_all(&busy).unwrap();
        std::fs::create_dir_all(d.path().join("default")).unwrap();
        // a's own dir is gone; b still uses the parents.
        prune_owned_parents(&h, Path::new("lxcri.monitor/default/a"));
        assert!(busy.exists());
        std::fs::remove_dir(&busy).unwrap();
        prune_owned_parents(&h, Path::new("lxcri.monitor/default/b"));
        assert!(!d.path().join("lxcri.monitor").exists());
        // Not ours: stays.
        prune_owned_parents(&h, Path::new("default/x"));
        assert!(d.path().join("default").exists());
    }

    #[test]
    fn parses_hybrid_mountinfo() {
        let mi = "\
35 25 0:30 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
36 35 0:31 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
37 35 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
38 35 0:33 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
";
        assert_eq!(
            parse_hierarchies(mi),
            vec![
                PathBuf::from("/sys/fs/cgroup/unified"),
                PathBuf::from("/sys/fs/cgroup/memory"),
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"),
            ]
        );
    }

    #[test]
    fn container_paths() {
        assert_eq!(
            container_path(Some(Path::new("/default/t1")), "t1").unwrap(),
            PathBuf::from("default/t1")
        );
        assert_eq!(container_path(None, "x").unwrap(), PathBuf::from("lxcri/x"));
        assert!(container_path(Some(Path::new("/a/../b")), "x").is_err());
        assert!(container_path(Some(Path::new("/")), "x").is_err());
        assert!(container_path(Some(Path::new("/a\nb")), "x").is_err());
        assert_eq!(
            container_path(Some(Path::new("pod1/c1")), "c1").unwrap(),
            PathBuf::from("pod1/c1")
        );
        assert!(container_path(Some(Path::new("../c1")), "c1").is_err());
        assert!(is_relative(Some(Path::new("pod1/c1"))));
        assert!(!is_relative(Some(Path::new("/pod1/c1"))));
        assert!(!is_relative(Some(Path::new(""))) && !is_relative(None));
        let e = container_path(Some(Path::new("system.slice:cri:x")), "x").unwrap_err();
        assert_eq!(e.field, "linux.cgroupsPath");
        assert_eq!(
            monitor_path(Path::new("default/t1")),
            PathBuf::from("lxcri.monitor/default/t1")
        );
    }

    /// A relative cgroupsPath on this kind of host: the bases are the runtime's
    /// own cgroup in each hierarchy (here memory is below a manager's cgroup),
    /// matched by controller list (cpu and cpuacct mounted apart or together).
    #[test]
    fn own_bases_on_hybrid_v1_and_v2_hosts() {
        let hybrid = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let own = "\
9:name=systemd:/
4:memory:/process_api/abc
3:cpuset:/
1:cpu,cpuacct:/shim
0::/
";
        assert_eq!(
            own_bases(hybrid, own).unwrap(),
            vec![
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/shim"),
                PathBuf::from("/sys/fs/cgroup/cpuset"),
                PathBuf::from("/sys/fs/cgroup/memory/process_api/abc"),
                PathBuf::from("/sys/fs/cgroup/systemd"),
                PathBuf::from("/sys/fs/cgroup/unified"),
            ]
        );
        // Pure v1 (no cgroup2 mount), cpu and cpuacct apart.
        let v1 = "\
32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct
";
        assert_eq!(
            own_bases(v1, "2:cpuacct:/a\n1:cpu:/b\n").unwrap(),
            vec![
                PathBuf::from("/sys/fs/cgroup/cpu/b"),
                PathBuf::from("/sys/fs/cgroup/cpuacct/a")
            ]
        );
        // A hierarchy the process is not listed in is an error.
        assert!(own_bases(v1, "1:cpu:/b\n").is_err());
        // Pure v2: below the parent of the own cgroup, as runc.
        let v2_own = "0::/system.slice/containerd.service\n";
        assert_eq!(
            v2_relative_path(v2_own, Path::new("pod1/c1")).unwrap(),
            PathBuf::from("system.slice/pod1/c1")
        );
        assert_eq!(
            v2_relative_path("0::/\n", Path::new("c1")).unwrap(),
            PathBuf::from("c1")
        );
        assert!(v2_relative_path("1:cpu:/\n", Path::new("c1")).is_err());
    }

    /// hugetlb on the three kinds of host: a v1 hierarchy (liblxc), only in the
    /// unified hierarchy of a hybrid host (the runtime), pure v2 (liblxc).
    #[test]
    fn hugetlb_places() {
        let v1 =
            "#subsys_name\thierarchy\tnum_cgroups\tenabled\nmemory\t4\t190\t1\nhugetlb\t9\t3\t1\n";
        let hybrid =
            "#subsys_name\thierarchy\tnum_cgroups\tenabled\nmemory\t4\t190\t1\nhugetlb\t0\t3\t1\n";
        assert_eq!(hugetlb_place(Layout::V1, v1, Some("")), Hugetlb::Managed);
        assert_eq!(hugetlb_place(Layout::V1, v1, None), Hugetlb::Managed);
        assert_eq!(
            hugetlb_place(Layout::V1, hybrid, Some("hugetlb\n")),
            Hugetlb::HybridUnified
        );
        assert_eq!(hugetlb_place(Layout::V1, hybrid, Some("")), Hugetlb::Absent);
        assert_eq!(hugetlb_place(Layout::V1, hybrid, None), Hugetlb::Absent);
        assert_eq!(
            hugetlb_place(Layout::V2, hybrid, Some("cpu memory hugetlb pids\n")),
            Hugetlb::Managed
        );
        assert_eq!(
            hugetlb_place(Layout::V2, hybrid, Some("cpu memory\n")),
            Hugetlb::Absent
        );
    }

    /// rdma: bound to a v1 hierarchy (a v1 or hybrid host; in the unified
    /// hierarchy of a hybrid host liblxc does not set it), or available at the
    /// root of a pure v2 host.
    #[test]
    fn rdma_places() {
        let v1 = "#subsys_name\thierarchy\tnum_cgroups\tenabled\nrdma\t11\t1\t1\n";
        let hybrid = "#subsys_name\thierarchy\tnum_cgroups\tenabled\nrdma\t0\t19\t1\n";
        let none = "#subsys_name\thierarchy\tnum_cgroups\tenabled\nmemory\t4\t190\t1\n";
        assert!(rdma_available(Layout::V1, v1, None));
        assert!(!rdma_available(Layout::V1, hybrid, None));
        assert!(!rdma_available(Layout::V1, none, None));
        assert!(rdma_available(
            Layout::V2,
            hybrid,
            Some("cpuset cpu io memory hugetlb pids rdma misc\n")
        ));
        assert!(!rdma_available(
            Layout::V2,
            hybrid,
            Some("cpu memory pids\n")
        ));
        assert!(!rdma_available(Layout::V2, hybrid, None));
    }

    #[test]
    fn enables_a_controller_along_the_path() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path();
        std::fs::create_dir_all(base.join("a/b/c")).unwrap();
        std::fs::write(base.join("cgroup.subtree_control"), "cpu hugetlb").unwrap();
        std::fs::write(base.join("a/cgroup.subtree_control"), "").unwrap();
        std::fs::write(base.join("a/b/cgroup.subtree_control"), "").unwrap();
        enable_v2_controller(base, Path::new("a/b/c"), "hugetlb").unwrap();
        // Already there: untouched; missing: "+hugetlb" written (a plain file here).
        let read = |p: &str| std::fs::read_to_string(base.join(p)).unwrap();
        assert_eq!(read("cgroup.subtree_control"), "cpu hugetlb");
        assert_eq!(read("a/cgroup.subtree_control"), "+hugetlb");
        assert_eq!(read("a/b/cgroup.subtree_control"), "+hugetlb");
        assert!(!base.join("a/b/c/cgroup.subtree_control").exists());
    }

    #[test]
    fn missing_dirs_deepest_first() {
        let root = tempfile::tempdir().unwrap();
        let h = root.path().join("memory");
        std::fs::create_dir_all(h.join("default")).unwrap();
        let dirs = missing_dirs(std::slice::from_ref(&h), Path::new("a/b/c"));
        assert_eq!(dirs, vec![h.join("a/b/c"), h.join("a/b"), h.join("a")]);
        let dirs = missing_dirs(std::slice::from_ref(&h), Path::new("default/t1"));
        assert_eq!(dirs, vec![h.join("default/t1")]);
        std::fs::create_dir_all(h.join("a/b/c")).unwrap();
        assert!(remove_dirs(&missing_dirs(std::slice::from_ref(&h), Path::new("zz"))).is_empty());
        assert!(remove_dirs(&[h.join("a/b/c"), h.join("a"), h.join("a/b")]).is_empty());
        assert!(!h.join("a").exists());
    }
}
