//! The controller's metrics, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Steps by (kind, outcome): (count, seconds).
type StepCounters = BTreeMap<(String, &'static str), (u64, f64)>;

/// Counters of reconciles, failures by reason and steps by kind and outcome.
#[derive(Debug, Default)]
pub struct Metrics {
    reconciles: AtomicU64,
    failures: Mutex<BTreeMap<String, u64>>,
    /// (step kind, outcome) → (count, seconds).
    steps: Mutex<StepCounters>,
    copied_messages: AtomicU64,
    copied_bytes: AtomicU64,
    /// Whether this replica reconciles (holds the Lease, or runs without leader election).
    leader: AtomicBool,
}

impl Metrics {
    pub fn reconciled(&self) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
    }

    pub fn failed(&self, reason: &str) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        *f.entry(reason.to_owned()).or_default() += 1;
    }

    pub fn step(&self, kind: &str, ok: bool, took: Duration) {
        let outcome = if ok { "applied" } else { "failed" };
        let mut s = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        let e = s.entry((kind.to_owned(), outcome)).or_default();
        e.0 += 1;
        e.1 += took.as_secs_f64();
    }

    /// Messages and bytes a copy step appended on a destination.
    pub fn copied(&self, messages: u64, bytes: u64) {
        self.copied_messages.fetch_add(messages, Ordering::Relaxed);
        self.copied_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    pub fn reconciles(&self) -> u64 {
        self.reconciles.load(Ordering::Relaxed)
    }

    pub fn failures(&self, reason: &str) -> u64 {
        let f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.get(reason).copied().unwrap_or(0)
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP mailshift_reconciles_total Reconciles of MailMigrations.\n# TYPE mailshift_reconciles_total counter\nmailshift_reconciles_total {}",
            self.reconciles()
        );
        let _ = writeln!(
            out,
            "# HELP mailshift_reconcile_failures_total Failed steps and reconciles, by reason.\n# TYPE mailshift_reconcile_failures_total counter"
        );
        for (reason, n) in self
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "mailshift_reconcile_failures_total{{reason=\"{}\"}} {n}",
                escape(reason)
            );
        }
        let steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            out,
            "# HELP mailshift_steps_total Steps carried out, by kind and outcome.\n# TYPE mailshift_steps_total counter"
        );
        for ((kind, outcome), (n, _)) in steps.iter() {
            let _ = writeln!(
                out,
                "mailshift_steps_total{{step=\"{}\",outcome=\"{outcome}\"}} {n}",
                escape(kind)
            );
        }
        let _ = writeln!(
            out,
            "# HELP mailshift_step_seconds_total Time spent in steps, by kind and outcome.\n# TYPE mailshift_step_seconds_total counter"
        );
        for ((kind, outcome), (_, secs)) in steps.iter() {
            let _ = writeln!(
                out,
                "mailshift_step_seconds_total{{step=\"{}\",outcome=\"{outcome}\"}} {secs}",
                escape(kind)
            );
        }
        let _ = writeln!(
            out,
            "# HELP mailshift_leader 1 on the replica that reconciles, 0 on one standing by.\n# TYPE mailshift_leader gauge\nmailshift_leader {}",
            u8::from(self.leader.load(Ordering::Relaxed))
        );
        let _ = writeln!(
            out,
            "# HELP mailshift_messages_copied_total Messages appended to destinations.\n# TYPE mailshift_messages_copied_total counter\nmailshift_messages_copied_total {}",
            self.copied_messages.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP mailshift_bytes_copied_total Bytes of the messages appended to destinations.\n# TYPE mailshift_bytes_copied_total counter\nmailshift_bytes_copied_total {}",
            self.copied_bytes.load(Ordering::Relaxed)
        );
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let m = Metrics::default();
        m.reconciled();
        m.failed("LoginRefused");
        m.failed("LoginRefused");
        m.step("InitialSync", true, Duration::from_millis(1500));
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
        assert!(text.contains("mailshift_reconcile_failures_total{reason=\"LoginRefused\"} 2\n"));
        assert!(
            text.contains("mailshift_steps_total{step=\"InitialSync\",outcome=\"applied\"} 1\n")
        );
        assert!(text.contains(
            "mailshift_step_seconds_total{step=\"InitialSync\",outcome=\"applied\"} 1.5\n"
        ));
    }
}
