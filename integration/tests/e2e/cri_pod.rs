//! Issue 6: a pod's containers through CRI (pod network, local registry;
//! see `cri_lifecycle.rs`), lxcri and runc handlers.
//!
//! - `cri_pod_shared`: two containers and the sandbox in one pod are run by
//!   one shim process and share the pod's net, ipc and uts namespaces, each
//!   container with its own pid namespace (CRI's default).
//! - `cri_pod_shared_pid`: with the pod's pid namespace shared
//!   (shareProcessNamespace, NamespaceMode POD), both containers and the
//!   pause process are in one pid namespace, where the pause is pid 1 and
//!   each container sees the other's processes.

use crate::cri_util::*;
use anyhow::{ensure, Result};
use lxcri_integration::registry::BUSYBOX;
use lxcri_integration::Harness;
use serde_json::json;

crate::cri_matrix!(cri_pod_shared, cri_pod_shared_pid);

/// Runs two `sleep` containers in a pod with `linux` pod options; returns
/// (pod, pause pid, container pids); the pod is removed by the caller.
fn two_containers(h: &mut Harness, name: &str, linux: serde_json::Value) -> Result<Pod> {
    pull(h, BUSYBOX)?;
    // The kubelet sends the pod's namespace options with each container too
    // (containerd takes a container's pid mode from its own config).
    let container_linux = json!({"linux": linux.clone()});
    let config = pod_config(h, name, linux)?;
    let pod = run_pod(h, &config)?;
    let mut pod = Pod {
        id: pod,
        pause: 0,
        containers: Vec::new(),
    };
    let started = (|| {
        pod.pause = sandbox_pid(h, &pod.id)?;
        for c in ["first", "second"] {
            let id = create(
                h,
                &pod.id,
                &config,
                c,
                BUSYBOX,
                &["sleep", "3600"],
                container_linux.clone(),
            )?;
            h.crictl_ok(&["start", &id])?;
            wait_state(h, &id, "CONTAINER_RUNNING")?;
            let pid = pid_of(h, &id)?;
            pod.containers.push((id, pid));
        }
        Ok(())
    })();
    match started {
        Ok(()) => Ok(pod),
        Err(e) => {
            let _ = remove_pod(h, &pod.id);
            Err(e)
        }
    }
}

struct Pod {
    id: String,
    pause: i32,
    containers: Vec<(String, i32)>,
}

/// One shim for the pod; net/ipc/uts of every container = the sandbox's.
fn check_shared(h: &Harness, pod: &Pod) -> Result<()> {
    let shim = shim_above(h, pod.pause)?;
    for (id, pid) in &pod.containers {
        let s = shim_above(h, *pid)?;
        ensure!(
            s.pid == shim.pid,
            "container {id} under shim {} , sandbox under {}",
            s,
            shim
        );
        for ns in ["net", "ipc", "uts"] {
            let (c, p) = (namespace(*pid, ns)?, namespace(pod.pause, ns)?);
            ensure!(c == p, "container {id}: {ns} {c}, sandbox {p}");
        }
        let out = exec_sync(h, id, &["hostname"])?;
        ensure!(
            out.stdout.trim_end().ends_with("-host"),
            "container {id} hostname: {out}"
        );
    }
    let shims = h.ctd.shims();
    ensure!(shims.len() == 1, "shims running for one pod: {shims:?}");
    Ok(())
}

fn cri_pod_shared(h: &mut Harness) -> Result<()> {
    // NamespaceMode CONTAINER = 1 for pid: what the kubelet sends unless
    // shareProcessNamespace (an absent mode is 0 = POD).
    let linux = json!({"security_context": {"namespace_options": {"pid": 1}}});
    let pod = two_containers(h, "shared", linux)?;
    let checked = check_shared(h, &pod).and_then(|()| {
        let pause_pid_ns = namespace(pod.pause, "pid")?;
        let (a, b) = (pod.containers[0].1, pod.containers[1].1);
        let (na, nb) = (namespace(a, "pid")?, namespace(b, "pid")?);
        ensure!(
            na != nb && na != pause_pid_ns && nb != pause_pid_ns,
            "containers share a pid namespace without shareProcessNamespace: {na} {nb} {pause_pid_ns}"
        );
        let out = exec_sync(h, &pod.containers[0].0, &["cat", "/proc/1/cmdline"])?;
        ensure!(out.stdout.starts_with("sleep"), "pid 1 of a container: {out}");
        Ok(())
    });
    let removed = remove_pod(h, &pod.id);
    checked.and(removed)
}

fn cri_pod_shared_pid(h: &mut Harness) -> Result<()> {
    // NamespaceMode POD = 0 for pid.
    let linux = json!({"security_context": {"namespace_options": {"pid": 0}}});
    let pod = two_containers(h, "sharedpid", linux)?;
    let checked = check_shared(h, &pod).and_then(|()| {
        let pause_pid_ns = namespace(pod.pause, "pid")?;
        for (id, pid) in &pod.containers {
            let ns = namespace(*pid, "pid")?;
            ensure!(
                ns == pause_pid_ns,
                "container {id}: pid {ns}, sandbox {pause_pid_ns}"
            );
        }
        let out = exec_sync(h, &pod.containers[0].0, &["cat", "/proc/1/cmdline"])?;
        ensure!(
            out.stdout.starts_with("/pause"),
            "pid 1 in a shared pid namespace: {out}"
        );
        let out = exec_sync(h, &pod.containers[0].0, &["ps", "-o", "args"])?;
        let sleeps = out
            .stdout
            .lines()
            .filter(|l| l.trim() == "sleep 3600")
            .count();
        ensure!(sleeps == 2, "ps in the shared pid namespace: {out}");
        Ok(())
    });
    let removed = remove_pod(h, &pod.id);
    checked.and(removed)
}
