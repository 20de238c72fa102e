//! Small readers for /proc and /sys/fs/cgroup.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// One process as seen in /proc.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Process {
    pub pid: i32,
    pub cmdline: String,
    pub cgroups: String,
}

impl std::fmt::Display for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} `{}`", self.pid, self.cmdline)
    }
}

/// All processes on the host (those that vanish while reading are skipped).
pub fn processes() -> Vec<Process> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(process)
        .collect()
}

/// Reads one process; None if it is gone.
pub fn process(pid: i32) -> Option<Process> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&raw)
        .trim_end_matches('\0')
        .replace('\0', " ");
    let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    Some(Process {
        pid,
        cmdline,
        cgroups,
    })
}

/// The parent pid of a process (field 4 of /proc/<pid>/stat); None if gone.
pub fn ppid(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The ancestors of `pid`, parent first, up to (excluding) pid 1 / 0.
pub fn ancestors(pid: i32) -> Vec<Process> {
    let mut out = Vec::new();
    let mut current = pid;
    while let Some(parent) = ppid(current).filter(|p| *p > 1) {
        let Some(p) = process(parent) else { break };
        out.push(p);
        current = parent;
    }
    out
}

/// The mount points (with fs type and source) listed in a mountinfo file.
pub fn mounts(mountinfo: &Path) -> std::io::Result<BTreeSet<String>> {
    let text = fs::read_to_string(mountinfo)?;
    Ok(text.lines().filter_map(mount_key).collect())
}

/// "mountpoint fstype source" from one mountinfo line (ids dropped so that
/// a remount of the same thing compares equal).
fn mount_key(line: &str) -> Option<String> {
    let fields: Vec<&str> = line.split(' ').collect();
    let mount_point = fields.get(4)?;
    let sep = fields.iter().position(|f| *f == "-")?;
    let fstype = fields.get(sep + 1)?;
    let source = fields.get(sep + 2)?;
    Some(format!("{mount_point} {fstype} {source}"))
}

/// The roots of every cgroup hierarchy: each v1 controller dir under
/// /sys/fs/cgroup (including name=systemd) and the unified v2 one.
/// On a pure v2 host this is /sys/fs/cgroup itself.
pub fn cgroup_roots() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        return vec![base.to_path_buf()];
    }
    let Ok(entries) = fs::read_dir(base) else {
        return Vec::new();
    };
    let mut roots: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !p.is_symlink())
        .collect();
    roots.sort();
    roots
}

/// Every cgroup directory in every hierarchy.
pub fn cgroup_dirs() -> BTreeSet<PathBuf> {
    let mut dirs = BTreeSet::new();
    for root in cgroup_roots() {
        walk_dirs(&root, &mut dirs);
    }
    dirs
}

fn walk_dirs(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            let path = entry.path();
            walk_dirs(&path, out);
            out.insert(path);
        }
    }
}

/// The pid namespace of a process, e.g. "pid:[4026531836]".
pub fn pid_namespace(pid: i32) -> std::io::Result<String> {
    Ok(fs::read_link(format!("/proc/{pid}/ns/pid"))?
        .to_string_lossy()
        .into_owned())
}

/// Every file and directory below `dir` (relative paths), empty if it is gone.
pub fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    tree_into(dir, dir, &mut out);
    out.sort();
    out
}

fn tree_into(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        out.push(path.strip_prefix(base).unwrap_or(&path).to_path_buf());
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            tree_into(base, &path, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_key_drops_ids() {
        let line = "36 27 0:31 / /run/containerd rw,relatime shared:5 - tmpfs tmpfs rw";
        assert_eq!(
            mount_key(line).as_deref(),
            Some("/run/containerd tmpfs tmpfs")
        );
    }

    #[test]
    fn own_parent_is_first_ancestor() {
        let me = std::process::id() as i32;
        let parent = std::os::unix::process::parent_id() as i32;
        assert_eq!(ppid(me), Some(parent));
        assert_eq!(ancestors(me).first().map(|p| p.pid), Some(parent));
    }

    #[test]
    fn own_process_is_listed() {
        let me = std::process::id() as i32;
        assert!(processes().iter().any(|p| p.pid == me));
    }
}
