//! OOM notifications on a cgroup v1 host: an eventfd registered for the memory
//! cgroup's `memory.oom_control` through `cgroup.event_control`.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::eventfd::{EfdFlags, EventFd};
use tokio::io::unix::AsyncFd;

/// Notifications closer together than this are one OOM.
const BURST: Duration = Duration::from_secs(1);

/// Watch the memory cgroup at `dir`: `on_oom` is called once per burst of OOM
/// notifications. The watch ends when the cgroup is removed.
///
/// The eventfd fires on an OOM in the cgroup, and once more when the cgroup is
/// removed (liblxc removes it as soon as the container stops), after the
/// directory is gone. So a wake-up while the directory exists is an OOM; once it
/// is gone, a count of two or more means an OOM came before the removal, and a
/// count of one is either the removal or an OOM whose removal signal is still to
/// come: a second signal within a second tells.
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
    tokio::spawn(async move {
        let _control = control;
        // One OOM can signal hundreds of times while its victim dies: report it
        // once per burst.
        let mut last: Option<Instant> = None;
        loop {
            let Some(count) = next(&afd).await else {
                return;
            };
            if dir.exists() {
                report(&mut last, &on_oom);
                continue;
            }
            let more = tokio::time::timeout(Duration::from_secs(1), next(&afd)).await;
            if count >= 2 || matches!(more, Ok(Some(_))) {
                report(&mut last, &on_oom);
            }
            return;
        }
    });
    Ok(())
}

/// Call `on_oom` unless the previous notification was part of the same burst.
fn report(last: &mut Option<Instant>, on_oom: &impl Fn()) {
    if last.is_none_or(|t| t.elapsed() >= BURST) {
        on_oom();
    }
    *last = Some(Instant::now());
}

/// Wait for the eventfd and read (reset) its count.
async fn next(afd: &AsyncFd<EventFd>) -> Option<u64> {
    loop {
        let mut guard = afd.readable().await.ok()?;
        match guard.get_inner().read() {
            Ok(n) => return Some(n),
            Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
            Err(_) => return None,
        }
    }
}
