//! Appending chat messages with group commit.
//!
//! Customer and agent messages go through a queue to the store's writer tasks (one on SQLite,
//! a few on PostgreSQL, each sender's messages always to the same one). A writer takes whatever has queued up (at most [`MAX_BATCH`]) and
//! stores it in one transaction with a fixed number of statements, however many messages:
//! lock the conversations, look up resent `client_msg_id`s, move each conversation's `last_seq`
//! on by its messages, insert every message. Under load the messages that arrive while one batch
//! commits form the next, so commits (and, on PostgreSQL, WAL flushes) are shared; unloaded, a
//! batch of one costs what a single transaction did.
//!
//! Everything the batch cannot do in bulk goes through [`Store::append_one`], one transaction per
//! message, after the batch: a customer's first message (which creates the conversation) or one
//! that reopens a closed conversation, and every message of the batch if a statement of the
//! batch fails (so one bad message never fails the others). The invariants are the store's:
//! seqs contiguous per conversation in arrival order, a `client_msg_id` stored once, agents write
//! only to conversations assigned to them.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use sqlx::AssertSqlSafe;
use switchboard_channels::web::SenderKind;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::{
    conversation_from_row, find_by_client_id, insert_event, insert_message, message_from_row,
    Actor, Appended, Conversation, ConversationState, Customer, Dialect, Entry, MessageRecord,
    Store, StoreError, StoreResult, Tx, CONVERSATION_COLUMNS, MESSAGE_COLUMNS,
};
use crate::util::{new_id, now_ms};

/// The most messages one transaction stores (9 bound values each, well under both databases'
/// limits on bound parameters).
pub const MAX_BATCH: usize = 256;
/// Messages waiting for a writer before senders wait for room.
const QUEUE: usize = 4096;

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
    fn sender(&self) -> SenderKind {
        match self {
            NewMessage::Customer { .. } => SenderKind::Customer,
            NewMessage::Agent { .. } => SenderKind::Agent,
        }
    }

    fn client_msg_id(&self) -> Option<&str> {
        match self {
            NewMessage::Customer { client_msg_id, .. } => client_msg_id.as_deref(),
            NewMessage::Agent { client_msg_id, .. } => Some(client_msg_id),
        }
    }

    /// The message as stored at `seq` of `conversation_id`.
    fn record(&self, conversation_id: &str, seq: i64, now: i64) -> MessageRecord {
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

impl Appended {
    /// A resend: the message stored before, nothing written.
    fn resent(message: MessageRecord, conversation: Conversation) -> Self {
        Appended {
            message,
            conversation,
            duplicate: true,
            created: false,
            reopened: false,
        }
    }
}

/// The end of a single-message transaction: the message stored, the transaction committed.
async fn commit_one(
    mut tx: Tx<'_>,
    conversation: Conversation,
    message: MessageRecord,
    created: bool,
    reopened: bool,
) -> StoreResult<Appended> {
    insert_message(&mut tx, &conversation.tenant_id, &message).await?;
    tx.commit().await?;
    Ok(Appended {
        message,
        conversation,
        duplicate: false,
        created,
        reopened,
    })
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

pub(super) struct Pending {
    message: NewMessage,
    reply: oneshot::Sender<StoreResult<Appended>>,
}

/// The writers' queues, one per writer. A sender's messages (a customer's, or an agent's in one
/// conversation) always go to the same writer, which stores them in order; two writers could
/// otherwise take a connection's consecutive messages in two batches and commit them out of
/// order.
#[derive(Clone)]
pub(super) struct Appender {
    queues: Arc<[mpsc::Sender<Pending>]>,
}

impl Appender {
    fn queue_for(&self, message: &NewMessage) -> &mpsc::Sender<Pending> {
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

/// Starts the writer tasks for `store` (a store without an appender of its own: the tasks end
/// when the last sender, held by the store's clones, is dropped): one on SQLite, which has one
/// writer anyway, `writers` on PostgreSQL, where several batches can commit at once.
///
/// On SQLite the writer runs on a thread of its own: each of its statements is a hop to SQLite's
/// worker thread and back, and on the server's runtime every hop back would wait behind all the
/// connections' ready tasks, which under load made a batch take several times its work.
pub(super) fn start(store: &Store, writers: usize) -> Appender {
    let writers = match store.dialect {
        Dialect::Sqlite => 1,
        Dialect::Postgres => writers.max(1),
    };
    let mut queues = Vec::with_capacity(writers);
    for _ in 0..writers {
        let (sender, receiver) = mpsc::channel::<Pending>(QUEUE);
        queues.push(sender);
        let receiver = Arc::new(Mutex::new(receiver));
        if store.dialect == Dialect::Sqlite {
            let (store, receiver) = (store.clone(), receiver.clone());
            let thread = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|runtime| {
                    std::thread::Builder::new()
                        .name("store-writer".into())
                        .spawn(move || runtime.block_on(write_batches(store, receiver)))
                });
            match thread {
                Ok(_) => continue,
                Err(error) => {
                    tracing::warn!(error = %error, "no thread for the store writer; it runs with the server's tasks")
                }
            }
        }
        tokio::spawn(write_batches(store.clone(), receiver));
    }
    Appender {
        queues: queues.into(),
    }
}

/// A writer: takes what has queued (up to [`MAX_BATCH`]), stores it, answers each sender.
async fn write_batches(store: Store, receiver: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let received = receiver.lock().await.recv_many(&mut batch, MAX_BATCH).await;
        if received == 0 {
            return;
        }
        let (messages, replies): (Vec<_>, Vec<_>) = batch
            .drain(..)
            .map(|pending| (pending.message, pending.reply))
            .unzip();
        let results = store.append_many(messages).await;
        for (reply, result) in replies.into_iter().zip(results) {
            // A sender that went away still had its message stored; a resend with the same
            // client_msg_id gets the stored one.
            let _ = reply.send(result);
        }
    }
}

fn closed() -> StoreError {
    StoreError::Database(sqlx::Error::PoolClosed)
}

fn not_assigned() -> StoreError {
    StoreError::Conflict("conversation is not assigned to this agent".into())
}

/// Placeholders for a statement whose values are bound in the order they appear: `?` on SQLite
/// (a numbered name costs SQLite a lookup through every earlier name, quadratic in a batch's
/// thousands of values), `$N` on PostgreSQL.
struct Placeholders {
    dialect: Dialect,
    count: usize,
}

impl Placeholders {
    fn new(dialect: Dialect) -> Self {
        Placeholders { dialect, count: 0 }
    }

    fn next(&mut self) -> String {
        self.count += 1;
        match self.dialect {
            Dialect::Sqlite => "?".to_owned(),
            Dialect::Postgres => format!("${}", self.count),
        }
    }

    /// `count` placeholders, comma-separated.
    fn list(&mut self, count: usize) -> String {
        (0..count)
            .map(|_| self.next())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A bulk message's place in the batch: its conversation and what it will store.
struct Planned {
    index: usize,
    message: MessageRecord,
    conversation: Conversation,
}

impl Store {
    /// Queues a message for the writers (waiting only for room in the queue). One caller's
    /// messages are stored in the order it submits them; [`PendingAppend::stored`] waits for
    /// the result, so a caller can have several messages on their way at once.
    pub async fn submit(&self, message: NewMessage) -> PendingAppend {
        let Some(appender) = &self.appender else {
            let mut results = self.append_many(vec![message]).await;
            return PendingAppend::Done(results.pop().unwrap_or_else(|| Err(closed())));
        };
        let (reply, answer) = oneshot::channel();
        let queue = appender.queue_for(&message);
        match queue.send(Pending { message, reply }).await {
            Ok(()) => PendingAppend::Queued(answer),
            Err(_) => PendingAppend::Done(Err(closed())),
        }
    }

    /// Stores one message through the writer queue (group commit).
    pub(super) async fn append(&self, message: NewMessage) -> StoreResult<Appended> {
        self.submit(message).await.stored().await
    }

    /// Stores several messages, in order, with one transaction for all that can be stored in
    /// bulk; one result per message, in the same order.
    pub async fn append_many(&self, messages: Vec<NewMessage>) -> Vec<StoreResult<Appended>> {
        let mut results: Vec<Option<StoreResult<Appended>>> =
            messages.iter().map(|_| None).collect();
        let mut start = 0;
        while start < messages.len() {
            let range = start..(start + MAX_BATCH).min(messages.len());
            start = range.end;
            if let Err(error) = self
                .append_batch(&messages[range.clone()], &mut results[range.clone()])
                .await
            {
                tracing::warn!(error = %error, count = range.len(), "batched append failed; storing the batch one by one");
                results[range].iter_mut().for_each(|result| *result = None);
            }
        }
        let mut out = Vec::with_capacity(messages.len());
        for (message, result) in messages.iter().zip(results) {
            out.push(match result {
                Some(result) => result,
                None => self.append_one(message).await,
            });
        }
        out
    }

    /// The bulk transaction. Fills `results` for the messages it stored, resent and refused;
    /// leaves `None` for those that need [`Store::append_one`]. On an error nothing is stored.
    async fn append_batch(
        &self,
        messages: &[NewMessage],
        results: &mut [Option<StoreResult<Appended>>],
    ) -> StoreResult<()> {
        let now = now_ms();
        // The statements' text depends on the batch's size: cache the prepared statements of a
        // batch of one (the unloaded case, where their preparation would show) and no others.
        let cache = messages.len() == 1;
        let (_guard, mut tx) = self.write().await?;

        // 1. Lock every conversation the batch touches, in id order (no deadlock between
        // batches on PostgreSQL; SQLite has one writer).
        let mut customers: Vec<&str> = Vec::new();
        let mut conversation_ids: Vec<&str> = Vec::new();
        for message in messages {
            match message {
                NewMessage::Customer { customer, .. } => customers.push(&customer.id),
                NewMessage::Agent {
                    conversation_id, ..
                } => conversation_ids.push(conversation_id),
            }
        }
        customers.sort_unstable();
        customers.dedup();
        conversation_ids.sort_unstable();
        conversation_ids.dedup();
        let mut marks = Placeholders::new(self.dialect);
        let mut filters = Vec::new();
        if !customers.is_empty() {
            filters.push(format!("customer_id IN ({})", marks.list(customers.len())));
        }
        if !conversation_ids.is_empty() {
            filters.push(format!("id IN ({})", marks.list(conversation_ids.len())));
        }
        let lock = if self.dialect == Dialect::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE {} ORDER BY id{lock}",
            filters.join(" OR ")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(cache);
        for value in customers.iter().chain(&conversation_ids) {
            query = query.bind(*value);
        }
        let mut by_id: HashMap<String, Conversation> = HashMap::new();
        let mut by_customer: HashMap<String, String> = HashMap::new();
        for row in query.fetch_all(&mut *tx).await? {
            let conversation = conversation_from_row(&row)?;
            by_customer.insert(conversation.customer_id.clone(), conversation.id.clone());
            by_id.insert(conversation.id.clone(), conversation);
        }

        // 2. Which messages go in bulk: those of open conversations (and an agent's only where
        // the conversation is assigned to them). A customer without an open conversation has
        // all their messages of this batch stored one by one, in order, afterwards.
        let mut bulk: Vec<(usize, String)> = Vec::new();
        for (index, message) in messages.iter().enumerate() {
            match message {
                NewMessage::Customer { customer, .. } => {
                    let open = by_customer
                        .get(&customer.id)
                        .and_then(|id| by_id.get(id))
                        .filter(|conversation| conversation.state != ConversationState::Closed);
                    if let Some(conversation) = open {
                        bulk.push((index, conversation.id.clone()));
                    }
                }
                NewMessage::Agent {
                    conversation_id,
                    agent_id,
                    ..
                } => match by_id.get(conversation_id) {
                    Some(conversation)
                        if conversation.state == ConversationState::Assigned
                            && conversation.agent_id.as_deref() == Some(agent_id) =>
                    {
                        bulk.push((index, conversation_id.clone()));
                    }
                    _ => results[index] = Some(Err(not_assigned())),
                },
            }
        }

        // 3. Messages already stored under the batch's client_msg_ids (resends).
        let keyed: Vec<(&str, SenderKind, &str)> = bulk
            .iter()
            .filter_map(|(index, id)| {
                let message = &messages[*index];
                Some((id.as_str(), message.sender(), message.client_msg_id()?))
            })
            .collect();
        let mut stored: HashMap<(String, SenderKind, String), MessageRecord> = HashMap::new();
        if !keyed.is_empty() {
            let mut marks = Placeholders::new(self.dialect);
            let terms: Vec<String> = (0..keyed.len())
                .map(|_| {
                    format!(
                        "(conversation_id = {} AND sender_kind = {} AND client_msg_id = {})",
                        marks.next(),
                        marks.next(),
                        marks.next()
                    )
                })
                .collect();
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE {}",
                terms.join(" OR ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(cache);
            for (conversation_id, sender, client_msg_id) in &keyed {
                query = query
                    .bind(*conversation_id)
                    .bind(sender.as_str())
                    .bind(*client_msg_id);
            }
            for row in query.fetch_all(&mut *tx).await? {
                let message = message_from_row(&row)?;
                if let Some(client_msg_id) = message.client_msg_id.clone() {
                    stored.insert(
                        (
                            message.conversation_id.clone(),
                            message.sender,
                            client_msg_id,
                        ),
                        message,
                    );
                }
            }
        }

        // 4. Seqs in arrival order; a resend (stored before, or earlier in this batch) returns
        // the stored message.
        let mut planned: Vec<Planned> = Vec::new();
        for (index, id) in bulk {
            let message = &messages[index];
            let Some(conversation) = by_id.get_mut(&id) else {
                continue;
            };
            let key = message
                .client_msg_id()
                .map(|client| (id.clone(), message.sender(), client.to_owned()));
            if let Some(existing) = key.as_ref().and_then(|key| stored.get(key)) {
                results[index] = Some(Ok(Appended::resent(existing.clone(), conversation.clone())));
                continue;
            }
            conversation.last_seq += 1;
            conversation.updated_at = now;
            if message.sender() == SenderKind::Agent {
                conversation.first_response_at.get_or_insert(now);
            }
            let record = message.record(&id, conversation.last_seq, now);
            if let Some(key) = key {
                stored.insert(key, record.clone());
            }
            planned.push(Planned {
                index,
                message: record,
                conversation: conversation.clone(),
            });
        }
        if planned.is_empty() {
            tx.commit().await?;
            return Ok(());
        }

        // 5. Each touched conversation's new last_seq (the rows are locked: absolute values).
        let touched: HashSet<&str> = planned
            .iter()
            .map(|plan| plan.message.conversation_id.as_str())
            .collect();
        let touched: Vec<&Conversation> =
            touched.into_iter().filter_map(|id| by_id.get(id)).collect();
        let answered: Vec<&Conversation> = touched
            .iter()
            .copied()
            .filter(|conversation| {
                planned.iter().any(|plan| {
                    plan.message.sender == SenderKind::Agent
                        && plan.message.conversation_id == conversation.id
                })
            })
            .collect();
        let mut marks = Placeholders::new(self.dialect);
        let mut sql = String::from("UPDATE conversations SET last_seq = CASE id");
        for _ in &touched {
            let _ = write!(sql, " WHEN {} THEN {}", marks.next(), marks.next());
        }
        let _ = write!(sql, " END, updated_at = {}", marks.next());
        if !answered.is_empty() {
            let _ = write!(
                sql,
                ", first_response_at = CASE WHEN id IN ({}) THEN COALESCE(first_response_at, {}) \
                 ELSE first_response_at END",
                marks.list(answered.len()),
                marks.next()
            );
        }
        let _ = write!(sql, " WHERE id IN ({})", marks.list(touched.len()));
        let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(cache);
        for conversation in &touched {
            query = query.bind(&conversation.id).bind(conversation.last_seq);
        }
        query = query.bind(now);
        if !answered.is_empty() {
            for conversation in &answered {
                query = query.bind(&conversation.id);
            }
            query = query.bind(now);
        }
        for conversation in &touched {
            query = query.bind(&conversation.id);
        }
        query.execute(&mut *tx).await?;

        // 6. Every message in one statement.
        let mut marks = Placeholders::new(self.dialect);
        let rows: Vec<String> = (0..planned.len())
            .map(|_| format!("({})", marks.list(9)))
            .collect();
        let sql = format!(
            "INSERT INTO messages (conversation_id, seq, tenant_id, sender_kind, sender_id, text, \
             client_msg_id, created_at, meta) VALUES {}",
            rows.join(", ")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(cache);
        for plan in &planned {
            let message = &plan.message;
            query = query
                .bind(&message.conversation_id)
                .bind(message.seq)
                .bind(&plan.conversation.tenant_id)
                .bind(message.sender.as_str())
                .bind(message.sender_id.clone())
                .bind(&message.text)
                .bind(message.client_msg_id.clone())
                .bind(message.created_at)
                .bind(message.meta.as_ref().map(|meta| meta.to_string()));
        }
        query.execute(&mut *tx).await?;
        tx.commit().await?;

        for plan in planned {
            results[plan.index] = Some(Ok(Appended {
                message: plan.message,
                conversation: plan.conversation,
                duplicate: false,
                created: false,
                reopened: false,
            }));
        }
        Ok(())
    }

    /// One message in its own transaction: everything the batch leaves over.
    pub(super) async fn append_one(&self, message: &NewMessage) -> StoreResult<Appended> {
        match message {
            NewMessage::Customer {
                customer,
                client_msg_id,
                entry,
                ..
            } => {
                self.append_customer_one(message, customer, client_msg_id.as_deref(), entry)
                    .await
            }
            NewMessage::Agent {
                conversation_id,
                agent_id,
                client_msg_id,
                ..
            } => {
                self.append_agent_one(message, conversation_id, agent_id, client_msg_id)
                    .await
            }
        }
    }

    async fn append_customer_one(
        &self,
        new: &NewMessage,
        customer: &Customer,
        client_msg_id: Option<&str>,
        entry: &Entry,
    ) -> StoreResult<Appended> {
        let now = now_ms();
        let (_guard, mut tx) = self.write().await?;
        let created = sqlx::query(
            "INSERT INTO conversations (id, tenant_id, customer_id, channel, state, skill_group, priority, queue_key, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (customer_id) DO NOTHING",
        )
        .bind(new_id("cv_"))
        .bind(&customer.tenant_id)
        .bind(&customer.id)
        .bind(&customer.channel)
        .bind(entry.state.as_str())
        .bind(&entry.skill_group)
        .bind(entry.priority)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        // Taking the next seq first locks the conversation row (PostgreSQL), so the duplicate
        // check below sees any concurrent send of the same client_msg_id.
        let sql = format!(
            "UPDATE conversations SET last_seq = last_seq + 1, updated_at = $1 WHERE customer_id = $2 \
             RETURNING {CONVERSATION_COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(now)
            .bind(&customer.id)
            .fetch_one(&mut *tx)
            .await?;
        let mut conversation = conversation_from_row(&row)?;
        if let Some(client_msg_id) = client_msg_id {
            if let Some(existing) = find_by_client_id(
                &mut tx,
                &conversation.id,
                SenderKind::Customer,
                client_msg_id,
            )
            .await?
            {
                tx.rollback().await?;
                conversation.last_seq -= 1;
                return Ok(Appended::resent(existing, conversation));
            }
        }
        let actor = Actor::customer(&customer.id);
        if created {
            insert_event(&mut tx, &conversation, "created", &actor, None).await?;
            if entry.state == ConversationState::Queued {
                insert_event(
                    &mut tx,
                    &conversation,
                    "queued",
                    &actor,
                    Some("new conversation"),
                )
                .await?;
            }
        }
        let reopened = conversation.state == ConversationState::Closed;
        if reopened {
            sqlx::query(
                "UPDATE conversations SET state = $1, skill_group = $2, priority = $3, queue_key = $4, \
                 handoff_reason = NULL, assigned_at = NULL, first_response_at = NULL, closed_at = NULL WHERE id = $5",
            )
            .bind(entry.state.as_str())
            .bind(&entry.skill_group)
            .bind(entry.priority)
            .bind(now)
            .bind(&conversation.id)
            .execute(&mut *tx)
            .await?;
            conversation.state = entry.state;
            conversation.skill_group = entry.skill_group.clone();
            conversation.priority = entry.priority;
            conversation.queue_key = now;
            insert_event(
                &mut tx,
                &conversation,
                "reopened",
                &actor,
                Some("new customer message"),
            )
            .await?;
        }
        let message = new.record(&conversation.id, conversation.last_seq, now);
        commit_one(tx, conversation, message, created, reopened).await
    }

    async fn append_agent_one(
        &self,
        new: &NewMessage,
        conversation_id: &str,
        agent_id: &str,
        client_msg_id: &str,
    ) -> StoreResult<Appended> {
        let now = now_ms();
        let (_guard, mut tx) = self.write().await?;
        let sql = format!(
            "UPDATE conversations SET last_seq = last_seq + 1, updated_at = $1, \
             first_response_at = COALESCE(first_response_at, $1) \
             WHERE id = $2 AND agent_id = $3 AND state = 'assigned' RETURNING {CONVERSATION_COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(now)
            .bind(conversation_id)
            .bind(agent_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Err(not_assigned());
        };
        let mut conversation = conversation_from_row(&row)?;
        if let Some(existing) =
            find_by_client_id(&mut tx, conversation_id, SenderKind::Agent, client_msg_id).await?
        {
            tx.rollback().await?;
            conversation.last_seq -= 1;
            return Ok(Appended::resent(existing, conversation));
        }
        let message = new.record(conversation_id, conversation.last_seq, now);
        commit_one(tx, conversation, message, false, false).await
    }
}
