//! The bus suite, run on both backends: the in-process bus and the Redis Streams bus (the local
//! Redis at 127.0.0.1:6379, or `SWITCHBOARD_TEST_REDIS`). With Redis, two buses stand for two
//! nodes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use engine::bus::{Bus, BusEvent, LocalBus};
use engine::redis_bus::{BusSettings, RedisBus};
use tokio::sync::broadcast::Receiver;

fn redis_url() -> String {
    std::env::var("SWITCHBOARD_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Two nodes' buses: the same one twice in process, two connections to Redis otherwise.
async fn nodes(redis: bool) -> (Arc<dyn Bus>, Arc<dyn Bus>, Vec<Arc<RedisBus>>) {
    if redis {
        let a = RedisBus::connect(&redis_url(), &BusSettings::default(), 64)
            .await
            .expect("redis bus");
        let b = RedisBus::connect(&redis_url(), &BusSettings::default(), 64)
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
    // Forgotten on one node (a push that was not stored), it is taken once more on another.
    b.forget(&other).await.unwrap();
    assert!(
        a.remember(&other, now, now + 2).await.unwrap(),
        "taken again"
    );
    assert!(!b.remember(&other, now, now + 2).await.unwrap(), "and once");
    // Past its window the nonce is forgotten (the token itself is refused by then for its age).
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert!(b.remember(&key, now + 3, now + 5).await.unwrap());
    leave(buses).await;
}

/// A conversation in a shard other than `shard`'s.
fn conversation_outside(bus: &RedisBus, shard: usize) -> String {
    loop {
        let id = store::util::new_id("cv_");
        if bus.shard_of(&id) != shard {
            return id;
        }
    }
}

/// The bus is sharded by conversation: a node reads the shards of the conversations it has
/// subscribers for, not the whole cluster's traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_node_reads_only_the_shards_of_its_conversations() {
    let (_, _, buses) = nodes(true).await;
    let (a, b) = (&buses[0], &buses[1]);
    let mine = store::util::new_id("cv_");
    let topic = format!("conv:{mine}");
    let mut there = b.subscribe(&topic);
    let shard = b.shard_of(&mine);
    // Node a speaks in 200 conversations b has nobody for, then in b's one.
    for n in 0..200 {
        let other = conversation_outside(b, shard);
        a.publish(&format!("conv:{other}"), event(1000 + n));
    }
    for n in 0..20 {
        a.publish(&topic, event(n));
    }
    assert_eq!(positions(&mut there, 20).await, (0..20).collect::<Vec<_>>());
    nothing_more(&mut there).await;
    let read = b.stats().read.load(Ordering::Relaxed);
    assert!(
        (20..100).contains(&read),
        "node b read {read} events, not the 200 of conversations it does not serve"
    );
    assert_eq!(b.stats().joins.load(Ordering::Relaxed), 1);
    assert!(a.stats().written.load(Ordering::Relaxed) >= 220);
    assert_eq!(b.stats().delivered.load(Ordering::Relaxed), 20);
    leave(buses).await;
}

/// Shards can live on other Redis servers than the node's own (here: another database of the
/// local server, which the node's own connection never sees).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_shards_live_on_the_shard_servers() {
    let settings = BusSettings {
        shards: 4,
        shard_urls: vec![format!("{}/3", redis_url().trim_end_matches('/'))],
        ..BusSettings::default()
    };
    let a = RedisBus::connect(&redis_url(), &settings, 64)
        .await
        .expect("redis bus");
    let b = RedisBus::connect(&redis_url(), &settings, 64)
        .await
        .expect("redis bus");
    let id = store::util::new_id("cv_");
    let topic = format!("conv:{id}");
    let mut there = b.subscribe(&topic);
    for n in 0..5 {
        a.publish(&topic, event(n));
    }
    assert_eq!(positions(&mut there, 5).await, (0..5).collect::<Vec<_>>());
    let stream = format!("switchboard:bus:shard:{}", a.shard_of(&id));
    let exists = |url: String| {
        let stream = stream.clone();
        async move {
            let client = redis::Client::open(url).expect("url");
            let mut connection = client
                .get_multiplexed_async_connection()
                .await
                .expect("redis");
            redis::cmd("EXISTS")
                .arg(&stream)
                .query_async::<i64>(&mut connection)
                .await
                .expect("exists")
        }
    };
    assert_eq!(exists(settings.shard_urls[0].clone()).await, 1);
    // Agents' topics stay on the node's own Redis (the control stream).
    let agent = format!("agent:{}", store::util::new_id(""));
    let mut agent_there = b.subscribe(&agent);
    a.publish(&agent, event(9));
    assert_eq!(positions(&mut agent_there, 1).await, [9]);
    leave(vec![a, b]).await;
}

/// A shard nobody here follows any more is left after a few seconds; following it again starts
/// a moment before "now", not at the backlog published meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_shard_left_is_joined_again_without_its_backlog() {
    let (_, _, buses) = nodes(true).await;
    let (a, b) = (&buses[0], &buses[1]);
    let topic = format!("conv:{}", store::util::new_id("cv_"));
    drop(b.subscribe(&topic));
    let followed = |bus: &RedisBus| bus.stats().shards_followed.load(Ordering::Relaxed);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    // Joined first (as the sweep counts it), then left once the sweeps find no subscriber.
    for joined in [true, false] {
        while (followed(b) > 0) != joined {
            assert!(
                std::time::Instant::now() < deadline,
                "b never joined or left the shard"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for n in 0..300 {
        a.publish(&topic, event(1000 + n));
    }
    // Older than the replay window of a join.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let read_before = b.stats().read.load(Ordering::Relaxed);
    let mut there = b.subscribe(&topic);
    for n in 0..5 {
        a.publish(&topic, event(n));
    }
    assert_eq!(positions(&mut there, 5).await, (0..5).collect::<Vec<_>>());
    nothing_more(&mut there).await;
    assert_eq!(b.stats().joins.load(Ordering::Relaxed), 2);
    let read = b.stats().read.load(Ordering::Relaxed) - read_before;
    assert!(read < 100, "b read {read} entries: the backlog came back");
    leave(buses).await;
}

/// A node that leaves removes its consumer groups, and its readers do not make them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_node_that_leaves_leaves_no_consumer_group() {
    let bus = RedisBus::connect(&redis_url(), &BusSettings::default(), 64)
        .await
        .expect("redis bus");
    let id = store::util::new_id("cv_");
    let _receiver = bus.subscribe(&format!("conv:{id}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while bus.stats().joins.load(Ordering::Relaxed) == 0 {
        assert!(std::time::Instant::now() < deadline, "never joined");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bus.leave().await.expect("leave");
    // Longer than a read's block: a reader still reading when the groups went would be back.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let client = redis::Client::open(redis_url()).expect("url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    for stream in [
        "switchboard:bus:control".to_owned(),
        format!("switchboard:bus:shard:{}", bus.shard_of(&id)),
    ] {
        let groups: redis::Value = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&stream)
            .query_async(&mut connection)
            .await
            .expect("groups");
        assert!(
            !format!("{groups:?}").contains(bus.node()),
            "{stream} still has {}",
            bus.node()
        );
    }
}
