//! Mounting the rootfs mounts containerd passes at `<bundle>/rootfs`.

use std::path::Path;

use containerd_shim::protos::types::mount::Mount;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Error, Result};

/// Mount flags and the remaining data string of a mount's options.
fn parse_options(options: &[String]) -> (MsFlags, MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut propagation = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        match o.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags &= !MsFlags::MS_RDONLY,
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "nodiratime" => flags |= MsFlags::MS_NODIRATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "strictatime" => flags |= MsFlags::MS_STRICTATIME,
            "defaults" | "suid" | "dev" | "exec" | "async" | "atime" => {}
            "private" => propagation |= MsFlags::MS_PRIVATE,
            "rprivate" => propagation |= MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            "slave" => propagation |= MsFlags::MS_SLAVE,
            "rslave" => propagation |= MsFlags::MS_SLAVE | MsFlags::MS_REC,
            "shared" => propagation |= MsFlags::MS_SHARED,
            "rshared" => propagation |= MsFlags::MS_SHARED | MsFlags::MS_REC,
            other => data.push(other.to_string()),
        }
    }
    (flags, propagation, data.join(","))
}

fn mount_one(m: &Mount, target: &Path) -> Result<()> {
    let (mut flags, propagation, data) = parse_options(&m.options);
    let typ = m.type_.as_str();
    if typ == "bind" {
        flags |= MsFlags::MS_BIND;
    }
    // The kernel takes at most a page of mount data.
    if data.len() >= 4096 {
        return Err(Error::InvalidArgument(format!(
            "rootfs mount options of {} bytes are too long",
            data.len()
        )));
    }
    let err = |e: nix::Error| Error::io("mount rootfs at", target.display(), e.into());
    let fstype = if flags.contains(MsFlags::MS_BIND) {
        None
    } else {
        Some(typ)
    };
    let first = if flags.contains(MsFlags::MS_BIND) {
        flags & !MsFlags::MS_RDONLY
    } else {
        flags
    };
    let data = (!data.is_empty()).then_some(data.as_str());
    mount(Some(m.source.as_str()), target, fstype, first, data).map_err(err)?;
    if flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY) {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            flags | MsFlags::MS_REMOUNT,
            None::<&str>,
        )
        .map_err(err)?;
    }
    if !propagation.is_empty() {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            propagation,
            None::<&str>,
        )
        .map_err(err)?;
    }
    Ok(())
}

/// Mount `mounts` in order at `target` (created if missing).
pub fn mount_rootfs(mounts: &[Mount], target: &Path) -> Result<()> {
    std::fs::create_dir_all(target).map_err(|e| Error::io("create", target.display(), e))?;
    for (i, m) in mounts.iter().enumerate() {
        let t = if m.target.is_empty() {
            target.to_path_buf()
        } else {
            target.join(m.target.trim_start_matches('/'))
        };
        if let Err(e) = mount_one(m, &t) {
            // Leave nothing half-mounted behind.
            for _ in 0..i {
                let _ = umount2(target, MntFlags::MNT_DETACH);
            }
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

/// Unmount everything mounted at `target`.
pub fn unmount_rootfs(target: &Path) {
    for _ in 0..64 {
        if !is_mount_point(target) {
            return;
        }
        if let Err(e) = umount2(target, MntFlags::empty()) {
            log::warn!("unmount {}: {e}; detaching", target.display());
            let _ = umount2(target, MntFlags::MNT_DETACH);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options() {
        let opts: Vec<String> = [
            "index=off",
            "workdir=/w",
            "upperdir=/u",
            "lowerdir=/l",
            "ro",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (flags, prop, data) = parse_options(&opts);
        assert_eq!(flags, MsFlags::MS_RDONLY);
        assert!(prop.is_empty());
        assert_eq!(data, "index=off,workdir=/w,upperdir=/u,lowerdir=/l");
    }

    #[test]
    fn bind_options() {
        let opts: Vec<String> = ["rbind", "rprivate", "nosuid"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, prop, data) = parse_options(&opts);
        assert_eq!(
            flags,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_NOSUID
        );
        assert_eq!(prop, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        assert!(data.is_empty());
    }
}
