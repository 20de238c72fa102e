//! Safe wrapper over liblxc (through the bindgen-generated `lxc-sys`).
//!
//! Only the small subset lxcri needs is wrapped. Every call that makes liblxc fork
//! (`start`, `attach`) must only be made from a single-threaded helper process
//! (see `docs/architecture.md`): this crate does not enforce that, its callers do.

use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::path::Path;
use std::ptr::NonNull;

/// Errors of the liblxc wrapper.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("string for liblxc contains a NUL byte: {0:?}")]
    Nul(String),
    #[error("lxc_container_new({name}, {lxcpath}) failed")]
    New { name: String, lxcpath: String },
    #[error("liblxc does not provide {0}")]
    Missing(&'static str),
    #[error("liblxc {call} failed")]
    Call { call: &'static str },
    #[error("liblxc rejected config item {key}")]
    ConfigItem { key: String },
    #[error("liblxc could not load config file {0}")]
    LoadConfig(String),
}

pub type Result<T> = std::result::Result<T, Error>;

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Nul(s.to_string()))
}

/// The liblxc version string, e.g. "5.0.2".
pub fn version() -> String {
    // SAFETY: lxc_get_version returns a pointer to a static NUL-terminated string (or NULL).
    let p = unsafe { lxc_sys::lxc_get_version() };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: p is non-null and points to a static C string owned by liblxc.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// A `struct lxc_container` handle; released with `lxc_container_put` on drop.
///
/// Not `Send`: liblxc handles are used from one thread only.
pub struct Container {
    ptr: NonNull<lxc_sys::lxc_container>,
}

macro_rules! method {
    ($self:ident, $name:ident) => {{
        // SAFETY: self.ptr is a valid container returned by lxc_container_new and not yet put.
        let c = unsafe { $self.ptr.as_ref() };
        c.$name.ok_or(Error::Missing(stringify!($name)))?
    }};
}

impl Container {
    /// `lxc_container_new(name, lxcpath)`.
    pub fn new(name: &str, lxcpath: &Path) -> Result<Self> {
        let lxcpath_s = lxcpath.to_string_lossy().into_owned();
        let cname = cstring(name)?;
        let cpath = cstring(&lxcpath_s)?;
        // SAFETY: both arguments are valid NUL-terminated strings that outlive the call;
        // liblxc copies them.
        let ptr = unsafe { lxc_sys::lxc_container_new(cname.as_ptr(), cpath.as_ptr()) };
        NonNull::new(ptr)
            .map(|ptr| Container { ptr })
            .ok_or(Error::New {
                name: name.to_string(),
                lxcpath: lxcpath_s,
            })
    }

    fn raw(&self) -> *mut lxc_sys::lxc_container {
        self.ptr.as_ptr()
    }

    /// Drop all config items (the handle starts from liblxc's defaults otherwise).
    pub fn clear_config(&mut self) -> Result<()> {
        let f = method!(self, clear_config);
        // SAFETY: valid container pointer; clear_config takes only the container.
        unsafe { f(self.raw()) };
        Ok(())
    }

    /// Load a config file (lxc.container.conf format).
    pub fn load_config(&mut self, path: &Path) -> Result<()> {
        let f = method!(self, load_config);
        let p = path.to_string_lossy().into_owned();
        let cp = cstring(&p)?;
        // SAFETY: valid container pointer and NUL-terminated path that outlives the call.
        if unsafe { f(self.raw(), cp.as_ptr()) } {
            Ok(())
        } else {
            Err(Error::LoadConfig(p))
        }
    }

    /// Set one config item.
    pub fn set_config_item(&mut self, key: &str, value: &str) -> Result<()> {
        let f = method!(self, set_config_item);
        let k = cstring(key)?;
        let v = cstring(value)?;
        // SAFETY: valid container pointer and NUL-terminated strings that outlive the call.
        if unsafe { f(self.raw(), k.as_ptr(), v.as_ptr()) } {
            Ok(())
        } else {
            Err(Error::ConfigItem {
                key: key.to_string(),
            })
        }
    }

    /// Whether `start` daemonizes (lxcri never does: the exit status would be lost).
    pub fn want_daemonize(&mut self, on: bool) -> Result<()> {
        let f = method!(self, want_daemonize);
        // SAFETY: valid container pointer.
        if unsafe { f(self.raw(), on) } {
            Ok(())
        } else {
            Err(Error::Call {
                call: "want_daemonize",
            })
        }
    }

    /// Whether liblxc closes inherited file descriptors before starting init.
    pub fn want_close_all_fds(&mut self, on: bool) -> Result<()> {
        let f = method!(self, want_close_all_fds);
        // SAFETY: valid container pointer.
        if unsafe { f(self.raw(), on) } {
            Ok(())
        } else {
            Err(Error::Call {
                call: "want_close_all_fds",
            })
        }
    }

    /// Start the container in the foreground with `lxc.init.cmd` as its init.
    ///
    /// Blocks until the container has stopped when not daemonized. Forks: call only
    /// from a single-threaded process.
    pub fn start(&mut self) -> Result<bool> {
        let f = method!(self, start);
        // SAFETY: valid container pointer; useinit=0 and argv=NULL make liblxc use
        // lxc.init.cmd from the loaded config.
        Ok(unsafe { f(self.raw(), 0, std::ptr::null::<*const c_char>() as _) })
    }

    /// liblxc's `error_num`: after a foreground start, the init's wait status.
    pub fn error_num(&self) -> i32 {
        // SAFETY: valid container pointer; reading a plain int field.
        unsafe { self.ptr.as_ref() }.error_num
    }

    /// The container state name as liblxc reports it ("STOPPED", "RUNNING", ...).
    pub fn state(&self) -> Result<String> {
        let f = method!(self, state);
        // SAFETY: valid container pointer; state returns a static string or NULL.
        let p = unsafe { f(self.raw()) };
        if p.is_null() {
            return Err(Error::Call { call: "state" });
        }
        // SAFETY: p is non-null and points to a static C string owned by liblxc.
        Ok(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }

    /// The host pid of the container's init, or None when not running.
    pub fn init_pid(&self) -> Result<Option<i32>> {
        let f = method!(self, init_pid);
        // SAFETY: valid container pointer.
        let pid = unsafe { f(self.raw()) };
        Ok(if pid > 0 { Some(pid) } else { None })
    }
}

/// The trampoline liblxc calls in the attached child: `payload` points to the
/// caller's `&mut dyn FnMut() -> i32`.
unsafe extern "C" fn attach_trampoline(payload: *mut std::os::raw::c_void) -> std::os::raw::c_int {
    // SAFETY: `attach` passes a pointer to a live `&mut dyn FnMut() -> i32`; the child
    // runs in a copy of the caller's address space, where it is still valid.
    let f = unsafe { &mut *(payload as *mut &mut dyn FnMut() -> i32) };
    f()
}

impl Container {
    /// Run `f` in a new process attached to every namespace of the running
    /// container and moved into its cgroup, as root (uid/gid 0 of the container),
    /// with stdio 0-2 of the caller; `f`'s return value is the process's exit code
    /// (it normally execs). Returns the process's host pid: a child of the caller.
    ///
    /// Forks: call only from a single-threaded process.
    pub fn attach(&mut self, f: &mut dyn FnMut() -> i32) -> Result<i32> {
        let attach = method!(self, attach);
        let mut opts = lxc_sys::lxc_attach_options_t {
            attach_flags: lxc_sys::LXC_ATTACH_MOVE_TO_CGROUP as i32,
            namespaces: -1,
            personality: -1,
            initial_cwd: std::ptr::null_mut(),
            // Explicitly root: with -1 liblxc would take the init's current ids, and
            // the process setup (groups, user, capabilities) needs root.
            uid: 0,
            gid: 0,
            env_policy: lxc_sys::lxc_attach_env_policy_t_LXC_ATTACH_KEEP_ENV,
            extra_env_vars: std::ptr::null_mut(),
            extra_keep_env: std::ptr::null_mut(),
            stdin_fd: 0,
            stdout_fd: 1,
            stderr_fd: 2,
            log_fd: -libc::EBADF,
            lsm_label: std::ptr::null_mut(),
            groups: lxc_sys::lxc_groups_t {
                size: 0,
                list: std::ptr::null_mut(),
            },
        };
        let mut payload: &mut dyn FnMut() -> i32 = f;
        let mut pid: lxc_sys::pid_t = -1;
        // SAFETY: valid container pointer; the options and payload outlive the call
        // (liblxc forks and uses them in the children only).
        let r = unsafe {
            attach(
                self.raw(),
                Some(attach_trampoline),
                &mut payload as *mut &mut dyn FnMut() -> i32 as *mut std::os::raw::c_void,
                &mut opts,
                &mut pid,
            )
        };
        if r < 0 || pid <= 0 {
            return Err(Error::Call { call: "attach" });
        }
        Ok(pid)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // SAFETY: ptr came from lxc_container_new and is put exactly once here.
        unsafe { lxc_sys::lxc_container_put(self.raw()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liblxc_is_version_5() {
        assert!(version().starts_with("5."), "liblxc version {}", version());
    }

    #[test]
    fn config_items_roundtrip_validation() {
        let dir = std::env::temp_dir();
        let mut c = Container::new("lxcri-ffi-test", &dir).unwrap();
        c.clear_config().unwrap();
        c.set_config_item("lxc.uts.name", "x").unwrap();
        assert!(c.set_config_item("lxc.no.such.key", "x").is_err());
        assert!(matches!(
            c.set_config_item("lxc.uts.name", "a\0b"),
            Err(Error::Nul(_))
        ));
        assert_eq!(c.state().unwrap(), "STOPPED");
        assert_eq!(c.init_pid().unwrap(), None);
    }
}
