//! What the CLI keeps beside runtime-core's `state.json` in the runtime dir, and
//! how a container's status is computed from it and from the live processes.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use runtime_core::sys::is_alive;
use runtime_core::{cgroup, ContainerState};
use serde::{Deserialize, Serialize};

pub const META_FILE: &str = "lxcri-cli.json";

/// CLI metadata of a container (`<rundir>/lxcri-cli.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Meta {
    /// RFC 3339 creation time.
    pub created: String,
    pub annotations: HashMap<String, String>,
    /// `start` has released the init from the barrier.
    pub started: bool,
    /// The spec's process: the defaults of `exec` without `--process`.
    pub process: Option<oci_spec::runtime::Process>,
}

impl Meta {
    pub fn load(rundir: &Path) -> Result<Option<Meta>> {
        let p = rundir.join(META_FILE);
        match fs::read(&p) {
            Ok(data) => Ok(Some(
                serde_json::from_slice(&data).with_context(|| format!("parse {}", p.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("read {}", p.display())),
        }
    }

    pub fn save(&self, rundir: &Path) -> Result<()> {
        let p = rundir.join(META_FILE);
        let tmp = rundir.join(format!(".{META_FILE}.tmp"));
        let data = serde_json::to_vec_pretty(self).context("encode metadata")?;
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&data))
            .with_context(|| format!("write {}", tmp.display()))?;
        fs::rename(&tmp, &p).with_context(|| format!("rename {}", p.display()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// A runtime dir without a complete state: a create in progress or one that
    /// crashed. Only `delete --force` (and `state`) apply.
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// A container as found under `--root`.
#[derive(Debug)]
pub struct Found {
    pub id: String,
    pub rundir: PathBuf,
    pub state: Option<ContainerState>,
    pub meta: Meta,
    pub status: Status,
}

impl Found {
    /// The init's host pid while it lives, else 0.
    pub fn pid(&self) -> i32 {
        match (&self.state, self.status) {
            (Some(s), Status::Created | Status::Running | Status::Paused) => s.init_pid,
            _ => 0,
        }
    }

    /// runc's state JSON (OCI state plus `rootfs`, `created`, `owner`).
    pub fn state_json(&self) -> serde_json::Value {
        let bundle = self
            .state
            .as_ref()
            .map(|s| s.bundle.display().to_string())
            .unwrap_or_default();
        let rootfs = self
            .state
            .as_ref()
            .map(|s| s.rootfs.display().to_string())
            .unwrap_or_default();
        let mut v = serde_json::json!({
            "ociVersion": crate::SPEC_VERSION,
            "id": self.id,
            "pid": self.pid(),
            "status": self.status.as_str(),
            "bundle": bundle,
            "rootfs": rootfs,
            "created": self.meta.created,
            "owner": "",
        });
        if !self.meta.annotations.is_empty() {
            v["annotations"] = serde_json::json!(self.meta.annotations);
        }
        v
    }
}

/// Whether the container's cgroup is frozen.
fn frozen(s: &ContainerState) -> bool {
    if let Some(p) = cgroup::file(&s.hierarchies, &s.cgroup, "freezer.state") {
        return fs::read_to_string(p).is_ok_and(|t| t.trim() == "FROZEN");
    }
    if let Some(p) = cgroup::file(&s.hierarchies, &s.cgroup, "cgroup.freeze") {
        return fs::read_to_string(p).is_ok_and(|t| t.trim() == "1");
    }
    false
}

/// Look up container `id`; `Ok(None)` when it does not exist.
pub fn find(root: &Path, id: &str) -> Result<Option<Found>> {
    let rundir = root.join(id);
    if !rundir.is_dir() {
        return Ok(None);
    }
    let state = match ContainerState::load(&rundir) {
        Ok(s) => Some(s),
        Err(runtime_core::Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            None
        }
        Err(e) => return Err(e).context("load container state"),
    };
    let meta = Meta::load(&rundir)?;
    let status = match (&state, &meta) {
        (None, _) | (Some(_), None) => Status::Creating,
        (Some(s), Some(m)) => {
            if !is_alive(s.init_pid, s.init_start_time) {
                Status::Stopped
            } else if !m.started {
                Status::Created
            } else if frozen(s) {
                Status::Paused
            } else {
                Status::Running
            }
        }
    };
    Ok(Some(Found {
        id: id.to_string(),
        rundir,
        state,
        meta: meta.unwrap_or_default(),
        status,
    }))
}

/// The ids under `root` (runtime dirs; hidden entries skipped), sorted.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let rd = match fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(e).with_context(|| format!("read {}", root.display())),
    };
    for e in rd {
        let e = e.with_context(|| format!("read {}", root.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        ids.push(name);
    }
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_from_the_runtime_dir() {
        let d = tempfile::tempdir().unwrap();
        assert!(find(d.path(), "nope").unwrap().is_none());
        std::fs::create_dir(d.path().join("half")).unwrap();
        let f = find(d.path(), "half").unwrap().unwrap();
        assert_eq!(f.status, Status::Creating);
        assert_eq!(f.pid(), 0);
        assert_eq!(f.state_json()["status"], "creating");
        std::fs::create_dir(d.path().join(".hidden")).unwrap();
        assert_eq!(list_ids(d.path()).unwrap(), vec!["half".to_string()]);
    }

    #[test]
    fn meta_roundtrip() {
        let d = tempfile::tempdir().unwrap();
        assert!(Meta::load(d.path()).unwrap().is_none());
        let m = Meta {
            created: "t".into(),
            started: true,
            ..Default::default()
        };
        m.save(d.path()).unwrap();
        let back = Meta::load(d.path()).unwrap().unwrap();
        assert!(back.started);
        assert_eq!(back.created, "t");
    }
}
