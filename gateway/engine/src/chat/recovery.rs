//! Crash recovery of bot turns: a customer message is stored before its bot turn (or a
//! human-first handoff) runs, and that work lives only in memory. At start-up the conversations
//! still with the bot whose newest message is a customer's get their turn again: recent ones
//! only (`window_ms`), once each across nodes (the store's claim), and only once the message is
//! `min_age_ms` old, so a turn still running on a live node is not answered twice.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::Chat;
use store::util::now_ms;

/// `[recovery]`: lost bot turns after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecoverySettings {
    /// Customer messages stored longer ago than this at start-up are left alone (0: recovery off).
    pub window_ms: u64,
    /// A lost turn runs once its message is this old: a live node's own turn for it (another
    /// node of a cluster that did not crash) has had time to answer first.
    pub min_age_ms: u64,
    /// Most conversations recovered at one start.
    pub max_conversations: u32,
}

impl Default for RecoverySettings {
    fn default() -> Self {
        RecoverySettings {
            window_ms: 3_600_000,
            min_age_ms: 30_000,
            max_conversations: 10_000,
        }
    }
}

impl Chat {
    /// Finds the turns lost by a crash and finishes them in the background (see the module):
    /// returns how many conversations were found.
    pub async fn recover_lost_turns(
        self: &Arc<Self>,
        settings: RecoverySettings,
    ) -> anyhow::Result<usize> {
        if settings.window_ms == 0 || settings.max_conversations == 0 {
            return Ok(0);
        }
        let since = now_ms().saturating_sub(i64::try_from(settings.window_ms).unwrap_or(i64::MAX));
        let found = self
            .store
            .unanswered_bot_conversations(since, i64::from(settings.max_conversations))
            .await?;
        let count = found.len();
        if count > 0 {
            tracing::info!(count, "recovering bot turns lost by a restart");
        }
        let min_age = i64::try_from(settings.min_age_ms).unwrap_or(i64::MAX);
        let chat = Arc::downgrade(self);
        tokio::spawn(async move {
            for (_, message) in found {
                let due = message.created_at.saturating_add(min_age);
                let wait = due.saturating_sub(now_ms());
                if wait > 0 {
                    tokio::time::sleep(Duration::from_millis(wait.unsigned_abs())).await;
                }
                let Some(chat) = chat.upgrade() else {
                    return;
                };
                let conversation = match chat
                    .store
                    .claim_turn_recovery(&message.conversation_id, message.seq)
                    .await
                {
                    Ok(Some(conversation)) => conversation,
                    Ok(None) => continue,
                    Err(error) => {
                        tracing::warn!(conversation_id = %message.conversation_id, error = %error, "cannot claim a lost bot turn");
                        continue;
                    }
                };
                // A word list's handoff verdict is in the message's meta.
                let handoff = message
                    .meta
                    .as_ref()
                    .and_then(|meta| meta.pointer("/sensitive/action"))
                    .and_then(|action| action.as_str())
                    == Some("handoff");
                tracing::info!(conversation_id = %conversation.id, seq = message.seq, "lost bot turn recovered");
                chat.bot_turn(&conversation, &message, handoff).await;
            }
        });
        Ok(count)
    }
}
