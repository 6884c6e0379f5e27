//! TSIG (RFC 8945): signing requests and verifying the server's signed answers, for every
//! HMAC algorithm of [`TsigAlgorithm`].
//!
//! hickory-proto encodes the TSIG record and the data it covers (`message_tbs`,
//! `signed_bitmessage_to_buf`); its own signer computes only HMAC-SHA256/384/512, so the
//! MACs come from RustCrypto's `hmac` here, which also has SHA-1 and SHA-224.

use base64::Engine as _;
use hickory_proto::op::Message;
use hickory_proto::rr::Name;
use hickory_proto::rr::rdata::tsig::{
    self, TSIG, TsigAlgorithm as WireAlgorithm, TsigError, make_tsig_record,
};
use hmac::{Hmac, Mac};
use zeroize::Zeroizing;

use crate::spec::TsigAlgorithm;

/// Seconds of clock difference accepted between us and the server (BIND's default too).
pub(crate) const FUDGE: u16 = 300;

/// A TSIG key ready to sign: name, algorithm and the decoded secret.
pub(crate) struct TsigKey {
    name: Name,
    algorithm: TsigAlgorithm,
    secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Why a signed answer cannot be trusted, or the TSIG error the server reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verification {
    /// The server refused our signature: `BADSIG`, `BADKEY`, `BADTIME`, ...
    Rejected(String),
    /// The answer carries no valid signature of our key.
    Unverified(String),
}

impl TsigKey {
    /// A key from its name, algorithm and base64 secret (as in BIND's `key` statement).
    pub fn new(name: &str, algorithm: TsigAlgorithm, secret_base64: &str) -> Result<Self, String> {
        let name = Name::from_ascii(name)
            .map(|mut n| {
                n.set_fqdn(true);
                n
            })
            .map_err(|e| format!("the key name is not a domain name: {e}"))?;
        let compact: String = secret_base64
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let secret = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|e| format!("the secret is not base64: {e}"))?;
        if secret.is_empty() {
            return Err("the secret is empty".into());
        }
        Ok(TsigKey {
            name,
            algorithm,
            secret: Zeroizing::new(secret),
        })
    }

    /// The key name as the manifest writes it (no trailing dot).
    pub fn name(&self) -> String {
        crate::address::Domain::of(&self.name.to_ascii()).into()
    }

    pub fn algorithm(&self) -> TsigAlgorithm {
        self.algorithm
    }

    /// Signs `message` as of `now` (seconds since the epoch): appends the TSIG record and
    /// returns the request MAC, which the answer's signature covers.
    pub fn sign(&self, message: &mut Message, now: u64) -> Result<Vec<u8>, String> {
        let pre = TSIG::new(
            wire_algorithm(self.algorithm),
            now,
            FUDGE,
            Vec::new(),
            message.metadata.id,
            None,
            Vec::new(),
        );
        let tbs = tsig::message_tbs(message, &pre, &self.name).map_err(|e| e.to_string())?;
        let mac = self.mac(&tbs);
        message.set_signature(Box::new(make_tsig_record(
            self.name.clone(),
            pre.set_mac(mac.clone()),
        )));
        Ok(mac)
    }

    /// Checks the TSIG record of an answer (`raw`, as received) to a request whose MAC was
    /// `request_mac`: our key and algorithm, a MAC over the answer and the request MAC, a
    /// signing time within the fudge of `now`.
    pub fn verify(&self, raw: &[u8], request_mac: &[u8], now: u64) -> Result<(), Verification> {
        let (tbv, record) = tsig::signed_bitmessage_to_buf(raw, Some(request_mac), true)
            .map_err(|e| Verification::Unverified(format!("no usable TSIG record ({e})")))?;
        let t = &record.data;
        if let Some(error) = t.error {
            return Err(Verification::Rejected(tsig_error_name(error)));
        }
        if record.name != self.name {
            return Err(Verification::Unverified(format!(
                "signed with key {} instead of {}",
                record.name, self.name
            )));
        }
        if t.algorithm != wire_algorithm(self.algorithm) {
            return Err(Verification::Unverified(format!(
                "signed with {} instead of {}",
                t.algorithm,
                wire_algorithm(self.algorithm)
            )));
        }
        if !self.verify_mac(&tbv, &t.mac) {
            return Err(Verification::Unverified("the MAC does not match".into()));
        }
        if now.abs_diff(t.time) > u64::from(t.fudge) {
            return Err(Verification::Unverified(format!(
                "signed at {} but our clock says {now} (fudge {}s)",
                t.time, t.fudge
            )));
        }
        Ok(())
    }

    fn mac(&self, data: &[u8]) -> Vec<u8> {
        macro_rules! mac {
            ($d:ty) => {{
                let mut m = <Hmac<$d> as Mac>::new_from_slice(&self.secret)
                    .expect("HMAC takes keys of any length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }};
        }
        match self.algorithm {
            TsigAlgorithm::HmacSha1 => mac!(sha1::Sha1),
            TsigAlgorithm::HmacSha224 => mac!(sha2::Sha224),
            TsigAlgorithm::HmacSha256 => mac!(sha2::Sha256),
            TsigAlgorithm::HmacSha384 => mac!(sha2::Sha384),
            TsigAlgorithm::HmacSha512 => mac!(sha2::Sha512),
        }
    }

    /// Constant-time comparison; truncated MACs (RFC 8945 5.2.2.1) are not accepted.
    fn verify_mac(&self, data: &[u8], tag: &[u8]) -> bool {
        macro_rules! verify {
            ($d:ty) => {{
                let mut m = <Hmac<$d> as Mac>::new_from_slice(&self.secret)
                    .expect("HMAC takes keys of any length");
                m.update(data);
                m.verify_slice(tag).is_ok()
            }};
        }
        match self.algorithm {
            TsigAlgorithm::HmacSha1 => verify!(sha1::Sha1),
            TsigAlgorithm::HmacSha224 => verify!(sha2::Sha224),
            TsigAlgorithm::HmacSha256 => verify!(sha2::Sha256),
            TsigAlgorithm::HmacSha384 => verify!(sha2::Sha384),
            TsigAlgorithm::HmacSha512 => verify!(sha2::Sha512),
        }
    }
}

/// The algorithm's name on the wire (`hmac-sha256.`, ...).
pub(crate) fn wire_algorithm(a: TsigAlgorithm) -> WireAlgorithm {
    match a {
        TsigAlgorithm::HmacSha1 => WireAlgorithm::HmacSha1,
        TsigAlgorithm::HmacSha224 => WireAlgorithm::HmacSha224,
        TsigAlgorithm::HmacSha256 => WireAlgorithm::HmacSha256,
        TsigAlgorithm::HmacSha384 => WireAlgorithm::HmacSha384,
        TsigAlgorithm::HmacSha512 => WireAlgorithm::HmacSha512,
    }
}

/// The manifest's spelling: `hmac-sha256`.
pub(crate) fn algorithm_name(a: TsigAlgorithm) -> &'static str {
    match a {
        TsigAlgorithm::HmacSha1 => "hmac-sha1",
        TsigAlgorithm::HmacSha224 => "hmac-sha224",
        TsigAlgorithm::HmacSha256 => "hmac-sha256",
        TsigAlgorithm::HmacSha384 => "hmac-sha384",
        TsigAlgorithm::HmacSha512 => "hmac-sha512",
    }
}

/// RFC 8945's mnemonic with what it usually means.
pub(crate) fn tsig_error_name(e: TsigError) -> String {
    match e {
        TsigError::BadSig => "BADSIG (the secret does not match the server's key)".into(),
        TsigError::BadKey => "BADKEY (the server knows no key of this name and algorithm)".into(),
        TsigError::BadTime => "BADTIME (our clock and the server's differ too much)".into(),
        TsigError::BadTrunc => "BADTRUNC".into(),
        TsigError::Unknown(code) => format!("TSIG error {code}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::RecordType;

    const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I=";

    fn signed(algorithm: TsigAlgorithm) -> (TsigKey, Vec<u8>, Vec<u8>) {
        let key = TsigKey::new("mailshift-key", algorithm, SECRET).unwrap();
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("example.com.").unwrap(),
            RecordType::MX,
        ));
        let mac = key.sign(&mut m, 1_700_000_000).unwrap();
        (key, mac, m.to_vec().unwrap())
    }

    #[test]
    fn every_algorithm_signs_with_its_own_mac_length() {
        for (a, len) in [
            (TsigAlgorithm::HmacSha1, 20),
            (TsigAlgorithm::HmacSha224, 28),
            (TsigAlgorithm::HmacSha256, 32),
            (TsigAlgorithm::HmacSha384, 48),
            (TsigAlgorithm::HmacSha512, 64),
        ] {
            let (key, mac, bytes) = signed(a);
            assert_eq!(mac.len(), len, "{a:?}");
            // A request verifies like a first message without a previous MAC.
            let (tbv, rec) = tsig::signed_bitmessage_to_buf(&bytes, None, true).unwrap();
            assert!(key.verify_mac(&tbv, &rec.data.mac), "{a:?}");
            assert_eq!(rec.data.algorithm, wire_algorithm(a));
        }
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231_test_case_2() {
        // Key "Jefe", data "what do ya want for nothing?".
        let key = TsigKey::new("k", TsigAlgorithm::HmacSha256, "SmVmZQ==").unwrap();
        let mac = key.mac(b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn bad_secrets_are_refused_with_a_reason() {
        assert!(
            TsigKey::new("k", TsigAlgorithm::HmacSha256, "not base64!")
                .unwrap_err()
                .contains("base64")
        );
        assert!(
            TsigKey::new("k", TsigAlgorithm::HmacSha256, "")
                .unwrap_err()
                .contains("empty")
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = TsigKey::new("k", TsigAlgorithm::HmacSha256, SECRET).unwrap();
        assert!(!format!("{key:?}").contains("c2Vj"));
    }
}
