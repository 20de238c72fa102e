//! `linux.devices`: device nodes the init creates in the container's /dev.
//!
//! liblxc has no config key to mknod arbitrary nodes, so they travel to
//! `lxcri-init` over the init channel; it creates them after pivot_root, still
//! with every capability, as runc does: mknod with the file mode (0666 when the
//! spec gives none), chown to uid/gid, an existing node left as it is. The device
//! cgroup is `linux.resources.devices` (see `resources`): like runc, creating a
//! node does not allow its use.
//!
//! With a user namespace (new or joined) mknod is not allowed: like runc, the
//! host's node at the same path is bind-mounted onto the path in the rootfs
//! instead (`lxc.mount.entry … none bind,create=file`, which liblxc mounts
//! before pivot_root, where the host's /dev is still reachable). The host node
//! must exist with the spec's type and numbers; its mode and owner are the
//! host's (a bind mount cannot change them), as with runc.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path};

use lxcri_libexec::proto::{DeviceKind, DeviceNode};
use oci_spec::runtime::{LinuxDeviceType, LinuxNamespaceType, Spec};

use crate::error::SpecError;
use crate::lxcconf::LxcConfig;
use crate::spec::mounts::escape;

fn device_path(field: &str, p: &Path) -> Result<String, SpecError> {
    let s = p.to_string_lossy().into_owned();
    if s.contains('\0') {
        return Err(SpecError::new(field, "contains a NUL byte"));
    }
    if !p.is_absolute() {
        return Err(SpecError::new(field, format!("{s:?} is not absolute")));
    }
    let mut depth = 0;
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(_) => depth += 1,
            _ => {
                return Err(SpecError::new(
                    field,
                    format!("{s:?} must not contain '..'"),
                ))
            }
        }
    }
    if depth == 0 {
        return Err(SpecError::new(field, "cannot create a device at /"));
    }
    Ok(s)
}

/// Translate `linux.devices`: the nodes the init creates, or (with a user
/// namespace) bind mounts of the host's nodes into `lxc`.
pub fn translate(spec: &Spec, lxc: &mut LxcConfig) -> Result<Vec<DeviceNode>, SpecError> {
    let nodes = nodes(spec)?;
    let user_ns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|n| n.iter().any(|n| n.typ() == LinuxNamespaceType::User));
    if !user_ns {
        return Ok(nodes);
    }
    for (i, n) in nodes.iter().enumerate() {
        let field = format!("linux.devices[{i}].path");
        check_host_node(&field, n)?;
        let src = escape(&field, &n.path)?;
        let dest = escape(&field, n.path.trim_start_matches('/'))?;
        lxc.push(
            &field,
            "lxc.mount.entry",
            format!("{src} {dest} none bind,create=file 0 0"),
        )?;
    }
    Ok(Vec::new())
}

/// The host's node at the device's path, to be bind-mounted: it must be the
/// spec's device.
fn check_host_node(field: &str, n: &DeviceNode) -> Result<(), SpecError> {
    let fail = |why: String| {
        SpecError::new(
            field,
            format!(
                "{why}: in a user namespace the host's node is bind-mounted (mknod is not allowed there)"
            ),
        )
    };
    let m = std::fs::metadata(&n.path)
        .map_err(|e| fail(format!("no device node {} on the host ({e})", n.path)))?;
    let ft = m.file_type();
    let kind_ok = match n.kind {
        DeviceKind::Char => ft.is_char_device(),
        DeviceKind::Block => ft.is_block_device(),
        DeviceKind::Fifo => ft.is_fifo(),
    };
    let (major, minor) = (libc::major(m.rdev()), libc::minor(m.rdev()));
    let numbers_ok =
        n.kind == DeviceKind::Fifo || (u64::from(major), u64::from(minor)) == (n.major, n.minor);
    if !kind_ok || !numbers_ok {
        return Err(fail(format!(
            "the host's {} is not a {:?} device {}:{}",
            n.path, n.kind, n.major, n.minor
        )));
    }
    Ok(())
}

fn nodes(spec: &Spec) -> Result<Vec<DeviceNode>, SpecError> {
    let Some(devs) = spec.linux().as_ref().and_then(|l| l.devices().as_ref()) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<DeviceNode> = Vec::new();
    for (i, d) in devs.iter().enumerate() {
        let field = format!("linux.devices[{i}]");
        let path = device_path(&format!("{field}.path"), d.path())?;
        if out.iter().any(|o| o.path == path) {
            return Err(SpecError::new(
                format!("{field}.path"),
                format!("duplicate device {path}"),
            ));
        }
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
            LinuxDeviceType::B => DeviceKind::Block,
            LinuxDeviceType::P => DeviceKind::Fifo,
            LinuxDeviceType::A => {
                return Err(SpecError::new(
                    format!("{field}.type"),
                    "\"a\" is not a device node type (c, b, u or p)",
                ))
            }
        };
        let number = |name: &str, n: i64| {
            u64::try_from(n)
                .map_err(|_| SpecError::new(format!("{field}.{name}"), format!("{n} is negative")))
        };
        let (major, minor) = match kind {
            // A fifo has no device number (runc ignores it too).
            DeviceKind::Fifo => (0, 0),
            _ => (number("major", d.major())?, number("minor", d.minor())?),
        };
        // The permission bits only; the type comes from `type` (as runc).
        let mode = d.file_mode().unwrap_or(0o666) & 0o7777;
        out.push(DeviceNode {
            path,
            kind,
            major,
            minor,
            mode,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(devices: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2", "root": {"path": "rootfs"}, "linux": {"devices": devices}
        }))
        .unwrap()
    }

    #[test]
    fn golden_devices() {
        let s = spec(serde_json::json!([
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 8630, "uid": 0, "gid": 0},
            {"path": "/dev/sda9", "type": "b", "major": 8, "minor": 9, "uid": 1000, "gid": 1001},
            {"path": "/dev/unbuf", "type": "u", "major": 1, "minor": 3},
            {"path": "/dev/fifo", "type": "p"}
        ]));
        let got = translate(&s, &mut LxcConfig::new()).unwrap();
        let json = serde_json::to_value(&got).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                // 8630 = 0o20666: the type bits are dropped.
                {"path": "/dev/fuse", "kind": "char", "major": 10, "minor": 229, "mode": 0o666, "uid": 0, "gid": 0},
                {"path": "/dev/sda9", "kind": "block", "major": 8, "minor": 9, "mode": 0o666, "uid": 1000, "gid": 1001},
                {"path": "/dev/unbuf", "kind": "char", "major": 1, "minor": 3, "mode": 0o666, "uid": 0, "gid": 0},
                {"path": "/dev/fifo", "kind": "fifo", "major": 0, "minor": 0, "mode": 0o666, "uid": 0, "gid": 0}
            ])
        );
    }

    /// With a user namespace: bind mounts of the host's nodes, none for the init;
    /// a node the host lacks, or with other numbers, is an error.
    #[test]
    fn user_namespace_binds_host_nodes() {
        let with_userns = |devices: serde_json::Value| -> Spec {
            serde_json::from_value(serde_json::json!({
                "ociVersion": "1.0.2", "root": {"path": "rootfs"}, "linux": {
                    "namespaces": [{"type": "mount"}, {"type": "user"}], "devices": devices}
            }))
            .unwrap()
        };
        let s = with_userns(serde_json::json!([
            {"path": "/dev/null", "type": "c", "major": 1, "minor": 3},
            {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o600}
        ]));
        let mut lxc = LxcConfig::new();
        assert!(translate(&s, &mut lxc).unwrap().is_empty());
        assert_eq!(
            lxc.render(),
            "lxc.mount.entry = /dev/null dev/null none bind,create=file 0 0\n\
             lxc.mount.entry = /dev/zero dev/zero none bind,create=file 0 0\n"
        );
        for bad in [
            serde_json::json!([{"path": "/dev/lxcri-nope", "type": "c", "major": 1, "minor": 3}]),
            serde_json::json!([{"path": "/dev/null", "type": "c", "major": 1, "minor": 5}]),
            serde_json::json!([{"path": "/dev/null", "type": "b", "major": 1, "minor": 3}]),
        ] {
            let e = translate(&with_userns(bad), &mut LxcConfig::new()).unwrap_err();
            assert_eq!(e.field, "linux.devices[0].path", "{e}");
        }
    }

    #[test]
    fn bad_devices_name_the_field() {
        let cases = [
            (
                serde_json::json!([{"path": "dev/x", "type": "c", "major": 1, "minor": 3}]),
                "linux.devices[0].path",
            ),
            (
                serde_json::json!([{"path": "/dev/../etc/x", "type": "c", "major": 1, "minor": 3}]),
                "linux.devices[0].path",
            ),
            (
                serde_json::json!([{"path": "/", "type": "c", "major": 1, "minor": 3}]),
                "linux.devices[0].path",
            ),
            (
                serde_json::json!([{"path": "/dev/x", "type": "a"}]),
                "linux.devices[0].type",
            ),
            (
                serde_json::json!([{"path": "/dev/x", "type": "c", "major": -1, "minor": 3}]),
                "linux.devices[0].major",
            ),
            (
                serde_json::json!([{"path": "/dev/x", "type": "c", "major": 1, "minor": 3},
                                   {"path": "/dev/x", "type": "c", "major": 1, "minor": 5}]),
                "linux.devices[1].path",
            ),
        ];
        for (d, field) in cases {
            let e = translate(&spec(d), &mut LxcConfig::new()).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }
}
