//! Cluster mode with real processes: three `switchboard serve` nodes on one PostgreSQL database
//! (a fresh one) and the local Redis. A customer on one node talks to an agent on another; the
//! agent's node is killed with SIGKILL and the agent goes on from a third node with nothing lost
//! or doubled; an assignment storm over all nodes assigns every conversation exactly once; an
//! agent's token reissued on one node closes their console on another.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_relay_survive_a_killed_node_and_never_assign_twice() {
    let cluster = Cluster::new().await;
    let key = cluster.create_tenant();
    let (mut node_a, a) = cluster.node("a");
    let (mut node_b, b) = cluster.node("b");
    let (mut node_c, c) = cluster.node("c");
    let http = reqwest::Client::new();
    let response = http
        .put(format!("http://{a}/v1/tenants/acme/settings"))
        .bearer_auth(&key)
        .json(&json!({"work_mode": "human_first"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // A customer on node A, their agent on node B.
    let token = agent(&http, &a, &key, "Alice", 1).await;
    let mut alice = connect(&format!("ws://{b}/v1/agent/ws?token={token}")).await;
    expect(&mut alice, "hello", |f| f["type"] == "hello").await;
    let customer_token = visitor(&http, &a).await;
    let mut customer = connect(&format!("ws://{a}/v1/web/ws?token={customer_token}")).await;
    send(
        &mut customer,
        json!({"type":"send","client_msg_id":"c1","text":"hello from node a"}),
    )
    .await;
    let assigned = expect(&mut alice, "assigned on node b", |f| {
        f["type"] == "assigned"
    })
    .await;
    let conversation = assigned["conversation"]["id"].as_str().unwrap().to_owned();
    send(&mut alice, json!({"type":"send","conversation_id":conversation,"client_msg_id":"a1","text":"hello from node b"})).await;
    let reply = expect(&mut customer, "the reply across nodes", |f| {
        f["text"] == "hello from node b"
    })
    .await;
    // The reply's trace id follows it across the nodes: stored on B, delivered on A.
    let trace = format!("{conversation}/{}", reply["seq"]);
    node_b.logged("agent message stored", &trace).await;
    let delivered = node_a.logged("delivered", &trace).await;
    assert_eq!(delivered["fields"]["to_agent"], false);

    // Node B dies mid-conversation; the customer keeps writing; Alice goes on from node C.
    node_b.kill();
    for index in 2..5 {
        send(&mut customer, json!({"type":"send","client_msg_id":format!("c{index}"),"text":format!("message {index}")})).await;
        expect(&mut customer, "receipt", |f| f["type"] == "receipt").await;
    }
    let mut alice = connect(&format!("ws://{c}/v1/agent/ws?token={token}")).await;
    let back = expect(&mut alice, "her chat back on node c", |f| {
        f["type"] == "assigned"
    })
    .await;
    assert_eq!(back["conversation"]["id"], conversation.as_str());
    let texts: Vec<&str> = back["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    for needed in [
        "hello from node a",
        "hello from node b",
        "message 2",
        "message 3",
        "message 4",
    ] {
        assert_eq!(
            texts.iter().filter(|t| **t == needed).count(),
            1,
            "{needed} once in {texts:?}"
        );
    }
    send(&mut alice, json!({"type":"send","conversation_id":conversation,"client_msg_id":"a2","text":"still here, from node c"})).await;
    expect(&mut customer, "the reply from node c", |f| {
        f["text"] == "still here, from node c"
    })
    .await;
    // Past the grace period nothing was requeued: no node saw Alice leave for good.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let detail: Value = get_json(
        &http,
        &key,
        &format!("http://{a}/v1/tenants/acme/conversations/{conversation}"),
    )
    .await;
    assert_eq!(detail["conversation"]["state"], "assigned");
    let messages: Value = get_json(
        &http,
        &key,
        &format!("http://{c}/v1/tenants/acme/conversations/{conversation}/messages"),
    )
    .await;
    let seqs: Vec<i64> = messages["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "contiguous, nothing doubled"
    );

    // Assignment storm: an agent on each live node, customers on both, each chat assigned once.
    let mut agents = Vec::new();
    let mut agent_tokens = Vec::new();
    for (name, addr) in [("Bo", &a), ("Cy", &c)] {
        let token = agent(&http, addr, &key, name, 20).await;
        let mut socket = connect(&format!("ws://{addr}/v1/agent/ws?token={token}")).await;
        expect(&mut socket, "hello", |f| f["type"] == "hello").await;
        agents.push(socket);
        agent_tokens.push(token);
    }
    let mut customers = Vec::new();
    for index in 0..16 {
        let addr = if index % 2 == 0 { &a } else { &c };
        let token = visitor(&http, addr).await;
        let mut socket = connect(&format!("ws://{addr}/v1/web/ws?token={token}")).await;
        send(
            &mut socket,
            json!({"type":"send","client_msg_id":"s","text":format!("storm {index}")}),
        )
        .await;
        customers.push(socket);
    }
    let mut assigned = Vec::new();
    let mut held_by_bo: Vec<String> = Vec::new();
    for (index, socket) in agents.iter_mut().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(3);
        while let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            socket.next(),
        )
        .await
        {
            let frame: Value = serde_json::from_str(&text).unwrap();
            if frame["type"] == "assigned" {
                let id = frame["conversation"]["id"].as_str().unwrap().to_owned();
                if index == 0 {
                    held_by_bo.push(id.clone());
                }
                assigned.push(id);
            }
        }
    }
    assert_eq!(
        assigned.len(),
        16,
        "every storm chat assigned: {assigned:?}"
    );
    let mut unique = assigned.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 16, "none assigned twice");
    for id in &unique {
        let detail: Value = get_json(
            &http,
            &key,
            &format!("http://{a}/v1/tenants/acme/conversations/{id}"),
        )
        .await;
        let assignments = detail["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "assigned")
            .count();
        assert_eq!(assignments, 1, "{id}");
    }

    assert!(!held_by_bo.is_empty(), "both agents took part in the storm");

    // Bo's token is reissued through node C: his console on node A is told and closed.
    let bo = get_json(&http, &agent_tokens[0], &format!("http://{c}/v1/agent/me")).await;
    let response = http
        .post(format!(
            "http://{c}/v1/tenants/acme/agents/{}/token",
            bo["id"].as_str().unwrap()
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let revoked = expect(&mut agents[0], "token_revoked on node a", |f| {
        f["type"] == "error"
    })
    .await;
    assert_eq!(revoked["code"], "token_revoked");

    // The tenant's message budget holds across nodes (per second: per_second + burst = 5),
    // although each node alone would let a burst of 4 through.
    let response = http
        .put(format!("http://{a}/v1/tenants/acme/settings"))
        .bearer_auth(&key)
        .json(&json!({"work_mode": "human_first", "limits": {"tenant": {"per_second": 1, "burst": 4}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    tokio::time::sleep(Duration::from_millis(2500)).await; // other nodes' settings caches
    let mut senders = Vec::new();
    for addr in [&a, &c] {
        let token = visitor(&http, addr).await;
        senders.push(connect(&format!("ws://{addr}/v1/web/ws?token={token}")).await);
    }
    // Warm each node's caches (settings, word lists) so the burst below is quick.
    for socket in &mut senders {
        send(
            socket,
            json!({"type":"send","client_msg_id":"warm","text":"warm up"}),
        )
        .await;
        expect(socket, "receipt", |f| f["type"] == "receipt").await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Start right after a second begins, so all eight fall in one window.
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis()
        > 50
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for index in 0..4 {
        for socket in &mut senders {
            send(
                socket,
                json!({"type":"send","client_msg_id":format!("r{index}"),"text":"budget"}),
            )
            .await;
        }
    }
    let (mut accepted, mut refused) = (0, 0);
    for socket in &mut senders {
        for _ in 0..4 {
            let frame = expect(socket, "receipt or refusal", |f| {
                f["type"] == "receipt" || f["type"] == "error"
            })
            .await;
            if frame["type"] == "receipt" {
                accepted += 1;
            } else {
                assert_eq!(frame["code"], "rate_limited");
                refused += 1;
            }
        }
    }
    // Each node alone would take its four (burst 4); the shared budget takes five at most.
    assert!(
        accepted <= 5 && accepted + refused == 8,
        "one budget for the whole cluster: {accepted} accepted"
    );

    // The customer's node dies too: Alice writes while the customer is away; the customer
    // reconnects to node C, resumes from the last seq seen and gets exactly the missed message.
    let last_seen = *seqs.last().unwrap();
    node_a.kill();
    drop(customer);
    send(&mut alice, json!({"type":"send","conversation_id":conversation,"client_msg_id":"a3","text":"while you were away"})).await;
    expect(&mut alice, "receipt", |f| {
        f["type"] == "receipt" && f["client_msg_id"] == "a3"
    })
    .await;
    let mut customer = connect(&format!("ws://{c}/v1/web/ws?token={customer_token}")).await;
    send(
        &mut customer,
        json!({"type":"resume","last_seq": last_seen}),
    )
    .await;
    let missed = expect(&mut customer, "the missed message", |f| {
        f["type"] == "message"
    })
    .await;
    assert_eq!(missed["text"], "while you were away");
    assert_eq!(missed["seq"], last_seen + 1);
    let more = tokio::time::timeout(Duration::from_millis(700), customer.next()).await;
    assert!(
        !matches!(&more, Ok(Some(Ok(Message::Text(text)))) if text.contains("\"message\"")),
        "nothing doubled: {more:?}"
    );

    // Bo was signed out on node A and never comes back: past the grace period his chats go back
    // to the queue and Cy, on the surviving node, takes them.
    let mut cy = agents.pop().unwrap();
    let mut taken: Vec<String> = Vec::new();
    while !held_by_bo.iter().all(|id| taken.contains(id)) {
        let frame = expect(&mut cy, "Bo's chats reassigned", |f| {
            f["type"] == "assigned"
        })
        .await;
        taken.push(frame["conversation"]["id"].as_str().unwrap().to_owned());
    }

    node_c.kill();
    cluster.drop_database().await;
}
