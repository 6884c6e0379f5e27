//! TLS as every client of mailshift's speaks it (IMAP, ManageSieve, CardDAV/CalDAV, token
//! endpoints, PostgreSQL): the system's roots, plus a private CA or the server's own certificate when the
//! manifest gives one ([`pinned`]). Verification is never off.

pub mod pinned;

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, pem::PemObject};
use tokio_rustls::TlsConnector;

/// A client trusting the system's roots plus `ca_pem`; the error says what is wrong with it.
pub fn connector(ca_pem: Option<&[u8]>) -> Result<TlsConnector, String> {
    client_config(ca_pem).map(|c| TlsConnector::from(Arc::new(c)))
}

/// The same trust as [`connector`], as a rustls configuration (for clients that bring their
/// own connector, like PostgreSQL's).
pub fn client_config(ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // One unparsable system certificate must not make every server unreachable.
        let _ = roots.add(cert);
    }
    let mut pinned = Vec::new();
    if let Some(pem) = ca_pem {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("not PEM: {e}"))?;
        if certs.is_empty() {
            return Err("no certificate in the PEM data".into());
        }
        for c in certs {
            // A certificate that cannot anchor a chain may still be the server's own.
            let _ = roots.add(c.clone());
            pinned.push(c);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = pinned::Verifier::new(roots, pinned, provider.clone());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}
