//! `mounts`: one `lxc.mount.entry` per mount, in spec order.
//!
//! Destinations are resolved inside the rootfs (symlinks followed as if the
//! rootfs were `/`, never out of it) and given to liblxc relative to the rootfs;
//! liblxc refuses a target with a symlink in it, and would otherwise create
//! missing directories (`create=dir|file`) by following links on the host.
//! Fields are fstab-escaped (`\040` for a space): liblxc reads entries with
//! getmntent.
//!
//! Options: liblxc applies the generic ones it knows (ro, nosuid, nodev, noexec,
//! atime flags, bind/rbind, propagation) and passes `key=value` ones to the
//! filesystem; any other option it *drops silently*, so lxcri refuses every
//! option it cannot name, except `tmpcopyup` on a tmpfs whose destination is
//! empty or missing in the rootfs (there is nothing to copy up).
//!
//! `linux.mountLabel` (SELinux host only): as runc (`label.FormatMountLabel`
//! in its rootfs_linux.go), every mount but bind mounts, proc, sysfs, mqueue
//! and cgroups gets the option `context="LABEL"` (tmpfs, /dev's among them,
//! overlay ...). mqueue cannot take one: its superblock is the IPC
//! namespace's, made without options, and SELinux refuses other settings on
//! it (EINVAL); runc relabels its root with setxattr instead, which lxcri does
//! not do (yet). liblxc splits the options at commas and drops the pieces it
//! does not know, so a label with a comma (`s0:c1,c2`) is refused earlier
//! (`security`). liblxc's own /dev/pts instance (it replaces the spec's
//! devpts mount) and its autodev /dev tmpfs get no label: the spec's /dev
//! tmpfs, mounted over the latter, does.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::error::SpecError;
use crate::lxcconf::{check_value, LxcConfig};
use crate::userns::IdMap;

/// Options liblxc turns into mount flags (see `mount_opt` and `propagation_opt`
/// in liblxc's conf.c).
pub const FLAG_OPTIONS: &[&str] = &[
    "defaults",
    "ro",
    "rw",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "noexec",
    "exec",
    "noatime",
    "atime",
    "nodiratime",
    "diratime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "sync",
    "async",
    "dirsync",
    "lazytime",
    "mand",
    "nomand",
    "bind",
    "rbind",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "private",
    "rprivate",
    "unbindable",
    "runbindable",
];

/// liblxc finds its own mount options by substring anywhere in the options
/// (`strstr`): such text in a spec option would change what liblxc does.
const LXC_OPTION_MARKERS: &[&str] = &[
    "create=dir",
    "create=file",
    "optional",
    "relative",
    "idmap=",
];

/// Escape one fstab field.
pub(crate) fn escape(field: &str, v: &str) -> Result<String, SpecError> {
    check_value(field, v)?;
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The components of an absolute destination without `.`; `..` is refused.
fn destination_parts(field: &str, dest: &Path) -> Result<Vec<OsString>, SpecError> {
    if !dest.is_absolute() {
        return Err(SpecError::new(
            field,
            format!("{} is not absolute", dest.display()),
        ));
    }
    let mut parts = Vec::new();
    for c in dest.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => parts.push(n.to_os_string()),
            _ => {
                return Err(SpecError::new(
                    field,
                    format!("{} must not contain '..'", dest.display()),
                ))
            }
        }
    }
    if parts.is_empty() {
        return Err(SpecError::new(field, "cannot mount over the root"));
    }
    Ok(parts)
}

/// Resolve `parts` inside `rootfs` as the container will see it: symlinks are
/// followed with the rootfs as `/` (an absolute link restarts at the rootfs,
/// `..` stops at it). Below a path where an earlier mount (`mounted`, relative)
/// is, the image's content is hidden: the rest is taken literally (liblxc then
/// refuses a symlink there). Returns the path relative to the rootfs.
pub fn resolve_in_root(
    field: &str,
    rootfs: &Path,
    parts: Vec<OsString>,
    mounted: &[PathBuf],
) -> Result<PathBuf, SpecError> {
    const MAX_LINKS: usize = 40;
    let mut queue: VecDeque<OsString> = parts.into();
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(c) = queue.pop_front() {
        if c == "." || c.is_empty() {
            continue;
        }
        if c == ".." {
            resolved.pop();
            continue;
        }
        let under_mount = mounted
            .iter()
            .any(|m| !resolved.as_os_str().is_empty() && resolved.starts_with(m));
        let candidate = resolved.join(&c);
        if under_mount {
            resolved = candidate;
            continue;
        }
        let md = match std::fs::symlink_metadata(rootfs.join(&candidate)) {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                resolved = candidate;
                continue;
            }
            Err(e) => {
                return Err(SpecError::new(
                    field,
                    format!("{}: {e}", candidate.display()),
                ))
            }
        };
        if !md.file_type().is_symlink() {
            resolved = candidate;
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(SpecError::new(field, "too many levels of symbolic links"));
        }
        let target = std::fs::read_link(rootfs.join(&candidate))
            .map_err(|e| SpecError::new(field, format!("{}: {e}", candidate.display())))?;
        if target.is_absolute() {
            resolved = PathBuf::new();
        }
        let mut rest: VecDeque<OsString> = target
            .components()
            .filter_map(|c| match c {
                Component::RootDir => None,
                Component::CurDir => None,
                Component::ParentDir => Some(OsString::from("..")),
                Component::Normal(n) => Some(n.to_os_string()),
                Component::Prefix(_) => None,
            })
            .collect();
        rest.extend(queue);
        queue = rest;
    }
    if resolved.as_os_str().is_empty() {
        return Err(SpecError::new(
            field,
            "resolves to the root of the container",
        ));
    }
    Ok(resolved)
}

/// Whether a directory of the rootfs is missing or empty (a tmpcopyup there
/// copies nothing).
fn empty_or_missing(p: &Path) -> bool {
    match std::fs::read_dir(p) {
        Ok(mut d) => d.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// Check and filter the options of mount `field` of type `typ`.
fn options(
    field: &str,
    typ: &str,
    options: &[String],
    target_in_rootfs: &Path,
) -> Result<Vec<String>, SpecError> {
    let mut out: Vec<String> = Vec::new();
    let mut copyup = false;
    for (j, o) in options.iter().enumerate() {
        let f = format!("{field}.options[{j}]");
        check_value(&f, o)?;
        if o.contains(',') {
            return Err(SpecError::new(f, format!("{o:?} contains a comma")));
        }
        if let Some(m) = LXC_OPTION_MARKERS.iter().find(|m| o.contains(*m)) {
            return Err(SpecError::new(
                f,
                format!("{o:?} contains {m:?}, which liblxc would take as its own option"),
            ));
        }
        if o == "tmpcopyup" {
            if typ != "tmpfs" {
                return Err(SpecError::new(f, "tmpcopyup applies to tmpfs mounts only"));
            }
            if !empty_or_missing(target_in_rootfs) {
                return Err(SpecError::new(
                    f,
                    "tmpcopyup over a non-empty directory of the image is not supported",
                ));
            }
            // Nothing to copy up; what runc's copy-up still carries over is the
            // directory's mode and owner (0755 root for a missing one, which runc
            // creates so).
            copyup = true;
            continue;
        }
        if o == "rro" {
            // Read-only for liblxc; the init makes it recursive (mount_setattr).
            out.push("ro".into());
            continue;
        }
        if !o.contains('=') && !FLAG_OPTIONS.contains(&o.as_str()) {
            return Err(SpecError::new(
                f,
                format!("mount option {o:?} is not supported (liblxc would ignore it)"),
            ));
        }
        out.push(o.clone());
    }
    if copyup {
        use std::os::unix::fs::MetadataExt;
        let (mode, uid, gid) = match std::fs::metadata(target_in_rootfs) {
            Ok(md) => (md.mode() & 0o7777, md.uid(), md.gid()),
            Err(_) => (0o755, 0, 0),
        };
        out.retain(|o| !o.starts_with("mode=") && !o.starts_with("uid=") && !o.starts_with("gid="));
        out.push(format!("mode={mode:o}"));
        if uid != 0 || gid != 0 {
            out.push(format!("uid={uid}"));
            out.push(format!("gid={gid}"));
        }
    }
    Ok(out)
}

/// The propagation flags (MS_*) of a mount's options, if it has any.
fn propagation_flags(options: &[String]) -> Option<u64> {
    let mut flags = None;
    for o in options {
        let f = match o.as_str() {
            "shared" => libc::MS_SHARED,
            "rshared" => libc::MS_SHARED | libc::MS_REC,
            "slave" => libc::MS_SLAVE,
            "rslave" => libc::MS_SLAVE | libc::MS_REC,
            "private" => libc::MS_PRIVATE,
            "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
            "unbindable" => libc::MS_UNBINDABLE,
            "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
            _ => continue,
        };
        // The last one wins, as in liblxc and runc.
        flags = Some(f);
    }
    flags
}

/// What the init does to the mounts after pivot_root.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InitMounts {
    /// The propagation of each mount that sets one (container path, MS_* flags),
    /// in spec order, to re-apply: liblxc turns the whole tree rshared.
    pub propagation: Vec<(String, u64)>,
    /// Container paths of the `rro` mounts (recursively read-only).
    pub recursive_readonly: Vec<String>,
    /// The id-mapped bind mounts, in spec order: made by the runtime (detached,
    /// in the host's user namespace) and attached by `lxcri-hook` at liblxc's
    /// mount hook, after liblxc's own mounts.
    pub idmapped: Vec<IdmappedMount>,
}

/// `mount_setattr(2)` attributes (linux/mount.h).
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// An id-mapped bind mount (`mounts[i].uidMappings`/`gidMappings`, options
/// `idmap`/`ridmap`), as runc 1.2 makes it: `open_tree(source, OPEN_TREE_CLONE
/// [| AT_RECURSIVE for rbind])`, `mount_setattr` of the flags, then
/// `MOUNT_ATTR_IDMAP` with a user namespace that has the mount's mappings
/// (`AT_RECURSIVE` for `ridmap`), then `move_mount` onto the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdmappedMount {
    /// `mounts[i]`, for errors.
    pub field: String,
    /// The absolute source path on the host.
    pub source: PathBuf,
    /// The destination relative to the rootfs, resolved (no symlinks, no `..`).
    pub destination: String,
    /// Whether the source is a directory (else the mount point is a file).
    pub is_dir: bool,
    /// `rbind`: the submounts of the source come along.
    pub recursive: bool,
    /// `ridmap`: the submounts are id-mapped too.
    pub recursive_idmap: bool,
    /// MOUNT_ATTR_* flags set on the top mount (ro, nosuid, nodev, noexec, atime).
    pub attr_set: u64,
    /// MOUNT_ATTR_* flags cleared (the atime field when an atime mode is set).
    pub attr_clr: u64,
    pub uid_mappings: Vec<IdMap>,
    pub gid_mappings: Vec<IdMap>,
}

/// The id mappings of mount `field` (`mounts[i]`): its own `uidMappings` and
/// `gidMappings` (both needed), or with only the `idmap`/`ridmap` option those
/// of the container's user namespace (`container`), as runtime spec 1.2 says.
fn mount_mappings(
    field: &str,
    m: &oci_spec::runtime::Mount,
    option_field: Option<&str>,
    container: Option<&(Vec<IdMap>, Vec<IdMap>)>,
) -> Result<(Vec<IdMap>, Vec<IdMap>), SpecError> {
    let conv = |f: &str, v: &Vec<oci_spec::runtime::LinuxIdMapping>| {
        let mut out = Vec::new();
        for (k, m) in v.iter().enumerate() {
            if m.size() == 0 {
                return Err(SpecError::new(format!("{f}[{k}].size"), "must not be 0"));
            }
            out.push(IdMap {
                container: m.container_id(),
                host: m.host_id(),
                size: m.size(),
            });
        }
        if out.is_empty() {
            return Err(SpecError::new(f, "must not be empty"));
        }
        Ok(out)
    };
    match (m.uid_mappings(), m.gid_mappings()) {
        (Some(u), Some(g)) => Ok((
            conv(&format!("{field}.uidMappings"), u)?,
            conv(&format!("{field}.gidMappings"), g)?,
        )),
        (Some(_), None) => Err(SpecError::new(
            format!("{field}.gidMappings"),
            "an id-mapped mount needs both uidMappings and gidMappings",
        )),
        (None, Some(_)) => Err(SpecError::new(
            format!("{field}.uidMappings"),
            "an id-mapped mount needs both uidMappings and gidMappings",
        )),
        (None, None) => match container {
            Some((u, g)) if !u.is_empty() && !g.is_empty() => Ok((u.clone(), g.clone())),
            _ => Err(SpecError::new(
                option_field.unwrap_or(field),
                "idmap/ridmap without uidMappings and gidMappings takes the mappings of \
                 the container's user namespace, and the container has none",
            )),
        },
    }
}

/// The MOUNT_ATTR_* (set, clear) of an id-mapped bind mount's options; options
/// other than flags, bind/rbind, propagation and rro are refused.
fn idmapped_attrs(field: &str, options: &[String]) -> Result<(u64, u64), SpecError> {
    let (mut set, mut clr) = (0u64, 0u64);
    for (j, o) in options.iter().enumerate() {
        let (s, c) = match o.as_str() {
            "ro" | "rro" => (MOUNT_ATTR_RDONLY, 0),
            "rw" => (0, MOUNT_ATTR_RDONLY),
            "nosuid" => (MOUNT_ATTR_NOSUID, 0),
            "suid" => (0, MOUNT_ATTR_NOSUID),
            "nodev" => (MOUNT_ATTR_NODEV, 0),
            "dev" => (0, MOUNT_ATTR_NODEV),
            "noexec" => (MOUNT_ATTR_NOEXEC, 0),
            "exec" => (0, MOUNT_ATTR_NOEXEC),
            "noatime" => (MOUNT_ATTR_NOATIME, MOUNT_ATTR_ATIME),
            "relatime" => (MOUNT_ATTR_RELATIME, MOUNT_ATTR_ATIME),
            "strictatime" => (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR_ATIME),
            "nodiratime" => (MOUNT_ATTR_NODIRATIME, 0),
            "diratime" => (0, MOUNT_ATTR_NODIRATIME),
            "defaults" | "bind" | "rbind" | "idmap" | "ridmap" | "shared" | "rshared" | "slave"
            | "rslave" | "private" | "rprivate" | "unbindable" | "runbindable" => (0, 0),
            _ => {
                return Err(SpecError::new(
                    format!("{field}.options[{j}]"),
                    format!("option {o:?} is not supported on an id-mapped bind mount"),
                ))
            }
        };
        if c == MOUNT_ATTR_ATIME {
            // The last atime mode wins.
            set &= !MOUNT_ATTR_ATIME;
        }
        set = (set & !c) | s;
        clr = (clr & !s) | c;
    }
    Ok((set, clr))
}

/// Translate `mounts`; `rootfs` is the absolute rootfs path on the host.
///
/// `container_maps`: the (uid, gid) mappings of the container's user namespace,
/// if it has one (what `idmap`/`ridmap` without mappings of their own take).
pub fn translate(
    spec: &Spec,
    bundle: &Path,
    rootfs: &Path,
    container_maps: Option<&(Vec<IdMap>, Vec<IdMap>)>,
    mount_label: Option<&str>,
    lxc: &mut LxcConfig,
) -> Result<InitMounts, SpecError> {
    let mut propagation = Vec::new();
    let mut recursive_readonly = Vec::new();
    let mut idmapped: Vec<IdmappedMount> = Vec::new();
    let mut auto: Vec<&str> = Vec::new();
    let mut pty_max: Option<u32> = None;
    // liblxc mounts a tmpfs at /dev itself (lxc.autodev) before the entries.
    let mut mounted: Vec<PathBuf> = vec![PathBuf::from("dev")];
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let field = format!("mounts[{i}]");
        let typ = m.typ().clone().unwrap_or_default();
        let raw_options = m.options().clone().unwrap_or_default();
        let dest_field = format!("{field}.destination");
        let parts = destination_parts(&dest_field, m.destination())?;
        let dest = resolve_in_root(&dest_field, rootfs, parts, &mounted)?;
        let dest_str = dest.to_string_lossy().into_owned();
        let idmap_option = raw_options
            .iter()
            .enumerate()
            .rfind(|(_, o)| *o == "idmap" || *o == "ridmap")
            .map(|(j, o)| (format!("{field}.options[{j}]"), o == "ridmap"));
        let is_idmapped =
            m.uid_mappings().is_some() || m.gid_mappings().is_some() || idmap_option.is_some();
        // lxcri-hook attaches the id-mapped mounts after liblxc's own (and
        // liblxc mounts devpts after that), in spec order among themselves: a
        // later other mount at, above or below one would end up in the wrong
        // order.
        let overlapped = idmapped.iter().find(|im| {
            let d = Path::new(&im.destination);
            dest.starts_with(d) || d.starts_with(&dest)
        });
        if let (false, Some(im)) = (is_idmapped, overlapped) {
            return Err(SpecError::new(
                dest_field,
                format!(
                    "overlaps the id-mapped {} (/{}), which lxcri mounts after the \
                     other mounts: an order it cannot keep",
                    im.field, im.destination
                ),
            ));
        }
        if is_idmapped {
            let is_bind = typ == "bind" || raw_options.iter().any(|o| o == "bind" || o == "rbind");
            let what = if m.uid_mappings().is_some() {
                format!("{field}.uidMappings")
            } else if m.gid_mappings().is_some() {
                format!("{field}.gidMappings")
            } else {
                idmap_option.clone().map(|(f, _)| f).unwrap_or_default()
            };
            if !is_bind {
                return Err(SpecError::new(
                    what,
                    "id-mapped mounts are supported for bind mounts only (as in runc)",
                ));
            }
            if dest.starts_with("dev/pts") {
                return Err(SpecError::new(
                    dest_field,
                    "an id-mapped mount under /dev/pts would be hidden by liblxc's devpts",
                ));
            }
            for (j, o) in raw_options.iter().enumerate() {
                check_value(&format!("{field}.options[{j}]"), o)?;
            }
            let (uid_mappings, gid_mappings) = mount_mappings(
                &field,
                m,
                idmap_option.as_ref().map(|(f, _)| f.as_str()),
                container_maps,
            )?;
            let (attr_set, attr_clr) = idmapped_attrs(&field, &raw_options)?;
            let source = m
                .source()
                .as_ref()
                .map(|s| s.to_path_buf())
                .unwrap_or_default();
            let source = if source.is_absolute() {
                source
            } else {
                bundle.join(source)
            };
            check_value(&format!("{field}.source"), &source.to_string_lossy())?;
            let md = std::fs::metadata(&source).map_err(|e| {
                SpecError::new(
                    format!("{field}.source"),
                    format!("bind source {}: {e}", source.display()),
                )
            })?;
            if let Some(f) = propagation_flags(&raw_options) {
                propagation.push((format!("/{dest_str}"), f));
            }
            if raw_options.iter().any(|o| o == "rro") {
                recursive_readonly.push(format!("/{dest_str}"));
            }
            idmapped.push(IdmappedMount {
                field: field.clone(),
                source,
                destination: dest_str,
                is_dir: md.is_dir(),
                recursive: raw_options.iter().any(|o| o == "rbind"),
                recursive_idmap: idmap_option.is_some_and(|(_, r)| r),
                attr_set,
                attr_clr,
                uid_mappings,
                gid_mappings,
            });
            mounted.push(dest);
            continue;
        }
        if typ == "cgroup" || typ == "cgroup2" {
            if dest_str != "sys/fs/cgroup" {
                return Err(SpecError::new(
                    dest_field,
                    "cgroup mounts are supported at /sys/fs/cgroup only",
                ));
            }
            for (j, o) in raw_options.iter().enumerate() {
                if !matches!(
                    o.as_str(),
                    "ro" | "rw"
                        | "nosuid"
                        | "nodev"
                        | "noexec"
                        | "relatime"
                        | "rprivate"
                        | "private"
                ) {
                    return Err(SpecError::new(
                        format!("{field}.options[{j}]"),
                        format!("cgroup mount option {o:?} is not supported"),
                    ));
                }
            }
            // liblxc mounts the container's own cgroups (every v1 hierarchy, or
            // cgroup2), also inside a cgroup namespace with :force; always nosuid,
            // nodev, noexec.
            let ro = raw_options.iter().any(|o| o == "ro");
            auto.push(if ro {
                "cgroup:ro:force"
            } else {
                "cgroup:rw:force"
            });
            mounted.push(dest);
            continue;
        }
        if typ == "devpts" && dest_str == "dev/pts" {
            // liblxc drops a devpts mount entry and mounts its own instance when
            // lxc.pty.max > 0, with the standard options (newinstance, ptmxmode=0666,
            // mode=0620, gid=5): anything else cannot be honoured.
            pty_max = Some(devpts_max(&field, &raw_options)?);
            mounted.push(dest);
            continue;
        }
        let is_bind = typ == "bind" || raw_options.iter().any(|o| o == "bind" || o == "rbind");
        let mut opts = options(&field, &typ, &raw_options, &rootfs.join(&dest))?;
        let source = m
            .source()
            .as_ref()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let create;
        let (src, fstype) = if is_bind {
            if !opts.iter().any(|o| o == "bind" || o == "rbind") {
                opts.insert(0, "bind".into());
            }
            let sp = if Path::new(&source).is_absolute() {
                Path::new(&source).to_path_buf()
            } else {
                bundle.join(&source)
            };
            let md = std::fs::metadata(&sp).map_err(|e| {
                SpecError::new(
                    format!("{field}.source"),
                    format!("bind source {}: {e}", sp.display()),
                )
            })?;
            create = if md.is_dir() {
                "create=dir"
            } else {
                "create=file"
            };
            (sp.to_string_lossy().into_owned(), "none".to_string())
        } else {
            create = "create=dir";
            if let (Some(label), false) = (
                mount_label,
                matches!(typ.as_str(), "proc" | "sysfs" | "mqueue"),
            ) {
                opts.push(format!("context=\"{label}\""));
            }
            let src = if source.is_empty() {
                typ.clone()
            } else {
                source
            };
            if typ.is_empty() {
                return Err(SpecError::new(format!("{field}.type"), "is required"));
            }
            (src, typ.clone())
        };
        opts.push(create.into());
        let entry = format!(
            "{} {} {} {} 0 0",
            escape(&format!("{field}.source"), &src)?,
            escape(&dest_field, &dest_str)?,
            escape(&format!("{field}.type"), &fstype)?,
            escape(&format!("{field}.options"), &opts.join(","))?,
        );
        lxc.push(&field, "lxc.mount.entry", entry)?;
        if let Some(f) = propagation_flags(&raw_options) {
            propagation.push((format!("/{dest_str}"), f));
        }
        if raw_options.iter().any(|o| o == "rro") {
            recursive_readonly.push(format!("/{dest_str}"));
        }
        mounted.push(dest);
    }
    if !auto.is_empty() {
        lxc.push("mounts", "lxc.mount.auto", auto.join(" "))?;
    }
    lxc.push("mounts", "lxc.pty.max", pty_max.unwrap_or(0).to_string())?;
    Ok(InitMounts {
        propagation,
        recursive_readonly,
        idmapped,
    })
}

/// The number of ptys of the /dev/pts mount (`max=`, default 1024), after checking
/// that its options are the ones liblxc's own devpts instance has.
fn devpts_max(field: &str, options: &[String]) -> Result<u32, SpecError> {
    let mut max = 1024;
    for (j, o) in options.iter().enumerate() {
        match o.as_str() {
            "nosuid" | "noexec" | "newinstance" | "ptmxmode=0666" | "ptmxmode=666"
            | "mode=0620" | "mode=620" | "gid=5" | "rw" => {}
            o if o.starts_with("max=") => {
                max = o[4..].parse().map_err(|_| {
                    SpecError::new(format!("{field}.options[{j}]"), format!("invalid {o:?}"))
                })?;
            }
            o => {
                return Err(SpecError::new(
                    format!("{field}.options[{j}]"),
                    format!("devpts option {o:?} is not supported"),
                ))
            }
        }
    }
    Ok(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mounts: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2", "root": {"path": "rootfs"}, "mounts": mounts
        }))
        .unwrap()
    }

    /// A bundle with an empty rootfs.
    fn bundle() -> (tempfile::TempDir, PathBuf) {
        let b = tempfile::tempdir().unwrap();
        let r = b.path().join("rootfs");
        std::fs::create_dir(&r).unwrap();
        (b, r)
    }

    #[test]
    fn containerd_default_mounts() {
        let (b, r) = bundle();
        let s = spec(serde_json::json!([
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]}
        ]));
        let mut lxc = LxcConfig::new();
        translate(&s, b.path(), &r, None, None, &mut lxc).unwrap();
        assert_eq!(
            lxc.render(),
            "\
lxc.mount.entry = proc proc proc nosuid,noexec,nodev,create=dir 0 0
lxc.mount.entry = tmpfs dev tmpfs nosuid,strictatime,mode=755,size=65536k,create=dir 0 0
lxc.mount.entry = shm dev/shm tmpfs nosuid,noexec,nodev,mode=1777,size=65536k,create=dir 0 0
lxc.mount.entry = mqueue dev/mqueue mqueue nosuid,noexec,nodev,create=dir 0 0
lxc.mount.entry = sysfs sys sysfs nosuid,noexec,nodev,ro,create=dir 0 0
lxc.mount.auto = cgroup:ro:force
lxc.pty.max = 1024
"
        );
    }

    /// `linux.mountLabel` (SELinux host): `context="LABEL"` on every mount but
    /// binds, proc, sysfs, mqueue and cgroups, as runc; liblxc's devpts takes
    /// none.
    #[test]
    fn golden_mount_label() {
        let (b, r) = bundle();
        let s = spec(serde_json::json!([
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro"]},
            {"destination": "/b", "type": "bind", "source": "/tmp", "options": ["rbind"]},
            {"destination": "/t", "type": "tmpfs"}
        ]));
        let mut lxc = LxcConfig::new();
        let label = "system_u:object_r:svirt_tmpfs_t:s0:c1.c2";
        translate(&s, b.path(), &r, None, Some(label), &mut lxc).unwrap();
        assert_eq!(
            lxc.render(),
            r#"lxc.mount.entry = proc proc proc nosuid,create=dir 0 0
lxc.mount.entry = tmpfs dev tmpfs nosuid,mode=755,context="system_u:object_r:svirt_tmpfs_t:s0:c1.c2",create=dir 0 0
lxc.mount.entry = mqueue dev/mqueue mqueue create=dir 0 0
lxc.mount.entry = sysfs sys sysfs ro,create=dir 0 0
lxc.mount.entry = /tmp b none rbind,create=dir 0 0
lxc.mount.entry = tmpfs t tmpfs context="system_u:object_r:svirt_tmpfs_t:s0:c1.c2",create=dir 0 0
lxc.mount.auto = cgroup:ro:force
lxc.pty.max = 1024
"#
        );
    }

    #[test]
    fn bind_mounts_escape_and_create() {
        let (b, r) = bundle();
        std::fs::create_dir(b.path().join("my dir")).unwrap();
        std::fs::write(b.path().join("file"), "x").unwrap();
        let s = spec(serde_json::json!([
            {"destination": "/data dir", "type": "bind", "source": b.path().join("my dir"), "options": ["ro"]},
            {"destination": "/etc/x", "type": "none", "source": "file", "options": ["rbind", "rprivate"]}
        ]));
        let mut lxc = LxcConfig::new();
        translate(&s, b.path(), &r, None, None, &mut lxc).unwrap();
        let entries: Vec<&str> = lxc.get_all("lxc.mount.entry").collect();
        assert_eq!(lxc.get_all("lxc.pty.max").collect::<Vec<_>>(), vec!["0"]);
        let d = b.path().display();
        assert_eq!(
            entries,
            vec![
                format!("{d}/my\\040dir data\\040dir none bind,ro,create=dir 0 0"),
                format!("{d}/file etc/x none rbind,rprivate,create=file 0 0"),
            ]
        );
    }

    /// `rro`: read-only for liblxc, recursively read-only by the init.
    #[test]
    fn golden_recursive_readonly() {
        let b = tempfile::tempdir().unwrap();
        let r = b.path().join("rootfs");
        std::fs::create_dir(&r).unwrap();
        let s = spec(serde_json::json!([
            {"destination": "/ro", "type": "bind", "source": "/tmp", "options": ["rbind", "rro", "nosuid"]}
        ]));
        let mut lxc = LxcConfig::new();
        let m = translate(&s, b.path(), &r, None, None, &mut lxc).unwrap();
        assert_eq!(m.recursive_readonly, vec!["/ro".to_string()]);
        assert_eq!(
            lxc.render(),
            "lxc.mount.entry = /tmp ro none rbind,ro,nosuid,create=dir 0 0\nlxc.pty.max = 0\n"
        );
    }

    #[test]
    fn golden_flags_propagation_tmpfs_and_order() {
        let (b, r) = bundle();
        std::fs::create_dir(r.join("empty")).unwrap();
        std::fs::set_permissions(
            r.join("empty"),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )
        .unwrap();
        let s = spec(serde_json::json!([
            {"destination": "/b1", "type": "bind", "source": "/tmp", "options": ["rbind", "ro", "nosuid", "nodev", "noexec", "rshared"]},
            {"destination": "/b2", "type": "bind", "source": "/tmp", "options": ["bind", "slave"]},
            {"destination": "/b3", "type": "bind", "source": "/tmp", "options": ["rbind", "rprivate"]},
            {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=0700", "rprivate"]},
            {"destination": "/empty", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "nosuid", "mode=1777"]},
            {"destination": "/t/sub", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/o", "type": "overlay", "source": "overlay", "options": ["lowerdir=/a:/b", "upperdir=/u", "workdir=/w"]}
        ]));
        let mut lxc = LxcConfig::new();
        let prop = translate(&s, b.path(), &r, None, None, &mut lxc)
            .unwrap()
            .propagation;
        assert_eq!(
            prop,
            vec![
                ("/b1".to_string(), libc::MS_SHARED | libc::MS_REC),
                ("/b2".to_string(), libc::MS_SLAVE),
                ("/b3".to_string(), libc::MS_PRIVATE | libc::MS_REC),
                ("/t".to_string(), libc::MS_PRIVATE | libc::MS_REC),
            ]
        );
        assert_eq!(
            lxc.render(),
            "\
lxc.mount.entry = /tmp b1 none rbind,ro,nosuid,nodev,noexec,rshared,create=dir 0 0
lxc.mount.entry = /tmp b2 none bind,slave,create=dir 0 0
lxc.mount.entry = /tmp b3 none rbind,rprivate,create=dir 0 0
lxc.mount.entry = tmpfs t tmpfs size=1m,mode=0700,rprivate,create=dir 0 0
lxc.mount.entry = tmpfs empty tmpfs nosuid,mode=711,create=dir 0 0
lxc.mount.entry = tmpfs t/sub tmpfs create=dir 0 0
lxc.mount.entry = overlay o overlay lowerdir=/a:/b,upperdir=/u,workdir=/w,create=dir 0 0
lxc.pty.max = 0
"
        );
    }

    #[test]
    fn symlinked_destinations_stay_in_the_rootfs() {
        let (b, r) = bundle();
        let link =
            |target: &str, name: &str| std::os::unix::fs::symlink(target, r.join(name)).unwrap();
        std::fs::create_dir_all(r.join("real/dir")).unwrap();
        link("/real", "abs"); // absolute: restarts at the rootfs
        link("../../../../real", "up"); // .. stops at the rootfs
        link("/etc", "host"); // would be the host's /etc
        link("loop2", "loop1");
        link("loop1", "loop2");
        std::fs::create_dir(r.join("run")).unwrap();
        link("/elsewhere", "run/link"); // under an earlier mount: literal
        let s = spec(serde_json::json!([
            {"destination": "/abs/dir", "type": "tmpfs"},
            {"destination": "/up/x", "type": "tmpfs"},
            {"destination": "/host/passwd", "type": "bind", "source": "/etc/hostname"},
            {"destination": "/run", "type": "tmpfs"},
            {"destination": "/run/link/y", "type": "tmpfs"}
        ]));
        let mut lxc = LxcConfig::new();
        translate(&s, b.path(), &r, None, None, &mut lxc).unwrap();
        let dests: Vec<String> = lxc
            .get_all("lxc.mount.entry")
            .map(|e| e.split(' ').nth(1).unwrap().to_string())
            .collect();
        assert_eq!(
            dests,
            ["real/dir", "real/x", "etc/passwd", "run", "run/link/y"]
        );
        let s = spec(serde_json::json!([{"destination": "/loop1/x", "type": "tmpfs"}]));
        let e = translate(&s, b.path(), &r, None, None, &mut LxcConfig::new()).unwrap_err();
        assert_eq!(e.field, "mounts[0].destination");
        link("/", "toroot");
        let s = spec(serde_json::json!([{"destination": "/toroot", "type": "tmpfs"}]));
        let e = translate(&s, b.path(), &r, None, None, &mut LxcConfig::new()).unwrap_err();
        assert_eq!(e.field, "mounts[0].destination");
    }

    fn map(container: u32, host: u32, size: u32) -> IdMap {
        IdMap {
            container,
            host,
            size,
        }
    }

    /// Id-mapped binds get no lxc.mount.entry: they are listed, in spec order,
    /// with their flags as MOUNT_ATTR_*, for the runtime and lxcri-hook; the
    /// other mounts keep theirs.
    #[test]
    fn golden_idmapped_mounts() {
        let (b, r) = bundle();
        std::fs::create_dir(b.path().join("data")).unwrap();
        std::fs::write(b.path().join("file"), "x").unwrap();
        let s = spec(serde_json::json!([
            {"destination": "/t", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/t/data", "type": "bind", "source": "data",
             "options": ["rbind", "ro", "nosuid", "nodev", "noexec", "ridmap", "rshared"],
             "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
             "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}, {"containerID": 5, "hostID": 2000, "size": 3}]},
            {"destination": "/f", "type": "none", "source": "file", "options": ["bind", "idmap", "noatime", "rw"]},
            {"destination": "/other", "type": "tmpfs", "source": "tmpfs"}
        ]));
        let container = (vec![map(0, 100000, 65536)], vec![map(0, 200000, 65536)]);
        let mut lxc = LxcConfig::new();
        let m = translate(&s, b.path(), &r, Some(&container), None, &mut lxc).unwrap();
        assert_eq!(
            lxc.render(),
            "\
lxc.mount.entry = tmpfs t tmpfs create=dir 0 0
lxc.mount.entry = tmpfs other tmpfs create=dir 0 0
lxc.pty.max = 0
"
        );
        assert_eq!(
            m.propagation,
            vec![("/t/data".to_string(), libc::MS_SHARED | libc::MS_REC)]
        );
        assert_eq!(
            m.idmapped,
            vec![
                IdmappedMount {
                    field: "mounts[1]".into(),
                    source: b.path().join("data"),
                    destination: "t/data".into(),
                    is_dir: true,
                    recursive: true,
                    recursive_idmap: true,
                    attr_set: MOUNT_ATTR_RDONLY
                        | MOUNT_ATTR_NOSUID
                        | MOUNT_ATTR_NODEV
                        | MOUNT_ATTR_NOEXEC,
                    attr_clr: 0,
                    uid_mappings: vec![map(0, 1000, 1)],
                    gid_mappings: vec![map(0, 1000, 1), map(5, 2000, 3)],
                },
                // `idmap` alone: the container's mappings.
                IdmappedMount {
                    field: "mounts[2]".into(),
                    source: b.path().join("file"),
                    destination: "f".into(),
                    is_dir: false,
                    recursive: false,
                    recursive_idmap: false,
                    attr_set: MOUNT_ATTR_NOATIME,
                    attr_clr: MOUNT_ATTR_ATIME | MOUNT_ATTR_RDONLY,
                    uid_mappings: vec![map(0, 100000, 65536)],
                    gid_mappings: vec![map(0, 200000, 65536)],
                },
            ]
        );
    }

    #[test]
    fn bad_idmapped_mounts_name_the_field() {
        let (b, r) = bundle();
        let maps = serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        let cases = [
            // Not a bind mount.
            (
                serde_json::json!([{"destination": "/a", "type": "tmpfs", "uidMappings": maps, "gidMappings": maps}]),
                "mounts[0].uidMappings",
            ),
            (
                serde_json::json!([{"destination": "/a", "type": "tmpfs", "options": ["nosuid", "ridmap"]}]),
                "mounts[0].options[1]",
            ),
            // Both mappings or none.
            (
                serde_json::json!([{"destination": "/a", "type": "bind", "source": "/tmp", "gidMappings": maps}]),
                "mounts[0].uidMappings",
            ),
            (
                serde_json::json!([{"destination": "/a", "type": "bind", "source": "/tmp", "uidMappings": maps}]),
                "mounts[0].gidMappings",
            ),
            (
                serde_json::json!([{"destination": "/a", "type": "bind", "source": "/tmp", "uidMappings": maps,
                    "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 0}]}]),
                "mounts[0].gidMappings[0].size",
            ),
            // idmap without mappings and without a container user namespace.
            (
                serde_json::json!([{"destination": "/a", "type": "bind", "source": "/tmp", "options": ["rbind", "idmap"]}]),
                "mounts[0].options[1]",
            ),
            // Filesystem data on a bind.
            (
                serde_json::json!([{"destination": "/a", "type": "bind", "source": "/tmp", "options": ["bind", "size=1m"],
                    "uidMappings": maps, "gidMappings": maps}]),
                "mounts[0].options[1]",
            ),
            (
                serde_json::json!([{"destination": "/a", "type": "bind", "source": "/nonexistent-x",
                    "uidMappings": maps, "gidMappings": maps}]),
                "mounts[0].source",
            ),
            // An order lxcri cannot keep: later mounts at, below or above it.
            (
                serde_json::json!([
                    {"destination": "/a", "type": "bind", "source": "/tmp", "uidMappings": maps, "gidMappings": maps},
                    {"destination": "/a/b", "type": "tmpfs"}]),
                "mounts[1].destination",
            ),
            (
                serde_json::json!([
                    {"destination": "/a/b", "type": "bind", "source": "/tmp", "uidMappings": maps, "gidMappings": maps},
                    {"destination": "/a", "type": "tmpfs"}]),
                "mounts[1].destination",
            ),
            (
                serde_json::json!([
                    {"destination": "/a", "type": "bind", "source": "/tmp", "uidMappings": maps, "gidMappings": maps},
                    {"destination": "/a", "type": "bind", "source": "/tmp"}]),
                "mounts[1].destination",
            ),
            (
                serde_json::json!([{"destination": "/dev/pts/x", "type": "bind", "source": "/tmp",
                    "uidMappings": maps, "gidMappings": maps}]),
                "mounts[0].destination",
            ),
        ];
        for (m, field) in cases {
            let e =
                translate(&spec(m), b.path(), &r, None, None, &mut LxcConfig::new()).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
        // Earlier mounts around it are fine (liblxc mounts them first), and so
        // are later id-mapped ones (attached in spec order after it).
        let s = spec(serde_json::json!([
            {"destination": "/a", "type": "tmpfs"},
            {"destination": "/a/b", "type": "bind", "source": "/tmp", "uidMappings": maps, "gidMappings": maps},
            {"destination": "/a/b/c", "type": "bind", "source": "/tmp", "options": ["rbind", "ridmap"], "uidMappings": maps, "gidMappings": maps},
            {"destination": "/a", "type": "bind", "source": "/tmp", "uidMappings": maps, "gidMappings": maps},
            {"destination": "/c", "type": "tmpfs"}
        ]));
        let m = translate(&s, b.path(), &r, None, None, &mut LxcConfig::new()).unwrap();
        let dests: Vec<&str> = m.idmapped.iter().map(|m| m.destination.as_str()).collect();
        assert_eq!(dests, ["a/b", "a/b/c", "a"]);
    }

    #[test]
    fn bad_mounts_name_the_field() {
        let (b, r) = bundle();
        std::fs::create_dir_all(r.join("full")).unwrap();
        std::fs::write(r.join("full/f"), "x").unwrap();
        let cases = [
            (
                serde_json::json!([{"destination": "rel", "type": "tmpfs"}]),
                "mounts[0].destination",
            ),
            (
                serde_json::json!([{"destination": "/a/../../b", "type": "tmpfs"}]),
                "mounts[0].destination",
            ),
            (
                serde_json::json!([{"destination": "/a", "type": "bind", "source": "/nonexistent-x"}]),
                "mounts[0].source",
            ),
            (
                serde_json::json!([{"destination": "/a", "type": "tmpfs", "options": ["size=1\nlxc.x=1"]}]),
                "mounts[0].options[0]",
            ),
            (
                serde_json::json!([{"destination": "/a\nb", "type": "tmpfs"}]),
                "mounts[0].destination",
            ),
            (
                serde_json::json!([{"destination": "/a", "type": "tmpfs", "source": "x\0"}]),
                "mounts[0].source",
            ),
            (
                serde_json::json!([{"destination": "/dev/pts", "type": "devpts", "options": ["mode=0600"]}]),
                "mounts[0].options[0]",
            ),
            (
                serde_json::json!([{"destination": "/a", "type": "tmpfs", "options": ["nosuid", "nosymfollow"]}]),
                "mounts[0].options[1]",
            ),
            (
                serde_json::json!([{"destination": "/a", "type": "tmpfs", "options": ["optional"]}]),
                "mounts[0].options[0]",
            ),
            (
                serde_json::json!([{"destination": "/a", "type": "overlay", "options": ["lowerdir=/x/relative/y"]}]),
                "mounts[0].options[0]",
            ),
            (
                serde_json::json!([{"destination": "/full", "type": "tmpfs", "options": ["tmpcopyup"]}]),
                "mounts[0].options[0]",
            ),
            (
                serde_json::json!([{"destination": "/sys/fs/cgroup", "type": "cgroup", "options": ["ro", "subtree=x"]}]),
                "mounts[0].options[1]",
            ),
        ];
        for (m, field) in cases {
            let e =
                translate(&spec(m), b.path(), &r, None, None, &mut LxcConfig::new()).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }
}
