use switchboard_models::{cosine, Encoder};

#[test]
fn paraphrases_land_closer_than_unrelated() {
    let encoder = Encoder::load_default().expect("load encoder");
    assert_eq!(encoder.dimension(), 384);
    let v = encoder
        .embed_blocking(&["我要转人工", "请帮我转接人工客服", "今天天气怎么样", "I want to talk to a human", "connect me with a real person", "what is the weather like today"])
        .expect("embed");
    let norm: f32 = v[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3);
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]));
    assert!(cosine(&v[3], &v[4]) > cosine(&v[3], &v[5]));
    assert!(cosine(&v[0], &v[3]) > cosine(&v[0], &v[5]), "cross-lingual paraphrase");
    println!("zh {} vs {} ; en {} vs {} ; x {}", cosine(&v[0], &v[1]), cosine(&v[0], &v[2]), cosine(&v[3], &v[4]), cosine(&v[3], &v[5]), cosine(&v[0], &v[3]));
}
