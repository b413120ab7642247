//! Bad input on the sockets: a clear error frame with a stable code, and the socket stays open.

use serde_json::json;
use switchboard_tests::TestApp;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn customer_bad_frames_get_error_codes_and_the_socket_stays_open() {
    let app = TestApp::spawn().await;
    let mut customer = app.customer_ws(&app.visitor().await).await;
    let cases: Vec<(Message, &str)> = vec![
        (Message::Text("{not json".into()), "bad_frame"),
        (Message::Text(r#"{"type":"dance"}"#.into()), "unknown_type"),
        (
            Message::Text(r#"{"type":"send","client_msg_id":"c","text":"   "}"#.into()),
            "empty_text",
        ),
        (
            Message::Text(r#"{"type":"send","text":"no id"}"#.into()),
            "bad_frame",
        ),
        (
            Message::Text(
                json!({"type":"send","client_msg_id":"c","text":"x".repeat(64 * 1024 + 1)})
                    .to_string()
                    .into(),
            ),
            "too_large",
        ),
        (Message::Binary(vec![1, 2, 3].into()), "bad_frame"),
    ];
    for (message, code) in cases {
        customer.send_raw(message).await;
        let error = customer.expect_type("error").await;
        assert_eq!(error["code"], code);
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    // Still open and working; nothing bad was stored.
    customer
        .send(json!({"type":"send","client_msg_id":"ok","text":"fine now"}))
        .await;
    assert_eq!(customer.expect_type("receipt").await["seq"], 1);
    // Exactly 64 KiB is accepted.
    customer
        .send(json!({"type":"send","client_msg_id":"big","text":"y".repeat(64 * 1024)}))
        .await;
    assert_eq!(customer.expect_type("receipt").await["seq"], 2);
}

#[tokio::test]
async fn agent_bad_frames_get_error_codes() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_agent("Eve", &["general"], 2).await;
    let mut agent = app.agent_ws(&token).await;
    agent.send_raw(Message::Text("[]".into())).await;
    assert_eq!(agent.expect_type("error").await["code"], "unknown_type");
    agent
        .send(json!({"type":"send","conversation_id":"cv_nope","client_msg_id":"a","text":"hi"}))
        .await;
    let error = agent.expect_type("error").await;
    assert_eq!(error["code"], "not_assigned");
    assert_eq!(error["conversation_id"], "cv_nope");
    agent
        .send(json!({"type":"status","status":"sleeping"}))
        .await;
    assert_eq!(agent.expect_type("error").await["code"], "bad_frame");
    agent.send(json!({"type":"status","status":"away"})).await;
    assert_eq!(agent.expect_type("status").await["status"], "away");
}

#[tokio::test]
async fn sockets_refuse_bad_tokens() {
    let app = TestApp::spawn().await;
    for path in [
        "/v1/web/ws?token=v1.x.y",
        "/v1/agent/ws?token=nope",
        "/v1/web/ws",
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert!(
            matches!(response.status().as_u16(), 400 | 401),
            "{path}: {}",
            response.status()
        );
    }
    // A visitor token is not an agent token.
    let visitor = app.visitor().await;
    assert!(switchboard_tests::WsClient::connect(
        &app.ws_url(&format!("/v1/agent/ws?token={visitor}"))
    )
    .await
    .is_err());
}
