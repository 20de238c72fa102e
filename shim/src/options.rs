//! The runtime options containerd and CRI send with Create (the runc shim's
//! types, so that a runtime entry written for runc works for lxcri): what applies
//! to lxcri is honoured, the rest is logged at debug level and ignored.

use std::path::{Path, PathBuf};

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::shim::oci::Options as RuncOptions;

use crate::error::{Error, Result};

/// What lxcri honours of the options.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// `SystemdCgroup`: the systemd cgroup driver (cgroupsPath is in systemd's
    /// `slice:prefix:name` form, the cgroup a transient unit).
    pub systemd_cgroup: bool,
    /// `ShimCgroup`: the cgroup the shim moves itself into.
    pub shim_cgroup: Option<PathBuf>,
    /// `NoNewKeyring`: no new session keyring for the container.
    pub no_new_keyring: bool,
    /// `IoUid`/`IoGid`: owner of the container's stdio pipes and fifos.
    pub io_owner: crate::io::IoOwner,
}

/// Decode `CreateTaskRequest.options`.
pub fn parse(any: Option<&Any>) -> Result<RuntimeOptions> {
    let Some(any) = any.filter(|a| !a.type_url.is_empty()) else {
        return Ok(RuntimeOptions::default());
    };
    let name = any.type_url.rsplit('/').next().unwrap_or("");
    match name {
        // runc v2 shim options (containerd 1.x names them "containerd.runc.v1.Options",
        // older configs "io.containerd.runc.v1.Options").
        "containerd.runc.v1.Options" | "io.containerd.runc.v1.Options" => {
            let o = RuncOptions::parse_from_bytes(&any.value)
                .map_err(|e| Error::InvalidArgument(format!("runtime options {name}: {e}")))?;
            let ignored = [
                ("NoPivotRoot", o.no_pivot_root),
                ("BinaryName", !o.binary_name.is_empty()),
                ("Root", !o.root.is_empty()),
                ("CriuImagePath", !o.criu_image_path.is_empty()),
                ("CriuWorkPath", !o.criu_work_path.is_empty()),
                ("TaskApiAddress", !o.task_api_address.is_empty()),
            ];
            for (field, set) in ignored {
                if set {
                    // NoPivotRoot: liblxc always pivots; the others name runc's
                    // binary, state and criu.
                    log::debug!("runtime option {field} does not apply to lxcri, ignored");
                }
            }
            Ok(RuntimeOptions {
                systemd_cgroup: o.systemd_cgroup,
                shim_cgroup: (!o.shim_cgroup.is_empty()).then(|| PathBuf::from(&o.shim_cgroup)),
                no_new_keyring: o.no_new_keyring,
                io_owner: (o.io_uid != 0 || o.io_gid != 0).then_some((o.io_uid, o.io_gid)),
            })
        }
        other => {
            // CRI's runtimeoptions.v1.Options (a TOML config path) and anything else.
            log::debug!("runtime options of type {other:?} ignored");
            Ok(RuntimeOptions::default())
        }
    }
}

/// SystemdCgroup needs systemd as the host's init, as with runc.
pub fn check_systemd(o: &RuntimeOptions, run_systemd: &Path) -> Result<()> {
    if o.systemd_cgroup && !run_systemd.join("system").is_dir() {
        return Err(Error::FailedPrecondition(
            "SystemdCgroup: systemd is not running on this host, cannot use the systemd cgroup driver"
                .into(),
        ));
    }
    Ok(())
}

/// Move this process (the shim) into `cgroup` in every hierarchy that has it.
pub fn enter_shim_cgroup(hierarchies: &[PathBuf], cgroup: &Path) -> Result<()> {
    let rel = cgroup.strip_prefix("/").unwrap_or(cgroup);
    let mut entered = false;
    for h in hierarchies {
        let procs = h.join(rel).join("cgroup.procs");
        if procs.exists() {
            std::fs::write(&procs, std::process::id().to_string())
                .map_err(|e| Error::io("write", procs.display(), e))?;
            entered = true;
        }
    }
    if !entered {
        return Err(Error::InvalidArgument(format!(
            "ShimCgroup {}: no such cgroup",
            cgroup.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(type_url: &str, o: &RuncOptions) -> Any {
        Any {
            type_url: type_url.into(),
            value: o.write_to_bytes().unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn runc_options_are_read() {
        let o = RuncOptions {
            systemd_cgroup: true,
            shim_cgroup: "/shims".into(),
            no_new_keyring: true,
            io_uid: 1000,
            binary_name: "runc".into(),
            ..Default::default()
        };
        for url in [
            "containerd.runc.v1.Options",
            "io.containerd.runc.v1.Options",
            "type.googleapis.com/containerd.runc.v1.Options",
        ] {
            let got = parse(Some(&any(url, &o))).unwrap();
            assert_eq!(
                got,
                RuntimeOptions {
                    systemd_cgroup: true,
                    shim_cgroup: Some("/shims".into()),
                    no_new_keyring: true,
                    io_owner: Some((1000, 0)),
                }
            );
        }
    }

    #[test]
    fn other_options_are_ignored_not_refused() {
        let a = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: vec![10, 3, 97, 98, 99],
            ..Default::default()
        };
        assert_eq!(parse(Some(&a)).unwrap(), RuntimeOptions::default());
        assert_eq!(parse(None).unwrap(), RuntimeOptions::default());
    }

    #[test]
    fn corrupt_runc_options_are_an_error() {
        let a = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: vec![0xff, 0xff, 0xff],
            ..Default::default()
        };
        assert!(parse(Some(&a)).is_err());
    }

    #[test]
    fn systemd_cgroup_needs_systemd() {
        let d = tempfile::tempdir().unwrap();
        let o = RuntimeOptions {
            systemd_cgroup: true,
            ..Default::default()
        };
        assert!(matches!(
            check_systemd(&o, d.path()),
            Err(Error::FailedPrecondition(_))
        ));
        std::fs::create_dir(d.path().join("system")).unwrap();
        check_systemd(&o, d.path()).unwrap();
        check_systemd(&RuntimeOptions::default(), Path::new("/nonexistent")).unwrap();
    }

    #[test]
    fn shim_cgroup_must_exist() {
        let d = tempfile::tempdir().unwrap();
        let h = vec![d.path().to_path_buf()];
        assert!(enter_shim_cgroup(&h, Path::new("/nope")).is_err());
    }
}
