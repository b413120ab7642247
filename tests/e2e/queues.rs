//! Queues: order by priority and waiting time, capacity, positions, transfer, agent loss.

use std::time::Duration;

use serde_json::json;
use switchboard_tests::{TestApp, WsClient};

async fn customer_says(app: &TestApp, text: &str) -> WsClient {
    let mut customer = app.customer_ws(&app.visitor().await).await;
    customer
        .send(json!({"type":"send","client_msg_id":"c1","text":text}))
        .await;
    customer.expect_type("receipt").await;
    customer
}

fn first_text(assigned: &serde_json::Value) -> String {
    assigned["messages"][0]["text"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn queue_serves_in_order_within_capacity_and_tells_positions() {
    let app = TestApp::spawn().await;
    let mut first = customer_says(&app, "first").await;
    let mut second = customer_says(&app, "second").await;
    let mut third = customer_says(&app, "third").await;
    // Nobody online: everyone waits and knows their place.
    assert_eq!(first.expect_type("queue").await["position"], 1);
    assert_eq!(second.expect_type("queue").await["position"], 2);
    assert_eq!(third.expect_type("queue").await["position"], 3);

    // An agent with room for two takes the two longest waiting, in order.
    let (_, token) = app.create_agent("Dana", &["general"], 2).await;
    let mut agent = app.agent_ws(&token).await;
    assert_eq!(first_text(&agent.expect_type("assigned").await), "first");
    assert_eq!(first_text(&agent.expect_type("assigned").await), "second");
    assert_eq!(third.expect_type("queue").await["position"], 1);
    let extra = agent.drain(Duration::from_millis(400)).await;
    assert!(
        extra.iter().all(|f| f["type"] != "assigned"),
        "capacity is 2: {extra:?}"
    );

    // Closing one frees a place for the third.
    let (_, list) = app
        .admin_get("/v1/tenants/acme/conversations?state=assigned")
        .await;
    let held = list["conversations"][0]["id"].as_str().unwrap().to_owned();
    agent
        .send(json!({"type":"close","conversation_id":held}))
        .await;
    let next = agent.expect_type("assigned").await;
    assert_eq!(first_text(&next), "third");
    first.close().await;
    second.close().await;
}

/// A conversation that stops waiting without this node assigning it (another node of a cluster
/// did) loses its queue position at this node's next round: nothing is kept for it.
#[tokio::test]
async fn a_conversation_assigned_elsewhere_is_forgotten_by_the_next_round() {
    let app = TestApp::spawn().await;
    let mut waiting = customer_says(&app, "waiting").await;
    assert_eq!(waiting.expect_type("queue").await["position"], 1);
    let (_, list) = app
        .admin_get("/v1/tenants/acme/conversations?state=queued")
        .await;
    let id = list["conversations"][0]["id"].as_str().unwrap().to_owned();
    let chat = &app.server.state.chat;
    assert_eq!(chat.queue_position(&id), Some(1));
    // Another node's dispatcher takes it, through the shared store.
    let store = &app.server.state.store;
    let elsewhere = store
        .create_agent("acme", "Elsewhere", &["general".into()], 1)
        .await
        .unwrap();
    store
        .assign(&id, &elsewhere, "joined")
        .await
        .unwrap()
        .unwrap();
    chat.kick("acme");
    let started = std::time::Instant::now();
    while chat.queue_position(&id).is_some() {
        assert!(started.elapsed() < Duration::from_secs(5), "still kept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn least_busy_agent_of_the_right_skill_gets_the_chat() {
    let app = TestApp::spawn().await;
    let (_, busy_token) = app.create_agent("Busy", &["general"], 5).await;
    let mut busy = app.agent_ws(&busy_token).await;
    let _one = customer_says(&app, "one").await;
    busy.expect_type("assigned").await;
    let (_, free_token) = app.create_agent("Free", &["general"], 5).await;
    let mut free = app.agent_ws(&free_token).await;
    let (_, billing_token) = app.create_agent("Billing only", &["billing"], 5).await;
    let mut billing = app.agent_ws(&billing_token).await;
    let _two = customer_says(&app, "two").await;
    assert_eq!(first_text(&free.expect_type("assigned").await), "two");
    let stray = billing.drain(Duration::from_millis(300)).await;
    assert!(
        stray.iter().all(|f| f["type"] != "assigned"),
        "wrong skill got a chat: {stray:?}"
    );
}

#[tokio::test]
async fn transfer_to_a_skill_and_to_an_agent() {
    let app = TestApp::spawn().await;
    let (_, general_token) = app.create_agent("General", &["general"], 5).await;
    let mut general = app.agent_ws(&general_token).await;
    let mut customer = customer_says(&app, "I need an invoice").await;
    let id = general.expect_type("assigned").await["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // To a skill no agent of the tenant has: refused, the chat stays (a queue nobody serves
    // would strand it).
    general
        .send(json!({"type":"transfer","conversation_id":id,"to":"skill:billing"}))
        .await;
    let refused = general.expect_type("error").await;
    assert_eq!(refused["code"], "unknown_skill");
    // The billing agent exists but is not connected: the chat waits in that queue.
    let (_, billing_token) = app.create_agent("Biller", &["billing"], 5).await;
    general
        .send(json!({"type":"transfer","conversation_id":id,"to":"skill:billing"}))
        .await;
    assert_eq!(
        general.expect_type("unassigned").await["reason"],
        "transferred"
    );
    customer
        .expect("transfer notice", |f| {
            f["sender"] == "system" && f["text"].as_str().unwrap().contains("transferred")
        })
        .await;
    let mut biller = app.agent_ws(&billing_token).await;
    let assigned = biller.expect_type("assigned").await;
    assert_eq!(assigned["conversation"]["skill_group"], "billing");
    // The new agent sees the history, including what happened before the transfer.
    assert_eq!(assigned["messages"][0]["text"], "I need an invoice");

    // To a named agent.
    let (general_id, _) = (
        app.server.state.store.agents("acme").await.unwrap()[0]
            .id
            .clone(),
        (),
    );
    biller
        .send(json!({"type":"transfer","conversation_id":id,"to":format!("agent:{general_id}")}))
        .await;
    assert_eq!(
        biller.expect_type("unassigned").await["reason"],
        "transferred"
    );
    assert_eq!(
        general.expect_type("assigned").await["conversation"]["id"],
        id.as_str()
    );
    general
        .send(
            json!({"type":"send","conversation_id":id,"client_msg_id":"g1","text":"back with me"}),
        )
        .await;
    customer.expect_text("back with me").await;

    // Bad targets are refused and the conversation stays put.
    general
        .send(json!({"type":"transfer","conversation_id":id,"to":"nowhere"}))
        .await;
    assert_eq!(general.expect_type("error").await["code"], "bad_transfer");
    general
        .send(json!({"type":"transfer","conversation_id":id,"to":"agent:ag_missing"}))
        .await;
    assert_eq!(general.expect_type("error").await["code"], "unknown_agent");
}

#[tokio::test]
async fn agent_disconnect_requeues_after_grace_and_reconnect_within_grace_keeps_chats() {
    let app = TestApp::spawn_with(|settings| settings.agent_grace_ms = 600).await;
    let (_, token) = app.create_agent("Flaky", &["general"], 5).await;
    let agent = app.agent_ws(&token).await;
    let mut customer = customer_says(&app, "hello?").await;
    drop(agent);

    // A quick reconnect keeps the chat: it is sent again as assigned.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut agent = app.agent_ws(&token).await;
    let held = agent.expect_type("assigned").await;
    let id = held["conversation"]["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(900)).await;
    agent
        .send(json!({"type":"send","conversation_id":id,"client_msg_id":"x","text":"still here"}))
        .await;
    agent.expect_type("receipt").await;
    customer.expect_text("still here").await;

    // Gone for longer than the grace period: back to the head of the queue, and the next agent gets it.
    agent.close().await;
    let notice = customer
        .expect("requeue notice", |f| {
            f["sender"] == "system" && f["text"].as_str().unwrap().contains("queue")
        })
        .await;
    assert_eq!(notice["type"], "message");
    let (_, other_token) = app.create_agent("Steady", &["general"], 5).await;
    let mut other = app.agent_ws(&other_token).await;
    assert_eq!(
        other.expect_type("assigned").await["conversation"]["id"],
        id.as_str()
    );
    let (_, detail) = app
        .admin_get(&format!("/v1/tenants/acme/conversations/{id}"))
        .await;
    let requeued = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "requeued")
        .cloned()
        .unwrap();
    assert_eq!(requeued["reason"], "agent disconnected");
}

#[tokio::test]
async fn going_away_hands_chats_back_to_the_head_of_the_queue() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_agent("Away", &["general"], 1).await;
    let mut agent = app.agent_ws(&token).await;
    let _early = customer_says(&app, "early").await;
    agent.expect_type("assigned").await;
    let _late = customer_says(&app, "late").await;
    agent.send(json!({"type":"status","status":"away"})).await;
    assert_eq!(agent.expect_type("unassigned").await["reason"], "requeued");
    // The requeued chat is ahead of the one that was already waiting.
    let (_, other_token) = app.create_agent("Next", &["general"], 1).await;
    let mut other = app.agent_ws(&other_token).await;
    assert_eq!(first_text(&other.expect_type("assigned").await), "early");
    // Coming back online picks up the remaining chat.
    agent.send(json!({"type":"status","status":"online"})).await;
    assert_eq!(first_text(&agent.expect_type("assigned").await), "late");
}

/// Business hours (tenant settings, applied by the built-in routing): out of hours a handoff
/// still queues and the customer is told when to expect an answer, or, when the tenant chose
/// `reject`, the chat stays with the bot and the customer gets the message.
#[tokio::test]
async fn out_of_hours_the_customer_is_told_and_the_chat_queues_or_stays() {
    let app = TestApp::spawn().await;
    let closed = |mode: &str| {
        json!({ "business_hours": {
            // No span: closed all week.
            "enabled": true, "weekly": [], "out_of_hours": mode,
            "message": "We open at 9. 我们 9 点上班。"
        }})
    };
    let set = |body: serde_json::Value| {
        app.http
            .patch(app.url("/v1/tenants/acme/settings"))
            .bearer_auth(&app.admin_key)
            .json(&body)
            .send()
    };
    assert_eq!(set(closed("queue")).await.unwrap().status(), 200);
    let mut customer = customer_says(&app, "hello?").await;
    let told = customer
        .expect("the out-of-hours message", |frame| {
            frame["type"] == "message" && frame["sender"] == "system"
        })
        .await;
    assert_eq!(told["text"], "We open at 9. 我们 9 点上班。");
    assert_eq!(customer.expect_type("queue").await["position"], 1);

    assert_eq!(set(closed("reject")).await.unwrap().status(), 200);
    let mut other = customer_says(&app, "anyone there?").await;
    let told = other
        .expect("the out-of-hours message", |frame| {
            frame["type"] == "message" && frame["sender"] == "system"
        })
        .await;
    assert_eq!(told["text"], "We open at 9. 我们 9 点上班。");
    let (_, queued) = app
        .admin_get("/v1/tenants/acme/conversations?state=queued")
        .await;
    assert_eq!(
        queued["conversations"].as_array().unwrap().len(),
        1,
        "only the first queued"
    );

    // Open all week: no message, straight to the queue.
    let open = json!({ "business_hours": { "weekly": [{
        "days": ["mon","tue","wed","thu","fri","sat","sun"], "open": "00:00", "close": "24:00"
    }]}});
    assert_eq!(set(open).await.unwrap().status(), 200);
    let mut third = customer_says(&app, "hi").await;
    assert_eq!(third.expect_type("queue").await["position"], 2);
    // Bad hours are refused.
    let bad = json!({ "business_hours": { "weekly": [{ "days": ["mon"], "open": "18:00", "close": "09:00" }]}});
    let response = set(bad).await.unwrap();
    assert_eq!(response.status(), 400);
    customer.close().await;
    other.close().await;
}
