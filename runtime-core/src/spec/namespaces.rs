//! `linux.namespaces` and `hostname`.

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::SpecError;
use crate::lxcconf::{check_value, LxcConfig};

/// Which new namespaces the container gets.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NewNamespaces {
    pub net: bool,
    pub uts: bool,
    pub cgroup: bool,
}

fn lxc_name(t: LinuxNamespaceType) -> Result<&'static str, SpecError> {
    Ok(match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::User => {
            return Err(SpecError::new(
                "linux.namespaces",
                "user namespaces are not supported yet",
            ))
        }
        LinuxNamespaceType::Time => {
            return Err(SpecError::new(
                "linux.namespaces",
                "time namespaces are not supported yet",
            ))
        }
    })
}

/// Translate `linux.namespaces` and `hostname`/`domainname`. A namespace with a
/// `path` is joined (`lxc.namespace.share.<ns> = <path>`: liblxc opens the path
/// and setns()es the container into it), which is how a pod's containers share
/// the sandbox's namespaces.
pub fn translate(spec: &Spec, lxc: &mut LxcConfig) -> Result<NewNamespaces, SpecError> {
    let nss = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let mut names: Vec<&str> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    let mut shared: Vec<(&str, String)> = Vec::new();
    let mut new = NewNamespaces::default();
    for (i, ns) in nss.iter().enumerate() {
        let name = lxc_name(ns.typ())?;
        if seen.contains(&name) {
            return Err(SpecError::new(
                format!("linux.namespaces[{i}]"),
                format!("duplicate namespace {name}"),
            ));
        }
        seen.push(name);
        if let Some(path) = ns.path().as_ref().filter(|p| !p.as_os_str().is_empty()) {
            let field = format!("linux.namespaces[{i}].path");
            let p = path.to_string_lossy().into_owned();
            check_value(&field, &p)?;
            if name == "mnt" {
                return Err(SpecError::new(
                    field,
                    "joining a mount namespace is not supported",
                ));
            }
            if !path.is_absolute() || std::fs::symlink_metadata(path).is_err() {
                return Err(SpecError::new(field, format!("{p} does not exist")));
            }
            shared.push((name, p));
            continue;
        }
        names.push(name);
        match ns.typ() {
            LinuxNamespaceType::Network => new.net = true,
            LinuxNamespaceType::Uts => new.uts = true,
            LinuxNamespaceType::Cgroup => new.cgroup = true,
            _ => {}
        }
    }
    if !names.contains(&"mnt") {
        return Err(SpecError::new(
            "linux.namespaces",
            "a new mount namespace is required",
        ));
    }
    lxc.push("linux.namespaces", "lxc.namespace.clone", names.join(" "))?;
    for (name, path) in shared {
        lxc.push(
            "linux.namespaces",
            format!("lxc.namespace.share.{name}"),
            path,
        )?;
    }
    if new.net {
        // A new network namespace with only the loopback device, which liblxc
        // brings up (as runc does).
        lxc.push("linux.namespaces", "lxc.net.0.type", "empty")?;
    }
    if let Some(h) = spec.hostname().as_ref().filter(|h| !h.is_empty()) {
        if !new.uts {
            return Err(SpecError::new(
                "hostname",
                "setting the hostname requires a new UTS namespace",
            ));
        }
        lxc.push("hostname", "lxc.uts.name", h.as_str())?;
    }
    if let Some(d) = spec.domainname().as_ref().filter(|d| !d.is_empty()) {
        if !new.uts {
            return Err(SpecError::new(
                "domainname",
                "setting the domain name requires a new UTS namespace",
            ));
        }
        // liblxc has no key for it: the UTS namespace's sysctl, set before the init.
        lxc.push("domainname", "lxc.sysctl.kernel.domainname", d.as_str())?;
    }
    Ok(new)
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

    #[test]
    fn containerd_default_namespaces() {
        let s = spec(serde_json::json!({
            "hostname": "box", "domainname": "example.org",
            "linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                                     {"type": "mount"}, {"type": "network"}]}
        }));
        let mut lxc = LxcConfig::new();
        let new = translate(&s, &mut lxc).unwrap();
        assert!(new.net && new.uts && !new.cgroup);
        assert_eq!(
            lxc.render(),
            "lxc.namespace.clone = pid ipc uts mnt net\nlxc.net.0.type = empty\nlxc.uts.name = box\n\
             lxc.sysctl.kernel.domainname = example.org\n"
        );
    }

    #[test]
    fn joined_namespaces_are_shared() {
        let s = spec(serde_json::json!({"linux": {"namespaces": [
            {"type": "pid", "path": "/proc/self/ns/pid"}, {"type": "ipc", "path": "/proc/self/ns/ipc"},
            {"type": "uts", "path": "/proc/self/ns/uts"}, {"type": "mount"},
            {"type": "network", "path": "/proc/self/ns/net"}]}}));
        let mut lxc = LxcConfig::new();
        let new = translate(&s, &mut lxc).unwrap();
        assert!(!new.net && !new.uts);
        assert_eq!(
            lxc.render(),
            "lxc.namespace.clone = mnt\n\
             lxc.namespace.share.pid = /proc/self/ns/pid\n\
             lxc.namespace.share.ipc = /proc/self/ns/ipc\n\
             lxc.namespace.share.uts = /proc/self/ns/uts\n\
             lxc.namespace.share.net = /proc/self/ns/net\n"
        );
    }

    #[test]
    fn hostname_needs_uts() {
        let s = spec(serde_json::json!({
            "hostname": "box", "linux": {"namespaces": [{"type": "mount"}]}
        }));
        assert_eq!(
            translate(&s, &mut LxcConfig::new()).unwrap_err().field,
            "hostname"
        );
    }

    #[test]
    fn domainname_needs_uts() {
        let s = spec(serde_json::json!({
            "domainname": "example.org", "linux": {"namespaces": [{"type": "mount"}]}
        }));
        assert_eq!(
            translate(&s, &mut LxcConfig::new()).unwrap_err().field,
            "domainname"
        );
    }

    #[test]
    fn hostname_with_newline_is_rejected() {
        let s = spec(serde_json::json!({
            "hostname": "box\nlxc.hook.pre-start = /x",
            "linux": {"namespaces": [{"type": "mount"}, {"type": "uts"}]}
        }));
        assert_eq!(
            translate(&s, &mut LxcConfig::new()).unwrap_err().field,
            "hostname"
        );
    }

    #[test]
    fn unsupported_namespaces_are_errors() {
        let s = spec(
            serde_json::json!({"linux": {"namespaces": [{"type": "mount"}, {"type": "user"}]}}),
        );
        assert!(translate(&s, &mut LxcConfig::new()).is_err());
        let s = spec(serde_json::json!({"linux": {"namespaces": [
            {"type": "mount"}, {"type": "network", "path": "/proc/self/ns/nope"}]}}));
        assert_eq!(
            translate(&s, &mut LxcConfig::new()).unwrap_err().field,
            "linux.namespaces[1].path"
        );
        let s = spec(serde_json::json!({"linux": {"namespaces": [
            {"type": "mount", "path": "/proc/1/ns/mnt"}]}}));
        assert_eq!(
            translate(&s, &mut LxcConfig::new()).unwrap_err().field,
            "linux.namespaces[0].path"
        );
        let s = spec(serde_json::json!({"linux": {"namespaces": [{"type": "pid"}]}}));
        assert!(translate(&s, &mut LxcConfig::new()).is_err());
    }
}
