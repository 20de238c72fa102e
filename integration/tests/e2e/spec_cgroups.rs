//! Issue 4: `linux.cgroupsPath` forms beyond the absolute one.

use crate::matrix;
use crate::util::{default_spec, remove, run_spec, run_spec_detached, wait_status};
use anyhow::{ensure, Context, Result};
use lxcri_integration::{Harness, Runtime};
use serde_json::json;
use std::path::{Path, PathBuf};

matrix!(
    relative_cgroups_path,
    hugepage_limits_hybrid,
    net_cls_and_net_prio
);

/// `(hierarchy id:controllers, path)` of each line of a /proc/<pid>/cgroup text.
fn cgroup_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let (key, path) = l.rsplit_once(':')?;
            Some((key.to_string(), path.to_string()))
        })
        .collect()
}

/// The mount point of the hierarchy of a /proc/self/cgroup key ("4:memory", "0:").
fn mount_point(key: &str) -> Result<PathBuf> {
    let ctrls = key.split_once(':').map(|(_, c)| c).unwrap_or("");
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    info.lines()
        .find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mut post = post.split_whitespace();
            let fstype = post.next()?;
            let opts: Vec<&str> = post.nth(1)?.split(',').collect();
            let hit = if ctrls.is_empty() {
                fstype == "cgroup2"
            } else {
                fstype == "cgroup" && ctrls.split(',').all(|c| opts.contains(&c))
            };
            let mp = pre.split_whitespace().nth(4)?;
            hit.then(|| PathBuf::from(mp))
        })
        .with_context(|| format!("no mount of the hierarchy {key}"))
}

/// A relative `cgroupsPath` is taken relative to the runtime's own cgroup in each
/// hierarchy (runc's rule; the shim, and so the runtime, is in the test's
/// cgroups): the container's /proc/self/cgroup shows `<own>/<path>` in every
/// hierarchy, and the dirs are gone afterwards (also checked by hand: the leak
/// check does not look below the test's own memory cgroup, a manager's).
fn relative_cgroups_path(h: &mut Harness) -> Result<()> {
    let id = h.id("relcg");
    let rel = format!("lxe2e-rel-{id}");
    let mut spec = default_spec(h, &id, &["/bin/cat", "/proc/self/cgroup"])?;
    spec["linux"]["cgroupsPath"] = json!(rel);
    let out = run_spec(h, &id, &spec)?.ok()?;
    let own = cgroup_lines(&std::fs::read_to_string("/proc/self/cgroup")?);
    let inside = cgroup_lines(&out.stdout);
    let mut dirs = Vec::new();
    for (key, path) in &own {
        // A hierarchy mounted nowhere here holds no container.
        let Ok(mount) = mount_point(key) else {
            continue;
        };
        let want = Path::new(path).join(&rel);
        let got = inside.iter().find(|(k, _)| k == key).map(|(_, p)| p);
        ensure!(
            got.map(Path::new) == Some(want.as_path()),
            "hierarchy {key}: want {}, got {got:?}\n{out}",
            want.display()
        );
        let base = mount.join(path.trim_start_matches('/'));
        dirs.push(base.join(&rel));
        if h.runtime == Runtime::Lxcri {
            // This container's monitor dir (lxcri.monitor itself is shared).
            dirs.push(base.join("lxcri.monitor").join(&rel));
        }
    }
    let left: Vec<&PathBuf> = dirs.iter().filter(|d| d.exists()).collect();
    ensure!(left.is_empty(), "cgroup dirs left: {left:?}");

    // The systemd form is refused on this host (no systemd as PID 1), naming why.
    if h.runtime == Runtime::Lxcri {
        let id = h.id("sdcg");
        let mut spec = default_spec(h, &id, &["/bin/true"])?;
        spec["linux"]["cgroupsPath"] = json!("system.slice:lxe2e:x");
        let out = run_spec(h, &id, &spec)?;
        ensure!(
            out.code != 0
                && out.stderr.contains("linux.cgroupsPath")
                && out.stderr.contains("systemd is not PID 1"),
            "{out}"
        );
        let _ = h.ctr(&["container", "rm", &id]);
    }
    Ok(())
}

/// `linux.resources.hugepageLimits` on this hybrid host, whose hugetlb
/// controller is only in the unified hierarchy (liblxc writes v1 keys only):
/// lxcri enables hugetlb down the path and writes `hugetlb.2MB.max` itself
/// before the container runs. runc 1.1.5 fails the create here ("cannot set
/// hugetlb limit": it looks for a v1 hugetlb hierarchy only), which the runc
/// run asserts; lxcri honours the limit instead. The container's unified
/// cgroup is gone afterwards (and the leak check).
fn hugepage_limits_hybrid(h: &mut Harness) -> Result<()> {
    let unified = Path::new("/sys/fs/cgroup/unified");
    let controllers = std::fs::read_to_string(unified.join("cgroup.controllers"))?;
    ensure!(
        controllers.split_whitespace().any(|c| c == "hugetlb"),
        "this scenario expects hugetlb in the unified hierarchy: {controllers:?}"
    );
    let id = h.id("hugetlb");
    let mut spec = default_spec(h, &id, &["/bin/sleep", "600"])?;
    spec["linux"]["resources"]["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 4194304}]);
    if h.runtime == Runtime::Runc {
        let out = run_spec(h, &id, &spec)?;
        ensure!(
            out.code != 0 && out.stderr.contains("cannot set hugetlb limit"),
            "runc 1.1.5 was expected to refuse: {out}"
        );
        let _ = h.ctr(&["container", "rm", &id]);
        return Ok(());
    }
    run_spec_detached(h, &id, &spec)?;
    let checked = wait_status(h, &id, "RUNNING").and_then(|_| {
        let f = unified.join(format!("default/{id}/hugetlb.2MB.max"));
        let v = std::fs::read_to_string(&f).with_context(|| f.display().to_string())?;
        ensure!(v.trim() == "4194304", "{}: {v:?}", f.display());
        Ok(())
    });
    let cleanup = remove(h, &id);
    checked.and(cleanup)?;
    let dir = unified.join(format!("default/{id}"));
    ensure!(!dir.exists(), "{} left", dir.display());
    Ok(())
}

/// A v1 `net_cls,net_prio` hierarchy mounted in the daemon's private mount
/// namespace (as a Debian hybrid host has it; this host mounts it nowhere), for
/// one scenario: unmounted and its mount point removed when dropped, after the
/// dirs left in it (the namespace parent) are removed, so that the hierarchy
/// disappears.
struct NetClsMount {
    ns: PathBuf,
    /// The mount point as seen from here, through /proc/<daemon>/root.
    seen: PathBuf,
}

const NET_CLS: &str = "/sys/fs/cgroup/net_cls,net_prio";

impl NetClsMount {
    fn mount(h: &Harness) -> Result<NetClsMount> {
        let proc_dir = h.ctd.mountinfo().with_file_name("");
        let ns = proc_dir.join("ns/mnt");
        let seen = proc_dir.join("root").join(NET_CLS.trim_start_matches('/'));
        ensure!(!Path::new(NET_CLS).exists(), "{NET_CLS} exists already");
        std::fs::create_dir(NET_CLS)?;
        let m = NetClsMount { ns, seen };
        let out = std::process::Command::new("nsenter")
            .arg(format!("--mount={}", m.ns.display()))
            .args([
                "mount",
                "-t",
                "cgroup",
                "-o",
                "net_cls,net_prio",
                "cgroup",
                NET_CLS,
            ])
            .output()?;
        ensure!(
            out.status.success(),
            "mount net_cls,net_prio: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(m)
    }
}

/// Whether net_cls is bound to a v1 hierarchy (/proc/cgroups).
fn net_cls_bound() -> Result<bool> {
    let text = std::fs::read_to_string("/proc/cgroups")?;
    Ok(text.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 2 && f[0] == "net_cls" && f[1] != "0"
    }))
}

impl NetClsMount {
    /// Unmount; the kernel frees a v1 hierarchy only when its last mount goes
    /// while it has no child cgroups, so if it is still bound afterwards, mount
    /// it once more in a private namespace, remove every dir left in it, and
    /// unmount that. Fails when the hierarchy cannot be made to disappear.
    fn unmount(&mut self) -> Result<()> {
        for d in ["lxcri.monitor/default", "lxcri.monitor", "default"] {
            let _ = std::fs::remove_dir(self.seen.join(d));
        }
        let _ = std::process::Command::new("nsenter")
            .arg(format!("--mount={}", self.ns.display()))
            .args(["umount", NET_CLS])
            .status();
        let _ = std::fs::remove_dir(NET_CLS);
        std::thread::sleep(std::time::Duration::from_millis(200));
        if net_cls_bound()? {
            let script = "d=$(mktemp -d) && mount -t cgroup -o net_cls,net_prio cgroup $d && \
                          find $d -mindepth 1 -depth -type d -exec rmdir {} \\; ; umount $d; rmdir $d";
            std::process::Command::new("unshare")
                .args(["-m", "--propagation", "private", "sh", "-c", script])
                .status()?;
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        ensure!(
            !net_cls_bound()?,
            "the net_cls,net_prio hierarchy stays (/proc/cgroups)"
        );
        Ok(())
    }
}

impl Drop for NetClsMount {
    fn drop(&mut self) {
        if Path::new(NET_CLS).exists() || net_cls_bound().unwrap_or(false) {
            let _ = self.unmount();
        }
    }
}

/// `linux.resources.network` (classID, priorities) with a net_cls,net_prio
/// hierarchy mounted for the scenario: the container's net_cls.classid and
/// net_prio.ifpriomap hold the values; nothing is left in the hierarchy.
fn net_cls_and_net_prio(h: &mut Harness) -> Result<()> {
    let mut mount = NetClsMount::mount(h)?;
    let id = h.id("netcls");
    let mut spec = default_spec(h, &id, &["/bin/sleep", "600"])?;
    spec["linux"]["resources"]["network"] =
        json!({"classID": 1048577, "priorities": [{"name": "lo", "priority": 5}]});
    run_spec_detached(h, &id, &spec)?;
    let cg = mount.seen.join(format!("default/{id}"));
    let checked = wait_status(h, &id, "RUNNING").and_then(|_| {
        let read = |f: &str| {
            std::fs::read_to_string(cg.join(f)).with_context(|| format!("{}/{f}", cg.display()))
        };
        let classid = read("net_cls.classid")?;
        ensure!(classid.trim() == "1048577", "net_cls.classid {classid:?}");
        let prio = read("net_prio.ifpriomap")?;
        ensure!(
            prio.lines().any(|l| l == "lo 5"),
            "net_prio.ifpriomap {prio:?}"
        );
        Ok(())
    });
    let cleanup = remove(h, &id);
    checked.and(cleanup)?;
    let mut left = Vec::new();
    for d in [
        cg.clone(),
        mount.seen.join(format!("lxcri.monitor/default/{id}")),
    ] {
        if d.exists() {
            left.push(d);
        }
    }
    ensure!(left.is_empty(), "left in net_cls,net_prio: {left:?}");
    mount.unmount()
}
