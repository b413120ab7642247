//! CLINC150 through the product path: a tenant trains on CLINC150 `train` with no
//! out-of-scope examples (what `POST intents/train` does: `builtin::training_set` +
//! `TrainConfig::for_examples`), then classifies `test` and `oos_test`. Out-of-scope
//! scores that need no tenant-provided out-of-scope examples are compared; every threshold is
//! chosen on `val` in-scope lines only (a target share of them kept), `oos_val` is reported for
//! information, test splits are only reported on.
//!
//! `cargo run --release -p switchboard-models --example eval_product_oos [-- --explore]`
//! (`--explore` adds the comparison of out-of-scope scores: softmax, centroid, kNN).
//! (embeddings cached in `.cache/embeddings/` like `eval_intents`).

#[path = "support/embedding_cache.rs"]
mod embedding_cache;

use embedding_cache::Cache;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use switchboard_models::{builtin, cosine, Encoder, Example, IntentHead, Sample, TrainConfig};

type Data = Vec<(String, String)>;

fn main() {
    if let Err(e) = run() {
        eprintln!("eval_product_oos: {e}");
        std::process::exit(1);
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run() -> Result<(), String> {
    let encoder = Encoder::load_default().map_err(|e| e.to_string())?;
    let cache = Cache::new(&encoder)?;
    let raw = std::fs::read_to_string(root().join("../shared/eval/clinc150_data_full.json"))
        .map_err(|e| e.to_string())?;
    let json: BTreeMap<String, Vec<(String, String)>> =
        serde_json::from_str(&raw).map_err(|e| e.to_string())?;
    let split = |n: &str| json.get(n).cloned().unwrap_or_default();
    let (train, val, test, oos_val, oos_test) = (
        split("train"),
        split("val"),
        split("test"),
        split("oos_val"),
        split("oos_test"),
    );
    let train_x = cache.embed(&encoder, "clinc_train", &train)?;
    let val_x = cache.embed(&encoder, "clinc_val", &val)?;
    let test_x = cache.embed(&encoder, "clinc_test", &test)?;
    let oos_val_x = cache.embed(&encoder, "clinc_oos_val", &oos_val)?;
    let oos_test_x = cache.embed(&encoder, "clinc_oos_test", &oos_test)?;

    // The product's training set: the tenant's examples plus the built-in intents.
    let examples: Vec<Example> = train.iter().map(|(t, l)| Example::new(t, l)).collect();
    let set = builtin::training_set(&examples);
    let extra: Vec<&Example> = set[..set.len() - examples.len()].iter().collect();
    let extra_texts: Vec<&str> = extra.iter().map(|e| e.text.as_str()).collect();
    let extra_x = encoder
        .embed_blocking(&extra_texts)
        .map_err(|e| e.to_string())?;
    let mut samples: Vec<Sample<'_>> = extra
        .iter()
        .zip(&extra_x)
        .map(|(e, x)| Sample::new(x, Some(e.text.as_str()), e.label.as_str()))
        .collect();
    samples.extend(
        train
            .iter()
            .zip(&train_x)
            .map(|((t, l), x)| Sample::new(x, Some(t.as_str()), l.as_str())),
    );
    let config = TrainConfig::for_examples(set.len());
    let t = Instant::now();
    let (head, report) = IntentHead::train_samples(&samples, &config).map_err(|e| e.to_string())?;
    println!(
        "product head: {} examples, hidden {}, threshold {:.3}, trained in {:.0} s",
        report.examples,
        report.hidden,
        report.threshold,
        t.elapsed().as_secs_f32()
    );

    // The product's own decisions (what `intents/classify` returns).
    let product = |d: &Data, xs: &[Vec<f32>], oos: bool| -> f32 {
        let right = d
            .iter()
            .zip(xs)
            .filter(|((t, l), x)| match head.classify_turn(t, x) {
                Ok(p) if oos => p.out_of_scope,
                Ok(p) => !p.out_of_scope && p.label == *l,
                Err(_) => false,
            })
            .count();
        right as f32 / d.len().max(1) as f32
    };
    println!(
        "PRODUCT PATH (centroid_keep {:.2}): val in-scope {:.2}% oos_val recall {:.2}% | test in-scope accuracy {:.2}%, oos_test recall {:.2}%",
        config.centroid_keep,
        product(&val, &val_x, false) * 100.0,
        product(&oos_val, &oos_val_x, true) * 100.0,
        product(&test, &test_x, false) * 100.0,
        product(&oos_test, &oos_test_x, true) * 100.0
    );
    if !std::env::args().any(|a| a == "--explore") {
        return Ok(());
    }

    // Centroids of the tenant's labels (unit vectors).
    let mut sums: BTreeMap<&str, Vec<f32>> = BTreeMap::new();
    for ((_, l), x) in train.iter().zip(&train_x) {
        let s = sums.entry(l.as_str()).or_insert_with(|| vec![0.0; x.len()]);
        for (a, b) in s.iter_mut().zip(x) {
            *a += b;
        }
    }
    let centroids: Vec<(&str, Vec<f32>)> = sums
        .into_iter()
        .map(|(l, mut v)| {
            let n = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-6);
            v.iter_mut().for_each(|a| *a /= n);
            (l, v)
        })
        .collect();

    // Per item: (predicted label, softmax score, centroid cosine of the predicted label,
    // best centroid cosine, best cosine to a training example).
    let score = |x: &[f32], text: &str| -> (String, f32, f32, f32, f32) {
        let p = head.classify_turn(text, x).expect("classify");
        let cp = centroids
            .iter()
            .find(|(l, _)| *l == p.label)
            .map_or(0.0, |(_, c)| cosine(x, c));
        let cb = centroids
            .iter()
            .map(|(_, c)| cosine(x, c))
            .fold(f32::MIN, f32::max);
        let knn = train_x
            .iter()
            .map(|t| cosine(x, t))
            .fold(f32::MIN, f32::max);
        (p.label, p.score, cp, cb, knn)
    };
    let scored = |d: &Data, xs: &[Vec<f32>]| -> Vec<(String, String, f32, f32, f32, f32)> {
        d.iter()
            .zip(xs)
            .map(|((t, l), x)| {
                let (p, s, cp, cb, k) = score(x, t);
                (l.clone(), p, s, cp, cb, k)
            })
            .collect()
    };
    let t = Instant::now();
    let val_s = scored(&val, &val_x);
    let oos_val_s = scored(&oos_val, &oos_val_x);
    let test_s = scored(&test, &test_x);
    let oos_test_s = scored(&oos_test, &oos_test_x);
    println!("scored in {:.0} s", t.elapsed().as_secs_f32());
    let names = [
        "softmax",
        "centroid(pred)",
        "centroid(best)",
        "knn",
        "softmax*knn",
    ];
    let pick = |r: &(String, String, f32, f32, f32, f32), k: usize| -> f32 {
        match k {
            0 => r.2,
            1 => r.3,
            2 => r.4,
            3 => r.5,
            _ => r.2.max(1e-6).ln() * 0.05 + r.5,
        }
    };
    let plain = test_s.iter().filter(|r| r.0 == r.1).count() as f32 / test_s.len() as f32;
    println!(
        "test in-scope accuracy without rejection {:.2}%",
        plain * 100.0
    );
    for (k, name) in names.iter().enumerate() {
        for keep in [0.95_f32, 0.97, 0.98, 0.99] {
            // Threshold on val in-scope lines only: keep this share of them.
            let mut v: Vec<f32> = val_s.iter().map(|r| pick(r, k)).collect();
            v.sort_by(f32::total_cmp);
            let th = v[((1.0 - keep) * v.len() as f32) as usize];
            let eval = |ins: &[(String, String, f32, f32, f32, f32)],
                        oos: &[(String, String, f32, f32, f32, f32)]| {
                let acc = ins
                    .iter()
                    .filter(|r| r.0 == r.1 && pick(r, k) >= th)
                    .count() as f32
                    / ins.len() as f32;
                let rec = oos.iter().filter(|r| pick(r, k) < th).count() as f32 / oos.len() as f32;
                (acc, rec)
            };
            let (va, vr) = eval(&val_s, &oos_val_s);
            let (ta, tr) = eval(&test_s, &oos_test_s);
            println!(
                "{name:<15} keep {keep:.2} th {th:.4}: val in-scope {:.2}% oos_val recall {:.2}% | test in-scope {:.2}% oos_test recall {:.2}%",
                va * 100.0,
                vr * 100.0,
                ta * 100.0,
                tr * 100.0
            );
        }
    }
    Ok(())
}
