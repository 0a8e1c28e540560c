//! The error type of the allocator and its store.

use std::net::IpAddr;

use netctl_cni::{Error, ErrorCode};

/// What went wrong while allocating, releasing or reading addresses.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// The IPAM configuration is wrong; the message says what and how to fix it.
    #[error("invalid IPAM configuration: {0}")]
    InvalidConfig(String),
    /// Every address of a range set is taken.
    #[error("no free address left on network {network} in {ranges}: release addresses or widen the range")]
    Exhausted {
        /// The network name.
        network: String,
        /// The ranges that were searched.
        ranges: String,
    },
    /// A requested address belongs to another attachment.
    #[error("address {ip} on network {network} is already in use by container {owner}")]
    AddressInUse {
        /// The address.
        ip: IpAddr,
        /// The network name.
        network: String,
        /// Who holds it (`container:ifname`).
        owner: String,
    },
    /// A requested address cannot be handed out on this network.
    #[error("requested address {ip} cannot be used on network {network}: {why}")]
    BadRequest {
        /// The address.
        ip: IpAddr,
        /// The network name.
        network: String,
        /// Why not.
        why: String,
    },
    /// Another host changed the network's allocations between this one's read and its
    /// commit (a distributed store's compare-and-swap failed): try again.
    #[error("the allocations of network {0} changed meanwhile: try again")]
    Conflict(String),
    /// A distributed store could not be reached.
    #[error("IPAM store unreachable: {0}")]
    Unreachable(String),
    /// The store could not be read or written.
    #[error("IPAM store {path}: {source}")]
    Store {
        /// The file or folder.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl IpamError {
    /// A store error on `path`.
    pub(crate) fn store(path: &std::path::Path, source: std::io::Error) -> Self {
        IpamError::Store {
            path: path.display().to_string(),
            source,
        }
    }
}

/// CNI code for an exhausted pool.
pub const CODE_EXHAUSTED: u32 = 100;
/// CNI code for a requested address held by another container.
pub const CODE_ADDRESS_IN_USE: u32 = 101;

impl From<IpamError> for Error {
    fn from(e: IpamError) -> Self {
        let code = match &e {
            IpamError::InvalidConfig(_) | IpamError::BadRequest { .. } => ErrorCode::InvalidConfig,
            IpamError::Exhausted { .. } => ErrorCode::Plugin(CODE_EXHAUSTED),
            IpamError::AddressInUse { .. } => ErrorCode::Plugin(CODE_ADDRESS_IN_USE),
            IpamError::Store { .. } => ErrorCode::Io,
            IpamError::Conflict(_) | IpamError::Unreachable(_) => ErrorCode::TryAgainLater,
        };
        Error::new(code, e.to_string())
    }
}
