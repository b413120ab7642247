//! The store: tenants, customers, agents, conversations, messages, conversation events and canned
//! replies, on SQLite (embedded default) or PostgreSQL (cluster), chosen once at start-up by URL.
//!
//! One implementation serves both backends through sqlx's `Any` driver with runtime-checked
//! queries: the SQL here is the common subset (`$N` placeholders, `RETURNING`, `ON CONFLICT`),
//! and the dialect differences live in `migrations/sqlite` and `migrations/postgres`. Every
//! change of conversation state is written in the same transaction as its event.
//!
//! Invariants this module keeps:
//! - a message gets its per-conversation `seq` in the transaction that stores it; seqs are
//!   contiguous from 1;
//! - a message with a `client_msg_id` is stored once per conversation and sender kind; a resend
//!   returns the stored message;
//! - a conversation is assigned only from `queued` (a conditional update), so two agents can
//!   never hold one conversation.

mod acks;
mod append;
pub mod apps;
pub mod attachments;
pub mod blobs;
mod bot;
mod connect;
pub mod crypto;
pub mod erasure;
pub mod export;
pub mod gaps;
pub mod identity;
mod intent_models;
pub mod jobs;
mod knowledge;
pub mod members;
mod model;
pub mod policies;
mod queue;
pub mod recovery;
pub mod reports;
mod settings;
pub mod testing;
pub mod util;

pub use model::*;
pub use queue::{NewMessage, PendingAppend, MAX_BATCH};
use std::collections::HashMap;
use std::sync::Arc;

use sqlx::any::AnyRow;
// Dynamic SQL here is only ever built from this module's constant column lists and clauses;
// every value is bound.
use sqlx::{AnyPool, AssertSqlSafe, Row};
use switchboard_channels::web::SenderKind;
use switchboard_channels::ChannelKind;

use crate::crypto::FieldCipher;
use crate::util::{new_id, now_ms};

const CONVERSATION_COLUMNS: &str = "id, tenant_id, customer_id, channel, state, skill_group, priority, agent_id, \
    queue_key, handoff_reason, last_seq, customer_acked_seq, agent_acked_seq, created_at, updated_at, \
    assigned_at, first_response_at, closed_at";
/// What a message adds to its text in a frame sent to a client, roughly (ids, seq, sender,
/// time): how [`Store::messages_page`] counts a message's size.
pub const MESSAGE_OVERHEAD_BYTES: usize = 160;
const MESSAGE_COLUMNS: &str =
    "conversation_id, seq, sender_kind, sender_id, text, client_msg_id, created_at, meta";

/// Every SQLite connection's settings.
const SQLITE_PRAGMAS: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "PRAGMA busy_timeout = 10000",
    "PRAGMA foreign_keys = ON",
    // Group commit writes many rows per statement: its statement journal stays in memory.
    "PRAGMA temp_store = MEMORY",
    // Pages are read through a memory map: each connection's page cache starts cold whenever
    // another connection has written.
    "PRAGMA mmap_size = 268435456",
    // Hot pages (each open conversation's newest index leaves) go to the WAL with every commit;
    // checkpointing less often copies each to the database once per checkpoint instead of once
    // per 1,000 WAL pages.
    "PRAGMA wal_autocheckpoint = 16384",
];

/// How durable an SQLite commit is before the store answers (`PRAGMA synchronous`, applied to
/// every pooled connection and to the message writer's own connection).
///
/// - `full` (the default): each commit is synced to disk before it returns, so a receipt is never
///   sent for a message that a power failure or an OS crash can lose ("stored before
///   acknowledged").
/// - `normal`: in WAL mode commits are synced only at checkpoints. A crash of the process loses
///   nothing, but a power failure or an OS crash can lose the last commits, whose receipts were
///   already sent. Faster on disks with slow syncs; see docs/benchmarks.md.
///
/// PostgreSQL ignores it (its own `synchronous_commit` applies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    #[default]
    Full,
    Normal,
}

impl SqliteSynchronous {
    /// The statement that sets it on a connection.
    pub fn pragma(self) -> &'static str {
        match self {
            SqliteSynchronous::Full => "PRAGMA synchronous = FULL",
            SqliteSynchronous::Normal => "PRAGMA synchronous = NORMAL",
        }
    }
}

/// Options of [`Store::connect_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    pub sqlite_synchronous: SqliteSynchronous,
    /// How often read acks recorded with [`Store::record_ack`] are written (the highest seq per
    /// conversation and side, in one transaction); 0: each is written when it arrives.
    pub ack_flush_ms: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            sqlite_synchronous: SqliteSynchronous::default(),
            ack_flush_ms: 150,
        }
    }
}

/// Requeued conversations sort before every newly queued one (keys are ms timestamps), FIFO among
/// themselves: an agent's lost chats go back to the head of the queue.
const HEAD_OF_QUEUE_OFFSET: i64 = 10_000_000_000_000;

/// When a queued conversation started waiting, from its queue key (requeued conversations carry
/// their time shifted by the head-of-queue offset).
pub fn queued_since(queue_key: i64, now: i64) -> i64 {
    if queue_key < now - HEAD_OF_QUEUE_OFFSET / 2 {
        queue_key + HEAD_OF_QUEUE_OFFSET
    } else {
        queue_key
    }
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    cipher: FieldCipher,
    /// SQLite has one writer; serializing write transactions here avoids busy errors when a
    /// read-then-write transaction would otherwise be refused. PostgreSQL uses row locks.
    write_lock: Option<Arc<tokio::sync::Mutex<()>>>,
    /// The queue to the writer tasks that store chat messages with group commit (`append`).
    appender: Option<queue::Appender>,
    /// SQLite's durability level, for the writer's own connection too.
    sqlite_synchronous: SqliteSynchronous,
    /// Read acks waiting for their flusher (`acks`).
    acks: Arc<acks::Acks>,
}

pub(crate) type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

impl Store {
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// SQLite's durability level as the database reports it on a pooled connection (`None` on
    /// PostgreSQL).
    pub async fn sqlite_synchronous(&self) -> StoreResult<Option<SqliteSynchronous>> {
        if self.dialect != Dialect::Sqlite {
            return Ok(None);
        }
        let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&self.pool)
            .await?;
        Ok(match level {
            1 => Some(SqliteSynchronous::Normal),
            2 => Some(SqliteSynchronous::Full),
            _ => None,
        })
    }

    /// Applies the migrations of this store's dialect.
    pub async fn migrate(&self) -> StoreResult<()> {
        let migrator = match self.dialect {
            Dialect::Sqlite => sqlx::migrate!("../../migrations/sqlite"),
            Dialect::Postgres => sqlx::migrate!("../../migrations/postgres"),
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Writes the pending acks, then closes the pool.
    pub async fn close(&self) {
        if let Err(error) = self.flush_acks().await {
            tracing::warn!(error = %error, "pending acks not stored at close");
        }
        self.pool.close().await;
    }

    pub(crate) async fn write(
        &self,
    ) -> StoreResult<(Option<tokio::sync::MutexGuard<'_, ()>>, Tx<'_>)> {
        let guard = match &self.write_lock {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        // BEGIN IMMEDIATE takes SQLite's write lock at once, so a transaction that reads before
        // it writes is never refused the upgrade by an autocommit write (acks) in between.
        let tx = match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.pool.begin().await?,
        };
        Ok((guard, tx))
    }

    // ---- tenants ----------------------------------------------------------------------------

    pub async fn create_tenant(&self, id: &str, admin_key_hash: &str) -> StoreResult<Tenant> {
        let now = now_ms();
        let result = sqlx::query(
            "INSERT INTO tenants (id, admin_key_hash, settings, created_at) VALUES ($1, $2, '{}', $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(admin_key_hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "tenant `{id}` already exists"
            )));
        }
        Ok(Tenant {
            id: id.to_owned(),
            admin_key_hash: admin_key_hash.to_owned(),
            settings: serde_json::json!({}),
            created_at: now,
        })
    }

    pub async fn tenant(&self, id: &str) -> StoreResult<Option<Tenant>> {
        let row = sqlx::query(
            "SELECT id, admin_key_hash, settings, created_at FROM tenants WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let settings: String = row.try_get("settings")?;
            Ok(Tenant {
                id: row.try_get("id")?,
                admin_key_hash: row.try_get("admin_key_hash")?,
                settings: serde_json::from_str(&settings).unwrap_or_else(|_| serde_json::json!({})),
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    pub async fn set_admin_key_hash(&self, tenant: &str, admin_key_hash: &str) -> StoreResult<()> {
        let result = sqlx::query("UPDATE tenants SET admin_key_hash = $1 WHERE id = $2")
            .bind(admin_key_hash)
            .bind(tenant)
            .execute(&self.pool)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound("tenant"));
        }
        Ok(())
    }

    // ---- customers --------------------------------------------------------------------------

    /// The customer for a channel identity, created on first contact.
    pub async fn customer_for_identity(
        &self,
        tenant: &str,
        channel: ChannelKind,
        external_id: &str,
        profile: &CustomerProfile,
    ) -> StoreResult<Customer> {
        let id = new_id("cu_");
        let now = now_ms();
        sqlx::query(
            "INSERT INTO customers (id, tenant_id, channel, external_id, name, phone_enc, email_enc, address_enc, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant_id, channel, external_id) DO NOTHING",
        )
        .bind(&id)
        .bind(tenant)
        .bind(channel.as_str())
        .bind(external_id)
        .bind(profile.name.clone())
        .bind(self.seal(&profile.phone))
        .bind(self.seal(&profile.email))
        .bind(self.seal(&profile.address))
        .bind(now)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query(
            "SELECT id, tenant_id, channel, external_id, name, phone_enc, email_enc, address_enc, attributes, created_at, \
             token_version FROM customers WHERE tenant_id = $1 AND channel = $2 AND external_id = $3",
        )
        .bind(tenant)
        .bind(channel.as_str())
        .bind(external_id)
        .fetch_one(&self.pool)
        .await?;
        self.customer_from_row(&row)
    }

    pub async fn customer(&self, tenant: &str, id: &str) -> StoreResult<Option<Customer>> {
        let row = sqlx::query(
            "SELECT id, tenant_id, channel, external_id, name, phone_enc, email_enc, address_enc, attributes, created_at, \
             token_version FROM customers WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| self.customer_from_row(&row)).transpose()
    }

    pub async fn update_customer_profile(
        &self,
        tenant: &str,
        id: &str,
        profile: &CustomerProfile,
    ) -> StoreResult<Customer> {
        let result = sqlx::query(
            "UPDATE customers SET name = $1, phone_enc = $2, email_enc = $3, address_enc = $4 \
             WHERE tenant_id = $5 AND id = $6",
        )
        .bind(profile.name.clone())
        .bind(self.seal(&profile.phone))
        .bind(self.seal(&profile.email))
        .bind(self.seal(&profile.address))
        .bind(tenant)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound("customer"));
        }
        self.customer(tenant, id)
            .await?
            .ok_or(StoreError::NotFound("customer"))
    }

    /// The stored (encrypted) form of one contact field; a blank field is stored as NULL.
    fn seal(&self, field: &Option<String>) -> Option<String> {
        field
            .as_deref()
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(|value| self.cipher.encrypt(value))
    }

    fn open(&self, row: &AnyRow, column: &str) -> StoreResult<Option<String>> {
        let sealed: Option<String> = row.try_get(column)?;
        sealed
            .map(|value| {
                self.cipher
                    .decrypt(&value)
                    .map_err(|error| StoreError::Corrupt(error.to_string()))
            })
            .transpose()
    }

    fn customer_from_row(&self, row: &AnyRow) -> StoreResult<Customer> {
        Ok(Customer {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            channel: row.try_get("channel")?,
            external_id: row.try_get("external_id")?,
            profile: CustomerProfile {
                name: row.try_get("name")?,
                phone: self.open(row, "phone_enc")?,
                email: self.open(row, "email_enc")?,
                address: self.open(row, "address_enc")?,
            },
            attributes: parse_json_column(row, "attributes")?.unwrap_or_default(),
            created_at: row.try_get("created_at")?,
            token_version: row.try_get("token_version")?,
        })
    }

    /// Revokes every token the customer was given: their version goes up by one. Answers the
    /// new version.
    pub async fn revoke_customer_tokens(&self, tenant: &str, id: &str) -> StoreResult<i64> {
        let row = sqlx::query(
            "UPDATE customers SET token_version = token_version + 1 \
             WHERE tenant_id = $1 AND id = $2 RETURNING token_version",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("customer"))?;
        Ok(row.try_get("token_version")?)
    }

    // ---- agents -----------------------------------------------------------------------------

    pub async fn create_agent(
        &self,
        tenant: &str,
        name: &str,
        skills: &[String],
        max_concurrent: i64,
    ) -> StoreResult<Agent> {
        let agent = Agent {
            id: new_id("ag_"),
            tenant_id: tenant.to_owned(),
            name: name.to_owned(),
            skills: skills.to_vec(),
            max_concurrent,
            token_version: 1,
            created_at: now_ms(),
        };
        sqlx::query(
            "INSERT INTO agents (id, tenant_id, name, skills, max_concurrent, token_version, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&agent.id)
        .bind(tenant)
        .bind(name)
        .bind(serde_json::to_string(skills).unwrap_or_else(|_| "[]".into()))
        .bind(max_concurrent)
        .bind(agent.token_version)
        .bind(agent.created_at)
        .execute(&self.pool)
        .await?;
        Ok(agent)
    }

    pub async fn agent(&self, tenant: &str, id: &str) -> StoreResult<Option<Agent>> {
        let row = sqlx::query(
            "SELECT id, tenant_id, name, skills, max_concurrent, token_version, created_at FROM agents \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| agent_from_row(&row)).transpose()
    }

    /// Moves the agent's token version on: every token issued before stops working. `None` for
    /// an unknown agent.
    pub async fn reissue_agent_token(&self, tenant: &str, id: &str) -> StoreResult<Option<Agent>> {
        let row = sqlx::query(
            "UPDATE agents SET token_version = token_version + 1 WHERE tenant_id = $1 AND id = $2 \
             RETURNING id, tenant_id, name, skills, max_concurrent, token_version, created_at",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| agent_from_row(&row)).transpose()
    }

    pub async fn agents(&self, tenant: &str) -> StoreResult<Vec<Agent>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, name, skills, max_concurrent, token_version, created_at FROM agents \
             WHERE tenant_id = $1 ORDER BY created_at, id",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(agent_from_row).collect()
    }

    /// Open conversations per agent of a tenant.
    pub async fn agent_loads(&self, tenant: &str) -> StoreResult<HashMap<String, i64>> {
        let rows = sqlx::query(
            "SELECT agent_id, COUNT(*) AS load FROM conversations \
             WHERE tenant_id = $1 AND state = 'assigned' GROUP BY agent_id",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<String, _>("agent_id")?,
                    row.try_get::<i64, _>("load")?,
                ))
            })
            .collect()
    }

    // ---- conversations and messages ---------------------------------------------------------

    pub async fn conversation(&self, id: &str) -> StoreResult<Option<Conversation>> {
        let sql = format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| conversation_from_row(&row)).transpose()
    }

    pub async fn conversation_for_customer(
        &self,
        customer_id: &str,
    ) -> StoreResult<Option<Conversation>> {
        let sql =
            format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE customer_id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(customer_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| conversation_from_row(&row)).transpose()
    }

    /// Stores a customer's message, opening (or reopening) the customer's conversation at
    /// `entry` when needed. A repeated `client_msg_id` returns the stored message unchanged.
    pub async fn append_customer_message(
        &self,
        customer: &Customer,
        client_msg_id: Option<&str>,
        text: &str,
        entry: &Entry,
    ) -> StoreResult<Appended> {
        self.append_customer_message_with(customer, client_msg_id, text, entry, None)
            .await
    }

    /// [`Store::append_customer_message`] with the message's `meta` (flags, masking).
    pub async fn append_customer_message_with(
        &self,
        customer: &Customer,
        client_msg_id: Option<&str>,
        text: &str,
        entry: &Entry,
        meta: Option<serde_json::Value>,
    ) -> StoreResult<Appended> {
        self.append(NewMessage::Customer {
            customer: customer.clone(),
            client_msg_id: client_msg_id.map(str::to_owned),
            text: text.to_owned(),
            entry: entry.clone(),
            meta,
        })
        .await
    }

    /// Stores an agent's message in a conversation assigned to that agent.
    pub async fn append_agent_message(
        &self,
        conversation_id: &str,
        agent_id: &str,
        client_msg_id: &str,
        text: &str,
    ) -> StoreResult<Appended> {
        self.append(NewMessage::Agent {
            conversation_id: conversation_id.to_owned(),
            agent_id: agent_id.to_owned(),
            client_msg_id: client_msg_id.to_owned(),
            text: text.to_owned(),
            meta: None,
        })
        .await
    }

    /// Messages with seq greater than `after`, oldest first.
    pub async fn messages_after(
        &self,
        conversation_id: &str,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<MessageRecord>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(conversation_id)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// Messages with seq greater than `after`, oldest first, as one page for a client: at most
    /// `max_rows`, and no more once they reach `max_bytes` (each message counted as its text and
    /// [`MESSAGE_OVERHEAD_BYTES`]; the message that crosses the limit is the page's last, so a
    /// page always moves on). Rows are read a few at a time, so a conversation of long messages
    /// costs about a page of reading, not `max_rows` messages.
    pub async fn messages_page(
        &self,
        conversation_id: &str,
        after: i64,
        max_rows: usize,
        max_bytes: usize,
    ) -> StoreResult<Vec<MessageRecord>> {
        const READ_ROWS: usize = 16;
        let mut page = Vec::new();
        let mut bytes = 0;
        let mut cursor = after;
        while page.len() < max_rows && bytes < max_bytes {
            let want = READ_ROWS.min(max_rows - page.len());
            let batch = self
                .messages_after(conversation_id, cursor, want as i64)
                .await?;
            let more = batch.len() == want;
            for message in batch {
                if bytes >= max_bytes {
                    break;
                }
                bytes += message.text.len() + MESSAGE_OVERHEAD_BYTES;
                cursor = message.seq;
                page.push(message);
            }
            if !more {
                break;
            }
        }
        Ok(page)
    }

    /// The last `limit` messages, oldest first.
    pub async fn recent_messages(
        &self,
        conversation_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<MessageRecord>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 ORDER BY seq DESC LIMIT $2"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(conversation_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut messages: Vec<MessageRecord> = rows
            .iter()
            .map(message_from_row)
            .collect::<StoreResult<_>>()?;
        messages.reverse();
        Ok(messages)
    }

    /// Records how far a participant has read (never moves backwards).
    pub async fn set_acked(
        &self,
        conversation_id: &str,
        by: SenderKind,
        seq: i64,
    ) -> StoreResult<()> {
        let column = match by {
            SenderKind::Agent => "agent_acked_seq",
            _ => "customer_acked_seq",
        };
        let sql = format!(
            "UPDATE conversations SET {column} = $1 WHERE id = $2 AND {column} < $1 AND last_seq >= $1"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(seq)
            .bind(conversation_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every queue of every tenant: how many wait and for how long the oldest has.
    pub async fn queue_summary(&self) -> StoreResult<Vec<QueueSummary>> {
        self.queues_where("", None).await
    }

    /// One tenant's queues: how many wait and for how long the oldest has.
    pub async fn tenant_queues(&self, tenant: &str) -> StoreResult<Vec<QueueSummary>> {
        self.queues_where(" AND tenant_id = $1", Some(tenant)).await
    }

    async fn queues_where(
        &self,
        clause: &str,
        tenant: Option<&str>,
    ) -> StoreResult<Vec<QueueSummary>> {
        let sql = format!(
            "SELECT tenant_id, skill_group, COUNT(*) AS waiting, MIN(queue_key) AS oldest \
             FROM conversations WHERE state = 'queued'{clause} GROUP BY tenant_id, skill_group \
             ORDER BY tenant_id, skill_group"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        if let Some(tenant) = tenant {
            query = query.bind(tenant);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let now = now_ms();
        rows.iter()
            .map(|row| {
                let since = queued_since(row.try_get("oldest")?, now);
                Ok(QueueSummary {
                    tenant: row.try_get("tenant_id")?,
                    skill_group: row.try_get("skill_group")?,
                    waiting: row.try_get("waiting")?,
                    oldest_wait_ms: (now - since).max(0),
                })
            })
            .collect()
    }

    /// The tenant's queue: every queued conversation, highest priority first, then longest waiting.
    pub async fn queued_conversations(&self, tenant: &str) -> StoreResult<Vec<Conversation>> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE tenant_id = $1 AND state = 'queued' \
             ORDER BY priority DESC, queue_key, id"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(tenant)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(conversation_from_row).collect()
    }

    pub async fn assigned_conversations(&self, agent_id: &str) -> StoreResult<Vec<Conversation>> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE agent_id = $1 AND state = 'assigned' ORDER BY assigned_at, id"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(agent_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(conversation_from_row).collect()
    }

    /// Agents that hold at least one assigned conversation, with their tenant.
    pub async fn agents_holding_conversations(&self) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT DISTINCT tenant_id, agent_id FROM conversations WHERE state = 'assigned' AND agent_id IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("tenant_id")?, row.try_get("agent_id")?)))
            .collect()
    }

    /// Assigns a queued conversation; `None` if it was no longer queued. The system message that
    /// tells the customer is stored in the same transaction.
    pub async fn assign(
        &self,
        conversation_id: &str,
        agent: &Agent,
        notice: &str,
    ) -> StoreResult<Option<(Conversation, MessageRecord)>> {
        let now = now_ms();
        let (_guard, mut tx) = self.write().await?;
        let sql = format!(
            "UPDATE conversations SET state = 'assigned', agent_id = $1, assigned_at = $2, updated_at = $2 \
             WHERE id = $3 AND state = 'queued' RETURNING {CONVERSATION_COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(&agent.id)
            .bind(now)
            .bind(conversation_id)
            .fetch_optional(&mut *tx)
            .await?;
        let event = ("assigned", &Actor::system(), Some(agent.id.as_str()));
        finish_transition(tx, row, event, notice, now).await
    }

    /// Puts an assigned conversation back in a queue (agent lost, away, or transfer to a skill).
    /// `head` puts it before every newly queued conversation. `None` if it was not held by `from_agent`.
    #[allow(clippy::too_many_arguments)]
    pub async fn requeue(
        &self,
        conversation_id: &str,
        from_agent: &str,
        skill_group: Option<&str>,
        head: bool,
        kind: &str,
        actor: &Actor,
        reason: &str,
        notice: &str,
    ) -> StoreResult<Option<(Conversation, MessageRecord)>> {
        let now = now_ms();
        let queue_key = if head {
            now - HEAD_OF_QUEUE_OFFSET
        } else {
            now
        };
        let (_guard, mut tx) = self.write().await?;
        let sql = format!(
            "UPDATE conversations SET state = 'queued', agent_id = NULL, assigned_at = NULL, queue_key = $1, \
             skill_group = COALESCE($2, skill_group), updated_at = $3 \
             WHERE id = $4 AND agent_id = $5 AND state = 'assigned' RETURNING {CONVERSATION_COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(queue_key)
            .bind(skill_group.map(str::to_owned))
            .bind(now)
            .bind(conversation_id)
            .bind(from_agent)
            .fetch_optional(&mut *tx)
            .await?;
        finish_transition(tx, row, (kind, actor, Some(reason)), notice, now).await
    }

    /// Hands an assigned conversation from one agent directly to another.
    pub async fn reassign(
        &self,
        conversation_id: &str,
        from_agent: &str,
        to: &Agent,
        notice: &str,
    ) -> StoreResult<Option<(Conversation, MessageRecord)>> {
        let now = now_ms();
        let (_guard, mut tx) = self.write().await?;
        let sql = format!(
            "UPDATE conversations SET agent_id = $1, assigned_at = $2, updated_at = $2 \
             WHERE id = $3 AND agent_id = $4 AND state = 'assigned' RETURNING {CONVERSATION_COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(&to.id)
            .bind(now)
            .bind(conversation_id)
            .bind(from_agent)
            .fetch_optional(&mut *tx)
            .await?;
        let reason = format!("to agent {}", to.id);
        let event = (
            "transferred",
            &Actor::agent(from_agent),
            Some(reason.as_str()),
        );
        finish_transition(tx, row, event, notice, now).await
    }

    /// Closes a conversation held by `agent_id`. `None` if that agent does not hold it.
    pub async fn close_conversation(
        &self,
        conversation_id: &str,
        agent_id: &str,
        notice: &str,
    ) -> StoreResult<Option<(Conversation, MessageRecord)>> {
        let now = now_ms();
        let (_guard, mut tx) = self.write().await?;
        let sql = format!(
            "UPDATE conversations SET state = 'closed', closed_at = $1, updated_at = $1 \
             WHERE id = $2 AND agent_id = $3 AND state = 'assigned' RETURNING {CONVERSATION_COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(now)
            .bind(conversation_id)
            .bind(agent_id)
            .fetch_optional(&mut *tx)
            .await?;
        finish_transition(
            tx,
            row,
            ("closed", &Actor::agent(agent_id), None),
            notice,
            now,
        )
        .await
    }

    /// A tenant's conversations, most recently updated first, with the cursor of the next page.
    pub async fn list_conversations(
        &self,
        tenant: &str,
        filter: &ConversationFilter,
    ) -> StoreResult<(Vec<Conversation>, Option<String>)> {
        let limit = filter.limit.unwrap_or(50).clamp(1, 200);
        let mut sql =
            format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE tenant_id = $1");
        let mut binds = vec![Bind::Text(tenant.to_owned())];
        // Each `?` in a clause becomes the next `$N`, bound to the next value given.
        let mut clause = |text: &str, values: Vec<Bind>| {
            let mut numbered = String::new();
            for (index, part) in text.split('?').enumerate() {
                if index > 0 {
                    numbered.push_str(&format!("${}", binds.len() + 1));
                    binds.push(values[index - 1].clone());
                }
                numbered.push_str(part);
            }
            sql.push_str(&numbered);
        };
        if let Some(state) = &filter.state {
            clause(" AND state = ?", vec![Bind::Text(state.clone())]);
        }
        if let Some(channel) = &filter.channel {
            clause(" AND channel = ?", vec![Bind::Text(channel.clone())]);
        }
        if let Some(agent) = &filter.agent {
            clause(" AND agent_id = ?", vec![Bind::Text(agent.clone())]);
        }
        if let Some(from) = filter.from {
            clause(" AND updated_at >= ?", vec![Bind::Int(from)]);
        }
        if let Some(to) = filter.to {
            clause(" AND updated_at < ?", vec![Bind::Int(to)]);
        }
        if let Some(cursor) = &filter.cursor {
            let (time, id) = cursor
                .split_once('_')
                .and_then(|(time, id)| Some((time.parse::<i64>().ok()?, id.to_owned())))
                .ok_or_else(|| StoreError::Invalid("invalid cursor".into()))?;
            clause(
                " AND (updated_at < ? OR (updated_at = ? AND id < ?))",
                vec![Bind::Int(time), Bind::Int(time), Bind::Text(id)],
            );
        }
        clause(
            " ORDER BY updated_at DESC, id DESC LIMIT ?",
            vec![Bind::Int(limit + 1)],
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for bind in binds {
            query = match bind {
                Bind::Text(value) => query.bind(value),
                Bind::Int(value) => query.bind(value),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut conversations: Vec<Conversation> = rows
            .iter()
            .map(conversation_from_row)
            .collect::<StoreResult<_>>()?;
        let next = if conversations.len() as i64 > limit {
            conversations.truncate(limit as usize);
            conversations
                .last()
                .map(|last| format!("{}_{}", last.updated_at, last.id))
        } else {
            None
        };
        Ok((conversations, next))
    }

    /// A private note on a conversation (a supervisor to its agent): a `note` event, never a
    /// message, so it never reaches the customer.
    pub async fn add_note(
        &self,
        conversation: &Conversation,
        author: &str,
        text: &str,
    ) -> StoreResult<ConversationEvent> {
        let now = now_ms();
        let row = sqlx::query(
            "INSERT INTO conversation_events (conversation_id, tenant_id, kind, actor_kind, actor_id, reason, created_at) \
             VALUES ($1, $2, 'note', 'member', $3, $4, $5) RETURNING id",
        )
        .bind(&conversation.id)
        .bind(&conversation.tenant_id)
        .bind(author)
        .bind(text)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(ConversationEvent {
            id: row.try_get("id")?,
            conversation_id: conversation.id.clone(),
            kind: "note".into(),
            actor_kind: "member".into(),
            actor_id: Some(author.to_owned()),
            reason: Some(text.to_owned()),
            created_at: now,
        })
    }

    pub async fn events(&self, conversation_id: &str) -> StoreResult<Vec<ConversationEvent>> {
        let rows = sqlx::query(
            "SELECT id, conversation_id, kind, actor_kind, actor_id, reason, created_at FROM conversation_events \
             WHERE conversation_id = $1 ORDER BY id",
        )
        .bind(conversation_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ConversationEvent {
                    id: row.try_get("id")?,
                    conversation_id: row.try_get("conversation_id")?,
                    kind: row.try_get("kind")?,
                    actor_kind: row.try_get("actor_kind")?,
                    actor_id: row.try_get("actor_id")?,
                    reason: row.try_get("reason")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    // ---- canned replies ---------------------------------------------------------------------

    pub async fn canned_replies(&self, tenant: &str) -> StoreResult<Vec<CannedReply>> {
        let rows = sqlx::query(
            "SELECT id, shortcut, text FROM canned_replies WHERE tenant_id = $1 ORDER BY shortcut",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(CannedReply {
                    id: row.try_get("id")?,
                    shortcut: row.try_get("shortcut")?,
                    text: row.try_get("text")?,
                })
            })
            .collect()
    }

    /// Creates a canned reply, or replaces the one with the same id.
    pub async fn put_canned_reply(&self, tenant: &str, reply: &CannedReply) -> StoreResult<()> {
        let result = sqlx::query(
            "INSERT INTO canned_replies (id, tenant_id, shortcut, text, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET shortcut = excluded.shortcut, text = excluded.text \
             WHERE canned_replies.tenant_id = excluded.tenant_id",
        )
        .bind(&reply.id)
        .bind(tenant)
        .bind(&reply.shortcut)
        .bind(&reply.text)
        .bind(now_ms())
        .execute(&self.pool)
        .await;
        match result {
            Ok(done) if done.rows_affected() == 1 => Ok(()),
            Ok(_) => Err(StoreError::NotFound("canned reply")),
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => Err(
                StoreError::Conflict(format!("shortcut `{}` is already used", reply.shortcut)),
            ),
            Err(error) => Err(error.into()),
        }
    }

    pub async fn delete_canned_reply(&self, tenant: &str, id: &str) -> StoreResult<()> {
        let result = sqlx::query("DELETE FROM canned_replies WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound("canned reply"));
        }
        Ok(())
    }
}

#[derive(Clone)]
enum Bind {
    Text(String),
    Int(i64),
}

async fn find_by_client_id(
    tx: &mut Tx<'_>,
    conversation_id: &str,
    sender: SenderKind,
    client_msg_id: &str,
) -> StoreResult<Option<MessageRecord>> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND sender_kind = $2 AND client_msg_id = $3"
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(conversation_id)
        .bind(sender.as_str())
        .bind(client_msg_id)
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|row| message_from_row(&row)).transpose()
}

pub(crate) async fn insert_message(
    tx: &mut Tx<'_>,
    tenant: &str,
    message: &MessageRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO messages (conversation_id, seq, tenant_id, sender_kind, sender_id, text, client_msg_id, created_at, meta) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&message.conversation_id)
    .bind(message.seq)
    .bind(tenant)
    .bind(message.sender.as_str())
    .bind(message.sender_id.clone())
    .bind(&message.text)
    .bind(message.client_msg_id.clone())
    .bind(message.created_at)
    .bind(message.meta.as_ref().map(|meta| meta.to_string()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Stores a system message in the transaction that changed the conversation.
pub(crate) async fn append_system_tx(
    tx: &mut Tx<'_>,
    conversation: &Conversation,
    text: &str,
    now: i64,
) -> StoreResult<MessageRecord> {
    let row = sqlx::query(
        "UPDATE conversations SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq",
    )
    .bind(&conversation.id)
    .fetch_one(&mut **tx)
    .await?;
    let message = MessageRecord {
        conversation_id: conversation.id.clone(),
        seq: row.try_get("last_seq")?,
        sender: SenderKind::System,
        sender_id: None,
        text: text.to_owned(),
        client_msg_id: None,
        created_at: now,
        meta: None,
    };
    insert_message(tx, &conversation.tenant_id, &message).await?;
    Ok(message)
}

/// The common end of every state change: the conditional update's row (none: the change did not
/// apply and nothing is written), its event, and the system message that tells the customer, all
/// committed together.
async fn finish_transition(
    mut tx: Tx<'_>,
    row: Option<AnyRow>,
    (kind, actor, reason): (&str, &Actor, Option<&str>),
    notice: &str,
    now: i64,
) -> StoreResult<Option<(Conversation, MessageRecord)>> {
    let Some(row) = row else {
        return Ok(None);
    };
    let conversation = conversation_from_row(&row)?;
    insert_event(&mut tx, &conversation, kind, actor, reason).await?;
    let message = append_system_tx(&mut tx, &conversation, notice, now).await?;
    tx.commit().await?;
    Ok(Some((conversation, message)))
}

pub(crate) async fn insert_event(
    tx: &mut Tx<'_>,
    conversation: &Conversation,
    kind: &str,
    actor: &Actor,
    reason: Option<&str>,
) -> StoreResult<()> {
    insert_event_at(tx, conversation, kind, actor, reason, now_ms()).await
}

/// An event stamped `at`: the time of the message that caused it (a conversation's creation or
/// reopening is stamped with its first message's time, so the episode starts with it).
pub(crate) async fn insert_event_at(
    tx: &mut Tx<'_>,
    conversation: &Conversation,
    kind: &str,
    actor: &Actor,
    reason: Option<&str>,
    at: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO conversation_events (conversation_id, tenant_id, kind, actor_kind, actor_id, reason, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&conversation.id)
    .bind(&conversation.tenant_id)
    .bind(kind)
    .bind(actor.kind)
    .bind(actor.id.clone())
    .bind(reason.map(str::to_owned))
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn agent_from_row(row: &AnyRow) -> StoreResult<Agent> {
    let skills: String = row.try_get("skills")?;
    Ok(Agent {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        skills: serde_json::from_str(&skills)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?,
        max_concurrent: row.try_get("max_concurrent")?,
        token_version: row.try_get("token_version")?,
        created_at: row.try_get("created_at")?,
    })
}

/// A value the store reads from a row of either driver: sqlx's (`Any`) or, on the SQLite message
/// writer, SQLite's own ([`append`]).
pub(crate) trait ColumnValue:
    for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + rusqlite::types::FromSql
{
}

impl<T> ColumnValue for T where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + rusqlite::types::FromSql
{
}

/// A row whose columns are read by name, so one decoder serves both drivers.
pub(crate) trait Columns {
    fn column<T: ColumnValue>(&self, name: &str) -> StoreResult<T>;
}

impl Columns for AnyRow {
    fn column<T: ColumnValue>(&self, name: &str) -> StoreResult<T> {
        Ok(self.try_get(name)?)
    }
}

impl Columns for rusqlite::Row<'_> {
    fn column<T: ColumnValue>(&self, name: &str) -> StoreResult<T> {
        Ok(self.get(name)?)
    }
}

pub(crate) fn conversation_from_row(row: &impl Columns) -> StoreResult<Conversation> {
    let state: String = row.column("state")?;
    Ok(Conversation {
        id: row.column("id")?,
        tenant_id: row.column("tenant_id")?,
        customer_id: row.column("customer_id")?,
        channel: row.column("channel")?,
        state: ConversationState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("state `{state}`")))?,
        skill_group: row.column("skill_group")?,
        priority: row.column("priority")?,
        agent_id: row.column("agent_id")?,
        queue_key: row.column("queue_key")?,
        handoff_reason: row.column("handoff_reason")?,
        last_seq: row.column("last_seq")?,
        customer_acked_seq: row.column("customer_acked_seq")?,
        agent_acked_seq: row.column("agent_acked_seq")?,
        created_at: row.column("created_at")?,
        updated_at: row.column("updated_at")?,
        assigned_at: row.column("assigned_at")?,
        first_response_at: row.column("first_response_at")?,
        closed_at: row.column("closed_at")?,
    })
}

fn message_from_row(row: &impl Columns) -> StoreResult<MessageRecord> {
    let sender: String = row.column("sender_kind")?;
    Ok(MessageRecord {
        conversation_id: row.column("conversation_id")?,
        seq: row.column("seq")?,
        sender: SenderKind::parse(&sender)
            .ok_or_else(|| StoreError::Corrupt(format!("sender `{sender}`")))?,
        sender_id: row.column("sender_id")?,
        text: row.column("text")?,
        client_msg_id: row.column("client_msg_id")?,
        created_at: row.column("created_at")?,
        meta: parse_json_column(row, "meta")?,
    })
}

/// A nullable JSON text column.
fn parse_json_column<T: serde::de::DeserializeOwned>(
    row: &impl Columns,
    column: &str,
) -> StoreResult<Option<T>> {
    let text: Option<String> = row.column(column)?;
    text.map(|text| {
        serde_json::from_str(&text)
            .map_err(|error| StoreError::Corrupt(format!("{column}: {error}")))
    })
    .transpose()
}
