//! Image references as Docker reads them, and a client of the OCI distribution protocol:
//! manifests, blobs, auth challenges, stored credentials and per-registry TLS.

pub mod blob;
pub mod client;
pub mod credentials;
pub mod digest;
pub mod error;
pub mod helper;
pub mod manifest;
pub mod reference;

pub use blob::VerifiedBlob;
pub use client::{Options, Registry};
pub use credentials::{CredentialStore, Credentials};
pub use digest::Digest;
pub use error::{Error, Result};
pub use reference::Reference;
