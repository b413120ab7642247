//! Douyin webhook details beyond the fixtures: signatures on raw bytes, content shapes, garbage.

use switchboard_channels::adapter::{ChannelAdapter, WebhookError, WebhookOutcome, WebhookRequest};
use switchboard_channels::douyin::{DouyinAdapter, DouyinConfig};

fn adapter() -> DouyinAdapter {
    DouyinAdapter::new(DouyinConfig {
        client_key: "awKEY".into(),
        client_secret: "secret".into(),
    })
}

fn signed(body: &str) -> WebhookRequest {
    let signature = adapter().sign(body.as_bytes());
    WebhookRequest::post(body)
        .with_header("X-Douyin-Signature", &signature)
        .with_header("Msg-Id", "m1")
}

#[test]
fn signature_is_sha1_of_secret_then_raw_body() {
    // sha1("secret" + "{}") computed with python hashlib.
    assert_eq!(
        adapter().sign(b"{}"),
        "313497c3712f3817a8a95eb3763b52f7c09690ba"
    );
    let request =
        signed(r#"{"event":"verify_webhook","client_key":"","content":{"challenge":"abc"}}"#);
    assert_eq!(
        adapter().handle(&request),
        Ok(WebhookOutcome::Handshake {
            body: r#"{"challenge":"abc"}"#.into(),
            content_type: "application/json".into()
        })
    );
    // The same json re-serialized (a space added) no longer matches: checked on raw bytes.
    let mut respaced = request.clone();
    respaced.body =
        br#"{"event": "verify_webhook","client_key":"","content":{"challenge":"abc"}}"#.to_vec();
    assert_eq!(adapter().verify(&respaced), Err(WebhookError::BadSignature));
    let mut unsigned = request.clone();
    unsigned.headers.remove("x-douyin-signature");
    assert!(matches!(
        adapter().verify(&unsigned),
        Err(WebhookError::Missing(_))
    ));
}

#[test]
fn messages_sent_by_the_account_elsewhere_are_ignored_too() {
    let body = r#"{"event":"im_send_msg","client_key":"awKEY","from_user_id":"_acct","to_user_id":"_cust","content":{"message_type":"text","text":"hi","source":""}}"#;
    assert!(matches!(
        adapter().handle(&signed(body)),
        Ok(WebhookOutcome::Ignored { .. })
    ));
}

#[test]
fn missing_msg_id_falls_back_to_the_server_message_id() {
    let body = r#"{"event":"im_receive_msg","client_key":"awKEY","from_user_id":"_cust","to_user_id":"_acct","content":"{\"message_type\":\"text\",\"text\":\"hi\",\"server_message_id\":\"@s1\",\"conversation_short_id\":\"@c1\"}"}"#;
    let mut request = signed(body);
    request.headers.remove("msg-id");
    let Ok(WebhookOutcome::Message {
        message,
        reply_context,
    }) = adapter().handle(&request)
    else {
        panic!("expected a message");
    };
    assert_eq!(message.dedup_key.as_deref(), Some("@s1"));
    assert!(reply_context.is_some());
}

#[test]
fn garbage_is_a_typed_error() {
    for body in [
        "",
        "not json",
        "[]",
        r#"{"event":"im_receive_msg","content":"not json"}"#,
        r#"{"event":"im_receive_msg","content":42}"#,
        r#"{"event":"im_receive_msg","from_user_id":"u","content":{"message_type":"text"}}"#,
        r#"{"event":"im_receive_msg","content":{"message_type":"text","text":"x"}}"#,
        r#"{"event":"verify_webhook","content":{}}"#,
    ] {
        let result = adapter().handle(&signed(body));
        assert!(result.is_err(), "{body} gave {result:?}");
    }
}

#[test]
fn the_dedup_key_comes_from_the_signed_body_never_the_msg_id_header() {
    let body = r#"{"event":"im_receive_msg","client_key":"awKEY","from_user_id":"_cust","to_user_id":"_acct","content":{"message_type":"text","text":"hi","server_message_id":"@s1","conversation_short_id":"@c1"}}"#;
    let key_with = |msg_id: Option<&str>| {
        let mut request = signed(body);
        match msg_id {
            Some(id) => request = request.with_header("Msg-Id", id),
            None => {
                request.headers.remove("msg-id");
            }
        }
        match adapter().handle(&request) {
            Ok(WebhookOutcome::Message { message, .. }) => message.dedup_key,
            other => panic!("expected a message, got {other:?}"),
        }
    };
    // A replay under a new (unsigned) header is the same message.
    assert_eq!(key_with(Some("m1")).as_deref(), Some("@s1"));
    assert_eq!(key_with(Some("m-replayed")).as_deref(), Some("@s1"));
    assert_eq!(key_with(None).as_deref(), Some("@s1"));
    // Without a server id, a digest of the signed body: the same for the same body.
    let bare = r#"{"event":"im_receive_msg","client_key":"awKEY","from_user_id":"_cust","content":{"message_type":"text","text":"hi"}}"#;
    let keys: Vec<_> = ["a", "b"]
        .iter()
        .map(
            |id| match adapter().handle(&signed(bare).with_header("Msg-Id", id)) {
                Ok(WebhookOutcome::Message { message, .. }) => message.dedup_key,
                other => panic!("expected a message, got {other:?}"),
            },
        )
        .collect();
    assert_eq!(keys[0], keys[1]);
    assert!(keys[0]
        .as_deref()
        .is_some_and(|key| key.starts_with("body:")));
}

#[test]
fn stale_or_undated_messages_are_refused_when_a_window_is_set() {
    let strict = adapter().with_max_age(Some(std::time::Duration::from_secs(300)));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let message = |create_time: Option<i64>| {
        let mut content =
            serde_json::json!({"message_type": "text", "text": "hi", "server_message_id": "@s1"});
        if let Some(time) = create_time {
            content["create_time"] = serde_json::json!(time);
        }
        serde_json::json!({"event": "im_receive_msg", "client_key": "awKEY", "from_user_id": "_cust", "content": content}).to_string()
    };
    let handle = |body: String| {
        let signature = adapter().sign(body.as_bytes());
        strict.handle(&WebhookRequest::post(body).with_header("X-Douyin-Signature", &signature))
    };
    assert!(matches!(
        handle(message(Some(now_ms))),
        Ok(WebhookOutcome::Message { .. })
    ));
    assert!(
        matches!(
            handle(message(Some(now_ms / 1000))),
            Ok(WebhookOutcome::Message { .. })
        ),
        "seconds too"
    );
    assert_eq!(
        handle(message(Some(now_ms - 3_600_000))),
        Err(WebhookError::StaleTimestamp)
    );
    assert_eq!(
        handle(message(Some(now_ms + 3_600_000))),
        Err(WebhookError::StaleTimestamp)
    );
    assert_eq!(handle(message(None)), Err(WebhookError::StaleTimestamp));
    // The challenge carries no time and still works; without a window nothing is checked.
    let challenge =
        r#"{"event":"verify_webhook","client_key":"","content":{"challenge":"abc"}}"#.to_owned();
    assert!(matches!(
        handle(challenge),
        Ok(WebhookOutcome::Handshake { .. })
    ));
    assert!(matches!(
        adapter().handle(&signed(&message(None))),
        Ok(WebhookOutcome::Message { .. })
    ));
}
