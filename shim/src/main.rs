//! `containerd-shim-lxcri-v2`: the containerd shim v2 for runtime_type
//! `io.containerd.lxcri.v2`.

mod error;
mod io;
mod metrics;
mod mount;
mod oom;
mod options;
mod service;
mod state;
mod task;

/// The runtime id containerd knows this shim by.
pub const RUNTIME_ID: &str = "io.containerd.lxcri.v2";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args
        .iter()
        .any(|a| a == "-v" || a == "--version" || a == "-version")
    {
        println!("{}:", args[0]);
        println!("  Version: {}", env!("CARGO_PKG_VERSION"));
        println!("  liblxc: linked by the lxcri-start helper");
        return;
    }
    if args.iter().any(|a| a == "-info") {
        // containerd 2.x asks for the runtime's info (RuntimeInfo protobuf on
        // stdout); the runtime options it writes to stdin are not needed.
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
        match runtime_info() {
            Ok(bytes) => {
                let _ = std::io::Write::write_all(&mut std::io::stdout(), &bytes);
                return;
            }
            Err(e) => {
                eprintln!("{RUNTIME_ID}: {e}");
                std::process::exit(1);
            }
        }
    }
    // One worker thread is plenty for a shim; blocking runtime work goes to the
    // blocking pool.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(containerd_shim::asynchronous::run::<service::Service>(
        RUNTIME_ID, None,
    ));
    // The shim crate removes its socket through the `address` file of its working
    // directory, the bundle of the group's first container, which may be gone.
    if let Some(i) = args.iter().position(|a| a == "-socket") {
        if let Some(address) = args.get(i + 1) {
            service::remove_socket_if_dead(address);
        }
    }
    // Exit right away: a blocking task stuck on a fifo must not keep the shim alive.
    std::process::exit(0);
}

/// The type URL containerd registers for the OCI features document.
const FEATURES_TYPE_URL: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

/// The `-info` answer: name, version and the OCI features.
fn runtime_info() -> Result<Vec<u8>, containerd_shim::protos::protobuf::Error> {
    use containerd_shim::protos::protobuf::well_known_types::any::Any;
    use containerd_shim::protos::protobuf::Message;
    use containerd_shim::protos::types::introspection::{RuntimeInfo, RuntimeVersion};
    let info = RuntimeInfo {
        name: "containerd-shim-lxcri-v2".to_string(),
        version: Some(RuntimeVersion {
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
        .into(),
        features: Some(Any {
            type_url: FEATURES_TYPE_URL.to_string(),
            value: runtime_core::features::features(serde_json::json!({
                "io.github.lxc.lxcri.version": env!("CARGO_PKG_VERSION"),
            }))
            .to_string()
            .into_bytes(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    info.write_to_bytes()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use containerd_shim::protos::shim_async::{create_task, Task};

    struct Nop;
    impl Task for Nop {}

    #[test]
    fn info_decodes() {
        use containerd_shim::protos::protobuf::Message;
        use containerd_shim::protos::types::introspection::RuntimeInfo;
        let info = RuntimeInfo::parse_from_bytes(&super::runtime_info().unwrap()).unwrap();
        assert_eq!(info.name, "containerd-shim-lxcri-v2");
        assert_eq!(info.version.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(info.features.type_url, super::FEATURES_TYPE_URL);
        let f: serde_json::Value = serde_json::from_slice(&info.features.value).unwrap();
        let opts = f["mountOptions"].as_array().unwrap();
        assert!(opts.iter().any(|o| o == "rro"));
        assert_eq!(f["linux"]["mountExtensions"]["idmap"]["enabled"], true);
    }

    /// containerd 1.6 speaks task API v2 only: the pinned shim crate must serve it.
    #[test]
    fn serves_task_api_v2() {
        let services = create_task(Arc::new(Nop));
        let names: Vec<&String> = services.keys().collect();
        assert_eq!(names, vec!["containerd.task.v2.Task"]);
    }
}
