//! Leader election over a `coordination.k8s.io/v1` Lease, so that of several replicas only
//! one reconciles at a time.
//!
//! The scheme is client-go's: every write of the Lease carries the `resourceVersion` it was
//! read at, so of two replicas racing for it exactly one wins (the other gets a Conflict);
//! the leader renews every `retry` and gives up leading when it could not renew for
//! `renew_deadline`; a follower takes a Lease over only when its record has not changed for
//! a whole `duration` *as measured on the follower's own clock* since it first saw that
//! record, so clock skew between nodes cannot make a Lease look expired early. Because
//! `renew_deadline` < `duration`, and the follower's count starts after the leader's last
//! renewal was written, the old leader has stopped before a new one starts.
//!
//! (kube-lease-manager, the maintained crate for kube 5, writes the Lease with server-side
//! apply and clears a holder with an unconditional patch: two replicas can briefly both
//! believe they lead. Hence this small acquirer.)

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tokio::time::Instant;

/// How the Lease is held: client-go's defaults.
#[derive(Clone, Debug)]
pub struct LeaseTimes {
    /// A Lease not renewed for this long may be taken over.
    pub duration: Duration,
    /// A leader that could not renew for this long stops leading (less than `duration`).
    pub renew_deadline: Duration,
    /// How often the leader renews and a follower tries.
    pub retry: Duration,
}

impl Default for LeaseTimes {
    fn default() -> Self {
        LeaseTimes {
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }
}

/// The record last read, and when this replica first saw it.
#[derive(Clone, Debug)]
struct Observed {
    resource_version: String,
    holder: Option<String>,
    at: Instant,
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    times: LeaseTimes,
    observed: Option<Observed>,
}

impl Elector {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        times: LeaseTimes,
    ) -> Self {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            times,
            observed: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn times(&self) -> &LeaseTimes {
        &self.times
    }

    /// Who holds the Lease, as last read.
    pub fn holder(&self) -> Option<&str> {
        self.observed.as_ref().and_then(|o| o.holder.as_deref())
    }

    /// Read the Lease and take it or renew it when this replica may. Returns whether this
    /// replica holds it now. `now` is the local monotonic clock (tests pass their own).
    pub async fn try_acquire_or_renew(&mut self, now: Instant) -> Result<bool, kube::Error> {
        let seconds = i32::try_from(self.times.duration.as_secs()).unwrap_or(i32::MAX);
        let stamp = MicroTime(Timestamp::now());
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(stamp.clone()),
                    renew_time: Some(stamp),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(made) => {
                    self.observe(&made, now);
                    Ok(true)
                }
                // Another replica created it first.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        self.observe(&lease, now);
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.identity.as_str());
        if !ours && holder.is_some() {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.times.duration, Duration::from_secs);
            let seen_since = self.observed.as_ref().map_or(now, |o| o.at);
            if now.saturating_duration_since(seen_since) < duration {
                return Ok(false);
            }
            tracing::info!(lease = self.name, holder = ?holder, "the Lease expired; taking it over");
        }
        let transitions = spec.lease_transitions.unwrap_or(0);
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: if ours {
                spec.acquire_time.clone()
            } else {
                Some(stamp.clone())
            },
            renew_time: Some(stamp),
            lease_transitions: Some(if ours { transitions } else { transitions + 1 }),
            ..spec
        });
        // `replace` sends the resourceVersion read above: a write by anyone in between
        // makes this one fail with a Conflict.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                self.observe(&written, now);
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Give the Lease up (on shutdown), so that a follower takes over at once instead of
    /// waiting for it to expire. Only a Lease this replica holds is touched.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        lease.spec = Some(spec);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn observe(&mut self, lease: &Lease, now: Instant) {
        let rv = lease.resource_version().unwrap_or_default();
        if self.observed.as_ref().map(|o| &o.resource_version) != Some(&rv) {
            self.observed = Some(Observed {
                resource_version: rv,
                holder: lease
                    .spec
                    .as_ref()
                    .and_then(|s| s.holder_identity.clone())
                    .filter(|h| !h.is_empty()),
                at: now,
            });
        }
    }

    /// Try every `retry` until this replica leads.
    pub async fn acquire(&mut self) {
        let mut waiting_for = None;
        loop {
            match self.try_acquire_or_renew(Instant::now()).await {
                Ok(true) => {
                    tracing::info!(lease = self.name, identity = self.identity, "leading");
                    return;
                }
                Ok(false) => {
                    let holder = self.holder().map(str::to_owned);
                    if holder != waiting_for {
                        tracing::info!(lease = self.name, holder = ?holder, "another replica leads; standing by");
                        waiting_for = holder;
                    }
                }
                Err(e) => {
                    tracing::warn!(lease = self.name, error = %e, "cannot read or write the Lease")
                }
            }
            tokio::time::sleep(self.times.retry).await;
        }
    }

    /// Renew every `retry` while leading; returns when leadership is lost: another replica
    /// holds the Lease, or it could not be renewed for `renew_deadline`.
    pub async fn keep(&mut self) -> LeaseLost {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(self.times.retry).await;
            // Count from before the request: the renewal took effect no earlier.
            let attempt = Instant::now();
            // A request that hangs must not keep this replica leading past the deadline.
            let left = self.times.renew_deadline.saturating_sub(renewed.elapsed());
            match tokio::time::timeout(left, self.try_acquire_or_renew(attempt)).await {
                Ok(Ok(true)) => renewed = attempt,
                Ok(Ok(false)) => {
                    return LeaseLost {
                        holder: self.holder().map(str::to_owned),
                    };
                }
                Ok(Err(e)) => {
                    tracing::warn!(lease = self.name, error = %e, "cannot renew the Lease")
                }
                Err(_) => tracing::warn!(lease = self.name, "renewing the Lease timed out"),
            }
            if renewed.elapsed() >= self.times.renew_deadline {
                return LeaseLost { holder: None };
            }
        }
    }
}

/// Leadership was lost; `holder` leads now, when known.
#[derive(Debug, PartialEq, Eq)]
pub struct LeaseLost {
    pub holder: Option<String>,
}

impl std::fmt::Display for LeaseLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.holder {
            Some(h) => write!(f, "the leader Lease is held by {h} now"),
            None => f.write_str("the leader Lease could not be renewed in time"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::{Value, json};

    use super::*;

    const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/mailshift-controller";

    /// A fake API server holding at most one Lease, with the API server's optimistic
    /// concurrency: a write must carry the current resourceVersion.
    #[derive(Clone, Default)]
    struct Fake {
        lease: Arc<Mutex<Option<Value>>>,
        writes: Arc<Mutex<Vec<(Method, Value)>>>,
        /// Someone else writes the Lease between our read and our write.
        race: Arc<Mutex<bool>>,
        /// Every request fails with 500.
        down: Arc<Mutex<bool>>,
    }

    impl Fake {
        fn start() -> (Client, Fake) {
            let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
            let fake = Fake::default();
            let f = fake.clone();
            tokio::spawn(async move {
                while let Some((req, send)) = handle.next_request().await {
                    let (parts, body) = req.into_parts();
                    let bytes = body.collect_bytes().await.unwrap();
                    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    let (code, reply) = f.answer(&parts.method, parts.uri.path(), body);
                    let response = Response::builder()
                        .status(code)
                        .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                        .unwrap();
                    send.send_response(response);
                }
            });
            (Client::new(service, "default"), fake)
        }

        fn answer(&self, method: &Method, path: &str, body: Value) -> (StatusCode, Value) {
            let status = |code: u16, reason: &str| {
                json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                       "reason": reason, "code": code, "message": reason})
            };
            if *self.down.lock().unwrap() {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    status(500, "InternalError"),
                );
            }
            let mut lease = self.lease.lock().unwrap();
            let rv = |l: &Value| {
                l["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            };
            match (method, path) {
                (&Method::GET, PATH) => match lease.as_mut() {
                    Some(l) => {
                        let current = l.clone();
                        if *self.race.lock().unwrap() {
                            let next = rv(l) + 1;
                            l["metadata"]["resourceVersion"] = json!(next.to_string());
                        }
                        (StatusCode::OK, current)
                    }
                    None => (StatusCode::NOT_FOUND, status(404, "NotFound")),
                },
                (&Method::POST, p) if PATH.starts_with(p) => {
                    if lease.is_some() {
                        return (StatusCode::CONFLICT, status(409, "AlreadyExists"));
                    }
                    self.writes
                        .lock()
                        .unwrap()
                        .push((Method::POST, body.clone()));
                    let mut l = body;
                    l["metadata"]["namespace"] = json!("ops");
                    l["metadata"]["resourceVersion"] = json!("1");
                    *lease = Some(l.clone());
                    (StatusCode::CREATED, l)
                }
                (&Method::PUT, PATH) => {
                    let Some(current) = lease.as_ref() else {
                        return (StatusCode::NOT_FOUND, status(404, "NotFound"));
                    };
                    if body["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"]
                    {
                        return (StatusCode::CONFLICT, status(409, "Conflict"));
                    }
                    self.writes
                        .lock()
                        .unwrap()
                        .push((Method::PUT, body.clone()));
                    let mut l = body;
                    l["metadata"]["resourceVersion"] = json!((rv(current) + 1).to_string());
                    *lease = Some(l.clone());
                    (StatusCode::OK, l)
                }
                _ => (StatusCode::NOT_FOUND, status(404, "NotFound")),
            }
        }

        fn set(&self, holder: Option<&str>, rv: u64) {
            *self.lease.lock().unwrap() = Some(json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "mailshift-controller", "namespace": "ops",
                             "resourceVersion": rv.to_string()},
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                         "renewTime": "2020-01-01T00:00:00.000000Z", "leaseTransitions": 4},
            }));
        }

        fn spec(&self) -> Value {
            self.lease.lock().unwrap().as_ref().unwrap()["spec"].clone()
        }

        fn writes(&self) -> usize {
            self.writes.lock().unwrap().len()
        }
    }

    fn elector(client: Client) -> Elector {
        Elector::new(
            client,
            "ops",
            "mailshift-controller",
            "me",
            LeaseTimes::default(),
        )
    }

    #[tokio::test]
    async fn acquires_a_lease_nobody_holds() {
        let (client, fake) = Fake::start();
        let mut e = elector(client);
        assert!(
            e.try_acquire_or_renew(Instant::now()).await.unwrap(),
            "created"
        );
        assert_eq!(fake.spec()["holderIdentity"], "me");
        assert_eq!(fake.spec()["leaseDurationSeconds"], 15);
        assert_eq!(fake.spec()["leaseTransitions"], 0);

        // A Lease released by its last holder is free at once.
        let (client, fake) = Fake::start();
        fake.set(None, 7);
        let mut e = elector(client);
        assert!(e.try_acquire_or_renew(Instant::now()).await.unwrap());
        assert_eq!(fake.spec()["holderIdentity"], "me");
        assert_eq!(fake.spec()["leaseTransitions"], 5);
    }

    #[tokio::test]
    async fn does_not_take_a_lease_another_holder_keeps_renewing() {
        let (client, fake) = Fake::start();
        fake.set(Some("other"), 7);
        let mut e = elector(client);
        let t = Instant::now();
        // Its renewTime is years old, but expiry is measured on this replica's clock from
        // when it first saw the record: clock skew cannot make it look expired.
        assert!(!e.try_acquire_or_renew(t).await.unwrap());
        assert!(
            !e.try_acquire_or_renew(t + Duration::from_secs(10))
                .await
                .unwrap()
        );
        // The holder renews (a new resourceVersion): the count starts again.
        fake.set(Some("other"), 8);
        assert!(
            !e.try_acquire_or_renew(t + Duration::from_secs(12))
                .await
                .unwrap()
        );
        assert!(
            !e.try_acquire_or_renew(t + Duration::from_secs(20))
                .await
                .unwrap()
        );
        assert_eq!(fake.writes(), 0);
        assert_eq!(e.holder(), Some("other"));
    }

    #[tokio::test]
    async fn takes_over_a_lease_not_renewed_for_its_duration() {
        let (client, fake) = Fake::start();
        fake.set(Some("other"), 7);
        let mut e = elector(client);
        let t = Instant::now();
        assert!(!e.try_acquire_or_renew(t).await.unwrap());
        assert!(
            e.try_acquire_or_renew(t + Duration::from_secs(15))
                .await
                .unwrap()
        );
        let writes = fake.writes.lock().unwrap().clone();
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].0, Method::PUT);
        assert_eq!(
            writes[0].1["metadata"]["resourceVersion"], "7",
            "written against the version read"
        );
        assert_eq!(fake.spec()["holderIdentity"], "me");
        assert_eq!(fake.spec()["leaseTransitions"], 5);
    }

    #[tokio::test]
    async fn renews_its_own_lease() {
        let (client, fake) = Fake::start();
        fake.set(Some("me"), 7);
        let mut e = elector(client);
        assert!(e.try_acquire_or_renew(Instant::now()).await.unwrap());
        let spec = fake.spec();
        assert_eq!(spec["holderIdentity"], "me");
        assert_eq!(spec["leaseTransitions"], 4, "a renewal is no transition");
        assert_ne!(spec["renewTime"], "2020-01-01T00:00:00.000000Z");
        assert_eq!(fake.writes(), 1);
    }

    #[tokio::test]
    async fn of_two_racing_writers_the_later_one_loses() {
        let (client, fake) = Fake::start();
        fake.set(None, 7);
        *fake.race.lock().unwrap() = true;
        let mut e = elector(client);
        assert!(!e.try_acquire_or_renew(Instant::now()).await.unwrap());
        assert_eq!(fake.writes(), 0);
    }

    #[tokio::test]
    async fn release_frees_only_its_own_lease() {
        let (client, fake) = Fake::start();
        fake.set(Some("other"), 7);
        let mut e = elector(client);
        e.release().await.unwrap();
        assert_eq!(fake.writes(), 0);
        fake.set(Some("me"), 8);
        e.release().await.unwrap();
        assert_eq!(fake.spec()["holderIdentity"], Value::Null);
        assert_eq!(fake.spec()["leaseDurationSeconds"], 1);
    }

    #[tokio::test(start_paused = true)]
    async fn leading_ends_when_another_replica_holds_the_lease() {
        let (client, fake) = Fake::start();
        let mut e = elector(client);
        e.acquire().await;
        fake.set(Some("other"), 99);
        assert_eq!(
            e.keep().await,
            LeaseLost {
                holder: Some("other".into())
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn leading_ends_when_the_lease_cannot_be_renewed_in_time() {
        let (client, fake) = Fake::start();
        let mut e = elector(client);
        e.acquire().await;
        *fake.down.lock().unwrap() = true;
        let started = Instant::now();
        assert_eq!(e.keep().await, LeaseLost { holder: None });
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(10) && took < Duration::from_secs(15),
            "stops after the renew deadline, before others may take over: {took:?}"
        );
    }
}
