//! Routing calls per second and latency percentiles: a WASM policy (fresh store and instantiation
//! included in every call) beside the built-in strategy, on one thread.
//!
//! `cargo run --release -p switchboard-policies --example bench_routing [-- CALLS]`
//!
//! Add `--features pooling` for wasmtime's pooling instance allocator (see `host.rs`).

use std::time::{Duration, Instant};

use switchboard_policies::types::Handoff;
use switchboard_policies::{
    sample_closed_conversation, sample_handoff, BuiltinQuality, BuiltinRouting, PolicyEngine,
    PolicyEngineConfig, PolicyId,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/{name}.wasm", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

struct Summary {
    calls_per_second: f64,
    p50: Duration,
    p99: Duration,
    p999: Duration,
    max: Duration,
}

fn measure(calls: usize, mut call: impl FnMut(usize)) -> Summary {
    for index in 0..calls / 10 {
        call(index); // warm up
    }
    let mut samples = Vec::with_capacity(calls);
    let started = Instant::now();
    for index in 0..calls {
        let call_started = Instant::now();
        call(index);
        samples.push(call_started.elapsed());
    }
    let total = started.elapsed();
    samples.sort_unstable();
    let at = |fraction: f64| {
        samples[((samples.len() as f64 * fraction) as usize).min(samples.len() - 1)]
    };
    Summary {
        calls_per_second: calls as f64 / total.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: samples[samples.len() - 1],
    }
}

fn print(name: &str, summary: &Summary) {
    println!(
        "{name:<34} {:>10.0} calls/s   p50 {:>8.1} µs   p99 {:>8.1} µs   p99.9 {:>8.1} µs   max {:>8.1} µs",
        summary.calls_per_second,
        summary.p50.as_secs_f64() * 1e6,
        summary.p99.as_secs_f64() * 1e6,
        summary.p999.as_secs_f64() * 1e6,
        summary.max.as_secs_f64() * 1e6,
    );
}

/// The 1, 5 and 15 minute load averages (Linux), to read the figures against.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

fn inputs() -> Vec<Handoff> {
    (0..16u8)
        .map(|index| {
            let mut input = sample_handoff();
            input.customer.vip_level = index % 6;
            input.language = if index % 2 == 0 {
                "zh-CN".into()
            } else {
                "en".into()
            };
            input.now_unix_ms += u64::from(index) * 3_600_000;
            input
        })
        .collect()
}

fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .and_then(|value| value.parse().ok())
        .unwrap_or(50_000);
    let engine = PolicyEngine::new(PolicyEngineConfig::default()).expect("engine");
    let inputs = inputs();
    let builtin = BuiltinRouting::default();
    let allocator = if cfg!(feature = "pooling") {
        "pooling allocator"
    } else {
        "on-demand allocator (an mmap per call)"
    };
    println!(
        "{calls} calls per row, one thread, fresh store + instantiate per WASM call, {allocator}; load average {}\n",
        load_average()
    );

    for name in ["vip-routing", "language-routing", "office-hours"] {
        let started = Instant::now();
        let policy = engine
            .load_routing(PolicyId::new("bench", 1), &fixture(name))
            .expect("load");
        let load = started.elapsed();
        let summary = measure(calls, |index| {
            let outcome = policy.route(&inputs[index % inputs.len()], &builtin);
            if let Some(failure) = outcome.failure {
                eprintln!("{failure}");
            }
        });
        print(
            &format!("wasm {name} (load {:.0} ms)", load.as_secs_f64() * 1e3),
            &summary,
        );
    }

    let summary = measure(calls, |index| {
        std::hint::black_box(builtin.route(&inputs[index % inputs.len()]));
    });
    print("built-in routing", &summary);

    let quality = engine
        .load_quality(PolicyId::new("bench", 1), &fixture("quality-scorer"))
        .expect("load");
    let conversation = sample_closed_conversation();
    let summary = measure(calls / 5, |_| {
        let outcome = quality.score(&conversation, &BuiltinQuality::default());
        if let Some(failure) = outcome.failure {
            eprintln!("{failure}");
        }
    });
    print("wasm quality-scorer (6 messages)", &summary);
    let summary = measure(calls / 5, |_| {
        std::hint::black_box(BuiltinQuality::default().score(&conversation));
    });
    print("built-in quality", &summary);

    println!("\nload average {}", load_average());
    let metrics = engine.metrics().snapshot();
    println!(
        "\nrouting ok {} failures {}",
        metrics.routing.ok,
        metrics.routing.failures()
    );
}
