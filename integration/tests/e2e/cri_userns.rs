//! A pod in its own user namespace through CRI (`userns_options` mode POD,
//! what the kubelet sends for `hostUsers: false`), lxcri and runc handlers.
//!
//! containerd 2.x's overlay snapshotter then hands the shim the rootfs
//! mounts with `uidmap=`/`gidmap=` options (id-mapped lower layers), which the
//! shim has to make itself; runc's shim (containerd's own mount code) is the
//! reference.
//!
//! - `cri_userns_pod`: the sandbox (pause) has the pod's uid/gid maps and
//!   its rootfs is id-mapped (its root-owned /pause is the mapped root's
//!   from the host); with runc 1.1.5 (no `features` command) containerd then
//!   refuses the container ("idmap mounts not supported"), so runc is the
//!   reference for the sandbox only. With lxcri the container's /proc/self/uid_map and gid_map show
//!   the pod's mapping; a root-owned file of the image is root's inside and
//!   the mapped root's (the mapping's host id) from the host; the container
//!   writes its rootfs (a new file, and a copy-up of an image file), owned by
//!   root inside and by the mapped root on the host.

use crate::cri_util::*;
use anyhow::{ensure, Context, Result};
use lxcri_integration::registry::BUSYBOX;
use lxcri_integration::{Harness, Runtime};
use serde_json::json;
use std::os::unix::fs::MetadataExt;

crate::cri_matrix!(cri_userns_pod);

/// The pod's mapping: container ids 0..65536 on host ids 200000...
const HOST_ID: u32 = 200_000;
const LENGTH: u32 = 65_536;

fn cri_userns_pod(h: &mut Harness) -> Result<()> {
    pull(h, BUSYBOX)?;
    let mapping = json!([{"container_id": 0, "host_id": HOST_ID, "length": LENGTH}]);
    // NamespaceMode POD = 0 (userns: a user namespace of the pod's own).
    let linux = json!({"security_context": {"namespace_options": {
        "userns_options": {"mode": 0, "uids": mapping, "gids": mapping}
    }}});
    let config = pod_config(h, "userns", linux.clone())?;
    let pod = run_pod(h, &config)?;
    let checked = (|| {
        // The sandbox (pause) runs in the pod's user namespace on an
        // id-mapped rootfs.
        let pause = sandbox_pid(h, &pod)?;
        check_maps_from_host(pause)?;
        check_host_owner(pause, "pause")?;
        let id = create(
            h,
            &pod,
            &config,
            "userns",
            BUSYBOX,
            &["sleep", "3600"],
            json!({"linux": linux}),
        )?;
        let started = h.crictl(&["start", &id])?;
        if h.runtime == Runtime::Runc {
            // Debian's runc 1.1.5 has no `features` command: containerd
            // refuses the container's id-mapped mounts (its sandbox above
            // ran: the rootfs is id-mapped by containerd's runc shim).
            ensure!(
                started.code != 0 && started.stderr.contains("idmap mounts not supported"),
                "runc 1.1.5 container in a user namespace pod: {started}"
            );
            return Ok(());
        }
        started.ok()?;
        wait_state(h, &id, "CONTAINER_RUNNING")?;
        let pid = pid_of(h, &id)?;
        check_container(h, &id, pid)
    })();
    let removed = remove_pod(h, &pod);
    checked.and(removed)
}

/// The uid and gid maps of `pid` (read from the host) are the pod's.
fn check_maps_from_host(pid: i32) -> Result<()> {
    let want = vec!["0".to_string(), HOST_ID.to_string(), LENGTH.to_string()];
    for map in ["uid_map", "gid_map"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/{map}"))?;
        ensure!(
            map_words(&text) == want,
            "{map} of {pid}: {text:?}, want {want:?}"
        );
    }
    Ok(())
}

/// The root-owned image file `path` in `pid`'s rootfs is the mapped root's
/// from the host (the rootfs is id-mapped).
fn check_host_owner(pid: i32, path: &str) -> Result<()> {
    let md = std::fs::metadata(format!("/proc/{pid}/root/{path}"))
        .with_context(|| format!("host view of /{path} of {pid}"))?;
    ensure!(
        (md.uid(), md.gid()) == (HOST_ID, HOST_ID),
        "owner of /{path} of {pid} from the host: {}:{}, want {HOST_ID}:{HOST_ID}",
        md.uid(),
        md.gid()
    );
    Ok(())
}

/// The words of the one line of an id map file.
fn map_words(text: &str) -> Vec<String> {
    text.split_whitespace().map(String::from).collect()
}

fn check_container(h: &Harness, id: &str, pid: i32) -> Result<()> {
    let want = vec!["0".to_string(), HOST_ID.to_string(), LENGTH.to_string()];
    for map in ["uid_map", "gid_map"] {
        let out = exec_sync(h, id, &["cat", &format!("/proc/self/{map}")])?.ok()?;
        ensure!(
            map_words(&out.stdout) == want,
            "{map} inside: {:?}, want {want:?}",
            out.stdout
        );
    }
    // An image file owned by root: root's inside (the rootfs is id-mapped),
    // the mapped root's from the host.
    let out = exec_sync(h, id, &["stat", "-c", "%u:%g", "/bin/busybox"])?.ok()?;
    ensure!(
        out.stdout.trim() == "0:0",
        "owner of /bin/busybox inside: {out}"
    );
    check_host_owner(pid, "bin/busybox")?;
    // The container writes its rootfs: a new file and an image file (copy-up).
    let out = exec_sync(
        h,
        id,
        &[
            "sh",
            "-c",
            "echo made > /made && echo extra >> /etc/group && \
             stat -c %u:%g /made /etc/group && cat /made && tail -n 1 /etc/group",
        ],
    )?
    .ok()?;
    let lines: Vec<&str> = out.stdout.lines().collect();
    ensure!(
        lines == ["0:0", "0:0", "made", "extra"],
        "writing the rootfs: {out}"
    );
    for f in ["made", "etc/group"] {
        check_host_owner(pid, f)?;
    }
    Ok(())
}
