//! `lxcri features`: runc's features document, filled with what lxcri takes
//! today. Anything the spec translation refuses is reported as absent/disabled.

use lxcri_libexec::proto::CAPABILITY_NAMES;
use serde_json::{json, Value};

/// Mount options liblxc 5.0.2 parses (conf.c `mount_opt` and `propagation_opt`);
/// anything else is passed to mount(2) as filesystem data.
const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "private",
    "rbind",
    "relatime",
    "remount",
    "ro",
    "rprivate",
    "rshared",
    "rslave",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "sync",
    "unbindable",
];

pub fn features() -> Value {
    json!({
        "ociVersionMin": "1.0.0",
        // The spec translation takes ociVersion 1.0.x to 1.3.x.
        "ociVersionMax": "1.3.0",
        // No OCI hook is run yet: a spec with hooks is refused.
        "hooks": [],
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            // user and time namespaces are refused by the spec translation.
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "uts"],
            "capabilities": CAPABILITY_NAMES,
            "cgroup": {
                "v1": true,
                "v2": true,
                "systemd": false,
                "systemdUser": false,
                "rdma": false,
            },
            "seccomp": { "enabled": false },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
            "intelRdt": { "enabled": false },
            "mountExtensions": { "idmap": { "enabled": false } },
        },
        "annotations": {
            "io.github.lxc.lxcri.version": env!("CARGO_PKG_VERSION"),
            "org.linuxcontainers.lxc.version": lxcri_ffi::version(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let f = features();
        assert_eq!(f["linux"]["seccomp"]["enabled"], false);
        assert!(f["linux"]["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("CAP_SYS_ADMIN")));
        assert!(f["mountOptions"]
            .as_array()
            .unwrap()
            .contains(&json!("rbind")));
    }
}
