//! Turns a crash may have lost: a customer message is stored before its bot turn (or a
//! human-first handoff) runs in memory, so after a crash the conversation waits for an answer
//! that never comes. The start-up scan finds them here and claims each once across nodes.

use sqlx::{AssertSqlSafe, Row};

use super::{
    conversation_from_row, insert_event, message_from_row, Actor, Conversation, Dialect,
    MessageRecord, Store, StoreResult, CONVERSATION_COLUMNS, MESSAGE_COLUMNS,
};

/// The event that records a claimed recovery; its reason is `seq <n>`.
pub const TURN_RECOVERED_EVENT: &str = "turn_recovered";

impl Store {
    /// Conversations still with the bot whose newest message is a customer's stored at or after
    /// `since_ms`, oldest first, at most `limit`: each with that message.
    pub async fn unanswered_bot_conversations(
        &self,
        since_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<(Conversation, MessageRecord)>> {
        let ids = sqlx::query(
            "SELECT c.id AS id FROM conversations c \
             JOIN messages m ON m.conversation_id = c.id AND m.seq = c.last_seq \
             WHERE c.state = 'bot' AND m.sender_kind = 'customer' AND m.created_at >= $1 \
             ORDER BY m.created_at LIMIT $2",
        )
        .bind(since_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut found = Vec::with_capacity(ids.len());
        for row in &ids {
            let id: String = row.try_get("id")?;
            let sql = format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1");
            let Some(conversation) = sqlx::query(AssertSqlSafe(sql))
                .bind(&id)
                .fetch_optional(&self.pool)
                .await?
            else {
                continue;
            };
            let conversation = conversation_from_row(&conversation)?;
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq = $2"
            );
            let Some(message) = sqlx::query(AssertSqlSafe(sql))
                .bind(&id)
                .bind(conversation.last_seq)
                .fetch_optional(&self.pool)
                .await?
            else {
                continue;
            };
            found.push((conversation, message_from_row(&message)?));
        }
        Ok(found)
    }

    /// Claims the lost turn of message `seq`: `Some(conversation)` once, for one caller across
    /// every node, while the conversation is still with the bot and `seq` is still its newest
    /// message; `None` otherwise (answered, handed off, or claimed before). The claim is an event
    /// written under the conversation's row lock (the store's write lock on SQLite).
    pub async fn claim_turn_recovery(
        &self,
        conversation_id: &str,
        seq: i64,
    ) -> StoreResult<Option<Conversation>> {
        let (_guard, mut tx) = self.write().await?;
        let lock = match self.dialect {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        };
        let sql = format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1{lock}");
        let Some(row) = sqlx::query(AssertSqlSafe(sql))
            .bind(conversation_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let conversation = conversation_from_row(&row)?;
        if conversation.state != crate::ConversationState::Bot || conversation.last_seq != seq {
            return Ok(None);
        }
        let reason = format!("seq {seq}");
        let claimed = sqlx::query(
            "SELECT id FROM conversation_events WHERE conversation_id = $1 AND kind = $2 AND reason = $3",
        )
        .bind(conversation_id)
        .bind(TURN_RECOVERED_EVENT)
        .bind(&reason)
        .fetch_optional(&mut *tx)
        .await?;
        if claimed.is_some() {
            return Ok(None);
        }
        insert_event(
            &mut tx,
            &conversation,
            TURN_RECOVERED_EVENT,
            &Actor::system(),
            Some(&reason),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(conversation))
    }
}
