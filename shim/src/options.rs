//! The runtime options containerd and CRI send with Create: the runc shim's
//! own type (so that a runtime entry written for runc works for lxcri), and
//! the generic `runtimeoptions.v1.Options` that containerd sends to every other
//! runtime type, ours included (CRI's `options` table, `ctr run
//! --runtime-config-path`): a TOML file (`ConfigPath`) or, from CRI since
//! containerd 1.7, the options table itself (`ConfigBody`), with the keys of
//! runc's options. What applies to lxcri is honoured, runc's other keys are
//! logged at debug level and ignored; an unknown key, a value of the wrong
//! type or an unreadable file is an error at Create.

use std::path::{Path, PathBuf};

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{CodedInputStream, Message};
use containerd_shim::protos::shim::oci::Options as RuncOptions;

use crate::error::{Error, Result};

/// What lxcri honours of the options.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// `SystemdCgroup`: the systemd cgroup driver (cgroupsPath is in systemd's
    /// `slice:prefix:name` form, the cgroup a transient unit).
    pub systemd_cgroup: bool,
    /// `ShimCgroup`: the cgroup the shim moves itself into.
    pub shim_cgroup: Option<PathBuf>,
    /// `NoNewKeyring`: no new session keyring for the container.
    pub no_new_keyring: bool,
    /// `IoUid`/`IoGid`: owner of the container's stdio pipes and fifos.
    pub io_owner: crate::io::IoOwner,
}

impl RuntimeOptions {
    /// From the values of runc's option keys (the protobuf type's or the TOML
    /// file's): an empty ShimCgroup is none, IoUid and IoGid both 0 no owner.
    fn from_runc_keys(
        systemd_cgroup: bool,
        shim_cgroup: &str,
        no_new_keyring: bool,
        io_uid: u32,
        io_gid: u32,
    ) -> Self {
        RuntimeOptions {
            systemd_cgroup,
            shim_cgroup: (!shim_cgroup.is_empty()).then(|| PathBuf::from(shim_cgroup)),
            no_new_keyring,
            io_owner: (io_uid != 0 || io_gid != 0).then_some((io_uid, io_gid)),
        }
    }
}

/// Decode `CreateTaskRequest.options`.
pub fn parse(any: Option<&Any>) -> Result<RuntimeOptions> {
    let Some(any) = any.filter(|a| !a.type_url.is_empty()) else {
        return Ok(RuntimeOptions::default());
    };
    let name = any.type_url.rsplit('/').next().unwrap_or("");
    match name {
        // runc v2 shim options (containerd 1.x names them "containerd.runc.v1.Options",
        // older configs "io.containerd.runc.v1.Options").
        "containerd.runc.v1.Options" | "io.containerd.runc.v1.Options" => {
            let o = RuncOptions::parse_from_bytes(&any.value)
                .map_err(|e| Error::InvalidArgument(format!("runtime options {name}: {e}")))?;
            let ignored = [
                ("NoPivotRoot", o.no_pivot_root),
                ("BinaryName", !o.binary_name.is_empty()),
                ("Root", !o.root.is_empty()),
                ("CriuImagePath", !o.criu_image_path.is_empty()),
                ("CriuWorkPath", !o.criu_work_path.is_empty()),
                ("TaskApiAddress", !o.task_api_address.is_empty()),
            ];
            for (field, set) in ignored {
                if set {
                    // NoPivotRoot: liblxc always pivots; the others name runc's
                    // binary, state and criu.
                    log::debug!("runtime option {field} does not apply to lxcri, ignored");
                }
            }
            Ok(RuntimeOptions::from_runc_keys(
                o.systemd_cgroup,
                &o.shim_cgroup,
                o.no_new_keyring,
                o.io_uid,
                o.io_gid,
            ))
        }
        // containerd's generic options (proto package runtimeoptions.v1; in
        // containerd 1.6 github.com/containerd/containerd/pkg/runtimeoptions/v1).
        "runtimeoptions.v1.Options" => {
            let o = GenericOptions::decode(&any.value)?;
            if !o.type_url.is_empty() {
                log::debug!(
                    "runtime option TypeUrl {:?} ignored: the config is TOML",
                    o.type_url
                );
            }
            if !o.config_path.is_empty() {
                read_config_file(Path::new(&o.config_path))
            } else if !o.config_body.is_empty() {
                let body = std::str::from_utf8(&o.config_body).map_err(|e| {
                    Error::InvalidArgument(format!("runtime options (ConfigBody): not UTF-8: {e}"))
                })?;
                from_toml(body, "in the runtime's options table (ConfigBody)", true)
            } else {
                // An empty ConfigPath (ctr without --runtime-config-path never
                // sends the type; CRI sends it empty for an options table
                // without ConfigPath on 1.6): no options, as with no table.
                Ok(RuntimeOptions::default())
            }
        }
        other => {
            // No client sends another type to a runtime that is not runc's.
            log::warn!("runtime options of type {other:?} are not known to lxcri, ignored");
            Ok(RuntimeOptions::default())
        }
    }
}

/// containerd's `runtimeoptions.v1.Options`, which the protos crate does not
/// have: `type_url` (1), `config_path` (2), `config_body` (3, containerd 1.7+).
#[derive(Debug, Default, PartialEq, Eq)]
struct GenericOptions {
    type_url: String,
    config_path: String,
    config_body: Vec<u8>,
}

impl GenericOptions {
    fn decode(value: &[u8]) -> Result<Self> {
        let bad = |e: containerd_shim::protos::protobuf::Error| {
            Error::InvalidArgument(format!("runtime options runtimeoptions.v1.Options: {e}"))
        };
        let mut is = CodedInputStream::from_bytes(value);
        let mut o = GenericOptions::default();
        while let Some(tag) = is.read_raw_tag_or_eof().map_err(bad)? {
            match tag {
                // (field << 3) | wire type 2 (length-delimited)
                10 => o.type_url = is.read_string().map_err(bad)?,
                18 => o.config_path = is.read_string().map_err(bad)?,
                26 => o.config_body = is.read_bytes().map_err(bad)?,
                _ => containerd_shim::protos::protobuf::rt::skip_field_for_tag(tag, &mut is)
                    .map_err(bad)?,
            }
        }
        Ok(o)
    }
}

/// Read the TOML options file `ConfigPath` (absolute: the shim runs in the
/// bundle, not where the path was written).
fn read_config_file(path: &Path) -> Result<RuntimeOptions> {
    if !path.is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "runtime options: ConfigPath {:?} must be an absolute path",
            path.display().to_string()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::InvalidArgument(format!(
            "runtime options: cannot read ConfigPath {}: {e}",
            path.display()
        ))
    })?;
    from_toml(&text, &format!("in file {}", path.display()), false)
}

/// The runc option keys lxcri does not use, with the TOML type each has.
const IGNORED_KEYS: &[(&str, Kind)] = &[
    // liblxc always pivots.
    ("NoPivotRoot", Kind::Bool),
    // runc's binary, state dir and criu.
    ("BinaryName", Kind::String),
    ("Root", Kind::String),
    ("CriuPath", Kind::String),
    ("CriuImagePath", Kind::String),
    ("CriuWorkPath", Kind::String),
    ("TaskApiAddress", Kind::String),
    ("TaskApiVersion", Kind::U32),
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Bool,
    String,
    U32,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Bool => "a boolean",
            Kind::String => "a string",
            Kind::U32 => "an integer from 0 to 4294967295",
        }
    }
}

/// Options from the TOML text of `source` (a file, or CRI's options table
/// when `table`: that one also holds the generic options' own keys).
fn from_toml(text: &str, source: &str, table: bool) -> Result<RuntimeOptions> {
    let doc: toml::Table = text
        .parse()
        .map_err(|e| Error::InvalidArgument(format!("runtime options {source}: {e}")))?;
    let (mut systemd_cgroup, mut no_new_keyring, mut shim_cgroup) = (false, false, "");
    let (mut uid, mut gid) = (0, 0);
    for (key, value) in &doc {
        let wrong = |kind: Kind| {
            Error::InvalidArgument(format!(
                "runtime options {source}: {key} must be {}, not {}",
                kind.name(),
                show(value)
            ))
        };
        let as_bool = || value.as_bool().ok_or_else(|| wrong(Kind::Bool));
        let as_str = || value.as_str().ok_or_else(|| wrong(Kind::String));
        let as_u32 = || {
            value
                .as_integer()
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| wrong(Kind::U32))
        };
        match key.as_str() {
            "SystemdCgroup" => systemd_cgroup = as_bool()?,
            "NoNewKeyring" => no_new_keyring = as_bool()?,
            "ShimCgroup" => shim_cgroup = as_str()?,
            "IoUid" => uid = as_u32()?,
            "IoGid" => gid = as_u32()?,
            "TypeUrl" | "ConfigPath" if table => {
                as_str()?;
            }
            k => match IGNORED_KEYS.iter().find(|(name, _)| *name == k) {
                Some((_, kind)) => {
                    match kind {
                        Kind::Bool => drop(as_bool()?),
                        Kind::String => drop(as_str()?),
                        Kind::U32 => drop(as_u32()?),
                    }
                    log::debug!("runtime option {k} ({source}) does not apply to lxcri, ignored");
                }
                None => return Err(unknown_key(source, k)),
            },
        }
    }
    Ok(RuntimeOptions::from_runc_keys(
        systemd_cgroup,
        shim_cgroup,
        no_new_keyring,
        uid,
        gid,
    ))
}

/// A TOML value for an error message: its type, and its value when short.
fn show(value: &toml::Value) -> String {
    use toml::Value as V;
    let v = match value {
        V::String(s) => format!("{s:?}"),
        V::Integer(i) => i.to_string(),
        V::Float(f) => f.to_string(),
        V::Boolean(b) => b.to_string(),
        V::Datetime(d) => d.to_string(),
        V::Array(_) | V::Table(_) => return value.type_str().to_string(),
    };
    format!("{} {v}", value.type_str())
}

fn unknown_key(source: &str, key: &str) -> Error {
    const KNOWN: &[&str] = &[
        "SystemdCgroup",
        "ShimCgroup",
        "NoNewKeyring",
        "IoUid",
        "IoGid",
    ];
    let mut all = KNOWN
        .iter()
        .copied()
        .chain(IGNORED_KEYS.iter().map(|(k, _)| *k));
    let hint = match all.find(|k| k.eq_ignore_ascii_case(key)) {
        Some(k) => format!(" (did you mean {k}?)"),
        None => String::new(),
    };
    Error::InvalidArgument(format!(
        "runtime options {source}: unknown key {key:?}{hint}; lxcri knows {} and ignores runc's {}",
        KNOWN.join(", "),
        IGNORED_KEYS
            .iter()
            .map(|(k, _)| *k)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// SystemdCgroup needs systemd as the host's init, as with runc.
pub fn check_systemd(o: &RuntimeOptions, run_systemd: &Path) -> Result<()> {
    if o.systemd_cgroup && !run_systemd.join("system").is_dir() {
        return Err(Error::FailedPrecondition(
            "SystemdCgroup: systemd is not running on this host, cannot use the systemd cgroup driver"
                .into(),
        ));
    }
    Ok(())
}

/// Move this process (the shim) into `cgroup` in every hierarchy that has it.
pub fn enter_shim_cgroup(hierarchies: &[PathBuf], cgroup: &Path) -> Result<()> {
    let rel = cgroup.strip_prefix("/").unwrap_or(cgroup);
    let mut entered = false;
    for h in hierarchies {
        let procs = h.join(rel).join("cgroup.procs");
        if procs.exists() {
            std::fs::write(&procs, std::process::id().to_string())
                .map_err(|e| Error::io("write", procs.display(), e))?;
            entered = true;
        }
    }
    if !entered {
        return Err(Error::InvalidArgument(format!(
            "ShimCgroup {}: no such cgroup",
            cgroup.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(type_url: &str, o: &RuncOptions) -> Any {
        Any {
            type_url: type_url.into(),
            value: o.write_to_bytes().unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn runc_options_are_read() {
        let o = RuncOptions {
            systemd_cgroup: true,
            shim_cgroup: "/shims".into(),
            no_new_keyring: true,
            io_uid: 1000,
            binary_name: "runc".into(),
            ..Default::default()
        };
        for url in [
            "containerd.runc.v1.Options",
            "io.containerd.runc.v1.Options",
            "type.googleapis.com/containerd.runc.v1.Options",
        ] {
            let got = parse(Some(&any(url, &o))).unwrap();
            assert_eq!(
                got,
                RuntimeOptions {
                    systemd_cgroup: true,
                    shim_cgroup: Some("/shims".into()),
                    no_new_keyring: true,
                    io_owner: Some((1000, 0)),
                }
            );
        }
    }

    /// runtimeoptions.v1.Options as containerd's Go code encodes it.
    fn generic(type_url: &str, config_path: &str, body: &[u8]) -> Any {
        let mut value = Vec::new();
        for (tag, v) in [
            (10u8, type_url.as_bytes()),
            (18, config_path.as_bytes()),
            (26, body),
        ] {
            if !v.is_empty() {
                assert!(v.len() < 128);
                value.extend([tag, v.len() as u8]);
                value.extend(v);
            }
        }
        Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value,
            ..Default::default()
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> String {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    fn err(r: Result<RuntimeOptions>) -> String {
        match r {
            Err(e @ Error::InvalidArgument(_)) => e.to_string(),
            other => panic!("want InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn generic_options_decode() {
        let a = generic("io.x/t", "/etc/lxcri/shim.toml", b"A = 1");
        assert_eq!(
            GenericOptions::decode(&a.value).unwrap(),
            GenericOptions {
                type_url: "io.x/t".into(),
                config_path: "/etc/lxcri/shim.toml".into(),
                config_body: b"A = 1".to_vec(),
            }
        );
        // An unknown field (a future one) is skipped, as protobuf does.
        let mut v = vec![0x20, 0x07];
        v.extend(&a.value);
        assert_eq!(
            GenericOptions::decode(&v).unwrap().config_path,
            "/etc/lxcri/shim.toml"
        );
        // A truncated message is an error naming the type.
        let e = GenericOptions::decode(&a.value[..5]).unwrap_err();
        assert!(e.to_string().contains("runtimeoptions.v1.Options"), "{e}");
    }

    #[test]
    fn config_file_is_read() {
        let d = tempfile::tempdir().unwrap();
        let path = write(
            d.path(),
            "shim.toml",
            "# lxcri\nSystemdCgroup = true\nShimCgroup = \"/shims\"\nNoNewKeyring = true\n\
             IoUid = 1000\nIoGid = 1001\nBinaryName = \"runc\"\nNoPivotRoot = false\n",
        );
        for url in [
            "runtimeoptions.v1.Options",
            "type.googleapis.com/runtimeoptions.v1.Options",
        ] {
            let mut a = generic("", &path, b"");
            a.type_url = url.into();
            assert_eq!(
                parse(Some(&a)).unwrap(),
                RuntimeOptions {
                    systemd_cgroup: true,
                    shim_cgroup: Some("/shims".into()),
                    no_new_keyring: true,
                    io_owner: Some((1000, 1001)),
                }
            );
        }
        // An empty file, or only IoGid.
        let path = write(d.path(), "empty.toml", "# nothing\n");
        assert_eq!(
            parse(Some(&generic("", &path, b""))).unwrap(),
            RuntimeOptions::default()
        );
        let path = write(d.path(), "gid.toml", "IoGid = 5\n");
        assert_eq!(
            parse(Some(&generic("", &path, b""))).unwrap().io_owner,
            Some((0, 5))
        );
    }

    #[test]
    fn empty_config_path_is_no_options() {
        assert_eq!(
            parse(Some(&generic("", "", b""))).unwrap(),
            RuntimeOptions::default()
        );
        assert_eq!(
            parse(Some(&generic("some/type", "", b""))).unwrap(),
            RuntimeOptions::default()
        );
        assert_eq!(parse(None).unwrap(), RuntimeOptions::default());
    }

    #[test]
    fn config_body_is_the_options_table() {
        // containerd >= 1.7 CRI: the options table itself, without ConfigPath.
        let body = b"SystemdCgroup = true\nTypeUrl = \"x\"\n";
        let o = parse(Some(&generic("x", "", body))).unwrap();
        assert!(o.systemd_cgroup);
        // ConfigPath wins over a body (containerd sends a body only without one).
        let d = tempfile::tempdir().unwrap();
        let path = write(d.path(), "shim.toml", "NoNewKeyring = true\n");
        let o = parse(Some(&generic("", &path, body))).unwrap();
        assert!(o.no_new_keyring && !o.systemd_cgroup);
        // A file does not take the generic options' own keys.
        let path = write(d.path(), "own.toml", "ConfigPath = \"/x\"\n");
        let e = err(parse(Some(&generic("", &path, b""))));
        assert!(e.contains("unknown key \"ConfigPath\""), "{e}");
        let e = err(parse(Some(&generic("", "", b"SystemdCgroup = 1\n"))));
        assert!(
            e.contains("ConfigBody") && e.contains("SystemdCgroup"),
            "{e}"
        );
    }

    #[test]
    fn config_file_unknown_key_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let path = write(d.path(), "shim.toml", "SystemdCgroup = true\nFoo = 1\n");
        let e = err(parse(Some(&generic("", &path, b""))));
        assert!(
            e.contains(&path) && e.contains("unknown key \"Foo\"") && e.contains("SystemdCgroup"),
            "{e}"
        );
        // A misspelt case gets a hint.
        let path = write(d.path(), "case.toml", "systemdCgroup = true\n");
        let e = err(parse(Some(&generic("", &path, b""))));
        assert!(e.contains("did you mean SystemdCgroup?"), "{e}");
        // A table is a key like any other.
        let path = write(d.path(), "table.toml", "[options]\nSystemdCgroup = true\n");
        let e = err(parse(Some(&generic("", &path, b""))));
        assert!(e.contains("unknown key \"options\""), "{e}");
    }

    #[test]
    fn config_file_bad_type_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        for (text, key, want) in [
            ("SystemdCgroup = \"true\"", "SystemdCgroup", "a boolean"),
            ("NoNewKeyring = 1", "NoNewKeyring", "a boolean"),
            ("ShimCgroup = true", "ShimCgroup", "a string"),
            ("IoUid = -1", "IoUid", "an integer"),
            ("IoGid = 4294967296", "IoGid", "an integer"),
            ("IoUid = \"1000\"", "IoUid", "an integer"),
            // runc's keys that lxcri ignores are checked too.
            ("NoPivotRoot = \"yes\"", "NoPivotRoot", "a boolean"),
            ("BinaryName = 3", "BinaryName", "a string"),
        ] {
            let path = write(d.path(), "shim.toml", text);
            let e = err(parse(Some(&generic("", &path, b""))));
            assert!(
                e.contains(&path) && e.contains(&format!("{key} must be {want}")),
                "{text}: {e}"
            );
        }
        // Not TOML at all: the parser's message, with the file.
        let path = write(d.path(), "shim.toml", "SystemdCgroup = \n");
        let e = err(parse(Some(&generic("", &path, b""))));
        assert!(e.contains(&path) && e.contains("line 1"), "{e}");
    }

    #[test]
    fn config_file_missing_or_relative_is_an_error() {
        let e = err(parse(Some(&generic(
            "",
            "/nonexistent/lxcri/shim.toml",
            b"",
        ))));
        assert!(
            e.contains("cannot read ConfigPath /nonexistent/lxcri/shim.toml")
                && e.contains("No such file"),
            "{e}"
        );
        let e = err(parse(Some(&generic("", "shim.toml", b""))));
        assert!(e.contains("must be an absolute path"), "{e}");
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().display().to_string();
        let e = err(parse(Some(&generic("", &dir, b""))));
        assert!(e.contains("cannot read ConfigPath"), "{e}");
    }

    #[test]
    fn other_options_are_ignored() {
        let a = Any {
            type_url: "example.v1.Options".into(),
            value: vec![10, 3, 97, 98, 99],
            ..Default::default()
        };
        assert_eq!(parse(Some(&a)).unwrap(), RuntimeOptions::default());
    }

    #[test]
    fn corrupt_runc_options_are_an_error() {
        let a = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: vec![0xff, 0xff, 0xff],
            ..Default::default()
        };
        assert!(parse(Some(&a)).is_err());
    }

    #[test]
    fn systemd_cgroup_needs_systemd() {
        let d = tempfile::tempdir().unwrap();
        let o = RuntimeOptions {
            systemd_cgroup: true,
            ..Default::default()
        };
        assert!(matches!(
            check_systemd(&o, d.path()),
            Err(Error::FailedPrecondition(_))
        ));
        std::fs::create_dir(d.path().join("system")).unwrap();
        check_systemd(&o, d.path()).unwrap();
        check_systemd(&RuntimeOptions::default(), Path::new("/nonexistent")).unwrap();
    }

    #[test]
    fn shim_cgroup_must_exist() {
        let d = tempfile::tempdir().unwrap();
        let h = vec![d.path().to_path_buf()];
        assert!(enter_shim_cgroup(&h, Path::new("/nope")).is_err());
    }
}
