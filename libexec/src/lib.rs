//! Shared pieces of the libexec helpers: the protocol between the runtime and the
//! static container init, and the decoding of liblxc's exit statuses.
//!
//! Kept free of liblxc and of heavy dependencies: the init links it statically.

pub mod channel;
pub mod hooks;
pub mod process;
pub mod proto;
pub mod status;
