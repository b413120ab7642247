//! The long-polling fallback for networks that block WebSockets.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchboard_tests::TestApp;

#[tokio::test]
async fn long_poll_sends_receives_and_holds() {
    let app = TestApp::spawn().await;
    let (_, agent_token) = app.create_agent("Poller", &["general"], 2).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let visitor = app.visitor().await;

    let receipt: Value = app
        .http
        .post(app.url("/v1/web/messages"))
        .bearer_auth(&visitor)
        .json(&json!({"client_msg_id":"p1","text":"over http"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = agent.expect_type("assigned").await["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        receipt,
        json!({"type":"receipt","client_msg_id":"p1","conversation_id":id,"seq":1})
    );

    let poll = |after: i64| {
        let request = app
            .http
            .get(app.url(&format!("/v1/web/poll?after={after}")))
            .bearer_auth(&visitor);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let first = poll(0).await;
    let texts: Vec<&str> = first["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["text"].as_str())
        .collect();
    assert_eq!(texts[0], "over http");
    let last = first["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["seq"].as_i64())
        .max()
        .unwrap();

    // A poll with nothing new is held until the agent writes, then answers at once.
    let started = Instant::now();
    let held = tokio::spawn(poll(last));
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent.send(json!({"type":"send","conversation_id":id,"client_msg_id":"a1","text":"answer by poll"})).await;
    let answer = held.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(answer["frames"][0]["text"], "answer by poll");
    assert_eq!(answer["frames"][0]["seq"], last + 1);

    // With nothing at all, the poll ends after the timeout with no frames.
    let started = Instant::now();
    let empty = poll(last + 1).await;
    assert!(started.elapsed() >= Duration::from_millis(2_500));
    assert_eq!(empty["frames"], json!([]));

    // Bad input has codes.
    let response = app
        .http
        .post(app.url("/v1/web/messages"))
        .bearer_auth(&visitor)
        .json(&json!({"client_msg_id":"e","text":""}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "empty_text"
    );
    let response = app
        .http
        .post(app.url("/v1/web/messages"))
        .bearer_auth(&visitor)
        .body("nope")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["code"], "bad_json");
    let response = app.http.get(app.url("/v1/web/poll")).send().await.unwrap();
    assert_eq!(response.status(), 401);
}

/// A conversation of long messages comes back a page of about 64 KiB at a time (not 200
/// messages of up to 64 KiB each at once); the next poll from the page's last seq has the rest.
#[tokio::test]
async fn long_messages_come_back_in_pages() {
    let app = TestApp::spawn().await;
    let visitor = app.visitor().await;
    let long = "长".repeat(8_000);
    for n in 0..6 {
        let response = app
            .http
            .post(app.url("/v1/web/messages"))
            .bearer_auth(&visitor)
            .json(&json!({"client_msg_id": format!("long{n}"), "text": long}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "message {n}");
    }
    let mut after = 0;
    let mut pages: Vec<usize> = Vec::new();
    while pages.iter().sum::<usize>() < 6 {
        assert!(pages.len() < 6, "pages so far: {pages:?}");
        let page: Value = app
            .http
            .get(app.url(&format!("/v1/web/poll?after={after}")))
            .bearer_auth(&visitor)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let frames = page["frames"].as_array().unwrap();
        pages.push(frames.iter().filter(|f| f["text"] == long.as_str()).count());
        after = frames
            .iter()
            .filter_map(|f| f["seq"].as_i64())
            .max()
            .unwrap_or(after);
    }
    // 24,000 bytes (and a frame's overhead) each: the third crosses 64 KiB.
    assert_eq!(pages[0], 3, "pages: {pages:?}");
    assert_eq!(pages.iter().sum::<usize>(), 6);
}
