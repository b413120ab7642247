//! The soak run (`scripts/soak.sh`, not part of the test suite): two `switchboard serve` nodes
//! on PostgreSQL and Redis; many visitors write, disconnect, reconnect to any node and resume,
//! resending what was not receipted; agents answer every customer message; halfway through one
//! node is killed (SIGKILL) and a new one started. At the end every message that got a receipt
//! must be stored exactly once. It prints messages sent, receipted, lost and doubled, and each
//! node's peak memory.
//!
//! `SOAK_SECONDS` (default 60) and `SOAK_VISITORS` (default 40) size the run.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The addresses of the nodes that are up now.
type Alive = Arc<Mutex<Vec<String>>>;

fn any_node(alive: &Alive, salt: usize) -> String {
    let alive = alive.lock().unwrap();
    alive[salt % alive.len()].clone()
}

/// Peak resident memory of a process (VmHWM), in KiB.
fn peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// What one visitor sent and got receipts for: client_msg_id → (conversation, seq).
#[derive(Default)]
struct Ledger {
    sent: Vec<String>,
    receipted: HashMap<String, (String, i64)>,
}

/// One visitor until `until`: writes every 150-400 ms, sometimes drops its connection, then
/// reconnects to any node, resumes, and resends what was not receipted.
async fn visitor_loop(index: usize, token: String, alive: Alive, until: Instant) -> Ledger {
    let mut ledger = Ledger::default();
    let mut last_seq = 0;
    let mut round = 0usize;
    while Instant::now() < until {
        round += 1;
        let addr = any_node(&alive, index + round);
        let url = format!("ws://{addr}/v1/web/ws?token={token}");
        let Ok((mut socket, _)) = tokio_tungstenite::connect_async(url.as_str()).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let resume = json!({"type": "resume", "last_seq": last_seq}).to_string();
        if socket.send(Message::Text(resume.into())).await.is_err() {
            continue;
        }
        // Resend whatever is not receipted yet (the server stores each client_msg_id once).
        let pending: Vec<String> = ledger
            .sent
            .iter()
            .filter(|id| !ledger.receipted.contains_key(*id))
            .cloned()
            .collect();
        let mut broken = false;
        for id in pending {
            let frame = json!({"type": "send", "client_msg_id": id, "text": format!("again {id}")});
            if socket
                .send(Message::Text(frame.to_string().into()))
                .await
                .is_err()
            {
                broken = true;
                break;
            }
        }
        // A connection lives for 20 to 60 writes, or until its node dies.
        let writes = 20 + (index * 7 + round * 13) % 40;
        let mut written = 0;
        let mut next_write = Instant::now();
        while !broken && written < writes && Instant::now() < until {
            if Instant::now() >= next_write {
                let id = format!("v{index}-{}", ledger.sent.len());
                ledger.sent.push(id.clone());
                let frame =
                    json!({"type": "send", "client_msg_id": id, "text": format!("hello {id}")});
                if socket
                    .send(Message::Text(frame.to_string().into()))
                    .await
                    .is_err()
                {
                    break;
                }
                written += 1;
                next_write = Instant::now()
                    + Duration::from_millis(150 + ((index * 31 + written * 17) % 250) as u64);
            }
            match tokio::time::timeout(Duration::from_millis(50), socket.next()).await {
                Err(_) => {}
                Ok(Some(Ok(Message::Text(text)))) => {
                    let frame: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    match frame["type"].as_str() {
                        Some("receipt") => {
                            let id = frame["client_msg_id"].as_str().unwrap_or("").to_owned();
                            let conversation =
                                frame["conversation_id"].as_str().unwrap_or("").to_owned();
                            let seq = frame["seq"].as_i64().unwrap_or(0);
                            ledger.receipted.insert(id, (conversation, seq));
                            last_seq = last_seq.max(seq);
                        }
                        Some("message") => {
                            let seq = frame["seq"].as_i64().unwrap_or(0);
                            if seq == last_seq + 1 {
                                last_seq = seq;
                            }
                            let ack = json!({"type": "ack", "seq": last_seq}).to_string();
                            let _ = socket.send(Message::Text(ack.into())).await;
                        }
                        _ => {}
                    }
                }
                Ok(Some(Ok(_))) => {}
                Ok(_) => broken = true,
            }
        }
        let _ = socket.close(None).await;
    }
    ledger
}

/// One agent until `until`: answers every customer message it sees, reconnecting to any node.
async fn agent_loop(index: usize, token: String, alive: Alive, until: Instant) -> (u64, u64) {
    let (mut sent, mut receipted) = (0u64, 0u64);
    let mut round = 0usize;
    while Instant::now() < until {
        round += 1;
        let addr = any_node(&alive, index + round);
        let url = format!("ws://{addr}/v1/agent/ws?token={token}");
        let Ok((mut socket, _)) = tokio_tungstenite::connect_async(url.as_str()).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        while Instant::now() < until {
            let next = tokio::time::timeout(Duration::from_millis(200), socket.next()).await;
            let frame: Value = match next {
                Err(_) => continue,
                Ok(Some(Ok(Message::Text(text)))) => {
                    serde_json::from_str(&text).unwrap_or(Value::Null)
                }
                Ok(Some(Ok(_))) => continue,
                Ok(_) => break,
            };
            match frame["type"].as_str() {
                Some("message") if frame["sender"] == "customer" => {
                    let conversation = frame["conversation_id"].as_str().unwrap_or("");
                    let seq = frame["seq"].as_i64().unwrap_or(0);
                    let reply = json!({"type": "send", "conversation_id": conversation,
                        "client_msg_id": format!("a{index}-{conversation}-{seq}"), "text": format!("re {seq}")});
                    if socket
                        .send(Message::Text(reply.to_string().into()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    sent += 1;
                }
                Some("receipt") => receipted += 1,
                _ => {}
            }
        }
    }
    (sent, receipted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a soak run of a minute or more: scripts/soak.sh"]
async fn a_soak_run_loses_nothing_while_a_node_dies() {
    let seconds = env_number("SOAK_SECONDS", 60);
    let visitors = env_number("SOAK_VISITORS", 40) as usize;
    let cluster = Cluster::new().await;
    let key = cluster.create_tenant();
    let (node_a, addr_a) = cluster.node("a");
    let (node_b, addr_b) = cluster.node("b");
    let http = reqwest::Client::new();
    let unlimited = json!({"per_second": 100000, "burst": 100000});
    let response = http
        .patch(format!("http://{addr_a}/v1/tenants/acme/settings"))
        .bearer_auth(&key)
        .json(&json!({"work_mode": "human_first",
            "limits": {"customer": unlimited, "agent": unlimited, "tenant": unlimited}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let alive: Alive = Arc::new(Mutex::new(vec![addr_a.clone(), addr_b.clone()]));
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut agents = Vec::new();
    for index in 0..2 {
        let token = agent(&http, &addr_a, &key, &format!("Agent {index}"), 100).await;
        agents.push(tokio::spawn(agent_loop(index, token, alive.clone(), until)));
    }
    let mut crowd = Vec::new();
    for index in 0..visitors {
        let token = visitor(&http, &any_node(&alive, index)).await;
        crowd.push(tokio::spawn(visitor_loop(
            index,
            token,
            alive.clone(),
            until,
        )));
    }

    // Halfway: node b dies without warning; a new node takes its place a few seconds later.
    tokio::time::sleep(Duration::from_secs(seconds / 2)).await;
    let mut node_b = node_b;
    let peak_b = peak_kib(node_b.child.id());
    node_b.kill();
    alive.lock().unwrap().retain(|addr| *addr != addr_b);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (node_c, addr_c) = cluster.node("c");
    alive.lock().unwrap().push(addr_c.clone());

    let mut ledgers = Vec::new();
    for visitor in crowd {
        ledgers.push(visitor.await.unwrap());
    }
    let mut agent_figures = (0, 0);
    for agent in agents {
        let (sent, receipted) = agent.await.unwrap();
        agent_figures.0 += sent;
        agent_figures.1 += receipted;
    }
    // Give the last deliveries a moment to be stored everywhere.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Every receipted message is stored exactly once, in the conversation and at the seq its
    // receipt named.
    let (mut sent, mut receipted, mut lost, mut doubled) = (0usize, 0usize, 0usize, 0usize);
    let mut stored_by_conversation: BTreeMap<String, HashMap<String, Vec<i64>>> = BTreeMap::new();
    for ledger in &ledgers {
        sent += ledger.sent.len();
        receipted += ledger.receipted.len();
        for (conversation, _) in ledger.receipted.values() {
            if stored_by_conversation.contains_key(conversation) {
                continue;
            }
            let mut ids: HashMap<String, Vec<i64>> = HashMap::new();
            let mut after = 0;
            loop {
                let page = get_json(
                    &http,
                    &key,
                    &format!(
                        "http://{addr_a}/v1/tenants/acme/conversations/{conversation}/messages?after={after}&limit=1000"
                    ),
                )
                .await;
                let messages = page["messages"].as_array().cloned().unwrap_or_default();
                for message in &messages {
                    if let Some(id) = message["client_msg_id"].as_str() {
                        ids.entry(id.to_owned())
                            .or_default()
                            .push(message["seq"].as_i64().unwrap_or(0));
                    }
                    after = after.max(message["seq"].as_i64().unwrap_or(0));
                }
                if messages.len() < 1000 {
                    break;
                }
            }
            stored_by_conversation.insert(conversation.clone(), ids);
        }
        for (id, (conversation, seq)) in &ledger.receipted {
            match stored_by_conversation[conversation].get(id) {
                None => lost += 1,
                Some(seqs) if seqs.len() > 1 => doubled += 1,
                Some(seqs) if seqs[0] != *seq => lost += 1,
                Some(_) => {}
            }
        }
    }
    let peak_a = peak_kib(node_a.child.id());
    let peak_c = peak_kib(node_c.child.id());
    println!(
        "soak: {seconds} s, {visitors} visitors, node b killed at {} s\n\
         customer messages: {sent} sent, {receipted} receipted, {lost} lost, {doubled} stored twice\n\
         agent replies: {} sent, {} receipted\n\
         peak memory: node a {} MiB, node b (killed) {} MiB, node c (started after) {} MiB",
        seconds / 2,
        agent_figures.0,
        agent_figures.1,
        peak_a / 1024,
        peak_b / 1024,
        peak_c / 1024,
    );
    drop((node_a, node_b, node_c));
    cluster.drop_database().await;
    assert!(receipted > 0, "nothing was receipted");
    assert_eq!(
        (lost, doubled),
        (0, 0),
        "receipted messages must be stored once"
    );
}
