//! Encoder speed: load time, per-turn latency (one text per run), batched throughput, the
//! async service under concurrent turns, and RSS. Prints one JSON object.
//!
//! ```text
//! cargo run --release -p switchboard-models --example bench_encoder -- SENTENCES_FILE [THREADS] [SPINNING]
//! ```
//! SPINNING is `off` (the product default, [`EncoderConfig::intra_op_spinning`]) or `on` (ONNX
//! Runtime's own default, what Python onnxruntime uses unless told otherwise). The `stages_ms`
//! object is the mean time per call of each stage of the single-text and batched passes.
//! Normally run through `models/bench/bench_encoder.sh`, which also runs Python onnxruntime on
//! the same model and sentences.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_models::{
    default_model_dir, Encoder, EncoderConfig, EncoderFiles, EncoderService, ServiceConfig,
    StageTimes, TextKind,
};

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Mean milliseconds per ONNX run of each stage.
fn stages_json(t: &StageTimes) -> serde_json::Value {
    let per_run = |d: Duration| d.as_secs_f64() * 1000.0 / t.runs.max(1) as f64;
    serde_json::json!({
        "runs": t.runs,
        "prepare": per_run(t.prepare),
        "tokenize": per_run(t.tokenize),
        "inputs": per_run(t.inputs),
        "run": per_run(t.run),
        "outputs": per_run(t.outputs),
        "total": per_run(t.total()),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let file = args
        .first()
        .ok_or("usage: bench_encoder SENTENCES_FILE [THREADS]")?;
    let threads: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let spinning = match args.get(2).map(String::as_str) {
        None | Some("off") => false,
        Some("on") => true,
        Some(other) => return Err(format!("SPINNING is on or off, not {other}").into()),
    };
    let sentences: Vec<String> = std::fs::read_to_string(file)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();

    let t = Instant::now();
    let config = EncoderConfig {
        intra_threads: threads,
        intra_op_spinning: spinning,
        ..EncoderConfig::default()
    };
    let encoder = Encoder::load_with(EncoderFiles::in_dir(default_model_dir()), config)?;
    let load_s = t.elapsed().as_secs_f64();
    encoder.embed_blocking(&refs[..8.min(refs.len())])?; // warm-up

    // One text per run, sequentially: the latency of one turn with nothing else going on.
    let mut single_ms = Vec::with_capacity(refs.len());
    let t = Instant::now();
    let mut single_stages = StageTimes::default();
    for text in &refs {
        let s = Instant::now();
        encoder.embed_kind_profiled(TextKind::Query, &[text], &mut single_stages)?;
        single_ms.push(s.elapsed().as_secs_f64() * 1000.0);
    }
    let single_per_s = refs.len() as f64 / t.elapsed().as_secs_f64();
    single_ms.sort_by(f64::total_cmp);

    // Batches of 32 (sorted by length inside embed_blocking).
    let t = Instant::now();
    let rounds = 2;
    let mut batched_stages = StageTimes::default();
    for _ in 0..rounds {
        encoder.embed_kind_profiled(TextKind::Query, &refs, &mut batched_stages)?;
    }
    let batched_per_s = (rounds * refs.len()) as f64 / t.elapsed().as_secs_f64();

    // The async service: 16 concurrent turns at a time, no cache hits (cache off).
    let encoder = Arc::new(encoder);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let service = EncoderService::start_shared(
        Arc::clone(&encoder),
        ServiceConfig {
            cache_capacity: 0,
            batch_window: Duration::from_micros(1500),
            ..ServiceConfig::default()
        },
    )?;
    let (service_ms, service_per_s) = runtime.block_on(async {
        let t = Instant::now();
        let mut latencies = Vec::new();
        for chunk in refs.chunks(16) {
            let mut tasks = Vec::new();
            for text in chunk {
                let service = service.clone();
                let text = text.to_string();
                tasks.push(tokio::spawn(async move {
                    let s = Instant::now();
                    service
                        .embed(&text)
                        .await
                        .map(|_| s.elapsed().as_secs_f64() * 1000.0)
                }));
            }
            for task in tasks {
                latencies.push(
                    task.await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?,
                );
            }
        }
        let per_s = refs.len() as f64 / t.elapsed().as_secs_f64();
        latencies.sort_by(f64::total_cmp);
        Ok::<_, String>((latencies, per_s))
    })?;
    let stats = service.stats();

    println!(
        "{}",
        serde_json::json!({
            "runtime": "rust ort 2.0.0-rc.15 + tokenizers 0.22",
            "intra_op_spinning": spinning,
            "sentences": refs.len(),
            "threads": if threads == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { threads },
            "load_s": load_s,
            "single_per_s": single_per_s,
            "single_p50_ms": percentile(&single_ms, 0.5),
            "single_p99_ms": percentile(&single_ms, 0.99),
            "batched32_per_s": batched_per_s,
            "service16_per_s": service_per_s,
            "service16_p50_ms": percentile(&service_ms, 0.5),
            "service16_p99_ms": percentile(&service_ms, 0.99),
            "service16_batches": stats.batches,
            "rss_mib": rss_kib("VmRSS:") as f64 / 1024.0,
            "peak_rss_mib": rss_kib("VmHWM:") as f64 / 1024.0,
            "stages_ms": {
                "single": stages_json(&single_stages),
                "batched32": stages_json(&batched_stages),
            },
        })
    );
    Ok(())
}
