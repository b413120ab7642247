//! The node's counters for `/metrics` (Prometheus text format): connections, messages,
//! assignments, outbound deliveries, store latency. Plain atomics; rendering reads them.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use switchboard_channels::web::SenderKind;

/// A fixed-bucket latency histogram.
pub struct Histogram {
    bounds_ms: &'static [u64],
    counts: Vec<AtomicU64>,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn new(bounds_ms: &'static [u64]) -> Histogram {
        Histogram {
            bounds_ms,
            counts: (0..=bounds_ms.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        let ms = elapsed.as_millis() as u64;
        let bucket = self
            .bounds_ms
            .iter()
            .position(|bound| ms <= *bound)
            .unwrap_or(self.bounds_ms.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Appends `<name>_bucket`, `_sum` and `_count` lines (seconds).
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (index, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let bound = self
                .bounds_ms
                .get(index)
                .map(|ms| format!("{}", *ms as f64 / 1000.0))
                .unwrap_or_else(|| "+Inf".into());
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

const CONNECTION_KINDS: [&str; 3] = ["web", "mobile", "agent"];
const SENDERS: [&str; 4] = ["customer", "bot", "agent", "system"];
const DELIVERY_OUTCOMES: [&str; 3] = ["sent", "retry", "failed"];

pub struct Metrics {
    connections: [AtomicI64; 3],
    messages: [AtomicU64; 4],
    assignments: AtomicU64,
    deliveries: [AtomicU64; 3],
    /// Storing one customer message (the hot write path).
    pub store_append: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            connections: Default::default(),
            messages: Default::default(),
            assignments: AtomicU64::new(0),
            deliveries: Default::default(),
            store_append: Histogram::new(&[1, 2, 5, 10, 25, 50, 100, 250, 1000]),
        }
    }
}

/// Counts one open connection until dropped.
pub struct ConnectionGuard {
    metrics: Arc<Metrics>,
    kind: usize,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.metrics.connections[self.kind].fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// A connection of `kind` (`web`, `mobile`, `agent`; anything else counts as `web`).
    pub fn connected(self: &Arc<Self>, kind: &str) -> ConnectionGuard {
        let kind = CONNECTION_KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(0);
        self.connections[kind].fetch_add(1, Ordering::Relaxed);
        ConnectionGuard {
            metrics: self.clone(),
            kind,
        }
    }

    pub fn message(&self, sender: SenderKind) {
        let index = SENDERS
            .iter()
            .position(|s| *s == sender.as_str())
            .unwrap_or(3);
        self.messages[index].fetch_add(1, Ordering::Relaxed);
    }

    pub fn assigned(&self) {
        self.assignments.fetch_add(1, Ordering::Relaxed);
    }

    /// One outbound delivery attempt ended: `sent`, `retry` or `failed`.
    pub fn delivery(&self, outcome: &str) {
        if let Some(index) = DELIVERY_OUTCOMES.iter().position(|o| *o == outcome) {
            self.deliveries[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP switchboard_connections Open connections by kind."
        );
        let _ = writeln!(out, "# TYPE switchboard_connections gauge");
        for (kind, count) in CONNECTION_KINDS.iter().zip(&self.connections) {
            let _ = writeln!(
                out,
                "switchboard_connections{{kind=\"{kind}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP switchboard_messages_total Messages stored, by sender."
        );
        let _ = writeln!(out, "# TYPE switchboard_messages_total counter");
        for (sender, count) in SENDERS.iter().zip(&self.messages) {
            let _ = writeln!(
                out,
                "switchboard_messages_total{{sender=\"{sender}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# TYPE switchboard_assignments_total counter");
        let _ = writeln!(
            out,
            "switchboard_assignments_total {}",
            self.assignments.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP switchboard_deliveries_total Outbound (WeChat, Douyin, push) delivery attempts by outcome.");
        let _ = writeln!(out, "# TYPE switchboard_deliveries_total counter");
        for (outcome, count) in DELIVERY_OUTCOMES.iter().zip(&self.deliveries) {
            let _ = writeln!(
                out,
                "switchboard_deliveries_total{{outcome=\"{outcome}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        self.store_append.render(
            out,
            "switchboard_store_append_seconds",
            "Storing one customer message.",
        );
    }
}
