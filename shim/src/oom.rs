//! OOM notifications: on a cgroup v1 host an eventfd registered for the memory
//! cgroup's `memory.oom_control` through `cgroup.event_control`; on cgroup v2 an
//! inotify watch on `memory.events`, whose `oom_kill` count the kernel raises.

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

/// An Inotify with the raw fd tokio wants.
struct InotifyFd(nix::sys::inotify::Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// The `oom_kill` count of a cgroup v2 `memory.events` text.
pub fn oom_kills(events: &str) -> u64 {
    events
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Watch the cgroup v2 dir `dir`: `on_oom` is called once per burst of
/// `oom_kill` increments. The watch ends when the cgroup is removed.
pub fn watch_v2(dir: PathBuf, on_oom: impl Fn() + Send + 'static) -> std::io::Result<()> {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let events = dir.join("memory.events");
    let ino = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
    ino.add_watch(
        &events,
        AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_DELETE_SELF,
    )?;
    let mut seen = oom_kills(&std::fs::read_to_string(&events)?);
    // SAFETY: the Inotify owns its fd and keeps it open, unchanged, for as long as
    // the AsyncFd (which owns the Inotify) lives.
    let afd = unsafe { AsyncFd::register(InotifyFd(ino)) }
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    tokio::spawn(async move {
        let mut last: Option<Instant> = None;
        loop {
            let Ok(mut guard) = afd.readable().await else {
                return;
            };
            let evs = match guard.get_inner().0.read_events() {
                Ok(evs) => evs,
                Err(nix::errno::Errno::EAGAIN) => {
                    guard.clear_ready();
                    continue;
                }
                Err(_) => return,
            };
            let Ok(text) = std::fs::read_to_string(&events) else {
                return; // the cgroup is gone
            };
            let now = oom_kills(&text);
            if now > seen {
                seen = now;
                report(&mut last, &on_oom);
            }
            if evs.iter().any(|e| {
                e.mask
                    .intersects(AddWatchFlags::IN_IGNORED | AddWatchFlags::IN_DELETE_SELF)
            }) {
                return;
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn oom_kill_count() {
        assert_eq!(oom_kills("low 0\nhigh 0\nmax 2\noom 1\noom_kill 3\n"), 3);
        assert_eq!(oom_kills("low 0\n"), 0);
    }

    #[tokio::test]
    async fn v2_watch_reports_new_oom_kills() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("memory.events");
        std::fs::write(&f, "oom 0\noom_kill 0\n").unwrap();
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = n.clone();
        watch_v2(d.path().to_path_buf(), move || {
            n2.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        // Not an OOM: another counter moves.
        std::fs::write(&f, "oom 0\noom_kill 0\nhigh 1\n").unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(n.load(Ordering::SeqCst), 0);
        std::fs::write(&f, "oom 1\noom_kill 1\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while n.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }
}
