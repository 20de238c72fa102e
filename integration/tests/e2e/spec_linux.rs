//! Issue 4: `linux.*` fields (devices, rootfs propagation, ...), checked from
//! inside the container, with runc as the reference.

use crate::util::{default_spec, expect, run_spec, run_spec_runtime};
use crate::{matrix, matrix_lxcri, matrix_lxcri_v2};
use anyhow::{ensure, Context, Result};
use lxcri_integration::{Harness, Runtime};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;

matrix!(
    devices_created,
    device_cgroup,
    lsm_and_rdt_refused_on_this_host,
    no_host_fd_or_runtime_internals,
    user_namespace,
    sysctl_namespaced,
    masked_and_readonly_paths,
);

// runc 1.1.5 prints "(none)" for the domain name, x86_64 for LINUX32, has no
// time namespace, and leaves / unshared with rootfsPropagation "rshared".
matrix_lxcri!(domainname, personality_linux32, rootfs_propagation);
matrix_lxcri_v2!(time_namespace_offsets);

/// `linux.devices`: the node exists with the spec's type, numbers, mode and
/// owner; the default cgroup rules allow /dev/null's numbers.
fn devices_created(h: &mut Harness) -> Result<()> {
    let id = h.id("devices");
    let script = "stat -c '%F %t:%T %a %u:%g' /dev/mynull /dev/sub/myfifo; \
                  echo x > /dev/mynull && echo written";
    let mut spec = default_spec(h, &id, &["/bin/sh", "-c", script])?;
    spec["linux"]["devices"] = json!([
        {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o620, "uid": 1000, "gid": 65534},
        {"path": "/dev/sub/myfifo", "type": "p", "fileMode": 0o600}
    ]);
    expect(
        &run_spec(h, &id, &spec)?,
        0,
        "character special file 1:3 620 1000:65534\nfifo 0:0 600 0:0\nwritten\n",
    )
}

/// `linux.resources.devices`: a node outside the default allow list cannot be
/// opened (EPERM from the device cgroup) until a rule allows it.
fn device_cgroup(h: &mut Harness) -> Result<()> {
    // 10:229 is /dev/fuse: opening it without the rule fails with EPERM; with the
    // rule it opens (or fails with another error when fuse is absent).
    let script = "(: < /dev/myfuse) && echo opened || echo failed";
    for (allow, want) in [(false, "Operation not permitted"), (true, "opened")] {
        let id = h.id(if allow { "devcg-allow" } else { "devcg-deny" });
        let mut spec = default_spec(h, &id, &["/bin/sh", "-c", script])?;
        spec["linux"]["devices"] =
            json!([{"path": "/dev/myfuse", "type": "c", "major": 10, "minor": 229}]);
        if allow {
            spec["linux"]["resources"]["devices"]
                .as_array_mut()
                .ok_or_else(|| anyhow::anyhow!("no resources.devices in the default spec"))?
                .push(
                    json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}),
                );
        }
        let out = run_spec(h, &id, &spec)?;
        let text = format!("{}{}", out.stdout, out.stderr);
        ensure!(
            text.contains(want),
            "allow={allow}: want {want:?}, got {out}"
        );
        if !allow {
            ensure!(out.stdout.contains("failed"), "{out}");
        }
    }
    Ok(())
}

/// `linux.rootfsPropagation`: / is a shared mount inside the container.
fn rootfs_propagation(h: &mut Harness) -> Result<()> {
    let id = h.id("rootprop");
    let script = "awk '$5 == \"/\"' /proc/self/mountinfo";
    let mut spec = default_spec(h, &id, &["/bin/sh", "-c", script])?;
    spec["linux"]["rootfsPropagation"] = json!("rshared");
    let out = run_spec(h, &id, &spec)?.ok()?;
    ensure!(out.stdout.contains(" shared:"), "/ is not shared: {out}");
    Ok(())
}

/// `domainname` in a new UTS namespace.
fn domainname(h: &mut Harness) -> Result<()> {
    let id = h.id("domain");
    let mut spec = default_spec(h, &id, &["/bin/cat", "/proc/sys/kernel/domainname"])?;
    spec["domainname"] = json!("lxe2e.example");
    expect(&run_spec(h, &id, &spec)?, 0, "lxe2e.example\n")
}

/// `linux.personality` LINUX32: uname reports a 32-bit machine.
fn personality_linux32(h: &mut Harness) -> Result<()> {
    let id = h.id("persona");
    let mut spec = default_spec(h, &id, &["/bin/uname", "-m"])?;
    spec["linux"]["personality"] = json!({"domain": "LINUX32"});
    expect(&run_spec(h, &id, &spec)?, 0, "i686\n")
}

/// A time namespace with a boottime offset of 10 days: the container's uptime
/// is at least that, the host's much less (a test machine).
fn time_namespace_offsets(h: &mut Harness) -> Result<()> {
    let id = h.id("timens");
    let mut spec = default_spec(h, &id, &["/bin/cat", "/proc/uptime"])?;
    push_namespace(&mut spec, "time")?;
    spec["linux"]["timeOffsets"] = json!({"boottime": {"secs": 864000}});
    let out = run_spec(h, &id, &spec)?.ok()?;
    let inside: f64 = out
        .stdout
        .split_whitespace()
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

pub(crate) fn push_namespace(spec: &mut Value, typ: &str) -> Result<()> {
    spec["linux"]["namespaces"]
        .as_array_mut()
        .context("namespaces")?
        .push(json!({ "type": typ }));
    Ok(())
}

/// This host has neither AppArmor, SELinux nor resctrl: a profile, a label or
/// intelRdt make create fail (runc too), lxcri naming the field.
fn lsm_and_rdt_refused_on_this_host(h: &mut Harness) -> Result<()> {
    ensure!(
        !Path::new("/sys/module/apparmor/parameters/enabled").exists()
            && !Path::new("/sys/fs/selinux").exists(),
        "this scenario expects a host without AppArmor and SELinux"
    );
    let cases: [(&str, &[&str], Value, &str); 3] = [
        (
            "aa",
            &["process", "apparmorProfile"],
            json!("docker-default"),
            "process.apparmorProfile",
        ),
        (
            "selinux",
            &["process", "selinuxLabel"],
            json!("system_u:system_r:container_t:s0"),
            "process.selinuxLabel",
        ),
        (
            "rdt",
            &["linux", "intelRdt"],
            json!({"closID": "lxe2e"}),
            "linux.intelRdt",
        ),
    ];
    for (name, path, value, field) in cases {
        let id = h.id(name);
        let mut spec = default_spec(h, &id, &["/bin/true"])?;
        spec[path[0]][path[1]] = value;
        let out = run_spec(h, &id, &spec)?;
        if h.runtime == Runtime::Runc && name == "rdt" {
            // runc 1.1.5 ignores intelRdt on a host without resctrl.
            let _ = h.ctr(&["container", "rm", &id]);
            continue;
        }
        ensure!(out.code != 0, "{field} accepted: {out}");
        if h.runtime == Runtime::Lxcri {
            ensure!(out.stderr.contains(field), "{field} not named: {out}");
        }
        let _ = h.ctr(&["container", "rm", &id]);
    }
    // "unconfined" is fine for lxcri (runc 1.1.5 fails to write it to
    // /proc/self/attr/exec without AppArmor).
    if h.runtime == Runtime::Runc {
        return Ok(());
    }
    let id = h.id("unconfined");
    let mut spec = default_spec(h, &id, &["/bin/true"])?;
    spec["process"]["apparmorProfile"] = json!("unconfined");
    expect(&run_spec(h, &id, &spec)?, 0, "")
}

/// The container's init holds exactly the fds runc's does (its stdio), its
/// environment is the spec's, the mount points are runc's (liblxc's bind of
/// /dev/pts/ptmx on /dev/ptmx aside, where runc has a symlink; its random
/// boot_id is undone by the init), and the only paths a run leaves in the
/// rootfs are mount points (as with runc).
fn no_host_fd_or_runtime_internals(h: &mut Harness) -> Result<()> {
    let before = tree(Path::new(&h.rootfs()))?;
    let script = "ls /proc/1/fd; echo ---; cat /proc/1/environ | tr '\\0' '\\n'; echo ---; \
                  awk '$5 != \"/dev/ptmx\" {print $5}' /proc/self/mountinfo | sort -u | tr '\\n' ' '; echo; \
                  ls -a / | tr '\\n' ' '";
    let id = h.id("internals");
    let spec = default_spec(h, &id, &["/bin/sh", "-c", script])?;
    let ours = run_spec(h, &id, &spec)?;
    let ref_id = h.id("internals-runc");
    let spec_ref = default_spec(h, &ref_id, &["/bin/sh", "-c", script])?;
    let runc = run_spec_runtime(h, Runtime::Runc.name(), &ref_id, &spec_ref)?;
    ensure!(
        ours.stdout == runc.stdout,
        "differs from runc:\n{ours}\nrunc:\n{runc}"
    );
    ensure!(ours.stdout.starts_with("0\n1\n2\n---\n"), "{ours}");
    // The mount points equal runc's (checked above): nothing of the runtime.
    let after = tree(Path::new(&h.rootfs()))?;
    let mount_points: BTreeSet<String> = spec["mounts"]
        .as_array()
        .context("mounts")?
        .iter()
        .filter_map(|m| m["destination"].as_str())
        .flat_map(|d| {
            // A mount point and its missing parents.
            let mut v = Vec::new();
            let mut p = Path::new(d);
            while p != Path::new("/") {
                v.push(p.display().to_string());
                p = p.parent().unwrap_or(Path::new("/"));
            }
            v
        })
        .collect();
    let left: Vec<&String> = after
        .difference(&before)
        .filter(|p| !mount_points.contains(*p))
        .collect();
    ensure!(left.is_empty(), "left in the rootfs: {left:?}");
    Ok(())
}

/// Every path under `root` (as "/a/b"), not following links.
fn tree(root: &Path) -> Result<BTreeSet<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) -> Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let p = e.path();
            let rel = format!("/{}", p.strip_prefix(root)?.display());
            out.insert(rel);
            if e.file_type()?.is_dir() {
                walk(root, &p, out)?;
            }
        }
        Ok(())
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out)?;
    Ok(out)
}

/// A new user namespace with uid/gid mappings: root in the container is host
/// uid 100000.
fn user_namespace(h: &mut Harness) -> Result<()> {
    let id = h.id("userns");
    let script = "cat /proc/self/uid_map /proc/self/gid_map; id -u; echo x > /tmp/userns-probe && stat -c %u /tmp/userns-probe";
    // The image belongs to the mapped root, as a remapping snapshotter makes it
    // (the runtime creates mount points in it as that user).
    chown_tree(Path::new(&h.rootfs()), 100000)?;
    // No /etc/subuid entry for root is needed (as with runc): lxcri-start
    // keeps liblxc from using newuidmap.
    let mut spec = default_spec(h, &id, &["/bin/sh", "-c", script])?;
    push_namespace(&mut spec, "user")?;
    spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    spec["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let out = run_spec(h, &id, &spec)?;
    let probe = Path::new(&h.rootfs()).join("tmp/userns-probe");
    let host_owner = std::fs::metadata(&probe)
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    let _ = std::fs::remove_file(&probe);
    let out = out.ok()?;
    let words: Vec<&str> = out.stdout.split_whitespace().collect();
    ensure!(
        words == ["0", "100000", "65536", "0", "100000", "65536", "0", "0"],
        "{out}"
    );
    ensure!(
        host_owner == Some(100000),
        "file owned by {host_owner:?} on the host"
    );
    Ok(())
}

/// `linux.sysctl`: a net key (own network namespace) and an IPC key.
fn sysctl_namespaced(h: &mut Harness) -> Result<()> {
    let id = h.id("sysctl");
    let script = "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shmmni";
    let mut spec = default_spec(h, &id, &["/bin/sh", "-c", script])?;
    spec["linux"]["sysctl"] = json!({
        "net.ipv4.ip_unprivileged_port_start": "42", "kernel.shmmni": "1234"
    });
    expect(&run_spec(h, &id, &spec)?, 0, "42\n1234\n")
}

/// `linux.maskedPaths` (a file and a directory, /proc/irq) and `linux.readonlyPaths`.
fn masked_and_readonly_paths(h: &mut Harness) -> Result<()> {
    let id = h.id("masked");
    let script = "wc -c < /proc/timer_list; ls /proc/irq | wc -l; \
                  echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo writable || echo read-only";
    let mut spec = default_spec(h, &id, &["/bin/sh", "-c", script])?;
    spec["linux"]["maskedPaths"] = json!(["/proc/timer_list", "/proc/irq"]);
    spec["linux"]["readonlyPaths"] = json!(["/proc/sys"]);
    expect(&run_spec(h, &id, &spec)?, 0, "0\n0\nread-only\n")
}

pub(crate) fn chown_tree(root: &Path, id: u32) -> Result<()> {
    std::os::unix::fs::lchown(root, Some(id), Some(id))?;
    for p in tree(root)? {
        let p = root.join(p.trim_start_matches('/'));
        std::os::unix::fs::lchown(&p, Some(id), Some(id))
            .with_context(|| format!("chown {}", p.display()))?;
    }
    Ok(())
}
