//! `process`: what the container's init becomes at Start.
//!
//! None of this goes into the lxc config: it travels to `lxcri-init` over the init
//! channel as JSON, so values may hold newlines (multi-line `sh -c` scripts, PEM
//! blocks in env vars) exactly as with runc. NUL bytes cannot be passed to execve
//! and are rejected.

use std::path::Path;

use lxcri_libexec::proto::{
    capability_number, CapabilitySets, CpuAffinity, MemoryPolicy, ProcessSpec, Rlimit, SchedAttr,
};
use oci_spec::runtime::{
    Capabilities, IOPriorityClass, LinuxMemoryPolicy, LinuxSchedulerFlag, LinuxSchedulerPolicy,
    MemoryPolicyFlagType, MemoryPolicyModeType, PosixRlimitType, Process, Scheduler, Spec,
};

use crate::error::SpecError;

fn no_nul(field: &str, v: &str) -> Result<(), SpecError> {
    if v.contains('\0') {
        return Err(SpecError::new(field, "contains a NUL byte"));
    }
    Ok(())
}

/// Deduplicate env (last wins, first position kept), validate each entry.
pub fn env(entries: &[String]) -> Result<Vec<String>, SpecError> {
    let mut out: Vec<String> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let field = format!("process.env[{i}]");
        no_nul(&field, e)?;
        let Some((k, _)) = e.split_once('=') else {
            return Err(SpecError::new(
                field,
                format!("{e:?} is not of the form KEY=value"),
            ));
        };
        if k.is_empty() {
            return Err(SpecError::new(field, "empty variable name"));
        }
        match out
            .iter_mut()
            .find(|x| x.split_once('=').map(|(xk, _)| xk) == Some(k))
        {
            Some(slot) => *slot = e.clone(),
            None => out.push(e.clone()),
        }
    }
    Ok(out)
}

/// The home directory of `uid` from the rootfs' /etc/passwd, or "/".
fn home_of(rootfs: &Path, uid: u32) -> String {
    let passwd = rootfs.join("etc/passwd");
    // Never follow a link out of the rootfs.
    let Ok(md) = std::fs::symlink_metadata(&passwd) else {
        return "/".into();
    };
    if !md.is_file() {
        return "/".into();
    }
    let text = std::fs::read_to_string(passwd).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
        })
        .find(|h| !h.is_empty())
        .unwrap_or_else(|| "/".into())
}

fn caps(field: &str, set: &Option<Capabilities>) -> Result<Vec<u8>, SpecError> {
    let mut out = Vec::new();
    for c in set.iter().flatten() {
        let name = serde_json::to_value(c)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let n = capability_number(&name)
            .ok_or_else(|| SpecError::new(field, format!("unknown capability {name}")))?;
        out.push(n);
    }
    out.sort_unstable();
    Ok(out)
}

fn rlimit_resource(t: PosixRlimitType) -> u32 {
    match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// Translate `process` into what the init becomes.
pub fn translate(spec: &Spec, rootfs: &Path) -> Result<ProcessSpec, SpecError> {
    let p: &Process = spec
        .process()
        .as_ref()
        .ok_or_else(|| SpecError::new("process", "is required"))?;
    translate_process(p, rootfs)
}

/// Translate one OCI process (the spec's, or an exec's).
pub fn translate_process(p: &Process, rootfs: &Path) -> Result<ProcessSpec, SpecError> {
    let args = p.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(SpecError::new("process.args", "must not be empty"));
    }
    for (i, a) in args.iter().enumerate() {
        no_nul(&format!("process.args[{i}]"), a)?;
    }
    if p.command_line().is_some() {
        return Err(SpecError::unsupported("process.commandLine"));
    }
    // "unconfined" and empty are fine; anything else is an error naming the field
    // (why depends on the host: see `security`).
    let host = super::security::HostFeatures::detect();
    let apparmor_profile = super::security::check_apparmor(
        "process.apparmorProfile",
        p.apparmor_profile().as_deref(),
        host,
    )?;
    let selinux_label =
        super::security::check_selinux("process.selinuxLabel", p.selinux_label().as_deref(), host)?;
    if let Some(l) = &selinux_label {
        super::security::check_selinux_context("process.selinuxLabel", l)?;
    }
    let io_priority = match p.io_priority() {
        None => None,
        Some(io) => Some(io_priority(io.class(), io.priority())?),
    };
    let scheduler = p.scheduler().as_ref().map(scheduler).transpose()?;
    let cpu_affinity = match p.exec_cpu_affinity() {
        None => None,
        Some(a) => {
            let initial = cpu_list(
                "process.execCPUAffinity.initial",
                a.initial().as_deref().unwrap_or(""),
            )?;
            let final_cpus = cpu_list(
                "process.execCPUAffinity.final",
                a.cpu_affinity_final().as_deref().unwrap_or(""),
            )?;
            (initial.is_some() || final_cpus.is_some()).then_some(CpuAffinity {
                initial,
                final_cpus,
            })
        }
    };

    let cwd = p.cwd().to_string_lossy().into_owned();
    no_nul("process.cwd", &cwd)?;
    if !p.cwd().is_absolute() {
        return Err(SpecError::new(
            "process.cwd",
            format!("{cwd:?} is not absolute"),
        ));
    }

    let user = p.user();
    if user.username().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(SpecError::new(
            "process.user.username",
            "user names are not resolved by the runtime; give uid and gid",
        ));
    }
    let mut env = env(&p.env().clone().unwrap_or_default())?;
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(rootfs, user.uid())));
    }

    let capabilities = match p.capabilities() {
        None => None,
        Some(c) => {
            let mut sets = CapabilitySets {
                bounding: caps("process.capabilities.bounding", c.bounding())?,
                effective: caps("process.capabilities.effective", c.effective())?,
                permitted: caps("process.capabilities.permitted", c.permitted())?,
                inheritable: caps("process.capabilities.inheritable", c.inheritable())?,
                ambient: caps("process.capabilities.ambient", c.ambient())?,
            };
            // The kernel raises an ambient capability only if it is permitted
            // and inheritable; runc tries, warns and goes on (`runc spec` of
            // 1.1 lists ambient capabilities without inheritable ones).
            let (kept, dropped): (Vec<u8>, Vec<u8>) = sets
                .ambient
                .iter()
                .partition(|a| sets.permitted.contains(a) && sets.inheritable.contains(a));
            if !dropped.is_empty() {
                log::warn!(
                    "process.capabilities.ambient: {dropped:?} not raised, not both permitted \
                     and inheritable"
                );
            }
            sets.ambient = kept;
            Some(sets)
        }
    };

    let mut rlimits: Vec<Rlimit> = Vec::new();
    for (i, r) in p.rlimits().iter().flatten().enumerate() {
        let resource = rlimit_resource(r.typ());
        if rlimits.iter().any(|x| x.resource == resource) {
            return Err(SpecError::new(
                format!("process.rlimits[{i}]"),
                format!("duplicate rlimit {:?}", r.typ()),
            ));
        }
        if r.soft() > r.hard() {
            return Err(SpecError::new(
                format!("process.rlimits[{i}]"),
                "soft limit exceeds hard limit",
            ));
        }
        rlimits.push(Rlimit {
            resource,
            soft: r.soft(),
            hard: r.hard(),
        });
    }

    if let Some(adj) = p.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(SpecError::new(
                "process.oomScoreAdj",
                format!("{adj} is outside -1000..1000"),
            ));
        }
    }

    Ok(ProcessSpec {
        args,
        env,
        cwd,
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask(),
        capabilities,
        rlimits,
        no_new_privileges: p.no_new_privileges().unwrap_or(false),
        oom_score_adj: p.oom_score_adj(),
        terminal: p.terminal().unwrap_or(false),
        console_size: p.console_size().map(|b| {
            let clamp = |v: u64| v.min(u64::from(u16::MAX)) as u16;
            (clamp(b.height()), clamp(b.width()))
        }),
        // The container's filter (linux.seccomp), set by the caller.
        seccomp: None,
        io_priority,
        scheduler,
        // The container's (linux.memoryPolicy), set by the caller.
        memory_policy: None,
        cpu_affinity,
        preserved_fds: 0,
        apparmor_profile,
        selinux_label,
    })
}

/// `process.ioPriority` as ioprio_set(2) takes it (runc's validation).
fn io_priority(class: IOPriorityClass, priority: i64) -> Result<u32, SpecError> {
    if !(0..=7).contains(&priority) {
        return Err(SpecError::new(
            "process.ioPriority.priority",
            format!("{priority} is outside 0..7"),
        ));
    }
    let class: u32 = match class {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    Ok(class << 13 | priority as u32)
}

/// `process.scheduler` as sched_setattr(2) takes it, with runc's validation: nice
/// in -20..19 for SCHED_OTHER and SCHED_BATCH, a priority only for SCHED_FIFO and
/// SCHED_RR, runtime/deadline/period only for SCHED_DEADLINE.
fn scheduler(s: &Scheduler) -> Result<SchedAttr, SpecError> {
    use LinuxSchedulerPolicy as P;
    let policy = *s.policy();
    let nice = s.nice().unwrap_or(0);
    if matches!(policy, P::SchedOther | P::SchedBatch) && !(-20..=19).contains(&nice) {
        return Err(SpecError::new(
            "process.scheduler.nice",
            format!("{nice} is outside -20..19"),
        ));
    }
    let priority = s.priority().unwrap_or(0);
    if priority != 0 && !matches!(policy, P::SchedFifo | P::SchedRr) {
        return Err(SpecError::new(
            "process.scheduler.priority",
            "can only be specified for the SCHED_FIFO or SCHED_RR policy",
        ));
    }
    let priority = u32::try_from(priority).map_err(|_| {
        SpecError::new(
            "process.scheduler.priority",
            format!("{priority} is negative"),
        )
    })?;
    let (runtime, deadline, period) = (
        s.runtime().unwrap_or(0),
        s.deadline().unwrap_or(0),
        s.period().unwrap_or(0),
    );
    if policy != P::SchedDeadline && (runtime != 0 || deadline != 0 || period != 0) {
        let field = if runtime != 0 {
            "runtime"
        } else if deadline != 0 {
            "deadline"
        } else {
            "period"
        };
        return Err(SpecError::new(
            format!("process.scheduler.{field}"),
            "can only be specified for the SCHED_DEADLINE policy",
        ));
    }
    let policy = match policy {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => {
            return Err(SpecError::new(
                "process.scheduler.policy",
                "SCHED_ISO is not implemented by Linux",
            ))
        }
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    Ok(SchedAttr {
        policy,
        flags,
        nice,
        priority,
        runtime,
        deadline,
        period,
    })
}

/// A CPU or NUMA node list ("0-3,5"), parsed like runc's `ToCPUSet`: spaces
/// around elements and empty elements are allowed, numbers go up to 65536. An
/// empty text is `None`.
pub fn cpu_list(field: &str, text: &str) -> Result<Option<Vec<u32>>, SpecError> {
    if text.is_empty() {
        return Ok(None);
    }
    let bad = |why: String| SpecError::new(field, format!("{text:?}: {why}"));
    let num = |v: &str| -> Result<u32, SpecError> {
        let n: u32 = v
            .parse()
            .map_err(|_| bad(format!("{v:?} is not a number")))?;
        if n > lxcri_libexec::process::MAX_CPU {
            return Err(bad(format!(
                "values larger than {} are not supported",
                lxcri_libexec::process::MAX_CPU
            )));
        }
        Ok(n)
    };
    let mut out = Vec::new();
    for r in text.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let (start, end) = match r.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(r)?, num(r)?),
        };
        if start > end {
            return Err(bad(format!("invalid range {r}")));
        }
        out.extend(start..=end);
    }
    if out.is_empty() {
        return Err(bad("no members".into()));
    }
    out.sort_unstable();
    out.dedup();
    Ok(Some(out))
}

/// `linux.memoryPolicy` for set_mempolicy(2), with runc's validation of the
/// number of nodes per mode.
pub fn memory_policy(m: &LinuxMemoryPolicy) -> Result<MemoryPolicy, SpecError> {
    use MemoryPolicyModeType as M;
    let nodes = cpu_list(
        "linux.memoryPolicy.nodes",
        m.nodes().as_deref().unwrap_or(""),
    )?
    .unwrap_or_default();
    let mode = m.mode();
    let (number, want_nodes) = match mode {
        M::MpolDefault => (0, Some(false)),
        M::MpolPreferred => (1, None),
        M::MpolBind => (2, Some(true)),
        M::MpolInterleave => (3, Some(true)),
        M::MpolLocal => (4, Some(false)),
        M::MpolPreferredMany => (5, Some(true)),
        M::MpolWeightedInterleave => (6, Some(true)),
    };
    match want_nodes {
        Some(false) if !nodes.is_empty() => {
            return Err(SpecError::new(
                "linux.memoryPolicy.nodes",
                format!("mode {mode} takes no nodes"),
            ))
        }
        Some(true) if nodes.is_empty() => {
            return Err(SpecError::new(
                "linux.memoryPolicy.nodes",
                format!("mode {mode} needs at least one node"),
            ))
        }
        _ => {}
    }
    let mut flags = 0;
    for f in m.flags().iter().flatten() {
        flags |= match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        };
    }
    Ok(MemoryPolicy {
        mode: number | flags,
        nodes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(process: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": process
        }))
        .unwrap()
    }

    #[test]
    fn env_dedup_last_wins() {
        let e = env(&["A=1".into(), "B=2".into(), "A=3".into()]).unwrap();
        assert_eq!(e, vec!["A=3".to_string(), "B=2".to_string()]);
        assert!(env(&["NOEQ".into()]).is_err());
        assert!(env(&["=x".into()]).is_err());
        assert_eq!(env(&["A=x\0y".into()]).unwrap_err().field, "process.env[0]");
        // A newline is fine: env does not go through the lxc config.
        assert_eq!(env(&["A=x\ny".into()]).unwrap(), vec!["A=x\ny".to_string()]);
    }

    #[test]
    fn full_process() {
        let rootfs = tempfile::tempdir().unwrap();
        std::fs::create_dir(rootfs.path().join("etc")).unwrap();
        std::fs::write(
            rootfs.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\ntest:x:1000:1000::/home/test:/bin/sh\n",
        )
        .unwrap();
        let s = spec(serde_json::json!({
            "args": ["sh", "-c", "echo a\necho b"],
            "env": ["PATH=/bin", "X=1", "X=2"],
            "cwd": "/tmp",
            "user": {"uid": 1000, "gid": 1000, "additionalGids": [10, 20]},
            "capabilities": {"bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"]},
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048}],
            "noNewPrivileges": true,
            "oomScoreAdj": 500
        }));
        let init = translate(&s, rootfs.path()).unwrap();
        assert_eq!(init.args[2], "echo a\necho b");
        assert_eq!(init.env, vec!["PATH=/bin", "X=2", "HOME=/home/test"]);
        assert_eq!(init.cwd, "/tmp");
        assert_eq!((init.uid, init.gid), (1000, 1000));
        assert_eq!(init.additional_gids, vec![10, 20]);
        let c = init.capabilities.unwrap();
        assert_eq!(c.bounding, vec![0, 5]);
        assert_eq!(c.effective, vec![5]);
        assert!(c.permitted.is_empty());
        assert_eq!(
            init.rlimits,
            vec![Rlimit {
                resource: libc::RLIMIT_NOFILE,
                soft: 1024,
                hard: 2048
            }]
        );
        assert!(init.no_new_privileges);
        assert_eq!(init.oom_score_adj, Some(500));
    }

    #[test]
    fn ambient_needs_permitted_and_inheritable_like_runc() {
        // `runc spec` (1.1) lists ambient capabilities without inheritable
        // ones: runc raises what it can and warns; so does lxcri.
        let root = tempfile::tempdir().unwrap();
        let s = spec(serde_json::json!({
            "args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            "capabilities": {
                "permitted": ["CAP_KILL", "CAP_CHOWN"],
                "inheritable": ["CAP_CHOWN"],
                "ambient": ["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW"]
            }
        }));
        let c = translate(&s, root.path()).unwrap().capabilities.unwrap();
        assert_eq!(c.ambient, vec![0], "only CAP_CHOWN is both");
    }

    #[test]
    fn errors_name_the_field() {
        let root = tempfile::tempdir().unwrap();
        let cases = [
            (
                serde_json::json!({"args": [], "cwd": "/", "user": {"uid": 0, "gid": 0}}),
                "process.args",
            ),
            (
                serde_json::json!({"args": ["a\0"], "cwd": "/", "user": {"uid": 0, "gid": 0}}),
                "process.args[0]",
            ),
            (
                serde_json::json!({"args": ["a"], "cwd": "rel", "user": {"uid": 0, "gid": 0}}),
                "process.cwd",
            ),
            (
                serde_json::json!({"args": ["a"], "cwd": "/", "apparmorProfile": "x", "user": {"uid": 0, "gid": 0}}),
                "process.apparmorProfile",
            ),
            (
                serde_json::json!({"args": ["a"], "cwd": "/", "selinuxLabel": "system_u:system_r:svirt_t:s0", "user": {"uid": 0, "gid": 0}}),
                "process.selinuxLabel",
            ),
            (
                serde_json::json!({"args": ["a"], "cwd": "/", "oomScoreAdj": 5000, "user": {"uid": 0, "gid": 0}}),
                "process.oomScoreAdj",
            ),
            (
                serde_json::json!({"args": ["a"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
                            {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}]}),
                "process.rlimits[1]",
            ),
        ];
        for (p, field) in cases {
            let e = translate(&spec(p), root.path()).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }

    #[test]
    fn golden_io_priority_scheduler_affinity() {
        let root = tempfile::tempdir().unwrap();
        let s = spec(serde_json::json!({
            "args": ["a"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 5},
            "scheduler": {"policy": "SCHED_BATCH", "nice": 7,
                          "flags": ["SCHED_FLAG_KEEP_PARAMS", "SCHED_FLAG_UTIL_CLAMP_MAX"]},
            "execCPUAffinity": {"initial": "0", "final": "1-3,5"}
        }));
        let p = translate(&s, root.path()).unwrap();
        assert_eq!(p.io_priority, Some(2 << 13 | 5));
        assert_eq!(
            p.scheduler,
            Some(SchedAttr {
                policy: 3,
                flags: 0x10 | 0x40,
                nice: 7,
                ..Default::default()
            })
        );
        assert_eq!(
            p.cpu_affinity,
            Some(CpuAffinity {
                initial: Some(vec![0]),
                final_cpus: Some(vec![1, 2, 3, 5])
            })
        );
        let s = spec(serde_json::json!({
            "args": ["a"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            "ioPriority": {"class": "IOPRIO_CLASS_RT", "priority": 0},
            "scheduler": {"policy": "SCHED_DEADLINE", "runtime": 10000000,
                          "deadline": 20000000, "period": 30000000},
            "execCPUAffinity": {"final": "1"}
        }));
        let p = translate(&s, root.path()).unwrap();
        assert_eq!(p.io_priority, Some(1 << 13));
        assert_eq!(
            p.scheduler,
            Some(SchedAttr {
                policy: 6,
                runtime: 10_000_000,
                deadline: 20_000_000,
                period: 30_000_000,
                ..Default::default()
            })
        );
        assert_eq!(p.cpu_affinity.unwrap().initial, None);
        let s = spec(serde_json::json!({
            "args": ["a"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 7},
            "scheduler": {"policy": "SCHED_RR", "priority": 50}
        }));
        let p = translate(&s, root.path()).unwrap();
        assert_eq!(p.io_priority, Some(3 << 13 | 7));
        assert_eq!(
            p.scheduler,
            Some(SchedAttr {
                policy: 2,
                priority: 50,
                ..Default::default()
            })
        );
        assert_eq!(p.cpu_affinity, None);
    }

    #[test]
    fn scheduler_and_io_priority_errors_name_the_field() {
        let root = tempfile::tempdir().unwrap();
        let cases = [
            (
                serde_json::json!({"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 8}}),
                "process.ioPriority.priority",
            ),
            (
                serde_json::json!({"scheduler": {"policy": "SCHED_OTHER", "nice": 20}}),
                "process.scheduler.nice",
            ),
            (
                serde_json::json!({"scheduler": {"policy": "SCHED_OTHER", "priority": 1}}),
                "process.scheduler.priority",
            ),
            (
                serde_json::json!({"scheduler": {"policy": "SCHED_FIFO", "priority": -1}}),
                "process.scheduler.priority",
            ),
            (
                serde_json::json!({"scheduler": {"policy": "SCHED_RR", "period": 1}}),
                "process.scheduler.period",
            ),
            (
                serde_json::json!({"scheduler": {"policy": "SCHED_ISO"}}),
                "process.scheduler.policy",
            ),
            (
                serde_json::json!({"execCPUAffinity": {"initial": "3-1"}}),
                "process.execCPUAffinity.initial",
            ),
            (
                serde_json::json!({"execCPUAffinity": {"final": "70000"}}),
                "process.execCPUAffinity.final",
            ),
        ];
        for (extra, field) in cases {
            let mut p =
                serde_json::json!({"args": ["a"], "cwd": "/", "user": {"uid": 0, "gid": 0}});
            for (k, v) in extra.as_object().unwrap() {
                p[k] = v.clone();
            }
            let e = translate(&spec(p), root.path()).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
        // Nice is not checked for the other policies (runc's rule).
        let p = serde_json::json!({"args": ["a"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                                   "scheduler": {"policy": "SCHED_IDLE", "nice": 30}});
        assert_eq!(
            translate(&spec(p), root.path())
                .unwrap()
                .scheduler
                .unwrap()
                .nice,
            30
        );
    }

    #[test]
    fn golden_memory_policy() {
        let m = |v: serde_json::Value| memory_policy(&serde_json::from_value(v).unwrap());
        assert_eq!(
            m(serde_json::json!({"mode": "MPOL_BIND", "nodes": "0,2-3",
                                 "flags": ["MPOL_F_STATIC_NODES"]}))
            .unwrap(),
            MemoryPolicy {
                mode: 2 | 1 << 15,
                nodes: vec![0, 2, 3]
            }
        );
        assert_eq!(
            m(serde_json::json!({"mode": "MPOL_INTERLEAVE", "nodes": "0",
                                 "flags": ["MPOL_F_RELATIVE_NODES", "MPOL_F_NUMA_BALANCING"]}))
            .unwrap(),
            MemoryPolicy {
                mode: 3 | 1 << 14 | 1 << 13,
                nodes: vec![0]
            }
        );
        assert_eq!(
            m(serde_json::json!({"mode": "MPOL_PREFERRED"})).unwrap(),
            MemoryPolicy {
                mode: 1,
                nodes: vec![]
            }
        );
        assert_eq!(
            m(serde_json::json!({"mode": "MPOL_LOCAL"})).unwrap().mode,
            4
        );
        assert_eq!(
            m(serde_json::json!({"mode": "MPOL_WEIGHTED_INTERLEAVE", "nodes": "1"}))
                .unwrap()
                .mode,
            6
        );
        for bad in [
            serde_json::json!({"mode": "MPOL_BIND"}),
            serde_json::json!({"mode": "MPOL_DEFAULT", "nodes": "0"}),
            serde_json::json!({"mode": "MPOL_BIND", "nodes": ","}),
            serde_json::json!({"mode": "MPOL_BIND", "nodes": "x"}),
        ] {
            assert_eq!(m(bad).unwrap_err().field, "linux.memoryPolicy.nodes");
        }
    }

    #[test]
    fn home_defaults_to_root_dir() {
        let root = tempfile::tempdir().unwrap();
        let s = spec(serde_json::json!({"args": ["a"], "cwd": "/", "user": {"uid": 0, "gid": 0}}));
        assert_eq!(translate(&s, root.path()).unwrap().env, vec!["HOME=/"]);
    }
}
