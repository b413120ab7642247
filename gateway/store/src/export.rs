//! What exports read: a tenant's conversations page by page in `(updated_at, id)` order (keyset
//! pagination, so a page costs the same at the start and at the end of 100,000 conversations),
//! and the messages and events of one page's conversations; a conversation too long to read at
//! once is read a page of messages at a time, by seq (keyset again). Also where an episode's
//! messages start, so that a close reads only its own episode.

use sqlx::{AssertSqlSafe, Row};

use super::{
    conversation_from_row, message_from_row, Store, StoreResult, CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
};
use crate::model::{Conversation, ConversationEvent, MessageRecord};

/// Which conversations an export covers: last active (`updated_at`) in `[from, to)`, and the
/// optional equalities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportFilter {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub channel: Option<String>,
    pub skill_group: Option<String>,
    pub agent: Option<String>,
}

/// Where a page starts: after the conversation with this `(updated_at, id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportCursor {
    pub updated_at: i64,
    pub id: String,
}

/// A conversation as an export lists it: the record and its latest quality score.
#[derive(Debug, Clone)]
pub struct ExportedConversation {
    pub conversation: Conversation,
    pub quality_score: Option<i64>,
}

impl ExportedConversation {
    pub fn cursor(&self) -> ExportCursor {
        ExportCursor {
            updated_at: self.conversation.updated_at,
            id: self.conversation.id.clone(),
        }
    }
}

enum Value {
    Text(String),
    Int(i64),
}

/// `$N` placeholders numbered in the order values are pushed.
struct Binds(Vec<Value>);

impl Binds {
    fn push(&mut self, value: Value) -> String {
        self.0.push(value);
        format!("${}", self.0.len())
    }
}

impl Store {
    /// Up to `limit` conversations of `tenant` matching `filter`, after `after`, in
    /// `(updated_at, id)` order.
    pub async fn export_conversations(
        &self,
        tenant: &str,
        filter: &ExportFilter,
        after: Option<&ExportCursor>,
        limit: i64,
    ) -> StoreResult<Vec<ExportedConversation>> {
        let mut binds = Binds(Vec::new());
        let mut sql = format!(
            "SELECT {CONVERSATION_COLUMNS}, (SELECT q.score FROM quality_scores q \
             WHERE q.conversation_id = conversations.id ORDER BY q.closed_at DESC LIMIT 1) \
             AS quality_score FROM conversations WHERE tenant_id = {}",
            binds.push(Value::Text(tenant.to_owned()))
        );
        let equalities = [
            ("channel", &filter.channel),
            ("skill_group", &filter.skill_group),
            ("agent_id", &filter.agent),
        ];
        for (column, value) in equalities {
            if let Some(value) = value {
                let mark = binds.push(Value::Text(value.clone()));
                sql.push_str(&format!(" AND {column} = {mark}"));
            }
        }
        if let Some(from) = filter.from {
            let mark = binds.push(Value::Int(from));
            sql.push_str(&format!(" AND updated_at >= {mark}"));
        }
        if let Some(to) = filter.to {
            let mark = binds.push(Value::Int(to));
            sql.push_str(&format!(" AND updated_at < {mark}"));
        }
        if let Some(after) = after {
            // A row value: both databases take it as one range on the index
            // `(tenant_id, updated_at, id)`, where the spelled-out OR made PostgreSQL scan the
            // tenant's conversations from the start for every page.
            let time = binds.push(Value::Int(after.updated_at));
            let id = binds.push(Value::Text(after.id.clone()));
            sql.push_str(&format!(" AND (updated_at, id) > ({time}, {id})"));
        }
        let mark = binds.push(Value::Int(limit.max(1)));
        sql.push_str(&format!(" ORDER BY updated_at, id LIMIT {mark}"));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for value in binds.0 {
            query = match value {
                Value::Text(text) => query.bind(text),
                Value::Int(number) => query.bind(number),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(ExportedConversation {
                    conversation: conversation_from_row(row)?,
                    quality_score: row.try_get("quality_score")?,
                })
            })
            .collect()
    }

    /// The messages of these conversations of `tenant`, by conversation id, then seq.
    pub async fn export_messages(
        &self,
        tenant: &str,
        conversations: &[String],
    ) -> StoreResult<Vec<MessageRecord>> {
        if conversations.is_empty() {
            return Ok(Vec::new());
        }
        let marks = id_marks(conversations.len());
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id IN ({marks}) \
             AND tenant_id = $1 ORDER BY conversation_id, seq"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(tenant);
        for id in conversations {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(message_from_row).collect()
    }

    /// One page of a conversation's messages: at most `limit` of those of `tenant` with seq in
    /// `(after, up_to]`, by seq. The next page is after the last seq of this one; a page shorter
    /// than `limit` is the last.
    pub async fn export_message_page(
        &self,
        tenant: &str,
        conversation: &str,
        after: i64,
        up_to: i64,
        limit: i64,
    ) -> StoreResult<Vec<MessageRecord>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND tenant_id = $2 \
             AND seq > $3 AND seq <= $4 ORDER BY seq LIMIT $5"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(conversation)
            .bind(tenant)
            .bind(after)
            .bind(up_to)
            .bind(limit.max(1))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// The seq of a conversation's last message written before `at` (0: none): an episode
    /// opened at `at` starts after it. The walk goes back from the newest message on the
    /// primary key and stops at the first older one, so it costs the episode's length, not the
    /// conversation's.
    pub async fn last_seq_before(&self, conversation: &str, at: i64) -> StoreResult<i64> {
        let seq: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM messages WHERE conversation_id = $1 AND created_at < $2 \
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(conversation)
        .bind(at)
        .fetch_optional(&self.pool)
        .await?;
        Ok(seq.unwrap_or(0))
    }

    /// The events of these conversations of `tenant`, by conversation id, then in order.
    pub async fn export_events(
        &self,
        tenant: &str,
        conversations: &[String],
    ) -> StoreResult<Vec<ConversationEvent>> {
        if conversations.is_empty() {
            return Ok(Vec::new());
        }
        let marks = id_marks(conversations.len());
        let sql = format!(
            "SELECT id, conversation_id, kind, actor_kind, actor_id, reason, created_at \
             FROM conversation_events WHERE conversation_id IN ({marks}) AND tenant_id = $1 \
             ORDER BY conversation_id, id"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(tenant);
        for id in conversations {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&self.pool).await?;
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
}

/// `$2, $3, ...` for `count` ids after the tenant (`$1`).
fn id_marks(count: usize) -> String {
    (0..count)
        .map(|index| format!("${}", index + 2))
        .collect::<Vec<_>>()
        .join(", ")
}
