//! Intent quality on public data: BANKING77 and CLINC150, trained on train splits only.
//!
//! ```text
//! cargo run --release -p switchboard-models --example eval_intents -- [--eval-dir ../shared/eval] [--only banking77|clinc150] [--with-lexical]
//! ```
//! Paths are relative to the project root. Embeddings are cached in `.cache/embeddings/`
//! (git-ignored), keyed by the model's sha256, so re-runs only retrain heads.
//! Head settings are chosen on training data (BANKING77: a 10% held-out split of train) or the
//! validation split (CLINC150); test splits are only reported on.

#[path = "support/embedding_cache.rs"]
mod embedding_cache;

use embedding_cache::Cache;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use switchboard_models::{
    parse_examples, Encoder, IntentHead, Sample, ThresholdPolicy, TrainConfig, TrainingFormat,
    OUT_OF_SCOPE_LABEL,
};

type Data = Vec<(String, String)>;

fn main() {
    if let Err(e) = run() {
        eprintln!("eval_intents: {e}");
        std::process::exit(1);
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut eval_dir = project_root().join("../shared/eval");
    let mut only: Option<String> = None;
    let mut with_lexical = false;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--eval-dir" => {
                eval_dir = PathBuf::from(args.get(i + 1).ok_or("--eval-dir needs a path")?);
                i += 1;
            }
            "--only" => {
                only = Some(args.get(i + 1).ok_or("--only needs a name")?.clone());
                i += 1;
            }
            "--with-lexical" => with_lexical = true,
            other => return Err(format!("unknown argument {other}")),
        }
        i += 1;
    }
    let started = Instant::now();
    let encoder = Encoder::load_default().map_err(|e| e.to_string())?;
    println!("encoder loaded in {:.2} s", started.elapsed().as_secs_f32());
    let cache = Cache::new(&encoder)?;
    if only.as_deref().is_none_or(|o| o == "banking77") {
        banking77(&encoder, &cache, &eval_dir, with_lexical)?;
    }
    if only.as_deref().is_none_or(|o| o == "clinc150") {
        clinc150(&encoder, &cache, &eval_dir, with_lexical)?;
    }
    Ok(())
}

fn candidates(with_lexical: bool) -> Vec<(&'static str, TrainConfig)> {
    let base = TrainConfig {
        holdout_fraction: 0.0,
        retrain_on_all: false,
        threshold: ThresholdPolicy::Fixed(0.0),
        ..TrainConfig::default()
    };
    let mut out = vec![
        (
            "linear",
            TrainConfig {
                epochs: 40,
                learning_rate: 0.005,
                dropout: 0.1,
                ..base.clone()
            },
        ),
        (
            "mlp512",
            TrainConfig {
                hidden: 512,
                epochs: 30,
                learning_rate: 0.002,
                dropout: 0.3,
                weight_decay: 1e-3,
                ..base.clone()
            },
        ),
    ];
    if with_lexical {
        out.push((
            "linear+lexical",
            TrainConfig {
                epochs: 40,
                learning_rate: 0.005,
                dropout: 0.1,
                lexical_buckets: 1 << 14,
                ..base.clone()
            },
        ));
        out.push((
            "mlp512+lexical",
            TrainConfig {
                hidden: 512,
                epochs: 30,
                learning_rate: 0.002,
                dropout: 0.3,
                weight_decay: 1e-3,
                lexical_buckets: 1 << 14,
                ..base
            },
        ));
    }
    out
}

fn banking77(
    encoder: &Encoder,
    cache: &Cache,
    dir: &Path,
    with_lexical: bool,
) -> Result<(), String> {
    let train = read_csv(&dir.join("banking77_train.csv"))?;
    let test = read_csv(&dir.join("banking77_test.csv"))?;
    println!("\n# BANKING77: train {} test {}", train.len(), test.len());
    let train_x = cache.embed(encoder, "banking77_train", &train)?;
    let test_x = cache.embed(encoder, "banking77_test", &test)?;
    let train_d = pairs(&train_x, &train);
    let test_d = pairs(&test_x, &test);
    // Select on a held-out 10% of train.
    let mut best: Option<(f32, &str, TrainConfig)> = None;
    for (name, config) in candidates(with_lexical) {
        let select = TrainConfig {
            holdout_fraction: 0.1,
            retrain_on_all: false,
            ..config.clone()
        };
        let t = Instant::now();
        let (_, report) =
            IntentHead::train_samples(&train_d, &select).map_err(|e| e.to_string())?;
        let acc = report.held_out_accuracy.unwrap_or(0.0);
        println!(
            "  {name}: train-holdout accuracy {:.2}% ({:.1} s)",
            acc * 100.0,
            t.elapsed().as_secs_f32()
        );
        if best.as_ref().is_none_or(|b| acc > b.0) {
            best = Some((acc, name, config));
        }
    }
    let (_, name, config) = best.ok_or("no candidate")?;
    let t = Instant::now();
    let (head, _) = IntentHead::train_samples(&train_d, &config).map_err(|e| e.to_string())?;
    let report = head.evaluate_samples(&test_d).map_err(|e| e.to_string())?;
    println!(
        "BANKING77 test accuracy {:.2}% (head {name}, trained on all train in {:.1} s)",
        report.accuracy * 100.0,
        t.elapsed().as_secs_f32()
    );
    Ok(())
}

fn clinc150(
    encoder: &Encoder,
    cache: &Cache,
    dir: &Path,
    with_lexical: bool,
) -> Result<(), String> {
    let path = dir.join("clinc150_data_full.json");
    let raw = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let json: BTreeMap<String, Vec<(String, String)>> =
        serde_json::from_str(&raw).map_err(|e| format!("invalid {}: {e}", path.display()))?;
    let split = |name: &str, oos: bool| -> Data {
        json.get(name)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|(t, l)| {
                (
                    t,
                    if oos {
                        OUT_OF_SCOPE_LABEL.to_string()
                    } else {
                        l
                    },
                )
            })
            .collect()
    };
    let (train, val, test) = (
        split("train", false),
        split("val", false),
        split("test", false),
    );
    let (oos_train, oos_val, oos_test) = (
        split("oos_train", true),
        split("oos_val", true),
        split("oos_test", true),
    );
    println!(
        "\n# CLINC150: train {} val {} test {} (oos train {} val {} test {})",
        train.len(),
        val.len(),
        test.len(),
        oos_train.len(),
        oos_val.len(),
        oos_test.len()
    );
    let embed = |name: &str, d: &Data| cache.embed(encoder, name, d);
    let (train_x, val_x, test_x) = (
        embed("clinc_train", &train)?,
        embed("clinc_val", &val)?,
        embed("clinc_test", &test)?,
    );
    let (oos_train_x, oos_val_x, oos_test_x) = (
        embed("clinc_oos_train", &oos_train)?,
        embed("clinc_oos_val", &oos_val)?,
        embed("clinc_oos_test", &oos_test)?,
    );
    let mut val_d = pairs(&val_x, &val);
    val_d.extend(pairs(&oos_val_x, &oos_val));
    let mut test_d = pairs(&test_x, &test);
    test_d.extend(pairs(&oos_test_x, &oos_test));
    for with_oos_class in [false, true] {
        let mut train_d = pairs(&train_x, &train);
        if with_oos_class {
            train_d.extend(pairs(&oos_train_x, &oos_train));
        }
        let variant = if with_oos_class {
            "oos class + threshold"
        } else {
            "threshold only"
        };
        let mut best: Option<(f32, &str, IntentHead)> = None;
        for (name, config) in candidates(with_lexical) {
            let t = Instant::now();
            let (mut head, _) =
                IntentHead::train_samples(&train_d, &config).map_err(|e| e.to_string())?;
            let threshold = head
                .calibrate_threshold_samples(&val_d)
                .map_err(|e| e.to_string())?;
            let val_report = head.evaluate_samples(&val_d).map_err(|e| e.to_string())?;
            let objective =
                val_report.in_scope_accuracy + val_report.out_of_scope_recall.unwrap_or(0.0);
            println!(
                "  [{variant}] {name}: val in-scope {:.2}% oos recall {:.2}% threshold {threshold:.2} ({:.1} s)",
                val_report.in_scope_accuracy * 100.0,
                val_report.out_of_scope_recall.unwrap_or(0.0) * 100.0,
                t.elapsed().as_secs_f32()
            );
            if best.as_ref().is_none_or(|b| objective > b.0) {
                best = Some((objective, name, head));
            }
        }
        let (_, name, head) = best.ok_or("no candidate")?;
        let report = head.evaluate_samples(&test_d).map_err(|e| e.to_string())?;
        let mut no_reject = head.clone();
        no_reject.set_threshold(0.0);
        let plain = no_reject
            .evaluate_samples(&pairs(&test_x, &test))
            .map_err(|e| e.to_string())?;
        println!(
            "CLINC150 [{variant}] test in-scope accuracy {:.2}%, out-of-scope recall {:.2}% (head {name}, threshold {:.2}); in-scope accuracy without rejection {:.2}%",
            report.in_scope_accuracy * 100.0,
            report.out_of_scope_recall.unwrap_or(0.0) * 100.0,
            head.threshold(),
            plain.in_scope_accuracy * 100.0
        );
    }
    Ok(())
}

fn read_csv(path: &Path) -> Result<Data, String> {
    let raw = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let examples = parse_examples(&raw, TrainingFormat::Csv)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(examples.into_iter().map(|e| (e.text, e.label)).collect())
}

fn pairs<'a>(x: &'a [Vec<f32>], d: &'a Data) -> Vec<Sample<'a>> {
    x.iter()
        .zip(d)
        .map(|(v, (t, l))| Sample::new(v.as_slice(), Some(t.as_str()), l.as_str()))
        .collect()
}
