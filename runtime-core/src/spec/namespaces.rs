//! `linux.namespaces` and `hostname`.

use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::SpecError;
use crate::lxcconf::{check_value, LxcConfig};
use crate::userns::{self, IdMap};

/// Which new namespaces the container gets.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NewNamespaces {
    pub net: bool,
    pub uts: bool,
    pub cgroup: bool,
    /// A time namespace to join: entered by the start helper (the LXC monitor)
    /// before liblxc's start, since liblxc's `lxc.namespace.share.time` fails
    /// (its intermediate process shares the monitor's memory, and the kernel lets
    /// only a process that shares it with no other enter a time namespace).
    pub join_time: Option<PathBuf>,
}

fn lxc_name(t: LinuxNamespaceType) -> Result<&'static str, SpecError> {
    Ok(match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Time => "time",
    })
}

/// Translate `linux.namespaces` and `hostname`/`domainname`. A namespace with a
/// `path` is joined (`lxc.namespace.share.<ns> = <path>`: liblxc opens the path
/// and setns()es the container into it, the user namespace first), which is how
/// a pod's containers share the sandbox's namespaces. A joined mount namespace
/// is where liblxc then sets up the rootfs and pivots (as runc does); a joined
/// time namespace is entered by the start helper (see [`NewNamespaces`]).
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
    let mut joined_user: Option<(String, PathBuf)> = None;
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
            if !path.is_absolute() || std::fs::symlink_metadata(path).is_err() {
                return Err(SpecError::new(field, format!("{p} does not exist")));
            }
            match name {
                "user" => joined_user = Some((field, path.clone())),
                "time" => {
                    new.join_time = Some(path.clone());
                    continue;
                }
                _ => {}
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
    if !seen.contains(&"mnt") {
        return Err(SpecError::new(
            "linux.namespaces",
            "a mount namespace (new or joined) is required",
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
    id_mappings(spec, names.contains(&"user"), joined_user, lxc)?;
    time_offsets(spec, names.contains(&"time"), lxc)?;
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

/// `linux.uidMappings`/`gidMappings` → `lxc.idmap = u|g <container> <host> <size>`
/// (liblxc writes the maps of the new user namespace). A new user namespace
/// needs both; mappings without one are an error.
///
/// A joined user namespace (`joined`: the field and path) already has its maps;
/// liblxc still needs them as `lxc.idmap` (it switches to the mapped root and
/// chowns what the container owns) and does not write them. They are read from
/// the namespace; mappings in the spec must equal them (as runc 1.2 checks).
fn id_mappings(
    spec: &Spec,
    new_user_ns: bool,
    joined: Option<(String, PathBuf)>,
    lxc: &mut LxcConfig,
) -> Result<(), SpecError> {
    let linux = spec.linux().as_ref();
    let to_maps = |m: &Vec<oci_spec::runtime::LinuxIdMapping>| -> Vec<IdMap> {
        m.iter()
            .map(|m| IdMap {
                container: m.container_id(),
                host: m.host_id(),
                size: m.size(),
            })
            .collect()
    };
    let uids = to_maps(
        &linux
            .and_then(|l| l.uid_mappings().clone())
            .unwrap_or_default(),
    );
    let gids = to_maps(
        &linux
            .and_then(|l| l.gid_mappings().clone())
            .unwrap_or_default(),
    );
    if let Some((field, path)) = joined {
        let ns = userns::mappings(&path).map_err(|e| {
            SpecError::new(
                &field,
                format!("cannot read the id mappings of {}: {e}", path.display()),
            )
        })?;
        for (f, given, actual) in [
            ("linux.uidMappings", &uids, &ns.uids),
            ("linux.gidMappings", &gids, &ns.gids),
        ] {
            let (mut a, mut b) = (given.clone(), actual.clone());
            a.sort();
            b.sort();
            if !given.is_empty() && a != b {
                return Err(SpecError::new(
                    f,
                    format!(
                        "differ from the mappings of the joined user namespace {} ({})",
                        path.display(),
                        render(actual)
                    ),
                ));
            }
        }
        return push_maps(lxc, &ns.uids, &ns.gids);
    }
    if !new_user_ns {
        if !uids.is_empty() || !gids.is_empty() {
            let f = if uids.is_empty() {
                "linux.gidMappings"
            } else {
                "linux.uidMappings"
            };
            return Err(SpecError::new(
                f,
                "needs a new user namespace in linux.namespaces",
            ));
        }
        return Ok(());
    }
    for (field, maps) in [("linux.uidMappings", &uids), ("linux.gidMappings", &gids)] {
        if maps.is_empty() {
            return Err(SpecError::new(field, "a new user namespace needs mappings"));
        }
        for (i, m) in maps.iter().enumerate() {
            if m.size == 0 {
                return Err(SpecError::new(
                    format!("{field}[{i}].size"),
                    "must not be 0",
                ));
            }
        }
    }
    push_maps(lxc, &uids, &gids)
}

fn render(maps: &[IdMap]) -> String {
    let v: Vec<String> = maps
        .iter()
        .map(|m| format!("{} {} {}", m.container, m.host, m.size))
        .collect();
    v.join(", ")
}

fn push_maps(lxc: &mut LxcConfig, uids: &[IdMap], gids: &[IdMap]) -> Result<(), SpecError> {
    for (field, kind, maps) in [
        ("linux.uidMappings", "u", uids),
        ("linux.gidMappings", "g", gids),
    ] {
        for (i, m) in maps.iter().enumerate() {
            lxc.push(
                &format!("{field}[{i}]"),
                "lxc.idmap",
                format!("{kind} {} {} {}", m.container, m.host, m.size),
            )?;
        }
    }
    Ok(())
}

/// `linux.timeOffsets` (`monotonic`, `boottime`) → `lxc.time.offset.*`. liblxc
/// takes one unit per clock (seconds, or nanoseconds below one second), so an
/// offset with both parts cannot be expressed.
fn time_offsets(spec: &Spec, new_time_ns: bool, lxc: &mut LxcConfig) -> Result<(), SpecError> {
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
        .filter(|o| !o.is_empty())
    else {
        return Ok(());
    };
    if !new_time_ns {
        return Err(SpecError::new(
            "linux.timeOffsets",
            "needs a new time namespace in linux.namespaces",
        ));
    }
    let mut clocks: Vec<&String> = offsets.keys().collect();
    clocks.sort();
    for clock in clocks {
        let field = format!("linux.timeOffsets.{clock}");
        let key = match clock.as_str() {
            "monotonic" => "lxc.time.offset.monotonic",
            "boottime" => "lxc.time.offset.boot",
            _ => {
                return Err(SpecError::new(
                    field,
                    "is not a clock with a time namespace offset (monotonic, boottime)",
                ))
            }
        };
        let o = &offsets[clock];
        let (secs, nanos) = (o.secs().unwrap_or(0), o.nanosecs().unwrap_or(0));
        let value =
            match (secs, nanos) {
                (0, 0) => continue,
                (s, 0) => format!("{s}s"),
                (0, n) if n < 1_000_000_000 => format!("{n}ns"),
                _ => return Err(SpecError::new(
                    field,
                    "liblxc takes seconds or nanoseconds (below one second) per clock, not both",
                )),
            };
        lxc.push(&field, key, value)?;
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

    /// Mount, time and user namespaces are joined like the others; a joined user
    /// namespace's maps (here the test's own, read from /proc/self/uid_map) become
    /// `lxc.idmap` lines, and mappings in the spec must equal them.
    #[test]
    fn joined_mount_time_and_user_namespaces() {
        let s = spec(serde_json::json!({"linux": {"namespaces": [
            {"type": "pid"}, {"type": "mount", "path": "/proc/self/ns/mnt"},
            {"type": "time", "path": "/proc/self/ns/time"},
            {"type": "user", "path": "/proc/self/ns/user"}]}}));
        let mut lxc = LxcConfig::new();
        let new = translate(&s, &mut lxc).unwrap();
        assert_eq!(new.join_time, Some(PathBuf::from("/proc/self/ns/time")));
        let own = |f: &str| {
            let maps = userns::parse_map(&std::fs::read_to_string(f).unwrap()).unwrap();
            maps.iter()
                .map(|m| format!("{} {} {}", m.container, m.host, m.size))
                .collect::<Vec<_>>()
        };
        let (u, g) = (own("/proc/self/uid_map"), own("/proc/self/gid_map"));
        assert_eq!((u.len(), g.len()), (1, 1));
        assert_eq!(
            lxc.render(),
            format!(
                "lxc.namespace.clone = pid\n\
                 lxc.namespace.share.mnt = /proc/self/ns/mnt\n\
                 lxc.namespace.share.user = /proc/self/ns/user\n\
                 lxc.idmap = u {}\n\
                 lxc.idmap = g {}\n",
                u[0], g[0]
            )
        );
        // Mappings equal to the namespace's are fine, others are an error.
        let nums: Vec<u64> = u[0].split(' ').map(|n| n.parse().unwrap()).collect();
        let same =
            serde_json::json!([{"containerID": nums[0], "hostID": nums[1], "size": nums[2]}]);
        let mut s = spec(serde_json::json!({"linux": {
            "namespaces": [{"type": "mount"}, {"type": "user", "path": "/proc/self/ns/user"}],
            "uidMappings": same, "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}}));
        assert_eq!(
            translate(&s, &mut LxcConfig::new()).unwrap_err().field,
            "linux.gidMappings"
        );
        s.linux_mut().as_mut().unwrap().set_gid_mappings(None);
        translate(&s, &mut LxcConfig::new()).unwrap();
    }

    #[test]
    fn golden_time_namespace_offsets() {
        let s = spec(serde_json::json!({"linux": {
            "namespaces": [{"type": "mount"}, {"type": "time"}],
            "timeOffsets": {"monotonic": {"secs": 86400}, "boottime": {"nanosecs": 500}}
        }}));
        let mut lxc = LxcConfig::new();
        translate(&s, &mut lxc).unwrap();
        assert_eq!(
            lxc.render(),
            "lxc.namespace.clone = mnt time\n\
             lxc.time.offset.boot = 500ns\n\
             lxc.time.offset.monotonic = 86400s\n"
        );
        let cases = [
            (
                serde_json::json!({"namespaces": [{"type": "mount"}], "timeOffsets": {"monotonic": {"secs": 1}}}),
                "linux.timeOffsets",
            ),
            (
                serde_json::json!({"namespaces": [{"type": "mount"}, {"type": "time"}],
                                   "timeOffsets": {"monotonic": {"secs": 1, "nanosecs": 1}}}),
                "linux.timeOffsets.monotonic",
            ),
            (
                serde_json::json!({"namespaces": [{"type": "mount"}, {"type": "time"}],
                                   "timeOffsets": {"realtime": {"secs": 1}}}),
                "linux.timeOffsets.realtime",
            ),
            (
                serde_json::json!({"namespaces": [{"type": "mount"}, {"type": "time", "path": "/proc/self/ns/time"}],
                                   "timeOffsets": {"monotonic": {"secs": 1}}}),
                "linux.timeOffsets",
            ),
        ];
        for (linux, field) in cases {
            let e = translate(
                &spec(serde_json::json!({ "linux": linux })),
                &mut LxcConfig::new(),
            )
            .unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }

    #[test]
    fn golden_user_namespace_mappings() {
        let s = spec(serde_json::json!({"linux": {
            "namespaces": [{"type": "mount"}, {"type": "user"}],
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 1000},
                            {"containerID": 1000, "hostID": 200000, "size": 1}]
        }}));
        let mut lxc = LxcConfig::new();
        translate(&s, &mut lxc).unwrap();
        assert_eq!(
            lxc.render(),
            "lxc.namespace.clone = mnt user\n\
             lxc.idmap = u 0 100000 65536\n\
             lxc.idmap = g 0 100000 1000\n\
             lxc.idmap = g 1000 200000 1\n"
        );
        let cases = [
            (
                serde_json::json!({"namespaces": [{"type": "mount"}, {"type": "user"}],
                                   "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}),
                "linux.gidMappings",
            ),
            (
                serde_json::json!({"namespaces": [{"type": "mount"}],
                                   "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}),
                "linux.uidMappings",
            ),
            (
                serde_json::json!({"namespaces": [{"type": "mount"}, {"type": "user", "path": "/proc/self/ns/nope"}]}),
                "linux.namespaces[1].path",
            ),
        ];
        for (linux, field) in cases {
            let e = translate(
                &spec(serde_json::json!({ "linux": linux })),
                &mut LxcConfig::new(),
            )
            .unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
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
        assert_eq!(
            translate(&s, &mut LxcConfig::new()).unwrap_err().field,
            "linux.uidMappings"
        );
        let s = spec(serde_json::json!({"linux": {"namespaces": [
            {"type": "mount"}, {"type": "network", "path": "/proc/self/ns/nope"}]}}));
        assert_eq!(
            translate(&s, &mut LxcConfig::new()).unwrap_err().field,
            "linux.namespaces[1].path"
        );
        let s = spec(serde_json::json!({"linux": {"namespaces": [
            {"type": "mount", "path": "relative/mnt"}]}}));
        assert_eq!(
            translate(&s, &mut LxcConfig::new()).unwrap_err().field,
            "linux.namespaces[0].path"
        );
        let s = spec(serde_json::json!({"linux": {"namespaces": [{"type": "pid"}]}}));
        assert!(translate(&s, &mut LxcConfig::new()).is_err());
    }
}
