//! Per-container lock: commands on the same container run one after another.
//!
//! `flock` on `<root>/.<id>.lock`, beside the runtime dir (which `create` makes
//! itself and `delete` removes). `delete` removes the lock file while holding it;
//! a waiter that then gets the lock on the removed file notices (the path no
//! longer names the file it locked) and locks again.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};

pub struct Lock {
    path: PathBuf,
    /// The runtime dir: if there is no container when the lock is released,
    /// its lock file goes too (`kill nope` must not leave `.nope.lock`).
    rundir: PathBuf,
    _file: Flock<File>,
}

pub fn path(root: &Path, id: &str) -> PathBuf {
    root.join(format!(".{id}.lock"))
}

impl Lock {
    /// Block until the lock of container `id` is ours.
    pub fn acquire(root: &Path, id: &str) -> Result<Lock> {
        std::fs::create_dir_all(root).with_context(|| format!("create {}", root.display()))?;
        let path = path(root, id);
        loop {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("open lock {}", path.display()))?;
            let locked = Flock::lock(f, FlockArg::LockExclusive)
                .map_err(|(_, e)| e)
                .with_context(|| format!("lock {}", path.display()))?;
            let held = locked.metadata().context("stat lock")?;
            match std::fs::metadata(&path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                    return Ok(Lock {
                        path,
                        rundir: root.join(id),
                        _file: locked,
                    })
                }
                // Removed (or replaced) by a delete while we waited: lock anew.
                _ => continue,
            }
        }
    }

    /// Remove the lock file (by `delete`), still holding the lock until drop.
    pub fn remove(&self) {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                log::warn!("remove {}: {e}", self.path.display())
            }
            _ => {}
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let pending = self.rundir.with_file_name(format!(
            ".{}.create.json",
            self.rundir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
        ));
        if !self.rundir.exists() && !pending.exists() {
            self.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_lock_is_taken_anew() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("x")).unwrap();
        let a = Lock::acquire(d.path(), "x").unwrap();
        let p = path(d.path(), "x");
        assert!(p.exists());
        // A second locker waits until `a` is dropped; `a` removes the file first.
        let root = d.path().to_path_buf();
        let t = std::thread::spawn(move || {
            let b = Lock::acquire(&root, "x").unwrap();
            std::fs::metadata(&b.path).unwrap().ino()
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!t.is_finished(), "the second lock must wait");
        let old = std::fs::metadata(&p).unwrap().ino();
        a.remove();
        drop(a);
        let ino = t.join().unwrap();
        assert!(p.exists());
        // Same inode numbers may be reused; what matters is that the file exists
        // and is the one locked (checked inside acquire).
        let _ = (old, ino);
    }

    #[test]
    fn no_lock_file_without_a_container() {
        let d = tempfile::tempdir().unwrap();
        drop(Lock::acquire(d.path(), "nope").unwrap());
        assert!(!path(d.path(), "nope").exists());
    }
}
