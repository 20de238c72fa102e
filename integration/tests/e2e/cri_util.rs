//! Helpers for the CRI scenarios on a pod-network containerd 2.x
//! (`Harness::start_cri_net`): pod and container configs, crictl wrappers,
//! waits, and process/namespace inspection.

use anyhow::{bail, ensure, Context, Result};
use lxcri_integration::{procfs, Harness, Output, Runtime};
use serde_json::{json, Value};
use std::fs;
use std::thread;
use std::time::{Duration, Instant};

/// The pods' cgroup parent (allowed to stay, empty, by the leak checker).
pub const CGROUP_PARENT: &str = "/k8s.io";

/// The CRI handler name for `runtime` in the test config.
pub fn handler(runtime: Runtime) -> &'static str {
    match runtime {
        Runtime::Lxcri => "lxcri",
        Runtime::Runc => "runc",
    }
}

pub fn shim_binary(runtime: Runtime) -> &'static str {
    match runtime {
        Runtime::Lxcri => "containerd-shim-lxcri-v2",
        Runtime::Runc => "containerd-shim-runc-v2",
    }
}

pub fn argv0_name(p: &procfs::Process) -> &str {
    let argv0 = p.cmdline.split(' ').next().unwrap_or_default();
    argv0.rsplit('/').next().unwrap_or_default()
}

/// `crictl pull IMAGE` (from the local registry).
pub fn pull(h: &Harness, image: &str) -> Result<()> {
    h.crictl_ok(&["pull", image]).map(drop)
}

/// A pod config on the pod network; `extra_linux` is merged into
/// `linux` (e.g. a security context with namespace options).
pub fn pod_config(h: &Harness, name: &str, extra_linux: Value) -> Result<String> {
    let mut linux = json!({"cgroup_parent": CGROUP_PARENT});
    merge(&mut linux, extra_linux);
    let config = json!({
        "metadata": {"name": name, "namespace": "lxe2e", "uid": format!("lxe2e-{name}"), "attempt": 0},
        "hostname": format!("{name}-host"),
        "log_directory": h.ctd.pod_log_dir().join(name),
        "linux": linux,
    });
    let path = h.ctd.dir().join(format!("{name}.pod.json"));
    fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
    Ok(path.display().to_string())
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        for (k, v) in from {
            into.insert(k, v);
        }
    }
}

/// `crictl runp --runtime HANDLER pod.json`; the pod id (tracked).
pub fn run_pod(h: &mut Harness, config: &str) -> Result<String> {
    let handler = handler(h.runtime);
    let out = h.crictl_ok(&["runp", "--runtime", handler, config])?;
    let pod = out.stdout.trim().to_string();
    ensure!(
        pod.len() == 64 && pod.chars().all(|c| c.is_ascii_hexdigit()),
        "crictl runp printed no pod id: {out}"
    );
    h.track(&pod);
    Ok(pod)
}

/// `crictl create POD container.json pod.json` of a container `name`
/// running `command` from `image`; `extra` is merged into the config. The
/// container id (tracked).
pub fn create(
    h: &mut Harness,
    pod: &str,
    pod_config: &str,
    name: &str,
    image: &str,
    command: &[&str],
    extra: Value,
) -> Result<String> {
    let mut config = json!({
        "metadata": {"name": name},
        "image": {"image": image},
        "command": command,
        "log_path": format!("{name}.log"),
        "linux": {},
    });
    merge(&mut config, extra);
    let path = h.ctd.dir().join(format!("{pod}-{name}.json"));
    fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
    let out = h.crictl_ok(&["create", pod, &path.display().to_string(), pod_config])?;
    let id = out.stdout.trim().to_string();
    ensure!(!id.is_empty(), "crictl create printed no id: {out}");
    h.track(&id);
    Ok(id)
}

/// `crictl inspect ID` as JSON.
pub fn inspect(h: &Harness, id: &str) -> Result<Value> {
    let out = h.crictl_ok(&["inspect", id])?;
    serde_json::from_str(&out.stdout).context("crictl inspect")
}

/// `crictl inspectp POD` as JSON.
pub fn inspectp(h: &Harness, pod: &str) -> Result<Value> {
    let out = h.crictl_ok(&["inspectp", pod])?;
    serde_json::from_str(&out.stdout).context("crictl inspectp")
}

/// Polls `crictl inspect` until the container's state is `state` (20 s).
pub fn wait_state(h: &Harness, id: &str, state: &str) -> Result<Value> {
    let start = Instant::now();
    loop {
        let inspect = inspect(h, id)?;
        if inspect["status"]["state"] == state {
            return Ok(inspect);
        }
        if start.elapsed() > Duration::from_secs(20) {
            bail!(
                "container {id} not {state} after 20 s: {}",
                inspect["status"]
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// The host pid of a running container (`crictl inspect` info.pid).
pub fn pid_of(h: &Harness, id: &str) -> Result<i32> {
    let inspect = inspect(h, id)?;
    let pid = inspect["info"]["pid"]
        .as_i64()
        .with_context(|| format!("no pid in {}", inspect["info"]))?;
    Ok(pid as i32)
}

/// The host pid of a pod's sandbox (pause) process.
pub fn sandbox_pid(h: &Harness, pod: &str) -> Result<i32> {
    let inspect = inspectp(h, pod)?;
    let pid = inspect["info"]["pid"]
        .as_i64()
        .with_context(|| format!("no sandbox pid in {}", inspect["info"]))?;
    Ok(pid as i32)
}

/// The namespace `kind` (net, ipc, uts, pid, mnt) of `pid`, as the
/// `/proc/PID/ns/KIND` link text (e.g. `net:[4026532301]`).
pub fn namespace(pid: i32, kind: &str) -> Result<String> {
    let link = fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .with_context(|| format!("/proc/{pid}/ns/{kind}"))?;
    Ok(link.display().to_string())
}

/// The shim process above `pid` (its nearest ancestor running a shim).
pub fn shim_above(h: &Harness, pid: i32) -> Result<procfs::Process> {
    let shim = shim_binary(h.runtime);
    let ancestors = procfs::ancestors(pid);
    ancestors
        .iter()
        .find(|p| argv0_name(p) == shim)
        .cloned()
        .with_context(|| {
            let tree: Vec<String> = ancestors.iter().map(|p| p.to_string()).collect();
            format!("no {shim} above {pid}:\n  {}", tree.join("\n  "))
        })
}

/// `crictl exec -s ID cmd...` (sync exec): its output.
pub fn exec_sync(h: &Harness, id: &str, cmd: &[&str]) -> Result<Output> {
    let mut args = vec!["exec", "-s", id];
    args.extend(cmd);
    h.crictl(&args)
}

/// `crictl stopp` + `rmp`; no pod or container left in CRI or containerd.
pub fn remove_pod(h: &Harness, pod: &str) -> Result<()> {
    h.crictl_ok(&["stopp", pod])?;
    h.crictl_ok(&["rmp", pod])?;
    let pods = h.crictl_ok(&["pods", "-q"])?;
    ensure!(pods.stdout.trim().is_empty(), "pods left: {pods}");
    let containers = h.crictl_ok(&["ps", "-a", "-q"])?;
    ensure!(
        containers.stdout.trim().is_empty(),
        "containers left: {containers}"
    );
    Ok(())
}

/// One CRI log record: (stream, tag, content).
pub type Record = (String, String, String);

/// The CRI log records of a container's log file: (stream, tag, content)
/// per line `<RFC3339Nano time> <stream> <P|F> <content>`; fails on a line
/// in another format.
pub fn log_records(path: &str) -> Result<Vec<Record>> {
    let text = fs::read_to_string(path).with_context(|| format!("read log {path}"))?;
    let mut records = Vec::new();
    for line in text.split_inclusive('\n') {
        let line = line
            .strip_suffix('\n')
            .with_context(|| format!("log line without newline: {line:?}"))?;
        let mut fields = line.splitn(4, ' ');
        let (Some(time), Some(stream), Some(tag)) = (fields.next(), fields.next(), fields.next())
        else {
            bail!("log line not in CRI format: {line:?}");
        };
        let content = fields.next().unwrap_or_default();
        ensure!(
            time.len() >= 20 && time.contains('T') && (time.ends_with('Z') || time.contains('+')),
            "bad timestamp in {line:?}"
        );
        ensure!(
            stream == "stdout" || stream == "stderr",
            "bad stream in {line:?}"
        );
        ensure!(tag == "P" || tag == "F", "bad tag in {line:?}");
        records.push((stream.to_string(), tag.to_string(), content.to_string()));
    }
    Ok(records)
}

/// Polls until `f` holds (10 s), else fails with `what`.
pub fn eventually(what: &str, mut f: impl FnMut() -> Result<bool>) -> Result<()> {
    let start = Instant::now();
    loop {
        if f()? {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(10) {
            bail!("not after 10 s: {what}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}
