//! Id-mapped bind mounts (`mounts[i].uidMappings`/`gidMappings`, `idmap`,
//! `ridmap`), made as runc 1.2 makes them, in the host's user namespace (inside
//! a container user namespace `MOUNT_ATTR_IDMAP` of a host filesystem is not
//! allowed): a detached clone of the source with the mount's flags and id
//! mapping, which `lxcri-hook` then attaches inside the container's rootfs.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::spec::mounts::{IdmappedMount, MOUNT_ATTR_IDMAP};
use crate::userns::{with_child_in_user_namespace, IdMap};

/// `open_tree(2)` flag (linux/mount.h).
const OPEN_TREE_CLONE: libc::c_uint = 1;

/// struct mount_attr (linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn mount_setattr(fd: &OwnedFd, flags: libc::c_int, attr: &MountAttr) -> io::Result<()> {
    // SAFETY: mount_setattr reads the empty NUL-terminated path and `size` bytes
    // of a valid, initialized mount_attr, both alive for the call; `fd` is open.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags | libc::AT_EMPTY_PATH,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn render(maps: &[IdMap]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container, m.host, m.size))
        .collect()
}

/// A user namespace with these mappings (an fd of its nsfs file): a short-lived
/// child unshares it, the maps are written from here, then the child exits.
pub fn user_namespace(uids: &[IdMap], gids: &[IdMap]) -> io::Result<OwnedFd> {
    with_child_in_user_namespace(None, "cannot unshare a user namespace", |pid| {
        let dir = format!("/proc/{pid}");
        std::fs::write(format!("{dir}/uid_map"), render(uids))
            .map_err(|e| io::Error::new(e.kind(), format!("write uid_map: {e}")))?;
        std::fs::write(format!("{dir}/gid_map"), render(gids))
            .map_err(|e| io::Error::new(e.kind(), format!("write gid_map: {e}")))?;
        std::fs::File::open(format!("{dir}/ns/user")).map(OwnedFd::from)
    })
}

/// The detached, id-mapped clone of `m`'s source (an `open_tree` fd, close on
/// exec), with its flags set: ready for `move_mount`.
pub fn detached_mount(m: &IdmappedMount) -> io::Result<OwnedFd> {
    idmapped_tree(
        &m.source,
        &TreeOptions {
            recursive: m.recursive,
            recursive_idmap: m.recursive_idmap,
            attr_set: m.attr_set,
            attr_clr: m.attr_clr,
        },
        &m.uid_mappings,
        &m.gid_mappings,
    )
}

/// How [`idmapped_tree`] clones and id-maps a tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeOptions {
    /// Clone the submounts of the source too (`rbind`, `AT_RECURSIVE`).
    pub recursive: bool,
    /// Id-map the submounts too (`ridmap`).
    pub recursive_idmap: bool,
    /// MOUNT_ATTR_* flags set on the top mount.
    pub attr_set: u64,
    /// MOUNT_ATTR_* flags cleared on the top mount.
    pub attr_clr: u64,
}

/// A detached clone of the tree at `source` (an `open_tree(OPEN_TREE_CLONE)`
/// fd, close on exec) with the flags of `opts` and id-mapped through a user
/// namespace with the mappings `uids`/`gids` (`MOUNT_ATTR_IDMAP`): ready for
/// [`attach`] (or `move_mount` elsewhere).
pub fn idmapped_tree(
    source: &Path,
    opts: &TreeOptions,
    uids: &[IdMap],
    gids: &[IdMap],
) -> io::Result<OwnedFd> {
    let src = CString::new(source.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if opts.recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: open_tree reads a NUL-terminated path alive for the call; the
    // returned fd is new and owned by nobody else.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, src.as_ptr(), flags) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("open_tree {}: {e}", source.display()),
        ));
    }
    // SAFETY: fd was just returned by open_tree and is owned here only.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // The flags apply to the top mount, as runc's bind remount does.
    if opts.attr_set != 0 || opts.attr_clr != 0 {
        let attr = MountAttr {
            attr_set: opts.attr_set,
            attr_clr: opts.attr_clr,
            propagation: 0,
            userns_fd: 0,
        };
        mount_setattr(&tree, 0, &attr)
            .map_err(|e| io::Error::new(e.kind(), format!("set the mount flags: {e}")))?;
    }
    let userns = user_namespace(uids, gids)
        .map_err(|e| io::Error::new(e.kind(), format!("user namespace of the mappings: {e}")))?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let rec = if opts.recursive_idmap {
        libc::AT_RECURSIVE
    } else {
        0
    };
    mount_setattr(&tree, rec, &attr).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("id-map {} (MOUNT_ATTR_IDMAP): {e}", source.display()),
        )
    })?;
    Ok(tree)
}

/// `move_mount(2)` flag (linux/mount.h).
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// Attach the detached `tree` at `target` (`move_mount`).
pub fn attach(tree: &OwnedFd, target: &Path) -> io::Result<()> {
    let dst = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: move_mount with an open fd, an empty and a NUL-terminated path,
    // both alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            dst.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("attach the id-mapped mount at {}: {e}", target.display()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_namespace_has_the_maps() {
        let u = [IdMap {
            container: 0,
            host: 1000,
            size: 1,
        }];
        let g = [
            IdMap {
                container: 0,
                host: 2000,
                size: 10,
            },
            IdMap {
                container: 100,
                host: 3000,
                size: 1,
            },
        ];
        let fd = user_namespace(&u, &g).unwrap();
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let m = crate::userns::mappings(std::path::Path::new(&path)).unwrap();
        assert_eq!(m.uids, u.to_vec());
        assert_eq!(m.gids, g.to_vec());
    }

    fn mount(src: &std::path::Path, ro: bool) -> IdmappedMount {
        let swap = vec![
            IdMap {
                container: 1000,
                host: 0,
                size: 1,
            },
            IdMap {
                container: 0,
                host: 1000,
                size: 1,
            },
        ];
        IdmappedMount {
            field: "mounts[0]".into(),
            source: src.to_path_buf(),
            destination: "m".into(),
            is_dir: true,
            recursive: false,
            recursive_idmap: false,
            attr_set: if ro {
                crate::spec::mounts::MOUNT_ATTR_RDONLY
            } else {
                0
            },
            attr_clr: 0,
            uid_mappings: swap.clone(),
            gid_mappings: swap,
        }
    }

    /// The detached mount (never attached: looked into through its fd) shows
    /// on-disk 1000 as 0 and 0 as 1000; a file made there by root is 1000's on
    /// disk; with `ro` it is read-only.
    #[test]
    fn detached_mount_is_id_mapped() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("u1000"), "x").unwrap();
        std::os::unix::fs::chown(d.path().join("u1000"), Some(1000), Some(1000)).unwrap();
        std::fs::write(d.path().join("root"), "x").unwrap();
        let tree = detached_mount(&mount(d.path(), false)).unwrap();
        let through = |name: &str| {
            std::fs::metadata(format!("/proc/self/fd/{}/{name}", tree.as_raw_fd())).unwrap()
        };
        assert_eq!((through("u1000").uid(), through("u1000").gid()), (0, 0));
        assert_eq!((through("root").uid(), through("root").gid()), (1000, 1000));
        std::fs::write(format!("/proc/self/fd/{}/made", tree.as_raw_fd()), "y").unwrap();
        let md = std::fs::metadata(d.path().join("made")).unwrap();
        assert_eq!((md.uid(), md.gid()), (1000, 1000));

        let ro = detached_mount(&mount(d.path(), true)).unwrap();
        let e = std::fs::write(format!("/proc/self/fd/{}/other", ro.as_raw_fd()), "z").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS));
        let e = detached_mount(&mount(std::path::Path::new("/nonexistent-x"), false)).unwrap_err();
        assert!(e.to_string().contains("/nonexistent-x"), "{e}");
    }
}
