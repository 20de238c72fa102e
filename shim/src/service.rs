//! The shim's life cycle (`start`, `delete`, the server's wait) for containerd.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim::asynchronous::publisher::RemotePublisher;
use containerd_shim::asynchronous::{ExitSignal, Shim};
use containerd_shim::protos::shim::shim::DeleteResponse;
use containerd_shim::util::write_str_to_file;
use containerd_shim::{Config, Flags, StartOpts};
use runtime_core::RuntimeConfig;

use crate::task::TaskService;

/// Where the static init and the start helper are installed.
pub const DEFAULT_LIBEXEC_DIR: &str = "/usr/local/libexec/lxcri";
/// Per-namespace runtime roots live below this (private to containerd's /run).
pub const RUNTIME_ROOT: &str = "/run/containerd/lxcri";

pub struct Service {
    id: String,
    namespace: String,
    exit: Arc<ExitSignal>,
}

/// The runtime settings of this shim: env LXCRI_LIBEXEC_DIR and LXCRI_LOG_LEVEL
/// (liblxc's level) override the defaults.
pub fn runtime_config(namespace: &str) -> RuntimeConfig {
    let libexec = std::env::var("LXCRI_LIBEXEC_DIR").unwrap_or_else(|_| DEFAULT_LIBEXEC_DIR.into());
    let mut cfg = RuntimeConfig::new(libexec, Path::new(RUNTIME_ROOT).join(namespace));
    if let Ok(level) = std::env::var("LXCRI_LOG_LEVEL") {
        cfg.log_level = level;
    }
    cfg
}

/// Remove a shim socket (`unix:///run/containerd/s/...`) that nothing serves.
pub fn remove_socket_if_dead(address: &str) {
    use std::os::unix::fs::FileTypeExt;
    let path = Path::new(address.strip_prefix("unix://").unwrap_or(address));
    let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if is_socket && std::os::unix::net::UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
}

/// The annotations that put containers into one shim process (a pod's), as with
/// the runc shim.
const GROUP_ANNOTATIONS: &[&str] = &[
    "io.kubernetes.cri.sandbox-id",
    "io.containerd.runc.v2.group",
];

/// The shim group of the bundle's container, from its spec's annotations.
fn grouping(config: &Path) -> Option<String> {
    let data = std::fs::read(config).ok()?;
    let spec: serde_json::Value = serde_json::from_slice(&data).ok()?;
    let annotations = spec.get("annotations")?;
    GROUP_ANNOTATIONS
        .iter()
        .find_map(|k| annotations.get(*k)?.as_str())
        .filter(|g| !g.is_empty())
        .map(str::to_string)
}

/// Start the shim server process (a re-exec of this binary with `-socket`) and
/// return its address once it listens.
///
/// Not the shim crate's `spawn`: that one decodes stdin as runc options and fails on
/// what containerd 2.x sends there (its protobuf BootstrapParams). The runtime
/// options are not used yet; stdin is drained and ignored.
async fn spawn_server(opts: &StartOpts, grouping: &str) -> containerd_shim::Result<String> {
    use tokio::io::AsyncReadExt;
    let mut options = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut options).await;
    log::debug!("start: {} bytes of runtime options ignored", options.len());
    let exe = std::env::current_exe()
        .map_err(|e| containerd_shim::Error::Other(format!("current exe: {e}")))?;
    let address = containerd_shim::socket_address(&opts.address, &opts.namespace, grouping);
    let mut cmd = tokio::process::Command::new(exe);
    cmd.stdout(std::process::Stdio::piped())
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .args([
            "-namespace",
            &opts.namespace,
            "-id",
            &opts.id,
            "-address",
            &opts.address,
            "-socket",
            &address,
        ]);
    if opts.debug {
        cmd.arg("-debug");
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| containerd_shim::Error::Other(format!("spawn shim server: {e}")))?;
    if let Some(pid) = child.id() {
        containerd_shim::cgroup::adjust_oom_score(pid)?;
    }
    // The server closes its stdout once it listens.
    if let Some(mut out) = child.stdout.take() {
        let _ = tokio::io::copy(&mut out, &mut tokio::io::stderr()).await;
    }
    Ok(address)
}

#[async_trait]
impl Shim for Service {
    type T = TaskService;

    async fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        Service {
            id: args.id.clone(),
            namespace: args.namespace.clone(),
            exit: Arc::new(ExitSignal::default()),
        }
    }

    async fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        let group = grouping(Path::new("config.json")).unwrap_or_else(|| self.id.clone());
        let address = spawn_server(&opts, &group).await?;
        write_str_to_file("address", &address).await?;
        Ok(address)
    }

    /// Called by containerd when the shim is gone (crashed or killed) or a create
    /// failed: remove whatever the container left, from its persisted state.
    async fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        let cfg = runtime_config(&self.namespace);
        let rundir = cfg.rundir(&self.id);
        let bundle = std::env::current_dir().unwrap_or_default();
        let mut pid = 0;
        if rundir.exists() {
            match runtime_core::ContainerState::load(&rundir) {
                Ok(state) => {
                    pid = state.init_pid as u32;
                    if let Err(e) =
                        tokio::task::spawn_blocking(move || runtime_core::destroy(&state))
                            .await
                            .unwrap_or_else(|e| Err(runtime_core::Error::Timeout(e.to_string())))
                    {
                        log::error!("cleanup of {}: {e}", self.id);
                    }
                }
                Err(e) => {
                    log::warn!(
                        "no state for {}: {e}; removing {}",
                        self.id,
                        rundir.display()
                    );
                    let _ = std::fs::remove_dir_all(&rundir);
                }
            }
        }
        let rootfs: PathBuf = bundle.join("rootfs");
        crate::mount::unmount_rootfs(&rootfs);
        // A shim that died leaves its socket.
        if let Ok(address) = std::fs::read_to_string(bundle.join("address")) {
            remove_socket_if_dead(address.trim());
        }
        let mut ts =
            containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp::new();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        ts.seconds = now.as_secs() as i64;
        ts.nanos = now.subsec_nanos() as i32;
        Ok(DeleteResponse {
            pid,
            exit_status: 137,
            exited_at: Some(ts).into(),
            ..Default::default()
        })
    }

    async fn wait(&mut self) {
        self.exit.wait().await;
    }

    async fn create_task_service(&self, publisher: RemotePublisher) -> Self::T {
        TaskService::new(
            &self.namespace,
            runtime_config(&self.namespace),
            publisher,
            self.exit.clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_from_annotations() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.json");
        std::fs::write(
            &p,
            r#"{"annotations": {"io.kubernetes.cri.sandbox-id": "pod1"}}"#,
        )
        .unwrap();
        assert_eq!(grouping(&p), Some("pod1".into()));
        std::fs::write(
            &p,
            r#"{"annotations": {"io.containerd.runc.v2.group": "g"}}"#,
        )
        .unwrap();
        assert_eq!(grouping(&p), Some("g".into()));
        std::fs::write(&p, r#"{"annotations": {}}"#).unwrap();
        assert_eq!(grouping(&p), None);
        assert_eq!(grouping(&d.path().join("missing.json")), None);
    }
}
