//! mailshift's HTTP/1 client, for CardDAV/CalDAV (through `libdav`) and OAuth2 token
//! endpoints: one kept-alive connection per client (a migration sends a handful of REPORTs,
//! one PUT per resource, a token request now and then), TLS verified as for IMAP (the system's roots,
//! or the endpoint's own CA), the credentials on every request when there are some, and a
//! bound on every wait.
//!
//! Behind an egress proxy (a cluster's, a company's), connections go through it as curl's
//! would: `HTTPS_PROXY`/`https_proxy` for https URLs, `HTTP_PROXY`/`http_proxy` for http
//! ones, `ALL_PROXY` for both, hosts in `NO_PROXY` direct (hyper-util's matcher reads them).
//! Every connection is a tunnel (HTTP CONNECT, with `Proxy-Authorization` when the proxy's
//! URL carries a user and password), so TLS stays end to end and the server's certificate
//! is checked as without a proxy. Only http:// proxies are spoken to.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, HOST, HeaderValue};
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long connecting, the TLS handshake and each answer may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request could not be carried out (an HTTP status is not an error here).
#[derive(Debug, thiserror::Error)]
#[error("{addr}: {reason}")]
pub struct HttpError {
    addr: String,
    reason: String,
}

/// A client for one server, logged in as one user.
#[derive(Clone)]
pub struct Http {
    host: String,
    port: u16,
    tls: Option<tokio_rustls::TlsConnector>,
    authorization: Option<HeaderValue>,
    /// The proxy connections go through (its credentials are never shown).
    proxy: Option<hyper_util::client::proxy::matcher::Intercept>,
    /// The connection kept alive between requests, shared by the clones.
    connection: Arc<tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .field("proxy", &self.proxy.as_ref().map(|p| p.uri().to_string()))
            .finish_non_exhaustive()
    }
}

/// Why a client cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("`{0}` is not an http:// or https:// URL with a host")]
    Url(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("the proxy for {url} ({proxy}, from the environment) is not an http:// proxy")]
    Proxy { url: String, proxy: String },
}

/// What a request carries in `Authorization`.
pub enum Credentials<'a> {
    Basic {
        user: &'a str,
        password: &'a crate::spec::Secret,
    },
    Bearer(&'a crate::spec::Secret),
}

impl Http {
    /// A client for `url`'s server sending `credentials` on every request, trusting
    /// `ca_pem` besides the system's roots when given.
    pub fn new(
        url: &Uri,
        credentials: Credentials<'_>,
        ca_pem: Option<&[u8]>,
    ) -> Result<Http, SetupError> {
        use base64::Engine as _;
        let value = match credentials {
            Credentials::Bearer(token) => format!("Bearer {}", token.expose()),
            Credentials::Basic { user, password } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", password.expose()))
            ),
        };
        let mut authorization =
            HeaderValue::from_str(&value).map_err(|_| SetupError::Url(url.to_string()))?;
        authorization.set_sensitive(true);
        let mut http = Http::anonymous(url, ca_pem)?;
        http.authorization = Some(authorization);
        Ok(http)
    }

    /// A client for `url`'s server without credentials (a token endpoint, which takes the
    /// client's in the request body).
    pub fn anonymous(url: &Uri, ca_pem: Option<&[u8]>) -> Result<Http, SetupError> {
        let https = match url.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(SetupError::Url(url.to_string())),
        };
        let host = url
            .host()
            .ok_or_else(|| SetupError::Url(url.to_string()))?
            .to_owned();
        let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https {
            Some(crate::tls::connector(ca_pem).map_err(SetupError::Tls)?)
        } else {
            None
        };
        let proxy = hyper_util::client::proxy::matcher::Matcher::from_env().intercept(url);
        if let Some(p) = &proxy
            && p.uri().scheme_str() != Some("http")
        {
            return Err(SetupError::Proxy {
                url: url.to_string(),
                proxy: p.uri().to_string(),
            });
        }
        Ok(Http {
            host,
            port,
            tls,
            authorization: None,
            proxy,
            connection: Arc::default(),
        })
    }

    /// POST an `application/x-www-form-urlencoded` body to `path`; the status and the body
    /// (at most `limit` bytes).
    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        limit: usize,
    ) -> Result<(http::StatusCode, Bytes), HttpError> {
        use http_body_util::BodyExt as _;
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let req = Request::post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .map_err(|e| self.fail(format!("bad request: {e}")))?;
        let response = self.clone().send(req).await?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| self.fail(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok((status, body))
    }

    /// Sends `req` (its URI a path); the status, the headers and the body (at most
    /// `limit` bytes).
    pub async fn request(
        &self,
        req: Request<String>,
        limit: usize,
    ) -> Result<(http::StatusCode, http::HeaderMap, Bytes), HttpError> {
        use http_body_util::BodyExt as _;
        let response = self.clone().send(req).await?;
        let (parts, body) = response.into_parts();
        let body = http_body_util::Limited::new(body, limit)
            .collect()
            .await
            .map_err(|e| self.fail(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok((parts.status, parts.headers, body))
    }

    fn fail(&self, reason: String) -> HttpError {
        HttpError {
            addr: self.addr(),
            reason,
        }
    }

    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    async fn send(self, req: Request<String>) -> Result<Response<Incoming>, HttpError> {
        let (parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse::<Uri>()
            .map_err(|e| self.fail(format!("bad request path: {e}")))?;
        let mut req = Request::from_parts(parts, Full::new(Bytes::from(body)));
        *req.uri_mut() = path;
        let host = HeaderValue::from_str(&if matches!(self.port, 80 | 443) {
            self.host.clone()
        } else {
            self.addr()
        })
        .map_err(|e| self.fail(format!("bad host: {e}")))?;
        req.headers_mut().insert(HOST, host);
        if let Some(a) = &self.authorization {
            req.headers_mut().insert(AUTHORIZATION, a.clone());
        }
        // One kept-alive connection per client: a copy PUTs every resource of a mailbox,
        // and a TLS handshake each would cost more than the resource.
        let mut kept = self.connection.lock().await;
        if let Some(sender) = kept.as_mut() {
            let ready = matches!(
                tokio::time::timeout(TIMEOUT, sender.ready()).await,
                Ok(Ok(()))
            );
            if ready {
                match tokio::time::timeout(TIMEOUT, sender.try_send_request(req)).await {
                    Err(_) => {
                        *kept = None;
                        return Err(self.fail("timed out waiting for the server".into()));
                    }
                    Ok(Ok(response)) => return Ok(response),
                    Ok(Err(mut e)) => match e.take_message() {
                        // Not sent: the server closed the idle connection. Sent on a new
                        // one below; never twice.
                        Some(unsent) => req = unsent,
                        None => {
                            *kept = None;
                            return Err(self.fail(format!("HTTP: {}", e.into_error())));
                        }
                    },
                }
            }
            *kept = None;
        }
        let mut sender = self.connect().await?;
        let response = tokio::time::timeout(TIMEOUT, sender.send_request(req))
            .await
            .map_err(|_| self.fail("timed out waiting for the server".into()))?
            .map_err(|e| self.fail(format!("HTTP: {e}")))?;
        *kept = Some(sender);
        Ok(response)
    }

    /// A new connection (TLS when the URL said https), ready for requests.
    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, HttpError> {
        let tcp = match &self.proxy {
            Some(proxy) => self.tunnel(proxy).await?,
            None => {
                tokio::time::timeout(TIMEOUT, TcpStream::connect((self.host.as_str(), self.port)))
                    .await
                    .map_err(|_| self.fail("timed out connecting".into()))?
                    .map_err(|e| self.fail(format!("cannot connect: {e}")))?
            }
        };
        match &self.tls {
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| self.fail(format!("invalid server name: {e}")))?;
                let stream = tokio::time::timeout(TIMEOUT, tls.connect(name, tcp))
                    .await
                    .map_err(|_| self.fail("timed out in the TLS handshake".into()))?
                    .map_err(|e| self.fail(format!("TLS: {e}")))?;
                self.handshake(TokioIo::new(stream)).await
            }
            None => self.handshake(TokioIo::new(tcp)).await,
        }
    }

    /// A connection to the server through `proxy` (HTTP CONNECT).
    async fn tunnel(
        &self,
        proxy: &hyper_util::client::proxy::matcher::Intercept,
    ) -> Result<TcpStream, HttpError> {
        use hyper_util::client::legacy::connect::HttpConnector;
        use hyper_util::client::legacy::connect::proxy::Tunnel;
        use tower_service::Service as _;
        let through =
            |reason: String| self.fail(format!("through the proxy {}: {reason}", proxy.uri()));
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(TIMEOUT));
        connector.set_nodelay(true);
        let mut tunnel = Tunnel::new(proxy.uri().clone(), connector);
        if let Some(auth) = proxy.basic_auth() {
            tunnel = tunnel.with_auth(auth.clone());
        }
        let target: Uri = format!("http://{}", self.addr())
            .parse()
            .map_err(|e| through(format!("bad target: {e}")))?;
        std::future::poll_fn(|cx| tunnel.poll_ready(cx))
            .await
            .map_err(|e| through(tunnel_error(&e)))?;
        let io = tokio::time::timeout(TIMEOUT, tunnel.call(target))
            .await
            .map_err(|_| through("timed out".into()))?
            .map_err(|e| through(tunnel_error(&e)))?;
        Ok(io.into_inner())
    }

    async fn handshake<S>(&self, io: TokioIo<S>) -> Result<SendRequest<Full<Bytes>>, HttpError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) =
            tokio::time::timeout(TIMEOUT, hyper::client::conn::http1::handshake(io))
                .await
                .map_err(|_| self.fail("timed out starting HTTP".into()))?
                .map_err(|e| self.fail(format!("HTTP: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}

/// What the proxy said, in words: the tunnel's error and its causes (its type is not
/// exported, so it is read through `Error`).
fn tunnel_error(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    if text.contains("proxy authorization required") {
        text.push_str(" (407): give the user and password in the proxy's URL");
    } else if text.ends_with("unsuccessful") {
        // Whatever the status was (some proxies answer a CONNECT with wrong credentials
        // 401), the tunnel does not say it.
        text.push_str(
            ": the proxy refused the tunnel (credentials missing or wrong in its URL, or a \
             port it does not allow)",
        );
    }
    text
}

/// The largest answer body `libdav` is handed (a REPORT with every contact of a large
/// address book, photos included); a server sending more fails the request instead of
/// filling the memory.
const BODY_LIMIT: usize = 256 << 20;

impl tower_service::Service<Request<String>> for Http {
    type Response = Response<http_body_util::Limited<Incoming>>;
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, HttpError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), HttpError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<String>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let response = this.send(req).await?;
            Ok(response.map(|b| http_body_util::Limited::new(b, BODY_LIMIT)))
        })
    }
}

/// `application/x-www-form-urlencoded` escaping (RFC 3986 unreserved characters kept), also
/// right for a query parameter's value.
pub(crate) fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
