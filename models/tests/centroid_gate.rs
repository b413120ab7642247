//! The centroid out-of-scope gate of intent heads trained without out-of-scope examples,
//! on synthetic unit embeddings (no model needed).

use switchboard_models::{builtin, IntentHead, ThresholdPolicy, TrainConfig};

const DIM: usize = 16;

/// A unit vector near axis `axis`, with a deterministic small perturbation.
fn near(axis: usize, i: usize) -> Vec<f32> {
    let mut v = vec![0.0_f32; DIM];
    v[axis] = 1.0;
    for (j, x) in v.iter_mut().enumerate() {
        let h = ((i * 31 + j * 17 + axis * 7) % 13) as f32 / 13.0 - 0.5;
        *x += 0.15 * h;
    }
    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
    v.iter_mut().for_each(|a| *a /= n);
    v
}

fn data() -> Vec<(Vec<f32>, String)> {
    let mut out = Vec::new();
    for (axis, label) in [(0, "billing"), (1, "shipping"), (2, "returns")] {
        for i in 0..40 {
            out.push((near(axis, i), label.to_string()));
        }
    }
    out
}

fn config(centroid_keep: f32) -> TrainConfig {
    TrainConfig {
        centroid_keep,
        threshold: ThresholdPolicy::HeldOut {
            in_scope_recall: 0.95,
        },
        ..TrainConfig::default()
    }
}

#[test]
fn far_turns_are_out_of_scope_without_out_of_scope_examples() {
    let data = data();
    let pairs: Vec<(&[f32], &str)> = data
        .iter()
        .map(|(v, l)| (v.as_slice(), l.as_str()))
        .collect();
    let (head, _) = IntentHead::train(&pairs, &config(0.98)).expect("train");
    // With the gate, the top-probability threshold is not used.
    assert_eq!(head.threshold(), 0.0);
    // In-scope turns near their label stay in scope.
    for (axis, label) in [(0, "billing"), (1, "shipping"), (2, "returns")] {
        let p = head.classify(&near(axis, 1000)).expect("classify");
        assert_eq!((p.label.as_str(), p.out_of_scope), (label, false), "{p:?}");
    }
    // A turn far from every label (another axis) is out of scope, although the softmax picks
    // some label with high probability.
    let far = head.classify(&near(9, 3)).expect("classify");
    assert!(far.out_of_scope, "{far:?}");
    // The gate survives serialization.
    let back = IntentHead::from_bytes(&head.to_bytes()).expect("roundtrip");
    assert!(back.classify(&near(9, 3)).expect("classify").out_of_scope);
    assert!(!back.classify(&near(0, 5)).expect("classify").out_of_scope);
    // Without the gate the same far turn is in scope (the softmax alone cannot tell).
    let (plain, _) = IntentHead::train(
        &pairs,
        &TrainConfig {
            threshold: ThresholdPolicy::Fixed(0.0),
            ..config(0.0)
        },
    )
    .expect("train");
    assert!(!plain.classify(&near(9, 3)).expect("classify").out_of_scope);
}

#[test]
fn corrupt_gate_is_rejected() {
    let data = data();
    let pairs: Vec<(&[f32], &str)> = data
        .iter()
        .map(|(v, l)| (v.as_slice(), l.as_str()))
        .collect();
    let (head, _) = IntentHead::train(&pairs, &config(0.98)).expect("train");
    let mut json: serde_json::Value = serde_json::from_slice(&head.to_bytes()).expect("json");
    json["centroids"]["threshold"] = serde_json::Value::from(f64::NAN.to_string());
    assert!(IntentHead::from_bytes(json.to_string().as_bytes()).is_err());
}

#[test]
fn large_heads_gate_and_generic_negatives_ship() {
    assert!(TrainConfig::large().centroid_keep > 0.9);
    assert_eq!(TrainConfig::default().centroid_keep, 0.0);
    let negatives = builtin::generic_out_of_scope();
    assert!(negatives.len() >= 150, "{}", negatives.len());
    assert!(negatives.iter().any(|t| t.chars().any(|c| c > '\u{4e00}')));
    assert!(negatives
        .iter()
        .all(|t| !t.is_empty() && !t.starts_with('#')));
}
