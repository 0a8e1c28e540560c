//! The error type of this crate.

use std::io;
use std::path::PathBuf;

/// What went wrong with a namespace or a netlink operation.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A namespace file could not be opened.
    #[error("failed to open network namespace {path}: {source}")]
    OpenNs {
        /// The namespace path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Switching into a namespace, or creating one, failed.
    #[error("failed to {what} network namespace {path}: {source}")]
    Namespace {
        /// What was being done ("enter", "create", "bind-mount" ...).
        what: &'static str,
        /// The namespace path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The helper thread that ran inside a namespace panicked.
    #[error("the thread working inside network namespace {0} panicked")]
    ThreadPanicked(PathBuf),
    /// A netlink request failed.
    #[error("{what}: {source}")]
    Netlink {
        /// The operation, with the object it was on.
        what: String,
        /// The kernel's answer.
        source: io::Error,
    },
    /// No link has that name.
    #[error("no network interface named {0}")]
    LinkNotFound(String),
}

impl NetError {
    /// Whether the error means the object is already gone (a namespace, a link, an address):
    /// what DEL treats as success.
    pub fn is_not_found(&self) -> bool {
        // ENODEV (no such link), ESRCH (no such route), EADDRNOTAVAIL (no such address).
        let gone = |e: &io::Error| {
            matches!(e.raw_os_error(), Some(19 | 3 | 99)) || e.kind() == io::ErrorKind::NotFound
        };
        match self {
            NetError::OpenNs { source, .. } => source.kind() == io::ErrorKind::NotFound,
            NetError::Netlink { source, .. } => gone(source),
            NetError::LinkNotFound(_) => true,
            _ => false,
        }
    }
}

impl From<NetError> for netctl_cni::Error {
    /// A namespace that cannot be opened is a bad `CNI_NETNS` (4); anything the kernel
    /// refused is an I/O failure (5).
    fn from(e: NetError) -> Self {
        let code = match e {
            NetError::OpenNs { .. } => netctl_cni::ErrorCode::InvalidEnvironment,
            _ => netctl_cni::ErrorCode::Io,
        };
        netctl_cni::Error::new(code, e.to_string())
    }
}
