//! Tests that load the real committed encoder (no fakes). They assume
//! scripts/setup-onnxruntime.sh has run.

use std::sync::{Arc, OnceLock};

use switchboard_models::{
    builtin, cosine, intent::train_on_texts, parse_label_list, ClassifierModel, Encoder,
    EncoderFiles, EncoderService, Example, IntentHead, ModelError, ServiceConfig, TextKind,
    TrainConfig,
};

fn encoder() -> Arc<Encoder> {
    static ENCODER: OnceLock<Arc<Encoder>> = OnceLock::new();
    ENCODER
        .get_or_init(|| Arc::new(Encoder::load_default().expect("load encoder")))
        .clone()
}

fn files_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("files")
}

#[test]
fn paraphrases_land_closer_than_unrelated() {
    let encoder = encoder();
    assert_eq!(encoder.dimension(), 384);
    let v = encoder
        .embed_blocking(&[
            "我要转人工",
            "请帮我转接人工客服",
            "今天天气怎么样",
            "I want to talk to a human",
            "connect me with a real person",
            "what is the weather like today",
            "我的快递还没到",
            "my parcel has not arrived yet",
            "how do I change my password",
        ])
        .expect("embed");
    let norm: f32 = v[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "unit length, got {norm}");
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]), "zh paraphrase");
    assert!(cosine(&v[3], &v[4]) > cosine(&v[3], &v[5]), "en paraphrase");
    assert!(
        cosine(&v[0], &v[3]) > cosine(&v[0], &v[5]),
        "zh-en paraphrase"
    );
    assert!(cosine(&v[6], &v[7]) > cosine(&v[6], &v[8]), "zh-en parcel");
}

#[test]
fn batch_and_single_agree_and_kinds_differ() {
    let encoder = encoder();
    let texts = [
        "退款什么时候到账",
        "a much longer sentence about a refund that has not arrived after ten days",
    ];
    let batch = encoder.embed_blocking(&texts).expect("batch");
    for (text, from_batch) in texts.iter().zip(&batch) {
        let single = encoder.embed_blocking(&[text]).expect("single");
        // Dynamic int8 quantization scales activations per batch tensor, so batch company moves
        // an embedding a little (cosine ~0.997), less than int8 vs fp32 (~0.99).
        assert!(
            cosine(&single[0], from_batch) > 0.99,
            "padding must barely change the embedding"
        );
    }
    let passage = encoder
        .embed_kind_blocking(TextKind::Passage, &texts[..1])
        .expect("passage");
    assert!(cosine(&passage[0], &batch[0]) < 0.9999);
    assert!(encoder.embed_blocking(&[]).expect("empty").is_empty());
    // Empty and very long inputs are handled, not rejected.
    let odd = encoder
        .embed_blocking(&["", &"很长的句子".repeat(400)])
        .expect("odd inputs");
    assert_eq!(odd[1].len(), 384);
}

#[test]
fn builtin_handoff_fires() {
    let encoder = encoder();
    let (head, report) = builtin::builtin_head(&encoder).expect("train builtin");
    assert!(report
        .labels
        .iter()
        .any(|l| l.label == builtin::HANDOFF_REQUEST));
    for text in [
        "转人工",
        "talk to a human",
        "我要人工服务",
        "can I speak to a real person please",
    ] {
        let v = encoder.embed_blocking(&[text]).expect("embed");
        let prediction = head.classify(&v[0]).expect("classify");
        assert_eq!(
            prediction.label,
            builtin::HANDOFF_REQUEST,
            "{text}: {prediction:?}"
        );
        assert!(!prediction.out_of_scope, "{text}: {prediction:?}");
    }
    for (text, label) in [
        ("谢谢你的帮助", builtin::THANKS),
        ("hello there", builtin::GREETING),
        ("拜拜", builtin::GOODBYE),
    ] {
        let v = encoder.embed_blocking(&[text]).expect("embed");
        assert_eq!(
            head.classify(&v[0]).expect("classify").label,
            label,
            "{text}"
        );
    }
    let v = encoder
        .embed_blocking(&["how much does the premium plan cost per month"])
        .expect("embed");
    assert!(head.classify(&v[0]).expect("classify").out_of_scope);
    // Serialization round trip keeps predictions.
    let restored = IntentHead::from_bytes(&head.to_bytes()).expect("round trip");
    assert_eq!(
        restored.classify(&v[0]).expect("classify"),
        head.classify(&v[0]).expect("classify")
    );
}

#[test]
fn trained_head_predicts_held_out_examples() {
    let encoder = encoder();
    let train = [
        ("where is my order", "order_status"),
        ("my package hasn't arrived", "order_status"),
        ("订单到哪里了", "order_status"),
        ("快递怎么还没到", "order_status"),
        ("track my shipment", "order_status"),
        ("I want my money back", "refund"),
        ("how do I get a refund", "refund"),
        ("我要退款", "refund"),
        ("退货退款怎么操作", "refund"),
        ("return this item for a refund", "refund"),
        ("I forgot my password", "account_access"),
        ("can't log in to my account", "account_access"),
        ("密码忘了", "account_access"),
        ("账号登录不上", "account_access"),
        ("reset my password", "account_access"),
    ];
    let examples: Vec<Example> = train.iter().map(|(t, l)| Example::new(*t, *l)).collect();
    let (head, report) =
        train_on_texts(&encoder, &examples, &TrainConfig::default()).expect("train");
    assert_eq!(report.examples, 15);
    assert_eq!(report.labels.len(), 3);
    assert!(report.labels.iter().all(|l| l.count == 5));
    assert!(report.held_out > 0 && report.held_out_accuracy.is_some());
    let held_out = [
        ("has my parcel shipped yet", "order_status"),
        ("我的包裹在哪", "order_status"),
        ("please refund my purchase", "refund"),
        ("钱什么时候退给我", "refund"),
        ("I am locked out of my account", "account_access"),
        ("怎么找回密码", "account_access"),
    ];
    let texts: Vec<&str> = held_out.iter().map(|(t, _)| *t).collect();
    let vectors = encoder.embed_blocking(&texts).expect("embed");
    let correct = held_out
        .iter()
        .zip(&vectors)
        .filter(|((_, label), v)| head.classify(v).expect("classify").label == *label)
        .count();
    assert!(correct >= 5, "{correct}/6 held-out examples right");

    // The same with lexical n-gram features: needs the text at classification time.
    let config = TrainConfig {
        lexical_buckets: 4096,
        ..TrainConfig::default()
    };
    let (hybrid, _) = train_on_texts(&encoder, &examples, &config).expect("train hybrid");
    assert!(hybrid.uses_text());
    assert!(matches!(
        hybrid.classify(&vectors[0]),
        Err(ModelError::InvalidEmbedding(_))
    ));
    let correct = held_out
        .iter()
        .zip(&vectors)
        .filter(|((text, label), v)| {
            hybrid.classify_turn(text, v).expect("classify").label == *label
        })
        .count();
    assert!(correct >= 5, "hybrid: {correct}/6 held-out examples right");
    let restored = IntentHead::from_bytes(&hybrid.to_bytes()).expect("round trip");
    assert_eq!(
        restored
            .classify_turn(held_out[0].0, &vectors[0])
            .expect("classify"),
        hybrid
            .classify_turn(held_out[0].0, &vectors[0])
            .expect("classify")
    );
}

#[test]
fn bad_training_input_and_heads_are_typed_errors() {
    assert!(matches!(
        IntentHead::train(&[], &TrainConfig::default()),
        Err(ModelError::Training(_))
    ));
    let a = vec![0.1_f32; 4];
    let b = vec![0.2_f32; 3];
    let data: Vec<(&[f32], &str)> = vec![(&a, "x"), (&b, "y")];
    assert!(matches!(
        IntentHead::train(&data, &TrainConfig::default()),
        Err(ModelError::Training(_))
    ));
    let one_label: Vec<(&[f32], &str)> = vec![(&a, "x"), (&a, "x")];
    assert!(matches!(
        IntentHead::train(&one_label, &TrainConfig::default()),
        Err(ModelError::Training(_))
    ));
    assert!(matches!(
        IntentHead::from_bytes(b"{not json"),
        Err(ModelError::InvalidHead(_))
    ));
    let c = vec![0.3_f32; 4];
    let ok: Vec<(&[f32], &str)> = vec![(&a, "x"), (&c, "y")];
    let (head, _) = IntentHead::train(&ok, &TrainConfig::default()).expect("train");
    assert!(matches!(
        head.classify(&[0.0; 3]),
        Err(ModelError::InvalidEmbedding(_))
    ));
    assert!(matches!(
        head.classify(&[f32::NAN; 4]),
        Err(ModelError::InvalidEmbedding(_))
    ));
    let mut json: serde_json::Value = serde_json::from_slice(&head.to_bytes()).expect("json");
    json["labels"] = serde_json::json!(["x"]);
    assert!(matches!(
        IntentHead::from_bytes(json.to_string().as_bytes()),
        Err(ModelError::InvalidHead(_))
    ));
}

#[test]
fn missing_and_corrupt_model_files_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = Encoder::load(dir.path()).expect_err("missing model");
    assert!(
        matches!(missing, ModelError::FileMissing { .. }),
        "{missing:?}"
    );
    assert!(
        missing.to_string().starts_with("model file not found"),
        "{missing}"
    );

    std::fs::write(
        dir.path().join("encoder.int8.onnx"),
        b"this is not an onnx graph",
    )
    .expect("write");
    std::fs::copy(
        files_dir().join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .expect("copy");
    let corrupt = Encoder::load(dir.path()).expect_err("corrupt model");
    assert!(
        matches!(corrupt, ModelError::InvalidModel { .. }),
        "{corrupt:?}"
    );
    assert!(
        corrupt.to_string().starts_with("invalid onnx model"),
        "{corrupt}"
    );

    std::fs::copy(
        files_dir().join("encoder.int8.onnx"),
        dir.path().join("encoder.int8.onnx"),
    )
    .expect("copy");
    std::fs::write(dir.path().join("tokenizer.json"), b"{\"broken\": ").expect("write");
    let bad_tokenizer = Encoder::load(dir.path()).expect_err("corrupt tokenizer");
    assert!(
        matches!(bad_tokenizer, ModelError::InvalidTokenizer { .. }),
        "{bad_tokenizer:?}"
    );

    // A truncated model file.
    let bytes = std::fs::read(files_dir().join("encoder.int8.onnx")).expect("read");
    std::fs::write(
        dir.path().join("encoder.int8.onnx"),
        &bytes[..bytes.len() / 3],
    )
    .expect("write");
    std::fs::copy(
        files_dir().join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .expect("copy");
    assert!(matches!(
        Encoder::load(dir.path()),
        Err(ModelError::InvalidModel { .. })
    ));

    // The tiny classifier is valid ONNX but not an encoder.
    let files = EncoderFiles {
        model: fixture("tiny_classifier.onnx"),
        tokenizer: files_dir().join("tokenizer.json"),
    };
    let wrong = Encoder::load_with(files, Default::default()).expect_err("not an encoder");
    assert!(matches!(wrong, ModelError::Signature(_)), "{wrong:?}");
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

#[test]
fn bring_your_own_model_is_validated() {
    encoder(); // make sure the runtime is up
    let tokenizer = files_dir().join("tokenizer.json");
    let labels = parse_label_list("[\"billing\", \"shipping\", \"other\"]").expect("labels");
    let model = ClassifierModel::validate(&fixture("tiny_classifier.onnx"), &tokenizer, &labels)
        .expect("valid model");
    let prediction = model
        .classify_blocking("where is my parcel")
        .expect("classify");
    assert!(labels.contains(&prediction.label));
    assert!((0.0..=1.0).contains(&prediction.score));

    // Held to a deadline: a run past it fails, and after three failures in a row the model is
    // set aside (its turns use the built-in intents) even once it would be fast again.
    let mut slow = ClassifierModel::validate(&fixture("tiny_classifier.onnx"), &tokenizer, &labels)
        .expect("valid model");
    slow.set_deadline(std::time::Duration::ZERO);
    for _ in 0..3 {
        let error = slow
            .classify_blocking("where is my parcel")
            .expect_err("past the deadline");
        assert!(error.to_string().contains("deadline"), "{error}");
    }
    slow.set_deadline(std::time::Duration::from_secs(5));
    let error = slow
        .classify_blocking("where is my parcel")
        .expect_err("set aside");
    assert!(error.to_string().contains("set aside"), "{error}");
    // A text longer than any customer message is cut before the tokenizer sees it.
    let long = "包裹".repeat(40_000);
    model
        .classify_blocking(&long)
        .expect("a long text is classified");

    let two = parse_label_list("billing\nshipping\n").expect("labels");
    let mismatch = ClassifierModel::validate(&fixture("tiny_classifier.onnx"), &tokenizer, &two)
        .expect_err("count");
    assert!(matches!(mismatch, ModelError::Labels(_)), "{mismatch:?}");
    assert!(matches!(
        parse_label_list("[\"a\", \"a\"]"),
        Err(ModelError::Labels(_))
    ));
    assert!(matches!(
        parse_label_list("only-one"),
        Err(ModelError::Labels(_))
    ));
    let missing =
        ClassifierModel::validate(&fixture("nope.onnx"), &tokenizer, &labels).expect_err("missing");
    assert!(matches!(missing, ModelError::FileMissing { .. }));
    // The encoder has the wrong output shape for a 3-label classifier.
    let encoder_as_classifier =
        ClassifierModel::validate(&files_dir().join("encoder.int8.onnx"), &tokenizer, &labels)
            .expect_err("encoder");
    assert!(
        matches!(encoder_as_classifier, ModelError::Labels(_)),
        "{encoder_as_classifier:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_batches_concurrent_turns_and_caches() {
    let service = EncoderService::start_shared(
        encoder(),
        ServiceConfig {
            batch_window: std::time::Duration::from_millis(20),
            ..ServiceConfig::default()
        },
    )
    .expect("start");
    let texts = [
        "转人工",
        "hello",
        "where is my order",
        "退款",
        "thanks",
        "bye",
        "投诉",
        "你好",
    ];
    let mut tasks = Vec::new();
    for text in texts {
        let service = service.clone();
        tasks.push(tokio::spawn(async move { service.embed(text).await }));
    }
    let mut vectors = Vec::new();
    for task in tasks {
        vectors.push(task.await.expect("join").expect("embed"));
    }
    let stats = service.stats();
    assert_eq!(stats.texts_encoded, 8);
    assert!(stats.batches < 8, "concurrent turns share runs: {stats:?}");
    let direct = encoder().embed_blocking(&["转人工"]).expect("direct");
    assert!(cosine(&vectors[0], &direct[0]) > 0.99);
    let again = service.embed("转人工").await.expect("cached");
    assert!(Arc::ptr_eq(&again, &vectors[0]));
    assert_eq!(service.stats().cache_hits, 1);
}
