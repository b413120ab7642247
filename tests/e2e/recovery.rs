//! Crash safety: a bot turn or a human-first handoff that lived only in memory when the process
//! died is finished by the next start, once.

use std::time::Duration;

use serde_json::Value;
use switchboard_tests::TestApp;

/// Stores a customer's message through the store alone, as a process that died right after the
/// commit would have left it: no bot turn, no handoff. Returns the conversation id.
async fn store_only(app: &TestApp, tenant: &str, text: &str) -> String {
    let (_, session) = app.visitor_in(tenant).await;
    let store = &app.server.state.store;
    let customer = store
        .customer(tenant, session["customer_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    let appended = store
        .submit(store::NewMessage::Customer {
            customer,
            client_msg_id: Some("lost-1".into()),
            text: text.into(),
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
    appended.conversation.id
}

#[tokio::test]
async fn a_restart_answers_the_customer_message_a_crash_left_unanswered() {
    let app = TestApp::spawn_bot_first().await;
    let hf_key = app.create_tenant("hf").await; // human-first
    let bot_conversation = store_only(&app, "acme", "买东西要付邮费吗").await;
    let hf_conversation = store_only(&app, "hf", "hello?").await;
    let admin_key = app.admin_key.clone();
    let mut settings = (*app.server.state.settings).clone();
    settings.addr = "127.0.0.1:0".parse().unwrap();
    settings.recovery.min_age_ms = 300;
    let server = app.server;
    server.stop().await.unwrap();

    let server = gateway::Server::start(settings.clone()).await.unwrap();
    // Two more nodes start at the same moment: their scans find the same conversations.
    let chat = server.state.chat.clone();
    assert_eq!(chat.recover_lost_turns(settings.recovery).await.unwrap(), 2);
    assert_eq!(chat.recover_lost_turns(settings.recovery).await.unwrap(), 2);

    let http = reqwest::Client::new();
    let base = format!("http://{}", server.addr);
    let get = |path: String, key: String| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let response = http
                .get(format!("{base}{path}"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.json::<Value>().await.unwrap()
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let bot_messages = loop {
        let body = get(
            format!("/v1/tenants/acme/conversations/{bot_conversation}/messages"),
            admin_key.clone(),
        )
        .await;
        let bot: Vec<Value> = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["sender"] == "bot")
            .cloned()
            .collect();
        if !bot.is_empty() {
            break bot;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no bot answer after the restart: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        bot_messages[0]["text"].as_str().unwrap().contains("99"),
        "{bot_messages:?}"
    );
    // The human-first tenant's conversation went to the queue.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let detail = get(
            format!("/v1/tenants/hf/conversations/{hf_conversation}"),
            hf_key.clone(),
        )
        .await;
        if detail["conversation"]["state"] == "queued" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not handed off after the restart: {detail}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Three scans, one answer: nothing more comes.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let body = get(
        format!("/v1/tenants/acme/conversations/{bot_conversation}/messages"),
        admin_key.clone(),
    )
    .await;
    let bots = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["sender"] == "bot")
        .count();
    assert_eq!(bots, 1, "{body}");
    let events = server
        .state
        .store
        .events(&hf_conversation)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == store::recovery::TURN_RECOVERED_EVENT)
        .count();
    assert_eq!(events, 1);
    // A further restart finds nothing left to do.
    assert_eq!(chat.recover_lost_turns(settings.recovery).await.unwrap(), 0);
    server.stop().await.unwrap();
}
