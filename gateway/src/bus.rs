//! Cross-connection delivery. Connections subscribe to topics; whoever changes a conversation
//! publishes what happened. The bus carries notifications, never the truth: a subscriber that
//! sees a gap in seqs (or lags) reads the missing messages from the store, so a lost or late
//! event delays a message but never loses it.
//!
//! Topics: `conv:<conversation id>` (messages, typing, queue position), `agent:<agent id>`
//! (assignments and their end), `customer:<customer id>` (a conversation was opened elsewhere).

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use switchboard_channels::web::SenderKind;
use tokio::sync::broadcast;

use crate::store::MessageRecord;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum BusEvent {
    Message(MessageRecord),
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
    /// A reply's outbound delivery (channels outbox) changed state; agents get a `delivery` frame.
    Delivery {
        conversation_id: String,
        seq: i64,
        kind: String,
        state: String,
        code: Option<String>,
        attempts: i64,
    },
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

/// The delivery fabric between connections (in-process here; other nodes need another
/// implementation of the same trait).
pub trait Bus: Send + Sync + 'static {
    fn publish(&self, topic: &str, event: BusEvent);
    fn subscribe(&self, topic: &str) -> broadcast::Receiver<BusEvent>;
}

/// One process: a broadcast channel per topic with live subscribers.
pub struct LocalBus {
    topics: Mutex<HashMap<String, broadcast::Sender<BusEvent>>>,
    capacity: usize,
}

impl LocalBus {
    pub fn new(capacity: usize) -> Self {
        LocalBus {
            topics: Mutex::new(HashMap::new()),
            capacity,
        }
    }
}

impl Bus for LocalBus {
    fn publish(&self, topic: &str, event: BusEvent) {
        let mut topics = self
            .topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(sender) = topics.get(topic) {
            if sender.send(event).is_err() {
                // Nobody listens any more: forget the topic so the map does not grow forever.
                topics.remove(topic);
            }
        }
    }

    fn subscribe(&self, topic: &str) -> broadcast::Receiver<BusEvent> {
        let mut topics = self
            .topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        topics
            .entry(topic.to_owned())
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(bus.topics.lock().unwrap().is_empty());
        bus.publish("conv:none", event);
    }
}
