//! Bot-first conversations on the real server with the real models and the demo knowledge base:
//! every decision kind in Chinese and English, handoff into the queue with the bot's transcript
//! and reason, the dry run, tenant settings, intents (train, classify, bring your own model),
//! and the optional LLM against a local chat-completions server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use switchboard_tests::{TestApp, WsClient};

/// Sends a customer message and returns the bot's reply frame.
async fn ask_live(customer: &mut WsClient, id: &str, text: &str) -> Value {
    customer
        .send(json!({"type":"send","client_msg_id":id,"text":text}))
        .await;
    customer.expect_text(text).await;
    customer
        .expect("bot reply", |frame| frame["sender"] == "bot")
        .await
}

async fn dry_run(app: &TestApp, text: &str) -> Value {
    let (status, body) = app
        .admin_post("/v1/tenants/acme/bot/ask", json!({ "text": text }))
        .await;
    assert_eq!(status, 200, "{text}: {body}");
    body
}

/// The bot's messages of a conversation with their meta, as admins see them.
async fn transcript(app: &TestApp, conversation_id: &str) -> Vec<Value> {
    let (status, body) = app
        .admin_get(&format!(
            "/v1/tenants/acme/conversations/{conversation_id}/messages"
        ))
        .await;
    assert_eq!(status, 200);
    body["messages"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_bot_answers_from_the_knowledge_base_in_chinese_and_english() {
    let app = TestApp::spawn_bot_first().await;
    let visitor = app.visitor().await;
    let mut customer = app.customer_ws(&visitor).await;

    let zh = ask_live(&mut customer, "z1", "买东西要付邮费吗").await;
    assert!(zh["text"].as_str().unwrap().contains("99"), "{zh}");
    let en = ask_live(&mut customer, "e1", "is delivery free?").await;
    assert!(en["text"].as_str().unwrap().contains("99 CNY"), "{en}");
    // The customer never sees the bot's internals.
    assert!(en.get("meta").is_none());

    let conversation_id = zh["conversation_id"].as_str().unwrap();
    let messages = transcript(&app, conversation_id).await;
    let bot: Vec<&Value> = messages.iter().filter(|m| m["sender"] == "bot").collect();
    assert_eq!(bot[0]["meta"]["decision"], "answer");
    assert_eq!(bot[0]["meta"]["faq_id"], "zh-ship-fee");
    assert_eq!(bot[1]["meta"]["faq_id"], "en-ship-cost");
    // Still with the bot: nobody was queued.
    let (_, detail) = app
        .admin_get(&format!("/v1/tenants/acme/conversations/{conversation_id}"))
        .await;
    assert_eq!(detail["conversation"]["state"], "bot");
}

#[tokio::test]
async fn greetings_get_a_short_reply_and_unknown_questions_an_honest_out_of_scope() {
    let app = TestApp::spawn_bot_first().await;
    for (text, reason) in [
        ("你好", "greeting"),
        ("hello there", "greeting"),
        ("谢谢你", "thanks"),
    ] {
        let decision = dry_run(&app, text).await;
        assert_eq!(decision["decision"], "answer", "{text}: {decision}");
        assert_eq!(decision["reason"], reason, "{text}: {decision}");
        assert!(decision["faq_id"].is_null());
    }
    for text in ["量子力学的基本原理是什么", "what is the capital of France"] {
        let decision = dry_run(&app, text).await;
        assert_eq!(decision["decision"], "out_of_scope", "{text}: {decision}");
        assert!(
            decision["faq_id"].is_null(),
            "never a wrong FAQ: {decision}"
        );
        assert!(!decision["answer"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn an_unsure_bot_offers_suggestions_the_widget_shows_as_buttons() {
    let app = TestApp::spawn_bot_first().await;
    let (unsure, decision) = app.clarified_question().await;
    let suggestions = decision["suggestions"].as_array().unwrap();
    assert!((1..=3).contains(&suggestions.len()), "{decision}");

    let visitor = app.visitor().await;
    let mut customer = app.customer_ws(&visitor).await;
    let reply = ask_live(&mut customer, "c1", &unsure).await;
    let buttons = reply["suggestions"]
        .as_array()
        .expect("suggestions on the frame");
    assert_eq!(buttons, suggestions);
    // A click sends the question: it is answered.
    let question = buttons[0].as_str().unwrap().to_owned();
    let answer = ask_live(&mut customer, "c2", &question).await;
    assert!(answer["suggestions"].is_null(), "{answer}");
    let messages = transcript(&app, reply["conversation_id"].as_str().unwrap()).await;
    assert_eq!(messages.last().unwrap()["meta"]["decision"], "answer");
}

#[tokio::test]
async fn asking_for_a_person_hands_off_to_the_queue_with_the_transcript_and_reason() {
    let app = TestApp::spawn_bot_first().await;
    let (_, token) = app.create_agent("Alice", &["general"], 2).await;
    let mut agent = app.agent_ws(&token).await;

    for (index, text) in ["转人工", "I want to talk to a real person"]
        .iter()
        .enumerate()
    {
        let visitor = app.visitor().await;
        let mut customer = app.customer_ws(&visitor).await;
        let question = "运费怎么算？";
        ask_live(&mut customer, &format!("q{index}"), question).await;
        let handoff = ask_live(&mut customer, &format!("h{index}"), text).await;
        assert!(!handoff["text"].as_str().unwrap().is_empty());

        let assigned = agent.expect_type("assigned").await;
        assert_eq!(
            assigned["conversation"]["handoff_reason"],
            "explicit_request"
        );
        let history: Vec<&str> = assigned["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["sender"].as_str().unwrap())
            .collect();
        assert_eq!(
            &history[..4],
            ["customer", "bot", "customer", "bot"],
            "the agent sees the bot's part: {assigned}"
        );
        assert_eq!(assigned["messages"][1]["meta"]["faq_id"], "zh-ship-fee");
        assert_eq!(assigned["messages"][3]["meta"]["decision"], "handoff");
        customer
            .expect("agent joined", |frame| frame["sender"] == "system")
            .await;
    }
}

#[tokio::test]
async fn complaints_and_two_unsure_turns_in_a_row_hand_off() {
    let app = TestApp::spawn_bot_first().await;
    let decision = dry_run(&app, "你们的服务太差了，我要投诉").await;
    assert_eq!(decision["decision"], "handoff");
    assert_eq!(decision["reason"], "complaint");
    let decision = dry_run(&app, "this is the worst service, I want to complain").await;
    assert_eq!(decision["decision"], "handoff");

    let visitor = app.visitor().await;
    let mut customer = app.customer_ws(&visitor).await;
    let first = ask_live(&mut customer, "u1", "量子力学的基本原理是什么").await;
    let second = ask_live(&mut customer, "u2", "火星上有没有水").await;
    let messages = transcript(&app, first["conversation_id"].as_str().unwrap()).await;
    let bot: Vec<&Value> = messages.iter().filter(|m| m["sender"] == "bot").collect();
    assert_eq!(bot[0]["meta"]["decision"], "out_of_scope");
    assert_eq!(bot[1]["meta"]["decision"], "handoff", "{second}");
    assert_eq!(bot[1]["meta"]["reason"], "unsure_twice");
    let (_, detail) = app
        .admin_get(&format!(
            "/v1/tenants/acme/conversations/{}",
            first["conversation_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(detail["conversation"]["state"], "queued");
    assert_eq!(detail["conversation"]["handoff_reason"], "unsure_twice");
}

#[tokio::test]
async fn the_dry_run_has_the_documented_shape_and_stores_nothing() {
    let app = TestApp::spawn_bot_first().await;
    let decision = dry_run(&app, "运费怎么算").await;
    for key in [
        "decision",
        "faq_id",
        "answer",
        "suggestions",
        "intent",
        "confidence",
        "reason",
    ] {
        assert!(decision.get(key).is_some(), "{key} missing: {decision}");
    }
    assert_eq!(decision["faq_id"], "zh-ship-fee");
    assert!(decision["intent"]["label"].is_string());
    let confidence = decision["confidence"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&confidence));
    let (_, list) = app.admin_get("/v1/tenants/acme/conversations").await;
    assert_eq!(list["conversations"].as_array().unwrap().len(), 0);

    let (status, body) = app
        .admin_post("/v1/tenants/acme/bot/ask", json!({ "text": "  " }))
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("empty_text")));
    let (status, body) = app
        .admin_post("/v1/tenants/acme/bot/ask", json!({ "txt": "x" }))
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_json")));
}

#[tokio::test]
async fn settings_switch_a_tenant_between_bot_first_and_human_first() {
    let app = TestApp::spawn_bot_first().await;
    let (status, settings) = app.admin_get("/v1/tenants/acme/settings").await;
    assert_eq!(status, 200);
    assert_eq!(
        settings["work_mode"], "bot_first",
        "new tenants are bot-first"
    );
    assert!(settings["bot"]["answer_threshold"].is_number());

    let (status, body) = app
        .admin_put(
            "/v1/tenants/acme/settings",
            "application/json",
            serde_json::to_vec(&json!({"bot": {"answer_threshold": 3.0}})).unwrap(),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_settings")));
    // The bot's queues are skill names like any other: 1 to 64 bytes, no control characters.
    let long = "x".repeat(65);
    for bot in [
        json!({"default_skill": long}),
        json!({"complaint_skill": "a\nb"}),
        json!({"sensitive_skill": ""}),
    ] {
        let (status, body) = app
            .admin_put(
                "/v1/tenants/acme/settings",
                "application/json",
                serde_json::to_vec(&json!({ "bot": bot })).unwrap(),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("bad_settings")),
            "{bot}"
        );
    }
    let (status, body) = app
        .admin_put(
            "/v1/tenants/acme/settings",
            "application/json",
            serde_json::to_vec(&json!({"work_mode": "robot"})).unwrap(),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_json")));

    let (status, _) = app
        .admin_put(
            "/v1/tenants/acme/settings",
            "application/json",
            serde_json::to_vec(&json!({"work_mode": "human_first"})).unwrap(),
        )
        .await;
    assert_eq!(status, 200);
    let (_, token) = app.create_agent("Bob", &["general"], 1).await;
    let mut agent = app.agent_ws(&token).await;
    let visitor = app.visitor().await;
    let mut customer = app.customer_ws(&visitor).await;
    customer
        .send(json!({"type":"send","client_msg_id":"1","text":"运费怎么算？"}))
        .await;
    let assigned = agent.expect_type("assigned").await;
    assert_eq!(assigned["conversation"]["handoff_reason"], "human_first");
    let senders: Vec<&str> = assigned["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["sender"].as_str().unwrap())
        .collect();
    assert!(!senders.contains(&"bot"), "{assigned}");
}

#[tokio::test]
async fn intents_train_classify_and_a_tenant_model_replace_the_builtin_ones() {
    let app = TestApp::spawn().await;
    // Built-in intents for every tenant.
    for (text, label) in [
        ("转人工", "handoff_request"),
        ("can I talk to a human", "handoff_request"),
        ("你好", "greeting"),
    ] {
        let (status, body) = app
            .admin_post("/v1/tenants/acme/intents/classify", json!({ "text": text }))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["label"], label, "{text}: {body}");
        assert_eq!(body["model"], "builtin");
    }

    let lines = switchboard_tests::intent_training_lines();
    let response = app
        .http
        .post(app.url("/v1/tenants/acme/intents/train"))
        .bearer_auth(&app.admin_key)
        .body(lines)
        .send()
        .await
        .unwrap();
    // Training is a background job: accepted at once, then watched.
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["job"]["kind"], "intents_train");
    assert_eq!(accepted["job"]["started_by"], "admin key");
    let job = app
        .wait_job("acme", accepted["job"]["id"].as_str().unwrap())
        .await;
    assert_eq!(job["state"], "done", "{job}");
    let report = job["result"].clone();
    let labels: Vec<&str> = report["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["label"].as_str().unwrap())
        .collect();
    for label in ["order_status", "invoice", "cancel_order", "handoff_request"] {
        assert!(labels.contains(&label), "{label} missing from {report}");
    }
    assert_eq!(report["tenant_examples"], 24);
    assert!(report["held_out_accuracy"].as_f64().is_some(), "{report}");
    // Per label on the held-out split, and the out-of-scope recall on generic questions the
    // head never saw.
    let per_label = report["held_out_per_label"].as_array().unwrap();
    assert!(
        per_label.iter().any(|row| row["label"] == "order_status"),
        "{report}"
    );
    assert!(per_label
        .iter()
        .all(|row| row["correct"].as_u64() <= row["held_out"].as_u64()));
    let recall = report["out_of_scope_recall"].as_f64().expect("a recall");
    assert!((0.0..=1.0).contains(&recall), "{report}");
    assert!(report["out_of_scope_probes"].as_u64().unwrap() > 100);

    for (text, label) in [
        ("我的快递现在在哪里", "order_status"),
        ("please issue an invoice", "invoice"),
        ("帮我把订单取消掉", "cancel_order"),
        ("转人工", "handoff_request"),
    ] {
        let (_, body) = app
            .admin_post("/v1/tenants/acme/intents/classify", json!({ "text": text }))
            .await;
        assert_eq!(body["label"], label, "{text}: {body}");
        assert_eq!(body["model"], "trained");
    }

    // A bad file is refused line by line, and the trained head stays.
    let response = app
        .http
        .post(app.url("/v1/tenants/acme/intents/train?format=csv"))
        .bearer_auth(&app.admin_key)
        .body("text,label\n\"unterminated,oops\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "bad_training_file");

    // Bring your own model: validated before activation.
    let fixture = |name: &str| {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../models/tests/fixtures")
                .join(name),
        )
        .unwrap()
    };
    let tokenizer = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/files/tokenizer.json"),
    )
    .unwrap();
    let upload = |model: Vec<u8>, labels: &str| {
        let form = reqwest::multipart::Form::new()
            .part("model", reqwest::multipart::Part::bytes(model))
            .part(
                "tokenizer",
                reqwest::multipart::Part::bytes(tokenizer.clone()),
            )
            .text("labels", labels.to_owned());
        app.http
            .put(app.url("/v1/tenants/acme/intents/model"))
            .bearer_auth(&app.admin_key)
            .multipart(form)
            .send()
    };
    let response = upload(b"not onnx".to_vec(), "billing\nshipping\nother")
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["code"], "bad_model");
    let response = upload(fixture("tiny_classifier.onnx"), "billing\nshipping")
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "label count must match the model");
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "bad_labels"
    );
    let (_, body) = app
        .admin_post(
            "/v1/tenants/acme/intents/classify",
            json!({ "text": "转人工" }),
        )
        .await;
    assert_eq!(body["model"], "trained", "a refused upload changes nothing");

    let response = upload(fixture("tiny_classifier.onnx"), "billing\nshipping\nother")
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let (_, body) = app
        .admin_post(
            "/v1/tenants/acme/intents/classify",
            json!({ "text": "where is my parcel" }),
        )
        .await;
    assert_eq!(body["model"], "onnx");
    assert!(["billing", "shipping", "other"].contains(&body["label"].as_str().unwrap()));
}

/// A chat-completions server on port 0: answers with `reply` (or an HTTP 500) and counts calls.
async fn fake_llm(reply: Option<&'static str>) -> (String, Arc<AtomicUsize>) {
    use axum::routing::post;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move |body: axum::Json<Value>| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let prompt = body.0.to_string();
                assert!(
                    prompt.contains("zh-ship-fee"),
                    "the LLM sees the hits: {prompt}"
                );
                match reply {
                    Some(text) => (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({
                            "id": "x", "object": "chat.completion", "created": 0, "model": "m",
                            "choices": [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": text}}],
                        })),
                    ),
                    None => (
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        axum::Json(json!({"error": {"message": "down", "type": "server_error"}})),
                    ),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), calls)
}

#[tokio::test]
async fn a_configured_llm_phrases_answers_from_the_hits_and_falls_back_on_errors() {
    for (reply, expect_llm) in [
        (Some("满99元包邮，不满收8元 [zh-ship-fee]"), true),
        (None, false),
    ] {
        let (base_url, calls) = fake_llm(reply).await;
        let app = TestApp::spawn_bot_first_with(move |settings| {
            settings.llm = Some(
                serde_json::from_value(json!({
                    "base_url": base_url, "model": "local", "timeout_ms": 5000,
                }))
                .unwrap(),
            );
        })
        .await;
        let decision = dry_run(&app, "运费怎么算？").await;
        assert!(calls.load(Ordering::SeqCst) >= 1);
        assert_eq!(decision["faq_id"], "zh-ship-fee");
        if expect_llm {
            assert_eq!(decision["reason"], "llm_answer", "{decision}");
            assert!(
                decision["answer"].as_str().unwrap().contains("满99元包邮"),
                "{decision}"
            );
        } else {
            assert_eq!(decision["reason"], "faq_match", "{decision}");
            assert!(decision["answer"].as_str().unwrap().starts_with("单笔订单"));
        }
    }
}

/// A tenant's own classifier (bring your own model) names the intents the bot acts on: its
/// `handoff_request` hands the chat to a person as the built-in intent does, on the live path
/// too; without it the built-in intents are back.
#[tokio::test]
async fn a_tenant_classifier_names_the_intents_the_bot_acts_on() {
    let app = TestApp::spawn_bot_first().await;
    // The toy classifier's weights are fixed: it reads this text as its first label (0.99) and
    // the other as its second (0.99). The built-in intents see neither as a request for a person.
    let (asks, other) = ("abc def", "foo bar baz");
    assert_ne!(dry_run(&app, asks).await["decision"], "handoff");

    let file = |path: &str| {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
    };
    let form = reqwest::multipart::Form::new()
        .part(
            "model",
            reqwest::multipart::Part::bytes(file("../models/tests/fixtures/tiny_classifier.onnx")),
        )
        .part(
            "tokenizer",
            reqwest::multipart::Part::bytes(file("../models/files/tokenizer.json")),
        )
        .text("labels", "handoff_request\nbilling\nother".to_owned());
    let response = app
        .http
        .put(app.url("/v1/tenants/acme/intents/model"))
        .bearer_auth(&app.admin_key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    let decided = dry_run(&app, asks).await;
    assert_eq!(
        (
            &decided["decision"],
            &decided["reason"],
            &decided["intent"]["label"]
        ),
        (
            &json!("handoff"),
            &json!("handoff_intent"),
            &json!("handoff_request")
        ),
        "{decided}"
    );
    let decided = dry_run(&app, other).await;
    assert_ne!(decided["decision"], "handoff", "{decided}");
    assert_eq!(decided["intent"]["label"], "billing");

    let visitor = app.visitor().await;
    let mut customer = app.customer_ws(&visitor).await;
    let reply = ask_live(&mut customer, "m1", asks).await;
    assert!(!reply["text"].as_str().unwrap().is_empty());
    let (_, list) = app.admin_get("/v1/tenants/acme/conversations").await;
    let conversation = &list["conversations"][0];
    assert_eq!(conversation["state"], "queued");
    assert_eq!(conversation["handoff_reason"], "handoff_intent");

    let response = app
        .http
        .delete(app.url("/v1/tenants/acme/intents/model"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert_ne!(dry_run(&app, asks).await["decision"], "handoff");
}

/// The knowledge base's hybrid search ranks like the bot (a paraphrase that shares no word
/// with the FAQ still finds it, with the bot's confidence), and the self-check reports how the
/// bot does on the tenant's own questions and alternates.
#[tokio::test]
async fn hybrid_search_and_the_self_check_report() {
    let app = TestApp::spawn_bot_first().await;
    let search = |q: &'static str, mode: &'static str| {
        let app = &app;
        async move {
            let response = app
                .http
                .get(app.url("/v1/tenants/acme/kb/search"))
                .query(&[("q", q), ("k", "3"), ("mode", mode)])
                .bearer_auth(&app.admin_key)
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
    let (status, hits) = search("买东西要付邮费吗", "hybrid").await;
    assert_eq!(status, 200, "{hits}");
    assert_eq!(hits[0]["id"], "zh-ship-fee", "{hits}");
    let confidence = hits[0]["confidence"].as_f64().expect("confidence");
    assert!((0.0..=1.0).contains(&confidence));
    assert!(hits[0]["cosine"].as_f64().is_some());
    let (status, body) = search("x", "fuzzy").await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "bad_query");

    let (status, report) = app.admin_get("/v1/tenants/acme/bot/selfcheck").await;
    assert_eq!(status, 200, "{report}");
    let count = |field: &str| {
        report[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field}: {report}"))
    };
    assert!(count("queries") > 20, "{report}");
    assert_eq!(
        count("right") + count("wrong") + count("abstained"),
        count("queries"),
        "{report}"
    );
    assert!(count("right") > count("wrong"), "{report}");
    // Another tenant's key cannot read it.
    let other_key = app.create_tenant("other").await;
    let denied = app
        .http
        .get(app.url("/v1/tenants/acme/bot/selfcheck"))
        .bearer_auth(&other_key)
        .send()
        .await
        .expect("request");
    assert_eq!(denied.status().as_u16(), 401);
}

/// A tenant brings its own LLM endpoint (the console's Bot page): the key is stored encrypted
/// and never shown back, the bot phrases that tenant's answers with it, and a URL to a private
/// address is refused unless the node allows such hosts.
#[tokio::test]
async fn a_tenants_own_llm_endpoint_phrases_its_answers_and_its_key_is_never_shown() {
    let (base_url, calls) = fake_llm(Some("满99元包邮，不满收8元 [zh-ship-fee]")).await;
    let strict = TestApp::spawn().await;
    let refused = strict
        .http
        .put(strict.url("/v1/tenants/acme/bot/llm"))
        .bearer_auth(&strict.admin_key)
        .json(&json!({ "base_url": base_url, "model": "local" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        400,
        "a loopback URL on a node that allows none"
    );

    let app = TestApp::spawn_bot_first_with(|settings| {
        settings.channels.allow_http_push_urls = true;
        settings.channels.allow_private_push_hosts = true;
    })
    .await;
    // No endpoint, no node LLM: the FAQ answer as it is.
    assert_eq!(dry_run(&app, "运费怎么算？").await["reason"], "faq_match");
    let put = |body: Value| {
        app.http
            .put(app.url("/v1/tenants/acme/bot/llm"))
            .bearer_auth(&app.admin_key)
            .json(&body)
            .send()
    };
    let response = put(json!({ "base_url": base_url, "model": "local", "api_key": "sk-secret-1" }))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let shown: Value = response.json().await.unwrap();
    assert_eq!(shown["llm"]["api_key_set"], true);
    assert!(!shown.to_string().contains("sk-secret-1"));
    let decision = dry_run(&app, "运费怎么算？").await;
    assert_eq!(decision["reason"], "llm_answer", "{decision}");
    assert!(calls.load(Ordering::SeqCst) >= 1);
    // A change without the key keeps it; the GET never shows it.
    let response = put(json!({ "base_url": base_url, "model": "local-2", "timeout_ms": 4000 }))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, got) = app.admin_get("/v1/tenants/acme/bot/llm").await;
    assert_eq!(
        (
            got["llm"]["model"].as_str(),
            got["llm"]["api_key_set"].as_bool()
        ),
        (Some("local-2"), Some(true))
    );
    assert!(!got.to_string().contains("sk-secret"));
    let (_, audit) = app.admin_get("/v1/tenants/acme/audit?action=bot/llm").await;
    assert!(!audit.to_string().contains("sk-secret"), "{audit}");
    for bad in [
        json!({ "base_url": "ftp://x", "model": "m" }),
        json!({ "base_url": base_url, "model": "" }),
        json!({ "base_url": base_url, "model": "m", "timeout_ms": 0 }),
    ] {
        let status = put(bad.clone()).await.unwrap().status();
        assert_eq!(status, 400, "{bad}");
    }
    // Removed: the FAQ answer again.
    let removed = app
        .http
        .delete(app.url("/v1/tenants/acme/bot/llm"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    assert_eq!(dry_run(&app, "运费怎么算？").await["reason"], "faq_match");
}

/// The stored LLM key is sent only to the address it was set for: moving the endpoint needs the
/// key again, so a role that may edit the bot cannot point the bot (and the key) at its own host.
#[tokio::test]
async fn moving_the_llm_endpoint_needs_its_key_again() {
    let app = TestApp::spawn().await;
    let put = |body: Value| {
        let app = &app;
        async move {
            app.admin_put(
                "/v1/tenants/acme/bot/llm",
                "application/json",
                body.to_string().into_bytes(),
            )
            .await
        }
    };
    let (status, body) = put(json!({"base_url": "https://llm.acme.example/v1",
        "model": "qwen-plus", "api_key": "sk-acme-secret"}))
    .await;
    assert_eq!(status, 200, "{body}");
    // Elsewhere without the key: refused, and nothing changes.
    let (status, body) =
        put(json!({"base_url": "https://collector.example/v1", "model": "qwen-plus"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("api_key_required")),
        "{body}"
    );
    let (_, stored) = app.admin_get("/v1/tenants/acme/bot/llm").await;
    assert_eq!(stored["llm"]["base_url"], "https://llm.acme.example/v1");
    // The same address with another model keeps the key.
    let (status, body) =
        put(json!({"base_url": "https://llm.acme.example/v1", "model": "qwen-max"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["llm"]["api_key_set"], true, "{body}");
    // Elsewhere with a key of its own (here none): taken.
    let (status, body) = put(json!({"base_url": "https://collector.example/v1",
        "model": "qwen-plus", "api_key": ""}))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["llm"]["api_key_set"], false, "{body}");
}
