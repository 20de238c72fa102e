//! Running OCI hooks: each hook gets the container's state JSON on stdin, exactly
//! the env of its spec, and its timeout; a failure reports the hook's output, like
//! runc's "error running <phase> hook #<n>".

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::proto::HookSpec;

/// Run `hooks` in order; the first failure stops the phase. With `fds`, hook `i`
/// is executed from the open file `fds[i]` (resolved elsewhere), not its path.
pub fn run_hooks(
    phase: &str,
    hooks: &[HookSpec],
    state: &str,
    fds: &[OwnedFd],
) -> Result<(), String> {
    for (i, h) in hooks.iter().enumerate() {
        let fd = fds.get(i).map(|f| f.as_raw_fd());
        run_hook(h, state, fd).map_err(|e| format!("error running {phase} hook #{i}: {e}"))?;
    }
    Ok(())
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn run_hook(h: &HookSpec, state: &str, fd: Option<RawFd>) -> Result<(), String> {
    let exe = match fd {
        Some(fd) => format!("/proc/self/fd/{fd}"),
        None => h.path.clone(),
    };
    let mut cmd = Command::new(&exe);
    if let Some(arg0) = h.args.first() {
        cmd.arg0(arg0);
    }
    cmd.args(h.args.iter().skip(1))
        .env_clear()
        .envs(h.env.iter().filter_map(|kv| kv.split_once('=')))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a timeout kills whatever the hook started too.
        .process_group(0);
    if let Some(fd) = fd {
        // SAFETY: only fcntl on an fd this process owns, async-signal-safe. A script
        // run through /proc/self/fd/N needs N open in the interpreter.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().map_err(|e| format!("exec {}: {e}", h.path))?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine (EPIPE).
        let _ = stdin.write_all(state.as_bytes());
    }
    let deadline = h
        .timeout
        .map(|t| Instant::now() + Duration::from_secs(u64::from(t)));
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) => {}
            Err(e) => break Err(format!("wait: {e}")),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            // SAFETY: kill(2) of the hook's own process group (it leads it).
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            break Err(format!(
                "timeout after {} seconds",
                h.timeout.unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{s}, stdout: {out}, stderr: {err}")),
        Err(e) => Err(format!("{e}, stdout: {out}, stderr: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(args: &[&str], timeout: Option<u32>) -> HookSpec {
        HookSpec {
            path: "/bin/sh".into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["A=b".into()],
            timeout,
        }
    }

    #[test]
    fn state_on_stdin_and_env() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let script = format!("cat > {}; echo \"$A\" >> {}", out.display(), out.display());
        run_hooks(
            "prestart",
            &[hook(&["sh", "-c", &script], None)],
            "{\"id\":\"x\"}",
            &[],
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"id\":\"x\"}b\n");
    }

    #[test]
    fn failure_names_the_hook_and_its_output() {
        let ok = hook(&["sh", "-c", "true"], None);
        let bad = hook(&["sh", "-c", "echo oops >&2; exit 3"], None);
        let e = run_hooks("poststart", &[ok, bad], "{}", &[]).unwrap_err();
        assert!(
            e.starts_with("error running poststart hook #1: exit status: 3"),
            "{e}"
        );
        assert!(e.contains("stderr: oops"), "{e}");
    }

    #[test]
    fn timeout_kills_the_hook() {
        let t = Instant::now();
        let e = run_hooks(
            "createRuntime",
            &[hook(&["sh", "-c", "sleep 10"], Some(1))],
            "{}",
            &[],
        )
        .unwrap_err();
        assert!(e.contains("timeout after 1 seconds"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn missing_executable() {
        let mut h = hook(&["nope"], None);
        h.path = "/nonexistent/hook".into();
        let e = run_hooks("poststop", &[h], "{}", &[]).unwrap_err();
        assert!(e.contains("/nonexistent/hook"), "{e}");
    }
}
