//! Quality on close: the tenant's quality policy (or the built-in scorer) scores a closed
//! conversation, and the score is stored with it.

use switchboard_policies::types::{ClosedConversation, Speaker};

use super::Chat;
use crate::error::ServiceResult;
use crate::policy::{language_of, policy_messages};
use store::util::now_ms;
use store::{Conversation, MessageRecord, QualityRecord};

impl Chat {
    /// After an agent's close: the tenant's quality policy (or the built-in scorer) scores the
    /// episode that ended (its messages from `opened_at`), and the score is stored with it.
    pub(crate) async fn score_closed(
        &self,
        conversation: &Conversation,
        opened_at: i64,
        handed_off_at: Option<i64>,
        transcript: Vec<MessageRecord>,
    ) -> ServiceResult<()> {
        let Some(closed_at) = conversation.closed_at else {
            return Ok(());
        };
        let input = ClosedConversation {
            tenant: conversation.tenant_id.clone(),
            conversation_id: conversation.id.clone(),
            channel: conversation.channel.clone(),
            language: language_of(&transcript),
            opened_at_unix_ms: opened_at.max(0) as u64,
            handed_off_at_unix_ms: handed_off_at.map(|at| at.max(0) as u64),
            assigned_at_unix_ms: conversation.assigned_at.map(|at| at.max(0) as u64),
            closed_at_unix_ms: closed_at.max(0) as u64,
            closed_by: Speaker::Agent,
            transcript: policy_messages(&transcript),
        };
        let outcome = self.policies.score(input).await?;
        let (decided_by, policy_version) = match &outcome.decided_by {
            switchboard_policies::DecidedBy::Policy(id) => ("policy", Some(id.version as i64)),
            switchboard_policies::DecidedBy::BuiltIn => ("builtin", None),
        };
        let record = QualityRecord {
            conversation_id: conversation.id.clone(),
            closed_at,
            score: outcome.assessment.score as i64,
            findings: serde_json::to_value(&outcome.assessment.findings).unwrap_or_default(),
            decided_by: if outcome.failure.is_some() {
                "builtin_fallback".into()
            } else {
                decided_by.into()
            },
            policy_version,
            created_at: now_ms(),
        };
        self.store
            .put_quality(&conversation.tenant_id, &record)
            .await?;
        tracing::info!(conversation_id = %conversation.id, score = record.score, decided_by = %record.decided_by, "conversation scored");
        Ok(())
    }
}
