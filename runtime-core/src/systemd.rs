//! The systemd cgroup driver, as runc's (libcontainer/cgroups/systemd):
//! `linux.cgroupsPath` is `slice:prefix:name`, the container's cgroup is the
//! transient unit `prefix-name.scope` (or the slice `name` when it ends in
//! `.slice`) in that slice, and systemd gets the container's limits as unit
//! properties, so that it writes the same values whenever it realizes the unit
//! (a `daemon-reload`, a property change of a sibling) instead of its defaults.
//!
//! Order at create (see docs/architecture.md): liblxc creates the cgroup at the
//! expanded path, writes the limits and places the init there; while the init
//! waits at the barrier, the runtime starts the transient unit with
//! `PIDs=[init]` and the same limits, waits for its job, then writes the exact
//! spec values again (systemd keeps a CPU quota only to a whole percent).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cgroup::Layout;
use crate::dbus::{Conn, DbusError, Value};
use crate::error::SpecError;

const FIELD: &str = "linux.cgroupsPath";

/// The systemd unit of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// `prefix-name.scope`, or `name` when it is a slice.
    pub name: String,
    /// The slice the unit is in (`system.slice` by default).
    pub slice: String,
    /// The unit's cgroup, relative to the hierarchy root.
    pub path: PathBuf,
}

impl Unit {
    pub fn is_slice(&self) -> bool {
        self.name.ends_with(".slice")
    }
}

/// runc's ExpandSlice: `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice`,
/// `-.slice` → `/`.
pub fn expand_slice(slice: &str) -> Result<PathBuf, String> {
    let invalid = || format!("invalid slice name {slice:?}");
    let Some(base) = slice.strip_suffix(".slice") else {
        return Err(invalid());
    };
    if slice.contains('/') {
        return Err(invalid());
    }
    if base == "-" {
        return Ok(PathBuf::from("/"));
    }
    let mut path = PathBuf::from("/");
    let mut prefix = String::new();
    for c in base.split('-') {
        if c.is_empty() {
            return Err(invalid());
        }
        path.push(format!("{prefix}{c}.slice"));
        prefix.push_str(c);
        prefix.push('-');
    }
    Ok(path)
}

/// Characters systemd accepts in a unit name (besides the type suffix).
fn valid_unit_part(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '\\' | '@'))
}

/// Parse `linux.cgroupsPath` for the systemd driver: `slice:prefix:name` (an
/// empty slice is `system.slice`); an empty path is `system.slice:lxcri:<id>`
/// (runc: `system.slice:runc:<id>`).
pub fn parse_cgroups_path(p: Option<&Path>, id: &str) -> Result<Unit, SpecError> {
    let s = p
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let s = if s.is_empty() {
        format!("system.slice:lxcri:{id}")
    } else {
        s
    };
    crate::lxcconf::check_value(FIELD, &s)?;
    let parts: Vec<&str> = s.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(SpecError::new(
            FIELD,
            format!(
                "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got {s:?} instead"
            ),
        ));
    };
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let parent = expand_slice(slice).map_err(|e| SpecError::new(FIELD, e))?;
    if name.is_empty() || !valid_unit_part(name) || !valid_unit_part(prefix) {
        return Err(SpecError::new(
            FIELD,
            format!("{s:?}: prefix and name must be non-empty unit name parts"),
        ));
    }
    let unit = if name.ends_with(".slice") {
        // systemd derives a slice's cgroup from its name alone: it must be a
        // child of the given slice.
        let own = expand_slice(name).map_err(|e| SpecError::new(FIELD, e))?;
        if own.parent() != Some(parent.as_path()) {
            return Err(SpecError::new(
                FIELD,
                format!("{s:?}: the slice {name} is not a child of {slice}"),
            ));
        }
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    if unit.len() > 255 {
        return Err(SpecError::new(
            FIELD,
            format!("unit name {unit} is too long"),
        ));
    }
    let path = parent.join(&unit);
    Ok(Unit {
        name: unit,
        slice: slice.to_string(),
        path: path.strip_prefix("/").unwrap().to_path_buf(),
    })
}

/// Whether systemd manages this host (sd_booted(): /run/systemd/system).
pub fn booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// systemd's "infinity" for u64 properties.
const INFINITY: u64 = u64::MAX;

fn num(field: &str, v: &str) -> Result<u64, SpecError> {
    match v {
        "max" | "-1" => Ok(INFINITY),
        _ => v
            .parse()
            .map_err(|_| SpecError::new(field, format!("{v:?} is not a number"))),
    }
}

/// A cpu list (`0-3,5`) as systemd's AllowedCPUs/AllowedMemoryNodes bitmask.
fn bitmask(field: &str, list: &str) -> Result<Vec<u8>, SpecError> {
    let bad = || SpecError::new(field, format!("{list:?} is not a cpu/node list"));
    let mut out: Vec<u8> = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a > b || b >= 8192 {
            return Err(bad());
        }
        for i in a..=b {
            if out.len() <= i / 8 {
                out.resize(i / 8 + 1, 0);
            }
            out[i / 8] |= 1 << (i % 8);
        }
    }
    Ok(out)
}

/// runc's CPU quota for systemd: microseconds per second, rounded up to a
/// whole percent (systemd stores a transient unit's quota as `CPUQuota=N%`, and
/// reads that back on daemon-reload).
fn quota_per_sec(quota: u64, period: u64) -> u64 {
    if quota == INFINITY {
        return INFINITY;
    }
    let us = quota * 1_000_000 / period;
    us.div_ceil(10_000) * 10_000
}

/// Device rules as systemd's DevicePolicy/DeviceAllow (cgroup v1, where systemd
/// otherwise writes `devices.allow a` when it realizes the unit). The rules are
/// ours (spec/resources.rs): a deny-all, then allows; a deny rule after an
/// allow cannot be expressed as an allow list.
fn device_allow(rules: &[(String, String)], proc_devices: &str) -> Result<Value, SpecError> {
    const F: &str = "linux.resources.devices";
    let mut allow: Vec<(String, String)> = Vec::new();
    for (file, rule) in rules {
        let parts: Vec<&str> = rule.split_whitespace().collect();
        let [typ, num, access] = parts[..] else {
            return Err(SpecError::new(F, format!("invalid rule {rule:?}")));
        };
        if file == "devices.deny" {
            if typ == "a" && access == "rwm" {
                allow.clear();
                continue;
            }
            return Err(SpecError::new(
                F,
                format!("the systemd cgroup driver on cgroup v1 cannot deny {rule:?} after allowing devices"),
            ));
        }
        let (major, minor) = num.split_once(':').unwrap_or(("*", "*"));
        let class = |t: &str| if t == "b" { "block" } else { "char" };
        let types: &[&str] = if typ == "a" { &["c", "b"] } else { &[typ] };
        for t in types {
            let entry = if major == "*" {
                format!("{}-*", class(t))
            } else if minor == "*" {
                // A whole major: systemd takes the driver's name in /proc/devices.
                let section = if *t == "b" {
                    "Block devices:"
                } else {
                    "Character devices:"
                };
                let name = proc_devices
                    .split(section)
                    .nth(1)
                    .and_then(|s| s.split("\n\n").next())
                    .and_then(|s| {
                        s.lines().find_map(|l| {
                            let (m, n) = l.trim().split_once(' ')?;
                            (m == major).then(|| n.trim().to_string())
                        })
                    });
                match name {
                    Some(n) => format!("{}-{n}", class(t)),
                    // runc skips a major the kernel has no driver for.
                    None => continue,
                }
            } else {
                format!("/dev/{}/{major}:{minor}", class(t))
            };
            allow.push((entry, access.to_string()));
        }
    }
    Ok(Value::StrPairs(allow))
}

/// The unit properties for a container's limits, from the cgroup files and
/// values the runtime writes (`spec::resources::limits`), as runc sets them:
/// only properties systemd 252 knows, so that a realized unit keeps them.
pub fn resource_properties(
    layout: Layout,
    limits: &[(String, String)],
) -> Result<Vec<(String, Value)>, SpecError> {
    let proc_devices = std::fs::read_to_string("/proc/devices").unwrap_or_default();
    resource_properties_with(layout, limits, &proc_devices)
}

fn resource_properties_with(
    layout: Layout,
    limits: &[(String, String)],
    proc_devices: &str,
) -> Result<Vec<(String, Value)>, SpecError> {
    const R: &str = "linux.resources";
    let mut p: Vec<(String, Value)> = Vec::new();
    let mut set = |name: &str, v: Value| {
        p.retain(|(n, _)| n != name);
        p.push((name.to_string(), v));
    };
    let get = |f: &str| {
        limits
            .iter()
            .rev()
            .find(|(k, _)| k == f)
            .map(|(_, v)| v.as_str())
    };
    match layout {
        Layout::V2 => {
            for (file, v) in limits {
                let field = format!("{R} ({file})");
                let t = |v: &str| num(&field, v).map(Value::U64);
                match file.as_str() {
                    "memory.max" => set("MemoryMax", t(v)?),
                    "memory.low" => set("MemoryLow", t(v)?),
                    "memory.min" => set("MemoryMin", t(v)?),
                    "memory.high" => set("MemoryHigh", t(v)?),
                    "memory.swap.max" => set("MemorySwapMax", t(v)?),
                    "pids.max" => set("TasksMax", t(v)?),
                    "cpu.weight" => set("CPUWeight", t(v)?),
                    "cpu.idle" if v == "1" => set("CPUWeight", Value::U64(0)),
                    "io.weight" if !v.contains(':') => {
                        set("IOWeight", t(v.trim_start_matches("default "))?)
                    }
                    "cpuset.cpus" => set("AllowedCPUs", Value::Bytes(bitmask(&field, v)?)),
                    "cpuset.mems" => set("AllowedMemoryNodes", Value::Bytes(bitmask(&field, v)?)),
                    "cpu.max" => {
                        let (q, per) = v.split_once(' ').unwrap_or((v, "100000"));
                        let per = num(&field, per)?;
                        if per == 0 || per == INFINITY {
                            return Err(SpecError::new(field, "invalid CPU period"));
                        }
                        set("CPUQuotaPeriodUSec", Value::U64(per));
                        set(
                            "CPUQuotaPerSecUSec",
                            Value::U64(quota_per_sec(num(&field, q)?, per)),
                        );
                    }
                    _ => {}
                }
            }
        }
        Layout::V1 => {
            for (file, v) in limits {
                let field = format!("{R} ({file})");
                let t = |v: &str| num(&field, v).map(Value::U64);
                match file.as_str() {
                    "memory.limit_in_bytes" => set("MemoryLimit", t(v)?),
                    "pids.max" => set("TasksMax", t(v)?),
                    "cpu.shares" => set("CPUShares", t(v)?),
                    "blkio.weight" => set("BlockIOWeight", t(v)?),
                    _ => {}
                }
            }
            let quota = get("cpu.cfs_quota_us");
            let period = get("cpu.cfs_period_us");
            if quota.is_some() || period.is_some() {
                let field = format!("{R}.cpu");
                let per = num(&field, period.unwrap_or("100000"))?;
                if per == 0 || per == INFINITY {
                    return Err(SpecError::new(field, "invalid CPU period"));
                }
                set("CPUQuotaPeriodUSec", Value::U64(per));
                if let Some(q) = quota {
                    set(
                        "CPUQuotaPerSecUSec",
                        Value::U64(quota_per_sec(num(&field, q)?, per)),
                    );
                }
            }
            let rules: Vec<(String, String)> = limits
                .iter()
                .filter(|(k, _)| k == "devices.allow" || k == "devices.deny")
                .cloned()
                .collect();
            if !rules.is_empty() {
                set("DevicePolicy", Value::Str("strict".into()));
                set("DeviceAllow", device_allow(&rules, proc_devices)?);
            }
        }
    }
    Ok(p)
}

/// Whether systemd writes this cgroup file from a unit property (see
/// [`resource_properties`]): the runtime writes it again after systemd, with
/// the exact value of the spec.
pub fn managed_file(layout: Layout, file: &str) -> bool {
    match layout {
        Layout::V2 => matches!(
            file,
            "memory.max"
                | "memory.low"
                | "memory.min"
                | "memory.high"
                | "memory.swap.max"
                | "pids.max"
                | "cpu.weight"
                | "cpu.idle"
                | "cpu.max"
                | "io.weight"
                | "cpuset.cpus"
                | "cpuset.mems"
        ),
        Layout::V1 => matches!(
            file,
            "memory.limit_in_bytes"
                | "pids.max"
                | "cpu.shares"
                | "cpu.cfs_quota_us"
                | "cpu.cfs_period_us"
                | "blkio.weight"
        ),
    }
}

/// The properties of a new transient unit for `pid` (runc's Apply).
pub fn unit_properties(
    unit: &Unit,
    layout: Layout,
    pid: u32,
    description: &str,
) -> Vec<(String, Value)> {
    let mut p = vec![("Description".to_string(), Value::Str(description.into()))];
    if unit.is_slice() {
        // A slice's parent is a dependency; a slice holds no processes of its
        // own in systemd's model: the init stays where liblxc put it.
        p.push(("Wants".into(), Value::StrArray(vec![unit.slice.clone()])));
    } else {
        p.push(("Slice".into(), Value::Str(unit.slice.clone())));
        p.push(("PIDs".into(), Value::U32Array(vec![pid])));
        p.push(("Delegate".into(), Value::Bool(true)));
    }
    p.push(("DefaultDependencies".into(), Value::Bool(false)));
    let b = |n: &str| (n.to_string(), Value::Bool(true));
    p.push(b("MemoryAccounting"));
    p.push(b("CPUAccounting"));
    p.push(b("TasksAccounting"));
    p.push(match layout {
        Layout::V2 => b("IOAccounting"),
        Layout::V1 => b("BlockIOAccounting"),
    });
    p
}

/// A connection to systemd: the system bus when a dbus-daemon listens, else
/// systemd's private socket (as systemctl does as root).
pub struct Systemd {
    conn: Conn,
    timeout: Duration,
}

const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";
const PRIVATE: &str = "/run/systemd/private";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

/// An error of the systemd driver.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("systemd cgroup driver: systemd is not PID 1 on this host (no /run/systemd/system)")]
    NotBooted,
    #[error("systemd: connect ({SYSTEM_BUS}: {bus}; {PRIVATE}: {private})")]
    Connect { bus: DbusError, private: DbusError },
    #[error("systemd: {op} {unit}: {source}")]
    Call {
        op: &'static str,
        unit: String,
        #[source]
        source: DbusError,
    },
    #[error("systemd: job {job} for {unit} finished with result {result:?}")]
    Job {
        job: String,
        unit: String,
        result: String,
    },
}

impl Systemd {
    pub fn connect(timeout: Duration) -> Result<Systemd, SystemdError> {
        if !booted() {
            return Err(SystemdError::NotBooted);
        }
        let mut conn = match Conn::connect(Path::new(SYSTEM_BUS), true, timeout) {
            Ok(mut c) => {
                c.set_peer(Some("org.freedesktop.systemd1"));
                // Signals reach a bus client only through a match rule.
                c.call(
                    Some("org.freedesktop.DBus"),
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus",
                    "AddMatch",
                    &[Value::Str(format!(
                        "type='signal',sender='org.freedesktop.systemd1',interface='{MANAGER}',member='JobRemoved',path='{MANAGER_PATH}'"
                    ))],
                    timeout,
                )
                .map_err(|source| SystemdError::Call {
                    op: "AddMatch",
                    unit: String::new(),
                    source,
                })?;
                c
            }
            Err(bus) => Conn::connect(Path::new(PRIVATE), false, timeout)
                .map_err(|private| SystemdError::Connect { bus, private })?,
        };
        // systemd emits job signals on the bus only to subscribers.
        conn.call_peer(MANAGER_PATH, MANAGER, "Subscribe", &[], timeout)
            .map_err(|source| SystemdError::Call {
                op: "Subscribe",
                unit: String::new(),
                source,
            })?;
        Ok(Systemd { conn, timeout })
    }

    #[cfg(test)]
    fn with_conn(conn: Conn, timeout: Duration) -> Systemd {
        Systemd { conn, timeout }
    }

    fn call(
        &mut self,
        op: &'static str,
        unit: &str,
        args: &[Value],
    ) -> Result<crate::dbus::Message, SystemdError> {
        self.conn
            .call_peer(MANAGER_PATH, MANAGER, op, args, self.timeout)
            .map_err(|source| SystemdError::Call {
                op,
                unit: unit.to_string(),
                source,
            })
    }

    /// Wait for the JobRemoved signal of `job`; a result other than "done" is an error.
    fn wait_job(&mut self, job: &str, unit: &str) -> Result<(), SystemdError> {
        let m = self
            .conn
            .wait_signal(self.timeout, |m| {
                m.member.as_deref() == Some("JobRemoved")
                    && m.args().get(1).map(String::as_str) == Some(job)
            })
            .map_err(|source| SystemdError::Call {
                op: "wait for JobRemoved",
                unit: unit.to_string(),
                source,
            })?;
        let result = m.args().get(3).cloned().unwrap_or_default();
        if result != "done" {
            return Err(SystemdError::Job {
                job: job.to_string(),
                unit: unit.to_string(),
                result,
            });
        }
        Ok(())
    }

    /// StartTransientUnit (mode "replace") and wait for its job.
    pub fn start_unit(
        &mut self,
        unit: &str,
        props: Vec<(String, Value)>,
    ) -> Result<(), SystemdError> {
        let r = self.call(
            "StartTransientUnit",
            unit,
            &[
                Value::Str(unit.into()),
                Value::Str("replace".into()),
                Value::Props(props),
                Value::AuxUnits(Vec::new()),
            ],
        )?;
        let job = r.args().into_iter().next().unwrap_or_default();
        self.wait_job(&job, unit)
    }

    /// StopUnit and wait for its job, then ResetFailedUnit; a unit that is
    /// gone already is fine.
    pub fn stop_unit(&mut self, unit: &str) -> Result<(), SystemdError> {
        match self.call(
            "StopUnit",
            unit,
            &[Value::Str(unit.into()), Value::Str("replace".into())],
        ) {
            Ok(r) => {
                let job = r.args().into_iter().next().unwrap_or_default();
                self.wait_job(&job, unit)?;
            }
            Err(SystemdError::Call {
                source: DbusError::Reply { name, .. },
                ..
            }) if name == "org.freedesktop.systemd1.NoSuchUnit" => {}
            Err(e) => return Err(e),
        }
        // A failed unit stays loaded (and its name taken) until reset.
        match self.call("ResetFailedUnit", unit, &[Value::Str(unit.into())]) {
            Ok(_) => Ok(()),
            Err(SystemdError::Call {
                source: DbusError::Reply { .. },
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// SetUnitProperties (runtime: not persisted beyond this boot).
    pub fn set_properties(
        &mut self,
        unit: &str,
        props: Vec<(String, Value)>,
    ) -> Result<(), SystemdError> {
        if props.is_empty() {
            return Ok(());
        }
        self.call(
            "SetUnitProperties",
            unit,
            &[
                Value::Str(unit.into()),
                Value::Bool(true),
                Value::Props(props),
            ],
        )
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_expand_slice() {
        assert_eq!(
            expand_slice("kubepods-besteffort-pod1.slice").unwrap(),
            PathBuf::from(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice"
            )
        );
        assert_eq!(
            expand_slice("system.slice").unwrap(),
            PathBuf::from("/system.slice")
        );
        assert_eq!(expand_slice("-.slice").unwrap(), PathBuf::from("/"));
        for bad in [
            "",
            ".slice",
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            "a/b.slice",
            "a.scope",
        ] {
            assert!(expand_slice(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn golden_cgroups_paths() {
        let p = |s: &str| parse_cgroups_path(Some(Path::new(s)), "abc");
        let u = p("system.slice:lxcri:abc").unwrap();
        assert_eq!(u.name, "lxcri-abc.scope");
        assert_eq!(u.slice, "system.slice");
        assert_eq!(u.path, PathBuf::from("system.slice/lxcri-abc.scope"));
        // containerd's CRI form for a pod's container.
        let u = p("kubepods-besteffort-pod1.slice:cri-containerd:abc").unwrap();
        assert_eq!(
            u.path,
            PathBuf::from("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope")
        );
        // A slice unit: its path comes from its own name.
        let u = p("kubepods-besteffort.slice::kubepods-besteffort-pod1.slice").unwrap();
        assert_eq!(u.name, "kubepods-besteffort-pod1.slice");
        assert!(u.is_slice());
        assert_eq!(
            u.path,
            PathBuf::from(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice"
            )
        );
        // Empty slice, empty prefix, empty path.
        assert_eq!(
            p(":x:abc").unwrap().path,
            PathBuf::from("system.slice/x-abc.scope")
        );
        assert_eq!(p("user.slice::abc").unwrap().name, "abc.scope");
        let u = parse_cgroups_path(None, "c9").unwrap();
        assert_eq!(u.path, PathBuf::from("system.slice/lxcri-c9.scope"));
        // Invalid forms name the field.
        for bad in [
            "/default/abc",
            "system.slice:abc",
            "a:b:c:d",
            "system:lxcri:abc",
            "a--b.slice:lxcri:abc",
            "system.slice:lxcri:",
            "system.slice:lx/cri:abc",
            "system.slice::other.slice",
            "system.slice:lxcri:a\nb",
        ] {
            let e = p(bad).unwrap_err();
            assert_eq!(e.field, "linux.cgroupsPath", "{bad:?}");
        }
        assert!(p("/default/abc")
            .unwrap_err()
            .reason
            .contains("expected cgroupsPath to be of format \"slice:prefix:name\""));
    }

    fn l(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn golden_v2_properties() {
        let p = resource_properties_with(
            Layout::V2,
            &l(&[
                ("devices.deny", "a *:* rwm"),
                ("memory.max", "67108864"),
                ("memory.low", "1048576"),
                ("memory.swap.max", "max"),
                ("cpu.weight", "39"),
                ("cpu.max", "50000 100000"),
                ("pids.max", "100"),
                ("io.weight", "500"),
                ("io.weight", "8:0 100"),
                ("cpuset.cpus", "0-1,3"),
                ("cpuset.mems", "0"),
                ("hugetlb.2MB.max", "0"),
            ]),
            "",
        )
        .unwrap();
        assert_eq!(
            p,
            vec![
                ("MemoryMax".into(), Value::U64(67108864)),
                ("MemoryLow".into(), Value::U64(1048576)),
                ("MemorySwapMax".into(), Value::U64(u64::MAX)),
                ("CPUWeight".into(), Value::U64(39)),
                ("CPUQuotaPeriodUSec".into(), Value::U64(100000)),
                ("CPUQuotaPerSecUSec".into(), Value::U64(500000)),
                ("TasksMax".into(), Value::U64(100)),
                ("IOWeight".into(), Value::U64(500)),
                ("AllowedCPUs".into(), Value::Bytes(vec![0b1011])),
                ("AllowedMemoryNodes".into(), Value::Bytes(vec![1])),
            ]
        );
        // Quota rounding (runc's): up to a whole percent of a CPU; no quota.
        let q = |v: &str| {
            resource_properties_with(Layout::V2, &l(&[("cpu.max", v)]), "").unwrap()[1].clone()
        };
        assert_eq!(q("12345 100000").1, Value::U64(130000));
        assert_eq!(q("max 100000").1, Value::U64(u64::MAX));
        assert_eq!(q("200000 1000000").1, Value::U64(200000));
        assert!(resource_properties_with(Layout::V2, &l(&[("memory.max", "x")]), "").is_err());
        // cpu.idle = 1 is CPUWeight=idle (0 on the bus).
        assert_eq!(
            resource_properties_with(Layout::V2, &l(&[("cpu.idle", "1")]), "").unwrap(),
            vec![("CPUWeight".into(), Value::U64(0))]
        );
    }

    #[test]
    fn golden_v1_properties() {
        let proc_devices =
            "Character devices:\n  1 mem\n  5 /dev/tty\n136 pts\n\nBlock devices:\n  8 sd\n";
        let p = resource_properties_with(
            Layout::V1,
            &l(&[
                ("devices.deny", "a *:* rwm"),
                ("devices.allow", "c 1:3 rwm"),
                ("devices.allow", "c *:* m"),
                ("devices.allow", "c 136:* rwm"),
                ("devices.allow", "b 8:* r"),
                ("devices.allow", "c 250:* rwm"),
                ("memory.limit_in_bytes", "67108864"),
                ("cpu.shares", "1024"),
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_quota_us", "50000"),
                ("pids.max", "max"),
                ("blkio.weight", "300"),
            ]),
            proc_devices,
        )
        .unwrap();
        let pairs = |v: &[(&str, &str)]| {
            Value::StrPairs(
                v.iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
            )
        };
        assert_eq!(
            p,
            vec![
                ("MemoryLimit".into(), Value::U64(67108864)),
                ("CPUShares".into(), Value::U64(1024)),
                ("TasksMax".into(), Value::U64(u64::MAX)),
                ("BlockIOWeight".into(), Value::U64(300)),
                ("CPUQuotaPeriodUSec".into(), Value::U64(100000)),
                ("CPUQuotaPerSecUSec".into(), Value::U64(500000)),
                ("DevicePolicy".into(), Value::Str("strict".into())),
                (
                    "DeviceAllow".into(),
                    pairs(&[
                        ("/dev/char/1:3", "rwm"),
                        ("char-*", "m"),
                        ("char-pts", "rwm"),
                        ("block-sd", "r"),
                    ])
                ),
            ]
        );
        let e = resource_properties_with(
            Layout::V1,
            &l(&[("devices.allow", "c 1:3 rwm"), ("devices.deny", "c 1:3 w")]),
            "",
        )
        .unwrap_err();
        assert_eq!(e.field, "linux.resources.devices");
    }

    #[test]
    fn unit_properties_scope_and_slice() {
        let scope = parse_cgroups_path(Some(Path::new("system.slice:lxcri:a")), "a").unwrap();
        let p = unit_properties(&scope, Layout::V2, 42, "lxcri container a");
        let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "Description",
                "Slice",
                "PIDs",
                "Delegate",
                "DefaultDependencies",
                "MemoryAccounting",
                "CPUAccounting",
                "TasksAccounting",
                "IOAccounting"
            ]
        );
        assert_eq!(p[2].1, Value::U32Array(vec![42]));
        assert_eq!(p[4].1, Value::Bool(false));
        let slice = parse_cgroups_path(Some(Path::new("a.slice::a-b.slice")), "x").unwrap();
        let p = unit_properties(&slice, Layout::V1, 42, "d");
        assert_eq!(
            p[1],
            ("Wants".into(), Value::StrArray(vec!["a.slice".into()]))
        );
        assert!(!p.iter().any(|(n, _)| n == "PIDs" || n == "Delegate"));
        assert_eq!(p.last().unwrap().0, "BlockIOAccounting");
    }

    /// The StartTransientUnit call as another D-Bus implementation decodes it:
    /// dbus-monitor (libdbus) on a private bus prints the message the driver
    /// sends (no systemd there: the call fails with ServiceUnknown).
    #[test]
    fn start_transient_unit_as_libdbus_decodes_it() {
        let bus = crate::dbus::tests::test_bus();
        let t = Duration::from_secs(5);
        let mut monitor = std::process::Command::new("dbus-monitor")
            .arg("--address")
            .arg(format!("unix:path={}", bus.sock.display()))
            .arg("type='method_call',member='StartTransientUnit'")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("dbus-monitor (package dbus-bin)");
        std::thread::sleep(Duration::from_millis(500));
        let mut conn = Conn::connect(&bus.sock, true, t).unwrap();
        conn.set_peer(Some("org.freedesktop.systemd1"));
        let mut sd = Systemd::with_conn(conn, t);
        let unit = parse_cgroups_path(Some(Path::new("system.slice:lxcri:t1")), "t1").unwrap();
        let mut props = unit_properties(&unit, Layout::V2, 4242, "lxcri container t1");
        props.extend(
            resource_properties_with(
                Layout::V2,
                &l(&[
                    ("memory.max", "67108864"),
                    ("cpu.max", "50000 100000"),
                    ("cpuset.cpus", "0-1,3"),
                    ("pids.max", "max"),
                ]),
                "",
            )
            .unwrap(),
        );
        let e = sd.start_unit(&unit.name, props).unwrap_err();
        assert!(e.to_string().contains("ServiceUnknown"), "{e}");
        std::thread::sleep(Duration::from_millis(300));
        let _ = monitor.kill();
        let out = monitor.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for want in [
            "member=StartTransientUnit",
            r#"string "lxcri-t1.scope" string "replace" array ["#,
            r#"struct { string "Description" variant string "lxcri container t1" }"#,
            r#"struct { string "Slice" variant string "system.slice" }"#,
            r#"struct { string "PIDs" variant array [ uint32 4242 ] }"#,
            r#"struct { string "Delegate" variant boolean true }"#,
            r#"struct { string "DefaultDependencies" variant boolean false }"#,
            r#"struct { string "MemoryMax" variant uint64 67108864 }"#,
            r#"struct { string "CPUQuotaPeriodUSec" variant uint64 100000 }"#,
            r#"struct { string "CPUQuotaPerSecUSec" variant uint64 500000 }"#,
            r#"struct { string "AllowedCPUs" variant array of bytes [ 0b ] }"#,
            r#"struct { string "TasksMax" variant uint64 18446744073709551615 } ] array [ ]"#,
        ] {
            assert!(flat.contains(want), "{want}\nnot in:\n{text}");
        }
    }
}
