//! `linux.sysctl`: `lxc.sysctl.<key> = <value>`, for namespaced keys only.
//!
//! As runc: IPC keys need an IPC namespace, `net.*` a network namespace,
//! `kernel.hostname`/`kernel.domainname` a UTS namespace (new or joined); any other
//! key would change the host and is refused.

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::SpecError;
use crate::lxcconf::{check_value, LxcConfig};

const IPC_KEYS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The namespace a sysctl key belongs to, if it is namespaced.
fn namespace_of(key: &str) -> Option<LinuxNamespaceType> {
    let k = key.replace('/', ".");
    if IPC_KEYS.contains(&k.as_str()) || k.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if k.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if k == "kernel.hostname" || k == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

pub fn translate(spec: &Spec, lxc: &mut LxcConfig) -> Result<(), SpecError> {
    let Some(linux) = spec.linux().as_ref() else {
        return Ok(());
    };
    let Some(sysctl) = linux.sysctl().as_ref() else {
        return Ok(());
    };
    let has = |t: LinuxNamespaceType| linux.namespaces().iter().flatten().any(|ns| ns.typ() == t);
    let mut keys: Vec<&String> = sysctl.keys().collect();
    keys.sort();
    for key in keys {
        let field = format!("linux.sysctl.{key}");
        check_value(&field, key)?;
        let ns = namespace_of(key).ok_or_else(|| {
            SpecError::new(
                &field,
                "is not a namespaced sysctl: it would change the host",
            )
        })?;
        if !has(ns) {
            return Err(SpecError::new(
                &field,
                format!("needs its own {ns} namespace in linux.namespaces"),
            ));
        }
        lxc.push(&field, format!("lxc.sysctl.{key}"), sysctl[key].as_str())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(namespaces: serde_json::Value, sysctl: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2", "root": {"path": "rootfs"},
            "linux": {"namespaces": namespaces, "sysctl": sysctl}
        }))
        .unwrap()
    }

    #[test]
    fn namespaced_keys() {
        let s = spec(
            serde_json::json!([{"type": "network"}, {"type": "ipc"}, {"type": "mount"}]),
            serde_json::json!({"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shmmax": "1000",
                               "fs.mqueue.msg_max": "20"}),
        );
        let mut lxc = LxcConfig::new();
        translate(&s, &mut lxc).unwrap();
        assert_eq!(
            lxc.render(),
            "lxc.sysctl.fs.mqueue.msg_max = 20\n\
             lxc.sysctl.kernel.shmmax = 1000\n\
             lxc.sysctl.net.ipv4.ip_unprivileged_port_start = 0\n"
        );
    }

    #[test]
    fn host_wide_or_unnamespaced_keys_are_refused() {
        let s = spec(
            serde_json::json!([{"type": "mount"}]),
            serde_json::json!({"vm.swappiness": "1"}),
        );
        let e = translate(&s, &mut LxcConfig::new()).unwrap_err();
        assert_eq!(e.field, "linux.sysctl.vm.swappiness");
        let s = spec(
            serde_json::json!([{"type": "mount"}]),
            serde_json::json!({"net.ipv4.ip_forward": "1"}),
        );
        let e = translate(&s, &mut LxcConfig::new()).unwrap_err();
        assert!(e.reason.contains("net"), "{e}");
    }

    #[test]
    fn injection_is_refused() {
        let s = spec(
            serde_json::json!([{"type": "network"}, {"type": "mount"}]),
            serde_json::json!({"net.core.somaxconn": "1\nlxc.hook.pre-start = /x"}),
        );
        assert_eq!(
            translate(&s, &mut LxcConfig::new()).unwrap_err().field,
            "linux.sysctl.net.core.somaxconn"
        );
        let s = spec(
            serde_json::json!([{"type": "network"}, {"type": "mount"}]),
            serde_json::json!({"net.a b": "1"}),
        );
        assert!(translate(&s, &mut LxcConfig::new()).is_err());
    }
}
