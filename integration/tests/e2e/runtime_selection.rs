//! Issue point 3: how containerd picks the runtime.
//!
//! Finding (containerd 1.6.20 and 2.4.2 sources, cmd/ctr/commands and
//! client/client.go): ctr's `--runtime` flag defaults to the constant
//! `io.containerd.runc.v2` and `ctr run` always passes it
//! (`containerd.WithRuntime(cmd.String("runtime"), ..)`), so no daemon
//! config and no env var changes what `ctr run` without --runtime uses.
//! The client library's own default (namespace label
//! `containerd.io/defaults/runtime`) only applies to clients that pass no
//! runtime; the daemon has no default-runtime setting outside the CRI
//! plugin (`default_runtime_name` + `runtimes.<name>.runtime_type`). What
//! does work with ctr on both versions: the runtime name (binary
//! containerd-shim-<name>-v2 on the daemon's PATH) or an absolute path to
//! the shim binary.

use crate::matrix;
use crate::util::expect;
use anyhow::{ensure, Context, Result};
use lxcri_integration::{try_scenario, Harness, Runtime, Version};
use serde_json::Value;

matrix!(runtime_by_absolute_path);

fn shim_path(h: &Harness) -> String {
    match (h.runtime, h.ctd.version) {
        (Runtime::Lxcri, _) => "/usr/local/bin/containerd-shim-lxcri-v2".into(),
        (Runtime::Runc, Version::V1_6) => "/usr/bin/containerd-shim-runc-v2".into(),
        (Runtime::Runc, Version::V2) => {
            format!(
                "{}/containerd-shim-runc-v2",
                lxcri_integration::containerd::CONTAINERD2_BIN
            )
        }
    }
}

fn runtime_by_absolute_path(h: &mut Harness) -> Result<()> {
    let shim = shim_path(h);
    let id = h.id("abspath");
    let rootfs = h.rootfs();
    let args = [
        "run",
        "--rm",
        "--runtime",
        &shim,
        "--rootfs",
        &rootfs,
        &id,
        "/bin/echo",
        "hello",
    ];
    let out = h.ctr(&args)?;
    expect(&out, 0, "hello\n")
}

/// `ctr run` without --runtime stores io.containerd.runc.v2 even when the
/// namespace's default-runtime label names lxcri (documents the finding).
fn ctr_ignores_namespace_label(h: &mut Harness) -> Result<()> {
    let label = format!("containerd.io/defaults/runtime={}", Runtime::Lxcri.name());
    h.ctr_ok(&["namespaces", "label", "default", &label])?;
    let id = h.id("nsdefault");
    let rootfs = h.rootfs();
    h.ctr_ok(&["container", "create", "--rootfs", &rootfs, &id, "/bin/true"])?;
    let info = h.ctr_ok(&["container", "info", &id]);
    h.ctr_ok(&["container", "rm", &id])?;
    let info: Value = serde_json::from_str(&info?.stdout).context("container info")?;
    let runtime = &info["Runtime"]["Name"];
    ensure!(runtime == "io.containerd.runc.v2", "runtime {runtime}");
    Ok(())
}

mod default_runtime {
    use super::*;

    #[test]
    fn ctr_ignores_namespace_label_containerd_1_6() {
        try_scenario(
            Version::V1_6,
            Runtime::Runc,
            "",
            ctr_ignores_namespace_label,
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    }

    #[test]
    fn ctr_ignores_namespace_label_containerd_2() {
        try_scenario(Version::V2, Runtime::Runc, "", ctr_ignores_namespace_label)
            .unwrap_or_else(|e| panic!("{e:#}"));
    }
}
