//! A busybox root filesystem and an OCI image built from it, offline.

use crate::cmd::must;
use anyhow::{bail, Context, Result};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

/// The static busybox from Debian's busybox-static.
pub const BUSYBOX: &str = "/bin/busybox";

/// Name under which the test image is imported.
pub const IMAGE: &str = "docker.io/library/lxcri-busybox:latest";

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
test:x:1000:1000:test:/home/test:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";

const GROUP: &str = "root:x:0:\ntest:x:1000:test\nnogroup:x:65534:\n";

/// Fills `dir` with /bin/busybox, one symlink per applet, /etc/passwd and
/// /etc/group, and empty mount points.
pub fn busybox_rootfs(dir: &Path) -> Result<()> {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin)?;
    check_static(BUSYBOX)?;
    fs::copy(BUSYBOX, bin.join("busybox")).context("copy busybox")?;
    for applet in applets()? {
        symlink("busybox", bin.join(&applet)).with_context(|| format!("link {applet}"))?;
    }
    for empty in ["proc", "sys", "dev", "tmp", "root", "home/test", "etc"] {
        fs::create_dir_all(dir.join(empty))?;
    }
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    fs::write(dir.join("etc/passwd"), PASSWD)?;
    fs::write(dir.join("etc/group"), GROUP)?;
    Ok(())
}

/// The busybox applets, without "busybox" itself.
fn applets() -> Result<Vec<String>> {
    let out = must(Command::new(BUSYBOX).arg("--list"))?;
    Ok(out
        .stdout
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox")
        .map(String::from)
        .collect())
}

/// The image rootfs has no libc: a dynamic busybox would not run.
fn check_static(path: &str) -> Result<()> {
    let out = must(Command::new(path).arg("--help"))
        .with_context(|| format!("{path} missing: install busybox-static"))?;
    if !out.stdout.contains("BusyBox") && !out.stderr.contains("BusyBox") {
        bail!("{path} is not busybox");
    }
    if has_interpreter(&fs::read(path)?) {
        bail!("{path} is dynamically linked: install busybox-static");
    }
    Ok(())
}

/// Whether an ELF64 file has a PT_INTERP program header (= dynamic).
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| {
        elf.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()) as usize)
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..phnum).any(|i| {
        let off = phoff + i * phentsize;
        elf.get(off..off + 4)
            .is_some_and(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) == PT_INTERP)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busybox_static_has_no_interpreter() {
        assert!(!has_interpreter(&fs::read(BUSYBOX).unwrap()));
    }

    #[test]
    fn dynamic_binary_has_interpreter() {
        assert!(has_interpreter(&fs::read("/bin/ls").unwrap()));
    }
}
