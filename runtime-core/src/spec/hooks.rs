//! `hooks` → the hook lists lxcri runs itself (liblxc's `lxc.hook.*` run at other
//! moments and with other arguments than OCI hooks, so no lxc key is emitted).
//!
//! When each phase runs, and where:
//! - prestart (deprecated) and createRuntime: after the container's namespaces and
//!   mounts exist and its init waits at the barrier, in the runtime's namespaces
//!   (through the `lxcri-hook` helper); a failure fails the create.
//! - createContainer: right after, in the container's namespaces (run by the init);
//!   the executable is resolved in the runtime's namespace (opened by the runtime,
//!   executed from that fd); a failure fails the create.
//! - startContainer: at Start, by the init, in the container, right before the
//!   exec of the process; a failure fails the start (the init exits).
//! - poststart: after a successful start, runtime namespaces; a failure is logged.
//! - poststop: when the container is deleted, runtime namespaces; a failure is logged.
//!
//! Every hook gets the container's OCI state JSON on stdin.

use lxcri_libexec::channel::MAX_FDS;
use lxcri_libexec::proto::HookSpec;
use oci_spec::runtime::{Hook, Spec};
use serde::{Deserialize, Serialize};

use std::path::Path;

use crate::error::SpecError;
use crate::lxcconf::{check_value, LxcConfig};

/// The hooks of a spec, phase by phase.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hooks {
    pub prestart: Vec<HookSpec>,
    pub create_runtime: Vec<HookSpec>,
    pub create_container: Vec<HookSpec>,
    pub start_container: Vec<HookSpec>,
    pub poststart: Vec<HookSpec>,
    pub poststop: Vec<HookSpec>,
}

fn hook(field: &str, h: &Hook) -> Result<HookSpec, SpecError> {
    let path = h
        .path()
        .to_str()
        .ok_or_else(|| SpecError::new(format!("{field}.path"), "not valid UTF-8"))?;
    if !path.starts_with('/') {
        return Err(SpecError::new(
            format!("{field}.path"),
            format!("{path:?} is not an absolute path"),
        ));
    }
    check_value(&format!("{field}.path"), path)?;
    let args = match h.args() {
        Some(a) if !a.is_empty() => a.clone(),
        _ => vec![path.to_string()],
    };
    for (i, a) in args.iter().enumerate() {
        if a.contains('\0') {
            return Err(SpecError::new(format!("{field}.args[{i}]"), "contains NUL"));
        }
    }
    let env = h.env().clone().unwrap_or_default();
    for (i, e) in env.iter().enumerate() {
        if !e.contains('=') || e.contains('\0') || e.starts_with('=') {
            return Err(SpecError::new(
                format!("{field}.env[{i}]"),
                format!("{e:?} is not KEY=value"),
            ));
        }
    }
    let timeout = match h.timeout() {
        None => None,
        Some(t) if t > 0 => Some(u32::try_from(t).unwrap_or(u32::MAX)),
        Some(t) => {
            return Err(SpecError::new(
                format!("{field}.timeout"),
                format!("{t} is not greater than zero"),
            ))
        }
    };
    Ok(HookSpec {
        path: path.to_string(),
        args,
        env,
        timeout,
    })
}

fn list(field: &str, hooks: &Option<Vec<Hook>>) -> Result<Vec<HookSpec>, SpecError> {
    hooks
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, h)| hook(&format!("{field}[{i}]"), h))
        .collect()
}

impl Hooks {
    /// Whether liblxc must stop at its mount hook for us (see the module doc).
    pub fn need_mount_hook(&self) -> bool {
        !(self.prestart.is_empty()
            && self.create_runtime.is_empty()
            && self.create_container.is_empty())
    }
}

/// The lxc keys for the hooks: `lxc.hook.mount` runs `helper` (through `sh -c`,
/// so the path is restricted to plain characters). `mounts`: the helper attaches
/// id-mapped mounts there, so it runs even without hooks.
pub fn lxc_keys(
    hooks: &Hooks,
    mounts: bool,
    helper: &Path,
    lxc: &mut LxcConfig,
) -> Result<(), SpecError> {
    if !hooks.need_mount_hook() && !mounts {
        return Ok(());
    }
    let path = helper.to_str().unwrap_or("");
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+".contains(c);
    if !path.starts_with('/') || !path.chars().all(plain) {
        return Err(SpecError::new(
            "(runtime) libexec dir",
            format!("{path:?} must be an absolute path of plain characters"),
        ));
    }
    lxc.push("hooks", "lxc.hook.mount", path)
}

/// Validate and collect the spec's hooks.
pub fn translate(spec: &Spec) -> Result<Hooks, SpecError> {
    let Some(h) = spec.hooks().as_ref() else {
        return Ok(Hooks::default());
    };
    #[allow(deprecated)]
    let prestart = h.prestart();
    let hooks = Hooks {
        prestart: list("hooks.prestart", prestart)?,
        create_runtime: list("hooks.createRuntime", h.create_runtime())?,
        create_container: list("hooks.createContainer", h.create_container())?,
        start_container: list("hooks.startContainer", h.start_container())?,
        poststart: list("hooks.poststart", h.poststart())?,
        poststop: list("hooks.poststop", h.poststop())?,
    };
    if hooks.create_container.len() > MAX_FDS {
        return Err(SpecError::new(
            "hooks.createContainer",
            format!("more than {MAX_FDS} hooks"),
        ));
    }
    Ok(hooks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(hooks: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.2.0", "root": {"path": "rootfs"}, "hooks": hooks
        }))
        .unwrap()
    }

    #[test]
    fn golden_all_phases() {
        let s = spec(serde_json::json!({
            "prestart": [{"path": "/bin/pre"}],
            "createRuntime": [{"path": "/usr/bin/nerdctl", "args": ["nerdctl", "internal", "oci-hook", "createRuntime"],
                               "env": ["PATH=/usr/bin"], "timeout": 30}],
            "createContainer": [{"path": "/bin/cc"}],
            "startContainer": [{"path": "/bin/sc", "args": ["sc", "-x"]}],
            "poststart": [{"path": "/bin/ps1"}, {"path": "/bin/ps2"}],
            "poststop": [{"path": "/bin/stop", "timeout": 5}]
        }));
        let h = translate(&s).unwrap();
        let hs = |p: &str, a: &[&str], env: &[&str], t: Option<u32>| HookSpec {
            path: p.into(),
            args: a.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|s| s.to_string()).collect(),
            timeout: t,
        };
        assert_eq!(
            h,
            Hooks {
                prestart: vec![hs("/bin/pre", &["/bin/pre"], &[], None)],
                create_runtime: vec![hs(
                    "/usr/bin/nerdctl",
                    &["nerdctl", "internal", "oci-hook", "createRuntime"],
                    &["PATH=/usr/bin"],
                    Some(30)
                )],
                create_container: vec![hs("/bin/cc", &["/bin/cc"], &[], None)],
                start_container: vec![hs("/bin/sc", &["sc", "-x"], &[], None)],
                poststart: vec![
                    hs("/bin/ps1", &["/bin/ps1"], &[], None),
                    hs("/bin/ps2", &["/bin/ps2"], &[], None)
                ],
                poststop: vec![hs("/bin/stop", &["/bin/stop"], &[], Some(5))],
            }
        );
    }

    #[test]
    fn golden_lxc_keys() {
        let helper = Path::new("/usr/local/libexec/lxcri/lxcri-hook");
        let mut lxc = LxcConfig::new();
        let h = translate(&spec(serde_json::json!({"poststart": [{"path": "/h"}]}))).unwrap();
        lxc_keys(&h, false, helper, &mut lxc).unwrap();
        assert_eq!(lxc.render(), "");
        // Id-mapped mounts are attached by the helper: it runs without hooks.
        let mut lxc = LxcConfig::new();
        lxc_keys(&h, true, helper, &mut lxc).unwrap();
        assert_eq!(
            lxc.render(),
            "lxc.hook.mount = /usr/local/libexec/lxcri/lxcri-hook\n"
        );
        for phase in ["prestart", "createRuntime", "createContainer"] {
            let mut lxc = LxcConfig::new();
            let h = translate(&spec(serde_json::json!({phase: [{"path": "/h"}]}))).unwrap();
            lxc_keys(&h, false, helper, &mut lxc).unwrap();
            assert_eq!(
                lxc.render(),
                "lxc.hook.mount = /usr/local/libexec/lxcri/lxcri-hook\n"
            );
        }
        let h = translate(&spec(serde_json::json!({"prestart": [{"path": "/h"}]}))).unwrap();
        let e = lxc_keys(
            &h,
            false,
            Path::new("/opt/my dir/lxcri-hook"),
            &mut LxcConfig::new(),
        )
        .unwrap_err();
        assert_eq!(e.field, "(runtime) libexec dir");
    }

    #[test]
    fn bad_hooks_name_the_field() {
        let e = translate(&spec(
            serde_json::json!({"poststop": [{"path": "rel/hook"}]}),
        ))
        .unwrap_err();
        assert_eq!(e.field, "hooks.poststop[0].path");
        let e = translate(&spec(
            serde_json::json!({"poststart": [{"path": "/h", "timeout": 0}]}),
        ))
        .unwrap_err();
        assert_eq!(e.field, "hooks.poststart[0].timeout");
        let e = translate(&spec(
            serde_json::json!({"createRuntime": [{"path": "/h", "env": ["NOEQ"]}]}),
        ))
        .unwrap_err();
        assert_eq!(e.field, "hooks.createRuntime[0].env[0]");
        let e = translate(&spec(serde_json::json!({"prestart": [{"path": "/h\nx"}]}))).unwrap_err();
        assert_eq!(e.field, "hooks.prestart[0].path");
    }
}
