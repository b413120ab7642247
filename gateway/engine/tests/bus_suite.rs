//! The bus suite, run on both backends: the in-process bus and the Redis Streams bus (the local
//! Redis at 127.0.0.1:6379, or `SWITCHBOARD_TEST_REDIS`). With Redis, two buses stand for two
//! nodes.

use std::sync::Arc;
use std::time::Duration;

use engine::bus::{Bus, BusEvent, LocalBus, RedisBus};
use tokio::sync::broadcast::Receiver;

fn redis_url() -> String {
    std::env::var("SWITCHBOARD_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Two nodes' buses: the same one twice in process, two connections to Redis otherwise.
async fn nodes(redis: bool) -> (Arc<dyn Bus>, Arc<dyn Bus>, Vec<Arc<RedisBus>>) {
    if redis {
        let a = RedisBus::connect(&redis_url(), 64)
            .await
            .expect("redis bus");
        let b = RedisBus::connect(&redis_url(), 64)
            .await
            .expect("redis bus");
        (a.clone(), b.clone(), vec![a, b])
    } else {
        let bus: Arc<dyn Bus> = Arc::new(LocalBus::new(64));
        (bus.clone(), bus, Vec::new())
    }
}

async fn leave(buses: Vec<Arc<RedisBus>>) {
    for bus in buses {
        bus.leave().await.expect("leave");
    }
}

fn event(n: i64) -> BusEvent {
    BusEvent::Queue {
        conversation_id: "cv_suite".into(),
        position: n,
    }
}

async fn positions(receiver: &mut Receiver<BusEvent>, count: usize) -> Vec<i64> {
    let mut out = Vec::new();
    while out.len() < count {
        match tokio::time::timeout(Duration::from_secs(10), receiver.recv()).await {
            Ok(Ok(BusEvent::Queue { position, .. })) => out.push(position),
            Ok(Ok(_)) => {}
            other => panic!("after {out:?}: {other:?}"),
        }
    }
    out
}

async fn nothing_more(receiver: &mut Receiver<BusEvent>) {
    let extra = tokio::time::timeout(Duration::from_millis(700), receiver.recv()).await;
    assert!(extra.is_err(), "an event arrived twice: {extra:?}");
}

async fn in_order_to_every_subscriber_on_every_node(redis: bool) {
    let (a, b, buses) = nodes(redis).await;
    let topic = format!("conv:{}", store::util::new_id(""));
    let mut here_one = a.subscribe(&topic);
    let mut here_two = a.subscribe(&topic);
    let mut there = b.subscribe(&topic);
    // Fewer than a topic's buffer (64): a subscriber further behind lags by design and reads
    // what it missed from the store.
    for n in 0..50 {
        a.publish(&topic, event(n));
    }
    let expected: Vec<i64> = (0..50).collect();
    assert_eq!(positions(&mut here_one, 50).await, expected);
    assert_eq!(positions(&mut here_two, 50).await, expected);
    assert_eq!(positions(&mut there, 50).await, expected);
    // Each subscriber sees each event once: the node's own events do not come back from Redis.
    nothing_more(&mut here_one).await;
    nothing_more(&mut there).await;
    leave(buses).await;
}

async fn topics_are_separate_and_unheard_events_go_nowhere(redis: bool) {
    let (a, b, buses) = nodes(redis).await;
    let heard = format!("agent:{}", store::util::new_id(""));
    let unheard = format!("agent:{}", store::util::new_id(""));
    a.publish(&unheard, event(-1));
    let mut receiver = b.subscribe(&heard);
    b.publish(&unheard, event(-2));
    a.publish(&heard, event(7));
    assert_eq!(positions(&mut receiver, 1).await, [7]);
    nothing_more(&mut receiver).await;
    leave(buses).await;
}

#[tokio::test]
async fn local_in_order_to_every_subscriber_on_every_node() {
    in_order_to_every_subscriber_on_every_node(false).await;
}

#[tokio::test]
async fn redis_in_order_to_every_subscriber_on_every_node() {
    in_order_to_every_subscriber_on_every_node(true).await;
}

#[tokio::test]
async fn local_topics_are_separate_and_unheard_events_go_nowhere() {
    topics_are_separate_and_unheard_events_go_nowhere(false).await;
}

#[tokio::test]
async fn redis_topics_are_separate_and_unheard_events_go_nowhere() {
    topics_are_separate_and_unheard_events_go_nowhere(true).await;
}

/// Mobile token nonces in cluster mode: a nonce one node has seen is a replay on another, and is
/// forgotten when its window closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_nonce_seen_on_one_node_is_a_replay_on_another() {
    use switchboard_channels::mobile::NonceStore;
    let (_, _, buses) = nodes(true).await;
    let (a, b) = (&buses[0], &buses[1]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let key = format!("suite:{}", store::util::new_id(""));
    assert!(
        a.remember(&key, now, now + 2).await.unwrap(),
        "new on node a"
    );
    assert!(
        !b.remember(&key, now, now + 2).await.unwrap(),
        "a replay on node b"
    );
    assert!(
        !a.remember(&key, now, now + 2).await.unwrap(),
        "a replay on node a"
    );
    let other = format!("{key}:other");
    assert!(
        b.remember(&other, now, now + 2).await.unwrap(),
        "another nonce is new"
    );
    // Past its window the nonce is forgotten (the token itself is refused by then for its age).
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert!(b.remember(&key, now + 3, now + 5).await.unwrap());
    leave(buses).await;
}
