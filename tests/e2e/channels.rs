//! WeChat, Douyin and mobile apps end to end: webhooks in, agents answer, replies out through
//! the outbox to a local fake provider that records requests and fails on purpose.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};
use switchboard_channels::douyin::{DouyinAdapter, DouyinConfig};
use switchboard_channels::mobile::{MobileClaims, MobileTokenVerifier};
use switchboard_channels::wechat::crypto::{encrypt, signature, AesKey};
use switchboard_tests::{TestApp, WsClient};

pub(crate) const APPID: &str = "wx5e1c0c0ffee00001";
pub(crate) const TOKEN: &str = "switchboardtoken";
pub(crate) const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
pub(crate) const APPSECRET: &str = "wechat-appsecret-value";
pub(crate) const DY_KEY: &str = "awswitchboard0001";
pub(crate) const DY_SECRET: &str = "dysecret-0123456789";
const MOBILE_SECRET: &str = "mobile-secret-0123456789abcdef";

// ---- the fake provider ----------------------------------------------------------------------

#[derive(Default)]
pub(crate) struct FakeState {
    /// Every request: {"path", "query", "headers", "body" (JSON or null), "raw" (the bytes,
    /// lossy), "len"}.
    requests: Vec<Value>,
    /// Answer sends (not token fetches) with this HTTP status.
    send_status: Option<u16>,
    /// Answer WeChat sends with this errcode.
    send_errcode: Option<i64>,
    /// Text messages (WeChat `msgtype: text`, Douyin `msg_type: 1`) answered 503 this many times.
    pub(crate) text_failures: usize,
    /// Image uploads answered with this WeChat errcode (a refusal).
    pub(crate) upload_errcode: Option<i64>,
    /// `GET /cgi-bin/media/get` answered 503 this many times.
    pub(crate) media_failures: usize,
    /// The image `GET /cgi-bin/media/get` answers for `MEDIA-OK`.
    pub(crate) media: Vec<u8>,
}

#[derive(Clone)]
pub(crate) struct Fake {
    pub(crate) base: String,
    state: Arc<Mutex<FakeState>>,
}

impl Fake {
    pub(crate) async fn start() -> Fake {
        let state = Arc::new(Mutex::new(FakeState::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = axum::Router::new()
            .fallback(fake_handler)
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Fake { base, state }
    }

    pub(crate) fn set(&self, change: impl FnOnce(&mut FakeState)) {
        change(&mut self.state.lock().unwrap());
    }

    pub(crate) fn requests(&self, path: &str) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|request| request["path"] == path)
            .cloned()
            .collect()
    }

    /// Waits until `path` saw `count` requests (answered any way).
    /// The provider calls in order, as `path` or `path:kind` for sends (`image`, `text`).
    pub(crate) fn calls(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|request| !request["path"].as_str().unwrap().contains("token"))
            .map(|request| {
                let path = request["path"].as_str().unwrap();
                match message_kind(&request["body"]) {
                    Some(kind) => format!("{path}:{kind}"),
                    None => path.to_owned(),
                }
            })
            .collect()
    }

    pub(crate) async fn wait_for(&self, path: &str, count: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let seen = self.requests(path);
            if seen.len() >= count {
                return seen;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {count} requests to {path}, saw {seen:#?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// WeChat's URL verification (a plain-signed GET that echoes `echostr`) for app `wx1`.
async fn verify_wechat_url(app: &TestApp, echostr: &str) -> reqwest::Response {
    let (timestamp, nonce) = (now_secs().to_string(), nonce());
    app.http
        .get(app.url("/v1/channels/wechat/acme/wx1"))
        .query(&[
            (
                "signature",
                signature(&[TOKEN, &timestamp, &nonce]).as_str(),
            ),
            ("timestamp", timestamp.as_str()),
            ("nonce", nonce.as_str()),
            ("echostr", echostr),
        ])
        .send()
        .await
        .unwrap()
}

/// `image` or `text` for a WeChat or Douyin send body.
fn message_kind(body: &Value) -> Option<&'static str> {
    match (
        body["msgtype"].as_str(),
        body["content"]["msg_type"].as_i64(),
    ) {
        (Some("image"), _) | (_, Some(2)) => Some("image"),
        (Some("text"), _) | (_, Some(1)) => Some("text"),
        _ => None,
    }
}

async fn fake_handler(
    State(state): State<Arc<Mutex<FakeState>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    let body_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let header_map: HashMap<String, String> = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let mut state = state.lock().unwrap();
    state.requests.push(json!({
        "path": path, "query": query, "headers": header_map, "body": body_json,
        "raw": String::from_utf8_lossy(&body), "len": body.len(),
    }));
    match path.as_str() {
        "/cgi-bin/token" => {
            Json(json!({"access_token": "TOKEN-1", "expires_in": 7200})).into_response()
        }
        "/oauth/client_token/" => {
            Json(json!({"data": {"access_token": "DY-TOKEN", "expires_in": 7200, "error_code": 0}}))
                .into_response()
        }
        // A push hook that redirects to the real one: never followed.
        "/push-redirect" => (
            StatusCode::TEMPORARY_REDIRECT,
            [(axum::http::header::LOCATION, "/push")],
        )
            .into_response(),
        _ => {
            if let Some(status) = state.send_status {
                return StatusCode::from_u16(status).unwrap().into_response();
            }
            match path.as_str() {
                "/cgi-bin/message/custom/send" | "/im/send/msg/"
                    if message_kind(&body_json) == Some("text") && state.text_failures > 0 =>
                {
                    state.text_failures -= 1;
                    StatusCode::SERVICE_UNAVAILABLE.into_response()
                }
                "/cgi-bin/message/custom/send" => match state.send_errcode {
                    Some(code) => Json(json!({"errcode": code, "errmsg": "response out of time limit or subscription is canceled"})).into_response(),
                    None => Json(json!({"errcode": 0, "errmsg": "ok"})).into_response(),
                },
                "/im/send/msg/" => Json(json!({"data": {"error_code": 0, "msg_id": "dy-msg-1"}})).into_response(),
                "/cgi-bin/media/upload" => match state.upload_errcode {
                    Some(code) => {
                        Json(json!({"errcode": code, "errmsg": "invalid media type"})).into_response()
                    }
                    None => Json(json!({"type": "image", "media_id": "WX-MEDIA-1", "created_at": 1}))
                        .into_response(),
                },
                "/tool/imagex/client_upload/" => {
                    Json(json!({"data": {"image_id": "DY-IMAGE-1", "error_code": 0}})).into_response()
                }
                "/cgi-bin/media/get" if state.media_failures > 0 => {
                    state.media_failures -= 1;
                    StatusCode::SERVICE_UNAVAILABLE.into_response()
                }
                "/cgi-bin/media/get" if query.contains("media_id=MEDIA-OK") => (
                    [
                        (axum::http::header::CONTENT_TYPE, "image/jpeg"),
                        (
                            axum::http::header::CONTENT_DISPOSITION,
                            "attachment; filename=\"MEDIA-OK.jpg\"",
                        ),
                    ],
                    state.media.clone(),
                )
                    .into_response(),
                "/cgi-bin/media/get" => (
                    [(axum::http::header::CONTENT_TYPE, "text/plain")],
                    r#"{"errcode":40007,"errmsg":"invalid media_id"}"#,
                )
                    .into_response(),
                _ => StatusCode::OK.into_response(),
            }
        }
    }
}

// ---- helpers --------------------------------------------------------------------------------

pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub(crate) fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub(crate) async fn spawn(fake: &Fake) -> TestApp {
    spawn_with(fake, |_| {}).await
}

/// Like [`spawn`], with push hooks allowed on http and on loopback (the fake is local).
async fn spawn_allowing_local_push(fake: &Fake) -> TestApp {
    spawn_with(fake, |settings| {
        settings.channels.allow_http_push_urls = true;
        settings.channels.allow_private_push_hosts = true;
    })
    .await
}

async fn spawn_with(fake: &Fake, change: impl FnOnce(&mut gateway::config::Settings)) -> TestApp {
    let base = fake.base.clone();
    TestApp::spawn_with(move |settings| {
        settings.channels.wechat_base_url = base.clone();
        settings.channels.douyin_base_url = base.clone();
        settings.channels.retry_base_ms = 100;
        settings.channels.retry_max_ms = 400;
        settings.channels.poll_interval_ms = 50;
        change(settings);
    })
    .await
}

pub(crate) async fn put_app(
    app: &TestApp,
    tenant: &str,
    key: &str,
    kind: &str,
    name: &str,
    body: Value,
) -> (u16, Value) {
    let response = app
        .http
        .put(app.url(&format!("/v1/tenants/{tenant}/channels/{kind}/{name}")))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn configure_wechat(app: &TestApp) {
    let body = json!({"appid": APPID, "token": TOKEN, "encoding_aes_key": AES_KEY, "appsecret": APPSECRET});
    let (status, _) = put_app(app, "acme", &app.admin_key, "wechat", "wx1", body).await;
    assert_eq!(status, 200);
}

fn wechat_text_xml(openid: &str, msg_id: &str, text: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>\
         <CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content>\
         <MsgId>{msg_id}</MsgId></xml>",
        now_secs()
    )
}

/// A safe-mode push: the message encrypted for the app, `msg_signature` over the ciphertext.
pub(crate) async fn wechat_safe_push(app: &TestApp, inner: &str) -> (u16, String) {
    let key = AesKey::from_encoding_aes_key(AES_KEY).unwrap();
    let encrypted = encrypt(&key, inner, APPID);
    let (timestamp, nonce) = (now_secs().to_string(), nonce());
    let body = format!("<xml><ToUserName><![CDATA[gh_account]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>");
    let response = app
        .http
        .post(app.url("/v1/channels/wechat/acme/wx1"))
        .query(&[
            (
                "signature",
                signature(&[TOKEN, &timestamp, &nonce]).as_str(),
            ),
            ("timestamp", timestamp.as_str()),
            ("nonce", nonce.as_str()),
            ("encrypt_type", "aes"),
            (
                "msg_signature",
                signature(&[TOKEN, &timestamp, &nonce, &encrypted]).as_str(),
            ),
        ])
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The conversation id of the next assignment.
async fn assigned(agent: &mut WsClient, text: &str) -> (String, Value) {
    let frame = agent
        .expect("assigned", |frame| {
            frame["type"] == "assigned" && frame["messages"][0]["text"] == text
        })
        .await;
    (
        frame["conversation"]["id"].as_str().unwrap().to_owned(),
        frame,
    )
}

async fn agent_send(agent: &mut WsClient, conversation_id: &str, id: &str, text: &str) {
    agent.send(json!({"type": "send", "conversation_id": conversation_id, "client_msg_id": id, "text": text})).await;
    agent
        .expect("receipt", |frame| {
            frame["type"] == "receipt" && frame["client_msg_id"] == id
        })
        .await;
}

pub(crate) async fn deliveries(app: &TestApp, conversation_id: &str) -> Vec<Value> {
    let (status, body) = app
        .admin_get(&format!(
            "/v1/tenants/acme/conversations/{conversation_id}/deliveries"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body["deliveries"].as_array().unwrap().clone()
}

/// Waits until every delivery of the conversation is in `state` (and there are `count`).
pub(crate) async fn wait_deliveries(
    app: &TestApp,
    conversation_id: &str,
    count: usize,
    state: &str,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let found = deliveries(app, conversation_id).await;
        if found.len() == count && found.iter().all(|delivery| delivery["state"] == state) {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {count} deliveries {state}: {found:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn customer_texts(app: &TestApp, conversation_id: &str) -> Vec<String> {
    let (_, body) = app
        .admin_get(&format!(
            "/v1/tenants/acme/conversations/{conversation_id}/messages"
        ))
        .await;
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|message| message["sender"] == "customer")
        .map(|message| message["text"].as_str().unwrap().to_owned())
        .collect()
}

fn mobile_token(secret: &str, sub: &str, iat: i64) -> String {
    MobileTokenVerifier::new(secret.as_bytes().to_vec()).sign(&MobileClaims {
        sub: sub.to_owned(),
        iat,
        // Always in the future, so an old `iat` tests staleness, not expiry.
        exp: now_secs() + 600,
        nonce: nonce(),
    })
}

// ---- WeChat ---------------------------------------------------------------------------------

#[tokio::test]
async fn wechat_plain_and_safe_pushes_reach_the_agent_and_replies_use_a_cached_token() {
    let fake = Fake::start().await;
    let app = spawn(&fake).await;
    configure_wechat(&app).await;
    let (_, agent_token) = app.create_agent("Alice", &["general"], 5).await;
    let mut agent = app.agent_ws(&agent_token).await;

    // URL verification answers echostr.
    let response = verify_wechat_url(&app, "echo-123").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "echo-123");

    // The app has an EncodingAESKey: safe mode, then the same delivery retried (a new nonce),
    // then another message. (Plain mode is covered on an app without a key below.)
    let first = wechat_text_xml("oUSER1", "1001", "where is my parcel");
    assert_eq!(
        wechat_safe_push(&app, &first).await,
        (200, "success".to_owned())
    );
    let (conversation_id, frame) = assigned(&mut agent, "where is my parcel").await;
    assert_eq!(frame["conversation"]["customer"]["channel"], "wechat");
    assert_eq!(
        wechat_safe_push(&app, &first).await,
        (200, "success".to_owned())
    );
    let (status, body) =
        wechat_safe_push(&app, &wechat_text_xml("oUSER1", "1002", "hello again")).await;
    assert_eq!((status, body.as_str()), (200, "success"));
    agent.expect_text("hello again").await;
    assert_eq!(
        customer_texts(&app, &conversation_id).await,
        ["where is my parcel", "hello again"],
        "the retry is stored once"
    );

    // A forged push is refused.
    let response = app
        .http
        .post(app.url("/v1/channels/wechat/acme/wx1"))
        .query(&[
            ("signature", "0000"),
            ("timestamp", now_secs().to_string().as_str()),
            ("nonce", "n"),
        ])
        .body(wechat_text_xml("oUSER1", "1003", "forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "bad_signature"
    );

    // Two replies: one token fetch, both sends carry it.
    agent_send(&mut agent, &conversation_id, "a1", "it ships today").await;
    agent_send(&mut agent, &conversation_id, "a2", "anything else?").await;
    let sends = fake.wait_for("/cgi-bin/message/custom/send", 2).await;
    for send in &sends {
        assert!(
            send["query"]
                .as_str()
                .unwrap()
                .contains("access_token=TOKEN-1"),
            "{send}"
        );
        assert_eq!(send["body"]["touser"], "oUSER1");
        assert_eq!(send["body"]["msgtype"], "text");
    }
    let texts: Vec<&str> = sends
        .iter()
        .map(|send| send["body"]["text"]["content"].as_str().unwrap())
        .collect();
    assert!(
        texts.contains(&"it ships today") && texts.contains(&"anything else?"),
        "{texts:?}"
    );
    assert_eq!(
        fake.requests("/cgi-bin/token").len(),
        1,
        "the access token is cached"
    );
    let states = wait_deliveries(&app, &conversation_id, 2, "sent").await;
    assert_eq!(states[0]["kind"], "send");
    assert_eq!(states[0]["channel"], "wechat");
    agent
        .expect("delivery sent", |frame| {
            frame["type"] == "delivery" && frame["state"] == "sent"
        })
        .await;
}

/// After the agent closes a WeChat chat, the survey goes out as a text; the user's reply "５"
/// (full-width) is the rating: stored with the agent, thanked through the outbox, and the
/// conversation stays closed. A retried delivery of the reply changes nothing; a later question
/// reopens the conversation as usual.
#[tokio::test]
async fn a_wechat_reply_of_one_digit_after_the_survey_is_the_rating() {
    let fake = Fake::start().await;
    let app = spawn(&fake).await;
    configure_wechat(&app).await;
    let (agent_id, agent_token) = app.create_agent("Alice", &["general"], 5).await;
    let mut agent = app.agent_ws(&agent_token).await;
    wechat_safe_push(&app, &wechat_text_xml("oRATE", "3001", "my order is late")).await;
    let (conversation_id, _) = assigned(&mut agent, "my order is late").await;
    agent_send(&mut agent, &conversation_id, "a1", "it ships today").await;
    agent
        .send(json!({"type": "close", "conversation_id": conversation_id}))
        .await;
    // The survey leaves through the outbox as a text asking for 1-5.
    let sends = fake.wait_for("/cgi-bin/message/custom/send", 2).await;
    let survey = sends
        .iter()
        .map(|send| send["body"]["text"]["content"].as_str().unwrap().to_owned())
        .find(|text| text.contains("1–5"))
        .expect("the survey was sent");
    assert!(survey.contains("Reply 1–5"), "{survey}");

    let reply = wechat_text_xml("oRATE", "3002", "５");
    assert_eq!(
        wechat_safe_push(&app, &reply).await,
        (200, "success".to_owned())
    );
    // Thanked, and still closed: the digit did not reopen it.
    let sends = fake.wait_for("/cgi-bin/message/custom/send", 3).await;
    assert!(
        sends.iter().any(|send| send["body"]["text"]["content"]
            .as_str()
            .unwrap()
            .contains("Thank you for your rating")),
        "{sends:#?}"
    );
    let (_, detail) = app
        .admin_get(&format!("/v1/tenants/acme/conversations/{conversation_id}"))
        .await;
    assert_eq!(detail["conversation"]["state"], "closed");
    assert!(
        !customer_texts(&app, &conversation_id)
            .await
            .contains(&"５".to_owned()),
        "the rating is not a message"
    );
    // The provider retries the same reply: no second thanks.
    wechat_safe_push(&app, &reply).await;
    let mut rated = Value::Null;
    for _ in 0..100 {
        let (_, body) = app.admin_get("/v1/tenants/acme/reports").await;
        rated = body["report"]["by_agent"][0].clone();
        if rated["ratings"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(rated["key"], agent_id.as_str(), "{rated}");
    assert_eq!(rated["csat_average"], 5.0, "{rated}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.requests("/cgi-bin/message/custom/send").len(), 3);

    // A question reopens the conversation as usual.
    wechat_safe_push(&app, &wechat_text_xml("oRATE", "3003", "one more question")).await;
    assert!(customer_texts(&app, &conversation_id)
        .await
        .contains(&"one more question".to_owned()));
    let (_, detail) = app
        .admin_get(&format!("/v1/tenants/acme/conversations/{conversation_id}"))
        .await;
    assert_ne!(detail["conversation"]["state"], "closed");
}

#[tokio::test]
async fn an_expired_reply_window_is_a_failed_delivery_the_agent_sees() {
    let fake = Fake::start().await;
    fake.set(|state| state.send_errcode = Some(45015));
    let app = spawn(&fake).await;
    configure_wechat(&app).await;
    let (_, agent_token) = app.create_agent("Alice", &["general"], 5).await;
    let mut agent = app.agent_ws(&agent_token).await;
    wechat_safe_push(&app, &wechat_text_xml("oUSER2", "2001", "hi")).await;
    let (conversation_id, _) = assigned(&mut agent, "hi").await;
    agent_send(&mut agent, &conversation_id, "a1", "sorry for the wait").await;
    let failed = agent
        .expect("delivery failed", |frame| {
            frame["type"] == "delivery" && frame["state"] == "failed"
        })
        .await;
    assert_eq!(failed["code"], "reply_window_expired");
    assert_eq!(failed["conversation_id"], conversation_id.as_str());
    let found = wait_deliveries(&app, &conversation_id, 1, "failed").await;
    assert_eq!(found[0]["code"], "reply_window_expired");
    assert_eq!(found[0]["attempts"], 1, "not retried");
    assert_eq!(fake.requests("/cgi-bin/message/custom/send").len(), 1);
    // The Channels page sees the app's failures, newest first, with the last day's counts.
    let (status, app_view) = app
        .admin_get("/v1/tenants/acme/channels/wechat/wx1/deliveries?limit=5")
        .await;
    assert_eq!(status, 200, "{app_view}");
    assert_eq!(app_view["deliveries"][0]["code"], "reply_window_expired");
    assert_eq!(app_view["last_day"]["failed"], 1);
    let (status, _) = app
        .admin_get("/v1/tenants/acme/channels/fax/wx1/deliveries")
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_provider_outage_is_retried_until_delivered() {
    let fake = Fake::start().await;
    fake.set(|state| state.send_status = Some(503));
    let app = spawn(&fake).await;
    configure_wechat(&app).await;
    let (_, agent_token) = app.create_agent("Alice", &["general"], 5).await;
    let mut agent = app.agent_ws(&agent_token).await;
    wechat_safe_push(&app, &wechat_text_xml("oUSER3", "3001", "hello?")).await;
    let (conversation_id, _) = assigned(&mut agent, "hello?").await;
    agent_send(&mut agent, &conversation_id, "a1", "here I am").await;
    fake.wait_for("/cgi-bin/message/custom/send", 2).await;
    let pending = deliveries(&app, &conversation_id).await;
    assert_eq!(pending[0]["state"], "pending");
    assert_eq!(pending[0]["code"], "provider_unavailable");
    fake.set(|state| state.send_status = None);
    let sent = wait_deliveries(&app, &conversation_id, 1, "sent").await;
    assert!(sent[0]["attempts"].as_i64().unwrap() >= 3);
}

#[tokio::test]
async fn a_pending_reply_survives_a_restart() {
    let fake = Fake::start().await;
    fake.set(|state| state.send_status = Some(503));
    let data_dir = tempfile::tempdir().unwrap();
    let settings = || {
        let mut settings = gateway::config::Settings::load(None, &HashMap::new()).unwrap();
        settings.addr = "127.0.0.1:0".parse().unwrap();
        settings.data_dir = data_dir.path().to_path_buf();
        settings.demo = false;
        settings.log.filter = "warn".into();
        settings.channels.wechat_base_url = fake.base.clone();
        settings.channels.retry_base_ms = 200;
        settings.channels.retry_max_ms = 400;
        settings.channels.poll_interval_ms = 50;
        // A row claimed by the first process when it stops is free again soon.
        settings.channels.lease_ms = 500;
        settings
    };
    let http = reqwest::Client::new();
    let server = gateway::Server::start(settings()).await.unwrap();
    let admin_key = gateway::demo::create_tenant(&server.state.store, "acme")
        .await
        .unwrap();
    server
        .state
        .store
        .set_tenant_settings("acme", &json!({"work_mode": "human_first"}))
        .await
        .unwrap();
    let base = format!("http://{}", server.addr);
    let response = http
        .put(format!("{base}/v1/tenants/acme/channels/wechat/wx1"))
        .bearer_auth(&admin_key)
        .json(&json!({"appid": APPID, "token": TOKEN, "appsecret": APPSECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let agent: Value = http
        .post(format!("{base}/v1/tenants/acme/agents"))
        .bearer_auth(&admin_key)
        .json(&json!({"name": "Alice", "skills": ["general"], "max_concurrent": 5}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut agent_ws = WsClient::connect(&format!(
        "ws://{}/v1/agent/ws?token={}",
        server.addr,
        agent["token"].as_str().unwrap()
    ))
    .await
    .unwrap();
    let (timestamp, nonce) = (now_secs().to_string(), nonce());
    let response = http
        .post(format!("{base}/v1/channels/wechat/acme/wx1"))
        .query(&[
            (
                "signature",
                signature(&[TOKEN, &timestamp, &nonce]).as_str(),
            ),
            ("timestamp", timestamp.as_str()),
            ("nonce", nonce.as_str()),
        ])
        .body(wechat_text_xml("oUSER4", "4001", "still there?"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (conversation_id, _) = assigned(&mut agent_ws, "still there?").await;
    agent_send(&mut agent_ws, &conversation_id, "a1", "yes, sorry").await;
    fake.wait_for("/cgi-bin/message/custom/send", 1).await;
    agent_ws.close().await;
    server.stop().await.unwrap();

    // The provider recovers while the server is down; the new process resumes the pending row.
    fake.set(|state| state.send_status = None);
    let server = gateway::Server::start(settings()).await.unwrap();
    let base = format!("http://{}", server.addr);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let body: Value = http
            .get(format!(
                "{base}/v1/tenants/acme/conversations/{conversation_id}/deliveries"
            ))
            .bearer_auth(&admin_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body["deliveries"][0]["state"] == "sent" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not delivered after the restart: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sends = fake.requests("/cgi-bin/message/custom/send");
    assert_eq!(
        sends.last().unwrap()["body"]["text"]["content"],
        "yes, sorry"
    );
    server.stop().await.unwrap();
}

/// A plain-mode push with the given signed timestamp and nonce.
async fn wechat_plain_push_with(
    app: &TestApp,
    path_app: &str,
    timestamp: &str,
    nonce: &str,
    body: String,
) -> (u16, Value) {
    let response = app
        .http
        .post(app.url(&format!("/v1/channels/wechat/acme/{path_app}")))
        .query(&[
            ("signature", signature(&[TOKEN, timestamp, nonce]).as_str()),
            ("timestamp", timestamp),
            ("nonce", nonce),
        ])
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn a_wechat_app_with_an_aes_key_refuses_plain_mode_pushes() {
    let fake = Fake::start().await;
    let app = spawn(&fake).await;
    configure_wechat(&app).await;
    // Correctly signed for plain mode, but the app has a key: its pushes must be encrypted
    // (the plain signature does not cover the body).
    let (status, body) = wechat_plain_push_with(
        &app,
        "wx1",
        &now_secs().to_string(),
        &nonce(),
        wechat_text_xml("oPLAIN", "7001", "plain text body"),
    )
    .await;
    assert_eq!((status, &body["code"]), (401, &json!("safe_mode_required")));
    let (_, conversations) = app.admin_get("/v1/tenants/acme/conversations").await;
    assert_eq!(
        conversations["conversations"].as_array().map(Vec::len),
        Some(0),
        "nothing stored: {conversations}"
    );
    // URL verification stays plain-signed, and safe mode works.
    let response = verify_wechat_url(&app, "echo-9").await;
    assert_eq!(response.text().await.unwrap(), "echo-9");
    assert_eq!(
        wechat_safe_push(&app, &wechat_text_xml("oPLAIN", "7002", "sealed")).await,
        (200, "success".to_owned())
    );
}

#[tokio::test]
async fn a_wechat_signature_cannot_be_replayed_with_another_body() {
    let fake = Fake::start().await;
    let app = spawn(&fake).await;
    // A plain-mode app (no key): the signature covers token, timestamp and nonce only.
    let body = json!({"appid": APPID, "token": TOKEN, "appsecret": APPSECRET});
    let (status, _) = put_app(&app, "acme", &app.admin_key, "wechat", "wx2", body).await;
    assert_eq!(status, 200);
    let (_, agent_token) = app.create_agent("Alice", &["general"], 5).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let (timestamp, nonce) = (now_secs().to_string(), nonce());
    let (status, _) = wechat_plain_push_with(
        &app,
        "wx2",
        &timestamp,
        &nonce,
        wechat_text_xml("oREPLAY", "8001", "the real message"),
    )
    .await;
    assert_eq!(status, 200);
    let (conversation_id, _) = assigned(&mut agent, "the real message").await;
    // The captured query with a forged body, and the very same request again: both refused.
    for forged in [
        wechat_text_xml("oREPLAY", "8002", "forged by whoever saw the query"),
        wechat_text_xml("oVICTIM", "8003", "forged for another customer"),
        wechat_text_xml("oREPLAY", "8001", "the real message"),
    ] {
        let (status, body) = wechat_plain_push_with(&app, "wx2", &timestamp, &nonce, forged).await;
        assert_eq!((status, &body["code"]), (401, &json!("replayed")), "{body}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        customer_texts(&app, &conversation_id).await,
        ["the real message"]
    );
    let (_, conversations) = app.admin_get("/v1/tenants/acme/conversations").await;
    assert_eq!(
        conversations["conversations"].as_array().map(Vec::len),
        Some(1),
        "no conversation for the forged customer: {conversations}"
    );
    // A new nonce is a new delivery.
    let (status, _) = wechat_plain_push_with(
        &app,
        "wx2",
        &now_secs().to_string(),
        &self::nonce(),
        wechat_text_xml("oREPLAY", "8004", "a second message"),
    )
    .await;
    assert_eq!(status, 200);
    agent.expect_text("a second message").await;
}

/// A push refused for a moment (here the customer's message rate) was not stored: WeChat's
/// redelivery of it, with the same signed nonce, is taken, not refused as a replay.
#[tokio::test]
async fn a_wechat_push_refused_for_a_moment_is_taken_when_delivered_again_with_its_nonce() {
    let fake = Fake::start().await;
    let app = spawn(&fake).await;
    let body = json!({"appid": APPID, "token": TOKEN, "appsecret": APPSECRET});
    let (status, _) = put_app(&app, "acme", &app.admin_key, "wechat", "wx2", body).await;
    assert_eq!(status, 200);
    let timestamp = now_secs().to_string();
    let mut refused = None;
    for n in 0..40 {
        let nonce = nonce();
        let xml = wechat_text_xml("oBURST", &format!("95{n:02}"), &format!("burst {n}"));
        let (status, body) =
            wechat_plain_push_with(&app, "wx2", &timestamp, &nonce, xml.clone()).await;
        if status == 429 {
            refused = Some((n, nonce, xml));
            break;
        }
        assert_eq!(status, 200, "{body}");
    }
    let (n, nonce, xml) = refused.expect("a customer's burst is far below 40 messages");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (status, body) = wechat_plain_push_with(&app, "wx2", &timestamp, &nonce, xml).await;
    assert_eq!(status, 200, "{body}");
    let (_, conversations) = app.admin_get("/v1/tenants/acme/conversations").await;
    let conversation_id = conversations["conversations"][0]["id"]
        .as_str()
        .expect("the customer's conversation")
        .to_owned();
    let texts = customer_texts(&app, &conversation_id).await;
    assert_eq!(
        texts.last().map(String::as_str),
        Some(format!("burst {n}").as_str())
    );
    assert_eq!(texts.len(), n + 1, "{texts:?}");
}

// ---- Douyin ---------------------------------------------------------------------------------

pub(crate) async fn douyin_push(
    app: &TestApp,
    body: &Value,
    msg_id: Option<&str>,
    signature: Option<&str>,
) -> reqwest::Response {
    let raw = body.to_string();
    let signed = DouyinAdapter::new(DouyinConfig {
        client_key: DY_KEY.into(),
        client_secret: DY_SECRET.into(),
    })
    .sign(raw.as_bytes());
    let mut request = app
        .http
        .post(app.url("/v1/channels/douyin/acme/dy1"))
        .header("content-type", "application/json")
        .header("x-douyin-signature", signature.unwrap_or(&signed));
    if let Some(msg_id) = msg_id {
        request = request.header("msg-id", msg_id);
    }
    request.body(raw).send().await.unwrap()
}

pub(crate) fn douyin_message(event: &str, text: &str, source: &str) -> Value {
    json!({
        "event": event, "client_key": DY_KEY, "from_user_id": "_CUSTOMER", "to_user_id": "_ACCOUNT",
        "content": {"conversation_short_id": "conv-1", "server_message_id": "srv-1", "message_type": "text", "text": text, "source": source, "create_time": now_secs() * 1000},
    })
}

#[tokio::test]
async fn douyin_challenge_signature_messages_echoes_and_replies() {
    let fake = Fake::start().await;
    let app = spawn(&fake).await;
    let (status, _) = put_app(
        &app,
        "acme",
        &app.admin_key,
        "douyin",
        "dy1",
        json!({"client_key": DY_KEY, "client_secret": DY_SECRET}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, agent_token) = app.create_agent("Alice", &["general"], 5).await;
    let mut agent = app.agent_ws(&agent_token).await;

    let challenge = douyin_push(
        &app,
        &json!({"event": "verify_webhook", "client_key": DY_KEY, "content": {"challenge": 12345}}),
        None,
        None,
    )
    .await;
    assert_eq!(challenge.status(), 200);
    assert_eq!(
        challenge.json::<Value>().await.unwrap(),
        json!({"challenge": 12345})
    );

    let forged = douyin_push(
        &app,
        &douyin_message("im_receive_msg", "forged", ""),
        Some("m0"),
        Some("0123"),
    )
    .await;
    assert_eq!(forged.status(), 401);
    assert_eq!(
        forged.json::<Value>().await.unwrap()["code"],
        "bad_signature"
    );

    let message = douyin_message("im_receive_msg", "when does it ship?", "");
    assert_eq!(
        douyin_push(&app, &message, Some("m1"), None).await.status(),
        200
    );
    let (conversation_id, _) = assigned(&mut agent, "when does it ship?").await;
    assert_eq!(
        douyin_push(&app, &message, Some("m1"), None).await.status(),
        200,
        "a retry is answered"
    );
    // Our own echo is ignored.
    let echo = douyin_message("im_receive_msg", "echo of ours", DY_KEY);
    assert_eq!(
        douyin_push(&app, &echo, Some("m2"), None).await.status(),
        200
    );
    let sent_event = douyin_message("im_send_msg", "sent by us", DY_KEY);
    assert_eq!(
        douyin_push(&app, &sent_event, Some("m3"), None)
            .await
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        customer_texts(&app, &conversation_id).await,
        ["when does it ship?"]
    );

    agent_send(&mut agent, &conversation_id, "a1", "this afternoon").await;
    let sends = fake.wait_for("/im/send/msg/", 1).await;
    assert!(sends[0]["query"]
        .as_str()
        .unwrap()
        .contains("open_id=_ACCOUNT"));
    assert_eq!(sends[0]["headers"]["access-token"], "DY-TOKEN");
    assert_eq!(sends[0]["body"]["to_user_id"], "_CUSTOMER");
    assert_eq!(sends[0]["body"]["conversation_id"], "conv-1");
    assert_eq!(
        sends[0]["body"]["content"]["text"]["text"],
        "this afternoon"
    );
    wait_deliveries(&app, &conversation_id, 1, "sent").await;
}

// ---- mobile apps ----------------------------------------------------------------------------

async fn mobile_get(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    let response = app
        .http
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn mobile_apps_authenticate_resume_read_history_and_get_pushes_when_offline() {
    let fake = Fake::start().await;
    // The fake push hook is `http://127.0.0.1:<port>`: allowed explicitly for this test.
    let app = spawn_allowing_local_push(&fake).await;
    let push_url = format!("{}/push?key=hook-credential", fake.base);
    let (status, _) = put_app(
        &app,
        "acme",
        &app.admin_key,
        "mobile",
        "app",
        json!({"jwt_secret": MOBILE_SECRET, "push_url": push_url}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, agent_token) = app.create_agent("Alice", &["general"], 5).await;
    let mut agent = app.agent_ws(&agent_token).await;

    let token = mobile_token(MOBILE_SECRET, "user-1", now_secs());
    let mut phone =
        WsClient::connect(&app.ws_url(&format!("/v1/mobile/ws?tenant=acme&token={token}")))
            .await
            .unwrap();
    phone
        .send(json!({"type": "send", "client_msg_id": "m1", "text": "hi from the app"}))
        .await;
    assert_eq!(phone.expect_type("receipt").await["seq"], 1);
    let (conversation_id, frame) = assigned(&mut agent, "hi from the app").await;
    assert_eq!(frame["conversation"]["customer"]["channel"], "mobile");

    // The same token again is a replay; an old one is stale; another tenant's secret is refused.
    assert!(
        WsClient::connect(&app.ws_url(&format!("/v1/mobile/ws?tenant=acme&token={token}")))
            .await
            .is_err()
    );
    let (status, body) = mobile_get(
        &app,
        &format!("/v1/mobile/conversations/{conversation_id}/messages?tenant=acme"),
        &token,
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (401, Some("replayed")));
    let stale = mobile_token(MOBILE_SECRET, "user-1", now_secs() - 3600);
    let (status, body) = mobile_get(
        &app,
        &format!("/v1/mobile/conversations/{conversation_id}/messages?tenant=acme"),
        &stale,
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (401, Some("stale")));
    let forged = mobile_token("another-secret-0123456789", "user-1", now_secs());
    let (status, body) = mobile_get(
        &app,
        &format!("/v1/mobile/conversations/{conversation_id}/messages?tenant=acme"),
        &forged,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("bad_signature"))
    );

    // While connected the reply arrives on the socket and nothing is pushed.
    agent_send(&mut agent, &conversation_id, "a1", "hello from support").await;
    phone.expect_text("hello from support").await;

    // History (bearer header), after a seq; someone else's conversation is not found.
    let fresh = mobile_token(MOBILE_SECRET, "user-1", now_secs());
    let (status, body) = mobile_get(
        &app,
        &format!("/v1/mobile/conversations/{conversation_id}/messages?tenant=acme&after=1"),
        &fresh,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let texts: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert!(
        texts.contains(&"hello from support") && !texts.contains(&"hi from the app"),
        "{texts:?}"
    );
    let other = mobile_token(MOBILE_SECRET, "user-2", now_secs());
    let (status, _) = mobile_get(
        &app,
        &format!("/v1/mobile/conversations/{conversation_id}/messages?tenant=acme"),
        &other,
    )
    .await;
    assert_eq!(status, 404);

    // Offline: the next reply goes to the push hook, signed with the tenant's secret.
    phone.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent_send(&mut agent, &conversation_id, "a2", "your refund is done").await;
    let pushes = fake.wait_for("/push", 1).await;
    assert_eq!(pushes.len(), 1, "only the offline reply is pushed");
    assert_eq!(pushes[0]["body"]["user_id"], "user-1");
    assert_eq!(pushes[0]["body"]["text"], "your refund is done");
    assert_eq!(
        pushes[0]["body"]["conversation_id"],
        conversation_id.as_str()
    );
    assert!(pushes[0]["headers"]["x-switchboard-signature"]
        .as_str()
        .unwrap()
        .starts_with("sha256="));
    let found = wait_deliveries(&app, &conversation_id, 1, "sent").await;
    assert_eq!(found[0]["kind"], "push");

    // A reply of a file alone: the push says what was sent, never an empty line.
    let upload = app
        .http
        .post(app.url("/v1/agent/attachments?name=refund.pdf"))
        .bearer_auth(&agent_token)
        .body(b"%PDF-1.4\n%%EOF\n".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 201);
    let pdf: Value = upload.json().await.unwrap();
    agent
        .send(json!({"type": "send", "conversation_id": conversation_id, "client_msg_id": "a3", "attachments": [pdf["id"]]}))
        .await;
    agent.expect_type("receipt").await;
    let pushes = fake.wait_for("/push", 2).await;
    assert_eq!(pushes[1]["body"]["text"], "[file] refund.pdf");
}

#[tokio::test]
async fn douyin_dedups_on_the_signed_message_id_and_refuses_stale_pushes() {
    let fake = Fake::start().await;
    let app = spawn(&fake).await;
    let (status, _) = put_app(
        &app,
        "acme",
        &app.admin_key,
        "douyin",
        "dy1",
        json!({"client_key": DY_KEY, "client_secret": DY_SECRET}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, agent_token) = app.create_agent("Alice", &["general"], 5).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let message = douyin_message("im_receive_msg", "is it in stock?", "");
    assert_eq!(
        douyin_push(&app, &message, Some("m1"), None).await.status(),
        200
    );
    let (conversation_id, _) = assigned(&mut agent, "is it in stock?").await;
    // The captured push replayed with new (unsigned) Msg-Id headers, or none: the same message.
    for msg_id in [Some("m-new-1"), Some("m-new-2"), None] {
        assert_eq!(
            douyin_push(&app, &message, msg_id, None).await.status(),
            200
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        customer_texts(&app, &conversation_id).await,
        ["is it in stock?"],
        "a replay with a new header is stored once"
    );
    // A correctly signed push whose signed create_time is an hour old, or missing: refused.
    let mut stale = douyin_message("im_receive_msg", "an old capture", "");
    stale["content"]["server_message_id"] = json!("srv-old");
    stale["content"]["create_time"] = json!((now_secs() - 3600) * 1000);
    let response = douyin_push(&app, &stale, Some("m-old"), None).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "stale_timestamp"
    );
    let mut undated = stale.clone();
    undated["content"]
        .as_object_mut()
        .unwrap()
        .remove("create_time");
    let response = douyin_push(&app, &undated, Some("m-undated"), None).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "stale_timestamp"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        customer_texts(&app, &conversation_id).await,
        ["is it in stock?"]
    );
}

// ---- push hooks: no SSRF, no oracle -------------------------------------------------------

async fn put_mobile(app: &TestApp, push_url: &str) -> (u16, Value) {
    put_app(
        app,
        "acme",
        &app.admin_key,
        "mobile",
        "app",
        json!({"jwt_secret": MOBILE_SECRET, "push_url": push_url}),
    )
    .await
}

/// A mobile user writes, is assigned, goes offline; the agent then replies (a push row).
async fn reply_to_offline_mobile_user(
    app: &TestApp,
    agent: &mut WsClient,
    sub: &str,
    text: &str,
) -> String {
    let token = mobile_token(MOBILE_SECRET, sub, now_secs());
    let mut phone =
        WsClient::connect(&app.ws_url(&format!("/v1/mobile/ws?tenant=acme&token={token}")))
            .await
            .unwrap();
    let question = format!("question from {sub}");
    phone
        .send(json!({"type": "send", "client_msg_id": "m1", "text": question}))
        .await;
    phone.expect_type("receipt").await;
    let (conversation_id, _) = assigned(agent, &question).await;
    phone.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent_send(agent, &conversation_id, "a1", text).await;
    conversation_id
}

#[tokio::test]
async fn push_urls_must_be_https_and_global_by_default() {
    let fake = Fake::start().await;
    let app = spawn(&fake).await;
    for refused in [
        format!("{}/push", fake.base), // http, and loopback
        "http://push.example/hook".to_owned(),
        "https://127.0.0.1/hook".to_owned(),
        "https://10.1.2.3/hook".to_owned(),
        "https://[::1]:8443/hook".to_owned(),
        "https://[::ffff:169.254.169.254]/latest/meta-data".to_owned(),
        "https://169.254.169.254/latest/meta-data".to_owned(),
        "https://localhost/hook".to_owned(),
        "ftp://push.example/hook".to_owned(),
    ] {
        let (status, body) = put_mobile(&app, &refused).await;
        assert_eq!(
            (status, &body["code"]),
            (400, &json!("bad_config")),
            "{refused}: {body}"
        );
    }
    let (status, body) = put_mobile(&app, "https://push.example/hook?key=k").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_stored_push_hook_on_loopback_is_never_called() {
    let fake = Fake::start().await;
    // http allowed (the fake has no TLS), private hosts not: the default rule under test.
    let app = spawn_with(&fake, |settings| {
        settings.channels.allow_http_push_urls = true
    })
    .await;
    // A URL stored before the rules existed: written straight to the store (the API refuses
    // `localhost`). Every call checks the destination again (names after resolution; the
    // resolver itself is unit-tested in `switchboard_channels::outbound_guard`).
    let port = fake.base.rsplit(':').next().unwrap().to_owned();
    let mut secrets = serde_json::Map::new();
    secrets.insert("jwt_secret".into(), json!(MOBILE_SECRET));
    secrets.insert(
        "push_url".into(),
        json!(format!("http://localhost:{port}/push")),
    );
    app.server
        .state
        .store
        .put_channel_app("acme", "mobile", "app", &serde_json::Map::new(), &secrets)
        .await
        .unwrap();
    let (_, agent_token) = app.create_agent("Alice", &["general"], 5).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let conversation_id =
        reply_to_offline_mobile_user(&app, &mut agent, "user-ssrf", "internal data?").await;
    let found = wait_deliveries(&app, &conversation_id, 1, "failed").await;
    assert_eq!(found[0]["kind"], "push");
    assert_eq!(found[0]["code"], "push_destination_refused");
    assert_eq!(found[0]["attempts"], 1, "not retried");
    assert!(fake.requests("/push").is_empty(), "loopback was called");
}

#[tokio::test]
async fn push_hooks_follow_no_redirect_and_failures_show_no_remote_status() {
    let fake = Fake::start().await;
    let app = spawn_allowing_local_push(&fake).await;
    let (status, _) = put_mobile(&app, &format!("{}/push-redirect", fake.base)).await;
    assert_eq!(status, 200);
    let (_, agent_token) = app.create_agent("Alice", &["general"], 5).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let first = reply_to_offline_mobile_user(&app, &mut agent, "user-r", "first reply").await;
    let failed = wait_deliveries(&app, &first, 1, "failed").await;
    assert_eq!(failed[0]["code"], "push_failed");
    assert_eq!(failed[0]["error"], "the push hook call failed");
    assert_eq!(fake.requests("/push-redirect").len(), 1);
    assert!(
        fake.requests("/push").is_empty(),
        "the redirect was followed"
    );

    // Whatever the remote answers, the tenant sees the same code and message.
    let (status, _) = put_mobile(&app, &format!("{}/push", fake.base)).await;
    assert_eq!(status, 200);
    fake.set(|state| state.send_status = Some(404));
    let second = reply_to_offline_mobile_user(&app, &mut agent, "user-s", "second reply").await;
    let failed = wait_deliveries(&app, &second, 1, "failed").await;
    assert_eq!(failed[0]["code"], "push_failed");
    assert_eq!(failed[0]["error"], "the push hook call failed");
    // Ids and times are left out: a timestamp or a hex id may hold "404" by chance.
    let shown: Vec<String> = failed[0]
        .as_object()
        .expect("a delivery is an object")
        .iter()
        .filter(|(key, _)| *key != "id" && !key.ends_with("_id") && !key.ends_with("_at"))
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    assert!(
        !shown.iter().any(|field| field.contains("404")),
        "{shown:?}"
    );
}

// ---- identity linking -----------------------------------------------------------------------

#[tokio::test]
async fn linked_identities_share_one_history() {
    let fake = Fake::start().await;
    let app = spawn(&fake).await;
    configure_wechat(&app).await;
    put_app(
        &app,
        "acme",
        &app.admin_key,
        "mobile",
        "app",
        json!({"jwt_secret": MOBILE_SECRET}),
    )
    .await;
    let (_, agent_token) = app.create_agent("Alice", &["general"], 5).await;
    let mut agent = app.agent_ws(&agent_token).await;

    wechat_safe_push(
        &app,
        &wechat_text_xml("oLINKED", "5001", "written on wechat"),
    )
    .await;
    let (conversation_id, frame) = assigned(&mut agent, "written on wechat").await;
    let wechat_customer = frame["conversation"]["customer"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, me) = mobile_get(
        &app,
        "/v1/mobile/me?tenant=acme",
        &mobile_token(MOBILE_SECRET, "crm-user", now_secs()),
    )
    .await;
    assert_eq!(status, 200, "{me}");
    let mobile_customer = me["customer_id"].as_str().unwrap().to_owned();
    assert!(me["conversation_id"].is_null());

    let link = |customer: String| {
        let app = &app;
        async move {
            let response = app
                .http
                .post(app.url(&format!("/v1/tenants/acme/customers/{customer}/link")))
                .bearer_auth(&app.admin_key)
                .json(&json!({"crm_id": "crm-42"}))
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, body) = link(wechat_customer.clone()).await;
    assert_eq!(
        (status, body["primary_customer_id"].as_str()),
        (200, Some(wechat_customer.as_str()))
    );
    let (status, body) = link(mobile_customer.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(body["primary_customer_id"], wechat_customer.as_str());
    assert_eq!(body["conversation_id"], conversation_id.as_str());

    // The app sees the WeChat history and writes into the same conversation.
    let token = mobile_token(MOBILE_SECRET, "crm-user", now_secs());
    let mut phone =
        WsClient::connect(&app.ws_url(&format!("/v1/mobile/ws?tenant=acme&app=app&token={token}")))
            .await
            .unwrap();
    phone.send(json!({"type": "resume", "last_seq": 0})).await;
    phone.expect_text("written on wechat").await;
    phone
        .send(json!({"type": "send", "client_msg_id": "m1", "text": "and now from the app"}))
        .await;
    agent
        .expect("the app's message in the same chat", |frame| {
            frame["type"] == "message"
                && frame["text"] == "and now from the app"
                && frame["conversation_id"] == conversation_id.as_str()
        })
        .await;
    let (status, history) = mobile_get(
        &app,
        &format!("/v1/mobile/conversations/{conversation_id}/messages?tenant=acme"),
        &mobile_token(MOBILE_SECRET, "crm-user", now_secs()),
    )
    .await;
    assert_eq!(status, 200);
    let texts: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert!(
        texts.contains(&"written on wechat") && texts.contains(&"and now from the app"),
        "{texts:?}"
    );

    // Relinking to another CRM id is a conflict; an unknown customer is not found.
    let response = app
        .http
        .post(app.url(&format!(
            "/v1/tenants/acme/customers/{mobile_customer}/link"
        )))
        .bearer_auth(&app.admin_key)
        .json(&json!({"crm_id": "crm-other"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    let (status, _) = {
        let response = app
            .http
            .post(app.url("/v1/tenants/acme/customers/cu_nope/link"))
            .bearer_auth(&app.admin_key)
            .json(&json!({"crm_id": "crm-42"}))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), ())
    };
    assert_eq!(status, 404);
}

// ---- configuration, secrets and tenants -----------------------------------------------------

#[tokio::test]
async fn secrets_are_never_returned_and_tenants_stay_apart() {
    let fake = Fake::start().await;
    let app = spawn(&fake).await;
    configure_wechat(&app).await;
    put_app(
        &app,
        "acme",
        &app.admin_key,
        "douyin",
        "dy1",
        json!({"client_key": DY_KEY, "client_secret": DY_SECRET}),
    )
    .await;
    let (status, put) = put_app(
        &app,
        "acme",
        &app.admin_key,
        "mobile",
        "app",
        json!({"jwt_secret": MOBILE_SECRET, "push_url": "https://push.example/hook?key=k-123"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, list) = app.admin_get("/v1/tenants/acme/channels").await;
    assert_eq!(status, 200);
    let (_, one) = app.admin_get("/v1/tenants/acme/channels/wechat/wx1").await;
    for shown in [list.to_string(), one.to_string(), put.to_string()] {
        for secret in [TOKEN, AES_KEY, APPSECRET, DY_SECRET, MOBILE_SECRET, "k-123"] {
            assert!(!shown.contains(secret), "a secret was returned: {shown}");
        }
    }
    assert_eq!(one["appid"], APPID);
    assert_eq!(one["webhook_path"], "/v1/channels/wechat/acme/wx1");
    assert_eq!(
        one["secrets_set"],
        json!(["appsecret", "encoding_aes_key", "token"])
    );
    assert_eq!(list["apps"].as_array().unwrap().len(), 3);

    // An edit that sends no secrets keeps them (the console never sees them to send back);
    // an optional secret sent empty is removed.
    let (status, edited) = put_app(
        &app,
        "acme",
        &app.admin_key,
        "wechat",
        "wx1",
        json!({"appid": APPID}),
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    assert!(edited["updated_at"].as_i64() >= one["updated_at"].as_i64());
    assert_eq!(
        edited["secrets_set"],
        json!(["appsecret", "encoding_aes_key", "token"])
    );
    let (_, plain) = put_app(
        &app,
        "acme",
        &app.admin_key,
        "mobile",
        "app",
        json!({"push_url": ""}),
    )
    .await;
    assert_eq!(plain["secrets_set"], json!(["jwt_secret"]));
    // A new app still needs its secrets.
    let (status, body) = put_app(
        &app,
        "acme",
        &app.admin_key,
        "wechat",
        "wx9",
        json!({"appid": APPID}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_config")));

    // Bad input: stable codes.
    let (status, body) = put_app(
        &app,
        "acme",
        &app.admin_key,
        "wechat",
        "wx2",
        json!({"appid": APPID, "token": TOKEN, "appsecret": "s", "encoding_aes_key": "short"}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_config")));
    let (status, body) = put_app(&app, "acme", &app.admin_key, "telegram", "t1", json!({})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_kind")));
    let (status, body) = put_app(
        &app,
        "acme",
        &app.admin_key,
        "douyin",
        "dy2",
        json!({"client_key": DY_KEY}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_config")));

    // Another tenant's key cannot configure or read acme; acme's apps do not exist for it.
    let other_key = app.create_tenant("other").await;
    let (status, _) = put_app(
        &app,
        "acme",
        &other_key,
        "wechat",
        "wx9",
        json!({"appid": "a", "token": "t", "appsecret": "s"}),
    )
    .await;
    assert_eq!(status, 401);
    let response = app
        .http
        .get(app.url("/v1/tenants/acme/channels"))
        .bearer_auth(&other_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let (status, _) = wechat_safe_push(&app, &wechat_text_xml("oX", "1", "x")).await;
    assert_eq!(status, 200);
    let response = app
        .http
        .post(app.url("/v1/channels/wechat/other/wx1"))
        .query(&[("signature", "x"), ("timestamp", "1"), ("nonce", "n")])
        .body("<xml/>")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let (_, conversations) = app.admin_get("/v1/tenants/acme/conversations").await;
    let acme_conversation = conversations["conversations"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = app
        .http
        .get(app.url(&format!(
            "/v1/tenants/other/conversations/{acme_conversation}/deliveries"
        )))
        .bearer_auth(&other_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    // A mobile token of acme's secret names acme; presented for `other` (no mobile app) it is refused.
    let (status, _) = mobile_get(
        &app,
        "/v1/mobile/me?tenant=other",
        &mobile_token(MOBILE_SECRET, "u", now_secs()),
    )
    .await;
    assert_eq!(status, 404);
}
