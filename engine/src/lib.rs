//! The netctl container engine, as a library: images and their layers, containers, volumes,
//! networks (CNI conflists, attached only through the CNI client, exactly as another runtime
//! would), the per-container monitor and the container's two-stage init. It knows no command
//! line and prints nothing: a front end (the `netctl` CLI, a daemon) calls it and shows what
//! it returns; every failure is an [`Error`] whose variant says what kind it is.
//!
//! The engine runs part of itself as separate processes (the monitor and the init stages)
//! by executing the binary that links it with the arguments of [`runtime::Internal`]; such a
//! binary calls [`internal::run_internal`] first.

pub mod archive;
pub use netctl_cni::clock;
pub mod changes;
pub mod cluster;
pub mod commit;
pub mod container;
pub mod copy;
pub mod distribution;
pub mod engine;
pub mod error;
pub mod etc;
pub mod events;
pub mod filter;
pub mod gzip;
pub mod health;
pub mod ids;
pub mod image;
pub mod instructions;
pub mod internal;
pub mod layer;
pub mod lifecycle;
pub mod load;
pub mod lock;
pub mod logs;
pub mod manage;
pub mod netattach;
pub mod network;
pub mod proxy;
pub mod pull;
pub mod push;
pub mod restart;
pub mod routes;
pub mod runtime;
pub mod save;
pub mod seam;
#[cfg(test)]
mod seam_tests;
pub mod spec;
pub mod stats;
pub mod summary;
pub mod system;
pub mod tarsplit;
pub mod view;
pub mod volume;
pub mod watch;
pub mod when;

pub use container::{Container, ContainerStore};
pub use engine::{
    AddressPool, Engine, EngineConfig, DEFAULT_PLUGIN_DEADLINE, DEFAULT_REGISTRY_DEADLINE,
    DEFAULT_ROOT, DEFAULT_RUN_DIR,
};
pub use error::{Error, Kind, Result};
