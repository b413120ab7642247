//! The second encoder (USE multilingual v3) on the committed files. Assumes
//! scripts/setup-onnxruntime.sh has run.

use switchboard_models::{cosine, default_model_dir, ModelError, UseEncoder};

fn encoder() -> UseEncoder {
    UseEncoder::load(default_model_dir()).expect("load USE (models/export/export_use.sh)")
}

#[test]
fn vectors_are_unit_stable_and_multilingual() {
    let u = encoder();
    assert_eq!(u.dimension(), 512);
    let texts = [
        "退款多久能到账",
        "退款一般几天到账？",
        "How long does a refund take to arrive?",
        "今天天气怎么样",
        "",
    ];
    let v = u.embed_blocking(&texts).expect("embed");
    for x in &v {
        assert_eq!(x.len(), 512);
        let norm: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "norm {norm}");
    }
    // One sentence per run: the same text always gets the same vector.
    assert_eq!(u.embed_one("退款多久能到账").expect("embed"), v[0]);
    let para = cosine(&v[0], &v[1]);
    let cross = cosine(&v[0], &v[2]);
    let unrelated = cosine(&v[0], &v[3]);
    assert!(
        para > unrelated + 0.2 && cross > unrelated + 0.2,
        "paraphrase {para}, English {cross}, unrelated {unrelated}"
    );
}

#[test]
fn a_folder_without_the_files_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    match UseEncoder::load(dir.path()) {
        Err(ModelError::FileMissing { path }) => {
            assert!(path.ends_with("use.int8.onnx"), "{}", path.display())
        }
        other => panic!("expected FileMissing, got {other:?}"),
    }
}
