//! Tenant policies through the API: WASM routing and quality components (upload, validation,
//! versions, rollback, called on every handoff and close) and sensitive-word lists applied to
//! customer and agent messages.

use serde_json::{json, Value};
use switchboard_tests::TestApp;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../policies/fixtures")
            .join(name),
    )
    .expect("fixture")
}

async fn upload(app: &TestApp, kind: &str, name: &str) -> (u16, Value) {
    app.admin_put(
        &format!("/v1/tenants/acme/policies/{kind}"),
        "application/wasm",
        fixture(name),
    )
    .await
}

async fn active_versions(app: &TestApp, kind: &str) -> Vec<(i64, bool)> {
    let (status, body) = app
        .admin_get(&format!("/v1/tenants/acme/policies/{kind}"))
        .await;
    assert_eq!(status, 200);
    body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["active"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// A visitor of a human-first tenant: (token, customer id).
async fn customer(app: &TestApp) -> (String, String) {
    let (token, body) = app.visitor_in("acme").await;
    (token, body["customer_id"].as_str().unwrap().to_owned())
}

/// The reason of a conversation's last `queued` event.
async fn queued_note(app: &TestApp, conversation: &Value) -> String {
    let (_, detail) = app
        .admin_get(&format!(
            "/v1/tenants/acme/conversations/{}",
            conversation["id"].as_str().unwrap()
        ))
        .await;
    detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|event| event["kind"] == "queued")
        .and_then(|event| event["reason"].as_str())
        .unwrap_or_default()
        .to_owned()
}

async fn conversation_of(app: &TestApp, customer_id: &str) -> Value {
    for _ in 0..100 {
        let (_, list) = app.admin_get("/v1/tenants/acme/conversations").await;
        if let Some(found) = list["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["customer_id"] == customer_id && c["state"] != "bot")
        {
            return found.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no routed conversation for {customer_id}");
}

#[tokio::test]
async fn routing_policies_are_validated_versioned_and_rolled_back() {
    let app = TestApp::spawn().await;
    for (name, code) in [
        ("wrong-world.wasm", "wrong_world"),
        ("hostile-import.wasm", "forbidden_import"),
        ("hostile-loop.wasm", "sample_call_failed"),
        ("hostile-memory.wasm", "sample_call_failed"),
        ("quality-scorer.wasm", "wrong_world"),
    ] {
        let (status, body) = upload(&app, "routing", name).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some(code)),
            "{name}: {body}"
        );
    }
    let (status, body) = app
        .admin_put(
            "/v1/tenants/acme/policies/routing",
            "application/wasm",
            b"\0asm junk".to_vec(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        active_versions(&app, "routing").await.is_empty(),
        "nothing refused is stored"
    );

    let (status, body) = upload(&app, "routing", "vip-routing.wasm").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], 1);
    let (_, body) = upload(&app, "routing", "language-routing.wasm").await;
    assert_eq!(body["version"], 2);
    assert_eq!(
        active_versions(&app, "routing").await,
        [(1, false), (2, true)]
    );
    let (status, _) = app
        .admin_post(
            "/v1/tenants/acme/policies/routing/activate",
            json!({"version": 1}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        active_versions(&app, "routing").await,
        [(1, true), (2, false)]
    );
    let (status, body) = app
        .admin_post(
            "/v1/tenants/acme/policies/routing/activate",
            json!({"version": 7}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, _) = app.admin_get("/v1/tenants/acme/policies/nonsense").await;
    assert_eq!(status, 404);

    // The active VIP policy routes on every handoff: a VIP to `vip` at priority 9.
    let (vip_token, vip_id) = customer(&app).await;
    let (status, _) = app
        .admin_put(
            &format!("/v1/tenants/acme/customers/{vip_id}/attributes"),
            "application/json",
            serde_json::to_vec(&json!({"vip_level": 3, "crm_tags": ["gold"]})).unwrap(),
        )
        .await;
    assert_eq!(status, 200);
    let mut ws = app.customer_ws(&vip_token).await;
    ws.send(json!({"type":"send","client_msg_id":"1","text":"hello"}))
        .await;
    let routed = conversation_of(&app, &vip_id).await;
    assert_eq!(
        (routed["skill_group"].as_str(), routed["priority"].as_i64()),
        (Some("vip"), Some(9))
    );
    // The conversation keeps the reason's code; its `queued` event says which policy routed it.
    assert_eq!(routed["handoff_reason"], "human_first");
    assert_eq!(
        queued_note(&app, &routed).await,
        "human_first; routing policy v1: vip, priority 9"
    );

    let (token, id) = customer(&app).await;
    let mut ws = app.customer_ws(&token).await;
    ws.send(json!({"type":"send","client_msg_id":"1","text":"hello"}))
        .await;
    let routed = conversation_of(&app, &id).await;
    assert_eq!(
        (routed["skill_group"].as_str(), routed["priority"].as_i64()),
        (Some("general"), Some(2))
    );
}

/// A policy that passes the upload's sample call but traps for some customers: their chats are
/// routed by the built-in strategy, keep their reason's code, the `queued` event says the policy
/// failed, and the failure is counted.
#[tokio::test]
async fn a_policy_that_fails_at_run_time_falls_back_to_the_builtin_routing() {
    let app = TestApp::spawn().await;
    let (status, body) = upload(&app, "routing", "flaky-routing.wasm").await;
    assert_eq!(status, 201, "{body}");

    let (token, id) = customer(&app).await;
    let mut ws = app.customer_ws(&token).await;
    ws.send(json!({"type":"send","client_msg_id":"1","text":"hello"}))
        .await;
    let routed = conversation_of(&app, &id).await;
    assert_eq!(routed["priority"], 4, "the policy routed: {routed}");
    assert_eq!(
        queued_note(&app, &routed).await,
        "human_first; routing policy v1: general, priority 4"
    );

    let (token, id) = customer(&app).await;
    let (status, _) = app
        .admin_put(
            &format!("/v1/tenants/acme/customers/{id}/attributes"),
            "application/json",
            serde_json::to_vec(&json!({"crm_tags": ["gold", "legacy"]})).unwrap(),
        )
        .await;
    assert_eq!(status, 200);
    let mut ws = app.customer_ws(&token).await;
    ws.send(json!({"type":"send","client_msg_id":"1","text":"hello"}))
        .await;
    let routed = conversation_of(&app, &id).await;
    assert_eq!(routed["handoff_reason"], "human_first");
    assert_eq!(routed["skill_group"], "general");
    assert_ne!(
        routed["priority"], 4,
        "the built-in strategy routed: {routed}"
    );
    let note = queued_note(&app, &routed).await;
    assert!(
        note.starts_with(
            "human_first; routing policy v1 failed (trap), built-in routing: general, priority "
        ),
        "{note}"
    );
    let metrics = app.metrics_text().await;
    assert!(
        metrics.lines().any(|line| line
            .starts_with("switchboard_policy_calls_total{kind=\"routing\",outcome=\"trap\"} 1")),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_out_of_hours_policy_rejects_with_a_message_and_nobody_is_queued() {
    let app = TestApp::spawn().await;
    assert_eq!(upload(&app, "routing", "office-hours.wasm").await.0, 201);
    // An offset that makes it 03:00 at the tenant now: outside 09:00-18:00 on any day.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let utc_minutes = ((now / 60) % (24 * 60)) as i64;
    let mut offset = 3 * 60 - utc_minutes;
    if offset < -720 {
        offset += 24 * 60;
    }
    if offset > 840 {
        offset -= 24 * 60;
    }
    let (status, body) = app
        .admin_put(
            "/v1/tenants/acme/settings",
            "application/json",
            serde_json::to_vec(&json!({"work_mode": "human_first", "utc_offset_minutes": offset}))
                .unwrap(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (token, _) = customer(&app).await;
    let mut ws = app.customer_ws(&token).await;
    ws.send(json!({"type":"send","client_msg_id":"1","text":"anyone there?"}))
        .await;
    let notice = ws.expect("rejection", |f| f["sender"] == "system").await;
    assert!(!notice["text"].as_str().unwrap().is_empty());
    let (_, list) = app.admin_get("/v1/tenants/acme/conversations").await;
    assert_eq!(
        list["conversations"][0]["state"], "bot",
        "not queued: {list}"
    );
}

#[tokio::test]
async fn closed_conversations_are_scored_by_the_quality_policy_or_the_builtin_one() {
    let app = TestApp::spawn().await;
    let (_, agent_token) = app.create_agent("Alice", &["general"], 3).await;
    let mut agent = app.agent_ws(&agent_token).await;
    for (round, policy) in [(0, None), (1, Some("quality-scorer.wasm"))] {
        if let Some(name) = policy {
            assert_eq!(upload(&app, "quality", name).await.0, 201);
        }
        let (token, _) = customer(&app).await;
        let mut ws = app.customer_ws(&token).await;
        ws.send(json!({"type":"send","client_msg_id":"1","text":"my parcel is late"}))
            .await;
        let assigned = agent.expect_type("assigned").await;
        let id = assigned["conversation"]["id"].as_str().unwrap().to_owned();
        agent
            .send(json!({"type":"send","conversation_id":id,"client_msg_id":format!("a{round}"),"text":"Hello! Sorry, let me check."}))
            .await;
        agent.expect_type("receipt").await;
        agent
            .send(json!({"type":"close","conversation_id":id}))
            .await;
        agent.expect_type("unassigned").await;
        let mut quality = Value::Null;
        for _ in 0..100 {
            let (_, detail) = app
                .admin_get(&format!("/v1/tenants/acme/conversations/{id}"))
                .await;
            if detail["quality"].as_array().is_some_and(|q| !q.is_empty()) {
                quality = detail["quality"][0].clone();
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let score = quality["score"].as_i64().expect("scored");
        assert!((0..=100).contains(&score));
        assert!(quality["findings"].is_array());
        let expected = if policy.is_some() {
            "policy"
        } else {
            "builtin"
        };
        assert_eq!(quality["decided_by"], expected, "{quality}");
    }
}

#[tokio::test]
async fn sensitive_words_block_mask_flag_and_hand_off_after_normalizing_evasions() {
    let app = TestApp::spawn_bot_first().await;
    let put_json = |list: &'static str, body: Value| {
        let app = &app;
        async move {
            app.admin_put(
                &format!("/v1/tenants/acme/policies/sensitive-words/{list}"),
                "application/json",
                serde_json::to_vec(&body).unwrap(),
            )
            .await
        }
    };
    assert_eq!(
        put_json("abuse", json!({"action":"block","words":["傻瓜","idiot"]}))
            .await
            .0,
        200
    );
    assert_eq!(
        put_json("competitor", json!({"action":"flag","words":["发票代开"]}))
            .await
            .0,
        200
    );
    assert_eq!(
        put_json("legal", json!({"action":"handoff","words":["律师函"]}))
            .await
            .0,
        200
    );
    let (status, body) = app
        .admin_put(
            "/v1/tenants/acme/policies/sensitive-words/pii?action=mask",
            "text/plain",
            "身份证号\r\n\r\nbank card\n".as_bytes().to_vec(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["words"], 2);
    // A list reads back with its words, for the console's editor.
    let (status, pii) = app
        .admin_get("/v1/tenants/acme/policies/sensitive-words/pii")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (pii["action"].as_str(), pii["words"].clone()),
        (Some("mask"), json!(["身份证号", "bank card"]))
    );
    let (status, _) = app
        .admin_get("/v1/tenants/acme/policies/sensitive-words/nothing")
        .await;
    assert_eq!(status, 404);
    let (status, body) = put_json("abuse", json!({"action":"nuke","words":["x"]})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("unknown_action"))
    );
    let (status, body) = put_json("Bad Name", json!({"action":"flag","words":["x"]})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_list_name"))
    );
    let (_, lists) = app
        .admin_get("/v1/tenants/acme/policies/sensitive-words")
        .await;
    assert_eq!(lists["lists"].as_array().unwrap().len(), 4);

    // Evasions still hit: spaces and punctuation between characters, full-width, case,
    // traditional characters.
    for (text, action) in [
        ("你是 傻-瓜 吗", "block"),
        ("ＩＤＩＯＴ!", "block"),
        ("我的身份證號是123", "mask"),
        ("可以發票代開嗎", "flag"),
        ("运费怎么算", "allow"),
    ] {
        let (status, verdict) = app
            .admin_post(
                "/v1/tenants/acme/policies/sensitive-words/check",
                json!({"text": text}),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(verdict["action"], action, "{text}: {verdict}");
    }
    let (_, verdict) = app
        .admin_post(
            "/v1/tenants/acme/policies/sensitive-words/check",
            json!({"text": "我的身份证号是123"}),
        )
        .await;
    assert_eq!(verdict["masked"], "我的****是123");
    assert_eq!(verdict["matches"][0]["list"], "pii");
    assert_eq!(
        (
            verdict["matches"][0]["start"].as_i64(),
            verdict["matches"][0]["end"].as_i64()
        ),
        (Some(2), Some(6))
    );

    let visitor = app.visitor().await;
    let mut customer = app.customer_ws(&visitor).await;
    customer
        .send(json!({"type":"send","client_msg_id":"b1","text":"你这个傻瓜"}))
        .await;
    let error = customer.expect_type("error").await;
    assert_eq!(error["code"], "blocked");
    let (_, list) = app.admin_get("/v1/tenants/acme/conversations").await;
    assert!(
        list["conversations"].as_array().unwrap().is_empty(),
        "a blocked message is not stored"
    );

    customer
        .send(json!({"type":"send","client_msg_id":"m1","text":"我的身份证号是110101"}))
        .await;
    let own = customer
        .expect("masked echo", |f| f["sender"] == "customer")
        .await;
    assert_eq!(own["text"], "我的****是110101");
    customer.expect("bot", |f| f["sender"] == "bot").await;
    customer
        .send(json!({"type":"send","client_msg_id":"f1","text":"能帮我发票代开吗"}))
        .await;
    customer.expect("bot", |f| f["sender"] == "bot").await;
    customer
        .send(json!({"type":"send","client_msg_id":"h1","text":"我已经寄了律师函"}))
        .await;
    let handoff = customer.expect("bot", |f| f["sender"] == "bot").await;
    let conversation_id = handoff["conversation_id"].as_str().unwrap().to_owned();

    let (_, token) = app.create_agent("Alice", &["*"], 2).await;
    let mut agent = app.agent_ws(&token).await;
    let assigned = agent.expect_type("assigned").await;
    assert_eq!(assigned["conversation"]["handoff_reason"], "sensitive_word");
    let note = queued_note(&app, &assigned["conversation"]).await;
    assert!(
        note.starts_with("sensitive_word; built-in routing: general, priority "),
        "{note}"
    );
    let messages = assigned["messages"].as_array().unwrap();
    let customer_messages: Vec<&Value> = messages
        .iter()
        .filter(|m| m["sender"] == "customer")
        .collect();
    assert_eq!(customer_messages[0]["meta"]["sensitive"]["action"], "mask");
    assert_eq!(customer_messages[1]["meta"]["sensitive"]["action"], "flag");
    assert_eq!(
        customer_messages[1]["meta"]["sensitive"]["words"][0],
        "发票代开"
    );
    assert_eq!(
        customer_messages[2]["meta"]["sensitive"]["action"],
        "handoff"
    );

    // Agents are blocked or masked too.
    agent
        .send(json!({"type":"send","conversation_id":conversation_id,"client_msg_id":"a1","text":"别当傻瓜"}))
        .await;
    assert_eq!(agent.expect_type("error").await["code"], "blocked");
    agent
        .send(json!({"type":"send","conversation_id":conversation_id,"client_msg_id":"a2","text":"请提供bank card后四位"}))
        .await;
    let masked = customer.expect("agent", |f| f["sender"] == "agent").await;
    assert_eq!(masked["text"], "请提供*********后四位");

    let (status, _) = app
        .http
        .delete(app.url("/v1/tenants/acme/policies/sensitive-words/abuse"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 204);
    let (_, verdict) = app
        .admin_post(
            "/v1/tenants/acme/policies/sensitive-words/check",
            json!({"text": "傻瓜"}),
        )
        .await;
    assert_eq!(verdict["action"], "allow");
}

/// The Policies page's dry run: the active routing (a policy, or the built-in strategy with
/// business hours) on a sample conversation, with who decided; nothing is queued or audited.
#[tokio::test]
async fn a_routing_dry_run_shows_what_the_active_policy_would_decide() {
    let app = TestApp::spawn().await;
    let dry_run =
        |sample: Value| app.admin_post("/v1/tenants/acme/policies/routing/dry-run", sample);
    let (status, body) = dry_run(json!({ "skill_hint": "billing" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decided_by"], "built-in routing");
    assert_eq!(body["decision"]["decision"], "route");
    assert!(body["out_of_hours"].is_null());

    let (status, _) = upload(&app, "routing", "vip-routing.wasm").await;
    assert_eq!(status, 201);
    let (_, vip) = dry_run(json!({ "vip_level": 3, "messages": ["我要投诉"] })).await;
    assert_eq!(vip["decided_by"], "routing policy v1");
    assert_eq!(
        (
            vip["decision"]["skill_group"].as_str(),
            vip["decision"]["priority"].as_i64()
        ),
        (Some("vip"), Some(9))
    );
    let (_, plain) = dry_run(json!({ "skill_hint": "billing" })).await;
    assert_eq!(plain["decision"]["skill_group"], "billing");
    // Who uploaded each version is kept.
    let (_, versions) = app.admin_get("/v1/tenants/acme/policies/routing").await;
    assert_eq!(versions["versions"][0]["uploaded_by"], "admin key");

    let (status, body) = dry_run(json!({ "vip_level": 12 })).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_sample")));
    let (status, body) = dry_run(json!({ "surprise": 1 })).await;
    assert_eq!(status, 400, "{body}");
    // Nothing was queued, and the dry runs are not changes in the audit log.
    let (_, queued) = app.admin_get("/v1/tenants/acme/conversations").await;
    assert!(queued["conversations"].as_array().unwrap().is_empty());
    let (_, audit) = app.admin_get("/v1/tenants/acme/audit").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["PUT policies/{kind}"]);
}
