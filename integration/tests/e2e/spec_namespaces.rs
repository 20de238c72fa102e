//! Issue 4: joining existing namespaces by path (`linux.namespaces[].path`) for
//! the types liblxc's `lxc.namespace.share.*` did not cover in lxcri before:
//! mount, user and time. A holder process made with unshare(1) owns the
//! namespace; the container's /proc/self/ns/<type> must be the holder's.

use crate::spec_linux::chown_tree;
use crate::util::{default_spec, run_spec};
use crate::{matrix, matrix_lxcri_v2};
use anyhow::{bail, ensure, Context, Result};
use lxcri_integration::{Harness, Runtime};
use serde_json::{json, Value};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

matrix!(
    join_mount_namespace,
    join_user_namespace,
    devices_in_user_namespace
);
// runc 1.1.5 has no time namespaces; ctr 1.6 drops the type from a --config spec.
matrix_lxcri_v2!(join_time_namespace);

/// An unshare(1) process holding namespaces; killed when dropped.
struct Holder {
    child: Child,
    /// The pid inside the new namespaces (unshare's child with --fork).
    pid: u32,
}

impl Holder {
    /// `unshare <args> sleep 600`; waits until `/proc/<pid>/ns/<ns>` differs
    /// from the test's own (`fork`: the namespace is entered by unshare's child).
    fn spawn(args: &[&str], ns: &str, fork: bool) -> Result<Holder> {
        Self::spawn_in(None, args, ns, fork)
    }

    /// Like [`Holder::spawn`], unshare running in the mount namespace `mnt`.
    fn spawn_in(mnt: Option<&Path>, args: &[&str], ns: &str, fork: bool) -> Result<Holder> {
        let mut cmd = match mnt {
            Some(m) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--mount={}", m.display())).arg("unshare");
                c
            }
            None => Command::new("unshare"),
        };
        let child = cmd
            .args(args)
            .args(["sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .context("spawn unshare")?;
        let mut h = Holder {
            pid: child.id(),
            child,
        };
        // The namespaces the holder passes through: the test's, and nsenter's
        // target for the mount one.
        let mut old = vec![std::fs::read_link(format!("/proc/self/ns/{ns}"))?];
        if let Some(m) = mnt.filter(|_| ns == "mnt") {
            old.push(std::fs::read_link(m)?);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if fork {
                let children =
                    std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", h.child.id()))
                        .unwrap_or_default();
                if let Some(p) = children.split_whitespace().next() {
                    h.pid = p.parse()?;
                }
            }
            let cur = std::fs::read_link(format!("/proc/{}/ns/{ns}", h.pid)).ok();
            if cur.as_ref().is_some_and(|c| !old.contains(c)) {
                return Ok(h);
            }
            if Instant::now() > deadline {
                bail!("unshare {args:?} did not make a {ns} namespace");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn ns_path(&self, ns: &str) -> String {
        format!("/proc/{}/ns/{ns}", self.pid)
    }

    /// The namespace's identity, e.g. `mnt:[4026532123]`.
    fn ns_link(&self, ns: &str) -> Result<String> {
        Ok(std::fs::read_link(self.ns_path(ns))?
            .to_string_lossy()
            .into_owned())
    }
}

impl Drop for Holder {
    /// Kills unshare and, with `--fork`, its child (which would outlive it,
    /// reparented, holding the test's stdout and the e2e lock).
    fn drop(&mut self) {
        if self.pid != self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Path::new(&format!("/proc/{}", self.pid)).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Replaces the spec's namespace of `typ` (or adds one) with a joined `path`.
fn join(spec: &mut Value, typ: &str, path: &str) -> Result<()> {
    let nss = spec["linux"]["namespaces"]
        .as_array_mut()
        .context("namespaces")?;
    nss.retain(|n| n["type"] != typ);
    nss.push(json!({"type": typ, "path": path}));
    Ok(())
}

/// A container joining the mount namespace of a holder: its root is the
/// container's rootfs (set up inside that namespace, which the holder's root
/// follows into the rootfs at the pivot, as with runc), the namespace the
/// holder's; nothing of it reaches the host's mounts (the leak check).
fn join_mount_namespace(h: &mut Harness) -> Result<()> {
    // liblxc needs the runtime's state dir (its lxcpath) in the joined mount
    // namespace, where runc needs only the rootfs: the holder's namespace is a
    // copy of the daemon's (which has its own /run/containerd), as a pod
    // sandbox's would be. slave: nothing of the container's comes back.
    let daemon_mnt = h.ctd.mountinfo().with_file_name("ns").join("mnt");
    let holder = Holder::spawn_in(
        Some(&daemon_mnt),
        &["--mount", "--propagation", "slave"],
        "mnt",
        false,
    )?;
    let want = holder.ns_link("mnt")?;
    let id = h.id("joinmnt");
    let script = "readlink /proc/self/ns/mnt; test -f /etc/group && echo rootfs";
    let mut spec = default_spec(h, &id, &["/bin/sh", "-c", script])?;
    join(&mut spec, "mount", &holder.ns_path("mnt"))?;
    let out = run_spec(h, &id, &spec)?.ok()?;
    ensure!(
        out.stdout == format!("{want}\nrootfs\n"),
        "want {want}: {out}"
    );
    Ok(())
}

/// A container joining a user namespace whose root is host uid/gid 100000: the
/// container's user namespace is the holder's, with its maps. With mappings in
/// the spec equal to the namespace's (runc 1.1.5 needs them); lxcri also reads
/// them from the namespace when the spec has none.
fn join_user_namespace(h: &mut Harness) -> Result<()> {
    chown_tree(Path::new(&h.rootfs()), 100000)?;
    let holder = Holder::spawn(&["--user"], "user", false)?;
    for f in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{}/{f}", holder.pid), "0 100000 65536\n")
            .with_context(|| format!("write the holder's {f}"))?;
    }
    let want = holder.ns_link("user")?;
    let script = "readlink /proc/self/ns/user; cat /proc/self/uid_map /proc/self/gid_map; id -u";
    let with_maps: &[bool] = if h.runtime == Runtime::Lxcri {
        &[true, false]
    } else {
        &[true]
    };
    for &maps in with_maps {
        let id = h.id(if maps { "joinuser" } else { "joinuser-nomaps" });
        let mut spec = default_spec(h, &id, &["/bin/sh", "-c", script])?;
        join(&mut spec, "user", &holder.ns_path("user"))?;
        if maps {
            spec["linux"]["uidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            spec["linux"]["gidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        }
        let out = run_spec(h, &id, &spec)?.ok()?;
        let words: Vec<&str> = out.stdout.split_whitespace().collect();
        ensure!(
            words == [&want, "0", "100000", "65536", "0", "100000", "65536", "0"],
            "maps={maps}, want {want}: {out}"
        );
    }
    Ok(())
}

/// A container joining a time namespace whose boottime is 10 days ahead: the
/// namespace is the holder's, and so is the clock.
fn join_time_namespace(h: &mut Harness) -> Result<()> {
    let holder = Holder::spawn(&["--time", "--fork", "--boottime", "864000"], "time", true)?;
    let want = holder.ns_link("time")?;
    let id = h.id("jointime");
    let script = "readlink /proc/self/ns/time; cut -d' ' -f1 /proc/uptime";
    let mut spec = default_spec(h, &id, &["/bin/sh", "-c", script])?;
    join(&mut spec, "time", &holder.ns_path("time"))?;
    let out = run_spec(h, &id, &spec)?.ok()?;
    let mut lines = out.stdout.lines();
    ensure!(lines.next() == Some(want.as_str()), "want {want}: {out}");
    let inside: f64 = lines
        .next()
        .and_then(|v| v.parse().ok())
        .context("uptime")?;
    let host: f64 = std::fs::read_to_string("/proc/uptime")?
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .context("host uptime")?;
    ensure!(
        inside >= host + 864000.0 - 60.0,
        "uptime {inside} inside, {host} on the host"
    );
    Ok(())
}

/// `linux.devices` with a new user namespace, where mknod is not allowed: the
/// host's node at that path is bind-mounted (as runc does), so the container's
/// /dev/fuse is the host's inode with its numbers.
fn devices_in_user_namespace(h: &mut Harness) -> Result<()> {
    chown_tree(Path::new(&h.rootfs()), 100000)?;
    let host = std::fs::metadata("/dev/fuse").context("the host's /dev/fuse")?;
    let id = h.id("userns-dev");
    let script = "stat -c '%F %t:%T %i' /dev/fuse";
    let mut spec = default_spec(h, &id, &["/bin/sh", "-c", script])?;
    spec["linux"]["namespaces"]
        .as_array_mut()
        .context("namespaces")?
        .push(json!({"type": "user"}));
    spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    spec["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    spec["linux"]["devices"] = json!([
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666}
    ]);
    let out = run_spec(h, &id, &spec)?.ok()?;
    let dev = host.rdev();
    let (major, minor) = (
        ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff),
        (dev & 0xff) | ((dev >> 12) & !0xff),
    );
    let line = format!("character special file {major:x}:{minor:x} {}", host.ino());
    ensure!(
        out.stdout.lines().next() == Some(line.as_str()),
        "want {line:?}: {out}"
    );
    // A path the host lacks: lxcri's create fails naming the field (runc's too).
    let id = h.id("userns-dev-missing");
    let mut spec2 = spec.clone();
    spec2["linux"]["cgroupsPath"] = json!(format!("/default/{id}"));
    spec2["linux"]["devices"] = json!([
        {"path": "/dev/lxe2e-missing", "type": "c", "major": 10, "minor": 229}
    ]);
    let out = run_spec(h, &id, &spec2)?;
    ensure!(
        out.code != 0,
        "a device missing on the host was accepted: {out}"
    );
    if h.runtime == Runtime::Lxcri {
        ensure!(out.stderr.contains("linux.devices[0].path"), "{out}");
    }
    let _ = h.ctr(&["container", "rm", &id]);
    Ok(())
}
