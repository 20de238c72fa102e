//! Issue 3: terminals (`ctr run -t`, `ctr task exec -t`), ResizePty.
//!
//! ctr needs a terminal of its own for -t: it runs under `script`, which gives it
//! a pty whose size is set first, so ctr's ResizePty carries 40x100.

use crate::matrix;
use crate::util::{remove, run_detached, wait_status};
use anyhow::{ensure, Result};
use lxcri_integration::{cmd, Harness, Output};
use std::time::Duration;

matrix!(run_with_terminal, exec_with_terminal);

/// Quote for sh -c.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Run `ctr args` under `script` (a pty of 40 rows, 100 columns).
fn ctr_on_tty(h: &Harness, args: &[&str]) -> Result<Output> {
    let ctr = h.ctd.ctr_command(args);
    let mut line: Vec<String> = vec![quote(&ctr.get_program().to_string_lossy())];
    line.extend(ctr.get_args().map(|a| quote(&a.to_string_lossy())));
    let script = format!("stty rows 40 cols 100; exec {}", line.join(" "));
    let mut c = std::process::Command::new("script");
    c.args(["-qefc", &script, "/dev/null"]);
    cmd::run(&mut c, None, Duration::from_secs(60))
}

fn run_with_terminal(h: &mut Harness) -> Result<()> {
    let id = h.id("tty");
    let rootfs = h.rootfs();
    let out = ctr_on_tty(
        h,
        &[
            "run",
            "--rm",
            "-t",
            "--runtime",
            h.runtime.name(),
            "--rootfs",
            &rootfs,
            &id,
            "/bin/sh",
            "-c",
            "tty; sleep 1; stty size; [ -t 0 ] && echo stdin-is-tty",
        ],
    )?;
    ensure!(out.code == 0, "{out}");
    ensure!(out.stdout.contains("/dev/pts/"), "tty: {out}");
    ensure!(out.stdout.contains("40 100"), "window size: {out}");
    ensure!(out.stdout.contains("stdin-is-tty"), "stdin: {out}");
    Ok(())
}

fn exec_with_terminal(h: &mut Harness) -> Result<()> {
    let id = run_detached(h, "ttyx", &[], &["/bin/sleep", "1000"])?;
    let result = wait_status(h, &id, "RUNNING").and_then(|_| {
        let out = ctr_on_tty(
            h,
            &[
                "task",
                "exec",
                "-t",
                "--exec-id",
                "t1",
                &id,
                "/bin/sh",
                "-c",
                "tty; sleep 1; stty size; exit 4",
            ],
        )?;
        ensure!(out.code == 4, "exit code: {out}");
        ensure!(out.stdout.contains("/dev/pts/"), "tty: {out}");
        ensure!(out.stdout.contains("40 100"), "window size: {out}");
        Ok(())
    });
    let cleanup = remove(h, &id);
    result.and(cleanup)
}
