//! Issue point 2: run from an imported OCI image (overlay rootfs mounts).

use crate::matrix;
use crate::util::expect;
use anyhow::{ensure, Result};
use lxcri_integration::{Harness, Output};

matrix!(image_run);

fn run_image(
    h: &mut Harness,
    name: &str,
    image: &str,
    cmd: &[&str],
    stdin: &[u8],
) -> Result<Output> {
    let id = h.id(name);
    let mut args = vec!["run", "--rm", "--runtime", h.runtime.name(), image, &id];
    args.extend(cmd);
    h.ctd.ctr_stdin(&args, stdin)
}

fn image_run(h: &mut Harness) -> Result<()> {
    let image = h.import_image()?;
    let listed = h.ctr_ok(&["image", "ls", "-q"])?;
    ensure!(listed.stdout.contains(image), "image not listed: {listed}");
    let out = run_image(h, "img-echo", image, &["/bin/echo", "from-image"], b"")?;
    expect(&out, 0, "from-image\n")?;
    // The image's Env PATH lets the runtime resolve a bare command name.
    let out = run_image(h, "img-path", image, &["sh", "-c", "echo $PATH"], b"")?;
    expect(
        &out,
        0,
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
    )?;
    let out = run_image(h, "img-stdin", image, &["/bin/head", "-n1"], b"in\n")?;
    expect(&out, 0, "in\n")?;
    let out = run_image(
        h,
        "img-rw",
        image,
        &["/bin/sh", "-c", "echo w > /written && cat /written"],
        b"",
    )?;
    expect(&out, 0, "w\n")?;
    let snapshots = h.ctr_ok(&["snapshot", "ls"])?;
    ensure!(
        !snapshots.stdout.contains("lxe2e-"),
        "container snapshots left: {snapshots}"
    );
    Ok(())
}
