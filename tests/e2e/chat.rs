//! A customer and an agent talk; reconnects resume with nothing lost or duplicated.

use std::time::Duration;

use serde_json::{json, Value};
use switchboard_tests::{TestApp, WsClient};

#[tokio::test]
async fn customer_and_agent_talk_both_ways() {
    let app = TestApp::spawn().await;
    let (_, agent_token) = app.create_agent("Alice", &["general"], 3).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let visitor = app.visitor().await;
    let mut customer = app.customer_ws(&visitor).await;

    customer
        .send(json!({"type":"send","client_msg_id":"c1","text":"hello, my parcel is late"}))
        .await;
    let receipt = customer.expect_type("receipt").await;
    let own = customer.expect_text("hello, my parcel is late").await;
    assert_eq!(own["sender"], "customer");
    assert_eq!(own["seq"], 1);
    // The first message's receipt names the conversation it opened.
    assert_eq!(
        receipt,
        json!({"type":"receipt","client_msg_id":"c1","conversation_id":own["conversation_id"],"seq":1})
    );

    let assigned = agent.expect_type("assigned").await;
    let conversation_id = assigned["conversation"]["id"].as_str().unwrap().to_owned();
    assert_eq!(assigned["conversation"]["state"], "assigned");
    assert_eq!(assigned["messages"][0]["text"], "hello, my parcel is late");
    let joined = customer
        .expect("matching frame", |f| f["sender"] == "system")
        .await;
    assert!(joined["text"].as_str().unwrap().contains("Alice"));

    agent.send(json!({"type":"send","conversation_id":conversation_id,"client_msg_id":"a1","text":"sorry! let me check"})).await;
    let agent_receipt = agent.expect_type("receipt").await;
    assert_eq!(agent_receipt["conversation_id"], conversation_id.as_str());
    let reply = customer.expect_text("sorry! let me check").await;
    assert_eq!(reply["sender"], "agent");
    assert_eq!(reply["conversation_id"], conversation_id.as_str());
    assert!(reply["at"].as_str().unwrap().ends_with('Z'));

    customer.send(json!({"type":"typing"})).await;
    agent
        .expect("matching frame", |f| {
            f["type"] == "typing" && f["conversation_id"] == conversation_id.as_str()
        })
        .await;
    customer
        .send(json!({"type":"send","client_msg_id":"c2","text":"thanks"}))
        .await;
    let live = agent.expect_text("thanks").await;
    assert_eq!(live["sender"], "customer");

    // The whole exchange is in the transcript, in seq order, once each.
    let (status, body) = app
        .admin_get(&format!(
            "/v1/tenants/acme/conversations/{conversation_id}/messages"
        ))
        .await;
    assert_eq!(status, 200);
    let seqs: Vec<i64> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn resent_client_message_is_stored_once_with_the_same_seq() {
    let app = TestApp::spawn().await;
    let visitor = app.visitor().await;
    let mut customer = app.customer_ws(&visitor).await;
    customer
        .send(json!({"type":"send","client_msg_id":"same","text":"one"}))
        .await;
    let first = customer.expect_type("receipt").await;
    customer
        .send(json!({"type":"send","client_msg_id":"same","text":"one"}))
        .await;
    let second = customer.expect_type("receipt").await;
    assert_eq!(first, second);
    // Over the other transport as well.
    let response = app
        .http
        .post(app.url("/v1/web/messages"))
        .bearer_auth(&visitor)
        .json(&json!({"client_msg_id":"same","text":"one"}))
        .send()
        .await
        .unwrap();
    let third: serde_json::Value = response.json().await.unwrap();
    assert_eq!(third, first);
    let (_, list) = app.admin_get("/v1/tenants/acme/conversations").await;
    let id = list["conversations"][0]["id"].as_str().unwrap().to_owned();
    let (_, body) = app
        .admin_get(&format!("/v1/tenants/acme/conversations/{id}/messages"))
        .await;
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn reconnecting_customer_resumes_without_loss_or_duplicates() {
    let app = TestApp::spawn().await;
    let (_, agent_token) = app.create_agent("Bob", &["general"], 3).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let visitor = app.visitor().await;
    let mut customer = app.customer_ws(&visitor).await;
    customer
        .send(json!({"type":"send","client_msg_id":"c1","text":"first"}))
        .await;
    customer.expect_text("first").await;
    let assigned = agent.expect_type("assigned").await;
    let conversation_id = assigned["conversation"]["id"].as_str().unwrap().to_owned();
    let joined = customer
        .expect("matching frame", |f| f["sender"] == "system")
        .await;
    let last_seen = joined["seq"].as_i64().unwrap();
    customer.close().await;

    // While the customer is away, the agent writes three messages.
    for index in 0..3 {
        agent
            .send(json!({"type":"send","conversation_id":conversation_id,"client_msg_id":format!("a{index}"),"text":format!("reply {index}")}))
            .await;
        agent.expect_type("receipt").await;
    }

    // A new connection resumes from the last seq it showed: it gets exactly the missed ones.
    let mut customer = app.customer_ws(&visitor).await;
    customer
        .send(json!({"type":"resume","last_seq":last_seen}))
        .await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(customer.expect_type("message").await);
    }
    let texts: Vec<&str> = got.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["reply 0", "reply 1", "reply 2"]);
    let seqs: Vec<i64> = got.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [last_seen + 1, last_seen + 2, last_seen + 3]);
    // Nothing more, nothing twice; and live delivery continues after the resume.
    assert!(customer
        .drain(Duration::from_millis(300))
        .await
        .iter()
        .all(|f| f["type"] != "message"));
    agent.send(json!({"type":"send","conversation_id":conversation_id,"client_msg_id":"a9","text":"live again"})).await;
    let live = customer.expect_text("live again").await;
    assert_eq!(live["seq"], last_seen + 4);

    // A resume from 0 replays the whole conversation in order.
    customer.send(json!({"type":"resume","last_seq":0})).await;
    let mut all = Vec::new();
    for _ in 0..(last_seen + 4) {
        all.push(
            customer.expect_type("message").await["seq"]
                .as_i64()
                .unwrap(),
        );
    }
    assert_eq!(all, (1..=last_seen + 4).collect::<Vec<_>>());
}

#[tokio::test]
async fn session_token_resumes_the_same_visitor() {
    let app = TestApp::spawn().await;
    let (token, first) = app.visitor_in("acme").await;
    let mut customer = app.customer_ws(&token).await;
    customer
        .send(json!({"type":"send","client_msg_id":"c1","text":"remember me"}))
        .await;
    customer.expect_type("receipt").await;
    let again: serde_json::Value = app
        .http
        .post(app.url("/v1/web/session"))
        .json(&json!({"tenant":"acme","token":token}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["visitor_id"], first["visitor_id"]);
    assert!(again["conversation_id"]
        .as_str()
        .unwrap()
        .starts_with("cv_"));
    let bad = app
        .http
        .post(app.url("/v1/web/session"))
        .json(&json!({"tenant":"acme","token":"v1.bad.token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let missing = app
        .http
        .post(app.url("/v1/web/session"))
        .json(&json!({"tenant":"nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
}

#[tokio::test]
async fn closed_conversation_reopens_on_the_next_customer_message() {
    let app = TestApp::spawn().await;
    let (_, agent_token) = app.create_agent("Carol", &["general"], 3).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let mut customer = app.customer_ws(&app.visitor().await).await;
    customer
        .send(json!({"type":"send","client_msg_id":"c1","text":"question"}))
        .await;
    let id = agent.expect_type("assigned").await["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    agent
        .send(json!({"type":"close","conversation_id":id}))
        .await;
    let unassigned = agent.expect_type("unassigned").await;
    assert_eq!(unassigned["reason"], "closed");
    customer
        .expect("matching frame", |f| {
            f["sender"] == "system" && f["text"].as_str().unwrap().contains("closed")
        })
        .await;
    agent
        .send(json!({"type":"send","conversation_id":id,"client_msg_id":"late","text":"too late"}))
        .await;
    assert_eq!(agent.expect_type("error").await["code"], "not_assigned");

    customer
        .send(json!({"type":"send","client_msg_id":"c2","text":"one more thing"}))
        .await;
    let reassigned = agent.expect_type("assigned").await;
    assert_eq!(reassigned["conversation"]["id"], id.as_str());
    let (_, detail) = app
        .admin_get(&format!("/v1/tenants/acme/conversations/{id}"))
        .await;
    let kinds: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["created", "queued", "assigned", "closed", "reopened", "queued", "assigned"]
    );
}

/// A human-first tenant with customer rate limits out of the way, a customer whose first message
/// ("first", receipt returned) is assigned to an agent; and that conversation's id.
async fn chatting_without_rate_limits() -> (TestApp, WsClient, WsClient, Value, String) {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .admin_put(
            "/v1/tenants/acme/settings",
            "application/json",
            serde_json::to_vec(&json!({"work_mode": "human_first",
                "limits": {"customer": {"per_second": 1000, "burst": 1000},
                    "agent": {"per_second": 1000, "burst": 1000}}}))
            .unwrap(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, agent_token) = app.create_agent("Alice", &["general"], 3).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let mut customer = app.customer_ws(&app.visitor().await).await;
    customer
        .send(json!({"type":"send","client_msg_id":"c0","text":"first"}))
        .await;
    let first = customer.expect_type("receipt").await;
    let assigned = agent.expect_type("assigned").await;
    let conversation_id = assigned["conversation"]["id"].as_str().unwrap().to_owned();
    (app, customer, agent, first, conversation_id)
}

/// The next `count` receipts and errors on a connection, in the order they came.
async fn answers(ws: &mut WsClient, count: usize) -> Vec<Value> {
    let mut answers = Vec::with_capacity(count);
    while answers.len() < count {
        let frame = ws
            .expect("receipt or error", |f| {
                f["type"] == "receipt" || f["type"] == "error"
            })
            .await;
        answers.push(frame);
    }
    answers
}

/// The texts of the next `count` messages from `sender` on a connection.
async fn texts_from(ws: &mut WsClient, sender: &str, count: usize) -> Vec<String> {
    let mut texts = Vec::with_capacity(count);
    while texts.len() < count {
        let frame = ws
            .expect(sender, |f| f["type"] == "message" && f["sender"] == sender)
            .await;
        texts.push(frame["text"].as_str().unwrap().to_owned());
    }
    texts
}

/// A customer may send without waiting for receipts: the messages are stored in the order sent,
/// each receipt (or refusal) comes back in that order, and the agent gets them in order.
#[tokio::test]
async fn a_burst_of_sends_is_stored_and_answered_in_order() {
    let (_app, mut customer, mut agent, first, _) = chatting_without_rate_limits().await;

    // More frames than a connection has on its way at once; the 20th is refused (empty).
    for index in 1..=80 {
        let text = if index == 20 {
            String::new()
        } else {
            format!("m{index}")
        };
        customer
            .send(json!({"type":"send","client_msg_id":format!("c{index}"),"text":text}))
            .await;
    }
    let answers = answers(&mut customer, 80).await;
    let mut seq = first["seq"].as_i64().unwrap();
    for (index, answer) in (1..=80).zip(&answers) {
        if index == 20 {
            assert_eq!(answer["type"], "error", "{answer}");
            assert_eq!(answer["code"], "empty_text");
            continue;
        }
        assert_eq!(answer["client_msg_id"], format!("c{index}"), "{answers:#?}");
        // The agent joined (a system message) between the first message and these.
        if index == 1 {
            seq = answer["seq"].as_i64().unwrap();
            assert!(seq > first["seq"].as_i64().unwrap());
        } else {
            seq += 1;
            assert_eq!(answer["seq"], seq);
        }
    }
    let delivered = texts_from(&mut agent, "customer", 79).await;
    let expected: Vec<String> = (1..=80)
        .filter(|index| *index != 20)
        .map(|index| format!("m{index}"))
        .collect();
    assert_eq!(delivered, expected);
}

/// An agent may send without waiting for receipts too: receipts (and refusals) come back in the
/// order sent, the customer gets the replies in that order, and a close sent right behind the
/// burst closes the chat only once every reply is stored.
#[tokio::test]
async fn an_agents_burst_is_stored_in_order_and_a_close_behind_it_waits_for_it() {
    let (_app, mut customer, mut agent, _, conversation_id) = chatting_without_rate_limits().await;
    for index in 1..=50 {
        let text = if index == 10 {
            String::new()
        } else {
            format!("r{index}")
        };
        agent
            .send(json!({"type":"send","conversation_id":conversation_id,
                "client_msg_id":format!("a{index}"),"text":text}))
            .await;
    }
    agent
        .send(json!({"type":"close","conversation_id":conversation_id}))
        .await;
    let answers = answers(&mut agent, 50).await;
    let mut seq = None;
    for (index, answer) in (1..=50).zip(&answers) {
        if index == 10 {
            assert_eq!(answer["code"], "empty_text", "{answer}");
            assert_eq!(answer["conversation_id"], conversation_id.as_str());
            continue;
        }
        assert_eq!(answer["client_msg_id"], format!("a{index}"), "{answers:#?}");
        let this = answer["seq"].as_i64().unwrap();
        if let Some(previous) = seq {
            assert_eq!(this, previous + 1, "{answers:#?}");
        }
        seq = Some(this);
    }
    let replies = texts_from(&mut customer, "agent", 49).await;
    let expected: Vec<String> = (1..=50)
        .filter(|index| *index != 10)
        .map(|index| format!("r{index}"))
        .collect();
    assert_eq!(replies, expected);
    let closing = customer
        .expect("the closing notice", |f| {
            f["type"] == "message" && f["sender"] == "system"
        })
        .await;
    assert!(closing["seq"].as_i64().unwrap() > seq.unwrap(), "{closing}");
}

/// A customer who sends a burst and goes away at once: every message the server stored reaches
/// the agent, in order (frames still in flight when the connection died may be lost, unstored
/// and unacknowledged, for the client to resend).
#[tokio::test]
async fn a_burst_sent_just_before_leaving_still_reaches_the_agent() {
    let (app, mut customer, mut agent, _, conversation_id) = chatting_without_rate_limits().await;
    for index in 1..=20 {
        customer
            .send(json!({"type":"send","client_msg_id":format!("c{index}"),"text":format!("m{index}")}))
            .await;
    }
    customer.close().await;
    // Whatever was stored arrives live, in order; nothing else does.
    let mut delivered = Vec::new();
    while let Ok(frame) = agent.next_within(std::time::Duration::from_secs(2)).await {
        if frame["type"] == "message" && frame["sender"] == "customer" {
            delivered.push(frame["text"].as_str().unwrap().to_owned());
        }
    }
    let (_, body) = app
        .admin_get(&format!(
            "/v1/tenants/acme/conversations/{conversation_id}/messages"
        ))
        .await;
    let stored: Vec<String> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["sender"] == "customer" && m["text"] != "first")
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(!stored.is_empty());
    assert_eq!(delivered, stored);
    let expected: Vec<String> = (1..=stored.len())
        .map(|index| format!("m{index}"))
        .collect();
    assert_eq!(stored, expected);
}
