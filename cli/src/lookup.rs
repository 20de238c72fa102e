//! runc resolves the process's program at create (so that a missing binary fails
//! `create`, whose stderr conmon shows and podman maps: "not found" / "no such
//! file or directory" → 127, "permission denied" → 126). lxcri's init only
//! execs at start, so the CLI checks at create, inside the container's root as
//! the waiting init sees it (its mounts included): `openat2(RESOLVE_IN_ROOT)` on
//! `/proc/<init>/root`, so absolute symlinks resolve in the container.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;

use anyhow::{anyhow, Result};
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};

/// Open `path` (absolute, in the container) under `root`.
fn open_in(root: &OwnedFd, path: &str) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT);
    openat2(root.as_fd(), path, how)
}

/// Whether the file behind `fd` is a regular file with an execute bit.
fn executable(fd: &OwnedFd) -> std::io::Result<bool> {
    let md = std::fs::File::from(fd.try_clone()?).metadata()?;
    Ok(md.is_file() && md.permissions().mode() & 0o111 != 0)
}

/// Check that `args[0]` of a process with `env` and `cwd` names an executable
/// in the root of process `pid`. The errors read like runc's (Go's exec).
pub fn check(pid: i32, args: &[String], env: &[String], cwd: &str) -> Result<()> {
    let Some(arg0) = args.first() else {
        return Err(anyhow!("args must not be empty"));
    };
    let root = nix::fcntl::open(
        format!("/proc/{pid}/root").as_str(),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| anyhow!("open the root of the container's init {pid}: {e}"))?;
    if arg0.contains('/') {
        let full = if arg0.starts_with('/') {
            arg0.clone()
        } else {
            format!("{}/{arg0}", cwd.trim_end_matches('/'))
        };
        let fd = open_in(&root, &full)
            .map_err(|e| anyhow!("exec: {arg0:?}: stat {arg0}: {}", e.desc().to_lowercase()))?;
        if !executable(&fd)? {
            return Err(anyhow!("exec: {arg0:?}: permission denied"));
        }
        return Ok(());
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("");
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let full = if dir.starts_with('/') {
            format!("{dir}/{arg0}")
        } else {
            format!("{}/{dir}/{arg0}", cwd.trim_end_matches('/'))
        };
        if let Ok(fd) = open_in(&root, &full) {
            if executable(&fd)? {
                return Ok(());
            }
        }
    }
    Err(anyhow!(
        "exec: {arg0:?}: executable file not found in $PATH"
    ))
}
