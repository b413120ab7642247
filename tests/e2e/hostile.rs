//! Hostile callers: what an anonymous caller or a tenant's own upload costs the node.

use std::time::Duration;

use serde_json::{json, Value};
use switchboard_tests::TestApp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends the head of a request that declares `declared` body bytes but sends only a few, and
/// returns the status line of whatever the server answers within `wait` (None: no answer).
async fn answer_to_a_partial_body(
    app: &TestApp,
    method: &str,
    path: &str,
    auth: Option<&str>,
    declared: usize,
    wait: Duration,
) -> Option<String> {
    let mut socket = tokio::net::TcpStream::connect(app.server.addr)
        .await
        .expect("connect");
    let auth = auth
        .map(|key| format!("authorization: Bearer {key}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: text/csv\r\n{auth}content-length: {declared}\r\n\r\nquestion,answer\r\n"
    );
    socket.write_all(head.as_bytes()).await.expect("write");
    let mut answer = vec![0u8; 1024];
    match tokio::time::timeout(wait, socket.read(&mut answer)).await {
        Ok(Ok(read)) if read > 0 => Some(
            String::from_utf8_lossy(&answer[..read])
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
        ),
        _ => None,
    }
}

/// A small body that stops half-way is answered `400 body_timeout` once the node's
/// `body_timeout_ms` passes (before, the node waited for it as long as the connection lasted);
/// one declared over 2 MB is refused at once.
#[tokio::test]
async fn a_stalled_small_body_is_answered_in_time() {
    let app = TestApp::spawn_with(|settings| settings.body_timeout_ms = 300).await;
    for path in [
        "/v1/web/session",
        "/v1/web/messages",
        "/v1/channels/wechat/acme/app",
        "/v1/channels/douyin/acme/app",
    ] {
        let status =
            answer_to_a_partial_body(&app, "POST", path, None, 1_000, Duration::from_secs(5)).await;
        assert_eq!(
            status.as_deref(),
            Some("HTTP/1.1 400 Bad Request"),
            "{path}"
        );
        let status =
            answer_to_a_partial_body(&app, "POST", path, None, 3 << 20, Duration::from_secs(5))
                .await;
        assert_eq!(
            status.as_deref(),
            Some("HTTP/1.1 413 Payload Too Large"),
            "{path}"
        );
    }
}

/// An anonymous upload is refused before its body is read: the answer comes at once, while
/// the declared 100 MB never arrive (before, the node waited for and held the whole body).
#[tokio::test]
async fn uploads_are_refused_before_their_body_is_read() {
    let app = TestApp::spawn().await;
    let declared = 100 * 1024 * 1024;
    for (method, path) in [
        ("POST", "/v1/tenants/acme/kb/import"),
        ("POST", "/v1/tenants/acme/intents/train"),
        ("PUT", "/v1/tenants/acme/policies/routing"),
        ("PUT", "/v1/tenants/acme/policies/sensitive-words/list"),
        ("PUT", "/v1/tenants/acme/intents/model"),
        ("POST", "/v1/tenants/nobody/kb/import"),
    ] {
        let status =
            answer_to_a_partial_body(&app, method, path, None, declared, Duration::from_secs(5))
                .await;
        assert_eq!(
            status.as_deref(),
            Some("HTTP/1.1 401 Unauthorized"),
            "{method} {path} must be refused before its body arrives"
        );
    }
    // With the admin key, a body over the limit is refused with a clear code, not read whole.
    let response = app
        .http
        .post(app.url("/v1/tenants/acme/intents/train"))
        .bearer_auth(&app.admin_key)
        .body(vec![b'a'; 33 * 1024 * 1024])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 413);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "too_large");
}

/// A training file is bounded in examples and distinct labels, not only in bytes: one example
/// or one label too many is refused while the file is parsed, before any job embeds or trains
/// (before, 32 MiB of `t,L123456` lines made ~3 million examples with a label each).
#[tokio::test]
async fn training_files_are_capped_in_examples_and_labels() {
    let app = TestApp::spawn().await;
    let train = |csv: String| {
        let app = &app;
        async move {
            let response = app
                .http
                .post(app.url("/v1/tenants/acme/intents/train?format=csv"))
                .bearer_auth(&app.admin_key)
                .body(csv)
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json"))
        }
    };
    // 100,001 examples of two labels.
    let csv: String = (0..100_001).map(|i| format!("t{i},L{}\n", i % 2)).collect();
    let (status, body) = train(csv).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("too_many_examples")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("100000"),
        "{body}"
    );
    // 501 examples, each with a label of its own.
    let csv: String = (0..501).map(|i| format!("t{i},L{i}\n")).collect();
    let (status, body) = train(csv).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("too_many_labels")),
        "{body}"
    );
    assert!(body["message"].as_str().unwrap().contains("500"), "{body}");
    // Nothing was started.
    let (_, jobs) = app.admin_get("/v1/tenants/acme/jobs").await;
    assert!(!jobs.to_string().contains("intents_train"), "{jobs}");
}

/// A small CSV import with the admin key.
async fn small_import(app: &TestApp) -> reqwest::Response {
    app.http
        .post(app.url("/v1/tenants/acme/kb/import"))
        .bearer_auth(&app.admin_key)
        .header("content-type", "text/csv")
        .body("question,answer\nq,a\n")
        .send()
        .await
        .expect("request")
}

/// A tenant admin cannot hold more than a few upload slots of the node: the next is refused
/// with `busy` while they are taken (slow bodies), and served again once they are released.
#[tokio::test]
async fn slow_uploads_take_a_bounded_number_of_slots() {
    let app = TestApp::spawn().await;
    let admin = app.admin_key.clone();
    let mut slow = Vec::new();
    for _ in 0..gateway::UPLOADS_AT_ONCE {
        let mut socket = tokio::net::TcpStream::connect(app.server.addr)
            .await
            .expect("connect");
        let head = format!(
            "POST /v1/tenants/acme/kb/import HTTP/1.1\r\nhost: localhost\r\ncontent-type: text/csv\r\nauthorization: Bearer {admin}\r\ncontent-length: 1000000\r\n\r\nquestion,answer\r\n"
        );
        socket.write_all(head.as_bytes()).await.expect("write");
        slow.push(socket);
    }
    // The slow uploads have been authenticated and hold their slots.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let response = small_import(&app).await;
    assert_eq!(response.status().as_u16(), 503);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "busy");
    drop(slow);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let response = small_import(&app).await;
    assert_eq!(
        response.status().as_u16(),
        200,
        "slots come back when uploads end"
    );
}

/// A visitor's profile at session creation is held to the same limits as an admin's edit
/// (before, any length was stored, encrypted, on every session).
#[tokio::test]
async fn a_visitor_profile_over_the_limits_is_refused() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .post(app.url("/v1/web/session"))
        .json(&serde_json::json!({
            "tenant": "acme",
            "profile": { "name": "x".repeat(100_000) }
        }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "bad_profile");
    let fine = app
        .http
        .post(app.url("/v1/web/session"))
        .json(&serde_json::json!({ "tenant": "acme", "profile": { "name": "Ada" } }))
        .send()
        .await
        .expect("request");
    assert_eq!(fine.status().as_u16(), 200);
}

/// A tenant's word lists are capped in number and in words ending together, and a message that
/// matches a hostile list hundreds of thousands of times stores each list and word once.
#[tokio::test]
async fn word_lists_are_capped_and_matches_stored_once() {
    let app = TestApp::spawn().await;
    let put = |words: Vec<String>| {
        let app = &app;
        async move {
            app.admin_put(
                "/v1/tenants/acme/policies/sensitive-words/hostile",
                "application/json",
                serde_json::to_vec(&serde_json::json!({ "action": "flag", "words": words }))
                    .unwrap(),
            )
            .await
        }
    };
    // 256 words ending together (`a`, `aa`, ...) would make each character of a message 256
    // matches: refused, and nothing is stored.
    let (status, body) = put((1..=256).map(|n| "a".repeat(n)).collect()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("too_nested")),
        "{body}"
    );
    let (_, lists) = app
        .admin_get("/v1/tenants/acme/policies/sensitive-words")
        .await;
    assert!(!lists.to_string().contains("hostile"), "{lists}");
    // As many as allowed (32), each long: overlapping matches all over the message.
    let (status, body) = put((225..=256).map(|n| "a".repeat(n)).collect()).await;
    assert_eq!(status, 200, "{body}");
    let (agent_id, agent_token) = app.create_agent("A", &["general"], 5).await;
    let _ = agent_id;
    let mut agent = app.agent_ws(&agent_token).await;
    let token = app.visitor().await;
    let mut customer = app.customer_ws(&token).await;
    let text = "a".repeat(16 * 1024);
    customer
        .send(serde_json::json!({"type": "send", "client_msg_id": "m1", "text": text}))
        .await;
    customer.expect_type("receipt").await;
    let assigned = agent.expect_type("assigned").await;
    let id = assigned["conversation"]["id"].as_str().unwrap().to_owned();
    let (_, stored) = app
        .admin_get(&format!("/v1/tenants/acme/conversations/{id}/messages"))
        .await;
    let meta = &stored["messages"][0]["meta"]["sensitive"];
    assert_eq!(meta["action"], "flag");
    assert_eq!(meta["lists"], serde_json::json!(["hostile"]));
    let words = meta["words"].as_array().expect("words");
    assert!(
        words.len() <= 256,
        "each word at most once, not once per match: {}",
        words.len()
    );
    // At most 32 lists per tenant.
    for n in 0..31 {
        let (status, body) = app
            .admin_put(
                &format!("/v1/tenants/acme/policies/sensitive-words/l{n}?action=flag"),
                "text/plain",
                b"word".to_vec(),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = app
        .admin_put(
            "/v1/tenants/acme/policies/sensitive-words/one-too-many?action=flag",
            "text/plain",
            b"word".to_vec(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "too_many_lists");
}

/// Behind a trusted reverse proxy each visitor has their own session bucket (before, every
/// visitor shared the proxy's); from anyone else `X-Forwarded-For` is ignored, so a script
/// cannot pick a fresh address per request.
#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    let limited = |trusted: &'static [&'static str]| {
        TestApp::spawn_with(move |settings| {
            settings.limits.sessions =
                serde_json::from_value(serde_json::json!({"per_second": 1, "burst": 2})).unwrap();
            settings.trusted_proxies =
                gateway::config::TrustedProxies::parse(trusted).expect("proxies");
        })
    };
    let session = |app: &TestApp, client: String| {
        let request = app
            .http
            .post(app.url("/v1/web/session"))
            .header("x-forwarded-for", client)
            .json(&serde_json::json!({"tenant": "acme"}));
        async move { request.send().await.expect("request").status().as_u16() }
    };
    // The test client is the proxy (loopback): six visitors, two sessions each, all served.
    let behind_proxy = limited(&["127.0.0.1", "::1"]).await;
    for visitor in 0..6 {
        for _ in 0..2 {
            let status = session(&behind_proxy, format!("198.51.100.{visitor}")).await;
            assert_eq!(status, 200, "visitor {visitor}");
        }
    }
    // Not trusted: the header changes nothing, the third session from this address waits.
    let direct = limited(&[]).await;
    let mut statuses = Vec::new();
    for visitor in 0..3 {
        statuses.push(session(&direct, format!("198.51.100.{visitor}")).await);
    }
    assert_eq!(statuses, [200, 200, 429]);
}

/// Typing, ack and resume frames share a per-connection budget: a script sending thousands of
/// typing frames reaches the agent as a bounded trickle (each was a bus publish), and a resume
/// over the budget is refused with `rate_limited`; sends are not affected.
#[tokio::test]
async fn control_frames_are_rate_limited_per_connection() {
    let app = TestApp::spawn().await;
    let (_, agent_token) = app.create_agent("A", &["general"], 5).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let token = app.visitor().await;
    let mut customer = app.customer_ws(&token).await;
    customer
        .send(serde_json::json!({"type": "send", "client_msg_id": "m1", "text": "hello"}))
        .await;
    customer.expect_type("receipt").await;
    agent.expect_type("assigned").await;
    for _ in 0..1000 {
        customer.send(serde_json::json!({"type": "typing"})).await;
    }
    customer
        .send(serde_json::json!({"type": "resume", "last_seq": 0}))
        .await;
    let refused = customer.expect_type("error").await;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    let seen = agent.drain(Duration::from_millis(800)).await;
    let typing = seen.iter().filter(|f| f["type"] == "typing").count();
    assert!(
        (1..=120).contains(&typing),
        "{typing} typing frames reached the agent"
    );
    // Sends still go through at once.
    customer
        .send(serde_json::json!({"type": "send", "client_msg_id": "m2", "text": "still here"}))
        .await;
    customer.expect_type("receipt").await;
}

/// One visitor token cannot open connections without end: past the cap a WebSocket or a long
/// poll is refused with 429 until one closes; another visitor is not affected.
#[tokio::test]
async fn connections_per_visitor_are_capped() {
    let app = TestApp::spawn().await;
    let token = app.visitor().await;
    let mut open = Vec::new();
    for _ in 0..gateway::PER_VISITOR_CONNECTIONS {
        open.push(app.customer_ws(&token).await);
    }
    let url = app.ws_url(&format!("/v1/web/ws?token={token}"));
    let refused = tokio_tungstenite::connect_async(url.as_str()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429)
        }
        other => panic!("expected a 429, got {:?}", other.map(|_| "a socket")),
    }
    let poll = app
        .http
        .get(app.url("/v1/web/poll"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(poll.status().as_u16(), 429);
    let other = app.visitor().await;
    let _fine = app.customer_ws(&other).await;
    // A closed socket gives its slot back.
    open.pop().expect("one").close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _again = app.customer_ws(&token).await;
}

/// Many visitors behind one address: their messages together, and their connections together,
/// are limited per IP, so a script with many tokens cannot spend the tenant's whole budget or
/// hold the node's connections; another address is not affected.
#[tokio::test]
async fn one_address_with_many_visitors_is_limited_per_ip() {
    let app = TestApp::spawn_with(|settings| {
        settings.limits.messages = engine::limits::Rate {
            per_second: 1,
            burst: 3,
        };
        settings.limits.connections = 3;
    })
    .await;
    let send = |token: String, id: &'static str| {
        let app = &app;
        async move {
            let response = app
                .http
                .post(app.url("/v1/web/messages"))
                .bearer_auth(token)
                .json(&json!({ "client_msg_id": id, "text": "hello" }))
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (first, second) = (app.visitor().await, app.visitor().await);
    assert_eq!(send(first.clone(), "a1").await.0, 200);
    assert_eq!(send(second.clone(), "b1").await.0, 200);
    assert_eq!(send(first.clone(), "a2").await.0, 200);
    // The fourth message from this address in the same second, whoever sends it.
    let (status, body) = send(second.clone(), "b2").await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")));
    assert!(app.metrics_text().await.contains("scope=\"ip_message\"} 1"));

    // Connections: three from this address, whatever the visitors; the fourth is refused.
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(app.customer_ws(&app.visitor().await).await);
    }
    let url = app.ws_url(&format!("/v1/web/ws?token={}", app.visitor().await));
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429)
        }
        other => panic!("expected a 429, got {:?}", other.map(|_| "a socket")),
    }
    open.pop().expect("one").close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _again = app.customer_ws(&first).await;
}

/// Credentials in URLs and forever: WebSockets open with one-time tickets that live 30 s;
/// visitor tokens live 30 days (a live widget renews its own at every session) and an admin
/// can revoke a customer's tokens, which closes their open connections.
#[tokio::test]
async fn sockets_open_with_one_time_tickets_and_visitor_tokens_expire_and_can_be_revoked() {
    let app = TestApp::spawn().await;
    let token = app.visitor().await;
    let ticket = |path: &'static str, token: String| {
        let app = &app;
        async move {
            let response = app
                .http
                .post(app.url(path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["expires_in_ms"], 30_000);
            body["ticket"].as_str().unwrap().to_owned()
        }
    };
    // A ticket opens one socket, once.
    let granted = ticket("/v1/web/ticket", token.clone()).await;
    let url = app.ws_url(&format!("/v1/web/ws?ticket={granted}"));
    let mut customer = switchboard_tests::WsClient::connect(&url)
        .await
        .expect("opens");
    customer
        .send(json!({"type":"send","client_msg_id":"c1","text":"hello"}))
        .await;
    customer.expect_type("receipt").await;
    let refused = |url: String| async move {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_ref()
                    .map(|body| String::from_utf8_lossy(body).into_owned())
                    .unwrap_or_default();
                (status, body)
            }
            other => panic!("expected a refusal, got {:?}", other.map(|_| "a socket")),
        }
    };
    let (status, body) = refused(url.clone()).await;
    assert_eq!(status, 401);
    assert!(body.contains("ticket_used"), "{body}");
    // A visitor token is not a ticket, nor an agent's ticket a visitor's.
    let (status, _) = refused(app.ws_url(&format!("/v1/web/ws?ticket={token}"))).await;
    assert_eq!(status, 401);
    let (_, agent_token) = app.create_agent("Dana", &["general"], 2).await;
    let agent_ticket = ticket("/v1/agent/ticket", agent_token.clone()).await;
    let (status, _) = refused(app.ws_url(&format!("/v1/web/ws?ticket={agent_ticket}"))).await;
    assert_eq!(status, 401);
    let mut agent = switchboard_tests::WsClient::connect(&app.ws_url(&format!(
        "/v1/agent/ws?ticket={}",
        ticket("/v1/agent/ticket", agent_token).await
    )))
    .await
    .expect("an agent's ticket opens the agent's socket");
    agent.expect_type("hello").await;

    // Renewal: a session opened with the token answers a token that works.
    let renewed = app
        .http
        .post(app.url("/v1/web/session"))
        .json(&json!({ "tenant": "acme", "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(renewed.status(), 200);
    let renewed: Value = renewed.json().await.unwrap();
    let fresh = renewed["token"].as_str().unwrap().to_owned();

    // Revocation: the open connection is told and closed; every token of the customer is
    // refused from then on.
    let customer_id = renewed["customer_id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .admin_post(
            &format!("/v1/tenants/acme/customers/{customer_id}/revoke-tokens"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let told = customer
        .expect("revoked", |frame| frame["type"] == "error")
        .await;
    assert_eq!(told["code"], "token_revoked");
    for old in [token.clone(), fresh] {
        let (status, body) = app
            .call(reqwest::Method::POST, "/v1/web/ticket", &old)
            .await;
        assert_eq!(status, 401);
        assert_eq!(body["code"], "token_revoked");
    }

    // Expiry: a token older than 30 days is refused, with its own code.
    let other = app.visitor_in("acme").await.1;
    let old = app.server.state.signer.sign(&store::crypto::Claims {
        tenant: "acme".into(),
        kind: store::crypto::TokenKind::Visitor,
        subject: other["customer_id"].as_str().unwrap().to_owned(),
        version: 0,
        iat: store::util::now_ms() / 1000 - 31 * 24 * 3600,
        nonce: String::new(),
    });
    let response = app
        .http
        .post(app.url("/v1/web/session"))
        .json(&json!({ "tenant": "acme", "token": old }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "token_expired");

    // Agent tokens: renewed by the console at every sign-in (`/v1/agent/me`), expired after 90
    // days unused.
    let (agent_id, agent_token) = app.create_agent("Lee", &["general"], 2).await;
    let me = |token: String| {
        let app = &app;
        async move {
            let response = app
                .http
                .get(app.url("/v1/agent/me"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, profile) = me(agent_token).await;
    assert_eq!(status, 200);
    let renewed = profile["token"]
        .as_str()
        .expect("a renewed token")
        .to_owned();
    assert_eq!(me(renewed).await.0, 200);
    let agent = app
        .server
        .state
        .store
        .agent("acme", &agent_id)
        .await
        .unwrap()
        .unwrap();
    let stale = app.server.state.signer.sign(&store::crypto::Claims {
        tenant: "acme".into(),
        kind: store::crypto::TokenKind::Agent,
        subject: agent_id.clone(),
        version: agent.token_version,
        iat: store::util::now_ms() / 1000 - 91 * 24 * 3600,
        nonce: String::new(),
    });
    let (status, body) = me(stale).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_expired"))
    );
}

/// A resume from seq 0 of a long conversation is paged by bytes: one page of text (256 KiB), the
/// next once the client acknowledges it; new messages wait for their page; nothing is skipped.
#[tokio::test]
async fn a_resume_from_the_start_is_paged_by_bytes_until_acknowledged() {
    let app = TestApp::spawn().await;
    let (token, session) = app.visitor_in("acme").await;
    let store = &app.server.state.store;
    let customer = store
        .customer("acme", session["customer_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    // 300 messages of 2,000 characters: about 600 KB of text.
    let text = "長".repeat(2_000);
    for index in 0..300 {
        store
            .submit(store::NewMessage::Customer {
                customer: customer.clone(),
                client_msg_id: Some(format!("m{index}")),
                text: text.clone(),
                entry: store::Entry {
                    state: store::ConversationState::Bot,
                    skill_group: "general".into(),
                    priority: 0,
                },
                meta: None,
            })
            .await
            .stored()
            .await
            .unwrap();
    }
    let mut customer_ws = app.customer_ws(&token).await;
    customer_ws
        .send(json!({"type":"resume","last_seq":0}))
        .await;
    let seqs = |frames: &[Value]| -> Vec<i64> {
        frames
            .iter()
            .filter(|frame| frame["type"] == "message")
            .filter_map(|frame| frame["seq"].as_i64())
            .collect()
    };
    let first = seqs(&customer_ws.drain(Duration::from_millis(500)).await);
    assert!(
        !first.is_empty() && first.len() < 300,
        "one page: {}",
        first.len()
    );
    assert_eq!(first, (1..=first.len() as i64).collect::<Vec<_>>());
    // Nothing more until the client has the page, and a resume from the start meanwhile is
    // ignored: the node does not read the conversation again while a page is out.
    customer_ws
        .send(json!({"type":"resume","last_seq":0}))
        .await;
    assert!(seqs(&customer_ws.drain(Duration::from_millis(300)).await).is_empty());
    let mut received = first;
    while received.len() < 300 {
        let last = *received.last().unwrap();
        customer_ws.send(json!({"type":"ack","seq":last})).await;
        let page = seqs(&customer_ws.drain(Duration::from_millis(500)).await);
        assert!(!page.is_empty(), "a page after seq {last}");
        assert_eq!(page[0], last + 1, "no gap, no repeat");
        received.extend(page);
    }
    assert_eq!(received, (1..=300).collect::<Vec<_>>());
}

/// A NUL character (U+0000), which PostgreSQL cannot store as text: a message's is replaced by
/// U+FFFD (over HTTP and the WebSocket; other control characters but tab and line breaks too), a profile's and a `client_msg_id`'s are refused with
/// their codes; never a server error. A web visitor may not use a webhook's `wechat:` ids. On PostgreSQL, where it used to be a 500 (and made the
/// writer store its whole batch one by one).
#[tokio::test]
async fn nul_characters_are_replaced_or_refused_never_a_server_error() {
    let database = switchboard_tests::PostgresDatabase::create()
        .await
        .expect("a database on the local PostgreSQL server");
    let url = database.url.clone();
    let app = TestApp::spawn_with(|settings| settings.database_url = Some(url)).await;
    let post = |path: &'static str, token: Option<String>, body: Value| {
        let app = &app;
        async move {
            let mut request = app.http.post(app.url(path)).json(&body);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };

    let (status, body) = post(
        "/v1/web/session",
        None,
        json!({"tenant": "acme", "profile": {"name": "Ada\u{0}"}}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("bad_profile")),
        "{body}"
    );

    let token = app.visitor().await;
    // A NUL in the id, and a webhook's own kind of id.
    for id in ["n\u{0}", "wechat:app:1"] {
        let (status, body) = post(
            "/v1/web/messages",
            Some(token.clone()),
            json!({"client_msg_id": id, "text": "hello"}),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("bad_client_msg_id")),
            "{id:?}: {body}"
        );
    }
    let (status, body) = post(
        "/v1/web/messages",
        Some(token.clone()),
        json!({"client_msg_id": "n1", "text": "hello\u{0}world\u{1}\t\nend"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut socket = app.customer_ws(&token).await;
    socket
        .send(json!({"type": "send", "client_msg_id": "n2", "text": "\u{0}bye"}))
        .await;
    socket.expect_type("receipt").await;

    let response = app
        .http
        .get(app.url("/v1/web/poll?after=0"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("poll");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let texts: Vec<&str> = body["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .filter(|frame| frame["type"] == "message" && frame["sender"] == "customer")
        .filter_map(|frame| frame["text"].as_str())
        .collect();
    assert_eq!(texts, ["hello\u{FFFD}world\u{FFFD}\t\nend", "\u{FFFD}bye"]);
    drop(socket);
    drop(app);
    database.drop_database().await;
}
