//! OOM notifications on a cgroup v1 host: an eventfd registered for the memory
//! cgroup's `memory.oom_control` through `cgroup.event_control`.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use nix::sys::eventfd::{EfdFlags, EventFd};
use tokio::io::unix::AsyncFd;

/// The oom_kill counter of memory.oom_control.
fn oom_kills(dir: &Path) -> Option<u64> {
    std::fs::read_to_string(dir.join("memory.oom_control"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

/// The host's OOM kill count (/proc/vmstat).
fn host_oom_kills() -> u64 {
    std::fs::read_to_string("/proc/vmstat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Watch the memory cgroup at `dir`: `on_oom` is called for every OOM kill in it
/// (at most once per wake-up). The watch ends when the cgroup is removed (the
/// eventfd fires then too).
pub fn watch_v1(dir: PathBuf, on_oom: impl Fn() + Send + 'static) -> std::io::Result<()> {
    let efd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
    let control = File::open(dir.join("memory.oom_control"))?;
    std::fs::write(
        dir.join("cgroup.event_control"),
        format!("{} {}", efd.as_fd().as_raw_fd(), control.as_raw_fd()),
    )?;
    // SAFETY: the EventFd owns its fd and keeps it open, unchanged, for as long as
    // the AsyncFd (which owns the EventFd) lives.
    let afd =
        unsafe { AsyncFd::register(efd) }.map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut seen = oom_kills(&dir).unwrap_or(0);
    let mut host_seen = host_oom_kills();
    tokio::spawn(async move {
        let _control = control;
        loop {
            // The host count is refreshed while nothing happens, so that an OOM
            // elsewhere long before this container's end cannot count as its own.
            let ready = tokio::select! {
                r = afd.readable() => r,
                _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {
                    host_seen = host_oom_kills();
                    continue;
                }
            };
            let Ok(mut guard) = ready else {
                return;
            };
            let count = guard.get_inner().read().unwrap_or(0);
            guard.clear_ready();
            let host = host_oom_kills();
            if !dir.exists() {
                // The cgroup's removal (liblxc removes it when the container stops)
                // signals the eventfd once; anything more was an OOM just before.
                // The removal may also race with the OOM's own signal: then the
                // host's OOM kill count tells.
                if count >= 2 || host > host_seen {
                    on_oom();
                }
                return;
            }
            host_seen = host;
            let kills = oom_kills(&dir).unwrap_or(seen);
            if kills > seen {
                seen = kills;
                on_oom();
            }
        }
    });
    Ok(())
}
