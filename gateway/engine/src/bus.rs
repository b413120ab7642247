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
    /// The tenant began to require identified visitors: its anonymous visitors' open
    /// connections close (published on [`anonymous_visitors_topic`]).
    IdentificationRequired {
        tenant: String,
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

/// Every anonymous web visitor connection of the tenant follows this topic.
pub fn anonymous_visitors_topic(tenant: &str) -> String {
    format!("anonymous:{tenant}")
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

/// The delivery fabric between connections: [`LocalBus`] in one process,
/// [`crate::redis_bus::RedisBus`] across nodes.
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

impl LocalBus {
    /// Hands `event` to the topic's subscribers; false when it has none.
    pub(crate) fn deliver(&self, topic: &str, event: BusEvent) -> bool {
        let mut topics = self
            .topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match topics.senders.get(topic).map(|sender| sender.send(event)) {
            Some(Ok(_)) => true,
            Some(Err(_)) => {
                // Nobody listens any more: forget the topic.
                topics.senders.remove(topic);
                false
            }
            None => false,
        }
    }

    /// Calls `visit` with every topic that has a subscriber now.
    pub(crate) fn live_topics(&self, mut visit: impl FnMut(&str)) {
        let topics = self
            .topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (topic, sender) in &topics.senders {
            if sender.receiver_count() > 0 {
                visit(topic);
            }
        }
    }
}

impl Bus for LocalBus {
    fn publish(&self, topic: &str, event: BusEvent) {
        self.deliver(topic, event);
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
