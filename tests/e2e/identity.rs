//! Identified visitors (消息漫游): the host site signs its user's id with the tenant's identity
//! secret; the same user on two browsers and in the mobile app sees one conversation and its
//! history; a forged signature, another user's signature, a missing one, or one made with a
//! rotated-out secret is refused with its code and sees nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use store::identity::sign_user_id;
use switchboard_channels::mobile::{MobileClaims, MobileTokenVerifier};
use switchboard_tests::{TestApp, WsClient};

use crate::chromium::{chromium_or_skip, Browser};

const MOBILE_SECRET: &str = "mobile-secret-0123456789abcdef";
const SHADOW: &str = "document.getElementById('switchboard-widget').shadowRoot";

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn mobile_token(sub: &str) -> String {
    MobileTokenVerifier::new(MOBILE_SECRET.as_bytes().to_vec()).sign(&MobileClaims {
        sub: sub.to_owned(),
        iat: now_secs(),
        exp: now_secs() + 600,
        nonce: uuid::Uuid::new_v4().simple().to_string(),
    })
}

/// `POST /v1/web/session` with `body`: (status, answer).
async fn session(app: &TestApp, body: Value) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/v1/web/session"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A widget session for `user_id` signed with `secret`: (status, answer).
async fn signed_session(app: &TestApp, user_id: &str, secret: &str) -> (u16, Value) {
    session(
        app,
        json!({"tenant": "acme", "user_id": user_id, "user_hash": sign_user_id(secret, user_id)}),
    )
    .await
}

async fn admin(app: &TestApp, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    let response = app
        .http
        .request(method, app.url(&format!("/v1/tenants/acme/{path}")))
        .bearer_auth(&app.admin_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Makes (or rotates) the tenant's identity secret; answers the new secret.
async fn rotate(app: &TestApp) -> String {
    let (status, body) = admin(app, reqwest::Method::POST, "identity/secret", json!({})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["identity"]["secret_set"], true);
    body["secret"].as_str().unwrap().to_owned()
}

/// The texts of a conversation's messages as the long-poll route shows them to `token`.
async fn polled_texts(app: &TestApp, token: &str) -> Vec<String> {
    let response = app
        .http
        .get(app.url("/v1/web/poll?after=0"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|frame| frame["type"] == "message")
        .map(|frame| frame["text"].as_str().unwrap().to_owned())
        .collect()
}

/// `POST /v1/web/ticket` with a visitor token: its status.
async fn ticket_status(app: &TestApp, token: &str) -> u16 {
    app.http
        .post(app.url("/v1/web/ticket"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `POST /v1/web/messages` with a visitor token: (status, answer).
async fn send_message(app: &TestApp, token: &str, text: &str) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/v1/web/messages"))
        .bearer_auth(token)
        .json(&json!({"client_msg_id": text, "text": text}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn refused(status: u16, body: &Value, code: &str) {
    assert_eq!((status, body["code"].as_str()), (401, Some(code)), "{body}");
    assert!(body.get("token").is_none() && body.get("conversation_id").is_none());
}

#[tokio::test]
async fn one_user_on_two_browsers_and_the_app_shares_one_conversation() {
    let app = TestApp::spawn().await;
    let secret = rotate(&app).await;
    let (status, body) = admin(
        &app,
        reqwest::Method::PATCH,
        "identity",
        json!({"link_mobile": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["identity"]["link_mobile"], true);
    assert_eq!(body["identity"]["required"], false);
    let (status, _) = admin(
        &app,
        reqwest::Method::PUT,
        "channels/mobile/app",
        json!({"jwt_secret": MOBILE_SECRET}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, agent_token) = app.create_agent("Alice", &["general"], 5).await;
    let mut agent = app.agent_ws(&agent_token).await;

    // The PC browser: the user writes.
    let (status, pc) = signed_session(&app, "user-7", &secret).await;
    assert_eq!(status, 200, "{pc}");
    assert_eq!(pc["user_id"], "user-7");
    assert_eq!(pc["conversation_id"], Value::Null);
    let pc_token = pc["token"].as_str().unwrap().to_owned();
    let mut pc_ws = app.customer_ws(&pc_token).await;
    pc_ws
        .send(json!({"type": "send", "client_msg_id": "pc1", "text": "my cup arrived broken"}))
        .await;
    let receipt = pc_ws.expect_type("receipt").await;
    let conversation_id = receipt["conversation_id"].as_str().unwrap().to_owned();
    let assigned = agent.expect_type("assigned").await;
    assert_eq!(assigned["conversation"]["id"], conversation_id.as_str());

    // A second browser: the same person, the same conversation and its history.
    let (status, laptop) = signed_session(&app, "user-7", &secret).await;
    assert_eq!(status, 200, "{laptop}");
    assert_eq!(laptop["conversation_id"], conversation_id.as_str());
    assert_eq!(laptop["customer_id"], pc["customer_id"]);
    let laptop_token = laptop["token"].as_str().unwrap().to_owned();
    assert!(polled_texts(&app, &laptop_token)
        .await
        .contains(&"my cup arrived broken".to_owned()));
    let mut laptop_ws = app.customer_ws(&laptop_token).await;

    // The mobile app, its token's `sub` being the same user id: the same conversation.
    let token = mobile_token("user-7");
    let (status, me) = mobile_get(&app, "/v1/mobile/me?tenant=acme", &token).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["conversation_id"], conversation_id.as_str());
    let token = mobile_token("user-7");
    let (status, history) = mobile_get(
        &app,
        &format!("/v1/mobile/conversations/{conversation_id}/messages?tenant=acme"),
        &token,
    )
    .await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["messages"][0]["text"], "my cup arrived broken");
    let token = mobile_token("user-7");
    let mut phone =
        WsClient::connect(&app.ws_url(&format!("/v1/mobile/ws?tenant=acme&token={token}")))
            .await
            .unwrap();
    phone
        .send(json!({"type": "send", "client_msg_id": "ph1", "text": "here is the order number"}))
        .await;
    let receipt = phone.expect_type("receipt").await;
    assert_eq!(receipt["conversation_id"], conversation_id.as_str());
    // Every device and the agent see it, in the one conversation.
    for ws in [&mut pc_ws, &mut laptop_ws] {
        let frame = ws.expect_text("here is the order number").await;
        assert_eq!(frame["conversation_id"], conversation_id.as_str());
    }
    agent.expect_text("here is the order number").await;

    // The agent's reply reaches the two browsers and the app.
    agent
        .send(json!({"type": "send", "conversation_id": conversation_id, "client_msg_id": "a1", "text": "a new cup is on its way"}))
        .await;
    agent.expect_type("receipt").await;
    for ws in [&mut pc_ws, &mut laptop_ws, &mut phone] {
        let frame = ws.expect_text("a new cup is on its way").await;
        assert_eq!(frame["sender"], "agent");
    }

    // Replies go where the person was last: the app took them when it connected; opening the
    // widget again takes them back to the web (no push to the phone then).
    let route = |app: &TestApp| {
        let store = app.server.state.store.clone();
        let conversation_id = conversation_id.clone();
        async move {
            store
                .route(&conversation_id)
                .await
                .unwrap()
                .unwrap()
                .channel
        }
    };
    assert_eq!(route(&app).await, "mobile");
    let (status, _) = signed_session(&app, "user-7", &secret).await;
    assert_eq!(status, 200);
    assert_eq!(route(&app).await, "web");

    // Another signed-in user has a conversation of their own, and sees none of this.
    let (status, other) = signed_session(&app, "user-8", &secret).await;
    assert_eq!(status, 200);
    assert_eq!(other["conversation_id"], Value::Null);
    assert_ne!(other["customer_id"], pc["customer_id"]);
    assert!(polled_texts(&app, other["token"].as_str().unwrap())
        .await
        .is_empty());
}

#[tokio::test]
async fn forged_missing_and_borrowed_signatures_are_refused_and_rotation_ends_old_ones() {
    let app = TestApp::spawn().await;

    // No secret yet: a user id cannot be checked, so it is refused, not taken as anonymous.
    let (status, body) = signed_session(&app, "user-7", "guess").await;
    refused(status, &body, "identity_not_configured");

    let secret = rotate(&app).await;
    let (status, first) = signed_session(&app, "user-7", &secret).await;
    assert_eq!(status, 200, "{first}");
    let token = first["token"].as_str().unwrap().to_owned();
    let mut ws = app.customer_ws(&token).await;
    ws.send(json!({"type": "send", "client_msg_id": "c1", "text": "private order details"}))
        .await;
    let conversation_id = ws.expect_type("receipt").await["conversation_id"].clone();
    assert!(conversation_id.is_string());

    // Forged with another key, another user's signature, none, a malformed one.
    let (status, body) = signed_session(&app, "user-7", "not-the-secret").await;
    refused(status, &body, "identity_invalid");
    let borrowed = sign_user_id(&secret, "user-8");
    let (status, body) = session(
        &app,
        json!({"tenant": "acme", "user_id": "user-7", "user_hash": borrowed}),
    )
    .await;
    refused(status, &body, "identity_invalid");
    let (status, body) = session(&app, json!({"tenant": "acme", "user_id": "user-7"})).await;
    refused(status, &body, "identity_unsigned");
    let (status, body) = session(
        &app,
        json!({"tenant": "acme", "user_id": "user-7", "user_hash": "nothex"}),
    )
    .await;
    refused(status, &body, "identity_invalid");
    // Bad input is a 400 with its code.
    for bad in [
        json!({"tenant": "acme", "user_hash": sign_user_id(&secret, "user-7")}),
        json!({"tenant": "acme", "user_id": "", "user_hash": sign_user_id(&secret, "")}),
        json!({"tenant": "acme", "user_id": "a\u{0}b", "user_hash": sign_user_id(&secret, "a\u{0}b")}),
        json!({"tenant": "acme", "user_id": "x".repeat(129), "user_hash": sign_user_id(&secret, &"x".repeat(129))}),
        json!({"tenant": "acme", "token": token, "user_id": "user-7", "user_hash": sign_user_id(&secret, "user-7")}),
    ] {
        let (status, body) = session(&app, bad.clone()).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("bad_identity")),
            "{bad}: {body}"
        );
    }

    // Rotation: the old secret's signatures are refused from now on; the new one's work and
    // find the same conversation. Tokens already given stay good.
    let new_secret = rotate(&app).await;
    assert_ne!(new_secret, secret);
    let (status, body) = signed_session(&app, "user-7", &secret).await;
    refused(status, &body, "identity_invalid");
    assert_eq!(ticket_status(&app, &token).await, 200);
    // After a leak, rotation also revokes the tokens identified visitors hold: open
    // connections close, and only a signature made with the newest secret gets back in.
    let (status, body) = admin(
        &app,
        reqwest::Method::POST,
        "identity/secret",
        json!({"revoke_tokens": true}),
    )
    .await;
    assert_eq!(
        (status, &body["revoked_customers"]),
        (201, &json!(1)),
        "{body}"
    );
    let new_secret = body["secret"].as_str().unwrap().to_owned();
    let closed = ws.expect_type("error").await;
    assert_eq!(closed["code"], "token_revoked");
    assert_eq!(ticket_status(&app, &token).await, 401);
    let (status, body) = session(&app, json!({"tenant": "acme", "token": token})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_revoked"))
    );
    let (status, body) = admin(
        &app,
        reqwest::Method::POST,
        "identity/secret",
        json!({"revoke": "yes"}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_identity")));
    let (status, again) = signed_session(&app, "user-7", &new_secret).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["conversation_id"], conversation_id);
    assert_eq!(
        polled_texts(&app, again["token"].as_str().unwrap()).await,
        ["private order details"]
    );

    // The secret never comes back, and the audit log has each change without it.
    let (status, body) = admin(&app, reqwest::Method::GET, "identity", Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(body["identity"]["secret_set"], true);
    assert!(!body.to_string().contains(&new_secret));
    let (status, audit) = admin(
        &app,
        reqwest::Method::GET,
        "audit?action=identity/secret",
        Value::Null,
    )
    .await;
    assert_eq!(status, 200);
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{audit}");
    assert!(entries
        .iter()
        .all(|entry| entry["action"] == "POST identity/secret"));
    assert!(!audit.to_string().contains(&new_secret) && !audit.to_string().contains(&secret));

    // Removed: signed ids are refused again.
    let (status, body) = admin(
        &app,
        reqwest::Method::DELETE,
        "identity/secret",
        Value::Null,
    )
    .await;
    assert_eq!(
        (status, &body["identity"]["secret_set"]),
        (200, &json!(false))
    );
    let (status, body) = signed_session(&app, "user-7", &new_secret).await;
    refused(status, &body, "identity_not_configured");
}

#[tokio::test]
async fn a_tenant_can_require_identified_visitors() {
    let app = TestApp::spawn().await;
    // Requiring it without a secret would refuse everyone: refused.
    let (status, body) = admin(
        &app,
        reqwest::Method::PATCH,
        "identity",
        json!({"required": true}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("identity_not_configured"))
    );
    let (status, body) = admin(&app, reqwest::Method::PATCH, "identity", json!({"nope": 1})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_identity")));

    // Anonymous visitors are welcome by default.
    let (anonymous_token, _) = app.visitor_in("acme").await;
    let secret = rotate(&app).await;
    // Two open connections: an anonymous visitor's and a signed-in user's, each live (a
    // message answered with its receipt).
    let (status, body) = signed_session(&app, "user-0", &secret).await;
    assert_eq!(status, 200, "{body}");
    let mut sockets = Vec::new();
    for token in [anonymous_token.as_str(), body["token"].as_str().unwrap()] {
        let mut socket = app.customer_ws(token).await;
        socket
            .send(json!({"type": "send", "client_msg_id": "c1", "text": "hello"}))
            .await;
        socket.expect_type("receipt").await;
        sockets.push(socket);
    }
    let (status, body) = admin(
        &app,
        reqwest::Method::PATCH,
        "identity",
        json!({"required": true}),
    )
    .await;
    assert_eq!((status, &body["identity"]["required"]), (200, &json!(true)));
    // The anonymous visitor's connection is told and closed; the signed-in user's goes on.
    let mut identified_socket = sockets.pop().unwrap();
    let mut anonymous_socket = sockets.pop().unwrap();
    let told = anonymous_socket
        .expect("the end", |frame| frame["type"] == "error")
        .await;
    assert_eq!(told["code"], "identity_required");
    let after = anonymous_socket
        .next_within(std::time::Duration::from_secs(5))
        .await;
    assert!(after.is_err(), "the socket stays open: {after:?}");
    identified_socket
        .send(json!({"type": "send", "client_msg_id": "c2", "text": "still here"}))
        .await;
    identified_socket.expect_type("receipt").await;

    let (status, body) = session(&app, json!({"tenant": "acme"})).await;
    refused(status, &body, "identity_required");
    let (status, body) = session(&app, json!({"tenant": "acme", "token": anonymous_token})).await;
    refused(status, &body, "identity_required");
    // Nor does the token an anonymous visitor got before work anywhere else.
    let (status, body) = send_message(&app, &anonymous_token, "still here?").await;
    refused(status, &body, "identity_required");
    let (status, body) = signed_session(&app, "user-1", &secret).await;
    assert_eq!(status, 200, "{body}");
    // An identified visitor's token works.
    let (status, body) = send_message(&app, body["token"].as_str().unwrap(), "hello").await;
    assert_eq!(status, 200, "{body}");

    // Another tenant's settings are its own.
    app.create_tenant("other").await;
    let (status, _) = session(&app, json!({"tenant": "other"})).await;
    assert_eq!(status, 200);
    let (status, body) = session(
        &app,
        json!({"tenant": "other", "user_id": "user-1", "user_hash": sign_user_id(&secret, "user-1")}),
    )
    .await;
    refused(status, &body, "identity_not_configured");

    // Removing the secret lets anonymous visitors in again.
    let (status, body) = admin(
        &app,
        reqwest::Method::DELETE,
        "identity/secret",
        Value::Null,
    )
    .await;
    assert_eq!(
        (status, &body["identity"]["required"]),
        (200, &json!(false))
    );
    let (status, _) = session(&app, json!({"tenant": "acme"})).await;
    assert_eq!(status, 200);
}

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

/// The demo page in Chromium as a site that identifies its signed-in user: `userId` and
/// `userHash` join whatever `window.SwitchboardConfig` the page sets, before the widget loads.
async fn identified_widget(
    app: &TestApp,
    binary: &std::path::PathBuf,
    user_id: &str,
    user_hash: &str,
) -> Browser {
    let mut browser = Browser::launch(binary).await.expect("chromium starts");
    browser.call("Page.enable", json!({})).await.unwrap();
    let identify = format!(
        "(() => {{ let config = {{}}; Object.defineProperty(window, 'SwitchboardConfig', {{ configurable: true, \
         get() {{ return config; }}, set(value) {{ config = Object.assign({{}}, value, {{ userId: {id}, userHash: {hash} }}); }} }}); \
         window.SwitchboardConfig = {{}}; }})()",
        id = serde_json::to_string(user_id).unwrap(),
        hash = serde_json::to_string(user_hash).unwrap(),
    );
    browser
        .call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": identify }),
        )
        .await
        .unwrap();
    browser.navigate(&app.url("/?tenant=acme")).await.unwrap();
    browser
        .wait_for(
            "the widget",
            &format!("(() => {{ const h = document.getElementById('switchboard-widget'); return !!(h && h.shadowRoot && h.shadowRoot.getElementById('sb-launcher') && window.Switchboard); }})()"),
        )
        .await
        .unwrap();
    browser
        .eval(&format!("{SHADOW}.getElementById('sb-launcher').click()"))
        .await
        .unwrap();
    browser
}

fn customer_texts_shown() -> String {
    format!("(() => [...{SHADOW}.querySelectorAll('.sb-msg[data-sender=customer]')].map(m => m.textContent))()")
}

#[tokio::test]
async fn the_widget_shows_a_signed_in_users_chat_from_another_device_and_refuses_a_forged_one() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let app = TestApp::spawn().await;
    let secret = rotate(&app).await;
    let (_, agent_token) = app.create_agent("Alice", &["general"], 5).await;
    let mut agent = app.agent_ws(&agent_token).await;
    // The user wrote from another browser first.
    let (_, elsewhere) = signed_session(&app, "user-7", &secret).await;
    let mut other_device = app.customer_ws(elsewhere["token"].as_str().unwrap()).await;
    other_device
        .send(json!({"type": "send", "client_msg_id": "o1", "text": "written on the laptop"}))
        .await;
    let conversation_id = other_device.expect_type("receipt").await["conversation_id"].clone();
    agent.expect_type("assigned").await;

    // The widget, signed in as the same user, shows that history and writes into it.
    let mut browser =
        identified_widget(&app, &binary, "user-7", &sign_user_id(&secret, "user-7")).await;
    browser
        .wait_for(
            "the history from the other browser",
            &format!(
                "(() => {} .some(text => text.includes('written on the laptop')) || null)()",
                customer_texts_shown()
            ),
        )
        .await
        .unwrap();
    browser
        .eval(&format!(
            "(() => {{ const input = {SHADOW}.getElementById('sb-input'); input.value = 'and now from the pc'; input.dispatchEvent(new Event('input', {{bubbles: true}})); {SHADOW}.getElementById('sb-send').click(); return true; }})()"
        ))
        .await
        .unwrap();
    let seen = agent.expect_text("and now from the pc").await;
    assert_eq!(seen["conversation_id"], conversation_id);
    other_device.expect_text("and now from the pc").await;

    // A page with a forged signature: refused with its code, shows nothing of the chat.
    let mut forged =
        identified_widget(&app, &binary, "user-7", &sign_user_id("a guess", "user-7")).await;
    let error = forged
        .wait_for(
            "the refusal",
            &format!("(() => {{ const e = {SHADOW}.getElementById('sb-error'); return e && !e.hidden ? e.textContent : null; }})()"),
        )
        .await
        .unwrap();
    assert!(error.as_str().unwrap().contains("user_hash"), "{error}");
    let state = forged
        .eval(&format!(
            "{SHADOW}.querySelector('.sb-root').getAttribute('data-conn')"
        ))
        .await
        .unwrap();
    assert_eq!(state, "unavailable");
    assert_eq!(
        forged.eval(&customer_texts_shown()).await.unwrap(),
        json!([])
    );
}

/// Clicks the console element matched by `selector` (it must be there and enabled).
async fn click(browser: &mut Browser, selector: &str) {
    let done = browser
        .eval(&format!(
            "(() => {{ const e = document.querySelector({s}); if (!e || e.disabled) return false; e.click(); return true; }})()",
            s = serde_json::to_string(selector).unwrap()
        ))
        .await
        .unwrap();
    assert_eq!(done, json!(true), "cannot click {selector}");
}

/// Waits until `selector` matches an element of the console; answers its text.
async fn wait_text(browser: &mut Browser, selector: &str) -> String {
    browser
        .wait_for(
            selector,
            &format!(
                "(() => {{ const e = document.querySelector({s}); return e ? e.textContent : null; }})()",
                s = serde_json::to_string(selector).unwrap()
            ),
        )
        .await
        .unwrap_or_else(|error| panic!("{selector}: {error}"))
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn an_admin_makes_the_secret_in_the_console_and_requires_identified_visitors() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let app = TestApp::spawn().await;
    let email = "admin@acme.example";
    let password = app
        .add_member("acme", email, store::MemberRole::Admin)
        .await;
    let mut browser = Browser::launch(&binary).await.expect("chromium starts");
    browser.call("Page.enable", json!({})).await.unwrap();
    browser
        .navigate(&app.url("/admin/?tenant=acme"))
        .await
        .unwrap();
    wait_text(&mut browser, "#signin-submit").await;
    browser
        .eval(&format!(
            "(() => {{ for (const [id, value] of [['#signin-tenant', 'acme'], ['#signin-email', {email}], ['#signin-password', {password}]]) {{ const e = document.querySelector(id); e.value = value; e.dispatchEvent(new Event('input', {{bubbles: true}})); }} return true; }})()",
            email = serde_json::to_string(email).unwrap(),
            password = serde_json::to_string(&password).unwrap(),
        ))
        .await
        .unwrap();
    click(&mut browser, "#signin-submit").await;
    wait_text(&mut browser, "#member-name").await;
    click(&mut browser, "#nav [data-page=settings]").await;
    wait_text(&mut browser, "#tab-identity").await;
    click(&mut browser, "#tab-identity").await;

    // Made after a confirm step and shown once; the site's signatures made with it work.
    wait_text(&mut browser, "#identity-rotate").await;
    click(&mut browser, "#identity-rotate").await;
    click(&mut browser, "#identity-rotate[data-armed=true]").await;
    let secret = wait_text(&mut browser, "#identity-secret .secret-value").await;
    assert!(secret.len() >= 40, "{secret}");
    let (status, body) = signed_session(&app, "user-7", &secret).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();

    // Rotated after a leak: the old signatures and the tokens they got are refused.
    click(&mut browser, "#identity-revoke").await;
    click(&mut browser, "#identity-rotate").await;
    click(&mut browser, "#identity-rotate[data-armed=true]").await;
    let rotated = browser
        .wait_for(
            "the new secret",
            &format!(
                "(() => {{ const e = document.querySelector('#identity-secret .secret-value'); return e && e.textContent !== {old} ? e.textContent : null; }})()",
                old = serde_json::to_string(&secret).unwrap()
            ),
        )
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = signed_session(&app, "user-7", &secret).await;
    refused(status, &body, "identity_invalid");
    assert_eq!(ticket_status(&app, &token).await, 401);
    let (status, body) = signed_session(&app, "user-7", &rotated).await;
    assert_eq!(status, 200, "{body}");

    // Requiring identified visitors refuses anonymous ones.
    click(&mut browser, "#identity-required").await;
    browser
        .wait_for(
            "the switch saved",
            "(() => { const e = document.querySelector('#identity-required'); return e && e.checked && !e.disabled; })()",
        )
        .await
        .unwrap();
    let (_, body) = admin(&app, reqwest::Method::GET, "identity", Value::Null).await;
    assert_eq!(body["identity"]["required"], true, "{body}");
    let (status, body) = session(&app, json!({"tenant": "acme"})).await;
    refused(status, &body, "identity_required");
}
