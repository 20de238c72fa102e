//! `mounts`: one `lxc.mount.entry` per mount, in spec order.
//!
//! Destinations are made relative to the rootfs (liblxc then resolves them inside
//! it). Fields are fstab-escaped (`\040` for a space): liblxc reads entries with
//! getmntent.

use std::path::{Component, Path};

use oci_spec::runtime::Spec;

use crate::error::SpecError;
use crate::lxcconf::{check_value, LxcConfig};

/// Escape one fstab field.
fn escape(field: &str, v: &str) -> Result<String, SpecError> {
    check_value(field, v)?;
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn relative_destination(field: &str, dest: &Path) -> Result<String, SpecError> {
    if !dest.is_absolute() {
        return Err(SpecError::new(
            field,
            format!("{} is not absolute", dest.display()),
        ));
    }
    let mut parts = Vec::new();
    for c in dest.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
            _ => {
                return Err(SpecError::new(
                    field,
                    format!("{} must not contain '..'", dest.display()),
                ))
            }
        }
    }
    if parts.is_empty() {
        return Err(SpecError::new(field, "cannot mount over the root"));
    }
    Ok(parts.join("/"))
}

/// Translate `mounts`.
pub fn translate(spec: &Spec, bundle: &Path, lxc: &mut LxcConfig) -> Result<(), SpecError> {
    let mut auto: Vec<&str> = Vec::new();
    let mut pty_max: Option<u32> = None;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let field = format!("mounts[{i}]");
        let typ = m.typ().clone().unwrap_or_default();
        let options = m.options().clone().unwrap_or_default();
        if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
            return Err(SpecError::new(
                format!("{field}.uidMappings"),
                "id-mapped mounts are not supported yet",
            ));
        }
        let dest = relative_destination(&format!("{field}.destination"), m.destination())?;
        if typ == "cgroup" || typ == "cgroup2" {
            if dest != "sys/fs/cgroup" {
                return Err(SpecError::new(
                    format!("{field}.destination"),
                    "cgroup mounts are supported at /sys/fs/cgroup only",
                ));
            }
            // liblxc mounts the container's own cgroups (every v1 hierarchy, or
            // cgroup2), also inside a cgroup namespace with :force.
            let ro = options.iter().any(|o| o == "ro");
            auto.push(if ro {
                "cgroup:ro:force"
            } else {
                "cgroup:rw:force"
            });
            continue;
        }
        if typ == "devpts" && dest == "dev/pts" {
            // liblxc drops a devpts mount entry and mounts its own instance when
            // lxc.pty.max > 0, with the standard options (newinstance, ptmxmode=0666,
            // mode=0620, gid=5): anything else cannot be honoured.
            pty_max = Some(devpts_max(&field, &options)?);
            continue;
        }
        let is_bind = typ == "bind" || options.iter().any(|o| o == "bind" || o == "rbind");
        let mut opts: Vec<String> = Vec::new();
        for (j, o) in options.iter().enumerate() {
            if o.contains(',') {
                return Err(SpecError::new(
                    format!("{field}.options[{j}]"),
                    format!("{o:?} contains a comma"),
                ));
            }
            check_value(&format!("{field}.options[{j}]"), o)?;
            opts.push(o.clone());
        }
        let source = m
            .source()
            .as_ref()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let create;
        let (src, fstype) = if is_bind {
            if !opts.iter().any(|o| o == "bind" || o == "rbind") {
                opts.insert(0, "bind".into());
            }
            let sp = if Path::new(&source).is_absolute() {
                Path::new(&source).to_path_buf()
            } else {
                bundle.join(&source)
            };
            let md = std::fs::metadata(&sp).map_err(|e| {
                SpecError::new(
                    format!("{field}.source"),
                    format!("bind source {}: {e}", sp.display()),
                )
            })?;
            create = if md.is_dir() {
                "create=dir"
            } else {
                "create=file"
            };
            (sp.to_string_lossy().into_owned(), "none".to_string())
        } else {
            create = "create=dir";
            let src = if source.is_empty() {
                typ.clone()
            } else {
                source
            };
            if typ.is_empty() {
                return Err(SpecError::new(format!("{field}.type"), "is required"));
            }
            (src, typ.clone())
        };
        opts.push(create.into());
        let entry = format!(
            "{} {} {} {} 0 0",
            escape(&format!("{field}.source"), &src)?,
            escape(&format!("{field}.destination"), &dest)?,
            escape(&format!("{field}.type"), &fstype)?,
            escape(&format!("{field}.options"), &opts.join(","))?,
        );
        lxc.push(&field, "lxc.mount.entry", entry)?;
    }
    if !auto.is_empty() {
        lxc.push("mounts", "lxc.mount.auto", auto.join(" "))?;
    }
    lxc.push("mounts", "lxc.pty.max", pty_max.unwrap_or(0).to_string())?;
    Ok(())
}

/// The number of ptys of the /dev/pts mount (`max=`, default 1024), after checking
/// that its options are the ones liblxc's own devpts instance has.
fn devpts_max(field: &str, options: &[String]) -> Result<u32, SpecError> {
    let mut max = 1024;
    for (j, o) in options.iter().enumerate() {
        match o.as_str() {
            "nosuid" | "noexec" | "newinstance" | "ptmxmode=0666" | "ptmxmode=666"
            | "mode=0620" | "mode=620" | "gid=5" | "rw" => {}
            o if o.starts_with("max=") => {
                max = o[4..].parse().map_err(|_| {
                    SpecError::new(format!("{field}.options[{j}]"), format!("invalid {o:?}"))
                })?;
            }
            o => {
                return Err(SpecError::new(
                    format!("{field}.options[{j}]"),
                    format!("devpts option {o:?} is not supported"),
                ))
            }
        }
    }
    Ok(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mounts: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2", "root": {"path": "rootfs"}, "mounts": mounts
        }))
        .unwrap()
    }

    #[test]
    fn containerd_default_mounts() {
        let b = tempfile::tempdir().unwrap();
        let s = spec(serde_json::json!([
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]}
        ]));
        let mut lxc = LxcConfig::new();
        translate(&s, b.path(), &mut lxc).unwrap();
        assert_eq!(
            lxc.render(),
            "\
lxc.mount.entry = proc proc proc nosuid,noexec,nodev,create=dir 0 0
lxc.mount.entry = tmpfs dev tmpfs nosuid,strictatime,mode=755,size=65536k,create=dir 0 0
lxc.mount.entry = shm dev/shm tmpfs nosuid,noexec,nodev,mode=1777,size=65536k,create=dir 0 0
lxc.mount.entry = mqueue dev/mqueue mqueue nosuid,noexec,nodev,create=dir 0 0
lxc.mount.entry = sysfs sys sysfs nosuid,noexec,nodev,ro,create=dir 0 0
lxc.mount.auto = cgroup:ro:force
lxc.pty.max = 1024
"
        );
    }

    #[test]
    fn bind_mounts_escape_and_create() {
        let b = tempfile::tempdir().unwrap();
        std::fs::create_dir(b.path().join("my dir")).unwrap();
        std::fs::write(b.path().join("file"), "x").unwrap();
        let s = spec(serde_json::json!([
            {"destination": "/data dir", "type": "bind", "source": b.path().join("my dir"), "options": ["ro"]},
            {"destination": "/etc/x", "type": "none", "source": "file", "options": ["rbind", "rprivate"]}
        ]));
        let mut lxc = LxcConfig::new();
        translate(&s, b.path(), &mut lxc).unwrap();
        let entries: Vec<&str> = lxc.get_all("lxc.mount.entry").collect();
        assert_eq!(lxc.get_all("lxc.pty.max").collect::<Vec<_>>(), vec!["0"]);
        let d = b.path().display();
        assert_eq!(
            entries,
            vec![
                format!("{d}/my\\040dir data\\040dir none bind,ro,create=dir 0 0"),
                format!("{d}/file etc/x none rbind,rprivate,create=file 0 0"),
            ]
        );
    }

    #[test]
    fn bad_mounts_name_the_field() {
        let b = tempfile::tempdir().unwrap();
        let cases = [
            (
                serde_json::json!([{"destination": "rel", "type": "tmpfs"}]),
                "mounts[0].destination",
            ),
            (
                serde_json::json!([{"destination": "/a/../../b", "type": "tmpfs"}]),
                "mounts[0].destination",
            ),
            (
                serde_json::json!([{"destination": "/a", "type": "bind", "source": "/nonexistent-x"}]),
                "mounts[0].source",
            ),
            (
                serde_json::json!([{"destination": "/a", "type": "tmpfs", "options": ["size=1\nlxc.x=1"]}]),
                "mounts[0].options[0]",
            ),
            (
                serde_json::json!([{"destination": "/a\nb", "type": "tmpfs"}]),
                "mounts[0].destination",
            ),
            (
                serde_json::json!([{"destination": "/a", "type": "tmpfs", "source": "x\0"}]),
                "mounts[0].source",
            ),
            (
                serde_json::json!([{"destination": "/dev/pts", "type": "devpts", "options": ["mode=0600"]}]),
                "mounts[0].options[0]",
            ),
        ];
        for (m, field) in cases {
            let e = translate(&spec(m), b.path(), &mut LxcConfig::new()).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }
}
