//! OCI runtime spec → liblxc config (plus what `lxcri-init` applies itself).
//!
//! One module per spec section; each is a pure function from its section to lxc
//! config items, tested with golden outputs. A field lxcri cannot honour is an
//! error naming the field, never silently ignored.

pub mod devices;
pub mod hooks;
pub mod mounts;
pub mod namespaces;
pub mod netdevices;
pub mod process;
pub mod resources;
pub mod root;
pub mod seccomp;
pub mod security;
pub mod sysctl;

use std::path::{Path, PathBuf};

use lxcri_libexec::proto::{CpuAffinity, InitSpec, INIT_CMD};
use oci_spec::runtime::{Process, Spec};

use crate::cgroup::Layout;
use crate::error::SpecError;
use crate::lxcconf::LxcConfig;
use crate::userns::IdMap;
pub use resources::Cgroups;
pub use security::HostFeatures;

/// What the translation needs besides the spec.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    /// The per-container runtime dir (the liblxc log goes there).
    pub rundir: &'a Path,
    pub layout: Layout,
    /// liblxc log level (e.g. "WARN", "DEBUG").
    pub log_level: &'a str,
    /// The LSMs and features of the host (for the fields that need them).
    pub host: HostFeatures,
    pub cgroup_driver: crate::cgroup::Driver,
}

/// The result of translating a spec.
#[derive(Debug, Clone)]
pub struct Translation {
    pub lxc: LxcConfig,
    pub init: InitSpec,
    pub cgroups: Cgroups,
    pub rootfs: PathBuf,
    pub hooks: hooks::Hooks,
    /// `process.execCPUAffinity`: not applied to the init (as in runc); the
    /// default of every exec that has none of its own.
    pub exec_cpu_affinity: Option<CpuAffinity>,
    /// A time namespace the start helper enters before liblxc's start.
    pub join_time: Option<PathBuf>,
    /// The id-mapped bind mounts, made by the runtime at the mount hook.
    pub idmapped: Vec<mounts::IdmappedMount>,
}

/// The supported `ociVersion`s: 1.0.x to 1.3.x (what oci-spec 0.9 models).
fn check_version(v: &str) -> Result<(), SpecError> {
    let ok = ["1.0.", "1.1.", "1.2.", "1.3."]
        .iter()
        .any(|p| v.starts_with(p));
    if !ok {
        return Err(SpecError::new(
            "ociVersion",
            format!("{v:?} is not supported (1.0 to 1.3)"),
        ));
    }
    Ok(())
}

fn check_paths(field: &str, paths: &[String]) -> Result<Vec<String>, SpecError> {
    for (i, p) in paths.iter().enumerate() {
        if !p.starts_with('/') || p.contains('\0') {
            return Err(SpecError::new(
                format!("{field}[{i}]"),
                format!("{p:?} is not an absolute path"),
            ));
        }
    }
    Ok(paths.to_vec())
}

/// Scheduler flag names as the runtime spec spells them, and as oci-spec 0.9
/// (de)serializes them: its derived names differ for two flags.
const SCHED_FLAG_SPELLINGS: [(&str, &str); 2] = [
    ("SCHED_FLAG_RESET_ON_FORK", "SCHED_RESET_ON_FORK"),
    ("SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_D_L_OVERRUN"),
];

/// Rewrite the runtime spec's scheduler flag names in a process object to
/// oci-spec's.
fn normalize_process(process: &mut serde_json::Value) {
    let Some(flags) = process
        .get_mut("scheduler")
        .and_then(|s| s.get_mut("flags"))
        .and_then(|f| f.as_array_mut())
    else {
        return;
    };
    for f in flags {
        if let Some((_, ours)) = SCHED_FLAG_SPELLINGS
            .iter()
            .find(|(spec, _)| f.as_str() == Some(spec))
        {
            *f = serde_json::Value::from(*ours);
        }
    }
}

/// Parse a bundle's config.json (use this, not `Spec::load`: it takes the
/// runtime spec's spelling of `process.scheduler.flags`).
pub fn parse_spec(data: &[u8]) -> Result<Spec, serde_json::Error> {
    let mut v: serde_json::Value = serde_json::from_slice(data)?;
    if let Some(p) = v.get_mut("process") {
        normalize_process(p);
    }
    serde_json::from_value(v)
}

/// Parse an exec's process JSON (like [`parse_spec`]).
pub fn parse_process(data: &[u8]) -> Result<Process, serde_json::Error> {
    let mut v: serde_json::Value = serde_json::from_slice(data)?;
    normalize_process(&mut v);
    serde_json::from_value(v)
}

/// Translate a whole spec.
pub fn translate(spec: &Spec, ctx: &Context) -> Result<Translation, SpecError> {
    check_version(spec.version())?;
    let hooks = hooks::translate(spec)?;
    let mut lxc = LxcConfig::new();
    let log = ctx.rundir.join("lxc.log");
    lxc.push("(runtime)", "lxc.log.file", log.to_string_lossy())?;
    lxc.push("(runtime)", "lxc.log.level", ctx.log_level)?;
    let mount_label = security::translate(spec, ctx.host, &mut lxc)?;
    if let (Some(l), true) = (&mount_label, ctx.host.selinux) {
        security::check_selinux_context("linux.mountLabel", l)?;
    }
    let rootfs = root::translate(spec, ctx.bundle, &mut lxc)?;
    let nss = namespaces::translate(spec, &mut lxc)?;
    netdevices::translate(spec, &crate::netaddr::global_addresses, &mut lxc)?;
    // The static init, exec'd from the sealed memfd the start helper provides.
    lxc.push("(runtime)", "lxc.init.cmd", INIT_CMD)?;
    lxc.push("(runtime)", "lxc.init.cwd", "/")?;
    // No terminal: the container's stdio are the fds the start helper inherits.
    lxc.push("process.terminal", "lxc.console.path", "none")?;
    lxc.push("process.terminal", "lxc.tty.max", "0")?;
    // Standard device nodes in a fresh /dev, as runc creates them.
    lxc.push("mounts", "lxc.autodev", "1")?;
    // No LSM profile unless the spec asks (and it cannot yet): like runc.
    lxc.push(
        "process.apparmorProfile",
        "lxc.apparmor.profile",
        "unconfined",
    )?;
    let has_proc = spec
        .mounts()
        .iter()
        .flatten()
        .any(|m| m.destination() == Path::new("/proc") && m.typ().as_deref() == Some("proc"));
    if !has_proc {
        return Err(SpecError::new(
            "mounts",
            "a proc mount at /proc is required (lxcri starts its init through /proc/self/fd)",
        ));
    }
    // The container's user namespace mappings (new or joined), as liblxc gets
    // them: what `idmap`/`ridmap` mounts without mappings of their own take.
    let container_maps = container_id_maps(&lxc);
    let init_mounts = mounts::translate(
        spec,
        ctx.bundle,
        &rootfs,
        container_maps.as_ref(),
        mount_label.as_deref(),
        &mut lxc,
    )?;
    sysctl::translate(spec, &mut lxc)?;
    let cgroups = resources::translate_with(spec, ctx.id, ctx.layout, ctx.cgroup_driver, &mut lxc)?;
    let mut init = InitSpec {
        process: process::translate(spec, &rootfs)?,
        ..Default::default()
    };
    if let Some(l) = spec.linux().as_ref() {
        if let Some(s) = l.seccomp() {
            init.process.seccomp = Some(seccomp::translate(s)?);
        }
        if let Some(m) = l.memory_policy() {
            init.process.memory_policy = Some(process::memory_policy(m)?);
        }
        init.masked_paths = check_paths(
            "linux.maskedPaths",
            l.masked_paths().as_deref().unwrap_or_default(),
        )?;
        init.readonly_paths = check_paths(
            "linux.readonlyPaths",
            l.readonly_paths().as_deref().unwrap_or_default(),
        )?;
    }
    let exec_cpu_affinity = init.process.cpu_affinity.take();
    init.devices = devices::translate(spec, &mut lxc)?;
    init.rootfs_propagation = root::propagation(spec)?;
    init.mount_propagation = init_mounts.propagation;
    init.recursive_readonly = init_mounts.recursive_readonly;
    let idmapped = init_mounts.idmapped;
    init.readonly_rootfs = spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false);
    Ok(Translation {
        lxc,
        init,
        cgroups,
        rootfs,
        hooks,
        exec_cpu_affinity,
        join_time: nss.join_time,
        idmapped,
    })
}

/// The (uid, gid) mappings of the `lxc.idmap` lines, if there are any.
fn container_id_maps(lxc: &LxcConfig) -> Option<(Vec<IdMap>, Vec<IdMap>)> {
    let (mut uids, mut gids) = (Vec::new(), Vec::new());
    for line in lxc.get_all("lxc.idmap") {
        let w: Vec<&str> = line.split_whitespace().collect();
        let [kind, c, h, s] = w[..] else { continue };
        let (Ok(container), Ok(host), Ok(size)) = (c.parse(), h.parse(), s.parse()) else {
            continue;
        };
        let m = IdMap {
            container,
            host,
            size,
        };
        match kind {
            "u" => uids.push(m),
            "g" => gids.push(m),
            _ => {}
        }
    }
    (!uids.is_empty() || !gids.is_empty()).then_some((uids, gids))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec `ctr run --rootfs` (containerd 1.6) writes, trimmed of the id.
    const CTR_SPEC: &str = include_str!("testdata/ctr-default.json");
    const CTR_LXC: &str = include_str!("testdata/ctr-default.lxc");

    #[test]
    fn golden_ctr_default_spec() {
        let bundle = tempfile::tempdir().unwrap();
        let rootfs = bundle.path().join("rootfs");
        std::fs::create_dir(&rootfs).unwrap();
        let text = CTR_SPEC.replace("@ROOTFS@", &rootfs.to_string_lossy());
        let spec: Spec = serde_json::from_str(&text).unwrap();
        let ctx = Context {
            id: "t1",
            bundle: bundle.path(),
            rundir: Path::new("/run/lxcri/default/t1"),
            layout: Layout::V1,
            log_level: "WARN",
            host: HostFeatures::default(),
            cgroup_driver: Default::default(),
        };
        let t = translate(&spec, &ctx).unwrap();
        let want = CTR_LXC.replace("@ROOTFS@", &rootfs.to_string_lossy());
        assert_eq!(t.lxc.render(), want);
        assert_eq!(t.init.process.args, vec!["/bin/echo", "hello"]);
        assert_eq!(t.init.masked_paths.len(), 10);
        assert_eq!(t.init.readonly_paths.len(), 5);
        assert!(t.init.process.capabilities.unwrap().bounding.contains(&0));
    }

    #[test]
    fn runtime_spec_scheduler_flag_names_parse() {
        let data = br#"{"ociVersion": "1.3.0", "root": {"path": "/"},
            "process": {"args": ["a"], "cwd": "/", "user": {"uid": 0, "gid": 0},
              "scheduler": {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_RESET_ON_FORK",
                "SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_KEEP_POLICY"]}}}"#;
        let spec = parse_spec(data).unwrap();
        let p = process::translate(&spec, Path::new("/nonexistent")).unwrap();
        assert_eq!(p.scheduler.unwrap().flags, 0x01 | 0x04 | 0x08);
        let process = br#"{"args": ["a"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                 "scheduler": {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_RESET_ON_FORK"]}}"#;
        // oci-spec alone refuses the runtime spec's name.
        assert!(serde_json::from_slice::<Process>(process).is_err());
        let p = parse_process(process).unwrap();
        let p = process::translate_process(&p, Path::new("/nonexistent")).unwrap();
        assert_eq!(p.scheduler.unwrap().flags, 0x01);
    }

    #[test]
    fn exec_cpu_affinity_is_not_the_inits() {
        let bundle = tempfile::tempdir().unwrap();
        let rootfs = bundle.path().join("rootfs");
        std::fs::create_dir(&rootfs).unwrap();
        let text = CTR_SPEC.replace("@ROOTFS@", &rootfs.to_string_lossy());
        let mut spec: serde_json::Value = serde_json::from_str(&text).unwrap();
        spec["process"]["execCPUAffinity"] = serde_json::json!({"initial": "0", "final": "1"});
        spec["linux"]["memoryPolicy"] = serde_json::json!({"mode": "MPOL_BIND", "nodes": "0"});
        let spec: Spec = serde_json::from_value(spec).unwrap();
        let ctx = Context {
            id: "t1",
            bundle: bundle.path(),
            rundir: Path::new("/run/lxcri/default/t1"),
            layout: Layout::V1,
            log_level: "WARN",
            host: HostFeatures::default(),
            cgroup_driver: Default::default(),
        };
        let t = translate(&spec, &ctx).unwrap();
        assert_eq!(t.init.process.cpu_affinity, None);
        assert_eq!(t.exec_cpu_affinity.unwrap().final_cpus, Some(vec![1]));
        assert_eq!(t.init.process.memory_policy.unwrap().mode, 2);
    }

    #[test]
    fn version_and_unsupported_fields() {
        let base = serde_json::json!({"ociVersion": "0.9.0", "root": {"path": "/"}});
        let s: Spec = serde_json::from_value(base).unwrap();
        let ctx = Context {
            id: "x",
            bundle: Path::new("/"),
            rundir: Path::new("/run/x"),
            layout: Layout::V1,
            log_level: "WARN",
            host: HostFeatures::default(),
            cgroup_driver: Default::default(),
        };
        assert_eq!(translate(&s, &ctx).unwrap_err().field, "ociVersion");
        let s: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2", "root": {"path": "/"}, "linux": {"intelRdt": {}}
        }))
        .unwrap();
        assert_eq!(translate(&s, &ctx).unwrap_err().field, "linux.intelRdt");
        let s: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2", "root": {"path": "/"}, "process": {"args": ["a"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "mount"}]}
        }))
        .unwrap();
        assert_eq!(translate(&s, &ctx).unwrap_err().field, "mounts");
    }
}
