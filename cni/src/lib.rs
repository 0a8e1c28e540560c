//! The CNI wire format (spec 1.1.0 and the older versions a runtime may ask for), the plugin
//! skeleton that turns `CNI_*` + stdin into a typed call, and the runtime-side client that
//! execs plugins for a network configuration list.
//!
//! This crate is the one place that knows the bytes that cross the process boundary, so every
//! plugin, the runtime and the tests agree on them.

pub mod clock;
pub mod error;
pub mod fsutil;
pub mod invoke;
pub mod process;
pub mod skel;
pub mod types;
pub mod validate;
pub mod version;

pub use error::{Error, ErrorCode};
pub use skel::{Command, Ctx, Plugin};
pub use types::{
    Attachment, Dns, Interface, IpConfig, NetConf, NetConfList, Route, StateDir, Success,
};
pub use version::SpecVersion;
