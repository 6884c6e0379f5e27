//! The `mailshift controller` process as Kubernetes runs it: it connects to the API server
//! named by KUBECONFIG, serves `/healthz`, `/readyz` and `/metrics` over HTTP, and stops
//! cleanly on SIGTERM. No real API server can run on these machines, so a stand-in answers
//! the few requests a controller with nothing to do makes (version, empty lists, watches that
//! stay open).

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

type Body = BoxBody<Bytes, Infallible>;

/// A stand-in API server on loopback; remembers the requests it got (method and URI).
struct FakeApi {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    /// The one Lease it holds, as last written (coordination.k8s.io/v1).
    lease: Arc<Mutex<Option<serde_json::Value>>>,
    _runtime: tokio::runtime::Runtime,
}

impl FakeApi {
    fn start() -> Result<FakeApi> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let lease = Arc::new(Mutex::new(None));
        let (log, held) = (seen.clone(), lease.clone());
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, held) = (log.clone(), held.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        log.lock()
                            .unwrap()
                            .push(format!("{} {}", req.method(), req.uri()));
                        let held = held.clone();
                        async move {
                            if req.uri().path().contains("/leases") {
                                return Ok::<_, Infallible>(lease_answer(req, &held).await);
                            }
                            Ok::<_, Infallible>(answer(&req))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(FakeApi {
            addr,
            seen,
            lease,
            _runtime: runtime,
        })
    }

    fn lease(&self) -> Option<serde_json::Value> {
        self.lease.lock().unwrap().clone()
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn kubeconfig(&self, dir: &std::path::Path) -> Result<std::path::PathBuf> {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\nusers:\n- name: test\n  user:\n    token: not-a-real-token\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: test\n    namespace: default\ncurrent-context: fake\n",
                self.addr
            ),
        )?;
        Ok(path)
    }
}

fn json(body: &str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_owned())).boxed());
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

/// The Lease API: 404 until created, then what was last written, with a resourceVersion
/// that changes on every write (a stale one is a 409 Conflict, as on a real API server).
async fn lease_answer(
    req: Request<Incoming>,
    held: &Mutex<Option<serde_json::Value>>,
) -> Response<Body> {
    let method = req.method().clone();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let mut lease = held.lock().unwrap();
    let status = |code: u16, body: String| {
        let mut r = json(&body);
        *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap();
        r
    };
    let not_found = r#"{"apiVersion":"v1","kind":"Status","status":"Failure","reason":"NotFound","code":404,"message":"not found"}"#;
    match method.as_str() {
        "GET" => match lease.as_ref() {
            Some(l) => json(&l.to_string()),
            None => status(404, not_found.into()),
        },
        "POST" | "PUT" => {
            let mut new: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let current = lease
                .as_ref()
                .map(|l| l["metadata"]["resourceVersion"].clone());
            if method == "PUT" && current != Some(new["metadata"]["resourceVersion"].clone()) {
                return status(
                    409,
                    r#"{"apiVersion":"v1","kind":"Status","status":"Failure","reason":"Conflict","code":409,"message":"conflict"}"#.into(),
                );
            }
            let version = current
                .and_then(|v| v.as_str().and_then(|s| s.parse::<u64>().ok()))
                .unwrap_or(0)
                + 1;
            new["metadata"]["resourceVersion"] = version.to_string().into();
            *lease = Some(new.clone());
            status(if method == "POST" { 201 } else { 200 }, new.to_string())
        }
        _ => status(404, not_found.into()),
    }
}

fn answer(req: &Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");
    if path == "/version" {
        return json(
            r#"{"major":"1","minor":"31","gitVersion":"v1.31.0","gitCommit":"0","gitTreeState":"clean","buildDate":"2026-01-01T00:00:00Z","goVersion":"go1.22","compiler":"gc","platform":"linux/amd64"}"#,
        );
    }
    if query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1")
    {
        // A watch with nothing to report stays open, as the API server's does.
        let mut r = Response::new(
            StreamBody::new(futures::stream::pending::<Result<Frame<Bytes>, Infallible>>()).boxed(),
        );
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        return r;
    }
    json(r#"{"apiVersion":"v1","kind":"List","metadata":{"resourceVersion":"1"},"items":[]}"#)
}

/// `GET path` on the controller's HTTP port: (status code, body), or `None` while nothing
/// listens there.
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((code, body))
}

fn free_addr() -> Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// Waits for `cond` (polled every 50 ms) up to `limit`.
fn wait_for<T>(limit: Duration, mut cond: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = cond() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> Result<std::process::ExitStatus> {
    match wait_for(limit, || child.try_wait().ok().flatten()) {
        Some(status) => Ok(status),
        None => {
            let _ = child.kill();
            bail!("still running after {limit:?}")
        }
    }
}

#[test]
fn serves_health_readiness_and_metrics_then_stops_on_sigterm() -> Result<()> {
    let api = FakeApi::start()?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = api.kubeconfig(dir.path())?;
    let http = free_addr()?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args([
            "controller",
            "--metrics-addr",
            &http.to_string(),
            "--cache-dir",
        ])
        .arg(dir.path().join("cache"))
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;

    let ready = wait_for(Duration::from_secs(30), || {
        get(http, "/readyz").filter(|(code, _)| *code == 200)
    });
    if ready.is_none() {
        let _ = child.kill();
        let out = child.wait_with_output()?;
        bail!(
            "never ready; API saw {:?}\n{}",
            api.seen(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(get(http, "/healthz"), Some((200, "ok\n".into())));
    let (code, metrics) = get(http, "/metrics").expect("/metrics answers");
    assert_eq!(code, 200);
    // OpenMetrics names a counter's family without `_total`, its samples with it. Families
    // with labels (failures by reason, steps by kind) appear with their first sample.
    for family in [
        "mailshift_reconciles",
        "mailshift_messages_copied",
        "mailshift_bytes_copied",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {family} counter")),
            "{family} missing:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("\nmailshift_messages_copied_total 0\n"),
        "{metrics}"
    );
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    assert!(
        metrics.contains("# TYPE mailshift_leader gauge\nmailshift_leader 1\n"),
        "without leader election this replica reconciles:\n{metrics}"
    );
    assert_eq!(get(http, "/nothing").map(|(c, _)| c), Some(404));
    // It asked the API server who it is and listed (then watched) MailMigrations.
    let seen = api.seen();
    assert!(seen.iter().any(|r| r == "GET /version"), "{seen:?}");
    assert!(
        seen.iter()
            .any(|r| r.contains("/apis/mailshift.io/v1alpha1/mailmigrations")),
        "{seen:?}"
    );

    let started = Instant::now();
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    assert!(term.success());
    let status = wait_exit(&mut child, Duration::from_secs(20))?;
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr piped")
        .read_to_string(&mut stderr)?;
    assert!(status.success(), "{status}\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "slow shutdown: {stderr}"
    );
    assert!(
        stderr.contains("shutting down") && stderr.contains("stopped"),
        "{stderr}"
    );
    // Once stopped, nothing listens any more.
    assert_eq!(get(http, "/healthz"), None);
    Ok(())
}

fn replica(api: &FakeApi, dir: &std::path::Path, name: &str, http: SocketAddr) -> Result<Child> {
    Ok(Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args([
            "controller",
            "--leader-election",
            "--lease-namespace",
            "mailshift-system",
            "--metrics-addr",
            &http.to_string(),
            "--cache-dir",
        ])
        .arg(dir.join(name))
        .env("KUBECONFIG", api.kubeconfig(dir)?)
        .env("POD_NAME", name)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?)
}

fn leader_metric(http: SocketAddr) -> Option<bool> {
    let (_, m) = get(http, "/metrics")?;
    if m.contains("mailshift_leader 1\n") {
        Some(true)
    } else if m.contains("mailshift_leader 0\n") {
        Some(false)
    } else {
        None
    }
}

fn stop(child: &mut Child) -> Result<String> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    let status = wait_exit(child, Duration::from_secs(20))?;
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut stderr)?;
    }
    if !status.success() {
        bail!("{status}\n{stderr}");
    }
    Ok(stderr)
}

/// Two replicas: only the one holding the Lease reconciles; the other stands by, ready,
/// and takes over at once when the leader hands the Lease back on SIGTERM.
#[test]
fn with_leader_election_one_replica_leads_and_hands_over_on_sigterm() -> Result<()> {
    let api = FakeApi::start()?;
    let dir = tempfile::tempdir()?;
    let (http_a, http_b) = (free_addr()?, free_addr()?);
    let mut a = replica(&api, dir.path(), "replica-a", http_a)?;
    if wait_for(Duration::from_secs(30), || {
        leader_metric(http_a).filter(|l| *l)
    })
    .is_none()
    {
        let _ = a.kill();
        let out = a.wait_with_output()?;
        bail!(
            "never led; API saw {:?}\n{}",
            api.seen(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let lease = api.lease().expect("a Lease was created");
    assert_eq!(lease["spec"]["holderIdentity"], "replica-a", "{lease}");
    // The Lease was taken in the namespace asked for, before MailMigrations were watched.
    let seen = api.seen();
    assert!(
        seen.iter().any(|r| r
            .starts_with("POST /apis/coordination.k8s.io/v1/namespaces/mailshift-system/leases")),
        "{seen:?}"
    );
    let first_lease = seen.iter().position(|r| r.contains("/leases"));
    let first_watch = seen
        .iter()
        .position(|r| r.contains("/mailmigrations") && r.contains("watch="));
    assert!(first_lease.is_some() && (first_watch.is_none() || first_lease < first_watch));

    // The second replica is ready but does not lead while the first renews.
    let mut b = replica(&api, dir.path(), "replica-b", http_b)?;
    let lease_reads = || {
        api.seen()
            .iter()
            .filter(|r| r.starts_with("GET") && r.contains("/leases/"))
            .count()
    };
    let before = lease_reads();
    assert!(
        wait_for(Duration::from_secs(30), || {
            (get(http_b, "/readyz").map(|(c, _)| c) == Some(200) && lease_reads() >= before + 6)
                .then_some(())
        })
        .is_some(),
        "replica-b never became ready"
    );
    assert_eq!(leader_metric(http_b), Some(false), "two leaders at once");
    assert_eq!(leader_metric(http_a), Some(true));
    assert_eq!(api.lease().unwrap()["spec"]["holderIdentity"], "replica-a");

    // SIGTERM: the first hands the Lease back and the second takes over.
    stop(&mut a)?;
    assert!(
        wait_for(Duration::from_secs(30), || leader_metric(http_b)
            .filter(|l| *l))
        .is_some(),
        "replica-b did not take over"
    );
    assert_eq!(api.lease().unwrap()["spec"]["holderIdentity"], "replica-b");
    stop(&mut b)?;
    let lease = api.lease().unwrap();
    assert!(
        lease["spec"]["holderIdentity"].is_null() || lease["spec"]["holderIdentity"] == "",
        "released on SIGTERM: {lease}"
    );
    Ok(())
}
