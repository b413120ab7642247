//! Attachment uploads under load: VISITORS visitors upload at once, each PER_VISITOR images of a
//! given size, to the real server (SQLite, blobs in files, in this process) over HTTP. Two
//! phases in one process: a baseline of small images (100 KB) and the measured size (1 MB by
//! default). Each phase prints uploads/s, MB/s, latency percentiles and the process's peak
//! resident memory over the phase (VmHWM after resetting it through /proc/self/clear_refs), and
//! the ratios of the measured phase to the baseline: the peak must stay flat (the server streams
//! bodies to disk), while the bytes moved grow tenfold.
//!
//! `cargo run --release -p switchboard-tests --example bench_uploads -- [VISITORS] [PER_VISITOR] [KB] [postgres]`
//! (defaults 50 visitors, 20 images each, 1,024 KB; `postgres`: the store and its blobs on a fresh
//! database of the local PostgreSQL server instead of SQLite and files).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use engine::limits::Rate;
use serde_json::{json, Value};
use switchboard_tests::TestApp;

/// A PNG of about `bytes` bytes: noise (incompressible), so its size is close to its pixels'.
fn noisy_png(bytes: usize, seed: u32) -> Bytes {
    let side = ((bytes / 3) as f64).sqrt() as u32;
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    let image = image::RgbImage::from_fn(side, side, |_, _| {
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state & 0xff) as u8
        };
        image::Rgb([next(), next(), next()])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    Bytes::from(out.into_inner())
}

/// A memory line of /proc/self/status (`VmHWM`: the peak since the last reset, `VmRSS`: now),
/// in MB.
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets VmHWM to the current RSS (Linux: writing 5 to clear_refs).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

struct Phase {
    uploads: usize,
    megabytes: f64,
    seconds: f64,
    p50: Duration,
    p99: Duration,
    peak_growth_mb: f64,
    retried: usize,
}

async fn phase(app: &Arc<TestApp>, visitors: &[String], per_visitor: usize, kb: usize) -> Phase {
    // A few distinct images, shared by every upload (the client holds no copy per request).
    let images: Vec<Bytes> = (0..4).map(|seed| noisy_png(kb * 1024, seed + 1)).collect();
    let bytes_each: f64 = images.iter().map(|i| i.len() as f64).sum::<f64>() / images.len() as f64;
    tokio::time::sleep(Duration::from_millis(300)).await;
    reset_peak();
    let before = status_mb("VmRSS");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (index, token) in visitors.iter().enumerate() {
        let (app, token, images) = (app.clone(), token.clone(), images.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_visitor);
            let mut retried = 0;
            for n in 0..per_visitor {
                let body = images[(index + n) % images.len()].clone();
                let sent = Instant::now();
                loop {
                    let response = app
                        .http
                        .post(app.url(&format!("/v1/web/attachments?name=photo-{n}.png")))
                        .bearer_auth(&token)
                        .body(body.clone())
                        .send()
                        .await
                        .expect("upload");
                    let status = response.status().as_u16();
                    let answer: Value = response.json().await.unwrap_or(Value::Null);
                    match status {
                        201 => break,
                        429 | 503 => {
                            retried += 1;
                            let wait = answer["retry_after_ms"].as_u64().unwrap_or(50);
                            tokio::time::sleep(Duration::from_millis(wait.max(10))).await;
                        }
                        _ => panic!("upload refused: {status} {answer}"),
                    }
                }
                latencies.push(sent.elapsed());
            }
            (latencies, retried)
        }));
    }
    let mut latencies = Vec::new();
    let mut retried = 0;
    for task in tasks {
        let (mine, again) = task.await.expect("visitor");
        latencies.extend(mine);
        retried += again;
    }
    let seconds = started.elapsed().as_secs_f64();
    let peak = status_mb("VmHWM");
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Phase {
        uploads: latencies.len(),
        megabytes: latencies.len() as f64 * bytes_each / (1024.0 * 1024.0),
        seconds,
        p50: at(0.5),
        p99: at(0.99),
        peak_growth_mb: peak - before,
        retried,
    }
}

fn report(name: &str, phase: &Phase) {
    println!(
        "{name:<10} {:>6} uploads in {:>6.1} s: {:>7.1} uploads/s, {:>6.1} MB/s, p50 {:>7.1} ms, p99 {:>7.1} ms, peak RSS +{:.1} MB over the phase ({} retried after 429/503)",
        phase.uploads,
        phase.seconds,
        phase.uploads as f64 / phase.seconds,
        phase.megabytes / phase.seconds,
        phase.p50.as_secs_f64() * 1000.0,
        phase.p99.as_secs_f64() * 1000.0,
        phase.peak_growth_mb,
        phase.retried,
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let words: Vec<String> = std::env::args().skip(1).collect();
    // `postgres` anywhere: the store (and so the blobs) on a fresh database of the local server.
    let postgres = words.iter().any(|word| word == "postgres");
    let args: Vec<usize> = words
        .iter()
        .filter(|word| *word != "postgres")
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let visitors_wanted = args.first().copied().unwrap_or(50);
    let per_visitor = args.get(1).copied().unwrap_or(20);
    let kb = args.get(2).copied().unwrap_or(1024);
    let database = if postgres {
        Some(
            switchboard_tests::PostgresDatabase::create()
                .await
                .expect("a database on the local PostgreSQL server"),
        )
    } else {
        None
    };
    let database_url = database.as_ref().map(|database| database.url.clone());

    // One address uploads everything: its limits are raised, as are the tenant's per customer.
    let app = TestApp::spawn_with(|settings| {
        settings.database_url = database_url;
        settings.log.filter = "error".into();
        settings.limits.sessions = Rate {
            per_second: 10_000,
            burst: 10_000,
        };
        settings.limits.messages = Rate {
            per_second: 10_000,
            burst: 10_000,
        };
    })
    .await;
    let response = app
        .http
        .patch(app.url("/v1/tenants/acme/settings"))
        .bearer_auth(&app.admin_key)
        .json(&json!({"limits": {
            "customer": {"per_second": 1000, "burst": 1000},
            "agent": {"per_second": 10, "burst": 30},
            "tenant": {"per_second": 10000, "burst": 10000}
        }}))
        .send()
        .await
        .expect("settings");
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    app.server.state.chat.forget_tenant_settings("acme");
    let mut visitors = Vec::new();
    for _ in 0..visitors_wanted {
        visitors.push(app.visitor().await);
    }
    let app = Arc::new(app);
    println!(
        "{visitors_wanted} visitors at once, {per_visitor} images each, blobs in {}",
        app.server.state.chat.files.blob_store()
    );
    let baseline = phase(&app, &visitors, per_visitor, 100).await;
    report("100 KB", &baseline);
    let measured = phase(&app, &visitors, per_visitor, kb).await;
    report(&format!("{kb} KB"), &measured);
    println!(
        "ratios {kb} KB / 100 KB: bytes moved {:.1}x, MB/s {:.2}x, uploads/s {:.2}x, peak RSS growth {:.2}x ({:.1} MB vs {:.1} MB)",
        measured.megabytes / baseline.megabytes,
        (measured.megabytes / measured.seconds) / (baseline.megabytes / baseline.seconds),
        (measured.uploads as f64 / measured.seconds) / (baseline.uploads as f64 / baseline.seconds),
        measured.peak_growth_mb / baseline.peak_growth_mb.max(0.1),
        measured.peak_growth_mb,
        baseline.peak_growth_mb,
    );
    if let Some(database) = database {
        database.drop_database().await;
    }
}
