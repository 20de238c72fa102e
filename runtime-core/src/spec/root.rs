//! `root`: the container's root filesystem.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::error::SpecError;
use crate::lxcconf::LxcConfig;

/// Translate `root` (path relative to the bundle or absolute, readonly); returns the
/// absolute rootfs path.
pub fn translate(spec: &Spec, bundle: &Path, lxc: &mut LxcConfig) -> Result<PathBuf, SpecError> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| SpecError::new("root", "is required"))?;
    let path = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    if root.path().as_os_str().is_empty() {
        return Err(SpecError::new("root.path", "is required"));
    }
    let s = path.to_string_lossy().into_owned();
    if !path.is_dir() {
        return Err(SpecError::new(
            "root.path",
            format!("{s} does not exist or is not a directory"),
        ));
    }
    lxc.push("root.path", "lxc.rootfs.path", format!("dir:{s}"))?;
    lxc.push("root.path", "lxc.rootfs.managed", "0")?;
    // root.readonly: lxcri-init remounts / read-only after every mount is set up
    // (as runc does), so that mount points can still be created.
    Ok(path)
}

/// `linux.rootfsPropagation` as mount(2) flags, which lxcri-init applies to /
/// after pivot_root (as runc does). None: liblxc's default (rslave).
pub fn propagation(spec: &Spec) -> Result<Option<u64>, SpecError> {
    let Some(p) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .filter(|p| !p.is_empty())
    else {
        return Ok(None);
    };
    let (shared, slave, private, unbindable, rec) = (
        libc::MS_SHARED,
        libc::MS_SLAVE,
        libc::MS_PRIVATE,
        libc::MS_UNBINDABLE,
        libc::MS_REC,
    );
    let flags = match p {
        "shared" => shared,
        "rshared" => shared | rec,
        "slave" => slave,
        "rslave" => slave | rec,
        "private" => private,
        "rprivate" => private | rec,
        "unbindable" => unbindable,
        "runbindable" => unbindable | rec,
        _ => {
            return Err(SpecError::new(
                "linux.rootfsPropagation",
                format!("{p:?} is not one of shared, slave, private, unbindable or their r-forms"),
            ))
        }
    };
    Ok(Some(flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(root: &str, ro: bool) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": root, "readonly": ro},
        }))
        .unwrap()
    }

    #[test]
    fn relative_root_is_joined_with_bundle() {
        let b = tempfile::tempdir().unwrap();
        std::fs::create_dir(b.path().join("rootfs")).unwrap();
        let mut lxc = LxcConfig::new();
        let p = translate(&spec("rootfs", true), b.path(), &mut lxc).unwrap();
        assert_eq!(p, b.path().join("rootfs"));
        assert_eq!(
            lxc.render(),
            format!(
                "lxc.rootfs.path = dir:{}\nlxc.rootfs.managed = 0\n",
                p.display()
            )
        );
    }

    #[test]
    fn rootfs_propagation_flags() {
        let with = |p: &str| -> Spec {
            serde_json::from_value(serde_json::json!({
                "ociVersion": "1.0.2", "root": {"path": "rootfs"},
                "linux": {"rootfsPropagation": p}
            }))
            .unwrap()
        };
        assert_eq!(propagation(&spec("rootfs", false)).unwrap(), None);
        assert_eq!(
            propagation(&with("rshared")).unwrap(),
            Some(libc::MS_SHARED | libc::MS_REC)
        );
        assert_eq!(propagation(&with("slave")).unwrap(), Some(libc::MS_SLAVE));
        assert_eq!(
            propagation(&with("runbindable")).unwrap(),
            Some(libc::MS_UNBINDABLE | libc::MS_REC)
        );
        let e = propagation(&with("bogus")).unwrap_err();
        assert_eq!(e.field, "linux.rootfsPropagation");
    }

    #[test]
    fn missing_root_is_an_error() {
        let b = tempfile::tempdir().unwrap();
        let e = translate(&spec("nope", false), b.path(), &mut LxcConfig::new()).unwrap_err();
        assert_eq!(e.field, "root.path");
        assert!(e.reason.contains("does not exist"), "{e}");
    }

    #[test]
    fn newline_in_root_is_rejected() {
        let b = tempfile::tempdir().unwrap();
        std::fs::create_dir(b.path().join("a\nb")).unwrap();
        let e = translate(&spec("a\nb", false), b.path(), &mut LxcConfig::new()).unwrap_err();
        assert_eq!(e.field, "root.path");
    }
}
