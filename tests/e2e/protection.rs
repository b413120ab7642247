//! Protection: rate limits per customer, agent, IP and tenant (nothing accepted is dropped), and
//! bot work shed under backlog while human conversations keep flowing.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchboard_tests::{TestApp, WsClient};

async fn set_settings(app: &TestApp, settings: Value) {
    let (status, body) = app
        .admin_put(
            "/v1/tenants/acme/settings",
            "application/json",
            serde_json::to_vec(&settings).unwrap(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn stored_texts(app: &TestApp, conversation_id: &str) -> Vec<String> {
    let (_, body) = app
        .admin_get(&format!(
            "/v1/tenants/acme/conversations/{conversation_id}/messages"
        ))
        .await;
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["sender"] == "customer")
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.metrics_text().await;
    text.lines()
        .find(|line| line.starts_with(name) && line[name.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

#[tokio::test]
async fn customers_and_agents_over_their_rate_get_told_when_to_retry_and_nothing_is_lost() {
    let app = TestApp::spawn().await;
    set_settings(
        &app,
        json!({"work_mode": "human_first", "limits": {
            "customer": {"per_second": 2, "burst": 3},
            "agent": {"per_second": 1, "burst": 2},
        }}),
    )
    .await;
    let (_, agent_token) = app.create_agent("Alice", &["general"], 2).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let visitor = app.visitor().await;
    let mut customer = app.customer_ws(&visitor).await;
    for index in 0..5 {
        customer
            .send(json!({"type":"send","client_msg_id":format!("c{index}"),"text":format!("message {index}")}))
            .await;
    }
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    while accepted.len() + refused.len() < 5 {
        let frame = customer.next().await;
        match frame["type"].as_str() {
            Some("receipt") => accepted.push(frame["client_msg_id"].as_str().unwrap().to_owned()),
            Some("error") => refused.push(frame),
            _ => {}
        }
    }
    assert_eq!(accepted, ["c0", "c1", "c2"], "the burst is accepted");
    assert_eq!(refused.len(), 2);
    for frame in &refused {
        assert_eq!(frame["code"], "rate_limited");
        assert!(frame["retry_after_ms"].as_u64().unwrap() > 0, "{frame}");
    }
    // The socket stays open; after the wait the same message goes through.
    let wait = refused[0]["retry_after_ms"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(wait + 50)).await;
    customer
        .send(json!({"type":"send","client_msg_id":"c3","text":"message 3"}))
        .await;
    customer
        .expect("receipt", |f| {
            f["type"] == "receipt" && f["client_msg_id"] == "c3"
        })
        .await;

    let assigned = agent.expect_type("assigned").await;
    let id = assigned["conversation"]["id"].as_str().unwrap().to_owned();
    let mut stored = Vec::new();
    for _ in 0..50 {
        stored = stored_texts(&app, &id).await;
        if stored.len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored, ["message 0", "message 1", "message 2", "message 3"]);

    // HTTP gets 429 with Retry-After.
    let mut statuses = Vec::new();
    for index in 0..6 {
        let response = app
            .http
            .post(app.url("/v1/web/messages"))
            .bearer_auth(&visitor)
            .json(&json!({"client_msg_id": format!("h{index}"), "text": "over http"}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert!(response.headers().get("retry-after").is_some());
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["code"], "rate_limited");
        }
    }
    assert!(statuses.contains(&429), "{statuses:?}");

    // Agents too.
    for index in 0..4 {
        agent
            .send(json!({"type":"send","conversation_id":id,"client_msg_id":format!("a{index}"),"text":"reply"}))
            .await;
    }
    let limited = agent
        .expect("rate limited", |f| {
            f["type"] == "error" && f["code"] == "rate_limited"
        })
        .await;
    assert_eq!(limited["conversation_id"], id.as_str());
    assert!(metric(&app, "switchboard_rate_limited_total{scope=\"customer\"}").await >= 2.0);
    // The rest of /metrics follows what happened.
    assert_eq!(
        metric(&app, "switchboard_connections{kind=\"agent\"}").await,
        1.0
    );
    assert_eq!(
        metric(&app, "switchboard_connections{kind=\"web\"}").await,
        1.0
    );
    assert!(metric(&app, "switchboard_messages_total{sender=\"customer\"}").await >= 4.0);
    assert_eq!(metric(&app, "switchboard_assignments_total").await, 1.0);
    assert!(metric(&app, "switchboard_store_append_seconds_count").await >= 4.0);
}

#[tokio::test]
async fn session_creation_is_limited_per_ip() {
    let app = TestApp::spawn_with(|settings| {
        settings.limits.sessions =
            serde_json::from_value(json!({"per_second": 1, "burst": 3})).unwrap();
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = app
            .http
            .post(app.url("/v1/web/session"))
            .json(&json!({"tenant": "acme"}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
}

/// Reads frames until one from `sender` with `text` arrives; returns the time it took.
async fn time_until(ws: &mut WsClient, text: &str, started: Instant) -> Duration {
    ws.expect_text(text).await;
    started.elapsed()
}

#[tokio::test]
async fn a_flood_of_bot_turns_is_shed_while_human_conversations_keep_flowing() {
    let app = TestApp::spawn_bot_first_with(|settings| {
        settings.bot.workers = 1;
        settings.bot.queue_per_worker = 8;
        settings.bot.shed_depth = 4;
    })
    .await;
    set_settings(
        &app,
        json!({"limits": {"customer": {"per_second": 100, "burst": 100}}}),
    )
    .await;
    // A human conversation first: the customer asks for a person and gets one.
    let (_, agent_token) = app.create_agent("Alice", &["*"], 5).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let token = app.visitor().await;
    let mut human = app.customer_ws(&token).await;
    human
        .send(json!({"type":"send","client_msg_id":"h0","text":"转人工"}))
        .await;
    let assigned = agent.expect_type("assigned").await;
    let human_id = assigned["conversation"]["id"].as_str().unwrap().to_owned();

    // The flood: many customers ask the bot at once.
    let mut flood = Vec::new();
    for index in 0..30 {
        let token = app.visitor().await;
        let mut ws = app.customer_ws(&token).await;
        ws.send(
            json!({"type":"send","client_msg_id":"q","text":format!("运费怎么算？第{index}次")}),
        )
        .await;
        flood.push(ws);
    }
    // Meanwhile the human conversation goes on, both ways, with nothing lost.
    let mut worst = Duration::ZERO;
    for index in 0..10 {
        let text = format!("customer says {index}");
        let started = Instant::now();
        human
            .send(json!({"type":"send","client_msg_id":format!("h{}", index + 1),"text":text}))
            .await;
        worst = worst.max(time_until(&mut agent, &text, started).await);
        let reply = format!("agent says {index}");
        let started = Instant::now();
        agent
            .send(json!({"type":"send","conversation_id":human_id,"client_msg_id":format!("a{index}"),"text":reply}))
            .await;
        worst = worst.max(time_until(&mut human, &reply, started).await);
    }
    assert!(
        worst < Duration::from_secs(2),
        "human messages waited {worst:?}"
    );
    let stored = stored_texts(&app, &human_id).await;
    assert_eq!(
        stored.len(),
        11,
        "every human message stored once: {stored:?}"
    );

    // Every flooded customer got exactly one bot reply: an answer or the busy reply.
    let mut shed = 0;
    for ws in &mut flood {
        let reply = ws.expect("bot reply", |f| f["sender"] == "bot").await;
        if reply["text"].as_str().unwrap().contains("转人工") {
            shed += 1;
        }
    }
    assert!(shed > 0, "some bot turns were shed");
    assert!(shed < 30, "the workers answered some turns");
    assert!(metric(&app, "switchboard_bot_shed_total").await >= shed as f64);

    // The backlog drains and shedding ends (hysteresis): the bot answers again.
    let started = Instant::now();
    while metric(&app, "switchboard_bot_queue_depth").await > 0.0 {
        assert!(started.elapsed() < Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token = app.visitor().await;
    let mut late = app.customer_ws(&token).await;
    late.send(json!({"type":"send","client_msg_id":"q","text":"运费怎么算？"}))
        .await;
    let reply = late.expect("bot reply", |f| f["sender"] == "bot").await;
    assert!(reply["text"].as_str().unwrap().contains("99"), "{reply}");
    assert_eq!(metric(&app, "switchboard_bot_shedding").await, 0.0);
}

/// The wait threshold alone: once the backlog makes turns wait longer than `shed_wait_ms`, new
/// turns are shed. 124 turns arrive for one worker, in a burst of 120 and four more 20 ms later;
/// the depth threshold (256) is out of their reach, so every shed turn was shed for the wait.
/// Some are shed either way: the late four when the burst came at once (it takes far longer
/// than 20 ms to answer), or the burst's own tail when a loaded machine spread it over more than
/// 5 ms. Every customer gets exactly one reply: the answer, or the busy reply with the way to a
/// person.
#[tokio::test]
async fn bot_turns_that_would_wait_too_long_are_shed() {
    let app = TestApp::spawn_bot_first_with(|settings| {
        settings.bot.workers = 1;
        settings.bot.queue_per_worker = 256;
        settings.bot.shed_depth = 256;
        settings.bot.shed_wait_ms = 5;
        settings.limits.sessions =
            serde_json::from_value(json!({"per_second": 1000, "burst": 1000})).unwrap();
    })
    .await;
    let mut sockets = Vec::new();
    let mut customers = Vec::new();
    for _ in 0..124 {
        let (token, session) = app.visitor_in("acme").await;
        let id = session["customer_id"].as_str().unwrap();
        customers.push(
            app.server
                .state
                .store
                .customer("acme", id)
                .await
                .unwrap()
                .unwrap(),
        );
        sockets.push(app.customer_ws(&token).await);
    }
    // In process, so each wave arrives at once (over the sockets of a loaded machine the turns
    // could trickle in no faster than the worker answers them).
    // Every text distinct, so the encoder's cache speeds up no turn.
    let send = |wave: std::ops::Range<usize>| {
        let chat = app.server.state.chat.clone();
        let sends = wave.map(|index| {
            let (chat, customer) = (chat.clone(), customers[index].clone());
            async move {
                chat.customer_send(&customer, "q", &format!("运费怎么算？第{index}次"), None)
                    .await
                    .is_ok()
            }
        });
        futures_util::future::join_all(sends)
    };
    assert!(send(0..120).await.into_iter().all(|stored| stored));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(send(120..124).await.into_iter().all(|stored| stored));

    let mut replies = Vec::new();
    for ws in &mut sockets {
        let reply = ws.expect("bot reply", |f| f["sender"] == "bot").await;
        let more = ws.drain(Duration::from_millis(20)).await;
        assert!(
            more.iter().all(|f| f["sender"] != "bot"),
            "one reply each: {more:?}"
        );
        let text = reply["text"].as_str().unwrap().to_owned();
        assert!(text.contains("99") || text.contains("转人工"), "{text}");
        replies.push(text.contains("99"));
    }
    assert!(
        replies.iter().any(|answered| *answered),
        "the first turns were answered"
    );
    let shed = replies.iter().filter(|answered| !**answered).count();
    assert!(shed > 0, "turns were shed for their wait: {replies:?}");
    assert_eq!(
        metric(&app, "switchboard_bot_shed_total").await,
        shed as f64
    );
}

/// With `metrics_token` set, `/metrics` (tenant names, queues) answers only a scraper that
/// brings the token, even on this machine.
#[tokio::test]
async fn metrics_need_the_configured_token() {
    let app = TestApp::spawn_with(|settings| {
        settings.metrics_token = Some("scrape-me".into());
    })
    .await;
    let get = |token: Option<&str>| {
        let mut request = app.http.get(app.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap() }
    };
    assert_eq!(get(None).await.status(), 401);
    assert_eq!(get(Some("guess")).await.status(), 401);
    let response = get(Some("scrape-me")).await;
    assert_eq!(response.status(), 200);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("switchboard_bot_queue_depth"));
}
