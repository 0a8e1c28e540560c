//! The registry crate's one error type.

/// Everything references and registry calls fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A reference Docker would refuse.
    #[error("{0}")]
    Reference(String),
    /// A malformed digest.
    #[error("{0}")]
    Digest(String),
    /// The registry refused the credentials, or wants some.
    #[error("{0}")]
    Unauthorized(String),
    /// The repository, tag or blob does not exist (or is hidden from these credentials).
    #[error("{0}")]
    NotFound(String),
    /// The registry answered something netctl will not take: a bad manifest, a digest or
    /// size mismatch, a schema 1 image, an answer over a bound.
    #[error("{0}")]
    Refused(String),
    /// The registry could not be reached or broke off.
    #[error("{0}")]
    Unreachable(String),
    /// A local file (credentials, certificates) could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An I/O error with what was being done.
pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
