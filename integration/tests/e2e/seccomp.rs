//! Issue 4, seccomp: the profile is enforced in the container and in execs,
//! with runc as the reference.

use crate::matrix;
use crate::util::{default_spec, expect, remove, run_spec, run_spec_detached, wait_status};
use anyhow::{ensure, Result};
use lxcri_integration::{Harness, Output};
use serde_json::{json, Value};

matrix!(
    seccomp_errno_rules,
    seccomp_docker_default_profile,
    seccomp_containerd_default_profile,
    seccomp_applies_to_exec,
);

/// Docker's default profile for the default capabilities on x86_64, converted
/// to OCI by scripts/docker-seccomp-to-oci.py (moby/profiles/seccomp v0.3.0).
const DOCKER_DEFAULT: &str =
    include_str!("../../../runtime-core/src/spec/testdata/seccomp-docker-default.json");

/// A new user namespace (refused by the default profiles without
/// CAP_SYS_ADMIN), then ordinary work.
const USERNS_SCRIPT: &str = "unshare -U true 2>&1; echo rc=$?; mkdir /tmp/d && echo made";

fn errno_profile() -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            // Only with these flags: O_CREAT|O_EXCL (0xc0) both set → EACCES.
            {"names": ["open", "openat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 2, "value": 192, "valueTwo": 192, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]
    })
}

/// A denied syscall fails with the rule's errno (EPERM by default, never 0),
/// an allowed one works, a masked-equal condition matches only its flags.
fn seccomp_errno_rules(h: &mut Harness) -> Result<()> {
    let id = h.id("seccomp");
    let script = "mkdir /tmp/a 2>&1; echo rc=$?; rmdir /tmp 2>&1; \
                  echo hi > /tmp/plain && echo plain-ok; \
                  (set -C; echo x > /tmp/excl) 2>&1; echo done";
    let mut spec = default_spec(h, &id, &["/bin/sh", "-c", script])?;
    spec["linux"]["seccomp"] = errno_profile();
    expect(
        &run_spec(h, &id, &spec)?,
        0,
        "mkdir: can't create directory '/tmp/a': Operation not permitted\nrc=1\n\
         rmdir: '/tmp': Function not implemented\nplain-ok\n\
         /bin/sh: can't create /tmp/excl: Permission denied\ndone\n",
    )
}

/// Docker's default profile: user namespaces (unshare) are refused with EPERM,
/// ordinary work is allowed.
fn seccomp_docker_default_profile(h: &mut Harness) -> Result<()> {
    let id = h.id("docker-seccomp");
    let mut spec = default_spec(h, &id, &["/bin/sh", "-c", USERNS_SCRIPT])?;
    spec["linux"]["seccomp"] = serde_json::from_str(DOCKER_DEFAULT)?;
    userns_refused(&run_spec(h, &id, &spec)?)
}

/// The output of USERNS_SCRIPT under a default profile.
fn userns_refused(out: &Output) -> Result<()> {
    ensure!(
        out.code == 0
            && out.stdout.contains("Operation not permitted\nrc=1\n")
            && out.stdout.ends_with("made\n"),
        "got {out}"
    );
    Ok(())
}

/// `ctr run --seccomp`: containerd's default profile.
fn seccomp_containerd_default_profile(h: &mut Harness) -> Result<()> {
    let cmd = ["/bin/sh", "-c", USERNS_SCRIPT];
    userns_refused(&h.run_rootfs("ctd-seccomp", &["--seccomp"], &cmd)?)
}

/// An exec'd process runs under the container's filter, like runc's.
fn seccomp_applies_to_exec(h: &mut Harness) -> Result<()> {
    let id = h.id("seccomp-exec");
    let mut spec = default_spec(h, &id, &["/bin/sleep", "300"])?;
    spec["linux"]["seccomp"] = errno_profile();
    run_spec_detached(h, &id, &spec)?;
    h.track(&id);
    wait_status(h, &id, "RUNNING")?;
    let out = h.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "mk",
        &id,
        "/bin/sh",
        "-c",
        "mkdir /tmp/x 2>&1; echo rc=$?",
    ])?;
    expect(
        &out,
        0,
        "mkdir: can't create directory '/tmp/x': Operation not permitted\nrc=1\n",
    )?;
    remove(h, &id)
}
