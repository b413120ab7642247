//! Bot turns of live chat: a customer message in a conversation that is with the bot goes to the
//! worker pool (or is shed), the worker's turn decides, and the decision is stored as a bot
//! message or becomes a handoff. The dry run (`decide`) takes the same path.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use switchboard_bot::{BotError, Decision, DecisionKind, SearchHit, SelfCheckReport, Turn};

use super::{Chat, HandoffRequest};
use crate::bot_workers::{BotStats, TurnHandler, TurnJob};
use crate::error::{blocking, ServiceError, ServiceResult};
use crate::intents::{models, TenantClassifier};
use crate::metrics::Histogram;
use crate::tenant::WorkMode;
use store::{Conversation, MessageRecord, UnsureStreak};

impl TurnHandler for Chat {
    async fn run_turn(&self, job: TurnJob) -> Option<DecisionKind> {
        Chat::run_turn(self, job).await
    }
}

impl Chat {
    pub fn bot_stats(&self) -> BotStats {
        self.turns.stats()
    }

    pub fn turns_latency(&self) -> &Histogram {
        self.turns.latency()
    }

    /// Knowledge-base changes the bot's dense side has not applied yet (0 once it caught up;
    /// `None` while the bot is not built).
    pub fn bot_dense_lag(&self) -> Option<u64> {
        self.bot.is_built().then(|| {
            self.knowledge
                .changes_sent()
                .saturating_sub(self.bot.changes_applied())
        })
    }

    /// A customer message landed in a conversation that is with the bot.
    pub(crate) async fn bot_turn(
        &self,
        conversation: &Conversation,
        message: &MessageRecord,
        flagged: bool,
    ) {
        let text = message.text.as_str();
        let settings = self.tenant_settings(&conversation.tenant_id).await;
        if settings.work_mode == WorkMode::HumanFirst {
            self.hand_off_logged(conversation, HandoffRequest::because("human_first"))
                .await;
            return;
        }
        if text.trim().is_empty() && !crate::files::attachments_of(message).is_empty() {
            // A photo or a file alone: nothing for the encoder; a person looks at it.
            let mut request = HandoffRequest::because("attachment");
            request.bot_says = Some((
                "收到您的文件，正在为您转接人工客服。· Thanks, I have your file and am passing it to a colleague who can look at it.".into(),
                serde_json::json!({ "decision": "handoff", "reason": "attachment" }),
            ));
            self.hand_off_logged(conversation, request).await;
            return;
        }
        let job = TurnJob {
            tenant: conversation.tenant_id.clone(),
            conversation_id: conversation.id.clone(),
            trace: crate::chat::trace_id(message),
            text: text.to_owned(),
            seq: message.seq,
            flagged,
            enqueued: Instant::now(),
        };
        let tenant_max = settings.shedding.max_queued_turns as usize;
        if self.turns.submit(job, tenant_max).is_ok() {
            return;
        }
        // Shed: the bot is too far behind. A person is always reachable.
        if settings.shedding.to_person || switchboard_bot::explicit_handoff(text) {
            self.hand_off_logged(conversation, HandoffRequest::because("bot_busy"))
                .await;
            return;
        }
        let busy = match switchboard_knowledge::guess_locale(text) {
            "zh" => "当前咨询较多，请稍后再问；如需人工客服，请回复“转人工”。",
            _ => "We are very busy right now. Please ask again in a moment, or type \"agent\" to talk to a person.",
        };
        let meta = serde_json::json!({ "decision": "shed", "reason": "bot_busy" });
        match self
            .store
            .append_bot_message(&conversation.id, busy, meta, UnsureStreak::Keep)
            .await
        {
            Ok(Some(message)) => self.publish_message(&message),
            Ok(None) => {}
            Err(error) => {
                tracing::error!(conversation_id = %conversation.id, error = %error, "cannot store the busy reply")
            }
        }
    }

    async fn hand_off_logged(&self, conversation: &Conversation, request: HandoffRequest) {
        if let Err(error) = self.hand_off(&conversation.id, request).await {
            tracing::error!(conversation_id = %conversation.id, error = %error, "handoff failed");
        }
    }

    /// The tenant's FAQs ranked for `text` the way the bot ranks them (lexical and dense
    /// candidates, calibrated confidence): for the knowledge base's search and agent assist.
    pub async fn bot_search(
        &self,
        tenant: &str,
        text: &str,
        k: usize,
    ) -> ServiceResult<Vec<SearchHit>> {
        let bot = self.bot.ready().await?;
        let synonyms = self.knowledge.synonyms(tenant);
        let (tenant, text) = (tenant.to_owned(), text.to_owned());
        blocking("bot search", move || {
            bot.search(&tenant, &text, k, &synonyms)
        })
        .await?
        .map_err(bot_failed)
    }

    /// How the bot does on the tenant's own FAQs at its current settings: each question and
    /// alternate held out and asked against the rest, with generic out-of-scope questions
    /// (refits the tenant's self-calibration first when the knowledge base changed).
    /// One check per tenant at a time: another request meanwhile is refused as rate-limited.
    pub async fn bot_self_check(&self, tenant: &str) -> ServiceResult<SelfCheckReport> {
        let bot = self.bot.ready().await?;
        let settings = self.tenant_settings(tenant).await;
        let running = SelfCheckRunning::claim(&self.self_checks, tenant)?;
        let tenant = tenant.to_owned();
        blocking("bot self-check", move || {
            let report = bot.self_check(&tenant, &settings.bot);
            drop(running);
            report
        })
        .await?
        .map_err(bot_failed)
    }

    /// The decision for one turn: the same path for live chat and the dry run.
    pub async fn decide(
        &self,
        tenant: &str,
        text: &str,
        unsure_streak: u32,
        flagged: bool,
    ) -> ServiceResult<Decision> {
        let bot = self.bot.ready().await?;
        let models = models().await?;
        let mut own_classifier = None;
        match self.intents.classifier(tenant).await {
            Ok(Some(TenantClassifier::Head(head))) => bot.set_intent_head(tenant, head),
            Ok(Some(TenantClassifier::Onnx(model))) => {
                bot.remove_intent_head(tenant);
                own_classifier = Some(model);
            }
            Ok(None) => bot.remove_intent_head(tenant),
            Err(error) => {
                tracing::warn!(tenant, error = %error, "cannot read the tenant's intent model; built-in intents used")
            }
        }
        let settings = self.tenant_settings(tenant).await;
        let turn = Turn::new(tenant, text)
            .with_unsure_streak(unsure_streak)
            .with_sensitive_flag(flagged)
            .with_settings(Arc::new(settings.bot.clone()))
            .with_synonyms(self.knowledge.synonyms(tenant));
        let embedding = models.service.embed(text).await.map_err(|error| {
            ServiceError::unavailable(
                "busy",
                format!("the encoder cannot take this turn: {error}"),
            )
        })?;
        let worker = bot.clone();
        let decided = turn.clone();
        let decision = blocking("bot", move || {
            // A tenant's own classifier names the turn's intent (out of scope: none).
            let decided = match own_classifier.map(|model| model.classify_blocking(&decided.text)) {
                Some(Ok(prediction)) if !prediction.out_of_scope => {
                    decided.with_intent(prediction.label, prediction.score)
                }
                Some(Ok(_)) => decided.with_intent("", 0.0),
                Some(Err(error)) => {
                    tracing::warn!(tenant = %decided.tenant, %error, "the tenant's classifier failed; built-in intents used");
                    decided
                }
                None => decided,
            };
            worker.decide_with_embedding(&decided, &embedding)
        })
        .await?;
        let tenant_llm = if settings.bot.llm_enabled {
            self.llms.get(tenant).await
        } else {
            None
        };
        Ok(bot
            .refine_with(tenant_llm.as_deref(), &turn, decision)
            .await)
    }

    /// Runs one queued turn; returns the decision's kind when one was made.
    pub(crate) async fn run_turn(&self, job: TurnJob) -> Option<DecisionKind> {
        // Kept with the conversation: the same on every node, whichever took the turn before.
        let streak = match self.store.bot_unsure_streak(&job.conversation_id).await {
            Ok(streak) => streak,
            Err(error) => {
                tracing::warn!(conversation_id = %job.conversation_id, error = %error, "cannot read the unsure streak");
                0
            }
        };
        let decision = match self
            .decide(&job.tenant, &job.text, streak, job.flagged)
            .await
        {
            Ok(decision) => decision,
            Err(error) => {
                tracing::error!(conversation_id = %job.conversation_id, error = %error, "bot turn failed; handing the chat to a person");
                if let Err(error) = self
                    .hand_off(
                        &job.conversation_id,
                        HandoffRequest::because("bot_unavailable"),
                    )
                    .await
                {
                    tracing::error!(conversation_id = %job.conversation_id, error = %error, "handoff failed");
                }
                return None;
            }
        };
        // An unanswered question is kept for the knowledge-gap loop (on its own task).
        crate::gaps::record(
            &self.store,
            &job.tenant,
            &job.conversation_id,
            job.seq,
            &job.text,
            &decision,
        );
        let mut meta = serde_json::to_value(&decision).unwrap_or_default();
        if let Some(object) = meta.as_object_mut() {
            object.remove("answer");
        }
        if decision.kind == DecisionKind::Handoff {
            // The bot's "connecting you" and the move to the queue are one transaction.
            let request = HandoffRequest {
                reason: decision.reason.clone(),
                skill_hint: decision.skill_hint.clone(),
                intent: Some((decision.intent.label.clone(), decision.intent.score)),
                bot_says: Some((decision.answer.clone(), meta)),
            };
            if let Err(error) = self.hand_off(&job.conversation_id, request).await {
                tracing::error!(conversation_id = %job.conversation_id, error = %error, "handoff failed");
            }
            return Some(decision.kind);
        }
        let stored = match self
            .store
            .append_bot_message(
                &job.conversation_id,
                &decision.answer,
                meta,
                if decision.is_unsure() {
                    UnsureStreak::Lengthen
                } else {
                    UnsureStreak::Reset
                },
            )
            .await
        {
            Ok(Some(message)) => message,
            // A person took the conversation over while the bot was thinking.
            Ok(None) => return Some(decision.kind),
            Err(error) => {
                tracing::error!(conversation_id = %job.conversation_id, error = %error, "cannot store the bot's answer");
                return None;
            }
        };
        tracing::debug!(
            trace = %job.trace,
            conversation_id = %job.conversation_id,
            seq = stored.seq,
            decision = decision.kind.as_str(),
            reason = %decision.reason,
            confidence = decision.confidence,
            "bot answered"
        );
        self.publish_message(&stored);
        Some(decision.kind)
    }
}

fn bot_failed(error: BotError) -> ServiceError {
    ServiceError::Internal(anyhow::Error::new(error).context("bot"))
}

/// A tenant's claim on running its self-check, released when the check ends (not when the
/// request is cancelled: a caller who hangs up cannot start checks side by side).
struct SelfCheckRunning {
    running: Arc<Mutex<HashSet<String>>>,
    tenant: String,
}

impl SelfCheckRunning {
    fn claim(running: &Arc<Mutex<HashSet<String>>>, tenant: &str) -> ServiceResult<Self> {
        if !running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_owned())
        {
            return Err(ServiceError::RateLimited {
                retry_after_ms: 1_000,
            });
        }
        Ok(SelfCheckRunning {
            running: running.clone(),
            tenant: tenant.to_owned(),
        })
    }
}

impl Drop for SelfCheckRunning {
    fn drop(&mut self) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_self_check_per_tenant_at_a_time() {
        let running = Arc::default();
        let acme = SelfCheckRunning::claim(&running, "acme").expect("the first check runs");
        let refused = SelfCheckRunning::claim(&running, "acme").err();
        assert_eq!(
            refused.as_ref().map(ServiceError::code),
            Some("rate_limited")
        );
        assert_eq!(refused.and_then(|e| e.retry_after_ms()), Some(1_000));
        let other = SelfCheckRunning::claim(&running, "other").expect("another tenant's runs");
        drop(acme);
        SelfCheckRunning::claim(&running, "acme").expect("once the first ended, a new one runs");
        drop(other);
        assert!(running.lock().expect("lock").is_empty());
    }
}
