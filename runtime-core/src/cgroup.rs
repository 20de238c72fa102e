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

/// Validate `linux.cgroupsPath` and return it relative to the hierarchy roots
/// (no leading slash). An empty path gives `lxcri/<id>`.
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
        let reason = if Path::new("/run/systemd/system").is_dir() {
            format!("systemd cgroup paths ({s:?}) are not supported by lxcri yet")
        } else {
            format!(
                "{s:?} is a systemd cgroup path, but systemd is not PID 1 on this host \
                 (no /run/systemd/system): use a cgroupfs path"
            )
        };
        return Err(SpecError::new(FIELD, reason));
    }
    if !p.is_absolute() {
        // runc takes a relative path relative to the runtime's own cgroup in each
        // hierarchy, which lxcri's single recorded path cannot express yet.
        return Err(SpecError::new(
            FIELD,
            format!("relative cgroup paths ({s:?}) are not supported yet: give an absolute path"),
        ));
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
        let e = container_path(Some(Path::new("system.slice:cri:x")), "x").unwrap_err();
        assert_eq!(e.field, "linux.cgroupsPath");
        assert_eq!(
            monitor_path(Path::new("default/t1")),
            PathBuf::from("lxcri.monitor/default/t1")
        );
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
