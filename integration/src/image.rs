//! An OCI image layout tarball (oci-layout, index.json, blobs) built with
//! tar, gzip and sha256sum from a root filesystem directory.

use crate::cmd::must;
use anyhow::{Context, Result};
use serde_json::json;
use std::fs;
use std::path::Path;
use std::process::Command;

/// A blob written into the layout: its digest and size.
struct Blob {
    digest: String,
    size: u64,
}

/// What the image runs: its config's Entrypoint and Cmd.
#[derive(Debug, Clone, Copy)]
pub struct Process<'a> {
    pub entrypoint: &'a [&'a str],
    pub cmd: &'a [&'a str],
    /// The config's User (`uid`, `name`, `uid:gid`, ...); empty for none.
    pub user: &'a str,
}

/// The busybox test image: no entrypoint, `/bin/sh`.
pub const SHELL: Process<'static> = Process {
    entrypoint: &[],
    cmd: &["/bin/sh"],
    user: "",
};

/// The pause image for CRI sandboxes: sleeps (about 68 years) until killed.
pub const PAUSE: Process<'static> = Process {
    entrypoint: &["/bin/sleep", "2147483647"],
    cmd: &[],
    user: "",
};

/// Writes an OCI image tarball of `rootfs` named `name`, running
/// `process`, to `out`. `work` is a scratch directory.
pub fn oci_image(
    rootfs: &Path,
    name: &str,
    process: Process,
    work: &Path,
    out: &Path,
) -> Result<()> {
    let layout = work.join("layout");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs)?;
    let layer_tar = work.join("layer.tar");
    tar_dir(rootfs, &layer_tar)?;
    let diff_id = sha256(&layer_tar)?;
    must(Command::new("gzip").args(["-n", "-f"]).arg(&layer_tar))?;
    let layer = add_blob_file(&blobs, &work.join("layer.tar.gz"))?;
    let config = add_blob(&blobs, &image_config(&diff_id, process))?;
    let manifest = add_blob(&blobs, &manifest_json(&config, &layer))?;
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    fs::write(
        layout.join("index.json"),
        index_json(&manifest, name).to_string(),
    )?;
    tar_dir(&layout, out)
}

fn image_config(diff_id: &str, process: Process) -> serde_json::Value {
    let mut config = json!({
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "WorkingDir": "/"
    });
    if !process.entrypoint.is_empty() {
        config["Entrypoint"] = json!(process.entrypoint);
    }
    if !process.cmd.is_empty() {
        config["Cmd"] = json!(process.cmd);
    }
    if !process.user.is_empty() {
        config["User"] = json!(process.user);
    }
    json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "lxcri integration harness"}]
    })
}

fn manifest_json(config: &Blob, layer: &Blob) -> serde_json::Value {
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config.digest,
            "size": config.size
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer.digest,
            "size": layer.size
        }]
    })
}

fn index_json(manifest: &Blob, name: &str) -> serde_json::Value {
    let tag = name.rsplit(':').next().unwrap_or("latest");
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest.digest,
            "size": manifest.size,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": tag
            }
        }]
    })
}

/// Deterministic tar of the contents of `dir` (owner root, mtime 0).
fn tar_dir(dir: &Path, out: &Path) -> Result<()> {
    must(
        Command::new("tar")
            .args(["--sort=name", "--mtime=@0", "--numeric-owner"])
            .args(["--owner=0", "--group=0", "-C"])
            .arg(dir)
            .arg("-cf")
            .arg(out)
            .arg("."),
    )?;
    Ok(())
}

fn sha256(path: &Path) -> Result<String> {
    let out = must(Command::new("sha256sum").arg(path))?;
    let digest = out.stdout.split_whitespace().next().context("sha256sum")?;
    Ok(digest.to_string())
}

fn add_blob(blobs: &Path, value: &serde_json::Value) -> Result<Blob> {
    let tmp = blobs.join("tmp.json");
    fs::write(&tmp, value.to_string())?;
    add_blob_file(blobs, &tmp)
}

/// Moves `file` into the blob store under its digest.
fn add_blob_file(blobs: &Path, file: &Path) -> Result<Blob> {
    let digest = sha256(file)?;
    let size = fs::metadata(file)?.len();
    fs::rename(file, blobs.join(&digest))?;
    Ok(Blob {
        digest: format!("sha256:{digest}"),
        size,
    })
}
