//! runc's features document (`lxcri features`, and the shim's `-info` for
//! containerd), filled with what the spec translation takes today. Anything it
//! refuses is reported as absent/disabled.

use lxcri_libexec::proto::CAPABILITY_NAMES;
use serde_json::{json, Value};

/// The known flags this kernel takes (runc probes them the same way): seccomp(2)
/// with a NULL program fails with EFAULT for a known flag, EINVAL for an unknown
/// one. WAIT_KILLABLE_RECV is probed with NEW_LISTENER, which it needs.
fn supported_seccomp_flags() -> Vec<&'static str> {
    use lxcri_libexec::proto::{
        SECCOMP_FILTER_FLAG_NEW_LISTENER, SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
    };
    [
        (
            "SECCOMP_FILTER_FLAG_TSYNC",
            libc::SECCOMP_FILTER_FLAG_TSYNC as u32,
        ),
        (
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32,
        ),
        (
            "SECCOMP_FILTER_FLAG_LOG",
            libc::SECCOMP_FILTER_FLAG_LOG as u32,
        ),
        (
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
            SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV | SECCOMP_FILTER_FLAG_NEW_LISTENER,
        ),
    ]
    .into_iter()
    .filter(|(_, flags)| {
        // SAFETY: a NULL program: the kernel checks the flags, then fails to read
        // the program (EFAULT) without installing anything.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                *flags as libc::c_ulong,
                std::ptr::null::<libc::sock_fprog>(),
            )
        };
        r < 0 && nix::errno::Errno::last() == nix::errno::Errno::EFAULT
    })
    .map(|(name, _)| name)
    .collect()
}

/// The features document. `annotations` are the caller's (e.g. the liblxc
/// version, which the shim does not link).
pub fn features(annotations: Value) -> Value {
    // Flag options liblxc applies, plus runc's tmpcopyup (over an empty or
    // missing directory) and rro (made recursive by the init); `key=value`
    // options go to mount(2) as data.
    let mut mount_options: Vec<&str> = crate::spec::mounts::FLAG_OPTIONS.to_vec();
    // idmap/ridmap: id-mapped bind mounts (attached by lxcri-hook).
    mount_options.extend(["tmpcopyup", "rro", "idmap", "ridmap"]);
    mount_options.sort_unstable();
    json!({
        "ociVersionMin": "1.0.0",
        // The spec translation takes ociVersion 1.0.x to 1.3.x.
        "ociVersionMax": "1.3.0",
        "hooks": [
            "prestart", "createRuntime", "createContainer", "startContainer", "poststart",
            "poststop"
        ],
        "mountOptions": mount_options,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": CAPABILITY_NAMES,
            "cgroup": {
                "v1": true,
                "v2": true,
                // systemd cgroup paths (slice:prefix:name) are refused.
                "systemd": false,
                "systemdUser": false,
                "rdma": false,
            },
            "seccomp": {
                "enabled": true,
                // SCMP_ACT_NOTIFY: seccomp agents at linux.seccomp.listenerPath.
                "actions": [
                    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE",
                    "SCMP_ACT_TRAP"
                ],
                "operators": [
                    "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"
                ],
                "archs": [
                    "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64",
                    "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
                    "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
                    "SCMP_ARCH_PPC64LE", "SCMP_ARCH_RISCV64", "SCMP_ARCH_S390",
                    "SCMP_ARCH_S390X", "SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"
                ],
                "knownFlags": [
                    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                    "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
                ],
                "supportedFlags": supported_seccomp_flags(),
            },
            // Support built in, as the spec means `enabled` (runc says the
            // same): AppArmor profiles and SELinux labels are entered at the
            // exec where the host has the LSM; elsewhere a profile or label
            // is an error naming the field.
            "apparmor": { "enabled": true },
            "selinux": { "enabled": true },
            "intelRdt": { "enabled": false },
            // Id-mapped bind mounts, as runc 1.2 (mount_setattr MOUNT_ATTR_IDMAP).
            "mountExtensions": { "idmap": { "enabled": true } },
            // set_mempolicy(2) by the init and every exec.
            "memoryPolicy": {
                "modes": [
                    "MPOL_BIND", "MPOL_DEFAULT", "MPOL_INTERLEAVE", "MPOL_LOCAL",
                    "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_WEIGHTED_INTERLEAVE"
                ],
                "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"],
            },
            // liblxc's phys network type (a new network namespace is required).
            "netDevices": { "enabled": true },
        },
        "annotations": annotations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let f = features(json!({}));
        assert_eq!(f["linux"]["seccomp"]["enabled"], true);
        let seccomp = &f["linux"]["seccomp"];
        assert!(seccomp["actions"]
            .as_array()
            .unwrap()
            .contains(&json!("SCMP_ACT_NOTIFY")));
        let supported = seccomp["supportedFlags"].as_array().unwrap();
        assert!(supported.contains(&json!("SECCOMP_FILTER_FLAG_LOG")));
        // Since Linux 5.19; the hosts lxcri is tested on have it.
        assert!(supported.contains(&json!("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")));
        assert!(f["linux"]["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("CAP_SYS_ADMIN")));
        assert!(f["mountOptions"]
            .as_array()
            .unwrap()
            .contains(&json!("rbind")));
        assert!(f["mountOptions"]
            .as_array()
            .unwrap()
            .contains(&json!("rro")));
        assert!(f["mountOptions"]
            .as_array()
            .unwrap()
            .contains(&json!("ridmap")));
        assert_eq!(f["linux"]["mountExtensions"]["idmap"]["enabled"], true);
        assert!(f["hooks"].as_array().unwrap().contains(&json!("poststop")));
        assert_eq!(f["linux"]["netDevices"]["enabled"], true);
        assert!(f["linux"]["memoryPolicy"]["modes"]
            .as_array()
            .unwrap()
            .contains(&json!("MPOL_BIND")));
        // The document parses as the runtime spec's features type.
        let _: oci_spec::runtime::Features = serde_json::from_value(f).unwrap();
    }
}
