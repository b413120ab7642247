//! Attachments on WeChat and Douyin end to end, against a local fake provider: an agent's image
//! goes up with the provider's upload and out as an image message (then the caption), once even
//! when a later part fails and is retried; a provider refusal is a failed delivery; what a
//! provider cannot take is refused when the agent sends; a customer's WeChat image is fetched
//! with the app's token (retried), stored like an upload and opened by the agent.

use std::time::Duration;

use serde_json::{json, Value};
use switchboard_tests::{TestApp, WsClient};

use crate::attachments::{jpeg, noisy_png, png};
use crate::channels::{self, Fake};

/// The server against the fake, with the WeChat app `wx1` and the Douyin app `dy1`.
async fn spawn(fake: &Fake) -> TestApp {
    let app = channels::spawn(fake).await;
    channels::configure_wechat(&app).await;
    let body = json!({"client_key": channels::DY_KEY, "client_secret": channels::DY_SECRET});
    let (status, _) = channels::put_app(&app, "acme", &app.admin_key, "douyin", "dy1", body).await;
    assert_eq!(status, 200);
    app
}

fn wechat_xml(openid: &str, msg_id: &str, msg_type: &str, fields: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>\
         <CreateTime>{}</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>{fields}<MsgId>{msg_id}</MsgId></xml>",
        channels::now_secs()
    )
}

fn wechat_text(openid: &str, msg_id: &str, text: &str) -> String {
    wechat_xml(
        openid,
        msg_id,
        "text",
        &format!("<Content><![CDATA[{text}]]></Content>"),
    )
}

fn wechat_image(openid: &str, msg_id: &str, media_id: &str) -> String {
    wechat_xml(
        openid,
        msg_id,
        "image",
        &format!("<PicUrl><![CDATA[http://mmbiz.example/pic]]></PicUrl><MediaId><![CDATA[{media_id}]]></MediaId>"),
    )
}

/// A safe-mode push; answers the status and how long the push took.
async fn wechat_push(app: &TestApp, inner: &str) -> (u16, Duration) {
    let started = std::time::Instant::now();
    let (status, text) = channels::wechat_safe_push(app, inner).await;
    assert_eq!(text, "success", "wechat wants `success`");
    (status, started.elapsed())
}

async fn douyin_push(app: &TestApp, text: &str, msg_id: &str) {
    let mut body = channels::douyin_message("im_receive_msg", text, "");
    body["content"]["server_message_id"] = json!(msg_id);
    let response = channels::douyin_push(app, &body, Some(msg_id), None).await;
    assert_eq!(response.status(), 200);
}

/// The conversation of the next assignment, and the assignment.
async fn assigned(agent: &mut WsClient) -> (String, Value) {
    let frame = agent.expect_type("assigned").await;
    (
        frame["conversation"]["id"].as_str().unwrap().to_owned(),
        frame,
    )
}

async fn upload(app: &TestApp, token: &str, name: &str, body: Vec<u8>) -> Value {
    let response = app
        .http
        .post(app.url(&format!("/v1/agent/attachments?name={name}")))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

/// Sends an agent's message with attachments; answers the receipt or the error frame.
async fn agent_send(
    agent: &mut WsClient,
    conversation_id: &str,
    id: &str,
    text: &str,
    attachments: &[&Value],
) -> Value {
    let ids: Vec<&Value> = attachments.iter().map(|view| &view["id"]).collect();
    agent
        .send(json!({"type": "send", "conversation_id": conversation_id, "client_msg_id": id, "text": text, "attachments": ids}))
        .await;
    agent
        .expect("receipt or error", |frame| {
            (frame["type"] == "receipt" && frame["client_msg_id"] == id) || frame["type"] == "error"
        })
        .await
}

/// The conversation's one delivery, once it is in `state`.
async fn wait_delivery(app: &TestApp, conversation_id: &str, state: &str) -> Value {
    channels::wait_deliveries(app, conversation_id, 1, state).await[0].clone()
}

async fn customer_messages(app: &TestApp, conversation_id: &str) -> Vec<Value> {
    let (status, body) = app
        .admin_get(&format!(
            "/v1/tenants/acme/conversations/{conversation_id}/messages"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|message| message["sender"] == "customer")
        .cloned()
        .collect()
}

/// The multipart upload carried the file: its bytes (lossy) and its part name.
fn assert_uploaded(request: &Value, part: &str, file: &[u8]) {
    let raw = request["raw"].as_str().unwrap();
    assert!(
        request["headers"]["content-type"]
            .as_str()
            .unwrap()
            .starts_with("multipart/form-data; boundary="),
        "{request:#}"
    );
    assert!(
        raw.contains(&format!("name=\"{part}\"; filename=")),
        "{raw:.300}"
    );
    assert!(raw.contains(String::from_utf8_lossy(file).as_ref()));
    assert!(request["len"].as_u64().unwrap() > file.len() as u64);
}

// ---- out ------------------------------------------------------------------------------------

#[tokio::test]
async fn an_agents_image_goes_up_and_out_before_its_caption_on_wechat_and_douyin() {
    let fake = Fake::start().await;
    let app = spawn(&fake).await;
    let (_, agent_token) = app.create_agent("Alice", &["general"], 5).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let photo = png(64, 48);
    let view = upload(&app, &agent_token, "label.png", photo.clone()).await;

    // WeChat: upload (type image, the app's token), then the image message, then the caption.
    let (status, _) = wechat_push(&app, &wechat_text("oUSER1", "1001", "where is my label?")).await;
    assert_eq!(status, 200);
    let (conversation_id, _) = assigned(&mut agent).await;
    let receipt = agent_send(&mut agent, &conversation_id, "a1", "here it is", &[&view]).await;
    assert_eq!(receipt["type"], "receipt", "{receipt}");
    let sent = wait_delivery(&app, &conversation_id, "sent").await;
    assert_eq!(sent["attempts"], 1);
    assert_eq!(
        fake.calls(),
        [
            "/cgi-bin/media/upload",
            "/cgi-bin/message/custom/send:image",
            "/cgi-bin/message/custom/send:text"
        ]
    );
    let uploads = fake.requests("/cgi-bin/media/upload");
    assert!(uploads[0]["query"].as_str().unwrap().contains("type=image"));
    assert!(uploads[0]["query"]
        .as_str()
        .unwrap()
        .contains("access_token=TOKEN-1"));
    assert_uploaded(&uploads[0], "media", &photo);
    let sends = fake.requests("/cgi-bin/message/custom/send");
    assert_eq!(
        sends[0]["body"],
        json!({"touser": "oUSER1", "msgtype": "image", "image": {"media_id": "WX-MEDIA-1"}})
    );
    assert_eq!(sends[1]["body"]["text"]["content"], "here it is");

    // Douyin: the image service, then an image private message in the conversation, then the
    // caption; a captionless image is one message.
    douyin_push(&app, "and on douyin?", "dy-m1").await;
    let (douyin_conversation, _) = assigned(&mut agent).await;
    let receipt = agent_send(&mut agent, &douyin_conversation, "a2", "", &[&view]).await;
    assert_eq!(receipt["type"], "receipt", "{receipt}");
    wait_delivery(&app, &douyin_conversation, "sent").await;
    let uploads = fake.requests("/tool/imagex/client_upload/");
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0]["headers"]["access-token"], "DY-TOKEN");
    assert_uploaded(&uploads[0], "image", &photo);
    let sends = fake.requests("/im/send/msg/");
    assert_eq!(sends.len(), 1, "no caption, no text message");
    assert_eq!(sends[0]["body"]["to_user_id"], "_CUSTOMER");
    assert_eq!(sends[0]["body"]["conversation_id"], "conv-1");
    assert_eq!(
        sends[0]["body"]["content"],
        json!({"msg_type": 2, "image": {"media_id": "DY-IMAGE-1"}})
    );
}

#[tokio::test]
async fn a_retry_after_the_image_went_out_sends_only_what_is_left() {
    let fake = Fake::start().await;
    // The caption fails once, after the image was sent.
    fake.set(|state| state.text_failures = 1);
    let app = spawn(&fake).await;
    let (_, agent_token) = app.create_agent("Alice", &["general"], 5).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let first = upload(&app, &agent_token, "front.png", png(32, 32)).await;
    let second = upload(&app, &agent_token, "back.png", png(16, 16)).await;
    wechat_push(&app, &wechat_text("oUSER2", "2001", "photos please")).await;
    let (conversation_id, _) = assigned(&mut agent).await;
    let receipt = agent_send(
        &mut agent,
        &conversation_id,
        "a1",
        "front and back",
        &[&first, &second],
    )
    .await;
    assert_eq!(receipt["type"], "receipt", "{receipt}");
    let sent = wait_delivery(&app, &conversation_id, "sent").await;
    assert_eq!(sent["attempts"], 2, "{sent}");
    assert_eq!(
        fake.calls(),
        [
            "/cgi-bin/media/upload",
            "/cgi-bin/message/custom/send:image",
            "/cgi-bin/media/upload",
            "/cgi-bin/message/custom/send:image",
            "/cgi-bin/message/custom/send:text",
            // The retry: the caption only.
            "/cgi-bin/message/custom/send:text",
        ]
    );
}

#[tokio::test]
async fn a_provider_refusing_the_image_is_a_failed_delivery() {
    let fake = Fake::start().await;
    fake.set(|state| state.upload_errcode = Some(40005));
    let app = spawn(&fake).await;
    let (_, agent_token) = app.create_agent("Alice", &["general"], 5).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let view = upload(&app, &agent_token, "label.png", png(32, 32)).await;
    wechat_push(&app, &wechat_text("oUSER3", "3001", "label?")).await;
    let (conversation_id, _) = assigned(&mut agent).await;
    let receipt = agent_send(&mut agent, &conversation_id, "a1", "attached", &[&view]).await;
    assert_eq!(receipt["type"], "receipt", "{receipt}");
    let failed = agent
        .expect("delivery failed", |frame| {
            frame["type"] == "delivery" && frame["state"] == "failed"
        })
        .await;
    assert_eq!(failed["code"], "provider_error");
    let delivery = wait_delivery(&app, &conversation_id, "failed").await;
    assert_eq!(delivery["attempts"], 1, "a refusal is not retried");
    assert_eq!(
        fake.calls(),
        ["/cgi-bin/media/upload"],
        "nothing after the refused image"
    );
}

#[tokio::test]
async fn files_a_provider_cannot_take_are_refused_when_the_agent_sends() {
    let fake = Fake::start().await;
    let app = spawn(&fake).await;
    let (_, agent_token) = app.create_agent("Alice", &["general"], 5).await;
    let mut agent = app.agent_ws(&agent_token).await;
    wechat_push(&app, &wechat_text("oUSER4", "4001", "send me the invoice")).await;
    let (conversation_id, _) = assigned(&mut agent).await;

    let pdf = upload(
        &app,
        &agent_token,
        "invoice.pdf",
        b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n".to_vec(),
    )
    .await;
    let refused = agent_send(&mut agent, &conversation_id, "a1", "here", &[&pdf]).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "attachment_not_deliverable");
    assert!(refused["message"].as_str().unwrap().contains("invoice.pdf"));

    // An image larger than WeChat takes (the tenant allows it).
    let response = app
        .http
        .patch(app.url("/v1/tenants/acme/settings"))
        .bearer_auth(&app.admin_key)
        .json(&json!({"attachments": {"image_max_mb": 20}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.server.state.chat.forget_tenant_settings("acme");
    let big = noisy_png(1900);
    assert!(big.len() > 10 * 1024 * 1024, "{} bytes", big.len());
    let big = upload(&app, &agent_token, "big.png", big).await;
    let refused = agent_send(&mut agent, &conversation_id, "a2", "", &[&big]).await;
    assert_eq!(refused["code"], "attachment_not_deliverable", "{refused}");

    // Nothing was stored or sent; a fitting image still goes.
    let small = upload(&app, &agent_token, "ok.png", png(8, 8)).await;
    let receipt = agent_send(&mut agent, &conversation_id, "a3", "", &[&small]).await;
    assert_eq!(receipt["type"], "receipt", "{receipt}");
    wait_delivery(&app, &conversation_id, "sent").await;
    assert_eq!(
        fake.calls(),
        [
            "/cgi-bin/media/upload",
            "/cgi-bin/message/custom/send:image"
        ]
    );
}

// ---- in -------------------------------------------------------------------------------------

#[tokio::test]
async fn a_customers_wechat_image_is_fetched_once_and_the_agent_opens_it() {
    let fake = Fake::start().await;
    let photo = jpeg(400, 300);
    // The media API fails once: the fetch is retried.
    fake.set(|state| {
        state.media = photo.clone();
        state.media_failures = 1;
    });
    let app = spawn(&fake).await;
    let (_, agent_token) = app.create_agent("Alice", &["general"], 5).await;
    let mut agent = app.agent_ws(&agent_token).await;

    let (status, took) = wechat_push(&app, &wechat_image("oUSER5", "5001", "MEDIA-OK")).await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(4), "answered in {took:?}");
    let (conversation_id, assignment) = assigned(&mut agent).await;
    let message = &assignment["messages"][0];
    assert_eq!(message["text"], "", "{message}");
    let attachment = &message["attachments"][0];
    assert_eq!(attachment["kind"], "image");
    assert_eq!(attachment["media_type"], "image/jpeg");
    assert_eq!(attachment["name"], "MEDIA-OK.jpg");
    assert_eq!(attachment["size"], photo.len());
    assert_eq!(
        (attachment["width"].as_i64(), attachment["height"].as_i64()),
        (Some(400), Some(300))
    );
    let fetches = fake.requests("/cgi-bin/media/get");
    assert_eq!(fetches.len(), 2, "one failure, one retry");
    for fetch in &fetches {
        let query = fetch["query"].as_str().unwrap();
        assert!(query.contains("access_token=TOKEN-1"), "{query}");
        assert!(query.contains("media_id=MEDIA-OK"), "{query}");
    }
    let full = app
        .http
        .get(app.url(attachment["url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(full.bytes().await.unwrap().to_vec(), photo);
    let thumbnail = app
        .http
        .get(app.url(attachment["thumbnail_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(thumbnail.status(), 200);

    // WeChat delivers the same push again: stored once, fetched once.
    let (status, _) = wechat_push(&app, &wechat_image("oUSER5", "5001", "MEDIA-OK")).await;
    assert_eq!(status, 200);
    // A media id the provider refuses: the message is kept as a placeholder with a note.
    let (status, _) = wechat_push(&app, &wechat_image("oUSER5", "5002", "MEDIA-GONE")).await;
    assert_eq!(status, 200);
    let bad = agent
        .expect("the placeholder", |frame| {
            frame["type"] == "message" && frame["sender"] == "customer"
        })
        .await;
    assert!(
        bad["text"].as_str().unwrap().starts_with("[image] ("),
        "{bad}"
    );
    assert!(bad.get("attachments").is_none(), "{bad}");
    let stored = customer_messages(&app, &conversation_id).await;
    assert_eq!(stored.len(), 2, "{stored:#?}");
    assert_eq!(stored[0]["attachments"].as_array().unwrap().len(), 1);
    assert_eq!(
        fake.requests("/cgi-bin/media/get")
            .iter()
            .filter(|fetch| fetch["query"].as_str().unwrap().contains("MEDIA-OK"))
            .count(),
        2,
        "the redelivery fetched nothing"
    );
}

#[tokio::test]
async fn a_wechat_image_that_cannot_be_fetched_is_kept_with_a_note_and_the_bot_hands_off_one_that_can(
) {
    let fake = Fake::start().await;
    fake.set(|state| {
        state.media = png(20, 20);
        state.media_failures = 100;
    });
    let base = fake.base.clone();
    let app = TestApp::spawn_bot_first_with(move |settings| {
        settings.channels.wechat_base_url = base.clone();
        settings.channels.poll_interval_ms = 50;
    })
    .await;
    channels::configure_wechat(&app).await;

    // The media API is down: every attempt fails, the push is still answered and stored.
    let (status, took) = wechat_push(&app, &wechat_image("oUSER6", "6001", "MEDIA-OK")).await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(5), "answered in {took:?}");
    assert_eq!(
        fake.requests("/cgi-bin/media/get").len(),
        3,
        "three attempts"
    );
    let state = &app.server.state;
    let customer = state
        .store
        .customer_for_identity(
            "acme",
            switchboard_channels::ChannelKind::Wechat,
            "wx1:oUSER6",
            &store::CustomerProfile::default(),
        )
        .await
        .unwrap();
    let conversation = state
        .store
        .conversation_for_customer(&customer.id)
        .await
        .unwrap()
        .expect("the conversation");
    let stored = customer_messages(&app, &conversation.id).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0]["text"],
        "[image] (the picture could not be fetched from WeChat)"
    );

    // Once it works, an image alone goes to a person, as on the web.
    fake.set(|state| state.media_failures = 0);
    let (status, _) = wechat_push(&app, &wechat_image("oUSER7", "7001", "MEDIA-OK")).await;
    assert_eq!(status, 200);
    let customer = state
        .store
        .customer_for_identity(
            "acme",
            switchboard_channels::ChannelKind::Wechat,
            "wx1:oUSER7",
            &store::CustomerProfile::default(),
        )
        .await
        .unwrap();
    let mut handed_off = false;
    for _ in 0..50 {
        let conversation = state
            .store
            .conversation_for_customer(&customer.id)
            .await
            .unwrap()
            .expect("the conversation");
        if conversation.state == store::ConversationState::Queued {
            assert_eq!(conversation.handoff_reason.as_deref(), Some("attachment"));
            handed_off = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(handed_off, "the conversation went to the queue");
}

#[tokio::test]
async fn a_push_redelivered_while_its_media_is_fetched_is_stored_once() {
    let fake = Fake::start().await;
    // The first fetch fails, so the first delivery is still busy when the second arrives.
    fake.set(|state| {
        state.media = png(24, 24);
        state.media_failures = 1;
    });
    let app = spawn(&fake).await;
    let (_, agent_token) = app.create_agent("Alice", &["general"], 5).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let push = wechat_image("oUSER8", "8001", "MEDIA-OK");
    let (first, second) = tokio::join!(wechat_push(&app, &push), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        channels::wechat_safe_push(&app, &push).await
    });
    assert_eq!(first.0, 200);
    // Not `success` while the first is busy (it may still fail): WeChat delivers again.
    assert_eq!(second.0, 503, "{}", second.1);
    assert!(second.1.contains("in_progress"), "{}", second.1);
    // Delivered again once the first is done: stored already, so `success`.
    assert_eq!(wechat_push(&app, &push).await.0, 200);
    let (conversation_id, assignment) = assigned(&mut agent).await;
    assert_eq!(
        assignment["messages"][0]["attachments"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(customer_messages(&app, &conversation_id).await.len(), 1);
    assert_eq!(
        fake.requests("/cgi-bin/media/get").len(),
        2,
        "one failure and one retry, by the first delivery only"
    );
    let kept = app
        .server
        .state
        .store
        .attachments_before(Some("acme"), store::util::now_ms() + 60_000, 100)
        .await
        .unwrap();
    assert_eq!(kept.len(), 1, "the image is kept once");
}
