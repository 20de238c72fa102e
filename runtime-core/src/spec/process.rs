//! `process`: what the container's init becomes at Start.
//!
//! None of this goes into the lxc config: it travels to `lxcri-init` over the init
//! channel as JSON, so values may hold newlines (multi-line `sh -c` scripts, PEM
//! blocks in env vars) exactly as with runc. NUL bytes cannot be passed to execve
//! and are rejected.

use std::path::Path;

use lxcri_libexec::proto::{capability_number, CapabilitySets, ProcessSpec, Rlimit};
use oci_spec::runtime::{Capabilities, PosixRlimitType, Process, Spec};

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
    super::security::check_apparmor(
        "process.apparmorProfile",
        p.apparmor_profile().as_deref(),
        host,
    )?;
    super::security::check_selinux("process.selinuxLabel", p.selinux_label().as_deref(), host)?;
    if p.io_priority().is_some() {
        return Err(SpecError::unsupported("process.ioPriority"));
    }
    if p.scheduler().is_some() {
        return Err(SpecError::unsupported("process.scheduler"));
    }
    if p.exec_cpu_affinity().is_some() {
        return Err(SpecError::unsupported("process.execCPUAffinity"));
    }

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
        Some(c) => Some(CapabilitySets {
            bounding: caps("process.capabilities.bounding", c.bounding())?,
            effective: caps("process.capabilities.effective", c.effective())?,
            permitted: caps("process.capabilities.permitted", c.permitted())?,
            inheritable: caps("process.capabilities.inheritable", c.inheritable())?,
            ambient: caps("process.capabilities.ambient", c.ambient())?,
        }),
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
    fn home_defaults_to_root_dir() {
        let root = tempfile::tempdir().unwrap();
        let s = spec(serde_json::json!({"args": ["a"], "cwd": "/", "user": {"uid": 0, "gid": 0}}));
        assert_eq!(translate(&s, root.path()).unwrap().env, vec!["HOME=/"]);
    }
}
