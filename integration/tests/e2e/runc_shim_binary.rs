//! containerd's own Go runc shim (`io.containerd.runc.v2`) with `lxcri` as its
//! runtime binary (runtime option `BinaryName`, which `ctr run --runc-binary`
//! sets): a direct test of runc compatibility (go-runc's create/start/state/
//! exec --detach/kill/delete/ps/pause/resume calls, the pid file; ctr needs a
//! console of its own for `-t`, which the suite does not have).

use crate::util::{expect, remove, run_detached, task, wait_status};
use anyhow::{ensure, Result};
use lxcri_integration::cli::LXCRI;
use lxcri_integration::{run_scenario, Harness, Runtime, Version};

const BINARY: [&str; 2] = ["--runc-binary", LXCRI];

fn scenario(h: &mut Harness) -> Result<()> {
    ensure!(
        std::path::Path::new(LXCRI).exists(),
        "{LXCRI} missing: make install-bin"
    );
    let out = h.run_rootfs("hello", &BINARY, &["/bin/echo", "hello"])?;
    expect(&out, 0, "hello\n")?;
    let out = h.run_rootfs("exit7", &BINARY, &["/bin/sh", "-c", "exit 7"])?;
    expect(&out, 7, "")?;

    let id = run_detached(
        h,
        "detached",
        &BINARY,
        &[
            "/bin/sh",
            "-c",
            "trap 'exit 3' TERM; while :; do sleep 0.1; done",
        ],
    )?;
    let result = (|| {
        let t = wait_status(h, &id, "RUNNING")?;
        let cmdline = std::fs::read_to_string(format!("/proc/{}/cmdline", t.pid))?;
        ensure!(
            cmdline.starts_with("/bin/sh\0-c\0"),
            "the task pid is the init: {cmdline:?}"
        );
        let out = h.ctr(&[
            "task",
            "exec",
            "--exec-id",
            "e1",
            &id,
            "/bin/sh",
            "-c",
            "echo in-exec; exit 4",
        ])?;
        ensure!(out.code == 4 && out.stdout == "in-exec\n", "{out}");
        let ps = h.ctr_ok(&["task", "ps", &id])?;
        ensure!(ps.stdout.contains(&t.pid.to_string()), "{ps}");
        h.ctr_ok(&["task", "pause", &id])?;
        wait_status(h, &id, "PAUSED")?;
        h.ctr_ok(&["task", "resume", &id])?;
        wait_status(h, &id, "RUNNING")?;
        h.ctr_ok(&["task", "kill", &id])?;
        wait_status(h, &id, "STOPPED")?;
        let out = h.ctr_ok(&["task", "delete", &id])?;
        ensure!(out.stderr.contains("exit code 3"), "{out}");
        ensure!(task(h, &id)?.is_none());
        Ok(())
    })();
    let cleanup = remove(h, &id);
    result.and(cleanup)
}

#[test]
fn containerd_1_6() {
    run_scenario(Version::V1_6, Runtime::Runc, scenario);
}

#[test]
fn containerd_2() {
    run_scenario(Version::V2, Runtime::Runc, scenario);
}
