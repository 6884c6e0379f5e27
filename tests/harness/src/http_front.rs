//! An HTTP/1.1 front for a real API server on loopback: it forwards every request to the
//! server behind it, records each (method, path, body), and lets a test answer chosen
//! requests itself, for what the server behind never does: a provider throttling with
//! `Retry-After`, or refusing in the words its API reference gives.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use mailshift_harness::http_front::{HttpFront, Verdict};
//! let front = HttpFront::start(8081, |n, _req| {
//!     if n == 0 { Verdict::answer(429, &[("Retry-After", "2")], "") } else { Verdict::Forward }
//! })?;
//! // point the client at front.url() ...
//! assert!(front.requests().len() >= 2);
//! # Ok(()) }
//! ```
//!
//! Each connection carries one request: the front answers with `Connection: close` and
//! closes, which any client handles by opening the next connection. Bodies must come with
//! `Content-Length` (no chunked requests: the clients under test send none).

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// One request as the front received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// With the query string.
    pub path: String,
    pub body: String,
    /// Whether the front answered it itself.
    pub answered: bool,
}

/// What the front does with a request.
pub enum Verdict {
    Forward,
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
}

impl Verdict {
    pub fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Verdict {
        Verdict::Answer {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_owned(),
        }
    }
}

type Hook = dyn Fn(usize, &Recorded) -> Verdict + Send + Sync;

struct Shared {
    upstream: u16,
    hook: Box<Hook>,
    seen: AtomicUsize,
    requests: Mutex<Vec<Recorded>>,
    stop: AtomicBool,
}

/// A running front on `127.0.0.1:port()`.
pub struct HttpFront {
    port: u16,
    shared: Arc<Shared>,
    listener: Option<JoinHandle<()>>,
}

impl HttpFront {
    /// A front for the server on `127.0.0.1:upstream`; `hook(n, request)` decides about the
    /// `n`-th request (from 0).
    pub fn start(
        upstream: u16,
        hook: impl Fn(usize, &Recorded) -> Verdict + Send + Sync + 'static,
    ) -> Result<HttpFront> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the HTTP front")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            upstream,
            hook: Box::new(hook),
            seen: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(&s, stream);
                });
            }
        });
        Ok(HttpFront {
            port,
            shared,
            listener: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request so far, in the order they arrived.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }
}

impl Drop for HttpFront {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.listener.take() {
            let _ = t.join();
        }
    }
}

fn serve(s: &Shared, client: TcpStream) -> Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let Some((head, body)) = read_message(&mut reader)? else {
        return Ok(());
    };
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default().to_owned();
    let mut parts = request_line.split(' ');
    let (method, path) = (
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
    );
    let n = s.seen.fetch_add(1, Ordering::SeqCst);
    let mut recorded = Recorded {
        method,
        path,
        body: String::from_utf8_lossy(&body).into_owned(),
        answered: false,
    };
    let verdict = (s.hook)(n, &recorded);
    recorded.answered = matches!(verdict, Verdict::Answer { .. });
    s.requests.lock().unwrap().push(recorded);
    let mut out = client;
    match verdict {
        Verdict::Answer {
            status,
            headers,
            body,
        } => {
            let mut answer = format!(
                "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
                reason(status),
                body.len()
            );
            for (k, v) in headers {
                answer.push_str(&format!("{k}: {v}\r\n"));
            }
            answer.push_str("\r\n");
            answer.push_str(&body);
            out.write_all(answer.as_bytes())?;
        }
        Verdict::Forward => {
            let mut upstream = TcpStream::connect(("127.0.0.1", s.upstream))
                .with_context(|| format!("connecting to 127.0.0.1:{}", s.upstream))?;
            upstream.set_read_timeout(Some(Duration::from_secs(60)))?;
            upstream.write_all(&with_close(&head).into_bytes())?;
            upstream.write_all(&body)?;
            let mut from = BufReader::new(upstream);
            let Some((head, body)) = read_message(&mut from)? else {
                bail!("the server behind closed without answering");
            };
            out.write_all(with_close(&head).as_bytes())?;
            out.write_all(&body)?;
        }
    }
    out.flush()?;
    out.shutdown(Shutdown::Both).ok();
    Ok(())
}

/// A message's head (up to the blank line, without it) and its body: `Content-Length`
/// bytes, or everything up to the end for an answer without one.
fn read_message(r: &mut impl BufRead) -> Result<Option<(String, Vec<u8>)>> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            if head.is_empty() {
                return Ok(None);
            }
            bail!("the message ended inside its head");
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        head.push_str(&line);
    }
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    let mut body = Vec::new();
    match length {
        Some(n) => {
            body.resize(n, 0);
            r.read_exact(&mut body)?;
        }
        None if head.starts_with("HTTP/") => {
            r.read_to_end(&mut body)?;
        }
        None => {}
    }
    Ok(Some((head, body)))
}

/// `head` with its `Connection` header replaced by `Connection: close`, blank line added.
fn with_close(head: &str) -> String {
    let mut out = String::new();
    for line in head.lines() {
        let name = line.split(':').next().unwrap_or_default().trim();
        if !name.eq_ignore_ascii_case("connection") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn forwards_records_and_answers_itself() -> Result<()> {
        // The server behind: answers every request with its own path.
        let behind = TcpListener::bind("127.0.0.1:0")?;
        let upstream = behind.local_addr()?.port();
        std::thread::spawn(move || {
            for stream in behind.incoming().flatten() {
                let mut r = BufReader::new(stream.try_clone().unwrap());
                if let Ok(Some((head, _))) = read_message(&mut r) {
                    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                    let mut w = stream;
                    let _ = write!(
                        w,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{path}",
                        path.len()
                    );
                }
            }
        });
        let front = HttpFront::start(upstream, |n, _| {
            if n == 0 {
                Verdict::answer(429, &[("Retry-After", "1")], "slow down")
            } else {
                Verdict::Forward
            }
        })?;
        let ask = |path: &str| -> Result<String> {
            let mut c = TcpStream::connect(("127.0.0.1", front.port()))?;
            write!(
                c,
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            )?;
            let mut answer = String::new();
            c.read_to_string(&mut answer)?;
            Ok(answer)
        };
        let first = ask("/a")?;
        assert!(first.starts_with("HTTP/1.1 429"), "{first}");
        assert!(first.contains("Retry-After: 1") && first.ends_with("slow down"));
        let second = ask("/b?x=1")?;
        assert!(second.starts_with("HTTP/1.1 200"), "{second}");
        assert!(second.contains("Connection: close") && !second.contains("keep-alive"));
        assert!(second.ends_with("/b?x=1"), "{second}");
        let seen = front.requests();
        assert_eq!(seen.len(), 2);
        assert!(seen[0].answered && !seen[1].answered);
        assert_eq!(
            (seen[1].method.as_str(), seen[1].body.as_str()),
            ("POST", "abc")
        );
        Ok(())
    }
}
