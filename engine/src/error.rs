//! The engine's one error type. Each variant says what kind of failure it is, so a front end
//! maps it (the CLI to Docker's exit codes: 127 for a missing command, 126 for one that
//! cannot run, 125 for the rest of `run`) without reading the message.

use std::fmt;

/// What kind of object a name or ID was looked up as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A container.
    Container,
    /// An image.
    Image,
    /// A volume.
    Volume,
    /// A network.
    Network,
    /// A path in a container (`CONTAINER:PATH`).
    Path,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Container => "container",
            Kind::Image => "image",
            Kind::Volume => "volume",
            Kind::Network => "network",
            Kind::Path => "container:path",
        })
    }
}

/// Everything the engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No object has that name or ID.
    #[error("No such {kind}: {key}")]
    NotFound {
        /// What was looked for.
        kind: Kind,
        /// The name or ID given.
        key: String,
    },
    /// An ID prefix matches several objects.
    #[error("{kind} ID prefix {key:?} is ambiguous: {count} match; give more characters")]
    Ambiguous {
        /// What was looked for.
        kind: Kind,
        /// The prefix given.
        key: String,
        /// How many objects it matches.
        count: usize,
    },
    /// The request is wrong in itself: a bad name, flag value or spec.
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with what exists: a name in use, an object still used.
    #[error("{0}")]
    Conflict(String),
    /// The object is not in a state that allows this (not running, already paused ...).
    #[error("{0}")]
    State(String),
    /// The container's command does not exist.
    #[error("exec: {0:?}: executable file not found in $PATH")]
    CommandNotFound(String),
    /// The container's command exists but cannot be run.
    #[error("exec {command:?}: {reason}")]
    CommandNotRunnable {
        /// The command.
        command: String,
        /// Why (permission denied, not an executable ...).
        reason: String,
    },
    /// A network's CNI chain failed.
    #[error("network {network}")]
    Cni {
        /// The network.
        network: String,
        /// What the plugin said.
        #[source]
        source: netctl_cni::Error,
    },
    /// A file, process or system call failed.
    #[error("{what}")]
    Io {
        /// What was being done, on what.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A state file or image document is not the JSON it should be.
    #[error("{what}")]
    Json {
        /// Which file or document.
        what: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A namespace or link operation failed.
    #[error(transparent)]
    Net(#[from] netctl_net::NetError),
    /// An address range or allocation was refused.
    #[error(transparent)]
    Ipam(#[from] netctl_ipam::IpamError),
    /// A DNS record could not be written.
    #[error(transparent)]
    Dns(#[from] netctl_dnsrecords::DnsError),
    /// A registry refused, failed or sent something wrong; or a reference is malformed.
    #[error(transparent)]
    Registry(#[from] netctl_registry::Error),
    /// Another failure, with what was being done when it happened.
    #[error("{what}")]
    Context {
        /// What was being done.
        what: String,
        /// The failure.
        #[source]
        source: Box<Error>,
    },
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The whole story: this failure's message and each cause's, joined by ": ".
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cause = c.source();
        }
        out
    }

    /// The failure itself, under any context added on the way up.
    pub fn root(&self) -> &Error {
        match self {
            Error::Context { source, .. } => source.root(),
            other => other,
        }
    }

    /// This error with what was being done when it happened.
    pub fn context(self, what: impl Into<String>) -> Error {
        Error::Context {
            what: what.into(),
            source: Box::new(self),
        }
    }

    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// Adds what was being done to a failure.
pub trait Context<T> {
    /// The failure, as an engine error saying `what` was being done.
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            what: what(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, rustix::io::Errno> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(std::io::Error::from).ctx(what)
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(std::io::Error::from).ctx(what)
    }
}

impl<T> Context<T> for serde_json::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Json {
            what: what(),
            source,
        })
    }
}

impl<T> Context<T> for Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| e.context(what()))
    }
}

/// Returns early with an [`Error::Invalid`] (a bad request), formatted.
macro_rules! invalid {
    ($($t:tt)*) => {
        return Err($crate::error::Error::Invalid(format!($($t)*)))
    };
}

/// Returns early with an [`Error::Conflict`], formatted.
macro_rules! conflict {
    ($($t:tt)*) => {
        return Err($crate::error::Error::Conflict(format!($($t)*)))
    };
}

/// Returns early with an [`Error::State`], formatted.
macro_rules! state {
    ($($t:tt)*) => {
        return Err($crate::error::Error::State(format!($($t)*)))
    };
}

pub(crate) use {conflict, invalid, state};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_the_root_failure_for_mapping() {
        let e = Error::CommandNotFound("nosuch".into())
            .context("start the container")
            .context("run");
        assert!(matches!(e.root(), Error::CommandNotFound(_)));
        assert_eq!(
            e.report(),
            "run: start the container: exec: \"nosuch\": executable file not found in $PATH"
        );
    }
}
