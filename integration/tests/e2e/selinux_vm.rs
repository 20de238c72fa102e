//! SELinux labels, in the VM booted with SELinux instead of AppArmor
//! (`LXCRI_VM_LSM=selinux scripts/vm/run.sh`, the second boot of
//! `make e2e-vm`; `make e2e` skips this module). Debian's reference policy
//! (selinux-policy-default) is loaded in permissive mode: the shared root's
//! files carry no labels. Its container domain is `svirt_t` (it has no
//! `container_t`). runc is the reference. Every scenario first asserts that
//! SELinux is active and fails otherwise.

use crate::matrix_v2;
use crate::util::{default_spec, exec, remove, run_spec, run_spec_detached};
use anyhow::{ensure, Context, Result};
use lxcri_integration::Harness;
use serde_json::json;

matrix_v2!(selinux_labels, selinux_unknown_label);

const PROCESS_LABEL: &str = "system_u:system_r:svirt_t:s0:c1,c2";
/// One category: lxcri refuses a mount label with a comma (liblxc would cut
/// it at the comma), runc would take it.
const MOUNT_LABEL: &str = "system_u:object_r:svirt_tmpfs_t:s0:c1";

/// Fails unless SELinux is the active LSM with a policy loaded (a selinuxfs
/// mounted, its enforce file readable, as runc detects it).
fn selinux_host() -> Result<()> {
    let lsm = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let selinuxfs = mountinfo.lines().any(|l| {
        l.split(" - ")
            .nth(1)
            .is_some_and(|t| t.starts_with("selinuxfs "))
    });
    let enforce = std::fs::read_to_string("/sys/fs/selinux/enforce");
    ensure!(
        lsm.split(',').any(|m| m == "selinux") && selinuxfs && enforce.is_ok(),
        "SELinux is not active here (LSMs {lsm:?}, selinuxfs mounted: {selinuxfs}, \
         enforce: {enforce:?}): the selinux_vm tests run in the VM booted with \
         LXCRI_VM_LSM=selinux (`make e2e-vm`)"
    );
    Ok(())
}

/// `process.selinuxLabel` and `linux.mountLabel`: the container's init runs
/// in the label (its /proc/1/attr/current), an exec'd process without a
/// label of its own too (execs default to the container's label, as runc);
/// the container's tmpfs mounts (its /dev and a spec tmpfs) carry the mount
/// label as their `context=` option, its proc does not. Same under runc.
fn selinux_labels(h: &mut Harness) -> Result<()> {
    selinux_host()?;
    let id = h.id("selabel");
    let mut spec = default_spec(h, &id, &["/bin/sleep", "1000"])?;
    spec["process"]["selinuxLabel"] = json!(PROCESS_LABEL);
    spec["linux"]["mountLabel"] = json!(MOUNT_LABEL);
    spec["mounts"].as_array_mut().context("spec mounts")?.push(
        json!({"destination": "/labeled", "type": "tmpfs", "source": "tmpfs",
                     "options": ["nosuid", "size=1m"]}),
    );
    run_spec_detached(h, &id, &spec)?;
    let result = (|| {
        let out = exec(h, &id, "init-label", &["/bin/cat", "/proc/1/attr/current"])?;
        ensure!(
            out.code == 0 && out.stdout.trim_end_matches(['\0', '\n']) == PROCESS_LABEL,
            "the container's init label: {out}"
        );
        let out = exec(
            h,
            &id,
            "exec-label",
            &["/bin/cat", "/proc/self/attr/current"],
        )?;
        ensure!(
            out.code == 0 && out.stdout.trim_end_matches(['\0', '\n']) == PROCESS_LABEL,
            "an exec'd process's label: {out}"
        );
        let out = exec(h, &id, "mounts", &["/bin/cat", "/proc/self/mountinfo"])?;
        ensure!(out.code == 0, "mountinfo: {out}");
        // The kernel shows a context without a comma unquoted.
        let context = format!("context={MOUNT_LABEL},");
        // The visible mount at `target` (the last one: liblxc's autodev /dev
        // lies under the spec's /dev tmpfs).
        let line = |target: &str| {
            out.stdout
                .lines()
                .rfind(|l| l.split(' ').nth(4) == Some(target))
                .unwrap_or_default()
                .to_string()
        };
        for target in ["/labeled", "/dev"] {
            let l = line(target);
            ensure!(
                l.contains(&context),
                "{target} lacks {context}: {l:?}\n{out}"
            );
        }
        let l = line("/proc");
        ensure!(
            !l.is_empty() && !l.contains("context="),
            "/proc has a context option: {l:?}"
        );
        Ok(())
    })();
    remove(h, &id)?;
    result
}

/// A label the loaded policy does not know (`container_t`: Debian's policy
/// has none) fails the container, as under runc (at its exec); lxcri refuses
/// it at create, naming the field and the label (the kernel's check).
fn selinux_unknown_label(h: &mut Harness) -> Result<()> {
    selinux_host()?;
    let id = h.id("seunknown");
    let mut spec = default_spec(h, &id, &["/bin/true"])?;
    let label = "system_u:system_r:container_t:s0";
    spec["process"]["selinuxLabel"] = json!(label);
    let out = run_spec(h, &id, &spec)?;
    ensure!(
        out.code != 0,
        "a label unknown to the policy was accepted: {out}"
    );
    if h.runtime.name().contains("lxcri") {
        let text = format!("{}{}", out.stdout, out.stderr);
        ensure!(
            text.contains(label) && text.contains("process.selinuxLabel"),
            "error names the field and the label: {out}"
        );
    }
    Ok(())
}
