//! `lxcri features`: runtime-core's features document, with the versions of
//! this binary and of the liblxc it links.

use serde_json::{json, Value};

pub fn features() -> Value {
    runtime_core::features::features(json!({
        "io.github.lxc.lxcri.version": env!("CARGO_PKG_VERSION"),
        "org.linuxcontainers.lxc.version": lxcri_ffi::version(),
    }))
}
