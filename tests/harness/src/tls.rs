//! Throwaway TLS certificates: a self-signed CA and a server certificate it signs.
//!
//! Clients in tests verify servers against the CA exactly as they would in production
//! (no "accept any certificate" switch is needed). The certificates are made with the
//! `openssl` command-line tool rather than a crate, to keep the build light.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::process::run_ok;

/// PEM files of a generated CA and of a server certificate for `localhost` and `127.0.0.1`.
#[derive(Debug, Clone)]
pub struct Certificates {
    /// The CA certificate: the only trust anchor clients need.
    pub ca_cert: PathBuf,
    /// The CA's private key (kept so tests can sign more certificates if they want).
    pub ca_key: PathBuf,
    /// The server certificate (end entity, not a CA; SANs `DNS:localhost`, `IP:127.0.0.1`).
    pub server_cert: PathBuf,
    /// The server's private key (PKCS#8 PEM).
    pub server_key: PathBuf,
}

impl Certificates {
    /// Generates a fresh CA and server certificate (ECDSA P-256, valid 7 days) in `dir`.
    pub fn generate(dir: &Path) -> Result<Certificates> {
        fs::create_dir_all(dir)?;
        let certs = Certificates {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        };
        let csr = dir.join("server.csr");
        let ext = dir.join("server.ext");
        fs::write(
            &ext,
            "basicConstraints = critical, CA:FALSE\n\
             keyUsage = critical, digitalSignature\n\
             extendedKeyUsage = serverAuth\n\
             subjectKeyIdentifier = hash\n\
             authorityKeyIdentifier = keyid\n\
             subjectAltName = DNS:localhost, IP:127.0.0.1\n",
        )?;
        let openssl = || {
            let mut c = Command::new("openssl");
            // Do not let a system or user openssl.cnf change what we generate.
            c.env("OPENSSL_CONF", "/dev/null");
            c
        };
        run_ok(
            openssl()
                .args([
                    "req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt",
                ])
                .args([
                    "ec_paramgen_curve:P-256",
                    "-subj",
                    "/CN=mailshift test CA",
                    "-days",
                    "7",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                    "-addext",
                    "subjectKeyIdentifier=hash",
                    "-keyout",
                ])
                .arg(&certs.ca_key)
                .arg("-out")
                .arg(&certs.ca_cert),
        )
        .context("generating the test CA")?;
        run_ok(
            openssl()
                .args([
                    "req",
                    "-new",
                    "-nodes",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                ])
                .args(["-subj", "/CN=localhost", "-keyout"])
                .arg(&certs.server_key)
                .arg("-out")
                .arg(&csr),
        )
        .context("generating the server key")?;
        let mut serial = crate::random_bytes(16)?;
        serial[0] &= 0x7f; // positive
        serial[0] |= 0x10; // and without a leading zero byte
        let serial: String = serial.iter().map(|b| format!("{b:02x}")).collect();
        run_ok(
            openssl()
                .args(["x509", "-req", "-days", "7", "-set_serial"])
                .arg(format!("0x{serial}"))
                .arg("-in")
                .arg(&csr)
                .arg("-CA")
                .arg(&certs.ca_cert)
                .arg("-CAkey")
                .arg(&certs.ca_key)
                .arg("-extfile")
                .arg(&ext)
                .arg("-out")
                .arg(&certs.server_cert),
        )
        .context("signing the server certificate")?;
        let _ = fs::remove_file(&csr);
        let _ = fs::remove_file(&ext);
        for p in [&certs.ca_cert, &certs.server_cert, &certs.server_key] {
            fs::metadata(p).with_context(|| format!("{} was not created", p.display()))?;
        }
        Ok(certs)
    }
}
