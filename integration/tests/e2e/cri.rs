//! Issue 2, point 3, through CRI: lxcri registered by config. A containerd
//! whose CRI plugin has `default_runtime_name = "lxcri"` (a runtime of
//! runtime_type io.containerd.lxcri.v2, see `Version::cri_config`) runs a
//! pod requested without a runtime handler (`crictl runp pod.json`) with our
//! shim. `ctr` always names a runtime, so CRI is the only consumer of a
//! configured default runtime. The same config's `runc` handler
//! (`crictl runp --runtime runc`) is the reference; there a container in the
//! pod also runs (`crictl create` + `start` + `logs`). With lxcri that part
//! is not tested yet: a pod's containers join the sandbox's namespaces by
//! path (`linux.namespaces[..].path`), which lxcri rejects for now.
//!
//! Pods use the host network (no CNI) and the cgroup parent `/k8s.io`.
//! Test names follow `<scenario>::<runtime>_containerd_<version>`.

use anyhow::{bail, ensure, Context, Result};
use lxcri_integration::containerd::{CRI_DEFAULT_HANDLER, CRI_NAMESPACE, PAUSE_IMAGE};
use lxcri_integration::{procfs, Harness, Runtime};
use serde_json::{json, Value};
use std::thread;
use std::time::{Duration, Instant};

/// The pods' cgroup parent: a pod's cgroup is `/k8s.io/<pod id>`. Like
/// ctr's `/default`, the parent stays (empty) after the pod is gone.
const CGROUP_PARENT: &str = "/k8s.io";

/// What the pause image runs (`image::PAUSE`).
const PAUSE_CMDLINE: &str = "/bin/sleep 2147483647";

mod cri_default_runtime {
    use lxcri_integration::{run_cri_scenario, Runtime, Version};

    #[test]
    fn lxcri_containerd_1_6() {
        run_cri_scenario(Version::V1_6, Runtime::Lxcri, super::default_runtime);
    }

    #[test]
    fn lxcri_containerd_2() {
        run_cri_scenario(Version::V2, Runtime::Lxcri, super::default_runtime);
    }
}

mod cri_runtime_handler {
    use lxcri_integration::{run_cri_scenario, Runtime, Version};

    #[test]
    fn runc_containerd_1_6() {
        run_cri_scenario(Version::V1_6, Runtime::Runc, super::runc_handler);
    }

    #[test]
    fn runc_containerd_2() {
        run_cri_scenario(Version::V2, Runtime::Runc, super::runc_handler);
    }
}

mod cri_leaks_are_reported {
    use lxcri_integration::Version;

    #[test]
    fn runc_containerd_1_6() {
        super::leaks_are_reported(Version::V1_6).unwrap_or_else(|e| panic!("{e:#}"));
    }

    #[test]
    fn runc_containerd_2() {
        super::leaks_are_reported(Version::V2).unwrap_or_else(|e| panic!("{e:#}"));
    }
}

/// `crictl runp pod.json` without a handler: the configured default
/// (lxcri) runs the sandbox, and a busybox container in the pod (joining the
/// sandbox's namespaces) echoes to its log.
fn default_runtime(h: &mut Harness) -> Result<()> {
    check_cri_config(h)?;
    let image = h.import_cri_images()?;
    let pod = run_pod(h, "default", None)?;
    let checked = check_sandbox(h, &pod, Runtime::Lxcri, "")
        .and_then(|()| run_echo(h, &pod, "default", image));
    let removed = remove_pod(h, &pod);
    checked.and(removed)
}

/// `crictl runp --runtime runc pod.json` on the same config: runc runs the
/// sandbox, and a busybox container in the pod echoes to its log.
fn runc_handler(h: &mut Harness) -> Result<()> {
    check_cri_config(h)?;
    let image = h.import_cri_images()?;
    let pod = run_pod(h, "runc", Some("runc"))?;
    let checked = check_sandbox(h, &pod, Runtime::Runc, "runc")
        .and_then(|()| run_echo(h, &pod, "runc", image));
    let removed = remove_pod(h, &pod);
    checked.and(removed)
}

/// The leak checker sees what a pod left running leaves: the shim, the
/// pause process, the pod cgroup, CRI's mounts (the sandbox's /dev/shm
/// tmpfs, the rootfs overlay) and its per-pod dirs.
fn leaks_are_reported(version: lxcri_integration::Version) -> Result<()> {
    let mut h = Harness::start_cri(version, Runtime::Runc)?;
    h.import_cri_images()?;
    let pod = run_pod(&mut h, "leaky", Some("runc"))?;
    let Err(err) = h.finish() else {
        bail!("finish() passed with pod {pod} still running");
    };
    let report = format!("{err:#}");
    let cgroup = format!("{CGROUP_PARENT}/{pod}");
    let sandbox_dir = format!("io.containerd.grpc.v1.cri/sandboxes/{pod}");
    for want in [
        "LEAKED",
        "containerd-shim-runc-v2",
        PAUSE_CMDLINE,
        &cgroup,
        "mount in containerd's namespace: ",
        &format!("{pod}/shm tmpfs"),
        "runtime dir: ",
        &sandbox_dir,
    ] {
        ensure!(report.contains(want), "report lacks {want:?}:\n{report}");
    }
    Ok(())
}

/// `crictl info` shows the default handler lxcri with its runtime type.
fn check_cri_config(h: &Harness) -> Result<()> {
    let out = h.crictl_ok(&["info"])?;
    let info: Value = serde_json::from_str(&out.stdout).context("crictl info")?;
    let containerd = &info["config"]["containerd"];
    ensure!(
        containerd["defaultRuntimeName"] == CRI_DEFAULT_HANDLER,
        "CRI default runtime: {}",
        containerd["defaultRuntimeName"]
    );
    let runtime_type = &containerd["runtimes"][CRI_DEFAULT_HANDLER]["runtimeType"];
    ensure!(
        runtime_type == Runtime::Lxcri.name(),
        "runtime_type of {CRI_DEFAULT_HANDLER}: {runtime_type}"
    );
    Ok(())
}

/// Writes a host-network pod config (no CNI needed) for pod `name`.
fn pod_config(h: &Harness, name: &str) -> Result<String> {
    let config = json!({
        "metadata": {"name": name, "namespace": "lxe2e", "uid": format!("lxe2e-{name}"), "attempt": 0},
        "log_directory": h.ctd.pod_log_dir(),
        "linux": {
            "cgroup_parent": CGROUP_PARENT,
            // NamespaceMode NODE = 2: the host's network namespace.
            "security_context": {"namespace_options": {"network": 2}}
        }
    });
    let path = h.ctd.dir().join(format!("{name}.pod.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
    Ok(path.display().to_string())
}

/// `crictl runp [--runtime HANDLER] pod.json`; returns the pod id (tracked
/// by the leak check).
fn run_pod(h: &mut Harness, name: &str, handler: Option<&str>) -> Result<String> {
    let config = pod_config(h, name)?;
    let mut args = vec!["runp"];
    if let Some(handler) = handler {
        args.extend(["--runtime", handler]);
    }
    args.push(&config);
    let out = h.crictl_ok(&args)?;
    let pod = out.stdout.trim().to_string();
    ensure!(
        pod.len() == 64 && pod.chars().all(|c| c.is_ascii_hexdigit()),
        "crictl runp printed no pod id: {out}"
    );
    h.track(&pod);
    Ok(pod)
}

/// The sandbox of `pod` is ready and run by `runtime`'s shim: CRI's view
/// (handler, runtime type), containerd's container record, and the
/// process tree (pause under the shim; with lxcri, under lxcri-start).
fn check_sandbox(h: &Harness, pod: &str, runtime: Runtime, handler: &str) -> Result<()> {
    let out = h.crictl_ok(&["inspectp", pod])?;
    let inspect: Value = serde_json::from_str(&out.stdout).context("crictl inspectp")?;
    let (status, info) = (&inspect["status"], &inspect["info"]);
    ensure!(status["state"] == "SANDBOX_READY", "pod state: {status}");
    ensure!(
        status["runtimeHandler"] == handler,
        "runtime handler {} (expected {handler:?})",
        status["runtimeHandler"]
    );
    ensure!(
        info["runtimeType"] == runtime.name(),
        "sandbox runtimeType {} (expected {})",
        info["runtimeType"],
        runtime.name()
    );
    let record = h.ctr_ok(&["-n", CRI_NAMESPACE, "container", "info", pod])?;
    let record: Value = serde_json::from_str(&record.stdout).context("ctr container info")?;
    ensure!(
        record["Runtime"]["Name"] == runtime.name(),
        "containerd's record of the sandbox: runtime {}",
        record["Runtime"]["Name"]
    );
    ensure!(
        record["Image"] == PAUSE_IMAGE,
        "sandbox image {}",
        record["Image"]
    );
    let pid = info["pid"]
        .as_i64()
        .with_context(|| format!("no sandbox pid in {info}"))? as i32;
    check_process_tree(h, pod, pid, runtime)
}

fn check_process_tree(h: &Harness, pod: &str, pid: i32, runtime: Runtime) -> Result<()> {
    let pause = procfs::process(pid).with_context(|| format!("sandbox pid {pid} is gone"))?;
    ensure!(pause.cmdline == PAUSE_CMDLINE, "sandbox process: {pause}");
    let cgroup = format!("{CGROUP_PARENT}/{pod}");
    ensure!(
        pause.cgroups.lines().all(|l| l.ends_with(&cgroup)),
        "sandbox process not in {cgroup}: {}",
        pause.cgroups
    );
    let ancestors = procfs::ancestors(pid);
    let tree = || {
        ancestors
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n  ")
    };
    let address = h.ctd.address().display().to_string();
    let shim = shim_binary(runtime);
    let shim_at = ancestors
        .iter()
        .position(|p| argv0_name(p) == shim && p.cmdline.contains(&address))
        .with_context(|| format!("no {shim} above the pause process:\n  {}", tree()))?;
    if runtime == Runtime::Lxcri {
        // shim → lxcri-start (the LXC monitor) → pause (the container's pid 1).
        ensure!(
            ancestors
                .first()
                .is_some_and(|p| argv0_name(p) == "lxcri-start")
                && shim_at == 1,
            "expected {shim} → lxcri-start → pause, got:\n  {}",
            tree()
        );
    }
    let shims = h.ctd.shims();
    ensure!(
        shims.iter().all(|p| argv0_name(p) == shim),
        "other shims running: {shims:?}"
    );
    Ok(())
}

fn shim_binary(runtime: Runtime) -> &'static str {
    match runtime {
        Runtime::Lxcri => "containerd-shim-lxcri-v2",
        Runtime::Runc => "containerd-shim-runc-v2",
    }
}

fn argv0_name(p: &procfs::Process) -> &str {
    let argv0 = p.cmdline.split(' ').next().unwrap_or_default();
    argv0.rsplit('/').next().unwrap_or_default()
}

/// `crictl create` + `start` of a busybox container running `echo hello`
/// in `pod`; waits for its exit, checks the exit code and `crictl logs`.
fn run_echo(h: &mut Harness, pod: &str, pod_name: &str, image: &str) -> Result<()> {
    let config = json!({
        "metadata": {"name": "hello"},
        "image": {"image": image},
        "command": ["/bin/echo", "hello"],
        "log_path": "hello.log",
        "linux": {}
    });
    let path = h.ctd.dir().join(format!("{pod_name}-hello.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
    let pod_config = h.ctd.dir().join(format!("{pod_name}.pod.json"));
    let (path, pod_config) = (path.display().to_string(), pod_config.display().to_string());
    let out = h.crictl_ok(&["create", pod, &path, &pod_config])?;
    let id = out.stdout.trim().to_string();
    h.track(&id);
    let ran = h
        .crictl_ok(&["start", &id])
        .and_then(|_| wait_exited(h, &id))
        .and_then(|code| {
            ensure!(code == 0, "echo exited {code}");
            let logs = h.crictl_ok(&["logs", &id])?;
            ensure!(logs.stdout == "hello\n", "crictl logs: {logs}");
            Ok(())
        });
    let removed = h.crictl_ok(&["rm", &id]).map(drop);
    ran.and(removed)
}

/// Polls `crictl inspect` until the container exited (10 s); its exit code.
fn wait_exited(h: &Harness, id: &str) -> Result<i64> {
    let start = Instant::now();
    loop {
        let out = h.crictl_ok(&["inspect", id])?;
        let inspect: Value = serde_json::from_str(&out.stdout).context("crictl inspect")?;
        let status = &inspect["status"];
        if status["state"] == "CONTAINER_EXITED" {
            return status["exitCode"]
                .as_i64()
                .with_context(|| format!("no exit code: {status}"));
        }
        if start.elapsed() > Duration::from_secs(10) {
            bail!("container {id} not exited after 10 s: {status}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// `crictl stopp` + `rmp`; no pod, no container and no sandbox record left.
fn remove_pod(h: &Harness, pod: &str) -> Result<()> {
    h.crictl_ok(&["stopp", pod])?;
    h.crictl_ok(&["rmp", pod])?;
    let pods = h.crictl_ok(&["pods", "-q"])?;
    ensure!(pods.stdout.trim().is_empty(), "pods left: {pods}");
    let containers = h.crictl_ok(&["ps", "-a", "-q"])?;
    ensure!(
        containers.stdout.trim().is_empty(),
        "containers left: {containers}"
    );
    let records = h.ctr_ok(&["-n", CRI_NAMESPACE, "container", "ls", "-q"])?;
    ensure!(
        records.stdout.trim().is_empty(),
        "containerd containers left: {records}"
    );
    Ok(())
}
