//! Fits the default confidence calibration on `bot/eval/calibration.jsonl` (demo FAQ
//! paraphrases and out-of-scope questions written for it) and prints the coefficients to paste
//! into `Calibration::default`, with the answer/wrong trade-off on the fitting data; then the
//! same fit without the second encoder's two features, the first stage of the two-stage
//! decision (`Calibration::default_first_stage`, see `SecondOpinion`).
//!
//! `cargo run --release -p switchboard-bot --example calibrate`

#[path = "support/setup.rs"]
mod setup;

use switchboard_bot::eval::calibration_samples;
use switchboard_bot::{Calibration, Features};

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bot = setup::demo_bot(dir.path());
    let lines = setup::read_lines(setup::root().join("bot/eval/calibration.jsonl"));
    let samples = calibration_samples(&bot, setup::DEMO, &lines, setup::demo_synonyms());
    let right = samples.iter().filter(|s| s.1).count();
    println!("{} samples, top candidate right on {right}", samples.len());
    let cal = Calibration::fit(&samples).expect("both classes present");
    println!("{cal:#?}");
    report(&cal, &samples);
    let first_stage_samples: Vec<(Features, bool)> = samples
        .iter()
        .map(|(f, right)| {
            let f = Features {
                use_cosine: 0.0,
                use_margin: 0.0,
                ..*f
            };
            (f, *right)
        })
        .collect();
    let first = Calibration::fit(&first_stage_samples).expect("both classes present");
    println!("\nfirst stage (without the second encoder's features):\n{first:#?}");
    report(&first, &first_stage_samples);
}

fn report(cal: &Calibration, samples: &[(Features, bool)]) {
    println!("threshold  answered  wrong-of-answered");
    for t in [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9] {
        let answered: Vec<bool> = samples
            .iter()
            .filter(|s| cal.confidence(&s.0) >= t)
            .map(|s| s.1)
            .collect();
        let wrong = answered.iter().filter(|r| !**r).count();
        println!("{t:>9.1}  {:>8}  {wrong:>5}", answered.len());
    }
    // Reliability: mean confidence vs observed accuracy in five bins.
    let mut bins = [(0.0_f32, 0usize, 0usize); 5];
    for (f, right) in samples {
        let p = cal.confidence(f);
        let b = ((p * 5.0) as usize).min(4);
        bins[b].0 += p;
        bins[b].1 += 1;
        bins[b].2 += usize::from(*right);
    }
    for (i, (sum, n, ok)) in bins.iter().enumerate() {
        if *n > 0 {
            println!(
                "bin {i}: n {n:>3}  mean p {:.2}  right {:.2}",
                sum / *n as f32,
                *ok as f32 / *n as f32
            );
        }
    }
}
