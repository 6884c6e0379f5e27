//! OAuth2 access tokens that renew themselves, for XOAUTH2 logins: a refresh-token grant
//! (RFC 6749 6, one refresh token per mailbox), a client-credentials grant (RFC 6749 4.4,
//! Microsoft 365 app-only access: one token for every mailbox), or a Google service account
//! with domain-wide delegation (RFC 7523: a JWT assertion signed with the account's key, one
//! per mailbox, `sub` the mailbox). A token is fetched when first needed, reused until a
//! minute before it expires, and fetched again after a server refused it once.
//!
//! Tokens, refresh tokens, client secrets and keys are [`Secret`]s: never in `Debug`, logs
//! or errors (a token endpoint's error is reported by its `error` code and status only).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::https::Http;
use crate::spec::Secret;

/// A token is renewed this long before the endpoint said it expires.
const MARGIN: Duration = Duration::from_secs(60);
/// Largest token endpoint answer read.
const ANSWER_LIMIT: usize = 64 * 1024;

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("token endpoint {endpoint}: {detail}")]
    Endpoint { endpoint: String, detail: String },
    /// The endpoint refused the grant (`invalid_grant`, `invalid_client`, ...): a person has
    /// to issue new credentials.
    #[error("token endpoint {endpoint} refused the grant: {error} (HTTP {status})")]
    Refused {
        endpoint: String,
        error: String,
        status: u16,
    },
    #[error("OAuth2 setup: {0}")]
    Setup(String),
}

/// How tokens are obtained.
#[derive(Clone)]
pub enum Grant {
    /// A token given as it is: used until refused, never renewed.
    Fixed(Secret),
    RefreshToken {
        endpoint: Endpoint,
        client_id: String,
        client_secret: Option<Secret>,
        refresh_token: Secret,
    },
    ClientCredentials {
        endpoint: Endpoint,
        client_id: String,
        client_secret: Secret,
        scope: String,
    },
    ServiceAccount {
        endpoint: Endpoint,
        /// The service account (`client_email` of its key file).
        issuer: String,
        /// Its RSA key, PKCS#8 DER.
        key: Arc<zeroize::Zeroizing<Vec<u8>>>,
        scope: String,
        /// The mailbox the token acts for.
        subject: String,
    },
}

/// A token endpoint.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub url: String,
    http: Http,
    path: String,
}

impl Endpoint {
    pub fn new(url: &str, ca_pem: Option<&[u8]>) -> Result<Endpoint, OAuthError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| OAuthError::Setup(format!("token URL {url}: {e}")))?;
        let http = Http::anonymous(&uri, ca_pem)
            .map_err(|e| OAuthError::Setup(format!("token URL {url}: {e}")))?;
        Ok(Endpoint {
            url: url.to_owned(),
            http,
            path: uri
                .path_and_query()
                .map_or("/".into(), |p| p.as_str().to_owned()),
        })
    }
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Grant::Fixed(_) => "Fixed",
            Grant::RefreshToken { .. } => "RefreshToken",
            Grant::ClientCredentials { .. } => "ClientCredentials",
            Grant::ServiceAccount { .. } => "ServiceAccount",
        })
    }
}

struct Cached {
    token: Secret,
    renew_at: Instant,
}

/// Where a login's access tokens come from; clones share one cache.
#[derive(Clone)]
pub struct TokenSource {
    grant: Arc<Grant>,
    cached: Arc<tokio::sync::Mutex<Option<Cached>>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("grant", &self.grant)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<u64>,
    error: Option<String>,
}

impl TokenSource {
    pub fn new(grant: Grant) -> TokenSource {
        TokenSource {
            grant: Arc::new(grant),
            cached: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    pub fn fixed(token: Secret) -> TokenSource {
        TokenSource::new(Grant::Fixed(token))
    }

    /// Whether a refused token can be replaced by another.
    pub fn renewable(&self) -> bool {
        !matches!(*self.grant, Grant::Fixed(_))
    }

    /// A token to log in with: the last one, unless it is about to expire.
    pub async fn token(&self) -> Result<Secret, OAuthError> {
        if let Grant::Fixed(t) = &*self.grant {
            return Ok(t.clone());
        }
        let mut cached = self.cached.lock().await;
        if let Some(c) = &*cached
            && Instant::now() < c.renew_at
        {
            return Ok(c.token.clone());
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// A new token, after a server refused the last one.
    pub async fn renew(&self) -> Result<Secret, OAuthError> {
        self.cached.lock().await.take();
        self.token().await
    }

    async fn fetch(&self) -> Result<Cached, OAuthError> {
        let (endpoint, form): (&Endpoint, Vec<(&str, String)>) = match &*self.grant {
            Grant::Fixed(_) => unreachable!("a fixed token is never fetched"),
            Grant::RefreshToken {
                endpoint,
                client_id,
                client_secret,
                refresh_token,
            } => {
                let mut form = vec![
                    ("grant_type", "refresh_token".to_owned()),
                    ("refresh_token", refresh_token.expose().to_owned()),
                    ("client_id", client_id.clone()),
                ];
                if let Some(s) = client_secret {
                    form.push(("client_secret", s.expose().to_owned()));
                }
                (endpoint, form)
            }
            Grant::ClientCredentials {
                endpoint,
                client_id,
                client_secret,
                scope,
            } => (
                endpoint,
                vec![
                    ("grant_type", "client_credentials".to_owned()),
                    ("client_id", client_id.clone()),
                    ("client_secret", client_secret.expose().to_owned()),
                    ("scope", scope.clone()),
                ],
            ),
            Grant::ServiceAccount {
                endpoint,
                issuer,
                key,
                scope,
                subject,
            } => (
                endpoint,
                vec![
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
                    ),
                    (
                        "assertion",
                        assertion(issuer, key, scope, subject, &endpoint.url)?,
                    ),
                ],
            ),
        };
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let started = Instant::now();
        let (status, body) = endpoint
            .http
            .post_form(&endpoint.path, &form, ANSWER_LIMIT)
            .await
            .map_err(|e| OAuthError::Endpoint {
                endpoint: endpoint.url.clone(),
                detail: e.to_string(),
            })?;
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|_| OAuthError::Endpoint {
                endpoint: endpoint.url.clone(),
                detail: format!("HTTP {status}: not a token answer"),
            })?;
        match (status.is_success(), answer.access_token) {
            (true, Some(token)) => {
                let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
                Ok(Cached {
                    token: Secret::new(token),
                    renew_at: started + lifetime.saturating_sub(MARGIN),
                })
            }
            _ => Err(OAuthError::Refused {
                endpoint: endpoint.url.clone(),
                // Only the error code: a description may quote what was sent.
                error: answer
                    .error
                    .filter(|e| e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or_else(|| "no token".into()),
                status: status.as_u16(),
            }),
        }
    }
}

/// An RS256-signed JWT assertion (RFC 7523) for `subject`, valid for an hour.
fn assertion(
    issuer: &str,
    key: &[u8],
    scope: &str,
    subject: &str,
    audience: &str,
) -> Result<String, OAuthError> {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| OAuthError::Setup(e.to_string()))?
        .as_secs();
    let claims = serde_json::json!({
        "iss": issuer, "scope": scope, "aud": audience, "sub": subject,
        "iat": now, "exp": now + 3600,
    });
    let signed = format!(
        "{}.{}",
        b64(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let pair = ring::signature::RsaKeyPair::from_pkcs8(key).map_err(|_| {
        OAuthError::Setup("the service account's key is not an RSA PKCS#8 key".into())
    })?;
    let mut signature = vec![0; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut signature,
    )
    .map_err(|_| OAuthError::Setup("signing the assertion failed".into()))?;
    Ok(format!("{signed}.{}", b64(&signature)))
}

/// A Google service account key file (JSON), as the console exports it.
#[derive(Deserialize)]
pub struct ServiceAccountKey {
    pub client_email: String,
    pub private_key: String,
    #[serde(default)]
    pub token_uri: Option<String>,
}

impl ServiceAccountKey {
    pub fn parse(json: &str) -> Result<ServiceAccountKey, OAuthError> {
        serde_json::from_str(json).map_err(|_| {
            OAuthError::Setup("the service account key is not its JSON key file".into())
        })
    }

    /// The private key as PKCS#8 DER (the file holds it as PEM).
    pub fn der(&self) -> Result<Arc<zeroize::Zeroizing<Vec<u8>>>, OAuthError> {
        use base64::Engine as _;
        let b64: String = self
            .private_key
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| {
                OAuthError::Setup("the service account key's private_key is not PEM".into())
            })?;
        Ok(Arc::new(zeroize::Zeroizing::new(der)))
    }
}
