//! Id-mapped bind mounts (`mounts[].uidMappings`/`gidMappings`, options
//! `idmap`/`ridmap`, runtime spec 1.1/1.2, as runc 1.2 makes them): the owners
//! seen inside, the owner on the host of a file made inside, flags, a submount
//! mapped recursively or not, with and without a container user namespace.
//!
//! A mapping `{containerID: c, hostID: h}` makes a file owned by `c` on disk
//! appear owned by (host) `h` through the mount, and back for files made there.
//!
//! The reference, runc 1.1.5, predates id-mapped mounts: containerd 2.x
//! refuses to give it such a spec (see `runc_reference`); run by hand, it
//! ignores the mappings and makes a plain bind.

use crate::spec_linux::chown_tree;
use crate::util::{default_spec, run_spec};
use crate::{matrix_lxcri_v2, matrix_v2};
use anyhow::{ensure, Context, Result};
use lxcri_integration::{Harness, Runtime};
use serde_json::{json, Value};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

// containerd 1.6's ctr (runtime-spec 1.0.2) drops `uidMappings`/`gidMappings`
// from a `--config` spec: containerd 2.x only.
matrix_lxcri_v2!(
    idmapped_bind,
    idmapped_recursive_submount,
    idmapped_in_user_namespace
);

matrix_v2!(runc_reference);

/// Swaps host uid/gid 0 and 1000: on-disk 1000 is root through the mount.
fn swap_0_1000() -> Value {
    json!([
        {"containerID": 1000, "hostID": 0, "size": 1},
        {"containerID": 0, "hostID": 1000, "size": 1}
    ])
}

/// A host directory (mode 0777) with `u1000` (owned by 1000:1000) and `root`
/// (0:0).
pub(crate) fn idmap_source(h: &Harness, name: &str) -> Result<PathBuf> {
    let src = h.ctd.dir().join(name);
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir_all(&src)?;
    std::fs::set_permissions(&src, std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
    std::fs::write(src.join("u1000"), "u1000\n")?;
    std::os::unix::fs::chown(src.join("u1000"), Some(1000), Some(1000))?;
    std::fs::write(src.join("root"), "root\n")?;
    Ok(src)
}

fn add_mounts(spec: &mut Value, mounts: Value) -> Result<()> {
    let list = spec["mounts"].as_array_mut().context("spec mounts")?;
    list.extend(mounts.as_array().context("mounts")?.iter().cloned());
    Ok(())
}

fn owner(p: &Path) -> Result<(u32, u32)> {
    let md = std::fs::metadata(p).with_context(|| format!("{} on the host", p.display()))?;
    Ok((md.uid(), md.gid()))
}

/// Without a user namespace: owners through the mount, a file made by root
/// inside lands as 1000 on the host, `ro`/`nosuid` kept, a file source, a
/// mount point created inside an earlier tmpfs, and the mounts are id-mapped
/// in mountinfo.
fn idmapped_bind(h: &mut Harness) -> Result<()> {
    let id = h.id("idmap");
    let src = idmap_source(h, "idmapsrc")?;
    let script = "ls /proc/1/fd | tr '\\n' ' '; echo; \
                  stat -c '%n %u:%g' /m/u1000 /m/root /f /t/deep/m/u1000; \
                  touch /m/made; \
                  touch /mro/x 2>/dev/null && echo ro-writable || echo ro-refused; \
                  awk '$5 ~ /^\\/(m|mro|f|t\\/deep\\/m)$/ {print $5, $6}' /proc/self/mountinfo";
    let mut spec = default_spec(h, &id, &["/bin/sh", "-c", script])?;
    add_mounts(
        &mut spec,
        json!([
            {"destination": "/m", "type": "bind", "source": src, "options": ["bind"],
             "uidMappings": swap_0_1000(), "gidMappings": swap_0_1000()},
            {"destination": "/mro", "type": "bind", "source": src, "options": ["bind", "ro", "nosuid"],
             "uidMappings": swap_0_1000(), "gidMappings": swap_0_1000()},
            {"destination": "/f", "type": "bind", "source": src.join("u1000"), "options": ["bind", "idmap"],
             "uidMappings": swap_0_1000(), "gidMappings": swap_0_1000()},
            {"destination": "/t", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/t/deep/m", "type": "bind", "source": src, "options": ["rbind"],
             "uidMappings": swap_0_1000(), "gidMappings": swap_0_1000()}
        ]),
    )?;
    let out = run_spec(h, &id, &spec)?.ok()?;
    let lines: Vec<&str> = out.stdout.lines().skip(1).collect();
    // No fd of the mounts (runtime or hook side) reaches the container.
    ensure!(out.stdout.starts_with("0 1 2 \n"), "fds of pid 1: {out}");
    ensure!(lines.len() == 9, "{out}");
    ensure!(
        lines[..5]
            == [
                "/m/u1000 0:0",
                "/m/root 1000:1000",
                "/f 0:0",
                "/t/deep/m/u1000 0:0",
                "ro-refused"
            ],
        "{out}"
    );
    for l in &lines[5..] {
        let opts: Vec<&str> = l.split([' ', ',']).collect();
        ensure!(opts.contains(&"idmapped"), "not id-mapped: {l}\n{out}");
        if l.starts_with("/mro ") {
            ensure!(
                opts.contains(&"ro") && opts.contains(&"nosuid"),
                "flags: {l}"
            );
        } else {
            ensure!(opts.contains(&"rw"), "flags: {l}");
        }
    }
    ensure!(
        owner(&src.join("made"))? == (1000, 1000),
        "made by root inside: {:?} on the host",
        owner(&src.join("made"))?
    );
    Ok(())
}

/// A tmpfs mounted in containerd's private mount namespace (where the shim
/// opens the mount sources), unmounted when dropped.
struct CtdMount {
    ns: String,
    path: PathBuf,
}

impl CtdMount {
    /// Mount a tmpfs at `path` with `script` run in it (cwd) afterwards.
    fn tmpfs(h: &Harness, path: &Path, script: &str) -> Result<CtdMount> {
        let m = CtdMount {
            ns: format!("--mount=/proc/{}/ns/mnt", h.ctd.pid()),
            path: path.to_path_buf(),
        };
        let p = path.display();
        let out = std::process::Command::new("nsenter")
            .args([&m.ns, "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs -o mode=0777 tmpfs '{p}' && cd '{p}' && {script}"
            ))
            .output()?;
        ensure!(
            out.status.success(),
            "tmpfs at {p}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(m)
    }
}

impl Drop for CtdMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nsenter")
            .args([&self.ns, "umount", "-l"])
            .arg(&self.path)
            .status();
    }
}

/// `rbind` of a source with a submount (a tmpfs: id-mappable): `ridmap` maps
/// the submount too (AT_RECURSIVE), `idmap` only the top mount.
fn idmapped_recursive_submount(h: &mut Harness) -> Result<()> {
    let id = h.id("ridmap");
    let src = idmap_source(h, "ridmapsrc")?;
    let sub = src.join("sub");
    std::fs::create_dir_all(&sub)?;
    let _guard = CtdMount::tmpfs(h, &sub, "echo f > f && chown 1000:1000 f")?;
    let script = "stat -c '%n %u' /r/u1000 /r/sub/f /n/u1000 /n/sub/f";
    let mut spec = default_spec(h, &id, &["/bin/sh", "-c", script])?;
    add_mounts(
        &mut spec,
        json!([
            {"destination": "/r", "type": "bind", "source": src, "options": ["rbind", "ridmap"],
             "uidMappings": swap_0_1000(), "gidMappings": swap_0_1000()},
            {"destination": "/n", "type": "bind", "source": src, "options": ["rbind", "idmap"],
             "uidMappings": swap_0_1000(), "gidMappings": swap_0_1000()}
        ]),
    )?;
    let out = run_spec(h, &id, &spec)?.ok()?;
    ensure!(
        out.stdout == "/r/u1000 0\n/r/sub/f 0\n/n/u1000 0\n/n/sub/f 1000\n",
        "{out}"
    );
    Ok(())
}

/// In a user namespace (root = host 100000): a mapping of on-disk 1000 to host
/// 100000 shows 1000's file as the container's root; `idmap` without mappings
/// takes the container's (on-disk 0 is the container's root). Files made by
/// the container's root land as 1000 and 0 on the host.
fn idmapped_in_user_namespace(h: &mut Harness) -> Result<()> {
    chown_tree(Path::new(&h.rootfs()), 100000)?;
    let id = h.id("idmap-userns");
    let src = idmap_source(h, "idmapusersrc")?;
    // Writing needs the directory's owner mapped: 1000's directory for /m.
    let d1000 = src.join("d1000");
    std::fs::create_dir(&d1000)?;
    std::os::unix::fs::chown(&d1000, Some(1000), Some(1000))?;
    let script = "stat -c '%n %u' /m/u1000 /m/root /c/u1000 /c/root; \
                  touch /m/d1000/made-m /c/made-c && echo made";
    let mut spec = default_spec(h, &id, &["/bin/sh", "-c", script])?;
    spec["linux"]["namespaces"]
        .as_array_mut()
        .context("namespaces")?
        .push(json!({"type": "user"}));
    spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    spec["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let to_root = json!([{"containerID": 1000, "hostID": 100000, "size": 1}]);
    add_mounts(
        &mut spec,
        json!([
            {"destination": "/m", "type": "bind", "source": src, "options": ["bind"],
             "uidMappings": to_root, "gidMappings": to_root},
            {"destination": "/c", "type": "bind", "source": src, "options": ["rbind", "idmap"]}
        ]),
    )?;
    let out = run_spec(h, &id, &spec)?.ok()?;
    ensure!(
        out.stdout == "/m/u1000 0\n/m/root 65534\n/c/u1000 1000\n/c/root 0\nmade\n",
        "{out}"
    );
    ensure!(owner(&d1000.join("made-m"))? == (1000, 1000), "made-m");
    ensure!(owner(&src.join("made-c"))? == (0, 0), "made-c");
    Ok(())
}

/// The same mount with both runtimes: lxcri id-maps it. With runc 1.1.5,
/// which has no `features` command, containerd 2.x itself refuses the
/// container ("idmap mounts not supported"), so it never runs without its
/// mapping.
fn runc_reference(h: &mut Harness) -> Result<()> {
    let id = h.id("idmapref");
    let src = idmap_source(h, "idmaprefsrc")?;
    let mut spec = default_spec(h, &id, &["/bin/stat", "-c", "%u", "/m/u1000"])?;
    add_mounts(
        &mut spec,
        json!([
            {"destination": "/m", "type": "bind", "source": src, "options": ["bind"],
             "uidMappings": swap_0_1000(), "gidMappings": swap_0_1000()}
        ]),
    )?;
    let out = run_spec(h, &id, &spec)?;
    match h.runtime {
        Runtime::Lxcri => ensure!(out.code == 0 && out.stdout == "0\n", "{out}"),
        Runtime::Runc => ensure!(
            out.code != 0 && out.stderr.contains("idmap mounts not supported"),
            "{out}"
        ),
    }
    Ok(())
}
