//! Host-dependent fields: `process.apparmorProfile`, `process.selinuxLabel`,
//! `linux.mountLabel`, `linux.intelRdt`, and `linux.personality`.
//!
//! The LSM fields need the LSM on the host. Without it, asking for a profile or
//! a label other than "unconfined"/empty is a clear error (runc fails too).
//! AppArmor: liblxc is told `lxc.apparmor.profile = unconfined` (else it would
//! confine our init with its default profile before the init's set-up), and the
//! process enters the spec's profile at its exec, as runc does. SELinux labels
//! are not supported yet.

use oci_spec::runtime::{LinuxPersonalityDomain, Spec};

use crate::error::SpecError;
use crate::lxcconf::LxcConfig;

/// What the host offers, for the fields that depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostFeatures {
    pub apparmor: bool,
    pub selinux: bool,
    /// resctrl (Intel RDT) is mounted at /sys/fs/resctrl.
    pub resctrl: bool,
}

impl HostFeatures {
    pub fn detect() -> HostFeatures {
        let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.trim() == "Y");
        let selinux = std::path::Path::new("/sys/fs/selinux/enforce").exists();
        let resctrl = std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| {
            m.lines().any(|l| {
                l.split(" - ")
                    .nth(1)
                    .is_some_and(|t| t.starts_with("resctrl "))
            })
        });
        HostFeatures {
            apparmor,
            selinux,
            resctrl,
        }
    }
}

/// `process.apparmorProfile` (also of an exec'd process): the profile the
/// process enters at its exec, as runc applies it (None: stay as is).
pub fn check_apparmor(
    field: &str,
    profile: Option<&str>,
    host: HostFeatures,
) -> Result<Option<String>, SpecError> {
    match profile {
        None | Some("") => Ok(None),
        Some("unconfined") if !host.apparmor => Ok(None),
        Some(p) if !host.apparmor => Err(SpecError::new(
            field,
            format!("AppArmor is not enabled on this host: cannot apply profile {p:?}"),
        )),
        Some(p) => {
            if p.contains(['\n', '\0']) {
                return Err(SpecError::new(field, "must not contain newline or NUL"));
            }
            Ok(Some(p.to_string()))
        }
    }
}

/// `process.selinuxLabel` and `linux.mountLabel`.
pub fn check_selinux(
    field: &str,
    label: Option<&str>,
    host: HostFeatures,
) -> Result<(), SpecError> {
    match label {
        None | Some("") => Ok(()),
        Some(l) if !host.selinux => Err(SpecError::new(
            field,
            format!("SELinux is not enabled on this host: cannot apply label {l:?}"),
        )),
        Some(_) => Err(SpecError::new(
            field,
            "SELinux labels are not supported by lxcri yet",
        )),
    }
}

/// The host-dependent checks and `linux.personality` (`lxc.arch`, which liblxc
/// applies with personality(2) before the init; exec keeps it).
pub fn translate(spec: &Spec, host: HostFeatures, lxc: &mut LxcConfig) -> Result<(), SpecError> {
    if let Some(p) = spec.process().as_ref() {
        check_apparmor(
            "process.apparmorProfile",
            p.apparmor_profile().as_deref(),
            host,
        )?;
        check_selinux("process.selinuxLabel", p.selinux_label().as_deref(), host)?;
    }
    if host.apparmor {
        // liblxc would confine the init with its own default profile before
        // the init's set-up; the init enters the spec's profile at the exec.
        lxc.push(
            "process.apparmorProfile",
            "lxc.apparmor.profile",
            "unconfined",
        )?;
    }
    let Some(l) = spec.linux().as_ref() else {
        return Ok(());
    };
    check_selinux("linux.mountLabel", l.mount_label().as_deref(), host)?;
    if l.intel_rdt().is_some() {
        return Err(if host.resctrl {
            SpecError::new(
                "linux.intelRdt",
                "Intel RDT (resctrl) is not supported by lxcri yet",
            )
        } else {
            SpecError::new(
                "linux.intelRdt",
                "Intel RDT is not available on this host (no resctrl mounted at /sys/fs/resctrl)",
            )
        });
    }
    if let Some(p) = l.personality() {
        if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
            return Err(SpecError::new(
                "linux.personality.flags",
                "personality flags are not supported (runc refuses them too)",
            ));
        }
        let arch = match p.domain() {
            LinuxPersonalityDomain::PerLinux => "linux64",
            LinuxPersonalityDomain::PerLinux32 => "linux32",
        };
        lxc.push("linux.personality.domain", "lxc.arch", arch)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> Spec {
        let mut base = serde_json::json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}});
        base.as_object_mut()
            .unwrap()
            .extend(v.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn process(extra: serde_json::Value) -> serde_json::Value {
        let mut p = serde_json::json!({"args": ["a"], "cwd": "/", "user": {"uid": 0, "gid": 0}});
        p.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::json!({ "process": p })
    }

    #[test]
    fn golden_personality() {
        let mut lxc = LxcConfig::new();
        let s = spec(serde_json::json!({"linux": {"personality": {"domain": "LINUX32"}}}));
        translate(&s, HostFeatures::default(), &mut lxc).unwrap();
        let s = spec(serde_json::json!({"linux": {"personality": {"domain": "LINUX"}}}));
        translate(&s, HostFeatures::default(), &mut lxc).unwrap();
        assert_eq!(lxc.render(), "lxc.arch = linux32\nlxc.arch = linux64\n");
        let s = spec(
            serde_json::json!({"linux": {"personality": {"domain": "LINUX", "flags": ["x"]}}}),
        );
        let e = translate(&s, HostFeatures::default(), &mut lxc).unwrap_err();
        assert_eq!(e.field, "linux.personality.flags");
    }

    #[test]
    fn lsm_fields_need_the_lsm_on_the_host() {
        let none = HostFeatures::default();
        let all = HostFeatures {
            apparmor: true,
            selinux: true,
            resctrl: true,
        };
        let mut lxc = LxcConfig::new();
        for ok in [
            process(serde_json::json!({"apparmorProfile": "unconfined"})),
            process(serde_json::json!({"apparmorProfile": ""})),
            process(serde_json::json!({"selinuxLabel": ""})),
        ] {
            translate(&spec(ok), none, &mut lxc).unwrap();
        }
        assert!(lxc.items().is_empty());
        let cases = [
            (
                process(serde_json::json!({"selinuxLabel": "system_u:system_r:container_t:s0"})),
                "process.selinuxLabel",
                "not enabled",
            ),
            (
                serde_json::json!({"linux": {"mountLabel": "system_u:object_r:container_file_t:s0"}}),
                "linux.mountLabel",
                "not enabled",
            ),
            (
                serde_json::json!({"linux": {"intelRdt": {"closID": "x"}}}),
                "linux.intelRdt",
                "not available",
            ),
        ];
        for (s, field, why) in cases {
            let e = translate(&spec(s.clone()), none, &mut lxc).unwrap_err();
            assert_eq!(e.field, field);
            assert!(e.reason.contains(why), "{e}");
            let e = translate(&spec(s), all, &mut lxc).unwrap_err();
            assert_eq!(e.field, field);
            assert!(e.reason.contains("not supported"), "{e}");
        }
    }

    /// AppArmor: without it on the host only "unconfined"/empty pass; with it,
    /// liblxc leaves the init unconfined and the process gets the spec's
    /// profile at its exec.
    #[test]
    fn golden_apparmor() {
        let aa = HostFeatures {
            apparmor: true,
            ..HostFeatures::default()
        };
        let f = "process.apparmorProfile";
        assert_eq!(check_apparmor(f, None, aa).unwrap(), None);
        assert_eq!(check_apparmor(f, Some(""), aa).unwrap(), None);
        assert_eq!(
            check_apparmor(f, Some("docker-default"), aa).unwrap(),
            Some("docker-default".to_string())
        );
        assert_eq!(
            check_apparmor(f, Some("unconfined"), aa).unwrap(),
            Some("unconfined".to_string())
        );
        let e = check_apparmor(f, Some("a\nlxc.x = y"), aa).unwrap_err();
        assert_eq!(e.field, f);
        let none = HostFeatures::default();
        assert_eq!(check_apparmor(f, Some("unconfined"), none).unwrap(), None);
        let e = check_apparmor(f, Some("docker-default"), none).unwrap_err();
        assert_eq!(e.field, f);
        assert!(e.reason.contains("not enabled"), "{e}");

        let mut lxc = LxcConfig::new();
        let s = spec(process(
            serde_json::json!({"apparmorProfile": "docker-default"}),
        ));
        translate(&s, aa, &mut lxc).unwrap();
        assert_eq!(lxc.render(), "lxc.apparmor.profile = unconfined\n");
        let mut lxc = LxcConfig::new();
        translate(&spec(process(serde_json::json!({}))), none, &mut lxc).unwrap();
        assert_eq!(lxc.render(), "");
    }
}
