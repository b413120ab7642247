//! The writers' queue: a message submitted for the store waits here for its writer's next
//! batch ([`crate::append`]).

use std::sync::Arc;

use switchboard_channels::web::SenderKind;
use tokio::sync::{mpsc, oneshot};

use crate::model::{Appended, Customer, Entry, MessageRecord, StoreError, StoreResult};

/// The most messages one transaction stores (9 bound values each, well under both databases'
/// limits on bound parameters).
pub const MAX_BATCH: usize = 256;
/// Messages waiting for a writer before senders wait for room.
pub(crate) const QUEUE: usize = 4096;

/// One message to store.
#[derive(Debug, Clone)]
pub enum NewMessage {
    /// A customer's message; opens or reopens the customer's conversation at `entry` if needed.
    Customer {
        customer: Customer,
        client_msg_id: Option<String>,
        text: String,
        entry: Entry,
        meta: Option<serde_json::Value>,
    },
    /// An agent's message, in a conversation assigned to that agent.
    Agent {
        conversation_id: String,
        agent_id: String,
        client_msg_id: String,
        text: String,
        meta: Option<serde_json::Value>,
    },
}

impl NewMessage {
    pub(crate) fn sender(&self) -> SenderKind {
        match self {
            NewMessage::Customer { .. } => SenderKind::Customer,
            NewMessage::Agent { .. } => SenderKind::Agent,
        }
    }

    pub(crate) fn client_msg_id(&self) -> Option<&str> {
        match self {
            NewMessage::Customer { client_msg_id, .. } => client_msg_id.as_deref(),
            NewMessage::Agent { client_msg_id, .. } => Some(client_msg_id),
        }
    }

    /// The message as stored at `seq` of `conversation_id`.
    pub(crate) fn record(&self, conversation_id: &str, seq: i64, now: i64) -> MessageRecord {
        let (sender_id, text, meta) = match self {
            NewMessage::Customer {
                customer,
                text,
                meta,
                ..
            } => (&customer.id, text, meta),
            NewMessage::Agent {
                agent_id,
                text,
                meta,
                ..
            } => (agent_id, text, meta),
        };
        MessageRecord {
            conversation_id: conversation_id.to_owned(),
            seq,
            sender: self.sender(),
            sender_id: Some(sender_id.clone()),
            text: text.clone(),
            client_msg_id: self.client_msg_id().map(str::to_owned),
            created_at: now,
            meta: meta.clone(),
        }
    }
}

/// A submitted message ([`Store::submit`]).
pub enum PendingAppend {
    Queued(oneshot::Receiver<StoreResult<Appended>>),
    Done(StoreResult<Appended>),
}

impl PendingAppend {
    /// The message's result once its batch has committed.
    pub async fn stored(self) -> StoreResult<Appended> {
        match self {
            PendingAppend::Queued(answer) => answer.await.map_err(|_| closed())?,
            PendingAppend::Done(result) => result,
        }
    }
}

pub(crate) struct Pending {
    pub(crate) message: NewMessage,
    pub(crate) reply: oneshot::Sender<StoreResult<Appended>>,
}

/// The writers' queues, one per writer. A sender's messages (a customer's, or an agent's in one
/// conversation) always go to the same writer, which stores them in order; two writers could
/// otherwise take a connection's consecutive messages in two batches and commit them out of
/// order.
#[derive(Clone)]
pub(crate) struct Appender {
    pub(crate) queues: Arc<[mpsc::Sender<Pending>]>,
}

impl Appender {
    pub(crate) fn queue_for(&self, message: &NewMessage) -> &mpsc::Sender<Pending> {
        use std::hash::{Hash, Hasher};
        let key = match message {
            NewMessage::Customer { customer, .. } => &customer.id,
            NewMessage::Agent {
                conversation_id, ..
            } => conversation_id,
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        &self.queues[(hasher.finish() % self.queues.len() as u64) as usize]
    }
}

/// The store was closed while the message waited.
pub(crate) fn closed() -> StoreError {
    StoreError::Database(sqlx::Error::PoolClosed)
}
