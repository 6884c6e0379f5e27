//! What every reconcile shares: the client, the event recorder, the engine factory, the
//! cache directory, metrics, the clock, and what each migration's loop has observed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use super::{EngineFactory, MANAGER, Metrics};
use crate::reconcile::facts::Facts;

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
    /// What each migration's loop (`namespace/name`) has observed on the servers, so that a
    /// reconcile looks again only at what may have changed. Lost on a restart, which then
    /// observes everything once.
    facts: Mutex<HashMap<String, Facts>>,
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
            facts: Mutex::default(),
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

    /// The clock itself, for the reconcile loop.
    pub fn clock(&self) -> fn() -> DateTime<Utc> {
        self.clock
    }

    pub(super) fn facts(&self, key: &str) -> Facts {
        let facts = self.facts.lock().unwrap_or_else(|e| e.into_inner());
        facts.get(key).cloned().unwrap_or_default()
    }

    pub(super) fn set_facts(&self, key: &str, value: Option<Facts>) {
        let mut facts = self.facts.lock().unwrap_or_else(|e| e.into_inner());
        match value {
            Some(f) => {
                facts.insert(key.to_owned(), f);
            }
            None => {
                facts.remove(key);
            }
        }
    }
}
