//! WeChat's official sample vectors, byte for byte, and the refusals around them.
//!
//! Sources of the vectors (data, not code):
//! - A: WeChat message-crypto SDK, Java sample test `WXBizMsgCryptTest` (`testAesEncrypt`,
//!   `testAesEncrypt2`): fixed random "aaaabbbbccccdddd", appid wxb11529c136998cb6.
//! - B: the same Java test, `testVerifyUrl` (token QDG6eK, encrypted echostr).
//! - C: the SDK's Python `Sample.py` (token spamtest, appid wx2c2769f8efd9abc2).
//! - D: WeChat open platform docs, third-party platform 消息推送 (message_push.html): a
//!   debug_demo push and its encrypted xml reply with random "999951349e8ee746".
//! - E: WeChat mini-program docs, 消息推送 (message-push.html): url verification, plain and
//!   safe json pushes and the encrypted json reply with random "707722b803182950".

use switchboard_channels::adapter::{ChannelAdapter, WebhookError, WebhookRequest};
use switchboard_channels::wechat::crypto::{self, AesKey};
use switchboard_channels::wechat::{BodyFormat, WechatAdapter, WechatConfig, WechatMessage};

const SDK_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

fn key(encoding_aes_key: &str) -> AesKey {
    AesKey::from_encoding_aes_key(encoding_aes_key).expect("valid key")
}

fn random(text: &str) -> [u8; 16] {
    text.as_bytes().try_into().expect("16 ascii bytes")
}

fn adapter(appid: &str, token: &str, encoding_aes_key: &str) -> WechatAdapter {
    WechatAdapter::new(WechatConfig {
        appid: appid.to_owned(),
        token: token.to_owned(),
        encoding_aes_key: Some(encoding_aes_key.to_owned()),
        max_timestamp_skew: None,
    })
    .expect("adapter")
}

#[test]
fn vector_a_sdk_encryption_with_fixed_random() {
    let key = key(SDK_KEY);
    let encrypted = crypto::encrypt_with_random(
        &key,
        random("aaaabbbbccccdddd"),
        "我是中文abcd123",
        "wxb11529c136998cb6",
    );
    assert_eq!(
        encrypted,
        "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
    );

    let reply = "<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName><FromUserName><![CDATA[gh_7f083739789a]]></FromUserName><CreateTime>1407743423</CreateTime><MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA[eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId><Title><![CDATA[testCallBackReplyVideo]]></Title><Description><![CDATA[testCallBackReplyVideo]]></Description></Video></xml>";
    let encrypted = crypto::encrypt_with_random(
        &key,
        random("aaaabbbbccccdddd"),
        reply,
        "wxb11529c136998cb6",
    );
    assert_eq!(encrypted, "jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlkupqcEcW7ZQweImX9+wLMa0GaUzpkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQvFb3tYPKAlHF3rtTeayNf0QuM+UW/wM9enGIDIJHF7CLHiDNAYxr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZqJucQHQ04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1fBIz+vBzsYjrTmFQ44YfeEuZ+xRTQwr92vhA9OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdfakjkwQ5/Xka042OlUb1/slTwo4RscuQ+RdxSGvDahxAJ6+EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqmA7FNERspKA5f8GoJ9sv8xmGvZ9Yrf57cExWtnX8aCMMaBropU/1k+hKP5LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQDajPkdPrEeOwofJb");
    let decrypted =
        crypto::decrypt_for_app(&key, &encrypted, "wxb11529c136998cb6").expect("round trip");
    assert_eq!(decrypted, reply);
}

#[test]
fn vector_b_sdk_verify_url_with_encrypted_echostr() {
    let echostr =
        "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
    let signature = crypto::signature(&["QDG6eK", "1409659589", "263014780", echostr]);
    assert_eq!(signature, "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3");
    let key = key("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C");
    let plain = crypto::decrypt_for_app(&key, echostr, "wx5823bf96d3bd56c7")
        .expect("echostr decrypts for its appid");
    assert_eq!(plain, "1616140317555161061");
}

#[test]
fn vector_c_sdk_python_sample_decrypts() {
    let body = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/wechat/05_compat_xml_text.json"
    ))
    .expect("fixture");
    let fixture: serde_json::Value = serde_json::from_str(&body).expect("json");
    let request: WebhookRequest =
        serde_json::from_value(fixture["request"].clone()).expect("request");
    let envelope = WechatMessage::parse(&request.body, BodyFormat::Xml).expect("envelope");
    let encrypted = envelope.field("Encrypt").expect("Encrypt");
    assert_eq!(
        crypto::signature(&["spamtest", "1409735669", "1320562132", encrypted]),
        "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
    );
    let plain =
        crypto::decrypt_for_app(&key(SDK_KEY), encrypted, "wx2c2769f8efd9abc2").expect("decrypts");
    assert_eq!(
        plain,
        "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n<CreateTime>1409735668</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[abcdteT]]></Content>\n<MsgId>6054768590064713728</MsgId>\n</xml>"
    );
}

const DOC_D_ENCRYPT: &str = "D7yzvUNAL930rd28wf21s4hvXhz0L6Uit/p2Di6C5DHyYGpEgdBRnKjBec34JwoQXicwaZC7fOVihW80F4VtsdvE//1vr7oAbqjDv8KenVp+ajKYpJnyQ4zMRhIC+a31fCVOMC03FfzV/QuC94kBP55a+Za3sJgvAn+ZbsNqZI5DkyuzkhQN8OBqCzFhizGmy0xpM0MEA4agpvE+RuNO1rhHTtuJB5yltw1FiYzecSXJ+y/D2r81VkRn2eYjh2ltsoyfbDR7Is6ookXIFxTfyeNyeHxMeT4KN5WpCDmSbTcUYrbBUlkGLJ9n/rU8YOywma6G7aTb7KZKOqCxgfoUlYEZPk4FUL/TK7ShriFDMVCLyjQJ15Ob++agDWtcxhfUfe6HIoIpRW8mKNBQiY/Jd1svvuskA1wLef1RTtzKfMpagSCX/laZINmdnX4zrF6kIaR9P4xQrWXbsTFHTYe0Mg==";

#[test]
fn vector_d_docs_xml_push_and_encrypted_reply() {
    let all_a = "A".repeat(43);
    assert_eq!(
        crypto::signature(&["AAAAA", "1715943329", "1590219412", DOC_D_ENCRYPT]),
        "6c12a4205838198b8fa631b3220723bb07f1015c"
    );
    let decrypted = crypto::decrypt(&key(&all_a), DOC_D_ENCRYPT).expect("decrypts");
    assert_eq!(decrypted.appid, "wx134c8103faa5a59e");
    assert_eq!(decrypted.message.len(), 292);
    assert_eq!(
        decrypted.message,
        "<xml><ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName>\n<FromUserName><![CDATA[o9AgO5Kd5ggOC-bXrbNODIiE3bGY]]></FromUserName>\n<CreateTime>1715943329</CreateTime>\n<MsgType><![CDATA[event]]></MsgType>\n<Event><![CDATA[debug_demo]]></Event>\n<debug_str><![CDATA[hello world]]></debug_str>\n</xml>"
    );

    let adapter = adapter("wx134c8103faa5a59e", "AAAAA", &all_a);
    let reply = adapter
        .seal_reply(
            "<xml><demo_resp>[CDATA[good luck]]</demo_resp></xml>",
            BodyFormat::Xml,
            "1713424427",
            "415670741",
            random("999951349e8ee746"),
        )
        .expect("sealed");
    assert_eq!(
        reply,
        "<xml>\n<Encrypt><![CDATA[hE8R6mGXHkJJjU72KxzKUd1GEkKJaEZq7vRL8XgK3o+00k8JGq6+pZJUIlTSyhsX+bxIBQ72g3GyvDdIZcr6+3HAZbSvPT9t/o11MI7d6WELwqrGd7jMnV0zv3Zc9Nq7]]></Encrypt>\n<MsgSignature><![CDATA[03e0812039325c2712ef5f0f980fd14c70d6e307]]></MsgSignature>\n<TimeStamp>1713424427</TimeStamp>\n<Nonce><![CDATA[415670741]]></Nonce>\n</xml>"
    );
}

#[test]
fn vector_e_docs_url_plain_safe_json_and_json_reply() {
    assert_eq!(
        crypto::signature(&["AAAAA", "1714036504", "1514711492"]),
        "f464b24fc39322e44b38aa78f5edd27bd1441696"
    );
    assert_eq!(
        crypto::signature(&["AAAAA", "1714037059", "486452656"]),
        "899cf89e464efb63f54ddac96b0a0a235f53aa78"
    );
    let encrypt = "+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzazhZv6JsXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSqFIZoNqJ4M8EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04=";
    assert_eq!(
        crypto::signature(&["AAAAA", "1714112445", "415670741", encrypt]),
        "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3"
    );
    let all_a = "A".repeat(43);
    let plain =
        crypto::decrypt_for_app(&key(&all_a), encrypt, "wxba5fad812f8e6fb9").expect("decrypts");
    assert_eq!(
        plain,
        r#"{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714112445,"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}"#
    );

    let adapter = adapter("wxba5fad812f8e6fb9", "AAAAA", &all_a);
    let reply = adapter
        .seal_reply(
            r#"{"demo_resp":"good luck"}"#,
            BodyFormat::Json,
            "1713424427",
            "415670741",
            random("707722b803182950"),
        )
        .expect("sealed");
    let reply: serde_json::Value = serde_json::from_str(&reply).expect("json reply");
    assert_eq!(
        reply,
        serde_json::json!({
            "Encrypt": "ELGduP2YcVatjqIS+eZbp80MNLoAUWvzzyJxgGzxZO/5sAvd070Bs6qrLARC9nVHm48Y4hyRbtzve1L32tmxSQ==",
            "MsgSignature": "1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1",
            "TimeStamp": 1713424427,
            "Nonce": "415670741"
        })
    );
}

#[test]
fn illegal_keys_are_typed_errors() {
    assert!(AesKey::from_encoding_aes_key("abcde").is_err());
    assert!(AesKey::from_encoding_aes_key(&"!".repeat(43)).is_err());
    let result = WechatAdapter::new(WechatConfig {
        appid: "wx".into(),
        token: "t".into(),
        encoding_aes_key: Some("short".into()),
        max_timestamp_skew: None,
    });
    assert!(result.is_err());
}

#[test]
fn broken_ciphertexts_are_typed_errors_never_panics() {
    let key = key(SDK_KEY);
    let decrypt_error =
        |input: &str| matches!(crypto::decrypt(&key, input), Err(WebhookError::Decrypt(_)));
    assert!(decrypt_error("!!!not-base64!!!"));
    assert!(decrypt_error(""));
    assert!(decrypt_error("YWJj")); // 3 bytes: not whole blocks
    assert!(decrypt_error("AAAAAAAAAAAAAAAAAAAAAA==")); // one block of zeros: padding is garbage
                                                        // Valid padding but a length prefix running past the end.
    let mut forged = vec![0u8; 16];
    forged.extend_from_slice(&u32::MAX.to_be_bytes());
    forged.extend_from_slice(b"x");
    let encrypted = encrypt_raw(&key, &forged);
    assert!(decrypt_error(&encrypted));
    // Padding byte larger than 32.
    let mut bad_pad = vec![b'a'; 63];
    bad_pad.push(40);
    assert!(decrypt_error(&encrypt_raw(&key, &bad_pad)));
    // Inconsistent padding bytes.
    let mut uneven = vec![b'a'; 60];
    uneven.extend_from_slice(&[4, 4, 3, 4]);
    assert!(decrypt_error(&encrypt_raw(&key, &uneven)));
    // Many random inputs: errors, never panics.
    for length in 0..200usize {
        let noise: Vec<u8> = (0..length)
            .map(|index| (index * 31 + length) as u8)
            .collect();
        use base64::Engine;
        let _ = crypto::decrypt(
            &key,
            &base64::engine::general_purpose::STANDARD.encode(&noise),
        );
    }
}

/// AES-256-CBC over already padded bytes, the way an attacker with the key could forge them.
fn encrypt_raw(key: &AesKey, padded: &[u8]) -> String {
    use aes::cipher::{generic_array::GenericArray, BlockEncryptMut, KeyIvInit};
    use base64::Engine;
    let raw = key_bytes(key);
    let mut buffer = padded.to_vec();
    let mut encryptor = cbc::Encryptor::<aes::Aes256>::new(
        &raw.into(),
        &<[u8; 16]>::try_from(&raw[..16]).expect("iv").into(),
    );
    for block in buffer.chunks_exact_mut(16) {
        encryptor.encrypt_block_mut(GenericArray::from_mut_slice(block));
    }
    base64::engine::general_purpose::STANDARD.encode(buffer)
}

fn key_bytes(_key: &AesKey) -> [u8; 32] {
    use base64::Engine;
    // The SDK key's last character carries trailing bits, which WeChat's SDKs ignore.
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let decoded = engine.decode(format!("{SDK_KEY}=")).expect("key");
    decoded.try_into().expect("32 bytes")
}

#[test]
fn tampered_and_missing_signatures_are_refused() {
    let adapter = adapter("wxba5fad812f8e6fb9", "AAAAA", &"A".repeat(43));
    let good = WebhookRequest::get()
        .with_query("signature", "f464b24fc39322e44b38aa78f5edd27bd1441696")
        .with_query("echostr", "4375120948345356249")
        .with_query("timestamp", "1714036504")
        .with_query("nonce", "1514711492");
    assert!(adapter.verify(&good).is_ok());
    let bad = good
        .clone()
        .with_query("signature", "f464b24fc39322e44b38aa78f5edd27bd1441697");
    assert_eq!(adapter.verify(&bad), Err(WebhookError::BadSignature));
    let mut missing = good.clone();
    missing.query.remove("nonce");
    assert_eq!(
        adapter.verify(&missing),
        Err(WebhookError::Missing("nonce"))
    );
    // Uppercase hex is the same signature.
    let upper = good
        .clone()
        .with_query("signature", "F464B24FC39322E44B38AA78F5EDD27BD1441696");
    assert!(adapter.verify(&upper).is_ok());
}

#[test]
fn safe_mode_without_a_key_is_refused() {
    let adapter = WechatAdapter::new(WechatConfig {
        appid: "wxba5fad812f8e6fb9".into(),
        token: "AAAAA".into(),
        encoding_aes_key: None,
        max_timestamp_skew: None,
    })
    .expect("adapter");
    let body = r#"{"ToUserName":"gh","Encrypt":"QUJD"}"#;
    let signature = crypto::signature(&["AAAAA", "1", "2", "QUJD"]);
    let request = WebhookRequest::post(body)
        .with_query("timestamp", "1")
        .with_query("nonce", "2")
        .with_query("encrypt_type", "aes")
        .with_query("msg_signature", &signature);
    assert!(matches!(
        adapter.handle(&request),
        Err(WebhookError::Unsupported(_))
    ));
}

#[test]
fn stale_timestamps_are_refused_when_a_window_is_set() {
    let adapter = WechatAdapter::new(WechatConfig {
        appid: "wx".into(),
        token: "tok".into(),
        encoding_aes_key: None,
        max_timestamp_skew: Some(std::time::Duration::from_secs(300)),
    })
    .expect("adapter");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let signed = |timestamp: &str| {
        WebhookRequest::get()
            .with_query("timestamp", timestamp)
            .with_query("nonce", "n")
            .with_query("echostr", "e")
            .with_query("signature", &crypto::signature(&["tok", timestamp, "n"]))
    };
    assert!(adapter.verify(&signed(&now.to_string())).is_ok());
    assert_eq!(
        adapter.verify(&signed(&(now - 3600).to_string())),
        Err(WebhookError::StaleTimestamp)
    );
    assert_eq!(
        adapter.verify(&signed("not-a-number")),
        Err(WebhookError::StaleTimestamp)
    );
}

#[test]
fn passive_text_reply_round_trips_through_safe_mode() {
    let adapter = adapter("wx5e1c0c0ffee00001", "switchboardtoken", SDK_KEY);
    let inbound = WechatMessage::parse(
        b"<xml><ToUserName>gh_account</ToUserName><FromUserName>oCUSTOMER</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>hi</Content><MsgId>9</MsgId></xml>",
        BodyFormat::Xml,
    )
    .expect("parse");
    let plain = adapter
        .passive_text_reply(&inbound, BodyFormat::Xml, "a ]]> b", 1700000000)
        .expect("reply");
    assert_eq!(
        plain,
        "<xml><ToUserName><![CDATA[oCUSTOMER]]></ToUserName><FromUserName><![CDATA[gh_account]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[a ]]]]><![CDATA[> b]]></Content></xml>"
    );
    let sealed = adapter
        .seal_reply(&plain, BodyFormat::Xml, "1700000001", "42", [7u8; 16])
        .expect("sealed");
    let envelope = WechatMessage::parse(sealed.as_bytes(), BodyFormat::Xml).expect("envelope");
    let encrypted = envelope.field("Encrypt").expect("Encrypt");
    assert_eq!(
        envelope.field("MsgSignature"),
        Some(crypto::signature(&["switchboardtoken", "1700000001", "42", encrypted]).as_str())
    );
    let opened =
        crypto::decrypt_for_app(&key(SDK_KEY), encrypted, "wx5e1c0c0ffee00001").expect("opens");
    assert_eq!(opened, plain);
    let reparsed = WechatMessage::parse(opened.as_bytes(), BodyFormat::Xml).expect("reply parses");
    assert_eq!(reparsed.field("Content"), Some("a ]]> b"));
}

#[test]
fn garbage_bodies_are_typed_errors() {
    let adapter = WechatAdapter::new(WechatConfig {
        appid: "wx".into(),
        token: "tok".into(),
        encoding_aes_key: Some(SDK_KEY.into()),
        max_timestamp_skew: None,
    })
    .expect("adapter");
    let signature = crypto::signature(&["tok", "1", "2"]);
    let bodies: [&[u8]; 8] = [
        b"",
        b"hello",
        b"<xml><a>unclosed</xml>",
        b"<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><xml><Content>&e;</Content></xml>",
        b"{\"MsgType\": [1,2]}",
        b"[1,2,3]",
        b"<xml><MsgType>text</MsgType></xml>",
        &[0xff, 0xfe, 0x3c],
    ];
    for body in bodies {
        let request = WebhookRequest::post(body.to_vec())
            .with_query("signature", &signature)
            .with_query("timestamp", "1")
            .with_query("nonce", "2");
        let result = adapter.handle(&request);
        assert!(
            result.is_err(),
            "{:?} gave {result:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn an_app_with_a_key_refuses_plain_mode_pushes() {
    let body = "<xml><ToUserName><![CDATA[gh]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content><MsgId>1</MsgId></xml>";
    let plain = WebhookRequest::post(body)
        .with_query("timestamp", "1714036504")
        .with_query("nonce", "1514711492")
        .with_query(
            "signature",
            &crypto::signature(&["AAAAA", "1714036504", "1514711492"]),
        );
    // Correctly signed for plain mode: accepted without a key, refused with one.
    let keyless = WechatAdapter::new(WechatConfig {
        appid: "wxba5fad812f8e6fb9".into(),
        token: "AAAAA".into(),
        encoding_aes_key: None,
        max_timestamp_skew: None,
    })
    .expect("adapter");
    assert!(keyless.handle(&plain).is_ok());
    let keyed = adapter("wxba5fad812f8e6fb9", "AAAAA", &"A".repeat(43));
    assert_eq!(keyed.verify(&plain), Err(WebhookError::SafeModeRequired));
    assert_eq!(WebhookError::SafeModeRequired.code(), "safe_mode_required");
    assert!(WebhookError::SafeModeRequired.is_authentication());
    // A forged plain push to a keyed app is still a bad signature first.
    let forged = plain.clone().with_query("signature", "0000");
    assert_eq!(keyed.verify(&forged), Err(WebhookError::BadSignature));
    // URL verification stays plain-signed.
    let get = WebhookRequest::get()
        .with_query("timestamp", "1714036504")
        .with_query("nonce", "1514711492")
        .with_query("echostr", "e")
        .with_query(
            "signature",
            &crypto::signature(&["AAAAA", "1714036504", "1514711492"]),
        );
    assert!(keyed.verify(&get).is_ok());
    // The nonce the gateway remembers: only for pushes.
    assert_eq!(
        switchboard_channels::wechat::push_nonce(&plain),
        Some(("1714036504", "1514711492"))
    );
    assert_eq!(switchboard_channels::wechat::push_nonce(&get), None);
}
