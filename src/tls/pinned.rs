//! Server certificates checked against the system's CAs and the manifest's
//! `caCertificate`, where a certificate given there is also accepted as the server's own.
//!
//! The most common self-signed certificate (`openssl req -x509`, which OpenSSL 3 marks
//! `CA:TRUE`) cannot be its own trust anchor under WebPKI rules (`CaUsedAsEndEntity`), yet
//! "trust exactly this certificate" is what an admin means by giving it. A server whose
//! certificate is byte for byte one of those given is accepted; every other one is verified
//! as usual (chain, name, validity). The handshake's signatures are verified in both cases,
//! so only the holder of the pinned certificate's key gets through.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

#[derive(Debug)]
pub struct Verifier {
    pinned: Vec<CertificateDer<'static>>,
    /// `None` when there is no trust anchor at all (a container without system CAs): then
    /// only a pinned certificate is accepted.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl Verifier {
    pub fn new(
        roots: rustls::RootCertStore,
        pinned: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> Verifier {
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .ok();
        Verifier {
            pinned,
            webpki,
            provider,
        }
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.webpki {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The TLS error of a server that answered the handshake in plain text (a port that speaks
/// IMAP or SMTP first).
pub fn answered_in_plain_text(error: &str) -> bool {
    error.contains("corrupt message") || error.contains("InvalidContentType")
}

/// What a TLS failure means for the person who has to fix it.
pub fn advice(error: &str) -> &'static str {
    if error.contains("UnknownIssuer") {
        "the server's certificate is not signed by a CA this machine trusts: give that CA's certificate (or, for a self-signed certificate, the certificate itself) as caCertificate"
    } else if error.contains("CaUsedAsEndEntity") {
        "the server presents a CA certificate as its own: give exactly that certificate as caCertificate"
    } else if error.contains("NotValidForName") {
        "the certificate was issued for another name: connect by a name it lists (host), or fix the server's certificate"
    } else if error.contains("Expired") {
        "the server's certificate has expired"
    } else if error.contains("NotValidYet") {
        "the server's certificate is not valid yet (check both clocks)"
    } else if answered_in_plain_text(error) {
        "the server did not answer in TLS: if this port speaks plain IMAP first (usually 143), use `tls: starttls`"
    } else {
        ""
    }
}
