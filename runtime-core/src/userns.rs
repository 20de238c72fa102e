//! The id mappings of an existing user namespace (for `linux.namespaces[].path`
//! of type user: liblxc needs the joined namespace's maps as `lxc.idmap`).

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// One line of a uid_map/gid_map: container id, host id, size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IdMap {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

/// The uid and gid mappings of a user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mappings {
    pub uids: Vec<IdMap>,
    pub gids: Vec<IdMap>,
}

/// Parse the text of `/proc/<pid>/uid_map` (or gid_map).
pub fn parse_map(text: &str) -> io::Result<Vec<IdMap>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("bad id map {text:?}"));
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let n: Vec<u32> = line
            .split_whitespace()
            .map(|w| w.parse::<u32>().map_err(|_| bad()))
            .collect::<io::Result<_>>()?;
        let [container, host, size] = n[..] else {
            return Err(bad());
        };
        out.push(IdMap {
            container,
            host,
            size,
        });
    }
    Ok(out)
}

fn read_maps(proc_dir: &Path) -> io::Result<Mappings> {
    let read = |name: &str| {
        let p = proc_dir.join(name);
        fs::read_to_string(&p)
            .map_err(|e| io::Error::new(e.kind(), format!("read {}: {e}", p.display())))
            .and_then(|t| parse_map(&t))
    };
    Ok(Mappings {
        uids: read("uid_map")?,
        gids: read("gid_map")?,
    })
}

/// The mappings of the user namespace at `path` (an nsfs file such as
/// `/proc/<pid>/ns/user` or a bind mount of one), relative to the caller's user
/// namespace. A short-lived child joins the namespace and the maps are read from
/// its /proc entry (as runc does): a namespace file alone does not tell its maps.
pub fn mappings(path: &Path) -> io::Result<Mappings> {
    let target = fs::metadata(path)?;
    let own = fs::metadata("/proc/self/ns/user")?;
    if (target.dev(), target.ino()) == (own.dev(), own.ino()) {
        // setns() into one's own user namespace fails (EINVAL).
        return read_maps(Path::new("/proc/self"));
    }
    let ns = fs::File::open(path)?;
    let what = format!("cannot join the user namespace {}", path.display());
    with_child_in_user_namespace(Some(&ns), &what, |pid| {
        read_maps(Path::new(&format!("/proc/{pid}")))
    })
}

/// Run `f` with the pid of a short-lived child of ours that is in a user
/// namespace: the one of `join` (setns), or a new one it unshared (`None`).
/// The child waits until `f` returns, is then reaped; `what` is the error when
/// the child could not get there.
pub(crate) fn with_child_in_user_namespace<T>(
    join: Option<&fs::File>,
    what: &str,
    f: impl FnOnce(i32) -> io::Result<T>,
) -> io::Result<T> {
    // `hold`: the child waits until its write end is closed; `ready`: it writes
    // one byte once it is in the namespace (EOF: setns/unshare failed).
    let (hold_r, hold_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (ns_fd, hold_r_fd, hold_w_fd, ready_r_fd, ready_w_fd) = (
        join.map(|f| f.as_raw_fd()),
        hold_r.as_raw_fd(),
        hold_w.as_raw_fd(),
        ready_r.as_raw_fd(),
        ready_w.as_raw_fd(),
    );
    // SAFETY: the child (of a possibly multi-threaded process) only makes raw
    // system calls (close, setns or unshare, write, read, _exit), which are
    // async-signal-safe, on fds that stay open in the parent until the fork returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: see above; the child never returns from this block.
        unsafe {
            libc::close(hold_w_fd);
            libc::close(ready_r_fd);
            let entered = match ns_fd {
                Some(fd) => libc::setns(fd, libc::CLONE_NEWUSER),
                None => libc::unshare(libc::CLONE_NEWUSER),
            };
            if entered != 0 {
                libc::_exit(1);
            }
            let b = 1u8;
            libc::write(ready_w_fd, (&b as *const u8).cast(), 1);
            libc::close(ready_w_fd);
            let mut buf = 0u8;
            libc::read(hold_r_fd, (&mut buf as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    drop(hold_r);
    drop(ready_w);
    let mut buf = [0u8; 1];
    // SAFETY: `ready_r` is an open pipe end owned by this function.
    let ready = unsafe { libc::read(ready_r_fd, buf.as_mut_ptr().cast(), 1) } == 1;
    let result = if ready {
        f(pid)
    } else {
        Err(io::Error::other(what.to_string()))
    };
    drop(hold_w);
    drop(ready_r);
    // In the shim the reaper may collect the child first (ECHILD): fine.
    let mut status = 0;
    // SAFETY: waitpid on our own child with a valid status pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_maps() {
        assert_eq!(
            parse_map("         0     100000      65536\n      1000     200000          1\n")
                .unwrap(),
            vec![
                IdMap {
                    container: 0,
                    host: 100000,
                    size: 65536
                },
                IdMap {
                    container: 1000,
                    host: 200000,
                    size: 1
                }
            ]
        );
        assert!(parse_map("0 1\n").is_err());
        assert!(parse_map("").unwrap().is_empty());
    }

    #[test]
    fn own_and_joined_user_namespace() {
        let own = mappings(Path::new("/proc/self/ns/user")).unwrap();
        assert_eq!(
            own.uids,
            parse_map(&fs::read_to_string("/proc/self/uid_map").unwrap()).unwrap()
        );
        assert!(mappings(Path::new("/proc/self/ns/nope")).is_err());
        // Another user namespace: a holder whose maps the test writes.
        let mut holder = std::process::Command::new("unshare")
            .args(["--user", "sleep", "30"])
            .spawn()
            .unwrap();
        let ns = format!("/proc/{}/ns/user", holder.id());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while fs::read_link(&ns).ok() == fs::read_link("/proc/self/ns/user").ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "unshare did not unshare"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let dir = format!("/proc/{}", holder.id());
        fs::write(format!("{dir}/uid_map"), "0 100000 65536\n").unwrap();
        fs::write(format!("{dir}/gid_map"), "0 200000 1000\n1000 300000 1\n").unwrap();
        let got = mappings(Path::new(&ns));
        let _ = holder.kill();
        let _ = holder.wait();
        let got = got.unwrap();
        assert_eq!(
            got.uids,
            vec![IdMap {
                container: 0,
                host: 100000,
                size: 65536
            }]
        );
        assert_eq!(
            got.gids,
            vec![
                IdMap {
                    container: 0,
                    host: 200000,
                    size: 1000
                },
                IdMap {
                    container: 1000,
                    host: 300000,
                    size: 1
                }
            ]
        );
    }
}
