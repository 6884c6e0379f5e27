//! What every reconcile shares: the client, the event recorder, the engine factory, the
//! cache directory, metrics, the clock, and each migration's failures in a row.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use super::{EngineFactory, MANAGER, Metrics};
use crate::plan::{Failure, Step};

/// Shared state of the controller's reconciles.
pub struct Context<F> {
    pub client: Client,
    pub recorder: Recorder,
    pub engines: F,
    /// The engine's per-folder caches and the executor's records, per migration under
    /// `<namespace>/<name>/`. Only caches: losing them costs a full comparison.
    pub cache_dir: PathBuf,
    pub metrics: Arc<Metrics>,
    clock: fn() -> DateTime<Utc>,
    /// The image copy Jobs run (`--job-image`).
    pub job_image: String,
    /// Each migration's copy Jobs: backoff and failures already counted.
    pub(super) jobs: super::jobs::Book,
    /// The last failed step of each migration (`namespace/name`), for the generation it
    /// failed in: a new generation starts counting again.
    failures: Mutex<HashMap<String, (i64, Step, Failure)>>,
}

impl<F: EngineFactory> Context<F> {
    pub fn new(client: Client, engines: F, cache_dir: &Path, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            engines,
            cache_dir: cache_dir.to_path_buf(),
            metrics,
            clock: Utc::now,
            job_image: super::jobs::DEFAULT_IMAGE.to_owned(),
            jobs: Default::default(),
            failures: Mutex::default(),
        }
    }

    /// Read time from `clock` (tests fix it).
    pub fn with_clock(mut self, clock: fn() -> DateTime<Utc>) -> Self {
        self.clock = clock;
        self
    }

    /// Copy Jobs run `image`.
    pub fn with_job_image(mut self, image: impl Into<String>) -> Self {
        self.job_image = image.into();
        self
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    pub(super) fn failure(&self, key: &str, generation: i64) -> Option<(Step, Failure)> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures
            .get(key)
            .filter(|(g, _, _)| *g == generation)
            .map(|(_, s, f)| (s.clone(), f.clone()))
    }

    pub(super) fn set_failure(&self, key: &str, generation: i64, failure: Option<(Step, Failure)>) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match failure {
            Some((s, f)) => {
                failures.insert(key.to_owned(), (generation, s, f));
            }
            None => {
                failures.remove(key);
            }
        }
    }
}
