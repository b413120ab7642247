//! Bot-first conversations: a new or reopened conversation starts with the bot; each customer
//! turn goes to a bounded pool of bot workers (turns of one conversation always in order, on one
//! worker); the bot's decision is stored as a bot message; a handoff runs the tenant's routing
//! policy and moves the conversation to a queue, where the foundation's dispatcher takes over.
//!
//! The bot itself (`switchboard_bot::Bot`: encoder, intent heads, the dense side of every
//! tenant's FAQs) is built once the models are loaded; [`BotRuntime`] keeps its dense side in
//! step with the knowledge base's changes. Inference never runs on the async executor: the
//! encoder service has its own threads, the rest of a decision runs on the blocking pool.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use serde::Serialize;
use switchboard_bot::{Bot, Decision, DecisionKind, LlmSettings, Turn};
use switchboard_channels::web::SenderKind;
use switchboard_knowledge::KnowledgeIndex;
use switchboard_policies::types::{
    AgentLoad, Attribute, ClosedConversation, Handoff, Message as PolicyMessage, RoutingDecision,
    SkillGroupSnapshot, Speaker,
};
use tokio::sync::mpsc;

use crate::chat::{Chat, DEFAULT_SKILL_GROUP};
use crate::config::BotRunSettings;
use crate::error::{ApiError, ApiResult};
use crate::intents::{models, TenantClassifier};
use crate::kb::KbChange;
use crate::metrics::Histogram;
use crate::store::{Conversation, MessageRecord, QualityRecord, Store, UnsureStreak};
use crate::tenant::WorkMode;
use crate::util::now_ms;

/// Upper bounds (ms) of the bot turn latency histogram.
pub const LATENCY_BUCKETS_MS: [u64; 10] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000];

// ---- the bot and its dense side ---------------------------------------------------------------

pub struct BotRuntime {
    store: Store,
    index: Arc<KnowledgeIndex>,
    llm: Option<LlmSettings>,
    bot: tokio::sync::OnceCell<Result<Arc<Bot>, String>>,
    /// Knowledge-base changes applied to the dense side (compare `Knowledge::changes_sent`).
    changes_applied: AtomicU64,
}

impl BotRuntime {
    pub fn new(store: Store, index: Arc<KnowledgeIndex>, llm: Option<LlmSettings>) -> Arc<Self> {
        Arc::new(BotRuntime {
            store,
            index,
            llm,
            bot: tokio::sync::OnceCell::new(),
            changes_applied: AtomicU64::new(0),
        })
    }

    /// The bot, built on first use: models loaded, every tenant's FAQs embedded.
    pub async fn ready(&self) -> Result<Arc<Bot>, String> {
        self.bot.get_or_init(|| self.init()).await.clone()
    }

    async fn init(&self) -> Result<Arc<Bot>, String> {
        let models = models().await.map_err(|error| error.to_string())?;
        let mut bot = Bot::with_default_head(
            self.index.clone(),
            models.encoder.clone(),
            models.builtin.clone(),
        );
        if let Some(llm) = &self.llm {
            tracing::info!(base_url = %llm.base_url, model = %llm.model, "bot answers may be phrased by an LLM");
            bot = bot.with_llm(llm.clone());
        }
        let bot = Arc::new(bot);
        let started = Instant::now();
        let states = self.store.kb_states().await.map_err(|e| e.to_string())?;
        for (tenant, _, _) in states {
            let (records, _) = self
                .store
                .all_faqs(&tenant)
                .await
                .map_err(|e| e.to_string())?;
            let worker = bot.clone();
            let result =
                tokio::task::spawn_blocking(move || worker.rebuild_faqs(&tenant, &records)).await;
            if let Ok(Err(error)) = result {
                tracing::error!(error = %error, "cannot embed a tenant's FAQs");
            }
        }
        tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            "bot ready (FAQs embedded)"
        );
        Ok(bot)
    }

    /// Follows the knowledge base: every change to an index is applied to the dense side, in
    /// order, once the bot is ready (changes before that are covered by its initial build).
    /// Without `preload` it waits until a turn has loaded the bot.
    pub fn start_dense_sync(
        self: &Arc<Self>,
        mut changes: mpsc::UnboundedReceiver<KbChange>,
        preload: bool,
    ) {
        let runtime = self.clone();
        tokio::spawn(async move {
            while !preload && !runtime.bot.initialized() {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            let bot = match runtime.ready().await {
                Ok(bot) => bot,
                Err(error) => {
                    tracing::error!(error = %error, "the bot is unavailable: bot-first tenants hand every chat to agents");
                    return;
                }
            };
            while let Some(change) = changes.recv().await {
                let bot = bot.clone();
                let result = tokio::task::spawn_blocking(move || match change {
                    KbChange::Written(tenant, records) => bot.index_faqs(&tenant, &records),
                    KbChange::Rebuilt(tenant, records) => bot.rebuild_faqs(&tenant, &records),
                    KbChange::Deleted(tenant, ids) => {
                        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                        bot.remove_faqs(&tenant, &ids);
                        Ok(())
                    }
                })
                .await;
                if let Ok(Err(error)) = result {
                    tracing::error!(error = %error, "cannot update the bot's dense index");
                }
                runtime.changes_applied.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

// ---- the worker pool ------------------------------------------------------------------------

pub struct TurnJob {
    pub tenant: String,
    pub conversation_id: String,
    /// The customer message's trace id.
    pub trace: String,
    pub text: String,
    /// The sensitive-word policy asked for a person.
    pub flagged: bool,
    pub enqueued: Instant,
}

struct Counters {
    turns: AtomicU64,
    shed: AtomicU64,
    last_wait_us: AtomicU64,
    decisions: [AtomicU64; 4],
    /// Turn latency, queue wait included.
    latency: Histogram,
}

/// The bot workers' figures (`/metrics`, and the shedding work).
#[derive(Debug, Clone, Serialize)]
pub struct BotStats {
    pub queue_depth: usize,
    pub queue_capacity: usize,
    pub turns: u64,
    /// Turns shed (a "busy" reply or straight to a person) because of the backlog.
    pub shed: u64,
    /// Whether new turns are being shed now (the global backlog).
    pub shedding: bool,
    /// How long the last turn waited for a worker.
    pub last_wait_us: u64,
    pub decisions: HashMap<&'static str, u64>,
}

pub struct BotWorkers {
    shards: Vec<mpsc::Sender<TurnJob>>,
    /// When each shard's queued turns were queued, oldest first (the shard's channel is FIFO):
    /// their count is the backlog's depth, and the age of the oldest is how long the backlog
    /// makes a turn wait now, before any worker has taken one that waited that long.
    queued_at: Arc<[Mutex<VecDeque<Instant>>]>,
    capacity: usize,
    shed_depth: usize,
    shed_wait_us: u64,
    shedding: AtomicBool,
    tenants: Arc<Mutex<HashMap<String, TenantQueue>>>,
    counters: Arc<Counters>,
}

/// One tenant's share of the backlog.
#[derive(Default)]
struct TenantQueue {
    depth: usize,
    shedding: bool,
}

const KINDS: [DecisionKind; 4] = [
    DecisionKind::Answer,
    DecisionKind::Clarify,
    DecisionKind::Handoff,
    DecisionKind::OutOfScope,
];

impl BotWorkers {
    pub fn start(chat: Weak<Chat>, settings: &BotRunSettings) -> BotWorkers {
        let queue_per_worker = settings.queue_per_worker.max(1);
        let counters = Arc::new(Counters {
            turns: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            last_wait_us: AtomicU64::new(0),
            decisions: Default::default(),
            latency: Histogram::new(&LATENCY_BUCKETS_MS),
        });
        let tenants: Arc<Mutex<HashMap<String, TenantQueue>>> = Arc::default();
        let workers = settings.workers.max(1);
        let queued_at: Arc<[Mutex<VecDeque<Instant>>]> =
            (0..workers).map(|_| Mutex::default()).collect();
        let mut shards = Vec::new();
        for shard in 0..workers {
            let (sender, mut receiver) = mpsc::channel::<TurnJob>(queue_per_worker);
            let chat = chat.clone();
            let counters = counters.clone();
            let tenants = tenants.clone();
            let queued_at = queued_at.clone();
            tokio::spawn(async move {
                while let Some(job) = receiver.recv().await {
                    queued_at[shard]
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .pop_front();
                    if let Some(queue) = tenants
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_mut(&job.tenant)
                    {
                        queue.depth = queue.depth.saturating_sub(1);
                    }
                    let waited = job.enqueued.elapsed().as_micros() as u64;
                    counters.last_wait_us.store(waited, Ordering::Relaxed);
                    let Some(chat) = chat.upgrade() else { break };
                    let enqueued = job.enqueued;
                    if let Some(kind) = chat.run_turn(job).await {
                        let index = KINDS.iter().position(|k| *k == kind).unwrap_or(0);
                        counters.decisions[index].fetch_add(1, Ordering::Relaxed);
                    }
                    counters.latency.observe(enqueued.elapsed());
                    counters.turns.fetch_add(1, Ordering::Relaxed);
                }
            });
            shards.push(sender);
        }
        let capacity = shards.len() * queue_per_worker;
        BotWorkers {
            capacity,
            shed_depth: match settings.shed_depth {
                0 => (capacity * 3 / 4).max(1),
                depth => depth,
            },
            shed_wait_us: settings.shed_wait_ms.saturating_mul(1000),
            shedding: AtomicBool::new(false),
            tenants,
            shards,
            queued_at,
            counters,
        }
    }

    /// Whether new turns are shed now: over the depth or wait threshold starts shedding, and it
    /// ends only when both are back under half of them (hysteresis). The wait is the longer of
    /// the last taken turn's and the oldest queued turn's so far: a burst that arrives faster
    /// than the workers take turns is seen at once, not only once a late turn is taken.
    fn overloaded(&self) -> bool {
        let (depth, oldest) = self.backlog();
        let wait = match oldest {
            None => 0,
            Some(at) => (at.elapsed().as_micros() as u64)
                .max(self.counters.last_wait_us.load(Ordering::Relaxed)),
        };
        if self.shedding.load(Ordering::Relaxed) {
            if depth <= self.shed_depth / 2 && wait <= self.shed_wait_us / 2 {
                self.shedding.store(false, Ordering::Relaxed);
                tracing::info!(depth, "bot backlog drained; bot turns are taken again");
            }
        } else if depth >= self.shed_depth || wait >= self.shed_wait_us {
            self.shedding.store(true, Ordering::Relaxed);
            tracing::warn!(
                depth,
                wait_us = wait,
                "bot backlog over the threshold; shedding bot turns"
            );
        }
        self.shedding.load(Ordering::Relaxed)
    }

    /// Queues a turn on its conversation's worker, or gives it back to be shed: the global
    /// backlog is over its threshold, the tenant's is over `tenant_max`, or the worker's queue
    /// is full.
    fn submit(&self, job: TurnJob, tenant_max: usize) -> Result<(), TurnJob> {
        let shed = |job: TurnJob| {
            self.counters.shed.fetch_add(1, Ordering::Relaxed);
            Err(job)
        };
        if self.overloaded() {
            return shed(job);
        }
        {
            let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
            let queue = tenants.entry(job.tenant.clone()).or_default();
            if queue.shedding && queue.depth <= tenant_max / 2 {
                queue.shedding = false;
            } else if !queue.shedding && queue.depth >= tenant_max {
                queue.shedding = true;
            }
            if queue.shedding {
                drop(tenants);
                return shed(job);
            }
            queue.depth += 1;
        }
        let shard = shard_of(&job.conversation_id, self.shards.len());
        // Recorded before the send, so the worker never takes a turn whose time is not there.
        let mut queued_at = self.queued_at[shard]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        queued_at.push_back(job.enqueued);
        match self.shards[shard].try_send(job) {
            Ok(()) => Ok(()),
            Err(error) => {
                queued_at.pop_back();
                drop(queued_at);
                let job = match error {
                    mpsc::error::TrySendError::Full(job)
                    | mpsc::error::TrySendError::Closed(job) => job,
                };
                if let Some(queue) = self
                    .tenants
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_mut(&job.tenant)
                {
                    queue.depth = queue.depth.saturating_sub(1);
                }
                shed(job)
            }
        }
    }

    /// Turns waiting for a worker, and when the oldest of them was queued.
    fn backlog(&self) -> (usize, Option<Instant>) {
        let mut depth = 0;
        let mut oldest: Option<Instant> = None;
        for queue in self.queued_at.iter() {
            let queue = queue.lock().unwrap_or_else(|p| p.into_inner());
            depth += queue.len();
            if let Some(&first) = queue.front() {
                oldest = Some(oldest.map_or(first, |o| o.min(first)));
            }
        }
        (depth, oldest)
    }

    pub fn stats(&self) -> BotStats {
        let c = &self.counters;
        BotStats {
            queue_depth: self.backlog().0,
            queue_capacity: self.capacity,
            turns: c.turns.load(Ordering::Relaxed),
            shed: c.shed.load(Ordering::Relaxed),
            shedding: self.shedding.load(Ordering::Relaxed),
            last_wait_us: c.last_wait_us.load(Ordering::Relaxed),
            decisions: KINDS
                .iter()
                .enumerate()
                .map(|(i, kind)| (kind.as_str(), c.decisions[i].load(Ordering::Relaxed)))
                .collect(),
        }
    }

    /// Turn latency (queue wait included), for `/metrics`.
    pub fn latency(&self) -> &Histogram {
        &self.counters.latency
    }
}

fn shard_of(key: &str, shards: usize) -> usize {
    // FNV-1a: stable and cheap; only needs to keep one conversation on one worker.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash = (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3);
    }
    (hash % shards as u64) as usize
}

/// Why and where a conversation goes to a person.
#[derive(Debug, Clone)]
pub struct HandoffRequest {
    pub reason: String,
    pub skill_hint: Option<String>,
    pub intent: Option<(String, f32)>,
    /// The bot's reply to store with the move (dropped when the routing policy rejects).
    pub bot_says: Option<(String, serde_json::Value)>,
}

impl HandoffRequest {
    pub fn because(reason: &str) -> HandoffRequest {
        HandoffRequest {
            reason: reason.to_owned(),
            skill_hint: None,
            intent: None,
            bot_says: None,
        }
    }
}

fn speaker(kind: SenderKind) -> Speaker {
    match kind {
        SenderKind::Customer => Speaker::Customer,
        SenderKind::Bot => Speaker::Bot,
        SenderKind::Agent => Speaker::Agent,
        SenderKind::System => Speaker::System,
    }
}

fn policy_messages(messages: &[MessageRecord]) -> Vec<PolicyMessage> {
    messages
        .iter()
        .map(|message| PolicyMessage {
            speaker: speaker(message.sender),
            author_id: match message.sender {
                SenderKind::Customer | SenderKind::Agent => {
                    message.sender_id.clone().unwrap_or_default()
                }
                _ => String::new(),
            },
            text: message.text.clone(),
            at_unix_ms: message.created_at.max(0) as u64,
        })
        .collect()
}

fn language_of(messages: &[MessageRecord]) -> String {
    let text: String = messages
        .iter()
        .filter(|message| message.sender == SenderKind::Customer)
        .map(|message| message.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    match switchboard_knowledge::guess_locale(&text) {
        "zh" => "zh-CN".into(),
        _ => "en".into(),
    }
}

impl Chat {
    /// The tenant's settings, cached for a few seconds.
    pub async fn tenant_settings(&self, tenant: &str) -> Arc<crate::tenant::TenantSettings> {
        if let Some((checked, settings)) = self
            .settings_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
        {
            if checked.elapsed() < std::time::Duration::from_secs(2) {
                return settings.clone();
            }
        }
        let settings = match self.store.tenant(tenant).await {
            Ok(Some(record)) => Arc::new(crate::tenant::TenantSettings::from_stored(
                tenant,
                &record.settings,
            )),
            Ok(None) => Arc::new(Default::default()),
            Err(error) => {
                tracing::error!(tenant, error = %error, "cannot read tenant settings; defaults used");
                Arc::new(Default::default())
            }
        };
        self.settings_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_owned(), (Instant::now(), settings.clone()));
        settings
    }

    pub fn forget_tenant_settings(&self, tenant: &str) {
        self.settings_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(tenant);
    }

    pub fn bot_stats(&self) -> BotStats {
        self.turns.stats()
    }

    pub fn turns_latency(&self) -> &Histogram {
        self.turns.latency()
    }

    /// Knowledge-base changes the bot's dense side has not applied yet (0 once it caught up;
    /// `None` while the bot is not built).
    pub fn bot_dense_lag(&self) -> Option<u64> {
        self.bot.bot.initialized().then(|| {
            self.knowledge
                .changes_sent()
                .saturating_sub(self.bot.changes_applied.load(Ordering::Relaxed))
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
        let job = TurnJob {
            tenant: conversation.tenant_id.clone(),
            conversation_id: conversation.id.clone(),
            trace: crate::chat::trace_id(message),
            text: text.to_owned(),
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

    /// The decision for one turn: the same path for live chat and the dry run.
    pub async fn decide(
        &self,
        tenant: &str,
        text: &str,
        unsure_streak: u32,
        flagged: bool,
    ) -> ApiResult<Decision> {
        let bot = self
            .bot
            .ready()
            .await
            .map_err(|message| ApiError::unavailable("models_unavailable", message))?;
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
            ApiError::unavailable(
                "busy",
                format!("the encoder cannot take this turn: {error}"),
            )
        })?;
        let worker = bot.clone();
        let decided = turn.clone();
        let decision = tokio::task::spawn_blocking(move || {
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
        .await
        .map_err(|error| ApiError::Internal(anyhow::anyhow!("bot task failed: {error}")))?;
        Ok(bot.refine_with_llm(&turn, decision).await)
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
        tracing::info!(
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

    /// Hands a conversation from the bot to a person: the tenant's routing policy (or the
    /// built-in strategy) picks the queue and priority, or rejects with a message.
    pub async fn hand_off(&self, conversation_id: &str, request: HandoffRequest) -> ApiResult<()> {
        let conversation = self
            .store
            .conversation(conversation_id)
            .await?
            .ok_or(ApiError::NotFound("conversation"))?;
        let tenant = conversation.tenant_id.clone();
        let settings = self.tenant_settings(&tenant).await;
        let customer = self
            .store
            .customer(&tenant, &conversation.customer_id)
            .await?;
        let recent = self
            .store
            .recent_messages(
                conversation_id,
                switchboard_policies::types::MAX_LAST_MESSAGES as i64,
            )
            .await?;
        let attributes = customer
            .map(|customer| customer.attributes)
            .unwrap_or_default();
        let input = Handoff {
            tenant: tenant.clone(),
            conversation_id: conversation_id.to_owned(),
            channel: conversation.channel.clone(),
            customer: switchboard_policies::types::Customer {
                id: conversation.customer_id.clone(),
                vip_level: attributes.vip_level,
                crm_tags: attributes.crm_tags.clone(),
                attributes: attributes
                    .attributes
                    .iter()
                    .map(|(key, value)| Attribute {
                        key: key.clone(),
                        value: value.clone(),
                    })
                    .collect(),
            },
            language: language_of(&recent),
            intent: request.intent.as_ref().map(|(label, _)| label.clone()),
            intent_confidence: request
                .intent
                .as_ref()
                .map(|(_, score)| *score)
                .unwrap_or(0.0),
            handoff_reason: request.reason.clone(),
            skill_hint: request.skill_hint.clone(),
            last_messages: policy_messages(&recent),
            queues: self.queue_snapshot(&tenant).await?,
            now_unix_ms: now_ms().max(0) as u64,
            utc_offset_minutes: settings.utc_offset_minutes,
        };
        let outcome = self.policies.route(input).await?;
        match outcome.decision {
            RoutingDecision::Reject { message } => {
                tracing::info!(conversation_id, reason = %request.reason, "routing policy rejected the handoff");
                let stored = self
                    .store
                    .append_system_message(conversation_id, &message)
                    .await?;
                self.publish_message(&stored);
            }
            RoutingDecision::Route(route) => {
                // The conversation keeps the reason's stable code; the `queued` event also says
                // what routed it, for the audit.
                let routed_by = match (&outcome.failure, &outcome.decided_by) {
                    (Some(failure), _) => format!(
                        "routing policy v{} failed ({}), built-in routing",
                        failure.policy.version,
                        failure.kind.as_str()
                    ),
                    (None, switchboard_policies::DecidedBy::Policy(id)) => {
                        format!("routing policy v{}", id.version)
                    }
                    (None, switchboard_policies::DecidedBy::BuiltIn) => "built-in routing".into(),
                };
                let note = format!(
                    "{}; {routed_by}: {}, priority {}",
                    request.reason, route.skill_group, route.priority
                );
                let bot_says = request
                    .bot_says
                    .as_ref()
                    .map(|(text, meta)| (text.as_str(), meta.clone()));
                let moved = self
                    .store
                    .hand_off(
                        conversation_id,
                        &route.skill_group,
                        route.priority as i64,
                        &request.reason,
                        &note,
                        bot_says,
                    )
                    .await?;
                if let Some((_, said)) = moved {
                    if let Some(message) = said {
                        self.publish_message(&message);
                    }
                    tracing::info!(
                        conversation_id,
                        skill_group = %route.skill_group,
                        priority = route.priority,
                        reason = %request.reason,
                        "conversation handed to a person"
                    );
                    if let Some(agent) = route.preferred_agent {
                        self.prefer_agent(conversation_id, &agent);
                    }
                    self.kick(&tenant);
                }
            }
        }
        Ok(())
    }

    /// Per skill group: how many wait, and the online agents with their load.
    async fn queue_snapshot(&self, tenant: &str) -> ApiResult<Vec<SkillGroupSnapshot>> {
        let queued = self.store.queued_conversations(tenant).await?;
        let loads = self.store.agent_loads(tenant).await?;
        let mut groups: std::collections::BTreeMap<String, SkillGroupSnapshot> =
            std::collections::BTreeMap::new();
        let group = |name: &str| -> SkillGroupSnapshot {
            SkillGroupSnapshot {
                name: name.to_owned(),
                queue_length: 0,
                online_agents: Vec::new(),
            }
        };
        groups.insert(DEFAULT_SKILL_GROUP.into(), group(DEFAULT_SKILL_GROUP));
        for conversation in &queued {
            groups
                .entry(conversation.skill_group.clone())
                .or_insert_with(|| group(&conversation.skill_group))
                .queue_length += 1;
        }
        for available in self.presence.available(tenant) {
            for skill in &available.agent.skills {
                if skill == "*" {
                    continue;
                }
                groups
                    .entry(skill.clone())
                    .or_insert_with(|| group(skill))
                    .online_agents
                    .push(AgentLoad {
                        agent_id: available.agent.id.clone(),
                        active_conversations: loads
                            .get(&available.agent.id)
                            .copied()
                            .unwrap_or(0)
                            .max(0) as u32,
                        max_conversations: available.agent.max_concurrent.max(0) as u32,
                    });
            }
        }
        Ok(groups.into_values().collect())
    }

    /// After a close: the tenant's quality policy (or the built-in scorer) scores the
    /// conversation, and the score is stored with it.
    pub(crate) async fn score_closed(&self, conversation: &Conversation) -> ApiResult<()> {
        let Some(closed_at) = conversation.closed_at else {
            return Ok(());
        };
        let events = self.store.events(&conversation.id).await?;
        let opened_at = events
            .iter()
            .rev()
            .find(|event| event.kind == "reopened" || event.kind == "created")
            .map(|event| event.created_at)
            .unwrap_or(conversation.created_at);
        let handed_off_at = events
            .iter()
            .filter(|event| event.kind == "queued" && event.created_at >= opened_at)
            .map(|event| event.created_at)
            .next();
        let mut transcript = Vec::new();
        let mut after = 0;
        loop {
            let batch = self
                .store
                .messages_after(&conversation.id, after, 500)
                .await?;
            let Some(last) = batch.last() else { break };
            after = last.seq;
            transcript.extend(batch.into_iter().filter(|m| m.created_at >= opened_at));
        }
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

    pub(crate) fn prefer_agent(&self, conversation_id: &str, agent_id: &str) {
        self.preferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(conversation_id.to_owned(), agent_id.to_owned());
    }
}
