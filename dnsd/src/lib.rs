//! DNS for container networks. [`records`] is the store that the `netctl-dns` plugin writes
//! and the server reads (one file per attachment); [`server`] is `netctl-dnsd`, which
//! answers container names, short IDs and aliases with round-robin A/AAAA records, PTR for
//! container addresses, and forwards everything else upstream.

pub mod records;
#[cfg(feature = "server")]
pub mod server;

/// What went wrong in the record store or the server.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, on which path.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A record file could not be read.
    #[error("record {path} is not valid: {source}")]
    BadRecord {
        /// The file.
        path: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// Talking to the server failed.
    #[error("the DNS server did not answer on {0}: is netctl-dnsd running?")]
    NoServer(String),
}

impl DnsError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        DnsError::Io {
            what: what.into(),
            source,
        }
    }
}

impl From<DnsError> for netctl_cni::Error {
    fn from(e: DnsError) -> Self {
        let code = match e {
            DnsError::BadRecord { .. } => netctl_cni::ErrorCode::Decoding,
            _ => netctl_cni::ErrorCode::Io,
        };
        netctl_cni::Error::new(code, e.to_string())
    }
}
