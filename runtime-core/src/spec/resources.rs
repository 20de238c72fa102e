//! `linux.cgroupsPath` and `linux.resources`.
//!
//! On a v1 (or hybrid) host liblxc only applies `lxc.cgroup.<v1 file>` keys and
//! silently ignores `lxc.cgroup2.*`; on a pure v2 host it is the reverse. Each limit
//! is emitted for the layout of the host.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory, LinuxResources, Spec,
};

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
    /// The paths are relative to the runtime's own cgroup in each hierarchy
    /// (a relative `linux.cgroupsPath`, `lxc.cgroup.relative = 1`), not to the
    /// hierarchy roots.
    pub relative: bool,
    /// The systemd driver's unit for the container's cgroup.
    pub systemd: Option<crate::systemd::Unit>,
}

/// The devices every container may use, as runc allows them (after the spec's own
/// rules): mknod of any device, and the standard character devices. A rule with a
/// path is dropped when `linux.devices` has a node at that path (runc: the spec's
/// device takes priority).
const DEFAULT_ALLOWED_DEVICES: &[(&str, Option<&str>)] = &[
    ("c *:* m", None),
    ("b *:* m", None),
    ("c 1:3 rwm", Some("/dev/null")),
    ("c 1:8 rwm", Some("/dev/random")),
    ("c 1:7 rwm", Some("/dev/full")),
    ("c 5:0 rwm", Some("/dev/tty")),
    ("c 1:5 rwm", Some("/dev/zero")),
    ("c 1:9 rwm", Some("/dev/urandom")),
    ("c 136:* rwm", None),  // /dev/pts/*
    ("c 5:2 rwm", None),    // /dev/ptmx
    ("c 10:200 rwm", None), // /dev/net/tun
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

fn devices(
    e: &mut Emitter,
    rules: &[LinuxDeviceCgroup],
    node_paths: &[&Path],
) -> Result<(), SpecError> {
    let (allow_key, deny_key) = ("devices.allow", "devices.deny");
    // Default deny, like runc (its device emulator starts from deny-all): without
    // it, a v1 cgroup starts with "a *:* rwm" allowed and the allow rules below
    // would restrict nothing. containerd's specs start with this rule already.
    let starts_with_deny_all = rules.first().is_some_and(|d| {
        !d.allow()
            && matches!(d.typ(), None | Some(LinuxDeviceType::A))
            && d.major().is_none_or(|n| n < 0)
            && d.minor().is_none_or(|n| n < 0)
            && d.access().as_deref().is_none_or(|a| a == "rwm")
    });
    if !starts_with_deny_all {
        e.set(
            "linux.resources.devices",
            Some(deny_key),
            Some(deny_key),
            "a *:* rwm".into(),
        )?;
    }
    for (i, d) in rules.iter().enumerate() {
        let field = format!("linux.resources.devices[{i}]");
        let rule = device_rule(&field, d)?;
        let key = if d.allow() { allow_key } else { deny_key };
        e.set(&field, Some(key), Some(key), rule)?;
    }
    for (rule, path) in DEFAULT_ALLOWED_DEVICES {
        if path.is_some_and(|p| node_paths.contains(&Path::new(p))) {
            continue;
        }
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

fn resources(e: &mut Emitter, r: &LinuxResources, node_paths: &[&Path]) -> Result<(), SpecError> {
    devices(e, r.devices().as_deref().unwrap_or_default(), node_paths)?;
    if let Some(m) = r.memory() {
        memory(e, m)?;
    }
    if let Some(c) = r.cpu() {
        cpu(e, c)?;
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
    if let Some(b) = r.block_io() {
        block_io(e, b)?;
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        let field = format!("linux.resources.hugepageLimits[{i}]");
        let size = h.page_size();
        let valid = size.len() > 2
            && size.ends_with('B')
            && size[..size.len() - 2].chars().all(|c| c.is_ascii_digit())
            && matches!(&size[size.len() - 2..size.len() - 1], "K" | "M" | "G");
        if !valid {
            return Err(SpecError::new(
                format!("{field}.pageSize"),
                format!("{size:?} is not a page size such as 2MB"),
            ));
        }
        e.set(
            &field,
            Some(&format!("hugetlb.{size}.limit_in_bytes")),
            Some(&format!("hugetlb.{size}.max")),
            h.limit().to_string(),
        )?;
    }
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            e.set(
                "linux.resources.network.classID",
                Some("net_cls.classid"),
                None,
                id.to_string(),
            )?;
        }
        for (i, p) in n.priorities().iter().flatten().enumerate() {
            let field = format!("linux.resources.network.priorities[{i}]");
            let name = p.name();
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '/') {
                return Err(SpecError::new(
                    format!("{field}.name"),
                    format!("{name:?} is not an interface name"),
                ));
            }
            e.set(
                &field,
                Some("net_prio.ifpriomap"),
                None,
                format!("{name} {}", p.priority()),
            )?;
        }
    }
    if let Some(rdma) = r.rdma() {
        // In name order: a HashMap has none, the config must be reproducible.
        let mut devs: Vec<_> = rdma.iter().collect();
        devs.sort_by(|a, b| a.0.cmp(b.0));
        for (dev, l) in devs {
            let field = format!("linux.resources.rdma.{dev}");
            if dev.is_empty() || dev.contains(|c: char| c.is_whitespace()) {
                return Err(SpecError::new(field, "invalid device name"));
            }
            let mut v = dev.clone();
            if let Some(h) = l.hca_handles() {
                v.push_str(&format!(" hca_handle={h}"));
            }
            if let Some(o) = l.hca_objects() {
                v.push_str(&format!(" hca_object={o}"));
            }
            if v == *dev {
                continue;
            }
            e.set(&field, Some("rdma.max"), Some("rdma.max"), v)?;
        }
    }
    if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
        unified(e, u)?;
    }
    Ok(())
}

fn memory(e: &mut Emitter, m: &LinuxMemory) -> Result<(), SpecError> {
    const F: &str = "linux.resources.memory";
    let v1 = e.layout == Layout::V1;
    if let Some(l) = m.limit() {
        let v = if l < 0 && !v1 {
            "max".to_string()
        } else {
            l.to_string()
        };
        e.set(
            &format!("{F}.limit"),
            Some("memory.limit_in_bytes"),
            Some("memory.max"),
            v,
        )?;
    }
    if let Some(l) = m.reservation() {
        let v = if l < 0 && !v1 {
            "max".to_string()
        } else {
            l.to_string()
        };
        e.set(
            &format!("{F}.reservation"),
            Some("memory.soft_limit_in_bytes"),
            Some("memory.low"),
            v,
        )?;
    }
    if let Some(swap) = m.swap() {
        let field = format!("{F}.swap");
        let limit = m.limit().unwrap_or(0);
        if v1 {
            // memory+swap, as the spec's swap; liblxc writes it after the limit.
            if swap > 0 && limit > 0 && swap < limit {
                return Err(SpecError::new(
                    field,
                    "memory+swap must not be below the memory limit",
                ));
            }
            e.set(
                &field,
                Some("memory.memsw.limit_in_bytes"),
                None,
                swap.to_string(),
            )?;
        } else {
            // runc's conversion: v2 limits swap alone.
            let v = match swap {
                -1 => Some("max".to_string()),
                0 => None,
                s if s < 0 => return Err(SpecError::new(field, format!("invalid value {s}"))),
                s => {
                    if limit <= 0 {
                        return Err(SpecError::new(
                            field,
                            "a swap limit needs a memory limit on cgroup v2",
                        ));
                    }
                    if s < limit {
                        return Err(SpecError::new(
                            field,
                            "memory+swap must not be below the memory limit",
                        ));
                    }
                    Some((s - limit).to_string())
                }
            };
            if let Some(v) = v {
                e.set(&field, None, Some("memory.swap.max"), v)?;
            }
        }
    }
    if m.kernel().is_some() {
        return Err(SpecError::new(
            format!("{F}.kernel"),
            "kernel memory limits are deprecated by the OCI spec and no longer enforced by Linux",
        ));
    }
    if let Some(t) = m.kernel_tcp() {
        e.set(
            &format!("{F}.kernelTCP"),
            Some("memory.kmem.tcp.limit_in_bytes"),
            None,
            t.to_string(),
        )?;
    }
    if let Some(s) = m.swappiness() {
        let field = format!("{F}.swappiness");
        if s > 100 {
            return Err(SpecError::new(field, format!("{s} is above 100")));
        }
        e.set(&field, Some("memory.swappiness"), None, s.to_string())?;
    }
    if m.disable_oom_killer() == Some(true) {
        e.set(
            &format!("{F}.disableOOMKiller"),
            Some("memory.oom_control"),
            None,
            "1".into(),
        )?;
    }
    if let Some(h) = m.use_hierarchy() {
        let field = format!("{F}.useHierarchy");
        if !h {
            return Err(SpecError::new(
                field,
                "Linux always uses the memory hierarchy (cgroup v1 use_hierarchy=0 is gone)",
            ));
        }
        e.set(&field, Some("memory.use_hierarchy"), None, "1".into())?;
    }
    if m.check_before_update() == Some(true) {
        return Err(SpecError::unsupported(format!("{F}.checkBeforeUpdate")));
    }
    Ok(())
}

fn cpu(e: &mut Emitter, c: &LinuxCpu) -> Result<(), SpecError> {
    const F: &str = "linux.resources.cpu";
    // Zero means unset for these, as in runc (nerdctl and CRI send zeros).
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        let v = match e.layout {
            Layout::V1 => s.to_string(),
            Layout::V2 => shares_to_weight(s).to_string(),
        };
        e.set(
            &format!("{F}.shares"),
            Some("cpu.shares"),
            Some("cpu.weight"),
            v,
        )?;
    }
    match e.layout {
        Layout::V1 => {
            if let Some(p) = c.period().filter(|p| *p != 0) {
                e.set(
                    &format!("{F}.period"),
                    Some("cpu.cfs_period_us"),
                    None,
                    p.to_string(),
                )?;
            }
            if let Some(q) = c.quota().filter(|q| *q != 0) {
                e.set(
                    &format!("{F}.quota"),
                    Some("cpu.cfs_quota_us"),
                    None,
                    q.to_string(),
                )?;
            }
        }
        Layout::V2 => {
            if c.quota().is_some_and(|q| q != 0) || c.period().is_some_and(|p| p != 0) {
                let q = c
                    .quota()
                    .filter(|q| *q > 0)
                    .map(|q| q.to_string())
                    .unwrap_or("max".into());
                let p = c.period().filter(|p| *p != 0).unwrap_or(100_000);
                e.set(
                    &format!("{F}.quota"),
                    None,
                    Some("cpu.max"),
                    format!("{q} {p}"),
                )?;
            }
        }
    }
    if let Some(b) = c.burst() {
        e.set(
            &format!("{F}.burst"),
            Some("cpu.cfs_burst_us"),
            Some("cpu.max.burst"),
            b.to_string(),
        )?;
    }
    // The period first: the kernel checks the runtime against it.
    if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
        e.set(
            &format!("{F}.realtimePeriod"),
            Some("cpu.rt_period_us"),
            None,
            p.to_string(),
        )?;
    }
    if let Some(r) = c.realtime_runtime().filter(|r| *r != 0) {
        e.set(
            &format!("{F}.realtimeRuntime"),
            Some("cpu.rt_runtime_us"),
            None,
            r.to_string(),
        )?;
    }
    if let Some(cpus) = c.cpus().as_ref().filter(|s| !s.is_empty()) {
        e.set(
            &format!("{F}.cpus"),
            Some("cpuset.cpus"),
            Some("cpuset.cpus"),
            cpus.clone(),
        )?;
    }
    if let Some(mems) = c.mems().as_ref().filter(|s| !s.is_empty()) {
        e.set(
            &format!("{F}.mems"),
            Some("cpuset.mems"),
            Some("cpuset.mems"),
            mems.clone(),
        )?;
    }
    if let Some(i) = c.idle() {
        let field = format!("{F}.idle");
        if !(0..=1).contains(&i) {
            return Err(SpecError::new(field, format!("{i} is not 0 or 1")));
        }
        e.set(&field, Some("cpu.idle"), Some("cpu.idle"), i.to_string())?;
    }
    Ok(())
}

/// cgroup v2 io.weight from a v1 blkio weight (10..1000), as runc converts it.
pub fn blkio_weight_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w).clamp(10, 1000) - 10) * 9999 / 990
}

fn block_io(e: &mut Emitter, b: &LinuxBlockIo) -> Result<(), SpecError> {
    const F: &str = "linux.resources.blockIO";
    let layout = e.layout;
    let weight = |w: u16| match layout {
        Layout::V1 => w.to_string(),
        Layout::V2 => blkio_weight_to_io_weight(w).to_string(),
    };
    if let Some(w) = b.weight() {
        let field = format!("{F}.weight");
        if !(10..=1000).contains(&w) {
            return Err(SpecError::new(field, format!("{w} is outside 10..1000")));
        }
        let v = weight(w);
        e.set(&field, Some("blkio.weight"), Some("io.weight"), v)?;
    }
    if b.leaf_weight().is_some() {
        return Err(SpecError::new(
            format!("{F}.leafWeight"),
            "leaf weights existed only with the CFQ I/O scheduler, gone since Linux 5.0",
        ));
    }
    for (i, d) in b.weight_device().iter().flatten().enumerate() {
        let field = format!("{F}.weightDevice[{i}]");
        if d.leaf_weight().is_some() {
            return Err(SpecError::new(
                format!("{field}.leafWeight"),
                "leaf weights existed only with the CFQ I/O scheduler, gone since Linux 5.0",
            ));
        }
        let Some(w) = d.weight() else { continue };
        if !(10..=1000).contains(&w) {
            return Err(SpecError::new(
                format!("{field}.weight"),
                format!("{w} is outside 10..1000"),
            ));
        }
        let dev = device_number(&field, d.major(), d.minor())?;
        e.set(
            &field,
            Some("blkio.weight_device"),
            Some("io.weight"),
            format!("{dev} {}", weight(w)),
        )?;
    }
    let throttles = [
        (
            "throttleReadBpsDevice",
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
            "rbps",
        ),
        (
            "throttleWriteBpsDevice",
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
            "wbps",
        ),
        (
            "throttleReadIOPSDevice",
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
            "riops",
        ),
        (
            "throttleWriteIOPSDevice",
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
            "wiops",
        ),
    ];
    for (name, list, v1_file, v2_key) in throttles {
        for (i, d) in list.iter().flatten().enumerate() {
            let field = format!("{F}.{name}[{i}]");
            let dev = device_number(&field, d.major(), d.minor())?;
            let v = match e.layout {
                Layout::V1 => format!("{dev} {}", d.rate()),
                Layout::V2 => format!("{dev} {v2_key}={}", d.rate()),
            };
            e.set(&field, Some(v1_file), Some("io.max"), v)?;
        }
    }
    Ok(())
}

fn device_number(field: &str, major: i64, minor: i64) -> Result<String, SpecError> {
    if major < 0 || minor < 0 {
        return Err(SpecError::new(
            field,
            format!("invalid device number {major}:{minor}"),
        ));
    }
    Ok(format!("{major}:{minor}"))
}

/// `linux.resources.unified`: cgroup v2 files, written as given (runc refuses
/// them on a v1 host, and so does lxcri).
fn unified(e: &mut Emitter, u: &HashMap<String, String>) -> Result<(), SpecError> {
    let mut keys: Vec<&String> = u.keys().collect();
    keys.sort();
    for k in keys {
        let field = format!("linux.resources.unified.{k}");
        let valid = k
            .split_once('.')
            .is_some_and(|(c, f)| !c.is_empty() && !f.is_empty())
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid {
            return Err(SpecError::new(
                field,
                "is not a cgroup v2 file name such as memory.high",
            ));
        }
        if k.starts_with("cgroup.") {
            return Err(SpecError::new(
                field,
                "cgroup core files are managed by the runtime",
            ));
        }
        e.set(&field, None, Some(k), u[k].clone())?;
    }
    Ok(())
}

/// On a host whose hugetlb controller is `place`, with `layout`: the hugepage
/// limits of `lxc` that liblxc cannot apply are taken out of it and returned as
/// cgroup v2 files (`hugetlb.<size>.max`) for the runtime to write into the
/// container's cgroup of the unified hierarchy (a hybrid host: liblxc only
/// writes v1 keys there). A host without hugetlb is an error naming the field.
pub fn hugetlb_for_host(
    lxc: &mut LxcConfig,
    layout: Layout,
    place: cgroup::Hugetlb,
) -> Result<Vec<(String, String)>, SpecError> {
    const PREFIX: &str = "lxc.cgroup.hugetlb.";
    const FIELD: &str = "linux.resources.hugepageLimits";
    if layout == Layout::V2 {
        if place == cgroup::Hugetlb::Absent
            && lxc
                .items()
                .iter()
                .any(|(k, _)| k.starts_with("lxc.cgroup2.hugetlb."))
        {
            return Err(SpecError::new(FIELD, "no hugetlb controller on this host"));
        }
        return Ok(Vec::new());
    }
    match place {
        cgroup::Hugetlb::Managed => Ok(Vec::new()),
        cgroup::Hugetlb::Absent => match lxc.items().iter().any(|(k, _)| k.starts_with(PREFIX)) {
            true => Err(SpecError::new(FIELD, "no hugetlb controller on this host")),
            false => Ok(Vec::new()),
        },
        cgroup::Hugetlb::HybridUnified => Ok(lxc
            .take_prefixed(PREFIX)
            .into_iter()
            .map(|(k, v)| {
                let file = k
                    .trim_start_matches("lxc.cgroup.")
                    .replace(".limit_in_bytes", ".max");
                (file, v)
            })
            .collect()),
    }
}

/// `linux.resources.rdma` on a host whose rdma controller liblxc can or cannot
/// set (`available`, asked only when the spec has a limit): a limit it cannot
/// set is an error naming the device's field (liblxc would fail the start
/// without naming it; runc fails too).
pub fn rdma_for_host(
    spec: &Spec,
    layout: Layout,
    available: impl FnOnce() -> bool,
) -> Result<(), SpecError> {
    let rdma = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.rdma().as_ref());
    let mut limited: Vec<&String> = rdma
        .into_iter()
        .flatten()
        .filter(|(_, l)| l.hca_handles().is_some() || l.hca_objects().is_some())
        .map(|(dev, _)| dev)
        .collect();
    limited.sort();
    match limited.first() {
        None => Ok(()),
        Some(_) if available() => Ok(()),
        Some(dev) => Err(SpecError::new(
            format!("linux.resources.rdma.{dev}"),
            match layout {
                Layout::V1 => "no rdma controller in a cgroup v1 hierarchy of this host",
                Layout::V2 => "no rdma controller on this host (/sys/fs/cgroup/cgroup.controllers)",
            },
        )),
    }
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
        &[],
    )?;
    let prefix = layout.key_prefix();
    Ok(lxc
        .items()
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone())))
        .collect())
}

/// Translate `linux.cgroupsPath` and `linux.resources` (cgroupfs driver).
#[cfg(test)]
pub fn translate(
    spec: &Spec,
    id: &str,
    layout: Layout,
    lxc: &mut LxcConfig,
) -> Result<Cgroups, SpecError> {
    translate_with(spec, id, layout, cgroup::Driver::Cgroupfs, lxc)
}

/// Translate `linux.cgroupsPath` and `linux.resources` for the cgroup `driver`.
/// With the systemd driver liblxc still creates and fills the cgroup, at the
/// unit's expanded path (the runtime then hands it to systemd).
pub fn translate_with(
    spec: &Spec,
    id: &str,
    layout: Layout,
    driver: cgroup::Driver,
    lxc: &mut LxcConfig,
) -> Result<Cgroups, SpecError> {
    let linux = spec.linux().as_ref();
    let path = linux.and_then(|l| l.cgroups_path().as_deref());
    let (container, systemd) = cgroup::placement(driver, path, id)?;
    // A relative path: liblxc joins it (and the monitor's) to the start helper's
    // own cgroup in each hierarchy, the runtime's, which is runc's rule on v1. (On
    // a pure v2 host the runtime makes the path absolute first, as runc does.)
    let relative = systemd.is_none() && cgroup::is_relative(path);
    let monitor = cgroup::monitor_path(&container);
    let path_str = |p: &Path| p.to_string_lossy().into_owned();
    lxc.push(
        "linux.cgroupsPath",
        "lxc.cgroup.relative",
        if relative { "1" } else { "0" },
    )?;
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
    let node_paths: Vec<&Path> = linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
        .map(|d| d.path().as_path())
        .collect();
    match linux.and_then(|l| l.resources().as_ref()) {
        Some(r) => resources(&mut e, r, &node_paths)?,
        None => devices(&mut e, &[], &node_paths)?,
    }
    let pivot = cgroup::pivot_path(&monitor);
    Ok(Cgroups {
        container,
        monitor,
        pivot,
        relative,
        systemd,
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
            .map(|(r, _)| format!("{prefix}devices.allow = {r}\n"))
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

    /// hugepageLimits: v1 keys where liblxc can apply them; on a hybrid host
    /// whose hugetlb is in the unified hierarchy, v2 files for the runtime.
    #[test]
    fn hugepage_limits_per_host() {
        use cgroup::Hugetlb;
        let s = spec(serde_json::json!({"resources": {"hugepageLimits": [
            {"pageSize": "2MB", "limit": 4194304}, {"pageSize": "1GB", "limit": 0}]}}));
        let run = |layout, place| {
            let mut lxc = LxcConfig::new();
            translate(&s, "c1", layout, &mut lxc).unwrap();
            let r = hugetlb_for_host(&mut lxc, layout, place);
            let keys: Vec<String> = lxc
                .items()
                .iter()
                .filter(|(k, _)| k.contains("hugetlb"))
                .map(|(k, v)| format!("{k} = {v}"))
                .collect();
            (r, keys)
        };
        let (r, keys) = run(Layout::V1, Hugetlb::Managed);
        assert!(r.unwrap().is_empty());
        assert_eq!(
            keys,
            [
                "lxc.cgroup.hugetlb.2MB.limit_in_bytes = 4194304",
                "lxc.cgroup.hugetlb.1GB.limit_in_bytes = 0"
            ]
        );
        let (r, keys) = run(Layout::V1, Hugetlb::HybridUnified);
        assert!(keys.is_empty());
        assert_eq!(
            r.unwrap(),
            [
                ("hugetlb.2MB.max".to_string(), "4194304".to_string()),
                ("hugetlb.1GB.max".to_string(), "0".to_string())
            ]
        );
        let (r, _) = run(Layout::V1, Hugetlb::Absent);
        assert_eq!(r.unwrap_err().field, "linux.resources.hugepageLimits");
        let (r, keys) = run(Layout::V2, Hugetlb::Managed);
        assert!(r.unwrap().is_empty());
        assert_eq!(
            keys,
            [
                "lxc.cgroup2.hugetlb.2MB.max = 4194304",
                "lxc.cgroup2.hugetlb.1GB.max = 0"
            ]
        );
        let (r, _) = run(Layout::V2, Hugetlb::Absent);
        assert_eq!(r.unwrap_err().field, "linux.resources.hugepageLimits");
        // Without hugepage limits nothing changes anywhere.
        let mut lxc = LxcConfig::new();
        translate(&spec(serde_json::json!({})), "c1", Layout::V1, &mut lxc).unwrap();
        let before = lxc.render();
        assert!(hugetlb_for_host(&mut lxc, Layout::V1, Hugetlb::Absent)
            .unwrap()
            .is_empty());
        assert_eq!(lxc.render(), before);
    }

    /// rdma limits on a host without a usable rdma controller: an error naming
    /// the first limited device's field; devices without a limit, no rdma, or a
    /// host with the controller: fine.
    #[test]
    fn rdma_limits_need_the_controller() {
        let limited = spec(serde_json::json!({"resources": {"rdma": {
            "mlx5_1": {"hcaHandles": 3}, "mlx5_0": {}, "mlx5_2": {"hcaObjects": 9}
        }}}));
        let e = rdma_for_host(&limited, Layout::V1, || false).unwrap_err();
        assert_eq!(e.field, "linux.resources.rdma.mlx5_1");
        assert!(e.to_string().contains("cgroup v1"), "{e}");
        let e = rdma_for_host(&limited, Layout::V2, || false).unwrap_err();
        assert_eq!(e.field, "linux.resources.rdma.mlx5_1");
        rdma_for_host(&limited, Layout::V1, || true).unwrap();
        rdma_for_host(&limited, Layout::V2, || true).unwrap();
        let unlimited = spec(serde_json::json!({"resources": {"rdma": {"mlx5_0": {}}}}));
        rdma_for_host(&unlimited, Layout::V1, || false).unwrap();
        rdma_for_host(&spec(serde_json::json!({})), Layout::V1, || false).unwrap();
    }

    /// A relative cgroupsPath: `lxc.cgroup.relative = 1`, the paths as given.
    #[test]
    fn golden_relative_cgroups_path() {
        let mut lxc = LxcConfig::new();
        let s = spec(serde_json::json!({"cgroupsPath": "pod1/c1"}));
        let cg = translate(&s, "c1", Layout::V1, &mut lxc).unwrap();
        assert!(cg.relative);
        assert_eq!(cg.container, PathBuf::from("pod1/c1"));
        let want = format!(
            "\
lxc.cgroup.relative = 1
lxc.cgroup.dir.container = pod1/c1
lxc.cgroup.dir.monitor = lxcri.monitor/pod1/c1
lxc.cgroup.dir.monitor.pivot = lxcri.monitor/pod1/c1.pivot
lxc.cgroup.devices.deny = a *:* rwm
{}",
            defaults("lxc.cgroup.")
        );
        assert_eq!(lxc.render(), want);
        let s = spec(serde_json::json!({"cgroupsPath": "system.slice:cri:c1"}));
        let e = translate(&s, "c1", Layout::V1, &mut LxcConfig::new()).unwrap_err();
        assert_eq!(e.field, "linux.cgroupsPath");
        assert!(e.reason.contains("systemd"), "{e}");
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
    fn devices_default_deny_and_spec_nodes_override_defaults() {
        // No device rules at all: deny-all first, then runc's allow list.
        let mut lxc = LxcConfig::new();
        translate(&spec(serde_json::json!({})), "t1", Layout::V1, &mut lxc).unwrap();
        let rules: Vec<&str> = lxc.get_all("lxc.cgroup.devices.deny").collect();
        assert_eq!(rules, vec!["a *:* rwm"]);
        assert_eq!(lxc.items()[4].0, "lxc.cgroup.devices.deny");
        // A spec node at /dev/null replaces the default /dev/null rule (runc).
        let s = spec(serde_json::json!({
            "devices": [{"path": "/dev/null", "type": "c", "major": 1, "minor": 7}],
            "resources": {"devices": [{"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}]}
        }));
        let mut lxc = LxcConfig::new();
        translate(&s, "t1", Layout::V1, &mut lxc).unwrap();
        let allow: Vec<&str> = lxc.get_all("lxc.cgroup.devices.allow").collect();
        assert_eq!(allow[0], "c 10:229 rw");
        assert!(!allow.contains(&"c 1:3 rwm"), "{allow:?}");
        assert!(allow.contains(&"c 1:5 rwm"), "{allow:?}");
        assert_eq!(
            lxc.get_all("lxc.cgroup.devices.deny").collect::<Vec<_>>(),
            vec!["a *:* rwm"]
        );
    }

    /// nerdctl and CRI send zeros for unset cpu fields: runc writes nothing.
    #[test]
    fn zero_cpu_fields_are_unset() {
        let r = serde_json::json!({"cpu": {"shares": 0, "quota": 0, "period": 0,
                                           "realtimePeriod": 0, "realtimeRuntime": 0}});
        assert_eq!(
            limits_of(r.clone(), Layout::V1).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(limits_of(r, Layout::V2).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn weight_conversion_matches_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    /// Every resource but devices, as a CRI/nerdctl-style spec could carry them.
    fn full_resources() -> serde_json::Value {
        serde_json::json!({
            "memory": {"limit": 268435456, "reservation": 134217728, "swap": 536870912,
                       "kernelTCP": 16777216, "swappiness": 10, "disableOOMKiller": true},
            "cpu": {"shares": 512, "quota": 20000, "period": 100000, "burst": 1000,
                    "realtimePeriod": 1000000, "realtimeRuntime": 0, "cpus": "0", "mems": "0", "idle": 1},
            "pids": {"limit": 42},
            "blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],
                        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2097152}],
                        "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
                        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 200}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
            "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}}
        })
    }

    fn limits_of(r: serde_json::Value, layout: Layout) -> Result<Vec<String>, SpecError> {
        let r: LinuxResources = serde_json::from_value(r).unwrap();
        Ok(limits(&r, layout)?
            .into_iter()
            .filter(|(k, _)| !k.starts_with("devices."))
            .map(|(k, v)| format!("{k} = {v}"))
            .collect())
    }

    #[test]
    fn golden_full_resources_v1() {
        assert_eq!(
            limits_of(full_resources(), Layout::V1).unwrap(),
            [
                "memory.limit_in_bytes = 268435456",
                "memory.soft_limit_in_bytes = 134217728",
                "memory.memsw.limit_in_bytes = 536870912",
                "memory.kmem.tcp.limit_in_bytes = 16777216",
                "memory.swappiness = 10",
                "memory.oom_control = 1",
                "cpu.shares = 512",
                "cpu.cfs_period_us = 100000",
                "cpu.cfs_quota_us = 20000",
                "cpu.cfs_burst_us = 1000",
                "cpu.rt_period_us = 1000000",
                "cpuset.cpus = 0",
                "cpuset.mems = 0",
                "cpu.idle = 1",
                "pids.max = 42",
                "blkio.weight = 500",
                "blkio.weight_device = 8:0 100",
                "blkio.throttle.read_bps_device = 8:0 1048576",
                "blkio.throttle.write_bps_device = 8:0 2097152",
                "blkio.throttle.read_iops_device = 8:0 100",
                "blkio.throttle.write_iops_device = 8:0 200",
                "hugetlb.2MB.limit_in_bytes = 4194304",
                "net_cls.classid = 1048577",
                "net_prio.ifpriomap = eth0 5",
                "rdma.max = mlx5_1 hca_handle=3 hca_object=10000",
            ]
        );
        // unified is cgroup v2 only (runc refuses it on v1 too).
        let e = limits_of(
            serde_json::json!({"unified": {"memory.high": "1M"}}),
            Layout::V1,
        )
        .unwrap_err();
        assert_eq!(e.field, "linux.resources.unified.memory.high");
    }

    #[test]
    fn golden_resources_v2() {
        let r = serde_json::json!({
            "memory": {"limit": 268435456, "reservation": 134217728, "swap": 536870912},
            "cpu": {"shares": 512, "quota": 20000, "period": 100000, "burst": 1000, "cpus": "0", "mems": "0", "idle": 1},
            "pids": {"limit": 42},
            "blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],
                        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 200}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "rdma": {"mlx5_1": {"hcaHandles": 3}},
            "unified": {"memory.high": "200000000", "io.latency": "8:0 target=10"}
        });
        assert_eq!(
            limits_of(r, Layout::V2).unwrap(),
            [
                "memory.max = 268435456",
                "memory.low = 134217728",
                "memory.swap.max = 268435456",
                "cpu.weight = 20",
                "cpu.max = 20000 100000",
                "cpu.max.burst = 1000",
                "cpuset.cpus = 0",
                "cpuset.mems = 0",
                "cpu.idle = 1",
                "pids.max = 42",
                "io.weight = 4950",
                "io.weight = 8:0 910",
                "io.max = 8:0 rbps=1048576",
                "io.max = 8:0 wiops=200",
                "hugetlb.2MB.max = 4194304",
                "rdma.max = mlx5_1 hca_handle=3",
                "io.latency = 8:0 target=10",
                "memory.high = 200000000",
            ]
        );
        // swap -1 is unlimited; 0 leaves it alone.
        let swap = |s: i64| {
            limits_of(
                serde_json::json!({"memory": {"limit": 1048576, "swap": s}}),
                Layout::V2,
            )
            .unwrap()
        };
        assert_eq!(swap(-1), ["memory.max = 1048576", "memory.swap.max = max"]);
        assert_eq!(swap(0), ["memory.max = 1048576"]);
    }

    #[test]
    fn resources_without_a_v2_equivalent_are_errors_naming_the_field() {
        let v2_only_errors = [
            (
                serde_json::json!({"memory": {"swappiness": 10}}),
                "linux.resources.memory.swappiness",
            ),
            (
                serde_json::json!({"memory": {"disableOOMKiller": true}}),
                "linux.resources.memory.disableOOMKiller",
            ),
            (
                serde_json::json!({"memory": {"kernelTCP": 1}}),
                "linux.resources.memory.kernelTCP",
            ),
            (
                serde_json::json!({"memory": {"swap": 10}}),
                "linux.resources.memory.swap",
            ),
            (
                serde_json::json!({"cpu": {"realtimeRuntime": 10}}),
                "linux.resources.cpu.realtimeRuntime",
            ),
            (
                serde_json::json!({"network": {"classID": 1}}),
                "linux.resources.network.classID",
            ),
        ];
        for (r, field) in v2_only_errors {
            assert_eq!(limits_of(r, Layout::V2).unwrap_err().field, field);
        }
        let errors = [
            (
                serde_json::json!({"memory": {"kernel": 1}}),
                "linux.resources.memory.kernel",
            ),
            (
                serde_json::json!({"memory": {"swappiness": 101}}),
                "linux.resources.memory.swappiness",
            ),
            (
                serde_json::json!({"memory": {"limit": 100, "swap": 50}}),
                "linux.resources.memory.swap",
            ),
            (
                serde_json::json!({"memory": {"checkBeforeUpdate": true}}),
                "linux.resources.memory.checkBeforeUpdate",
            ),
            (
                serde_json::json!({"cpu": {"idle": 2}}),
                "linux.resources.cpu.idle",
            ),
            (
                serde_json::json!({"blockIO": {"weight": 5}}),
                "linux.resources.blockIO.weight",
            ),
            (
                serde_json::json!({"blockIO": {"leafWeight": 50}}),
                "linux.resources.blockIO.leafWeight",
            ),
            (
                serde_json::json!({"blockIO": {"throttleReadBpsDevice": [{"major": -1, "minor": 0, "rate": 1}]}}),
                "linux.resources.blockIO.throttleReadBpsDevice[0]",
            ),
            (
                serde_json::json!({"hugepageLimits": [{"pageSize": "2MB/../x", "limit": 1}]}),
                "linux.resources.hugepageLimits[0].pageSize",
            ),
            (
                serde_json::json!({"network": {"priorities": [{"name": "a b", "priority": 1}]}}),
                "linux.resources.network.priorities[0].name",
            ),
        ];
        for (r, field) in errors {
            assert_eq!(limits_of(r, Layout::V1).unwrap_err().field, field);
        }
        for bad in ["../memory.max", "memory", "cgroup.procs", "a/b.c"] {
            let r = serde_json::json!({"unified": {bad: "1"}});
            let e = limits_of(r, Layout::V2).unwrap_err();
            assert_eq!(e.field, format!("linux.resources.unified.{bad}"));
        }
    }

    #[test]
    fn io_weight_conversion_matches_runc() {
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    }
}
