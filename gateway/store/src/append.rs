//! Appending chat messages with group commit.
//!
//! Customer and agent messages go through a queue to the store's writers (one on SQLite, a few
//! on PostgreSQL, each sender's messages always to the same one). A writer takes whatever has
//! queued up (at most [`MAX_BATCH`]) and stores it in one transaction: lock the conversations,
//! look up resent `client_msg_id`s, move each conversation's `last_seq` on by its messages,
//! insert every message. Under load the messages that arrive while one batch commits form the
//! next, so commits (and, on PostgreSQL, WAL flushes) are shared; unloaded, a batch of one costs
//! what a single transaction did.
//!
//! On PostgreSQL each of those steps is one statement, whatever the batch's size. The SQLite
//! writer has a connection of its own that it drives through SQLite's C API (sqlx hands out the
//! handle for that): each step is a prepared statement run per row, with no hop to another
//! thread, which is what a statement through sqlx mostly cost.
//!
//! Everything the batch cannot do in bulk goes through [`Store::append_one`], one transaction per
//! message through the pool, after the batch: a customer's first message (which creates the
//! conversation) or one that reopens a closed conversation, and every message of the batch if a
//! statement of the batch fails (so one bad message never fails the others). The invariants are
//! the store's: seqs contiguous per conversation in arrival order, a `client_msg_id` stored once,
//! agents write only to conversations assigned to them.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use sqlx::AssertSqlSafe;
use switchboard_channels::web::SenderKind;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::{
    conversation_from_row, find_by_client_id, insert_event_at, insert_message, message_from_row,
    Actor, Appended, Conversation, ConversationState, Customer, Dialect, Entry, MessageRecord,
    Store, StoreError, StoreResult, Tx, CONVERSATION_COLUMNS, MESSAGE_COLUMNS,
};
use crate::queue::{closed, Appender, NewMessage, Pending, PendingAppend, MAX_BATCH, QUEUE};
use crate::util::{new_id, now_ms};

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

/// Starts the writer tasks for `store` (a store without an appender of its own: the tasks end
/// when the last sender, held by the store's clones, is dropped): one on SQLite, which has one
/// writer anyway, `writers` on PostgreSQL, where several batches can commit at once.
///
/// On SQLite the writer runs on a thread of its own, with a connection of its own (`url`) that
/// it drives through SQLite's C API ([`DirectTx`]): through sqlx every statement is a hop to the
/// connection's worker thread and back, and those hops were most of an unloaded message's time.
pub(crate) fn start(store: &Store, url: &str, writers: usize) -> Appender {
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
            let (store, receiver, url) = (store.clone(), receiver.clone(), url.to_owned());
            let thread = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|runtime| {
                    std::thread::Builder::new()
                        .name("store-writer".into())
                        .spawn(move || runtime.block_on(write_sqlite_batches(store, receiver, url)))
                });
            match thread {
                Ok(_) => continue,
                Err(error) => {
                    tracing::warn!(error = %error, "no thread for the store writer; it runs with the server's tasks")
                }
            }
        }
        tokio::spawn(write_batches(store.clone(), receiver, None));
    }
    Appender {
        queues: queues.into(),
    }
}

/// The SQLite writer: opens its connection through sqlx, takes the connection's handle from
/// sqlx's worker thread (sqlx's lock for direct use of the C API) and writes every batch on it.
/// Without that connection it writes through the pool.
async fn write_sqlite_batches(
    store: Store,
    receiver: Arc<Mutex<mpsc::Receiver<Pending>>>,
    url: String,
) {
    use sqlx::{ConnectOptions as _, Connection as _};
    let connected = async {
        let mut connection = url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()?
            .connect()
            .await?;
        for pragma in super::SQLITE_PRAGMAS {
            sqlx::query(*pragma).execute(&mut connection).await?;
        }
        sqlx::query(store.sqlite_synchronous.pragma())
            .execute(&mut connection)
            .await?;
        Ok::<_, StoreError>(connection)
    };
    let mut connection = match connected.await {
        Ok(connection) => connection,
        Err(error) => {
            tracing::warn!(error = %error, "no connection of its own for the SQLite writer; it writes through the pool");
            return write_batches(store, receiver, None).await;
        }
    };
    match connection.lock_handle().await {
        Ok(mut handle) => {
            // SAFETY: the handle is locked away from sqlx's worker thread for as long as `direct`
            // lives (it is dropped before `handle`), and only this thread uses it; `from_handle`
            // leaves the connection open when dropped, for sqlx to close.
            #[allow(unsafe_code)]
            let direct =
                unsafe { rusqlite::Connection::from_handle(handle.as_raw_handle().as_ptr()) };
            match direct {
                Ok(mut direct) => write_batches(store, receiver, Some(&mut direct)).await,
                Err(error) => {
                    tracing::warn!(error = %error, "SQLite writer cannot use its connection; it writes through the pool");
                    write_batches(store, receiver, None).await
                }
            }
        }
        Err(error) => {
            tracing::warn!(error = %error, "SQLite writer cannot lock its connection; it writes through the pool");
            write_batches(store, receiver, None).await
        }
    }
    let _ = connection.close().await;
}

/// A writer: takes what has queued (up to [`MAX_BATCH`]), stores it, answers each sender.
async fn write_batches(
    store: Store,
    receiver: Arc<Mutex<mpsc::Receiver<Pending>>>,
    mut direct: Option<&mut rusqlite::Connection>,
) {
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
        let results = store.append_many_on(direct.as_deref_mut(), messages).await;
        for (reply, result) in replies.into_iter().zip(results) {
            // A sender that went away still had its message stored; a resend with the same
            // client_msg_id gets the stored one.
            let _ = reply.send(result);
        }
    }
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

/// A batch's transaction and the four things a batch does in it.
///
/// Through the pool each is one statement whatever the batch's size (a round trip saved per
/// message counts there). On the SQLite writer's own connection ([`DirectTx`]) each is a prepared
/// statement run once per row: there a statement costs microseconds, and the statements stay
/// prepared.
enum BatchTx<'a> {
    Pool {
        tx: Tx<'a>,
        dialect: Dialect,
        /// Keep the statements prepared (a batch of one: their text depends on the size).
        cache: bool,
    },
    Direct(DirectTx<'a>),
}

impl BatchTx<'_> {
    /// The conversations of `customers` and those with ids `ids`, locked for the transaction
    /// (`FOR UPDATE` in id order on PostgreSQL: no deadlock between batches; SQLite has one
    /// writer).
    async fn conversations(
        &mut self,
        customers: &[&str],
        ids: &[&str],
    ) -> StoreResult<Vec<Conversation>> {
        let (tx, dialect, cache) = match self {
            BatchTx::Pool { tx, dialect, cache } => (tx, *dialect, *cache),
            BatchTx::Direct(direct) => return direct.conversations(customers, ids),
        };
        let mut marks = Placeholders::new(dialect);
        let mut filters = Vec::new();
        if !customers.is_empty() {
            filters.push(format!("customer_id IN ({})", marks.list(customers.len())));
        }
        if !ids.is_empty() {
            filters.push(format!("id IN ({})", marks.list(ids.len())));
        }
        let lock = if dialect == Dialect::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE {} ORDER BY id{lock}",
            filters.join(" OR ")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(cache);
        for value in customers.iter().chain(ids) {
            query = query.bind(*value);
        }
        let rows = query.fetch_all(&mut **tx).await?;
        rows.iter().map(conversation_from_row).collect()
    }

    /// The messages stored under these (conversation, sender, client_msg_id) keys.
    async fn stored(
        &mut self,
        keys: &[(&str, SenderKind, &str)],
    ) -> StoreResult<Vec<MessageRecord>> {
        let (tx, dialect, cache) = match self {
            BatchTx::Pool { tx, dialect, cache } => (tx, *dialect, *cache),
            BatchTx::Direct(direct) => return direct.stored(keys),
        };
        let mut marks = Placeholders::new(dialect);
        let terms: Vec<String> = (0..keys.len())
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
        for (conversation_id, sender, client_msg_id) in keys {
            query = query
                .bind(*conversation_id)
                .bind(sender.as_str())
                .bind(*client_msg_id);
        }
        let rows = query.fetch_all(&mut **tx).await?;
        rows.iter().map(message_from_row).collect()
    }

    /// Sets each touched conversation's `last_seq` (absolute: the rows are locked) and
    /// `updated_at`, and `first_response_at` where an agent answered for the first time.
    async fn set_last_seqs(
        &mut self,
        touched: &[&Conversation],
        answered: &[&Conversation],
        now: i64,
    ) -> StoreResult<()> {
        let (tx, dialect, cache) = match self {
            BatchTx::Pool { tx, dialect, cache } => (tx, *dialect, *cache),
            BatchTx::Direct(direct) => return direct.set_last_seqs(touched, answered, now),
        };
        let mut marks = Placeholders::new(dialect);
        let mut sql = String::from("UPDATE conversations SET last_seq = CASE id");
        for _ in touched {
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
        for conversation in touched {
            query = query.bind(&conversation.id).bind(conversation.last_seq);
        }
        query = query.bind(now);
        if !answered.is_empty() {
            for conversation in answered {
                query = query.bind(&conversation.id);
            }
            query = query.bind(now);
        }
        for conversation in touched {
            query = query.bind(&conversation.id);
        }
        query.execute(&mut **tx).await?;
        Ok(())
    }

    /// Inserts the planned messages.
    async fn insert(&mut self, planned: &[Planned]) -> StoreResult<()> {
        let (tx, dialect, cache) = match self {
            BatchTx::Pool { tx, dialect, cache } => (tx, *dialect, *cache),
            BatchTx::Direct(direct) => return direct.insert(planned),
        };
        let mut marks = Placeholders::new(dialect);
        let rows: Vec<String> = (0..planned.len())
            .map(|_| format!("({})", marks.list(9)))
            .collect();
        let sql = format!("{INSERT_MESSAGES} VALUES {}", rows.join(", "));
        let mut query = sqlx::query(AssertSqlSafe(sql)).persistent(cache);
        for plan in planned {
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
        query.execute(&mut **tx).await?;
        Ok(())
    }

    async fn commit(self) -> StoreResult<()> {
        match self {
            BatchTx::Pool { tx, .. } => Ok(tx.commit().await?),
            BatchTx::Direct(direct) => direct.commit(),
        }
    }
}

const INSERT_MESSAGES: &str =
    "INSERT INTO messages (conversation_id, seq, tenant_id, sender_kind, \
    sender_id, text, client_msg_id, created_at, meta)";

/// A write transaction on the SQLite writer's own connection, driven through SQLite's C API:
/// no hop to another thread per statement, and every statement prepared once for the writer's
/// life. Rolled back when dropped uncommitted. (`rusqlite`'s own transaction type borrows the
/// connection shared, which would make every batch future `!Send`.)
struct DirectTx<'a> {
    connection: &'a mut rusqlite::Connection,
    open: bool,
}

impl<'a> DirectTx<'a> {
    fn begin(connection: &'a mut rusqlite::Connection) -> StoreResult<Self> {
        // IMMEDIATE: the write lock at once, as the pool's writers take it.
        connection.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(DirectTx {
            connection,
            open: true,
        })
    }

    fn conversations(&self, customers: &[&str], ids: &[&str]) -> StoreResult<Vec<Conversation>> {
        let mut found = Vec::with_capacity(customers.len() + ids.len());
        for (column, values) in [("customer_id", customers), ("id", ids)] {
            if values.is_empty() {
                continue;
            }
            let mut statement = self.connection.prepare_cached(&format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE {column} = ?1"
            ))?;
            for value in values {
                let mut rows = statement.query([value])?;
                while let Some(row) = rows.next()? {
                    found.push(conversation_from_row(row)?);
                }
            }
        }
        Ok(found)
    }

    fn stored(&self, keys: &[(&str, SenderKind, &str)]) -> StoreResult<Vec<MessageRecord>> {
        let mut statement = self.connection.prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages \
             WHERE conversation_id = ?1 AND sender_kind = ?2 AND client_msg_id = ?3"
        ))?;
        let mut found = Vec::new();
        for (conversation_id, sender, client_msg_id) in keys {
            let mut rows = statement.query((conversation_id, sender.as_str(), client_msg_id))?;
            while let Some(row) = rows.next()? {
                found.push(message_from_row(row)?);
            }
        }
        Ok(found)
    }

    fn set_last_seqs(
        &self,
        touched: &[&Conversation],
        answered: &[&Conversation],
        now: i64,
    ) -> StoreResult<()> {
        let mut statement = self.connection.prepare_cached(
            "UPDATE conversations SET last_seq = ?1, updated_at = ?2, \
             first_response_at = COALESCE(first_response_at, ?3) WHERE id = ?4",
        )?;
        for conversation in touched {
            let first_response = answered
                .iter()
                .any(|other| other.id == conversation.id)
                .then_some(now);
            statement.execute((conversation.last_seq, now, first_response, &conversation.id))?;
        }
        Ok(())
    }

    fn insert(&self, planned: &[Planned]) -> StoreResult<()> {
        let mut statement = self.connection.prepare_cached(&format!(
            "{INSERT_MESSAGES} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        ))?;
        for plan in planned {
            let message = &plan.message;
            statement.execute((
                &message.conversation_id,
                message.seq,
                &plan.conversation.tenant_id,
                message.sender.as_str(),
                &message.sender_id,
                &message.text,
                &message.client_msg_id,
                message.created_at,
                message.meta.as_ref().map(|meta| meta.to_string()),
            ))?;
        }
        Ok(())
    }

    fn commit(mut self) -> StoreResult<()> {
        self.connection.prepare_cached("COMMIT")?.execute([])?;
        self.open = false;
        Ok(())
    }
}

impl Drop for DirectTx<'_> {
    fn drop(&mut self) {
        if self.open {
            if let Err(error) = self.connection.execute_batch("ROLLBACK") {
                tracing::warn!(error = %error, "rolling back a batch on the SQLite writer failed");
            }
        }
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
        self.append_many_on(None, messages).await
    }

    /// [`Store::append_many`], with the batches on the SQLite writer's own connection if given.
    async fn append_many_on(
        &self,
        mut direct: Option<&mut rusqlite::Connection>,
        messages: Vec<NewMessage>,
    ) -> Vec<StoreResult<Appended>> {
        let mut results: Vec<Option<StoreResult<Appended>>> =
            messages.iter().map(|_| None).collect();
        let mut start = 0;
        while start < messages.len() {
            let range = start..(start + MAX_BATCH).min(messages.len());
            start = range.end;
            if let Err(error) = self
                .append_batch(
                    direct.as_deref_mut(),
                    &messages[range.clone()],
                    &mut results[range.clone()],
                )
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
        direct: Option<&mut rusqlite::Connection>,
        messages: &[NewMessage],
        results: &mut [Option<StoreResult<Appended>>],
    ) -> StoreResult<()> {
        let now = now_ms();
        let (_guard, mut tx) = self.begin_batch(direct, messages.len()).await?;

        // 1. Every conversation the batch touches, locked.
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
        let mut by_id: HashMap<String, Conversation> = HashMap::new();
        let mut by_customer: HashMap<String, String> = HashMap::new();
        for conversation in tx.conversations(&customers, &conversation_ids).await? {
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
            for message in tx.stored(&keyed).await? {
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
            return tx.commit().await;
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
        tx.set_last_seqs(&touched, &answered, now).await?;

        // 6. The messages.
        tx.insert(&planned).await?;
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

    /// A batch's transaction, on the SQLite writer's connection if given, else from the pool.
    async fn begin_batch<'a>(
        &'a self,
        direct: Option<&'a mut rusqlite::Connection>,
        size: usize,
    ) -> StoreResult<(Option<tokio::sync::MutexGuard<'a, ()>>, BatchTx<'a>)> {
        match direct {
            Some(connection) => {
                // The pool's writers take the same lock before they write.
                let guard = match &self.write_lock {
                    Some(lock) => Some(lock.lock().await),
                    None => None,
                };
                Ok((guard, BatchTx::Direct(DirectTx::begin(connection)?)))
            }
            None => {
                let (guard, tx) = self.write().await?;
                // The statements' text depends on the batch's size: cache the prepared
                // statements of a batch of one (the unloaded case, where their preparation
                // would show) and no others.
                let tx = BatchTx::Pool {
                    tx,
                    dialect: self.dialect,
                    cache: size == 1,
                };
                Ok((guard, tx))
            }
        }
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
            insert_event_at(&mut tx, &conversation, "created", &actor, None, now).await?;
            if entry.state == ConversationState::Queued {
                insert_event_at(
                    &mut tx,
                    &conversation,
                    "queued",
                    &actor,
                    Some("new conversation"),
                    now,
                )
                .await?;
            }
        }
        let reopened = conversation.state == ConversationState::Closed;
        if reopened {
            sqlx::query(
                "UPDATE conversations SET state = $1, skill_group = $2, priority = $3, queue_key = $4, \
                 handoff_reason = NULL, assigned_at = NULL, first_response_at = NULL, closed_at = NULL, \
                 bot_unsure_streak = 0 WHERE id = $5",
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
            insert_event_at(
                &mut tx,
                &conversation,
                "reopened",
                &actor,
                Some("new customer message"),
                now,
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
