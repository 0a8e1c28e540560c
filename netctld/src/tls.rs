//! TCP with TLS and client certificates, as dockerd's `--tlsverify`: only a client holding a
//! certificate signed by `--tlscacert` is answered.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// The server side of `--tlsverify --tlscacert CA --tlscert CERT --tlskey KEY`.
pub fn server_config(
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    // ring, as the etcd client already builds it: aws-lc-rs (post-quantum key exchange)
    // would add a C library build of minutes for a socket that faces the host's own clients.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in certificates(ca)? {
        roots
            .add(c)
            .with_context(|| format!("--tlscacert {}: not a usable CA", ca.display()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .with_context(|| format!("--tlscacert {}", ca.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("--tlskey {}: no PEM private key read", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certificates(cert)?, key)
        .with_context(|| {
            format!(
                "--tlscert {} and --tlskey do not make a usable pair",
                cert.display()
            )
        })?;
    Ok(Arc::new(config))
}

/// Every PEM certificate in `path`; at least one.
fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("read the certificates in {}", path.display()))?;
    if certs.is_empty() {
        bail!("{}: no PEM certificate in it", path.display());
    }
    Ok(certs)
}
