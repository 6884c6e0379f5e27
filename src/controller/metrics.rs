//! The controller's metrics, kept and encoded (OpenMetrics text) by `prometheus-client`,
//! with typed label sets.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// What became of a step.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Failed,
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(match self {
            Outcome::Applied => "applied",
            Outcome::Failed => "failed",
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    /// [`crate::plan::Step::kind`].
    step: &'static str,
    outcome: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

/// Counters of reconciles, failures by reason and steps by kind and outcome.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    failures: Family<ReasonLabels, Counter>,
    steps: Family<StepLabels, Counter>,
    step_seconds: Family<StepLabels, Counter<f64, AtomicU64>>,
    copied_messages: Counter,
    copied_bytes: Counter,
    /// Whether this replica reconciles (holds the Lease, or runs without leader election).
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mailshift");
        let m = Metrics {
            reconciles: Counter::default(),
            failures: Family::default(),
            steps: Family::default(),
            step_seconds: Family::default(),
            copied_messages: Counter::default(),
            copied_bytes: Counter::default(),
            leader: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "reconciles",
            "Reconciles of MailMigrations",
            m.reconciles.clone(),
        );
        registry.register(
            "reconcile_failures",
            "Failed steps and reconciles, by reason",
            m.failures.clone(),
        );
        registry.register(
            "steps",
            "Steps carried out, by kind and outcome",
            m.steps.clone(),
        );
        registry.register(
            "step_seconds",
            "Time spent in steps, by kind and outcome",
            m.step_seconds.clone(),
        );
        registry.register(
            "leader",
            "1 on the replica that reconciles, 0 on one standing by",
            m.leader.clone(),
        );
        registry.register(
            "messages_copied",
            "Messages appended to destinations",
            m.copied_messages.clone(),
        );
        registry.register(
            "bytes_copied",
            "Bytes of the messages appended to destinations",
            m.copied_bytes.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// The `Content-Type` of [`render`](Self::render)'s text.
    pub const CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    pub fn reconciled(&self) {
        self.reconciles.inc();
    }

    pub fn failed(&self, reason: &str) {
        self.failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn step(&self, kind: &'static str, outcome: Outcome, took: Duration) {
        let labels = StepLabels {
            step: kind,
            outcome,
        };
        self.steps.get_or_create(&labels).inc();
        self.step_seconds
            .get_or_create(&labels)
            .inc_by(took.as_secs_f64());
    }

    /// Messages and bytes a copy step appended on a destination.
    pub fn copied(&self, messages: u64, bytes: u64) {
        self.copied_messages.inc_by(messages);
        self.copied_bytes.inc_by(bytes);
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    pub fn reconciles(&self) -> u64 {
        self.reconciles.get()
    }

    pub fn failures(&self, reason: &str) -> u64 {
        self.failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .get()
    }

    /// The OpenMetrics text exposition ([`CONTENT_TYPE`](Self::CONTENT_TYPE)), which
    /// Prometheus reads as well as its own text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let m = Metrics::default();
        m.reconciled();
        m.failed("LoginRefused");
        m.failed("Login\"Refused\"\n");
        m.failed("LoginRefused");
        m.step("InitialSync", Outcome::Applied, Duration::from_millis(1500));
        m.copied(3, 3000);
        m.copied(2, 500);
        assert!(m.render().contains("mailshift_leader 0\n"));
        m.set_leader(true);
        let text = m.render();
        assert!(text.contains("mailshift_leader 1\n"), "{text}");
        assert!(
            text.contains("mailshift_messages_copied_total 5\n"),
            "{text}"
        );
        assert!(
            text.contains("mailshift_bytes_copied_total 3500\n"),
            "{text}"
        );
        assert!(text.contains("mailshift_reconciles_total 1\n"), "{text}");
        assert!(
            text.contains("mailshift_reconcile_failures_total{reason=\"LoginRefused\"} 2\n"),
            "{text}"
        );
        // A reason from elsewhere cannot break the exposition.
        assert!(
            text.contains(r#"mailshift_reconcile_failures_total{reason="Login\"Refused\"\n"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("mailshift_steps_total{step=\"InitialSync\",outcome=\"applied\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "mailshift_step_seconds_total{step=\"InitialSync\",outcome=\"applied\"} 1.5\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(m.failures("LoginRefused"), 2);
        assert_eq!(m.reconciles(), 1);
    }
}
