//! Host-dependent fields: `process.apparmorProfile`, `process.selinuxLabel`,
//! `linux.mountLabel`, `linux.intelRdt`, and `linux.personality`.
//!
//! The LSM fields need the LSM on the host. Without it, asking for a profile or
//! a label other than "unconfined"/empty is a clear error (runc fails too).
//! AppArmor: liblxc is told `lxc.apparmor.profile = unconfined` (else it would
//! confine our init with its default profile before the init's set-up), and the
//! process enters the spec's profile at its exec, as runc does.
//!
//! SELinux, as runc applies it: the init (and each exec'd process) writes
//! `process.selinuxLabel` to its exec attribute (`/proc/thread-self/attr/exec`)
//! right before its execve; liblxc gets no `lxc.selinux.context` (unset, it
//! leaves the init's context alone: its default "unconfined_t" means "change
//! nothing"), only `lxc.selinux.context.keyring` = the label, so that the
//! session keyring liblxc creates carries the process label (runc's
//! `SetKeyLabel`). `linux.mountLabel` becomes a `context="LABEL"` option of the
//! container's mounts that take one (see `mounts`).

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
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        // SELinux is on as runc (go-selinux) finds it: a selinuxfs is mounted
        // and its `enforce` file is readable.
        let selinux = mount_points(&mountinfo, "selinuxfs")
            .any(|mnt| std::fs::read_to_string(format!("{mnt}/enforce")).is_ok());
        let resctrl = mount_points(&mountinfo, "resctrl").next().is_some();
        HostFeatures {
            apparmor,
            selinux,
            resctrl,
        }
    }
}

/// The mount points of the filesystems of type `fstype` in `mountinfo`
/// (`/proc/self/mountinfo` text).
fn mount_points<'a>(mountinfo: &'a str, fstype: &'a str) -> impl Iterator<Item = &'a str> {
    mountinfo.lines().filter_map(move |l| {
        let (pre, post) = l.split_once(" - ")?;
        let ty = post.split(' ').next()?;
        if ty != fstype {
            return None;
        }
        pre.split(' ').nth(4)
    })
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

/// `process.selinuxLabel` (also of an exec'd process) and `linux.mountLabel`:
/// the label to apply (None: none asked). Without SELinux on the host a label
/// is an error naming the field (runc fails too). A label must be one token:
/// no whitespace, quote, newline or NUL (it goes into a mount option and into
/// the lxc config); whether the policy knows it, the kernel says at its use.
pub fn check_selinux(
    field: &str,
    label: Option<&str>,
    host: HostFeatures,
) -> Result<Option<String>, SpecError> {
    match label {
        None | Some("") => Ok(None),
        Some(l) if !host.selinux => Err(SpecError::new(
            field,
            format!("SELinux is not enabled on this host: cannot apply label {l:?}"),
        )),
        Some(l) => {
            if l.contains(|c: char| c.is_whitespace() || c == '"' || c == '\0') {
                return Err(SpecError::new(
                    field,
                    format!("{l:?} is not an SELinux context (whitespace, quote or NUL in it)"),
                ));
            }
            Ok(Some(l.to_string()))
        }
    }
}

/// Ask the running kernel whether its loaded policy knows SELinux context
/// `label` (libselinux's `security_check_context`: a write to selinuxfs's
/// `context` file fails with EINVAL for an unknown one). Only on a host with
/// SELinux; a label it refuses is an error naming the field at create, before
/// liblxc (which would fail on it labelling the session keyring, unnamed).
pub fn check_selinux_context(field: &str, label: &str) -> Result<(), SpecError> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mnt = mount_points(&mi, "selinuxfs")
        .next()
        .unwrap_or("/sys/fs/selinux");
    let path = format!("{mnt}/context");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| {
            SpecError::new(field, format!("check SELinux label {label:?}: {path}: {e}"))
        })?;
    std::io::Write::write_all(&mut f, label.as_bytes()).map_err(|e| {
        SpecError::new(
            field,
            format!("SELinux label {label:?} is not valid in the loaded policy: {e}"),
        )
    })
}

/// The host-dependent checks and `linux.personality` (`lxc.arch`, which liblxc
/// applies with personality(2) before the init; exec keeps it). Returns
/// `linux.mountLabel`, for the mounts.
pub fn translate(
    spec: &Spec,
    host: HostFeatures,
    lxc: &mut LxcConfig,
) -> Result<Option<String>, SpecError> {
    if let Some(p) = spec.process().as_ref() {
        check_apparmor(
            "process.apparmorProfile",
            p.apparmor_profile().as_deref(),
            host,
        )?;
        let label = check_selinux("process.selinuxLabel", p.selinux_label().as_deref(), host)?;
        if let Some(label) = label {
            // The init enters the label at its exec; liblxc labels the
            // session keyring it makes (lxc.keyring.session) with it, as runc.
            lxc.push("process.selinuxLabel", "lxc.selinux.context.keyring", label)?;
        }
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
        return Ok(None);
    };
    let mount_label = check_selinux("linux.mountLabel", l.mount_label().as_deref(), host)?;
    if mount_label.as_deref().is_some_and(|m| m.contains(',')) {
        // liblxc splits mount options at commas and drops the pieces it does
        // not know: `context="...:c1,c2"` would reach mount(2) as `...:c1`.
        return Err(SpecError::new(
            "linux.mountLabel",
            "a label with a comma (a category set such as s0:c1,c2) cannot pass \
             liblxc's mount options (it drops what follows the comma); write \
             consecutive categories as a range (s0:c1.c2)",
        ));
    }
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
    Ok(mount_label)
}

#[cfg(test)]
mod tests {

    #[test]
    fn mount_points_of_a_type() {
        let mi = "25 30 0:23 / /sys/fs/selinux rw,relatime shared:6 - selinuxfs selinuxfs rw\n\
                  26 30 0:24 / /sys/fs/resctrl rw - resctrl resctrl rw\n\
                  27 30 0:25 / /mnt/selinuxfs-like rw - tmpfs selinuxfs rw\n";
        assert_eq!(
            mount_points(mi, "selinuxfs").collect::<Vec<_>>(),
            ["/sys/fs/selinux"]
        );
        assert_eq!(
            mount_points(mi, "resctrl").collect::<Vec<_>>(),
            ["/sys/fs/resctrl"]
        );
        assert_eq!(
            mount_points(mi, "tmpfs").collect::<Vec<_>>(),
            ["/mnt/selinuxfs-like"]
        );
        assert_eq!(mount_points(mi, "cgroup2").count(), 0);
    }

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
            let e = translate(&spec(s), none, &mut lxc).unwrap_err();
            assert_eq!(e.field, field);
            assert!(e.reason.contains(why), "{e}");
        }
        let e = translate(
            &spec(serde_json::json!({"linux": {"intelRdt": {"closID": "x"}}})),
            all,
            &mut lxc,
        )
        .unwrap_err();
        assert_eq!(e.field, "linux.intelRdt");
        assert!(e.reason.contains("not supported"), "{e}");
    }

    /// SELinux host: the process label goes to the init (process module) and
    /// labels liblxc's session keyring; liblxc gets no process context of
    /// its own; the mount label is returned for the mounts. Bad labels name
    /// their field.
    #[test]
    fn golden_selinux() {
        let se = HostFeatures {
            selinux: true,
            ..HostFeatures::default()
        };
        let label = "system_u:system_r:svirt_t:s0:c1,c2";
        let mount = "system_u:object_r:svirt_tmpfs_t:s0:c1.c2";
        let mut lxc = LxcConfig::new();
        let mut s = spec(process(serde_json::json!({"selinuxLabel": label})));
        s.set_linux(Some(
            serde_json::from_value(serde_json::json!({"mountLabel": mount})).unwrap(),
        ));
        let got = translate(&s, se, &mut lxc).unwrap();
        assert_eq!(got.as_deref(), Some(mount));
        assert_eq!(
            lxc.render(),
            "lxc.selinux.context.keyring = system_u:system_r:svirt_t:s0:c1,c2\n"
        );
        let mut lxc = LxcConfig::new();
        let got = translate(&spec(process(serde_json::json!({}))), se, &mut lxc).unwrap();
        assert_eq!(got, None);
        assert_eq!(lxc.render(), "");

        let f = "process.selinuxLabel";
        assert_eq!(check_selinux(f, None, se).unwrap(), None);
        assert_eq!(check_selinux(f, Some(""), se).unwrap(), None);
        assert_eq!(
            check_selinux(f, Some(label), se).unwrap().as_deref(),
            Some(label)
        );
        for bad in ["a\nlxc.x = y", "a b", "a\"b", "a\0b"] {
            let e = check_selinux(f, Some(bad), se).unwrap_err();
            assert_eq!(e.field, f);
        }
        let mut s = spec(serde_json::json!({}));
        s.set_linux(Some(
            serde_json::from_value(serde_json::json!({"mountLabel": label})).unwrap(),
        ));
        let e = translate(&s, se, &mut LxcConfig::new()).unwrap_err();
        assert_eq!(e.field, "linux.mountLabel");
        assert!(e.reason.contains("comma"), "{e}");
        let e = check_selinux(f, Some(label), HostFeatures::default()).unwrap_err();
        assert_eq!(e.field, f);
        assert!(e.reason.contains("SELinux is not enabled"), "{e}");
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
