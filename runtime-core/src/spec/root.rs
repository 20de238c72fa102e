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
    if let Some(p) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_ref())
    {
        if !p.is_empty() {
            return Err(SpecError::unsupported("linux.rootfsPropagation"));
        }
    }
    Ok(path)
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
