//! Issue 4: `linux.*` fields (devices, rootfs propagation, ...), checked from
//! inside the container, with runc as the reference.

use crate::matrix;
use crate::util::{default_spec, expect, run_spec};
use anyhow::{ensure, Result};
use lxcri_integration::Harness;
use serde_json::json;

matrix!(devices_created, device_cgroup, rootfs_propagation,);

/// `linux.devices`: the node exists with the spec's type, numbers, mode and
/// owner; the default cgroup rules allow /dev/null's numbers.
fn devices_created(h: &mut Harness) -> Result<()> {
    let id = h.id("devices");
    let script = "stat -c '%F %t:%T %a %u:%g' /dev/mynull /dev/sub/myfifo; \
                  echo x > /dev/mynull && echo written";
    let mut spec = default_spec(h, &id, &["/bin/sh", "-c", script])?;
    spec["linux"]["devices"] = json!([
        {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o620, "uid": 1000, "gid": 65534},
        {"path": "/dev/sub/myfifo", "type": "p", "fileMode": 0o600}
    ]);
    expect(
        &run_spec(h, &id, &spec)?,
        0,
        "character special file 1:3 620 1000:65534\nfifo 0:0 600 0:0\nwritten\n",
    )
}

/// `linux.resources.devices`: a node outside the default allow list cannot be
/// opened (EPERM from the device cgroup) until a rule allows it.
fn device_cgroup(h: &mut Harness) -> Result<()> {
    // 10:229 is /dev/fuse: opening it without the rule fails with EPERM; with the
    // rule it opens (or fails with another error when fuse is absent).
    let script = "(: < /dev/myfuse) && echo opened || echo failed";
    for (allow, want) in [(false, "Operation not permitted"), (true, "opened")] {
        let id = h.id(if allow { "devcg-allow" } else { "devcg-deny" });
        let mut spec = default_spec(h, &id, &["/bin/sh", "-c", script])?;
        spec["linux"]["devices"] =
            json!([{"path": "/dev/myfuse", "type": "c", "major": 10, "minor": 229}]);
        if allow {
            spec["linux"]["resources"]["devices"]
                .as_array_mut()
                .ok_or_else(|| anyhow::anyhow!("no resources.devices in the default spec"))?
                .push(
                    json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}),
                );
        }
        let out = run_spec(h, &id, &spec)?;
        let text = format!("{}{}", out.stdout, out.stderr);
        ensure!(
            text.contains(want),
            "allow={allow}: want {want:?}, got {out}"
        );
        if !allow {
            ensure!(out.stdout.contains("failed"), "{out}");
        }
    }
    Ok(())
}

/// `linux.rootfsPropagation`: / is a shared mount inside the container.
fn rootfs_propagation(h: &mut Harness) -> Result<()> {
    let id = h.id("rootprop");
    let script = "awk '$5 == \"/\"' /proc/self/mountinfo";
    let mut spec = default_spec(h, &id, &["/bin/sh", "-c", script])?;
    spec["linux"]["rootfsPropagation"] = json!("rshared");
    let out = run_spec(h, &id, &spec)?.ok()?;
    ensure!(out.stdout.contains(" shared:"), "/ is not shared: {out}");
    Ok(())
}
