//! After a close: the episode that ended is written for the reports, the customer is asked to
//! rate it, and an agent's close is scored by the quality policy ([`super::quality`]).
//!
//! An episode runs from a conversation's creation or reopening to its close. A close is an
//! agent's, or the idle sweep's for a conversation the bot kept that went quiet
//! ([`Chat::close_idle`]); both end here. The survey is one bot message stored after the close
//! (so it reaches WeChat and Douyin through the outbox like any reply); a rating is accepted for
//! the last closed episode while the conversation stays closed, for [`RATING_WINDOW_MS`].

use std::sync::Arc;

use serde::Deserialize;
use store::reports::{Episode, Rating};
use store::util::now_ms;
use store::{Conversation, ConversationEvent, ConversationState, Customer, MessageRecord};
use switchboard_channels::web::SenderKind;

use super::Chat;
use crate::error::{ServiceError, ServiceResult};

/// How long after a close a rating is accepted.
pub const RATING_WINDOW_MS: i64 = 7 * 24 * 3_600_000;
/// The longest comment kept with a rating (characters).
pub const MAX_RATING_COMMENT_CHARS: usize = 1_000;
/// How many quiet conversations one sweep closes at most.
const IDLE_SWEEP_BATCH: i64 = 500;
/// How many batches one sweep closes at most.
const IDLE_SWEEP_BATCHES_A_TICK: usize = 20;
/// Messages read at a time when an episode ends.
const EPISODE_PAGE: i64 = 200;
/// The most messages of an episode a quality policy (or the built-in scorer) is given: its
/// first ones. A longer episode is scored on its beginning.
pub const MAX_SCORED_MESSAGES: usize = 1_000;
/// The most text (bytes) the messages given to a quality policy carry; the first message that
/// would pass it ends the transcript the policy gets (a policy's memory is 16 MiB anyway).
pub const MAX_SCORED_TEXT_BYTES: usize = 1 << 20;

/// `[idle_close]`: when the bot's quiet conversations end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdleCloseSettings {
    /// A conversation with the bot and no message for this long is closed (0: never).
    pub bot_quiet_ms: u64,
    /// How often a node looks for them.
    pub sweep_every_ms: u64,
}

impl Default for IdleCloseSettings {
    fn default() -> Self {
        IdleCloseSettings {
            bot_quiet_ms: 30 * 60_000,
            sweep_every_ms: 60_000,
        }
    }
}

/// The survey a bot message carries in its meta: which close it asks about.
pub fn survey_of(message: &MessageRecord) -> Option<i64> {
    message
        .meta
        .as_ref()?
        .get("survey")?
        .get("closed_at")?
        .as_i64()
}

/// The score of a text reply to the survey ("5", "５", " 4 "), if it is one.
pub fn score_of_reply(text: &str) -> Option<i64> {
    let mut chars = text.trim().chars();
    let first = chars.next()?;
    if chars.next().is_some() {
        return None;
    }
    let digit = match first {
        '１'..='５' => (first as u32 - '１' as u32 + 1) as i64,
        '1'..='5' => (first as u32 - '0' as u32) as i64,
        _ => return None,
    };
    Some(digit)
}

/// Derives the ended episode from the conversation at its close, its events and the messages
/// of the episode.
pub fn episode_of(
    conversation: &Conversation,
    closed_at: i64,
    closed_by: &str,
    opened_at: i64,
    events: &[ConversationEvent],
    transcript: &[MessageRecord],
) -> Episode {
    let in_episode = |at: i64| at >= opened_at && at <= closed_at;
    let queued = events
        .iter()
        .find(|event| event.kind == "queued" && in_episode(event.created_at));
    let assigned_at = events
        .iter()
        .find(|event| event.kind == "assigned" && in_episode(event.created_at))
        .map(|event| event.created_at);
    let handed_off_at = queued.map(|event| event.created_at);
    let mut episode = Episode {
        conversation_id: conversation.id.clone(),
        closed_at,
        tenant_id: conversation.tenant_id.clone(),
        channel: conversation.channel.clone(),
        skill_group: conversation.skill_group.clone(),
        agent_id: conversation.agent_id.clone().unwrap_or_default(),
        closed_by: closed_by.to_owned(),
        opened_at,
        handed_off_at,
        // The event says why and how it was routed ("complaint; policy v3: vip, priority 5"):
        // the report counts the why.
        handoff_reason: queued
            .and_then(|event| event.reason.as_deref())
            .and_then(|reason| reason.split(';').next())
            .map(|reason| reason.trim().to_owned()),
        assigned_at,
        first_agent_reply_at: None,
        customer_messages: 0,
        agent_messages: 0,
        bot_answers: 0,
        bot_clarifies: 0,
        bot_out_of_scope: 0,
        tags: Vec::new(),
    };
    for message in transcript.iter().filter(|m| in_episode(m.created_at)) {
        count_message(&mut episode, message);
    }
    episode
}

/// Counts one more message of the episode (in seq order) into it.
fn count_message(episode: &mut Episode, message: &MessageRecord) {
    match message.sender {
        SenderKind::Customer => episode.customer_messages += 1,
        SenderKind::Agent => {
            episode.agent_messages += 1;
            if episode.first_agent_reply_at.is_none() {
                episode.first_agent_reply_at = Some(message.created_at);
            }
        }
        SenderKind::Bot => {
            let meta = message.meta.as_ref();
            let field = |name: &str| meta.and_then(|m| m.get(name)).and_then(|v| v.as_str());
            match field("decision") {
                // Answers from the knowledge base (or the LLM over it); greetings and
                // thanks are not answers.
                Some("answer")
                    if meta
                        .and_then(|m| m.get("faq_id"))
                        .is_some_and(|v| !v.is_null())
                        || field("reason") == Some("llm_answer") =>
                {
                    episode.bot_answers += 1
                }
                Some("clarify") => episode.bot_clarifies += 1,
                Some("out_of_scope") => episode.bot_out_of_scope += 1,
                _ => {}
            }
        }
        SenderKind::System => {}
    }
}

/// The start of an episode's transcript, as quality scoring gets it: at most
/// [`MAX_SCORED_MESSAGES`] messages and [`MAX_SCORED_TEXT_BYTES`] of text; the first message
/// that does not fit ends it, so it is always the episode's beginning.
#[derive(Debug, Default)]
struct ScoredTranscript {
    messages: Vec<MessageRecord>,
    bytes: usize,
    cut: bool,
}

impl ScoredTranscript {
    fn push(&mut self, message: MessageRecord) {
        if self.cut {
            return;
        }
        if self.messages.len() >= MAX_SCORED_MESSAGES
            || self.bytes + message.text.len() > MAX_SCORED_TEXT_BYTES
        {
            self.cut = true;
            return;
        }
        self.bytes += message.text.len();
        self.messages.push(message);
    }
}

impl Chat {
    /// Everything that follows a close, off the caller's path: the episode, the survey, and
    /// (for an agent's close) the quality score.
    pub(crate) fn after_close(&self, conversation: Conversation, closed_by: &'static str) {
        let Some(chat) = self.myself() else { return };
        tokio::spawn(async move {
            if let Err(error) = chat.finish_episode(&conversation, closed_by).await {
                tracing::error!(conversation_id = %conversation.id, error = %error, "after-close work failed");
            }
        });
    }

    async fn finish_episode(
        &self,
        conversation: &Conversation,
        closed_by: &'static str,
    ) -> ServiceResult<()> {
        let Some(closed_at) = conversation.closed_at else {
            return Ok(());
        };
        let events = self.store.events(&conversation.id).await?;
        let opened_at = events
            .iter()
            .rev()
            .find(|event| {
                (event.kind == "reopened" || event.kind == "created")
                    && event.created_at <= closed_at
            })
            .map(|event| event.created_at)
            .unwrap_or(conversation.created_at);
        // Only this episode's messages, a page at a time: from the last one written before it
        // opened (one walk back on the primary key), counted as they come; only the beginning
        // of the transcript is kept, for quality scoring. A conversation of any length costs a
        // page and that beginning, and a close does not read the episodes before it.
        let mut episode = episode_of(conversation, closed_at, closed_by, opened_at, &events, &[]);
        let scoring = closed_by == "agent";
        let mut transcript = ScoredTranscript::default();
        let mut after = self
            .store
            .last_seq_before(&conversation.id, opened_at)
            .await?;
        loop {
            let batch = self
                .store
                .messages_after(&conversation.id, after, EPISODE_PAGE)
                .await?;
            let full = batch.len() as i64 == EPISODE_PAGE;
            let Some(last) = batch.last() else { break };
            after = last.seq;
            for message in batch
                .into_iter()
                .filter(|m| m.created_at >= opened_at && m.created_at <= closed_at)
            {
                count_message(&mut episode, &message);
                if scoring {
                    transcript.push(message);
                }
            }
            if !full {
                break;
            }
        }
        if transcript.cut {
            tracing::info!(
                conversation_id = %conversation.id,
                scored_messages = transcript.messages.len(),
                "a long episode is scored on its beginning"
            );
        }
        if episode.customer_messages > 0 {
            // The customer's CRM tags at the close, for the reports' tag filter (bounded).
            if let Some(customer) = self
                .store
                .customer(&conversation.tenant_id, &conversation.customer_id)
                .await?
            {
                episode.tags = customer
                    .attributes
                    .crm_tags
                    .into_iter()
                    .filter(|tag| !tag.is_empty() && tag.chars().count() <= 64)
                    .take(32)
                    .collect();
            }
            self.store.put_episode(&episode).await?;
            self.ask_for_rating(conversation, closed_at).await;
        }
        if closed_by == "agent" {
            let handed_off_at = episode.handed_off_at;
            self.score_closed(conversation, opened_at, handed_off_at, transcript.messages)
                .await?;
        }
        Ok(())
    }

    async fn ask_for_rating(&self, conversation: &Conversation, closed_at: i64) {
        let settings = self.tenant_settings(&conversation.tenant_id).await;
        if !settings.survey.enabled {
            return;
        }
        let meta = serde_json::json!({ "survey": { "closed_at": closed_at, "scale": 5 } });
        let text = settings.survey.prompt_for(&conversation.channel);
        match self
            .store
            .append_after_close(&conversation.id, closed_at, &text, meta)
            .await
        {
            Ok(Some(message)) => self.publish_message(&message),
            // The customer wrote again first: that episode is over and a new one began.
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(conversation_id = %conversation.id, error = %error, "survey not sent")
            }
        }
    }

    /// A customer rates their last closed conversation (1 to 5, an optional comment). A second
    /// rating of the same episode replaces the first. A rating counts against the customer's
    /// message rate (and `origin`'s, the widget's or app's address) like a message.
    pub async fn rate(
        &self,
        customer: &Customer,
        score: i64,
        comment: &str,
        origin: Option<std::net::IpAddr>,
    ) -> ServiceResult<Rating> {
        if !(1..=5).contains(&score) {
            return Err(ServiceError::invalid(
                "bad_rating",
                "score must be a whole number from 1 to 5",
            ));
        }
        if comment.chars().count() > MAX_RATING_COMMENT_CHARS {
            return Err(ServiceError::invalid(
                "bad_rating",
                format!("comment is longer than {MAX_RATING_COMMENT_CHARS} characters"),
            ));
        }
        let settings = self.tenant_settings(&customer.tenant_id).await;
        self.limits
            .customer_message(&customer.tenant_id, &customer.id, origin, settings.limits)?;
        let nothing = || {
            ServiceError::invalid(
                "nothing_to_rate",
                "there is no recently closed conversation to rate",
            )
        };
        let conversation = self
            .store
            .conversation_for_customer(&customer.id)
            .await?
            .filter(|c| c.tenant_id == customer.tenant_id && c.state == ConversationState::Closed)
            .ok_or_else(nothing)?;
        let closed_at = conversation
            .closed_at
            .filter(|closed_at| now_ms() - closed_at <= RATING_WINDOW_MS)
            .ok_or_else(nothing)?;
        let rating = Rating {
            conversation_id: conversation.id.clone(),
            closed_at,
            agent_id: conversation.agent_id.clone().unwrap_or_default(),
            score,
            comment: comment.trim().to_owned(),
            created_at: now_ms(),
        };
        self.store
            .put_rating(&conversation.tenant_id, &rating)
            .await?;
        tracing::info!(conversation_id = %conversation.id, score, "conversation rated");
        Ok(rating)
    }

    /// A text channel's reply to the survey ("1" to "5" while the conversation is still closed
    /// and was asked): stored as the rating and thanked, instead of reopening the conversation.
    /// `false`: the text is an ordinary message.
    pub async fn rating_reply(&self, customer: &Customer, text: &str) -> ServiceResult<bool> {
        let Some(score) = score_of_reply(text) else {
            return Ok(false);
        };
        let Some(conversation) = self
            .store
            .conversation_for_customer(&customer.id)
            .await?
            .filter(|c| c.state == ConversationState::Closed)
        else {
            return Ok(false);
        };
        let Some(closed_at) = conversation.closed_at else {
            return Ok(false);
        };
        // Only while the last message is this close's survey, or the thanks for a rating (a
        // provider's retry of the reply, or a changed mind): a digit sent after anything else
        // is an ordinary message.
        let last = self
            .store
            .messages_after(&conversation.id, conversation.last_seq - 1, 1)
            .await?;
        let Some(last) = last.first() else {
            return Ok(false);
        };
        let thanked = last
            .meta
            .as_ref()
            .and_then(|meta| meta.get("survey_thanks")?.get("closed_at")?.as_i64());
        if survey_of(last) != Some(closed_at) && thanked != Some(closed_at) {
            return Ok(false);
        }
        let already_thanked = thanked.is_some();
        self.rate(customer, score, "", None).await?;
        if already_thanked {
            return Ok(true);
        }
        let settings = self.tenant_settings(&conversation.tenant_id).await;
        let meta = serde_json::json!({ "survey_thanks": { "closed_at": closed_at } });
        if let Some(message) = self
            .store
            .append_after_close(
                &conversation.id,
                closed_at,
                &settings.survey.thanks_text(),
                meta,
            )
            .await?
        {
            self.publish_message(&message);
        }
        Ok(true)
    }

    /// Ends the bot's conversations that have been quiet for `quiet_ms` (`only`: just that
    /// one, if it has): each gets a notice, an episode and the survey. Answers how many were
    /// closed.
    pub async fn close_idle(&self, quiet_ms: i64, only: Option<&str>) -> ServiceResult<usize> {
        let closed = self
            .store
            .close_idle_bot_conversations(
                now_ms() - quiet_ms,
                IDLE_SWEEP_BATCH,
                only,
                "The chat was closed after a quiet while; write again any time · 会话已结束，如有问题欢迎随时再留言",
            )
            .await?;
        for (conversation, notice) in &closed {
            self.publish_message(notice);
            self.after_close(conversation.clone(), "idle");
        }
        if !closed.is_empty() {
            tracing::info!(closed = closed.len(), "quiet bot conversations closed");
        }
        Ok(closed.len())
    }

    /// The idle sweep, every `every` until the node stops.
    pub fn spawn_idle_sweep(self: &Arc<Self>, quiet_ms: i64, every: std::time::Duration) {
        let chat = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(chat) = chat.upgrade() else { break };
                if chat.store.is_closed() {
                    break;
                }
                // A backlog (a node was down) is worked off in batches, a bounded number a tick.
                for _ in 0..IDLE_SWEEP_BATCHES_A_TICK {
                    match chat.close_idle(quiet_ms, None).await {
                        Ok(closed) if closed as i64 == IDLE_SWEEP_BATCH => continue,
                        Ok(_) => break,
                        Err(error) => {
                            tracing::warn!(error = %error, "idle sweep failed");
                            break;
                        }
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: i64, sender: SenderKind, text: &str) -> MessageRecord {
        MessageRecord {
            conversation_id: "cv".into(),
            seq,
            sender,
            sender_id: None,
            text: text.into(),
            client_msg_id: None,
            created_at: 1_000 + seq,
            meta: None,
        }
    }

    #[test]
    fn the_scored_transcript_is_the_episodes_beginning_within_its_limits() {
        // A normal episode is kept whole.
        let mut short = ScoredTranscript::default();
        for seq in 1..=50 {
            short.push(message(seq, SenderKind::Customer, "hello"));
        }
        assert_eq!(short.messages.len(), 50);
        assert!(!short.cut);
        // Many messages: the first MAX_SCORED_MESSAGES.
        let mut many = ScoredTranscript::default();
        for seq in 1..=(MAX_SCORED_MESSAGES as i64 + 500) {
            many.push(message(seq, SenderKind::Customer, "hello"));
        }
        assert_eq!(many.messages.len(), MAX_SCORED_MESSAGES);
        assert_eq!(
            many.messages.last().map(|m| m.seq),
            Some(MAX_SCORED_MESSAGES as i64)
        );
        assert!(many.cut);
        // Long texts: up to MAX_SCORED_TEXT_BYTES, and nothing after the first that does not
        // fit (a short one after it would leave a gap).
        let long = "x".repeat(64 * 1024);
        let mut heavy = ScoredTranscript::default();
        for seq in 1..=20 {
            heavy.push(message(seq, SenderKind::Customer, &long));
        }
        heavy.push(message(21, SenderKind::Agent, "short"));
        assert_eq!(heavy.messages.len(), MAX_SCORED_TEXT_BYTES / long.len());
        assert!(heavy.bytes <= MAX_SCORED_TEXT_BYTES);
        assert!(heavy
            .messages
            .iter()
            .all(|m| m.sender == SenderKind::Customer));
    }

    #[test]
    fn survey_replies_are_single_digits_from_one_to_five() {
        assert_eq!(score_of_reply(" 5 "), Some(5));
        assert_eq!(score_of_reply("１"), Some(1));
        assert_eq!(score_of_reply("４"), Some(4));
        assert_eq!(score_of_reply("0"), None);
        assert_eq!(score_of_reply("6"), None);
        assert_eq!(score_of_reply("55"), None);
        assert_eq!(score_of_reply("5分"), None);
        assert_eq!(score_of_reply(""), None);
    }
}
