//! Address management for container networks: ranges built from Docker's `--subnet`,
//! `--ip-range` and `--gateway` (or host-local's `ranges`), an [`Allocator`] that hands out the
//! next free address after the last one (or the lowest free one, as Docker does), and a
//! [`Store`] that keeps every allocation crash-safe under a file lock.

mod allocator;
mod config;
mod error;
#[cfg(test)]
mod memstore;
#[cfg(test)]
mod model_tests;
pub mod plugin;
mod range;
mod store;

pub use allocator::{Allocator, Lease};
pub use config::{AllocationOrder, IpamConfig, RangeConfig};
pub use error::{IpamError, CODE_ADDRESS_IN_USE, CODE_EXHAUSTED};
pub use range::{Range, RangeSet, SubnetUsage};
pub use store::{FileStore, Owner, Store, Txn};
