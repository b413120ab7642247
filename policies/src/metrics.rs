//! Counters the gateway exposes at `/metrics`. Lock-free; one set per [`crate::PolicyEngine`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{FailureKind, PolicyKind};

#[derive(Debug, Default)]
struct KindCounters {
    /// Calls answered by the tenant's policy.
    ok: AtomicU64,
    /// Calls that fell back to the built-in strategy, by failure kind.
    failures: [AtomicU64; FailureKind::ALL.len()],
}

/// Call outcomes and compile-cache statistics.
#[derive(Debug, Default)]
pub struct PolicyMetrics {
    routing: KindCounters,
    quality: KindCounters,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KindSnapshot {
    pub ok: u64,
    pub trap: u64,
    pub out_of_fuel: u64,
    pub timeout: u64,
    pub memory_limit: u64,
    pub invalid_answer: u64,
}

impl KindSnapshot {
    pub fn failures(&self) -> u64 {
        self.trap + self.out_of_fuel + self.timeout + self.memory_limit + self.invalid_answer
    }

    pub fn get(&self, kind: FailureKind) -> u64 {
        match kind {
            FailureKind::Trap => self.trap,
            FailureKind::OutOfFuel => self.out_of_fuel,
            FailureKind::Timeout => self.timeout,
            FailureKind::MemoryLimit => self.memory_limit,
            FailureKind::InvalidAnswer => self.invalid_answer,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsSnapshot {
    pub routing: KindSnapshot,
    pub quality: KindSnapshot,
    pub cache_hits: u64,
    pub cache_misses: u64,
}

impl PolicyMetrics {
    fn counters(&self, kind: PolicyKind) -> &KindCounters {
        match kind {
            PolicyKind::Routing => &self.routing,
            PolicyKind::Quality => &self.quality,
        }
    }

    pub(crate) fn record_ok(&self, kind: PolicyKind) {
        self.counters(kind).ok.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_failure(&self, kind: PolicyKind, failure: FailureKind) {
        self.counters(kind).failures[failure.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_cache(&self, hit: bool) {
        let counter = if hit {
            &self.cache_hits
        } else {
            &self.cache_misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let kind = |counters: &KindCounters| {
            let failure =
                |kind: FailureKind| counters.failures[kind.index()].load(Ordering::Relaxed);
            KindSnapshot {
                ok: counters.ok.load(Ordering::Relaxed),
                trap: failure(FailureKind::Trap),
                out_of_fuel: failure(FailureKind::OutOfFuel),
                timeout: failure(FailureKind::Timeout),
                memory_limit: failure(FailureKind::MemoryLimit),
                invalid_answer: failure(FailureKind::InvalidAnswer),
            }
        };
        MetricsSnapshot {
            routing: kind(&self.routing),
            quality: kind(&self.quality),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            cache_misses: self.cache_misses.load(Ordering::Relaxed),
        }
    }

    /// Appends the counters in the Prometheus text format:
    /// `switchboard_policy_calls_total{kind="routing",outcome="ok|trap|out_of_fuel|timeout|memory_limit|invalid_answer"}`
    /// and `switchboard_policy_compile_cache_total{result="hit|miss"}`.
    pub fn render_prometheus(&self, out: &mut String) {
        let snapshot = self.snapshot();
        out.push_str("# HELP switchboard_policy_calls_total Tenant policy calls by outcome; every outcome but ok used the built-in decision.\n");
        out.push_str("# TYPE switchboard_policy_calls_total counter\n");
        for (kind, counters) in [
            (PolicyKind::Routing, snapshot.routing),
            (PolicyKind::Quality, snapshot.quality),
        ] {
            let _ = writeln!(
                out,
                "switchboard_policy_calls_total{{kind=\"{kind}\",outcome=\"ok\"}} {}",
                counters.ok
            );
            for failure in FailureKind::ALL {
                let _ = writeln!(
                    out,
                    "switchboard_policy_calls_total{{kind=\"{kind}\",outcome=\"{failure}\"}} {}",
                    counters.get(failure)
                );
            }
        }
        out.push_str("# HELP switchboard_policy_compile_cache_total Policy component loads by compile-cache result.\n");
        out.push_str("# TYPE switchboard_policy_compile_cache_total counter\n");
        let _ = writeln!(
            out,
            "switchboard_policy_compile_cache_total{{result=\"hit\"}} {}",
            snapshot.cache_hits
        );
        let _ = writeln!(
            out,
            "switchboard_policy_compile_cache_total{{result=\"miss\"}} {}",
            snapshot.cache_misses
        );
    }
}
