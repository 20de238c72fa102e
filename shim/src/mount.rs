//! Mounting the rootfs mounts containerd passes at `<bundle>/rootfs`.

use std::path::{Path, PathBuf};

use containerd_shim::protos::types::mount::Mount;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use runtime_core::idmap::{self, TreeOptions};
use runtime_core::spec::mounts::MOUNT_ATTR_RDONLY;
use runtime_core::userns::IdMap;

use crate::error::{Error, Result};

/// A rootfs mount's options, parsed: mount flags, propagation, the data
/// options (in order) and containerd's `uidmap=`/`gidmap=` values.
#[derive(Debug, PartialEq)]
struct Options {
    flags: MsFlags,
    propagation: MsFlags,
    data: Vec<String>,
    uidmap: Option<String>,
    gidmap: Option<String>,
}

fn parse_options(options: &[String]) -> Options {
    let mut o = Options {
        flags: MsFlags::empty(),
        propagation: MsFlags::empty(),
        data: Vec::new(),
        uidmap: None,
        gidmap: None,
    };
    for opt in options {
        match opt.as_str() {
            "ro" => o.flags |= MsFlags::MS_RDONLY,
            "rw" => o.flags &= !MsFlags::MS_RDONLY,
            "bind" => o.flags |= MsFlags::MS_BIND,
            "rbind" => o.flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "nosuid" => o.flags |= MsFlags::MS_NOSUID,
            "nodev" => o.flags |= MsFlags::MS_NODEV,
            "noexec" => o.flags |= MsFlags::MS_NOEXEC,
            "sync" => o.flags |= MsFlags::MS_SYNCHRONOUS,
            "noatime" => o.flags |= MsFlags::MS_NOATIME,
            "nodiratime" => o.flags |= MsFlags::MS_NODIRATIME,
            "relatime" => o.flags |= MsFlags::MS_RELATIME,
            "strictatime" => o.flags |= MsFlags::MS_STRICTATIME,
            "defaults" | "suid" | "dev" | "exec" | "async" | "atime" => {}
            "private" => o.propagation |= MsFlags::MS_PRIVATE,
            "rprivate" => o.propagation |= MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            "slave" => o.propagation |= MsFlags::MS_SLAVE,
            "rslave" => o.propagation |= MsFlags::MS_SLAVE | MsFlags::MS_REC,
            "shared" => o.propagation |= MsFlags::MS_SHARED,
            "rshared" => o.propagation |= MsFlags::MS_SHARED | MsFlags::MS_REC,
            other => {
                if let Some(v) = other.strip_prefix("uidmap=") {
                    o.uidmap = Some(v.to_string());
                } else if let Some(v) = other.strip_prefix("gidmap=") {
                    o.gidmap = Some(v.to_string());
                } else {
                    o.data.push(other.to_string());
                }
            }
        }
    }
    o
}

/// Parse containerd's id mapping list of a `uidmap=`/`gidmap=` mount option
/// (`option`, for errors): `containerId:hostId:size` entries separated by `,`
/// (as containerd's snapshotter labels and `core/mount` write and read them).
fn parse_id_map_list(option: &str, value: &str) -> Result<Vec<IdMap>> {
    let bad = |why: &str| {
        Error::InvalidArgument(format!(
            "rootfs mount option {option}={value:?}: {why} (want containerId:hostId:size[,...])"
        ))
    };
    let mut maps = Vec::new();
    for entry in value.split(',') {
        let parts: Vec<&str> = entry.split(':').collect();
        let [c, h, n] = parts[..] else {
            return Err(bad(&format!("entry {entry:?} has not 3 fields")));
        };
        let num = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| bad(&format!("{s:?} in {entry:?} is no id")))
        };
        let (container, host, size) = (num(c)?, num(h)?, num(n)?);
        if size == 0 {
            return Err(bad(&format!("entry {entry:?} has size 0")));
        }
        maps.push(IdMap {
            container,
            host,
            size,
        });
    }
    Ok(maps)
}

/// The (uid, gid) mappings of a rootfs mount, if it is id-mapped: containerd
/// only maps with both options, lxcri refuses one without the other.
fn id_mappings(o: &Options) -> Result<Option<(Vec<IdMap>, Vec<IdMap>)>> {
    match (&o.uidmap, &o.gidmap) {
        (None, None) => Ok(None),
        (Some(u), Some(g)) => Ok(Some((
            parse_id_map_list("uidmap", u)?,
            parse_id_map_list("gidmap", g)?,
        ))),
        (Some(_), None) | (None, Some(_)) => Err(Error::InvalidArgument(
            "an id-mapped rootfs mount needs both uidmap= and gidmap= options".into(),
        )),
    }
}

/// The prefix of the temporary directories (in the bundle) where the
/// id-mapped lower layers of an overlay are mounted while it is made.
const IDMAPPED_LOWER_PREFIX: &str = "idmapped-lower.";

/// The deepest directory containing every one of `dirs` (absolute paths),
/// compared by path components; `/` is refused (containerd refuses it too: the
/// id-mapped clone would take the whole root).
fn common_dir(dirs: &[PathBuf]) -> Result<PathBuf> {
    let mut common: Option<PathBuf> = None;
    for d in dirs {
        if !d.is_absolute() {
            return Err(Error::InvalidArgument(format!(
                "overlay lowerdir {} is not absolute",
                d.display()
            )));
        }
        common = Some(match common {
            None => d.clone(),
            Some(c) => c
                .components()
                .zip(d.components())
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect(),
        });
    }
    match common {
        Some(c) if c.parent().is_some() => Ok(c),
        _ => Err(Error::InvalidArgument(format!(
            "overlay lowerdirs {dirs:?} have no common directory below /"
        ))),
    }
}

/// The data options with `lowerdir=` rewritten through `mapped`, where
/// `common` (the common directory of the lower dirs) is mounted id-mapped.
fn remap_lowerdirs(data: &[String], common: &Path, mapped: &Path) -> Vec<String> {
    data.iter()
        .map(|o| match o.strip_prefix("lowerdir=") {
            Some(v) => {
                let dirs: Vec<String> = v
                    .split(':')
                    .map(|d| {
                        let rel = Path::new(d).strip_prefix(common).unwrap_or(Path::new(""));
                        mapped.join(rel).display().to_string()
                    })
                    .collect();
                format!("lowerdir={}", dirs.join(":"))
            }
            None => o.clone(),
        })
        .collect()
}

/// The lower dirs of an overlay's data options.
fn lowerdirs(data: &[String]) -> Result<Vec<PathBuf>> {
    let v = data
        .iter()
        .find_map(|o| o.strip_prefix("lowerdir="))
        .ok_or_else(|| {
            Error::InvalidArgument("id-mapped overlay rootfs mount without lowerdir=".into())
        })?;
    Ok(v.split(':').map(PathBuf::from).collect())
}

/// Unmount and remove an id-mapped lower-layer directory.
fn remove_idmapped_lower(dir: &Path) {
    if is_mount_point(dir) {
        if let Err(e) = umount2(dir, MntFlags::empty()) {
            log::warn!("unmount {}: {e}; detaching", dir.display());
            let _ = umount2(dir, MntFlags::MNT_DETACH);
        }
    }
    if let Err(e) = std::fs::remove_dir(dir) {
        log::warn!("remove {}: {e}", dir.display());
    }
}

/// An overlay mount with `uidmap`/`gidmap`, as containerd's core/mount makes
/// it: overlayfs takes the lower layers id-mapped, so the common directory of
/// the lower dirs is mounted id-mapped (read-only, recursively) on a
/// temporary directory next to the rootfs, the overlay is mounted with its
/// lower dirs through it, and the temporary mount is removed again (overlayfs
/// holds private clones of its layers).
fn mount_idmapped_overlay(
    m: &Mount,
    o: &Options,
    target: &Path,
    uids: &[IdMap],
    gids: &[IdMap],
) -> Result<()> {
    let lowers = lowerdirs(&o.data)?;
    let common = common_dir(&lowers)?;
    let parent = target.parent().unwrap_or(Path::new("/"));
    let template = parent.join(format!("{IDMAPPED_LOWER_PREFIX}XXXXXX"));
    let tmp = nix::unistd::mkdtemp(&template)
        .map_err(|e| Error::io("create", template.display(), e.into()))?;
    let made = (|| {
        let opts = TreeOptions {
            recursive: true,
            recursive_idmap: true,
            attr_set: MOUNT_ATTR_RDONLY,
            attr_clr: 0,
        };
        let tree = idmap::idmapped_tree(&common, &opts, uids, gids)
            .map_err(|e| Error::io("id-map the overlay lower dirs in", common.display(), e))?;
        idmap::attach(&tree, &tmp)
            .map_err(|e| Error::io("attach the id-mapped lower dirs at", tmp.display(), e))?;
        log::info!(
            "id-mapped overlay lower dirs: {} mounted at {} (uidmap {uids:?}, gidmap {gids:?})",
            common.display(),
            tmp.display()
        );
        let data = remap_lowerdirs(&o.data, &common, &tmp).join(",");
        mount_data(m, o.flags, &data, target)
    })();
    remove_idmapped_lower(&tmp);
    made
}

/// `mount(2)` of `m` at `target` with `flags` and `data` (not a bind).
fn mount_data(m: &Mount, flags: MsFlags, data: &str, target: &Path) -> Result<()> {
    // The kernel takes at most a page of mount data.
    if data.len() >= 4096 {
        return Err(Error::InvalidArgument(format!(
            "rootfs mount options of {} bytes are too long",
            data.len()
        )));
    }
    let data = (!data.is_empty()).then_some(data);
    mount(
        Some(m.source.as_str()),
        target,
        Some(m.type_.as_str()),
        flags,
        data,
    )
    .map_err(|e| Error::io("mount rootfs at", target.display(), e.into()))
}

/// Id-map the mount at `target` in place, as containerd does for a bind
/// rootfs mount with `uidmap`/`gidmap`: an id-mapped clone of it (its flags
/// kept, submounts included, private) is attached on top of it.
fn idmap_in_place(target: &Path, uids: &[IdMap], gids: &[IdMap]) -> Result<()> {
    let opts = TreeOptions {
        recursive: true,
        recursive_idmap: true,
        attr_set: 0,
        attr_clr: 0,
    };
    let tree = idmap::idmapped_tree(target, &opts, uids, gids)
        .map_err(|e| Error::io("id-map the rootfs mount at", target.display(), e))?;
    idmap::attach(&tree, target)
        .map_err(|e| Error::io("attach the id-mapped rootfs at", target.display(), e))?;
    log::info!(
        "id-mapped the rootfs bind at {} (uidmap {uids:?}, gidmap {gids:?})",
        target.display()
    );
    Ok(())
}

fn mount_one(m: &Mount, target: &Path) -> Result<()> {
    let o = parse_options(&m.options);
    let mut flags = o.flags;
    let typ = m.type_.as_str();
    if typ == "bind" {
        flags |= MsFlags::MS_BIND;
    }
    let bind = flags.contains(MsFlags::MS_BIND);
    let maps = id_mappings(&o)?;
    let err = |e: nix::Error| Error::io("mount rootfs at", target.display(), e.into());
    match (&maps, typ) {
        (Some((uids, gids)), "overlay") => mount_idmapped_overlay(m, &o, target, uids, gids)?,
        (Some(_), _) if !bind => {
            return Err(Error::InvalidArgument(format!(
                "an id-mapped (uidmap=/gidmap=) rootfs mount of type {typ:?}: lxcri id-maps \
                 only overlay and bind rootfs mounts"
            )))
        }
        (_, _) if bind => {
            // The data options mean nothing to a bind mount.
            let data = o.data.join(",");
            let data = (!data.is_empty()).then_some(data.as_str());
            mount(
                Some(m.source.as_str()),
                target,
                None::<&str>,
                flags & !MsFlags::MS_RDONLY,
                data,
            )
            .map_err(err)?;
            if flags.contains(MsFlags::MS_RDONLY) {
                mount(
                    None::<&str>,
                    target,
                    None::<&str>,
                    flags | MsFlags::MS_REMOUNT,
                    None::<&str>,
                )
                .map_err(err)?;
            }
        }
        _ => mount_data(m, flags, &o.data.join(","), target)?,
    }
    if !o.propagation.is_empty() {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            o.propagation,
            None::<&str>,
        )
        .map_err(err)?;
    }
    if let (Some((uids, gids)), true) = (&maps, bind) {
        idmap_in_place(target, uids, gids)?;
    }
    Ok(())
}

/// Mount `mounts` in order at `target` (created if missing).
pub fn mount_rootfs(mounts: &[Mount], target: &Path) -> Result<()> {
    std::fs::create_dir_all(target).map_err(|e| Error::io("create", target.display(), e))?;
    for m in mounts {
        let t = if m.target.is_empty() {
            target.to_path_buf()
        } else {
            target.join(m.target.trim_start_matches('/'))
        };
        if let Err(e) = mount_one(m, &t) {
            // Leave nothing half-mounted behind.
            unmount_rootfs(target);
            return Err(e);
        }
    }
    Ok(())
}

/// Whether `path` is a mount point (from /proc/self/mountinfo).
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .any(|mp| mp.replace("\\040", " ") == want)
}

/// Unmount everything mounted at `target`, and the temporary id-mapped lower
/// dirs next to it if a shim that died while mounting left one.
pub fn unmount_rootfs(target: &Path) {
    for _ in 0..64 {
        if !is_mount_point(target) {
            break;
        }
        if let Err(e) = umount2(target, MntFlags::empty()) {
            log::warn!("unmount {}: {e}; detaching", target.display());
            let _ = umount2(target, MntFlags::MNT_DETACH);
        }
    }
    let Some(parent) = target.parent() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name()
            .to_string_lossy()
            .starts_with(IDMAPPED_LOWER_PREFIX)
        {
            remove_idmapped_lower(&e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn overlay_options() {
        let o = parse_options(&strings(&[
            "index=off",
            "workdir=/w",
            "upperdir=/u",
            "lowerdir=/l",
            "ro",
        ]));
        assert_eq!(o.flags, MsFlags::MS_RDONLY);
        assert!(o.propagation.is_empty());
        assert_eq!(
            o.data.join(","),
            "index=off,workdir=/w,upperdir=/u,lowerdir=/l"
        );
        assert_eq!((o.uidmap, o.gidmap), (None, None));
    }

    #[test]
    fn bind_options() {
        let o = parse_options(&strings(&["rbind", "rprivate", "nosuid"]));
        assert_eq!(
            o.flags,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_NOSUID
        );
        assert_eq!(o.propagation, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        assert!(o.data.is_empty());
    }

    /// What containerd 2.x's overlay snapshotter sends for a pod with a user
    /// namespace: uidmap=/gidmap= first, kept out of the mount data.
    #[test]
    fn idmap_options() {
        let o = parse_options(&strings(&[
            "uidmap=0:1000:100000",
            "gidmap=0:2000:65536,65536:300000:1",
            "index=off",
            "lowerdir=/s/2/fs:/s/1/fs",
        ]));
        assert_eq!(o.data, strings(&["index=off", "lowerdir=/s/2/fs:/s/1/fs"]));
        let (u, g) = id_mappings(&o).unwrap().unwrap();
        assert_eq!(
            u,
            vec![IdMap {
                container: 0,
                host: 1000,
                size: 100000
            }]
        );
        assert_eq!(
            g,
            vec![
                IdMap {
                    container: 0,
                    host: 2000,
                    size: 65536
                },
                IdMap {
                    container: 65536,
                    host: 300000,
                    size: 1
                }
            ]
        );
        assert_eq!(
            id_mappings(&parse_options(&strings(&["rw"]))).unwrap(),
            None
        );
    }

    #[test]
    fn bad_idmap_options() {
        for bad in [
            "",
            "0:1000",
            "0:1000:1:2",
            "0:1000:0",
            "a:1000:1",
            "0:-1:1",
            "0:1000:1,",
            "0 1000 1",
            "0:1000:4294967296",
        ] {
            let e = parse_id_map_list("uidmap", bad).unwrap_err();
            assert!(
                e.to_string().contains("uidmap=")
                    && e.to_string().contains("containerId:hostId:size"),
                "{bad:?}: {e}"
            );
        }
        let only_uid = parse_options(&strings(&["uidmap=0:1000:1"]));
        let e = id_mappings(&only_uid).unwrap_err();
        assert!(e.to_string().contains("both uidmap= and gidmap="), "{e}");
    }

    #[test]
    fn lowerdirs_through_the_idmapped_common_dir() {
        let dirs = [
            PathBuf::from("/s/snapshots/12/fs"),
            PathBuf::from("/s/snapshots/1/fs"),
        ];
        assert_eq!(common_dir(&dirs).unwrap(), PathBuf::from("/s/snapshots"));
        assert_eq!(
            common_dir(&dirs[..1]).unwrap(),
            PathBuf::from("/s/snapshots/12/fs")
        );
        assert!(common_dir(&[PathBuf::from("/a/x"), PathBuf::from("/b/x")]).is_err());
        assert!(common_dir(&[PathBuf::from("rel/x")]).is_err());
        assert!(common_dir(&[]).is_err());
        let data = strings(&["index=off", "lowerdir=/s/snapshots/12/fs:/s/snapshots/1/fs"]);
        assert_eq!(lowerdirs(&data).unwrap(), dirs.to_vec());
        assert_eq!(
            remap_lowerdirs(
                &data,
                Path::new("/s/snapshots"),
                Path::new("/b/idmapped-lower.x")
            ),
            strings(&[
                "index=off",
                "lowerdir=/b/idmapped-lower.x/12/fs:/b/idmapped-lower.x/1/fs"
            ])
        );
        assert!(lowerdirs(&strings(&["upperdir=/u"])).is_err());
    }

    fn mount_of(typ: &str, source: &str, options: &[String]) -> Mount {
        let mut m = Mount::new();
        m.type_ = typ.to_string();
        m.source = source.to_string();
        m.options = options.to_vec();
        m
    }

    /// Layers as containerd's overlay snapshotter lays them out: a root-owned
    /// file in the lower layer, an upper dir owned by the mapped root.
    fn layers(d: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let (lower, upper, work) = (
            d.join("snapshots/1/fs"),
            d.join("snapshots/2/fs"),
            d.join("snapshots/2/work"),
        );
        for p in [&lower, &upper, &work] {
            std::fs::create_dir_all(p).unwrap();
        }
        std::fs::write(lower.join("file"), "x").unwrap();
        std::os::unix::fs::chown(&upper, Some(1000), Some(1000)).unwrap();
        (lower, upper, work)
    }

    /// An id-mapped overlay rootfs: the lower layer's root-owned file is
    /// seen as the mapped root (1000) from the host, a file the mapped root
    /// makes is 1000's in the upper dir, and no temporary mount or directory
    /// is left next to the rootfs.
    #[test]
    fn idmapped_overlay_rootfs() {
        let d = tempfile::tempdir().unwrap();
        let (lower, upper, work) = layers(d.path());
        let bundle = d.path().join("bundle");
        let rootfs = bundle.join("rootfs");
        let m = mount_of(
            "overlay",
            "overlay",
            &strings(&[
                "uidmap=0:1000:100000",
                "gidmap=0:1000:100000",
                "index=off",
                &format!("workdir={}", work.display()),
                &format!("upperdir={}", upper.display()),
                &format!("lowerdir={}", lower.display()),
            ]),
        );
        mount_rootfs(&[m], &rootfs).unwrap();
        let md = std::fs::metadata(rootfs.join("file")).unwrap();
        let left: Vec<_> = std::fs::read_dir(&bundle)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        std::fs::write(rootfs.join("new"), "y").unwrap();
        unmount_rootfs(&rootfs);
        assert_eq!((md.uid(), md.gid()), (1000, 1000));
        assert_eq!(left, vec![std::ffi::OsString::from("rootfs")]);
        // The upper dir is not id-mapped: writes land there.
        assert!(upper.join("new").exists());
        assert!(!is_mount_point(&rootfs));
    }

    /// A single-layer rootfs (the snapshotter's bind) with uidmap/gidmap:
    /// id-mapped in place; unmount_rootfs removes both mounts.
    #[test]
    fn idmapped_bind_rootfs() {
        let d = tempfile::tempdir().unwrap();
        let (lower, _, _) = layers(d.path());
        let rootfs = d.path().join("bundle/rootfs");
        let m = mount_of(
            "bind",
            &lower.display().to_string(),
            &strings(&[
                "uidmap=0:1000:100000",
                "gidmap=0:2000:100000",
                "rw",
                "rbind",
            ]),
        );
        mount_rootfs(&[m], &rootfs).unwrap();
        let md = std::fs::metadata(rootfs.join("file")).unwrap();
        unmount_rootfs(&rootfs);
        assert_eq!((md.uid(), md.gid()), (1000, 2000));
        assert!(!is_mount_point(&rootfs));
        let on_disk = std::fs::metadata(lower.join("file")).unwrap();
        assert_eq!((on_disk.uid(), on_disk.gid()), (0, 0));
    }

    /// A failing id-mapped overlay (a missing lower dir) leaves nothing.
    #[test]
    fn failed_idmapped_overlay_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let (_, upper, work) = layers(d.path());
        let bundle = d.path().join("bundle");
        let rootfs = bundle.join("rootfs");
        let m = mount_of(
            "overlay",
            "overlay",
            &strings(&[
                "uidmap=0:1000:100000",
                "gidmap=0:1000:100000",
                &format!("workdir={}", work.display()),
                &format!("upperdir={}", upper.display()),
                &format!("lowerdir={}", d.path().join("snapshots/9/fs").display()),
            ]),
        );
        let e = mount_rootfs(&[m], &rootfs).unwrap_err();
        assert!(e.to_string().contains("snapshots/9/fs"), "{e}");
        let left: Vec<_> = std::fs::read_dir(&bundle)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("rootfs")]);
        assert!(!is_mount_point(&rootfs));
    }
}
