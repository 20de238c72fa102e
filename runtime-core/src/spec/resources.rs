//! `linux.cgroupsPath` and `linux.resources`.
//!
//! On a v1 (or hybrid) host liblxc only applies `lxc.cgroup.<v1 file>` keys and
//! silently ignores `lxc.cgroup2.*`; on a pure v2 host it is the reverse. Each limit
//! is emitted for the layout of the host.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources, Spec};

use crate::cgroup::{self, Layout};
use crate::error::SpecError;
use crate::lxcconf::LxcConfig;

/// The cgroups of a container, relative to the hierarchy roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroups {
    pub container: PathBuf,
    pub monitor: PathBuf,
    /// Where liblxc parks the exiting monitor (it leaves `<pivot>/lxc.pivot`).
    pub pivot: PathBuf,
}

/// The devices every container may use, as runc allows them (after the spec's own
/// rules): mknod of any device, and the standard character devices.
const DEFAULT_ALLOWED_DEVICES: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",    // /dev/null
    "c 1:5 rwm",    // /dev/zero
    "c 1:7 rwm",    // /dev/full
    "c 1:8 rwm",    // /dev/random
    "c 1:9 rwm",    // /dev/urandom
    "c 5:0 rwm",    // /dev/tty
    "c 5:1 rwm",    // /dev/console
    "c 5:2 rwm",    // /dev/ptmx
    "c 136:* rwm",  // /dev/pts/*
    "c 10:200 rwm", // /dev/net/tun
];

struct Emitter<'a> {
    lxc: &'a mut LxcConfig,
    layout: Layout,
}

impl Emitter<'_> {
    /// Emit a limit: `v1` is the v1 file name, `v2` the v2 one (None: no such limit
    /// on that layout, which is an error naming the field).
    fn set(
        &mut self,
        field: &str,
        v1: Option<&str>,
        v2: Option<&str>,
        value: String,
    ) -> Result<(), SpecError> {
        let file = match self.layout {
            Layout::V1 => v1,
            Layout::V2 => v2,
        }
        .ok_or_else(|| {
            SpecError::new(
                field,
                format!("not available on a cgroup {:?} host", self.layout),
            )
        })?;
        let key = format!("{}{}", self.layout.key_prefix(), file);
        self.lxc.push(field, key, value)
    }
}

fn device_rule(field: &str, d: &LinuxDeviceCgroup) -> Result<String, SpecError> {
    let typ = match d.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => "a",
        LinuxDeviceType::C | LinuxDeviceType::U => "c",
        LinuxDeviceType::B => "b",
        LinuxDeviceType::P => {
            return Err(SpecError::new(
                field,
                "device cgroup rules cannot name fifos",
            ))
        }
    };
    let num = |n: Option<i64>| {
        n.filter(|n| *n >= 0)
            .map(|n| n.to_string())
            .unwrap_or("*".into())
    };
    let access = d.access().clone().unwrap_or_else(|| "rwm".into());
    if access.is_empty() || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(SpecError::new(field, format!("invalid access {access:?}")));
    }
    Ok(format!(
        "{typ} {}:{} {access}",
        num(d.major()),
        num(d.minor())
    ))
}

fn devices(e: &mut Emitter, rules: &[LinuxDeviceCgroup]) -> Result<(), SpecError> {
    let (allow_key, deny_key) = ("devices.allow", "devices.deny");
    for (i, d) in rules.iter().enumerate() {
        let field = format!("linux.resources.devices[{i}]");
        let rule = device_rule(&field, d)?;
        let key = if d.allow() { allow_key } else { deny_key };
        e.set(&field, Some(key), Some(key), rule)?;
    }
    for rule in DEFAULT_ALLOWED_DEVICES {
        e.set(
            "linux.resources.devices",
            Some(allow_key),
            Some(allow_key),
            rule.to_string(),
        )?;
    }
    Ok(())
}

/// cgroup v2 cpu.weight from v1 cpu.shares, as runc converts it.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

fn resources(e: &mut Emitter, r: &LinuxResources) -> Result<(), SpecError> {
    devices(e, r.devices().as_deref().unwrap_or_default())?;
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit() {
            let v2 = if l < 0 {
                "max".to_string()
            } else {
                l.to_string()
            };
            let v = match e.layout {
                Layout::V1 => l.to_string(),
                Layout::V2 => v2,
            };
            e.set(
                "linux.resources.memory.limit",
                Some("memory.limit_in_bytes"),
                Some("memory.max"),
                v,
            )?;
        }
        if let Some(l) = m.reservation() {
            e.set(
                "linux.resources.memory.reservation",
                Some("memory.soft_limit_in_bytes"),
                Some("memory.low"),
                l.to_string(),
            )?;
        }
        if let Some(sw) = m.swap() {
            // runc: v1 memory.memsw.limit_in_bytes is memory+swap (after the
            // limit, which must not exceed it); v2 memory.swap.max is swap alone.
            let v = match e.layout {
                Layout::V1 => sw.to_string(),
                Layout::V2 if sw < 0 => "max".to_string(),
                Layout::V2 => match m.limit() {
                    Some(l) if l >= 0 && sw >= l => (sw - l).to_string(),
                    Some(l) if l >= 0 => {
                        return Err(SpecError::new(
                            "linux.resources.memory.swap",
                            format!("{sw} is below the memory limit {l}"),
                        ))
                    }
                    _ => sw.to_string(),
                },
            };
            e.set(
                "linux.resources.memory.swap",
                Some("memory.memsw.limit_in_bytes"),
                Some("memory.swap.max"),
                v,
            )?;
        }
        let unsupported = [
            ("kernel", m.kernel().is_some()),
            ("kernelTCP", m.kernel_tcp().is_some()),
            ("swappiness", m.swappiness().is_some()),
            ("disableOOMKiller", m.disable_oom_killer().is_some()),
            ("useHierarchy", m.use_hierarchy().is_some()),
            ("checkBeforeUpdate", m.check_before_update().is_some()),
        ];
        if let Some((f, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err(SpecError::unsupported(format!(
                "linux.resources.memory.{f}"
            )));
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares() {
            let v = match e.layout {
                Layout::V1 => s.to_string(),
                Layout::V2 => shares_to_weight(s).to_string(),
            };
            e.set(
                "linux.resources.cpu.shares",
                Some("cpu.shares"),
                Some("cpu.weight"),
                v,
            )?;
        }
        match e.layout {
            Layout::V1 => {
                if let Some(p) = c.period() {
                    e.set(
                        "linux.resources.cpu.period",
                        Some("cpu.cfs_period_us"),
                        None,
                        p.to_string(),
                    )?;
                }
                if let Some(q) = c.quota() {
                    e.set(
                        "linux.resources.cpu.quota",
                        Some("cpu.cfs_quota_us"),
                        None,
                        q.to_string(),
                    )?;
                }
            }
            Layout::V2 => {
                if c.quota().is_some() || c.period().is_some() {
                    let q = c
                        .quota()
                        .filter(|q| *q > 0)
                        .map(|q| q.to_string())
                        .unwrap_or("max".into());
                    let p = c.period().unwrap_or(100_000);
                    e.set(
                        "linux.resources.cpu.quota",
                        None,
                        Some("cpu.max"),
                        format!("{q} {p}"),
                    )?;
                }
            }
        }
        if let Some(cpus) = c.cpus().as_ref().filter(|s| !s.is_empty()) {
            e.set(
                "linux.resources.cpu.cpus",
                Some("cpuset.cpus"),
                Some("cpuset.cpus"),
                cpus.clone(),
            )?;
        }
        if let Some(mems) = c.mems().as_ref().filter(|s| !s.is_empty()) {
            e.set(
                "linux.resources.cpu.mems",
                Some("cpuset.mems"),
                Some("cpuset.mems"),
                mems.clone(),
            )?;
        }
        let unsupported = [
            ("idle", c.idle().is_some()),
            ("burst", c.burst().is_some()),
            ("realtimeRuntime", c.realtime_runtime().is_some()),
            ("realtimePeriod", c.realtime_period().is_some()),
        ];
        if let Some((f, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err(SpecError::unsupported(format!("linux.resources.cpu.{f}")));
        }
    }
    if let Some(p) = r.pids() {
        let v = if p.limit() > 0 {
            p.limit().to_string()
        } else {
            "max".into()
        };
        e.set(
            "linux.resources.pids.limit",
            Some("pids.max"),
            Some("pids.max"),
            v,
        )?;
    }
    let unsupported = [
        ("blockIO", r.block_io().is_some()),
        (
            "hugepageLimits",
            r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()),
        ),
        ("network", r.network().is_some()),
        ("rdma", r.rdma().as_ref().is_some_and(|h| !h.is_empty())),
        (
            "unified",
            r.unified().as_ref().is_some_and(|h| !h.is_empty()),
        ),
    ];
    if let Some((f, _)) = unsupported.iter().find(|(_, set)| *set) {
        return Err(SpecError::unsupported(format!("linux.resources.{f}")));
    }
    Ok(())
}

/// The cgroup files and values of `resources` on a host of `layout`, in order
/// (what [`translate`] emits as `lxc.cgroup[2].<file>` keys): for live updates.
pub fn limits(r: &LinuxResources, layout: Layout) -> Result<Vec<(String, String)>, SpecError> {
    let mut lxc = LxcConfig::new();
    resources(
        &mut Emitter {
            lxc: &mut lxc,
            layout,
        },
        r,
    )?;
    let prefix = layout.key_prefix();
    Ok(lxc
        .items()
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone())))
        .collect())
}

/// Translate `linux.cgroupsPath` and `linux.resources`.
pub fn translate(
    spec: &Spec,
    id: &str,
    layout: Layout,
    lxc: &mut LxcConfig,
) -> Result<Cgroups, SpecError> {
    let linux = spec.linux().as_ref();
    let container = cgroup::container_path(linux.and_then(|l| l.cgroups_path().as_deref()), id)?;
    let monitor = cgroup::monitor_path(&container);
    let path_str = |p: &Path| p.to_string_lossy().into_owned();
    lxc.push("linux.cgroupsPath", "lxc.cgroup.relative", "0")?;
    lxc.push(
        "linux.cgroupsPath",
        "lxc.cgroup.dir.container",
        path_str(&container),
    )?;
    lxc.push(
        "linux.cgroupsPath",
        "lxc.cgroup.dir.monitor",
        path_str(&monitor),
    )?;
    // At exit liblxc moves the monitor into `<pivot>/lxc.pivot` to remove the
    // monitor's cgroup: a pivot per container, so that it can be removed too.
    lxc.push(
        "linux.cgroupsPath",
        "lxc.cgroup.dir.monitor.pivot",
        path_str(&cgroup::pivot_path(&monitor)),
    )?;
    let mut e = Emitter { lxc, layout };
    match linux.and_then(|l| l.resources().as_ref()) {
        Some(r) => resources(&mut e, r)?,
        None => devices(&mut e, &[])?,
    }
    let pivot = cgroup::pivot_path(&monitor);
    Ok(Cgroups {
        container,
        monitor,
        pivot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(linux: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2", "root": {"path": "rootfs"}, "linux": linux
        }))
        .unwrap()
    }

    fn ctr_spec() -> Spec {
        spec(serde_json::json!({
            "cgroupsPath": "/default/t1",
            "resources": {
                "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}],
                "memory": {"limit": 67108864},
                "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
                "pids": {"limit": 100}
            }
        }))
    }

    fn defaults(prefix: &str) -> String {
        DEFAULT_ALLOWED_DEVICES
            .iter()
            .map(|r| format!("{prefix}devices.allow = {r}\n"))
            .collect()
    }

    #[test]
    fn golden_v1() {
        let mut lxc = LxcConfig::new();
        let cg = translate(&ctr_spec(), "t1", Layout::V1, &mut lxc).unwrap();
        assert_eq!(cg.container, PathBuf::from("default/t1"));
        assert_eq!(cg.monitor, PathBuf::from("lxcri.monitor/default/t1"));
        let want = format!(
            "\
lxc.cgroup.relative = 0
lxc.cgroup.dir.container = default/t1
lxc.cgroup.dir.monitor = lxcri.monitor/default/t1
lxc.cgroup.dir.monitor.pivot = lxcri.monitor/default/t1.pivot
lxc.cgroup.devices.deny = a *:* rwm
lxc.cgroup.devices.allow = c 1:3 rwm
{}lxc.cgroup.memory.limit_in_bytes = 67108864
lxc.cgroup.cpu.shares = 1024
lxc.cgroup.cpu.cfs_period_us = 100000
lxc.cgroup.cpu.cfs_quota_us = 50000
lxc.cgroup.pids.max = 100
",
            defaults("lxc.cgroup.")
        );
        assert_eq!(lxc.render(), want);
    }

    #[test]
    fn golden_v2() {
        let mut lxc = LxcConfig::new();
        translate(&ctr_spec(), "t1", Layout::V2, &mut lxc).unwrap();
        let want = format!(
            "\
lxc.cgroup.relative = 0
lxc.cgroup.dir.container = default/t1
lxc.cgroup.dir.monitor = lxcri.monitor/default/t1
lxc.cgroup.dir.monitor.pivot = lxcri.monitor/default/t1.pivot
lxc.cgroup2.devices.deny = a *:* rwm
lxc.cgroup2.devices.allow = c 1:3 rwm
{}lxc.cgroup2.memory.max = 67108864
lxc.cgroup2.cpu.weight = 39
lxc.cgroup2.cpu.max = 50000 100000
lxc.cgroup2.pids.max = 100
",
            defaults("lxc.cgroup2.")
        );
        assert_eq!(lxc.render(), want);
    }

    #[test]
    fn limits_for_update() {
        let r: LinuxResources = serde_json::from_value(
            serde_json::json!({"memory": {"limit": 1048576}, "pids": {"limit": 0}}),
        )
        .unwrap();
        let l = limits(&r, Layout::V1).unwrap();
        assert!(l.contains(&("memory.limit_in_bytes".into(), "1048576".into())));
        assert!(l.contains(&("pids.max".into(), "max".into())));
        let l = limits(&r, Layout::V2).unwrap();
        assert!(l.contains(&("memory.max".into(), "1048576".into())));
    }

    #[test]
    fn weight_conversion_matches_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn unsupported_resources_are_errors() {
        let s = spec(serde_json::json!({"resources": {"blockIO": {"weight": 10}}}));
        let e = translate(&s, "x", Layout::V1, &mut LxcConfig::new()).unwrap_err();
        assert_eq!(e.field, "linux.resources.blockIO");
        let s = spec(serde_json::json!({"resources": {"memory": {"swappiness": 10}}}));
        let e = translate(&s, "x", Layout::V1, &mut LxcConfig::new()).unwrap_err();
        assert_eq!(e.field, "linux.resources.memory.swappiness");
    }

    #[test]
    fn memory_swap_as_runc() {
        let s = spec(serde_json::json!({"resources": {"memory": {"limit": 100, "swap": 300}}}));
        let mut c = LxcConfig::new();
        translate(&s, "x", Layout::V1, &mut c).unwrap();
        let r = c.render();
        assert!(
            r.contains("lxc.cgroup.memory.memsw.limit_in_bytes = 300"),
            "{r}"
        );
        let mut c = LxcConfig::new();
        translate(&s, "x", Layout::V2, &mut c).unwrap();
        assert!(c.render().contains("lxc.cgroup2.memory.swap.max = 200"));
        let s = spec(serde_json::json!({"resources": {"memory": {"limit": 100, "swap": -1}}}));
        let mut c = LxcConfig::new();
        translate(&s, "x", Layout::V2, &mut c).unwrap();
        assert!(c.render().contains("lxc.cgroup2.memory.swap.max = max"));
        let s = spec(serde_json::json!({"resources": {"memory": {"limit": 100, "swap": 50}}}));
        assert!(translate(&s, "x", Layout::V2, &mut LxcConfig::new()).is_err());
    }
}
