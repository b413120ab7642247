//! Supervisors over real HTTP and WebSockets: the live view follows a chat from the queue to an
//! agent; a private note reaches the agent and never the customer; a supervisor transfers a
//! chat and takes one over, then works it in the agent console.

use std::time::Duration;

use serde_json::{json, Value};
use store::MemberRole;
use switchboard_tests::{TestApp, WsClient};

async fn live_frame(live: &mut WsClient, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
    live.expect(what, |frame| {
        frame["type"] == "live" && matches(&frame["view"])
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_watches_notes_transfers_and_takes_over() {
    let app = TestApp::spawn().await;
    let password = app
        .add_member("acme", "sup@acme.example", MemberRole::Supervisor)
        .await;
    let supervisor = app
        .sign_in("acme", "sup@acme.example", &password)
        .await
        .expect("signs in");
    let live_url = app.ws_url("/v1/tenants/acme/live/ws");
    // Another site's page cannot open the live view, even with the cookie.
    let host = app.server.addr.to_string();
    let evil = WsClient::connect_with(
        &live_url,
        &[
            ("cookie", &supervisor.cookie),
            ("origin", "https://evil.example"),
        ],
    )
    .await;
    assert!(evil.is_err(), "a foreign origin is refused");
    assert!(
        WsClient::connect(&live_url).await.is_err(),
        "no session, no live view"
    );
    let origin = format!("http://{host}");
    let mut live = WsClient::connect_with(
        &live_url,
        &[("cookie", &supervisor.cookie), ("origin", &origin)],
    )
    .await
    .expect("live view");
    live_frame(&mut live, "an empty tenant", |view| {
        view["conversations"].as_array().is_some_and(Vec::is_empty)
    })
    .await;

    // A chat arrives in the queue.
    let mut customer = app.customer_ws(&app.visitor().await).await;
    customer
        .send(json!({"type":"send","client_msg_id":"c1","text":"my parcel is late"}))
        .await;
    let view = live_frame(&mut live, "the chat queued", |view| {
        view["queues"][0]["waiting"] == 1
    })
    .await;
    assert_eq!(view["view"]["queues"][0]["skill_group"], "general");
    assert_eq!(view["view"]["conversations"][0]["state"], "queued");
    assert!(view["view"]["conversations"][0]["waiting_since"].is_i64());
    let conversation = view["view"]["conversations"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // An agent comes online and takes it.
    let (agent_id, token) = app.create_agent("Dana", &["general"], 2).await;
    let mut agent = app.agent_ws(&token).await;
    agent.expect_type("assigned").await;
    let view = live_frame(&mut live, "the chat assigned", |view| {
        view["conversations"][0]["state"] == "assigned"
    })
    .await;
    let dana = view["view"]["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == agent_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(
        (dana["status"].as_str(), dana["load"].as_i64()),
        (Some("online"), Some(1))
    );

    // A private note: the agent sees it, the customer never does.
    let (status, body) = supervisor
        .post(
            &format!("/v1/tenants/acme/conversations/{conversation}/notes"),
            json!({ "text": "VIP: offer express shipping" }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let note = agent.expect_type("note").await;
    assert_eq!(note["text"], "VIP: offer express shipping");
    assert_eq!(note["author"], "sup@acme.example");
    let (status, _) = supervisor
        .post(
            &format!("/v1/tenants/acme/conversations/{conversation}/notes"),
            json!({ "text": "   " }),
        )
        .await;
    assert_eq!(status, 400);

    // A transfer to a skill nobody serves is refused (the chat would be stranded).
    let (status, body) = supervisor
        .post(
            &format!("/v1/tenants/acme/conversations/{conversation}/transfer"),
            json!({ "to": "skill:nobody" }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("unknown_skill"))
    );

    // The supervisor takes it over and works it in the agent console, with the note.
    let (status, taken) = supervisor
        .post(
            &format!("/v1/tenants/acme/conversations/{conversation}/takeover"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{taken}");
    let unassigned = agent.expect_type("unassigned").await;
    assert_eq!(unassigned["reason"], "taken_over");
    let console_url = taken["agent_console_url"].as_str().unwrap();
    let supervisor_token = console_url.trim_start_matches("/console#token=");
    let mut console = app.agent_ws(supervisor_token).await;
    let assigned = console.expect_type("assigned").await;
    assert_eq!(assigned["conversation"]["id"], conversation.as_str());
    assert_eq!(
        assigned["conversation"]["notes"][0]["text"],
        "VIP: offer express shipping"
    );
    console
        .send(json!({"type":"send","conversation_id":conversation,"client_msg_id":"s1","text":"I'm the team lead, let me help."}))
        .await;
    customer
        .expect_text("I'm the team lead, let me help.")
        .await;
    let frames = customer.drain(Duration::from_millis(300)).await;
    let everything = format!("{frames:?}");
    assert!(!everything.contains("express shipping"), "{everything}");
    let (_, notes) = supervisor
        .get(&format!(
            "/v1/tenants/acme/conversations/{conversation}/notes"
        ))
        .await;
    assert_eq!(notes["notes"].as_array().unwrap().len(), 1);
    // The customer's own history never holds the note either.
    let (_, messages) = app
        .admin_get(&format!(
            "/v1/tenants/acme/conversations/{conversation}/messages"
        ))
        .await;
    assert!(!messages.to_string().contains("express shipping"));

    // Every supervisor action is in the audit log.
    let admin_password = app
        .add_member("acme", "ops@acme.example", MemberRole::Admin)
        .await;
    let admin = app
        .sign_in("acme", "ops@acme.example", &admin_password)
        .await
        .unwrap();
    let (_, audit) = admin.get("/v1/tenants/acme/audit?actor=sup@").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "POST conversations/{id}/takeover",
            "POST conversations/{id}/notes",
            "POST auth/login"
        ]
    );
    live.close().await;
}
