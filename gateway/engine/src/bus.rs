//! Cross-connection delivery. Connections subscribe to topics; whoever changes a conversation
//! publishes what happened. The bus carries notifications, never the truth: a subscriber that
//! sees a gap in seqs (or lags) reads the missing messages from the store, so a lost or late
//! event delays a message but never loses it.
//!
//! Topics: `conv:<conversation id>` (messages, typing, queue position), `agent:<agent id>`
//! (assignments and their end), `customer:<customer id>` (a conversation was opened elsewhere).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use switchboard_channels::web::SenderKind;
use tokio::sync::broadcast;

use store::MessageRecord;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum BusEvent {
    /// Shared, not copied, by every subscriber (the large variants are behind a pointer so each
    /// of a topic's buffered slots stays small).
    Message(Arc<MessageRecord>),
    Typing {
        conversation_id: String,
        from: SenderKind,
    },
    Queue {
        conversation_id: String,
        position: i64,
    },
    Opened {
        conversation_id: String,
    },
    Assigned {
        conversation_id: String,
    },
    Unassigned {
        conversation_id: String,
        reason: String,
    },
    /// Something changed a tenant's queue or agents: every node runs an assignment round.
    Kick {
        tenant: String,
        node: String,
    },
    /// An agent connected on the node `node`.
    AgentOnline {
        agent_id: String,
        node: String,
    },
    /// A reply's outbound delivery (channels outbox) changed state; agents get a `delivery` frame.
    Delivery(Box<DeliveryEvent>),
    /// A supervisor's private note on a conversation the agent holds (never sent to customers).
    Note {
        conversation_id: String,
        author: String,
        text: String,
        at: i64,
    },
    /// A customer's visitor tokens were revoked (their version is now `version`): their open
    /// connections close.
    VisitorRevoked {
        customer_id: String,
        version: i64,
    },
    /// The agent's token was reissued at `version`: connections opened with an older token close.
    TokenRevoked {
        agent_id: String,
        version: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryEvent {
    pub conversation_id: String,
    pub seq: i64,
    pub kind: String,
    pub state: String,
    pub code: Option<String>,
    pub attempts: i64,
}

pub fn conversation_topic(id: &str) -> String {
    format!("conv:{id}")
}

pub fn agent_topic(id: &str) -> String {
    format!("agent:{id}")
}

pub fn customer_topic(id: &str) -> String {
    format!("customer:{id}")
}

/// Node-to-node coordination: dispatcher kicks and agent presence.
pub const CLUSTER_TOPIC: &str = "cluster";

/// The topic agent and bot messages are also published on, for the outbox worker.
pub const OUTBOUND_TOPIC: &str = "outbound";

/// Called after every stored message is published to its conversation: the outbox worker picks
/// agent and bot messages up from [`OUTBOUND_TOPIC`] (and from the store after a restart or a
/// lag). Customer and system messages never leave through a channel, so they are not published
/// there: under a customer flood they would only push the worker behind.
pub fn message_published(bus: &dyn Bus, message: &Arc<MessageRecord>) {
    if matches!(message.sender, SenderKind::Agent | SenderKind::Bot) {
        bus.publish(OUTBOUND_TOPIC, BusEvent::Message(message.clone()));
    }
}

/// The delivery fabric between connections: [`LocalBus`] in one process, [`RedisBus`] across
/// nodes.
pub trait Bus: Send + Sync + 'static {
    fn publish(&self, topic: &str, event: BusEvent);
    fn subscribe(&self, topic: &str) -> broadcast::Receiver<BusEvent>;
}

/// One process: a broadcast channel per topic with live subscribers.
pub struct LocalBus {
    topics: Mutex<Topics>,
    capacity: usize,
}

struct Topics {
    senders: HashMap<String, broadcast::Sender<BusEvent>>,
    /// How many topics were left after the last sweep for topics nobody follows.
    after_sweep: usize,
}

impl LocalBus {
    pub fn new(capacity: usize) -> Self {
        LocalBus {
            topics: Mutex::new(Topics {
                senders: HashMap::new(),
                after_sweep: 0,
            }),
            capacity,
        }
    }

    /// Topics held (with or without subscribers).
    pub fn topic_count(&self) -> usize {
        self.topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .senders
            .len()
    }
}

impl Bus for LocalBus {
    fn publish(&self, topic: &str, event: BusEvent) {
        let mut topics = self
            .topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(sender) = topics.senders.get(topic) {
            if sender.send(event).is_err() {
                // Nobody listens any more: forget the topic.
                topics.senders.remove(topic);
            }
        }
    }

    fn subscribe(&self, topic: &str) -> broadcast::Receiver<BusEvent> {
        let mut topics = self
            .topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // A customer's own topic only says that a conversation opened: a few slots are plenty,
        // and every idle connection has one.
        let capacity = if topic.starts_with("customer:") {
            4
        } else {
            self.capacity
        };
        // Topics whose subscribers all went away without anything published to them since
        // (a customer who connected and left) are swept whenever the map has doubled, so it
        // tracks the live connections at amortized constant cost.
        if topics.senders.len() >= 2 * topics.after_sweep.max(512) {
            topics
                .senders
                .retain(|_, sender| sender.receiver_count() > 0);
            topics.after_sweep = topics.senders.len();
        }
        topics
            .senders
            .entry(topic.to_owned())
            .or_insert_with(|| broadcast::channel(capacity).0)
            .subscribe()
    }
}

/// The stream every node writes its events to and reads the others' from.
const STREAM: &str = "switchboard:bus";
/// Entries kept in the stream (approximately): a node that falls this far behind catches up
/// from the store, like any lagging subscriber.
const STREAM_MAXLEN: usize = 100_000;

/// Several nodes: each event is delivered to this node's subscribers at once and appended to a
/// Redis stream; every node reads the stream through a consumer group of its own (each node
/// sees every event; its own are skipped) and hands the others' events to its subscribers.
pub struct RedisBus {
    local: LocalBus,
    client: redis::Client,
    /// One multiplexed connection for commands (presence, limits), opened again after an error.
    commands: Mutex<Option<redis::aio::MultiplexedConnection>>,
    node: String,
    outgoing: tokio::sync::mpsc::UnboundedSender<(String, String)>,
}

impl RedisBus {
    /// Connects, creates this node's consumer group at the stream's end, and starts the writer
    /// and reader tasks.
    pub async fn connect(url: &str, capacity: usize) -> anyhow::Result<std::sync::Arc<RedisBus>> {
        use anyhow::Context;
        let client = redis::Client::open(url).context("invalid redis url")?;
        let mut writer = client
            .get_multiplexed_async_connection()
            .await
            .context("cannot connect to redis")?;
        let node = store::util::new_id("node_");
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(STREAM)
            .arg(&node)
            .arg("$")
            .arg("MKSTREAM")
            .query_async(&mut writer)
            .await
            .context("cannot create the consumer group")?;
        let (outgoing, mut queue) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
        let bus = std::sync::Arc::new(RedisBus {
            local: LocalBus::new(capacity),
            client: client.clone(),
            commands: Mutex::new(Some(writer.clone())),
            node: node.clone(),
            outgoing,
        });
        // Writer: everything queued since the last round goes out in one pipeline.
        let writer_node = node.clone();
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut pipe = redis::pipe();
                let mut next = Some(first);
                while let Some((topic, event)) = next.take() {
                    pipe.cmd("XADD")
                        .arg(STREAM)
                        .arg("MAXLEN")
                        .arg("~")
                        .arg(STREAM_MAXLEN)
                        .arg("*")
                        .arg("node")
                        .arg(&writer_node)
                        .arg("topic")
                        .arg(topic)
                        .arg("event")
                        .arg(event)
                        .ignore();
                    next = queue.try_recv().ok();
                }
                if let Err(error) = pipe.query_async::<()>(&mut writer).await {
                    tracing::warn!(error = %error, "bus: cannot append to the redis stream");
                }
            }
        });
        let weak = std::sync::Arc::downgrade(&bus);
        tokio::spawn(async move {
            let mut reader = None;
            loop {
                let Some(bus) = weak.upgrade() else { break };
                if reader.is_none() {
                    match client.get_multiplexed_async_connection().await {
                        Ok(mut connection) => {
                            // XREADGROUP blocks up to 500 ms: allow more than that for a reply.
                            connection.set_response_timeout(std::time::Duration::from_secs(5));
                            reader = Some(connection);
                        }
                        Err(error) => {
                            tracing::warn!(error = %error, "bus: cannot reach redis");
                            drop(bus);
                            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                            continue;
                        }
                    }
                }
                let Some(connection) = reader.as_mut() else {
                    continue;
                };
                let read: redis::RedisResult<Option<redis::streams::StreamReadReply>> =
                    redis::cmd("XREADGROUP")
                        .arg("GROUP")
                        .arg(&bus.node)
                        .arg("reader")
                        .arg("COUNT")
                        .arg(512)
                        .arg("BLOCK")
                        .arg(500)
                        .arg("STREAMS")
                        .arg(STREAM)
                        .arg(">")
                        .query_async(connection)
                        .await;
                match read {
                    Ok(Some(reply)) => bus.deliver_remote(connection, reply).await,
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(error = %error, "bus: cannot read the redis stream");
                        reader = None;
                        drop(bus);
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                }
            }
        });
        Ok(bus)
    }

    /// The shared command connection (a cheap clone), opened again if an earlier call failed.
    async fn connection(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        if let Some(connection) = self
            .commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Ok(connection);
        }
        let connection = self.client.get_multiplexed_async_connection().await?;
        *self.commands.lock().unwrap_or_else(|p| p.into_inner()) = Some(connection.clone());
        Ok(connection)
    }

    /// Runs `pipe` on the shared connection; an error drops it so the next call reconnects.
    async fn query<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> anyhow::Result<T> {
        let mut connection = self.connection().await?;
        match pipe.query_async(&mut connection).await {
            Ok(value) => Ok(value),
            Err(error) => {
                *self.commands.lock().unwrap_or_else(|p| p.into_inner()) = None;
                Err(error.into())
            }
        }
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    pub(crate) async fn mark_online(
        &self,
        agents: &[String],
        ttl: std::time::Duration,
    ) -> anyhow::Result<()> {
        if agents.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for agent in agents {
            pipe.cmd("SET")
                .arg(format!("switchboard:agent:{agent}"))
                .arg(&self.node)
                .arg("PX")
                .arg(ttl.as_millis() as u64)
                .ignore();
        }
        self.query::<()>(&pipe).await
    }

    pub(crate) async fn online(&self, agents: &[String]) -> anyhow::Result<Vec<bool>> {
        if agents.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for agent in agents {
            pipe.cmd("EXISTS").arg(format!("switchboard:agent:{agent}"));
        }
        let found: Vec<i64> = self.query(&pipe).await?;
        Ok(found.into_iter().map(|n| n > 0).collect())
    }

    pub(crate) async fn tenant_message(
        &self,
        tenant: &str,
        budget: u64,
    ) -> anyhow::Result<Result<(), u64>> {
        let now = store::util::now_ms();
        let second = now / 1000;
        let key = format!("switchboard:rate:{tenant}:{second}");
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("INCR")
            .arg(&key)
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(2_000);
        let (count, _): (u64, i64) = self.query(&pipe).await?;
        Ok(if count > budget {
            Err((1000 - now % 1000).max(1) as u64)
        } else {
            Ok(())
        })
    }

    /// Removes this node's consumer group (on a clean stop; a crashed node's group only costs a
    /// few bytes in Redis, as it never holds pending entries).
    pub async fn leave(&self) -> anyhow::Result<()> {
        let mut pipe = redis::pipe();
        pipe.cmd("XGROUP")
            .arg("DESTROY")
            .arg(STREAM)
            .arg(&self.node);
        self.query::<(i64,)>(&pipe).await?;
        Ok(())
    }

    async fn deliver_remote(
        &self,
        connection: &mut redis::aio::MultiplexedConnection,
        reply: redis::streams::StreamReadReply,
    ) {
        let text = |entry: &redis::streams::StreamId, field: &str| -> Option<String> {
            entry.get::<String>(field)
        };
        let mut ids = Vec::new();
        for key in reply.keys {
            for entry in key.ids {
                ids.push(entry.id.clone());
                if text(&entry, "node").as_deref() == Some(self.node.as_str()) {
                    continue;
                }
                let (Some(topic), Some(event)) = (text(&entry, "topic"), text(&entry, "event"))
                else {
                    continue;
                };
                match serde_json::from_str::<BusEvent>(&event) {
                    Ok(event) => self.local.publish(&topic, event),
                    Err(error) => tracing::warn!(error = %error, "bus: unreadable event"),
                }
            }
        }
        if !ids.is_empty() {
            let acked: redis::RedisResult<()> = redis::cmd("XACK")
                .arg(STREAM)
                .arg(&self.node)
                .arg(&ids)
                .query_async(connection)
                .await;
            if let Err(error) = acked {
                tracing::warn!(error = %error, "bus: cannot acknowledge");
            }
        }
    }
}

/// Mobile token nonces for the whole cluster: a token accepted by one node is a replay on every
/// other (`SET NX` until the token's window closes). Without Redis a nonce cannot be checked, and
/// the token is refused (the caller answers "try again later") rather than risk a replay.
impl switchboard_channels::mobile::NonceStore for RedisBus {
    fn remember<'a>(
        &'a self,
        key: &'a str,
        _now_unix: i64,
        remember_until: i64,
    ) -> switchboard_channels::mobile::NonceFuture<'a> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(format!("switchboard:nonce:{key}"))
                .arg(1)
                .arg("NX")
                .arg("EXAT")
                .arg(remember_until);
            let (set,): (Option<String>,) = self.query(&pipe).await.map_err(|error| {
                switchboard_channels::mobile::NonceStoreError::Unavailable(error.to_string())
            })?;
            Ok(set.is_some())
        })
    }
}

impl Bus for RedisBus {
    fn publish(&self, topic: &str, event: BusEvent) {
        if let Ok(json) = serde_json::to_string(&event) {
            let _ = self.outgoing.send((topic.to_owned(), json));
        }
        self.local.publish(topic, event);
    }

    fn subscribe(&self, topic: &str) -> broadcast::Receiver<BusEvent> {
        self.local.subscribe(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said_by(sender: SenderKind, seq: i64) -> Arc<MessageRecord> {
        Arc::new(MessageRecord {
            conversation_id: "cv".into(),
            seq,
            sender,
            sender_id: None,
            text: "x".into(),
            client_msg_id: None,
            created_at: 0,
            meta: None,
        })
    }

    /// The outbox worker hears only what can leave through a channel: a customer flood never
    /// reaches its topic (where it would push the worker behind into recovery scans).
    #[test]
    fn only_agent_and_bot_messages_reach_the_outbox_topic() {
        let bus = LocalBus::new(16);
        let mut outbound = bus.subscribe(OUTBOUND_TOPIC);
        for (seq, sender) in [
            SenderKind::Customer,
            SenderKind::Agent,
            SenderKind::System,
            SenderKind::Bot,
        ]
        .into_iter()
        .enumerate()
        {
            message_published(&bus, &said_by(sender, seq as i64));
        }
        let mut heard = Vec::new();
        while let Ok(BusEvent::Message(message)) = outbound.try_recv() {
            heard.push(message.sender);
        }
        assert_eq!(heard, [SenderKind::Agent, SenderKind::Bot]);
    }

    #[tokio::test]
    async fn delivers_to_subscribers_and_forgets_idle_topics() {
        let bus = LocalBus::new(16);
        let mut first = bus.subscribe("conv:a");
        let mut second = bus.subscribe("conv:a");
        let event = BusEvent::Opened {
            conversation_id: "a".into(),
        };
        bus.publish("conv:a", event.clone());
        assert_eq!(first.recv().await.unwrap(), event);
        assert_eq!(second.recv().await.unwrap(), event);
        drop((first, second));
        bus.publish("conv:a", event.clone());
        assert_eq!(bus.topic_count(), 0);
        bus.publish("conv:none", event);
    }

    #[tokio::test]
    async fn topics_nobody_follows_are_swept() {
        let bus = LocalBus::new(16);
        let kept = bus.subscribe("conv:kept");
        // Customers come and go without anything published to their topics.
        for index in 0..10_000 {
            drop(bus.subscribe(&format!("customer:{index}")));
        }
        assert!(bus.topic_count() <= 1024, "{} topics", bus.topic_count());
        // A topic with a subscriber survives every sweep.
        bus.publish(
            "conv:kept",
            BusEvent::Opened {
                conversation_id: "kept".into(),
            },
        );
        assert_eq!(kept.len(), 1);
    }
}
