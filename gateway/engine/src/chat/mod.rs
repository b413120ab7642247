//! The operations of live chat that every transport shares (WebSocket, long-poll, later the
//! webhook channels): store first, then publish, then let the dispatcher assign.
//!
//! The dispatcher is one task per node that runs an assignment round for a tenant whenever
//! something changed (a conversation queued, an agent came online or freed capacity). A round
//! walks the tenant's queue (priority, then waiting time) and gives each conversation to an online
//! agent of its skill group with spare capacity: least busy first, ties to the longest idle.
//! The store's conditional update makes a second assignment of one conversation impossible.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchboard_channels::web::{check_message, SenderKind};
use switchboard_channels::ChannelKind;
use tokio::sync::mpsc;

mod bot_turns;
pub mod episodes;
pub mod erasure;
pub mod handoff;
mod quality;
pub mod recovery;
pub mod supervise;

use crate::bot_runtime::BotRuntime;
use crate::bot_workers::{BotRunSettings, BotWorkers};
use crate::bus::{
    agent_topic, conversation_topic, customer_topic, message_published, Bus, BusEvent,
    CLUSTER_TOPIC,
};
use crate::cluster::Cluster;
use crate::error::{ServiceError, ServiceResult};
use crate::intents::Intents;
use crate::kb::Knowledge;
use crate::limits::RateLimits;
use crate::metrics::Metrics;
use crate::policy::Policies;
use crate::presence::{AgentStatus, Presence};
use crate::tenant::{is_skill_name, TenantSettings, TenantSettingsCache};
use store::util::now_ms;
use store::{
    Actor, Agent, Appended, Conversation, ConversationState, Customer, Entry, MessageRecord,
    NewMessage, PendingAppend, Store, StoreError,
};
use switchboard_policies::sensitive::{Action, Scan};

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

/// The skill group of conversations nobody routed elsewhere.
pub const DEFAULT_SKILL_GROUP: &str = "general";

/// Where a transfer sends a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTarget {
    Skill(String),
    Agent(String),
}

impl TransferTarget {
    pub fn parse(value: &str) -> Option<Self> {
        match value.split_once(':') {
            Some(("skill", name)) if is_skill_name(name.trim()) => {
                Some(TransferTarget::Skill(name.trim().to_owned()))
            }
            Some(("agent", id)) if !id.trim().is_empty() => {
                Some(TransferTarget::Agent(id.trim().to_owned()))
            }
            _ => None,
        }
    }
}

pub struct Chat {
    pub store: Store,
    pub bus: Arc<dyn Bus>,
    pub presence: Presence,
    pub knowledge: Arc<Knowledge>,
    pub policies: Arc<Policies>,
    pub intents: Arc<Intents>,
    pub bot: Arc<BotRuntime>,
    pub limits: Arc<RateLimits>,
    pub metrics: Arc<Metrics>,
    /// Attachments: uploads, blobs, download links.
    pub files: Arc<crate::files::Files>,
    turns: BotWorkers,
    tenants: TenantSettingsCache,
    /// Tenants' own LLM endpoints.
    pub llms: crate::tenant::TenantLlmCache,
    /// Agents a routing policy asked for, by conversation (used once, if they can take it).
    preferred: Mutex<HashMap<String, String>>,
    agent_grace: Duration,
    /// What this node shares with the others (all in process on one node).
    pub cluster: Cluster,
    me: std::sync::Weak<Chat>,
    kick: mpsc::UnboundedSender<String>,
    /// The last queue position told to each waiting conversation, with its tenant. Each of a
    /// tenant's assignment rounds replaces the tenant's entries, so a conversation no longer
    /// waiting (assigned here or on another node) is forgotten.
    positions: Mutex<HashMap<String, (String, i64)>>,
    /// Tenants whose bot self-check is running (at most one each: it takes a core for up to
    /// a few seconds).
    self_checks: Arc<Mutex<HashSet<String>>>,
}

/// What the chat service runs beside the store and the bus.
pub struct ChatParts {
    pub knowledge: Arc<Knowledge>,
    pub policies: Arc<Policies>,
    pub intents: Arc<Intents>,
    pub bot: Arc<BotRuntime>,
    pub agent_grace: Duration,
    pub bot_settings: BotRunSettings,
    pub limits: Arc<RateLimits>,
    pub files: Arc<crate::files::Files>,
}

/// A customer's message queued for the store ([`Chat::customer_submit`]).
pub struct SubmittedMessage {
    pending: PendingAppend,
    /// A word list asked for a person.
    pub handoff: bool,
    started: Instant,
}

impl Chat {
    /// Starts the chat service, its dispatcher task and the bot workers.
    pub fn start(store: Store, cluster: Cluster, parts: ChatParts) -> Arc<Chat> {
        let (kick, mut kicks) = mpsc::unbounded_channel::<String>();
        let chat = Arc::new_cyclic(|weak: &std::sync::Weak<Chat>| Chat {
            tenants: TenantSettingsCache::new(store.clone()),
            llms: crate::tenant::TenantLlmCache::new(store.clone()),
            store,
            bus: cluster.bus.clone(),
            presence: Presence::default(),
            knowledge: parts.knowledge,
            policies: parts.policies,
            intents: parts.intents,
            bot: parts.bot,
            limits: parts.limits,
            files: parts.files,
            metrics: Arc::new(Metrics::default()),
            turns: BotWorkers::start(weak.clone(), &parts.bot_settings),
            preferred: Mutex::new(HashMap::new()),
            agent_grace: parts.agent_grace,
            cluster,
            me: weak.clone(),
            kick,
            positions: Mutex::new(HashMap::new()),
            self_checks: Arc::default(),
        });
        if chat.cluster.node.is_some() {
            chat.follow_cluster();
            chat.sweep_lost_agents();
        }
        let weak = Arc::downgrade(&chat);
        tokio::spawn(async move {
            while let Some(first) = kicks.recv().await {
                let mut tenants = HashSet::from([first]);
                while let Ok(more) = kicks.try_recv() {
                    tenants.insert(more);
                }
                let Some(chat) = weak.upgrade() else { break };
                for tenant in tenants {
                    if let Err(error) = chat.assign_round(&tenant).await {
                        tracing::error!(tenant = %tenant, error = %error, "assignment round failed");
                    }
                }
            }
        });
        chat
    }

    /// The tenant's settings, cached for a few seconds.
    pub async fn tenant_settings(&self, tenant: &str) -> Arc<TenantSettings> {
        self.tenants.get(tenant).await
    }

    /// Forgets this node's cached settings of the tenant (after a change here).
    pub fn forget_tenant_settings(&self, tenant: &str) {
        self.tenants.forget(tenant);
    }

    fn myself(&self) -> Option<Arc<Chat>> {
        self.me.upgrade()
    }

    /// Asks the dispatcher to run a round for this tenant (on every node in cluster mode: an
    /// agent on another node may be the one to take the conversation).
    pub fn kick(&self, tenant: &str) {
        let _ = self.kick.send(tenant.to_owned());
        if let Some(node) = &self.cluster.node {
            self.bus.publish(
                CLUSTER_TOPIC,
                BusEvent::Kick {
                    tenant: tenant.to_owned(),
                    node: node.clone(),
                },
            );
        }
    }

    /// Cluster mode: every few seconds this node marks its connected agents online in Redis,
    /// and requeues the chats of agents who hold some but are connected nowhere (their node
    /// died) once they have been gone for the grace period.
    fn sweep_lost_agents(self: &Arc<Self>) {
        let chat = Arc::downgrade(self);
        let every =
            (self.agent_grace / 3).clamp(Duration::from_millis(200), Duration::from_secs(5));
        tokio::spawn(async move {
            let mut missing_since: HashMap<String, Instant> = HashMap::new();
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(chat) = chat.upgrade() else { break };
                let cluster = &chat.cluster;
                let here = chat.presence.connected_agents();
                if let Err(error) = cluster.agents.mark_online(&here, every * 3).await {
                    tracing::warn!(error = %error, "cannot mark agents online");
                    continue;
                }
                let holding = match chat.store.agents_holding_conversations().await {
                    Ok(holding) => holding,
                    Err(error) => {
                        tracing::warn!(error = %error, "cannot list agents holding chats");
                        continue;
                    }
                };
                let ids: Vec<String> = holding.iter().map(|(_, agent)| agent.clone()).collect();
                let Ok(online) = cluster.agents.online(&ids).await else {
                    continue;
                };
                let mut still_missing = HashMap::new();
                for ((tenant, agent), online) in holding.into_iter().zip(online) {
                    if online {
                        continue;
                    }
                    let since = missing_since.remove(&agent).unwrap_or_else(Instant::now);
                    if since.elapsed() >= chat.agent_grace {
                        tracing::info!(agent_id = %agent, "agent connected nowhere past the grace period; requeueing");
                        if let Err(error) =
                            chat.requeue_all(&agent, "agent lost with its node").await
                        {
                            tracing::error!(agent_id = %agent, error = %error, "requeue failed");
                        }
                        chat.kick(&tenant);
                    } else {
                        still_missing.insert(agent, since);
                    }
                }
                missing_since = still_missing;
            }
        });
    }

    /// Cluster mode: other nodes' kicks run a round here too, and an agent who connected
    /// elsewhere is not requeued by a grace timer here.
    fn follow_cluster(self: &Arc<Self>) {
        let mut events = self.bus.subscribe(CLUSTER_TOPIC);
        let chat = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(event) => event,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                };
                let Some(chat) = chat.upgrade() else { break };
                let me = chat.cluster.node.as_deref().unwrap_or_default();
                match event {
                    BusEvent::Kick { tenant, node } if node != me => {
                        let _ = chat.kick.send(tenant);
                    }
                    BusEvent::AgentOnline { agent_id, node } if node != me => {
                        chat.presence.connected_elsewhere(&agent_id);
                    }
                    _ => {}
                }
            }
        });
    }

    /// After start-up: chats held by agents who do not come back within the grace period go back
    /// to the head of their queue.
    pub async fn recover_orphans(self: &Arc<Self>) -> anyhow::Result<()> {
        for (tenant, agent_id) in self.store.agents_holding_conversations().await? {
            self.start_grace_timer(tenant, agent_id, 0);
        }
        Ok(())
    }

    pub fn queue_position(&self, conversation_id: &str) -> Option<i64> {
        self.positions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(conversation_id)
            .map(|(_, position)| *position)
    }

    pub(crate) fn publish_message(&self, message: &MessageRecord) {
        self.metrics.message(message.sender);
        let shared = Arc::new(message.clone());
        self.bus.publish(
            &conversation_topic(&message.conversation_id),
            BusEvent::Message(shared.clone()),
        );
        message_published(&*self.bus, &shared);
    }

    // ---- customers --------------------------------------------------------------------------

    /// Stores a customer's message (once per client_msg_id) and sends it on its way: the tenant's
    /// sensitive words are applied first (block, mask, flag, handoff); a conversation with the
    /// bot gets a bot turn.
    pub async fn customer_send(
        &self,
        customer: &Customer,
        client_msg_id: &str,
        text: &str,
        origin: Option<std::net::IpAddr>,
    ) -> ServiceResult<Appended> {
        self.customer_send_with(customer, client_msg_id, text, &[], origin)
            .await
    }

    /// [`Chat::customer_send`] with the customer's uploads (`attachments`, ids).
    pub async fn customer_send_with(
        &self,
        customer: &Customer,
        client_msg_id: &str,
        text: &str,
        attachments: &[String],
        origin: Option<std::net::IpAddr>,
    ) -> ServiceResult<Appended> {
        let submitted = self
            .customer_submit_with(customer, client_msg_id, text, attachments, origin)
            .await?;
        let handoff = submitted.handoff;
        let appended = self.customer_stored(submitted).await?;
        self.customer_sent(customer, &appended, handoff).await;
        Ok(appended)
    }

    /// The first half of [`Chat::customer_send`]: checks, limits and word lists, then the message
    /// is queued for the store. A connection can submit its next message before this one is
    /// stored (the store keeps their order); [`Chat::customer_stored`] and
    /// [`Chat::customer_sent`] finish each, in order. `origin` is the customer's own address
    /// (the widget, an app), limited per IP; `None` for messages relayed by a provider.
    pub async fn customer_submit(
        &self,
        customer: &Customer,
        client_msg_id: &str,
        text: &str,
        origin: Option<std::net::IpAddr>,
    ) -> ServiceResult<SubmittedMessage> {
        self.customer_submit_with(customer, client_msg_id, text, &[], origin)
            .await
    }

    /// [`Chat::customer_submit`] for a message that may carry the customer's uploads
    /// (`attachments`, ids); the text is then a caption and may be empty.
    pub async fn customer_submit_with(
        &self,
        customer: &Customer,
        client_msg_id: &str,
        text: &str,
        attachments: &[String],
        origin: Option<std::net::IpAddr>,
    ) -> ServiceResult<SubmittedMessage> {
        check_message(client_msg_id, text, attachments.len())
            .map_err(|error| ServiceError::invalid(error.code(), error.to_string()))?;
        // `wechat:` and `douyin:` ids are the webhooks' own: the outbox's recovery scan takes
        // them as "written through that channel", so no other client may use them.
        if let Some((prefix, _)) = client_msg_id.split_once(':') {
            let provider = [ChannelKind::Wechat, ChannelKind::Douyin]
                .iter()
                .any(|kind| kind.as_str() == prefix);
            if provider && customer.channel != prefix {
                return Err(ServiceError::invalid(
                    "bad_client_msg_id",
                    format!("client_msg_id may not begin with `{prefix}:`"),
                ));
            }
        }
        let text = &*without_controls(text);
        let settings = self.tenant_settings(&customer.tenant_id).await;
        if !attachments.is_empty() && !settings.attachments.customers {
            return Err(ServiceError::denied(
                "attachments_off",
                "this service does not accept attachments from customers",
            ));
        }
        self.limits
            .customer_message(&customer.tenant_id, &customer.id, origin, settings.limits)?;
        // The tenant's total across every node (on one node the limiter above already holds it
        // to the same budget).
        let budget =
            u64::from(settings.limits.tenant.per_second) + u64::from(settings.limits.tenant.burst);
        match self.cluster.budget.take(&customer.tenant_id, budget).await {
            Ok(Ok(())) => {}
            Ok(Err(retry_after_ms)) => {
                return Err(ServiceError::RateLimited { retry_after_ms });
            }
            // Redis unreachable: the node's own limits still hold; do not refuse chats.
            Err(error) => tracing::warn!(error = %error, "cluster rate limit unavailable"),
        }
        let (text, mut meta, mut handoff) = {
            let words = self.policies.words(&customer.tenant_id).await;
            let verdict = words.scan(text);
            let (text, meta) = screened(&verdict, text)?;
            (text, meta, verdict.action == Action::Handoff)
        };
        if !attachments.is_empty() {
            let uploader = crate::files::Uploader::customer(customer);
            let records = self.files.for_message(&uploader, attachments).await?;
            handoff |= self.attach(&customer.tenant_id, records, &mut meta).await?;
        }
        // New and reopened conversations start with the bot; a human-first tenant's go on to
        // the queue at once (through the same handoff and routing).
        let entry = Entry {
            state: ConversationState::Bot,
            skill_group: DEFAULT_SKILL_GROUP.into(),
            priority: 0,
        };
        let started = Instant::now();
        let pending = self
            .store
            .submit(NewMessage::Customer {
                customer: customer.clone(),
                client_msg_id: Some(client_msg_id.to_owned()),
                text,
                entry,
                meta,
            })
            .await;
        Ok(SubmittedMessage {
            pending,
            handoff,
            started,
        })
    }

    /// Waits until a submitted message is stored.
    pub async fn customer_stored(&self, submitted: SubmittedMessage) -> ServiceResult<Appended> {
        let appended = submitted.pending.stored().await?;
        self.metrics
            .store_append
            .observe(submitted.started.elapsed());
        Ok(appended)
    }

    /// A stored customer message goes on its way: published to the conversation, and a turn
    /// for the bot (`handoff`: a word list asked for a person). Nothing for a resend.
    pub async fn customer_sent(&self, customer: &Customer, appended: &Appended, handoff: bool) {
        if appended.duplicate {
            return;
        }
        // Per message: `debug` (at `info` it would cost the relay a line per message).
        tracing::debug!(
            trace = %trace_id(&appended.message),
            conversation_id = %appended.conversation.id,
            seq = appended.message.seq,
            customer = %customer.masked(),
            "customer message stored"
        );
        self.publish_message(&appended.message);
        if appended.created {
            self.bus.publish(
                &customer_topic(&customer.id),
                BusEvent::Opened {
                    conversation_id: appended.conversation.id.clone(),
                },
            );
        }
        if appended.conversation.state == ConversationState::Bot {
            self.bot_turn(&appended.conversation, &appended.message, handoff)
                .await;
        } else if handoff {
            tracing::info!(conversation_id = %appended.conversation.id, "sensitive word asked for a person; already with one");
        }
    }

    pub fn customer_typing(&self, conversation_id: &str) {
        self.bus.publish(
            &conversation_topic(conversation_id),
            BusEvent::Typing {
                conversation_id: conversation_id.to_owned(),
                from: SenderKind::Customer,
            },
        );
    }

    // ---- agents -----------------------------------------------------------------------------

    /// Stores an agent's message (once per client_msg_id) and publishes it: the three steps
    /// below at once.
    pub async fn agent_send(
        &self,
        agent: &Agent,
        conversation_id: &str,
        client_msg_id: &str,
        text: &str,
    ) -> ServiceResult<Appended> {
        let pending = self
            .agent_submit(agent, conversation_id, client_msg_id, text)
            .await?;
        let appended = self.agent_stored(pending).await?;
        self.agent_sent(agent, &appended);
        Ok(appended)
    }

    /// Checks, limits and word lists, then the agent's message is queued for the store; a
    /// connection may submit its next message before this one is stored (see
    /// [`Chat::customer_submit`]).
    pub async fn agent_submit(
        &self,
        agent: &Agent,
        conversation_id: &str,
        client_msg_id: &str,
        text: &str,
    ) -> ServiceResult<PendingAppend> {
        self.agent_submit_with(agent, conversation_id, client_msg_id, text, &[])
            .await
    }

    /// [`Chat::agent_submit`] for a message that may carry the agent's uploads.
    pub async fn agent_submit_with(
        &self,
        agent: &Agent,
        conversation_id: &str,
        client_msg_id: &str,
        text: &str,
        attachments: &[String],
    ) -> ServiceResult<PendingAppend> {
        check_message(client_msg_id, text, attachments.len())
            .map_err(|error| ServiceError::invalid(error.code(), error.to_string()))?;
        let text = &*without_controls(text);
        let settings = self.tenant_settings(&agent.tenant_id).await;
        self.limits
            .agent_message(&agent.tenant_id, &agent.id, settings.limits)?;
        // Agents' messages are blocked or masked; flag and handoff lists are about customers.
        let (text, mut meta) = {
            let words = self.policies.words(&agent.tenant_id).await;
            let verdict = words.scan(text);
            match verdict.action {
                Action::Block | Action::Mask => screened(&verdict, text)?,
                _ => (text.to_owned(), None),
            }
        };
        if !attachments.is_empty() {
            let uploader = crate::files::Uploader::agent(agent);
            let records = self.files.for_message(&uploader, attachments).await?;
            // A WeChat or Douyin customer gets each file through the provider's media upload:
            // what the provider cannot take is refused now, not as a failed delivery later.
            if let Some(channel) = self
                .reply_channel(&agent.tenant_id, conversation_id)
                .await?
            {
                for record in &records {
                    let refusal = switchboard_channels::media::refusal(
                        channel,
                        record.kind == store::attachments::AttachmentKind::Image,
                        &record.media_type,
                        u64::try_from(record.size).unwrap_or(u64::MAX),
                    );
                    if let Some(reason) = refusal {
                        return Err(ServiceError::invalid(
                            "attachment_not_deliverable",
                            format!("{}: {reason}", record.name),
                        ));
                    }
                }
            }
            self.attach(&agent.tenant_id, records, &mut meta).await?;
        }
        Ok(self
            .store
            .submit(NewMessage::Agent {
                conversation_id: conversation_id.to_owned(),
                agent_id: agent.id.clone(),
                client_msg_id: client_msg_id.to_owned(),
                text,
                meta,
            })
            .await)
    }

    /// The provider channel an agent's reply in this conversation goes out on (its route, else
    /// its own channel), if it is one with a media upload (WeChat, Douyin).
    async fn reply_channel(
        &self,
        tenant: &str,
        conversation_id: &str,
    ) -> ServiceResult<Option<ChannelKind>> {
        let channel = match self.store.route(conversation_id).await? {
            Some(route) if route.tenant_id == tenant => Some(route.channel),
            _ => self
                .store
                .conversation(conversation_id)
                .await?
                .filter(|conversation| conversation.tenant_id == tenant)
                .map(|conversation| conversation.channel),
        };
        Ok(channel
            .as_deref()
            .and_then(ChannelKind::parse)
            .filter(|kind| matches!(kind, ChannelKind::Wechat | ChannelKind::Douyin)))
    }

    /// Waits until a submitted agent message is stored. A conversation the agent does not hold
    /// is `not_assigned`; a database failure stays an internal error.
    pub async fn agent_stored(&self, pending: PendingAppend) -> ServiceResult<Appended> {
        pending.stored().await.map_err(|error| match error {
            StoreError::Conflict(_) => {
                ServiceError::invalid("not_assigned", "conversation is not assigned to you")
            }
            other => other.into(),
        })
    }

    /// A stored agent message goes on its way (nothing for a resend). A connection calls this in
    /// the order its messages were sent.
    pub fn agent_sent(&self, agent: &Agent, appended: &Appended) {
        if !appended.duplicate {
            tracing::debug!(trace = %trace_id(&appended.message), conversation_id = %appended.conversation.id, seq = appended.message.seq, agent_id = %agent.id, "agent message stored");
            self.publish_message(&appended.message);
        }
    }

    pub fn agent_typing(&self, conversation_id: &str) {
        self.bus.publish(
            &conversation_topic(conversation_id),
            BusEvent::Typing {
                conversation_id: conversation_id.to_owned(),
                from: SenderKind::Agent,
            },
        );
    }

    pub async fn close(&self, agent: &Agent, conversation_id: &str) -> ServiceResult<()> {
        let closed = self
            .store
            .close_conversation(
                conversation_id,
                &agent.id,
                "The chat was closed · 会话已结束",
            )
            .await?
            .ok_or_else(|| {
                ServiceError::invalid("not_assigned", "conversation is not assigned to you")
            })?;
        tracing::info!(conversation_id, agent_id = %agent.id, "conversation closed");
        self.after_release(&agent.id, &closed.0, &closed.1, "closed");
        // The episode, the survey and the quality score read the transcript and may run a
        // tenant's policy: off the agent's request.
        self.after_close(closed.0, "agent");
        Ok(())
    }

    pub async fn transfer(
        &self,
        agent: &Agent,
        conversation_id: &str,
        target: &TransferTarget,
    ) -> ServiceResult<()> {
        match target {
            TransferTarget::Skill(skill) => {
                // A skill nobody serves would strand the chat in a queue no agent takes.
                let agents = self.store.agents(&agent.tenant_id).await?;
                if !agents.iter().any(|candidate| candidate.serves(skill)) {
                    return Err(ServiceError::invalid(
                        "unknown_skill",
                        "no agent of this tenant serves that skill",
                    ));
                }
                let notice = "You are being transferred to another team · 正在为您转接其他客服组";
                let moved = self
                    .store
                    .requeue(
                        conversation_id,
                        &agent.id,
                        Some(skill),
                        true,
                        "transferred",
                        &Actor::agent(&agent.id),
                        &format!("to skill {skill}"),
                        notice,
                    )
                    .await?
                    .ok_or_else(|| {
                        ServiceError::invalid("not_assigned", "conversation is not assigned to you")
                    })?;
                self.after_release(&agent.id, &moved.0, &moved.1, "transferred");
            }
            TransferTarget::Agent(target_id) => {
                let target = self
                    .store
                    .agent(&agent.tenant_id, target_id)
                    .await?
                    .ok_or_else(|| {
                        ServiceError::invalid("unknown_agent", "no such agent in this tenant")
                    })?;
                if target.id == agent.id {
                    return Err(ServiceError::invalid(
                        "bad_transfer",
                        "cannot transfer to yourself",
                    ));
                }
                if self.presence.status(&target.id) != Some(AgentStatus::Online) {
                    return Err(ServiceError::invalid(
                        "agent_unavailable",
                        "that agent is not online",
                    ));
                }
                let load = self
                    .store
                    .agent_loads(&agent.tenant_id)
                    .await?
                    .get(&target.id)
                    .copied()
                    .unwrap_or(0);
                if load >= target.max_concurrent {
                    return Err(ServiceError::invalid(
                        "agent_unavailable",
                        "that agent has no spare capacity",
                    ));
                }
                let notice = format!("{0} took over the chat · 客服 {0} 已接手", target.name);
                let (conversation, message) = self
                    .store
                    .reassign(conversation_id, &agent.id, &target, &notice)
                    .await?
                    .ok_or_else(|| {
                        ServiceError::invalid("not_assigned", "conversation is not assigned to you")
                    })?;
                self.bus.publish(
                    &agent_topic(&agent.id),
                    BusEvent::Unassigned {
                        conversation_id: conversation.id.clone(),
                        reason: "transferred".into(),
                    },
                );
                self.bus.publish(
                    &agent_topic(&target.id),
                    BusEvent::Assigned {
                        conversation_id: conversation.id.clone(),
                    },
                );
                self.publish_message(&message);
                self.kick(&agent.tenant_id);
            }
        }
        Ok(())
    }

    /// The agent chose a status. Going away hands their chats back to the head of the queue.
    pub async fn set_status(&self, agent: &Agent, status: AgentStatus) -> ServiceResult<()> {
        self.presence.set_status(&agent.id, status);
        if status == AgentStatus::Away {
            self.requeue_all(&agent.id, "agent went away").await?;
        }
        self.kick(&agent.tenant_id);
        Ok(())
    }

    pub fn agent_connected(&self, agent: &Agent) -> AgentStatus {
        let status = self.presence.connect(agent, now_ms());
        if let Some(node) = &self.cluster.node {
            self.bus.publish(
                CLUSTER_TOPIC,
                BusEvent::AgentOnline {
                    agent_id: agent.id.clone(),
                    node: node.clone(),
                },
            );
        }
        self.kick(&agent.tenant_id);
        status
    }

    /// The agent's connection ended; without a reconnect in the grace period their chats are requeued.
    pub fn agent_disconnected(self: &Arc<Self>, agent: &Agent) {
        if let Some(generation) = self.presence.disconnect(&agent.id) {
            self.start_grace_timer(agent.tenant_id.clone(), agent.id.clone(), generation);
        }
    }

    fn start_grace_timer(self: &Arc<Self>, tenant: String, agent_id: String, generation: u64) {
        let chat = Arc::downgrade(self);
        let grace = self.agent_grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let Some(chat) = chat.upgrade() else { return };
            if chat.presence.expire(&agent_id, generation) {
                if let Err(error) = chat.requeue_all(&agent_id, "agent disconnected").await {
                    tracing::error!(agent_id = %agent_id, error = %error, "requeue after disconnect failed");
                }
                chat.kick(&tenant);
            }
        });
    }

    async fn requeue_all(&self, agent_id: &str, reason: &str) -> ServiceResult<()> {
        for conversation in self.store.assigned_conversations(agent_id).await? {
            let notice = "Your agent is unavailable; you are back at the front of the queue · 客服暂时离开，已为您优先重新排队";
            if let Some((conversation, message)) = self
                .store
                .requeue(
                    &conversation.id,
                    agent_id,
                    None,
                    true,
                    "requeued",
                    &Actor::system(),
                    reason,
                    notice,
                )
                .await?
            {
                tracing::info!(conversation_id = %conversation.id, agent_id, reason, "conversation requeued");
                self.after_release(agent_id, &conversation, &message, "requeued");
            }
        }
        Ok(())
    }

    fn after_release(
        &self,
        agent_id: &str,
        conversation: &Conversation,
        message: &MessageRecord,
        reason: &str,
    ) {
        self.bus.publish(
            &agent_topic(agent_id),
            BusEvent::Unassigned {
                conversation_id: conversation.id.clone(),
                reason: reason.to_owned(),
            },
        );
        self.publish_message(message);
        self.kick(&conversation.tenant_id);
    }

    // ---- the dispatcher ---------------------------------------------------------------------

    async fn assign_round(&self, tenant: &str) -> anyhow::Result<()> {
        let queued = self.store.queued_conversations(tenant).await?;
        let mut available = self.presence.available(tenant);
        let mut loads = self.store.agent_loads(tenant).await?;
        let mut waiting: HashMap<String, i64> = HashMap::new();
        let mut positions: Vec<(String, i64)> = Vec::new();
        for conversation in queued {
            let preferred = self
                .preferred
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&conversation.id);
            let choice = available
                .iter()
                .enumerate()
                .filter(|(_, candidate)| {
                    candidate.agent.serves(&conversation.skill_group)
                        && loads.get(&candidate.agent.id).copied().unwrap_or(0)
                            < candidate.agent.max_concurrent
                })
                // A routing policy's preferred agent first, when they can take it.
                .min_by_key(|(_, candidate)| {
                    (
                        preferred.as_deref() != Some(candidate.agent.id.as_str()),
                        loads.get(&candidate.agent.id).copied().unwrap_or(0),
                        candidate.idle_since,
                    )
                })
                .map(|(index, _)| index);
            if let Some(index) = choice {
                let agent = available[index].agent.clone();
                let notice = format!("{0} joined the chat · 客服 {0} 已接入", agent.name);
                if let Some((conversation, message)) =
                    self.store.assign(&conversation.id, &agent, &notice).await?
                {
                    tracing::info!(conversation_id = %conversation.id, agent_id = %agent.id, "conversation assigned");
                    self.metrics.assigned();
                    *loads.entry(agent.id.clone()).or_insert(0) += 1;
                    available[index].idle_since = now_ms();
                    self.presence.touch(&agent.id, now_ms());
                    self.bus.publish(
                        &agent_topic(&agent.id),
                        BusEvent::Assigned {
                            conversation_id: conversation.id.clone(),
                        },
                    );
                    self.publish_message(&message);
                }
                continue;
            }
            let ahead = waiting.entry(conversation.skill_group.clone()).or_insert(0);
            *ahead += 1;
            positions.push((conversation.id, *ahead));
        }
        let mut told = self.positions.lock().unwrap_or_else(|p| p.into_inner());
        let waiting: std::collections::HashSet<&str> =
            positions.iter().map(|(id, _)| id.as_str()).collect();
        told.retain(|id, (owner, _)| owner != tenant || waiting.contains(id.as_str()));
        for (conversation_id, position) in positions {
            let before = told.insert(conversation_id.clone(), (tenant.to_owned(), position));
            if before.map(|(_, told)| told) != Some(position) {
                self.bus.publish(
                    &conversation_topic(&conversation_id),
                    BusEvent::Queue {
                        conversation_id: conversation_id.clone(),
                        position,
                    },
                );
            }
        }
        Ok(())
    }
}

impl Chat {
    /// Deletes attachments older than each tenant's retention, now and every `every`.
    pub fn spawn_attachment_retention(&self, every: Duration) {
        let me = self.me.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(chat) = me.upgrade() else { break };
                if let Err(error) = chat.apply_attachment_retention().await {
                    tracing::warn!(error = %error, "attachment retention sweep failed");
                }
            }
        });
    }

    /// One retention sweep over every tenant with attachments; answers how many went.
    pub async fn apply_attachment_retention(&self) -> ServiceResult<u64> {
        let mut deleted = 0;
        for tenant in self.store.attachment_tenants().await? {
            let days = self
                .tenant_settings(&tenant)
                .await
                .attachments
                .retention_days;
            deleted += self.files.apply_retention(&tenant, days).await?;
        }
        Ok(deleted)
    }

    /// Puts attachments into a message's meta once the tenant's word lists have seen their file
    /// names: a blocked word refuses the message, a masked one is masked in the name. Answers
    /// whether a name asked for a person.
    async fn attach(
        &self,
        tenant: &str,
        mut records: Vec<store::attachments::AttachmentRecord>,
        meta: &mut Option<serde_json::Value>,
    ) -> ServiceResult<bool> {
        let mut handoff = false;
        let words = self.policies.words(tenant).await;
        for record in &mut records {
            let verdict = words.scan(&record.name);
            match verdict.action {
                Action::Block => {
                    return Err(ServiceError::invalid(
                        "blocked",
                        "a file name contains words that are not allowed here",
                    ))
                }
                Action::Mask => record.name = verdict.masked().into_owned(),
                Action::Handoff => handoff = true,
                Action::Allow | Action::Flag => {}
            }
        }
        let list =
            serde_json::to_value(&records).map_err(|error| ServiceError::Internal(error.into()))?;
        match meta {
            Some(serde_json::Value::Object(object)) => {
                object.insert("attachments".into(), list);
            }
            _ => *meta = Some(serde_json::json!({ "attachments": list })),
        }
        Ok(handoff)
    }
}

/// The text with every control character but tab and line breaks (U+0000 to U+001F) replaced by
/// U+FFFD. PostgreSQL cannot store a NUL, so a message is stored the same way on both backends
/// (and one such message never fails the batch it is written in); and JSON writes each other
/// one as six bytes (`\u0001`), which made a page of such messages six times its size.
fn without_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let control = |c: char| c < ' ' && !matches!(c, '\t' | '\n' | '\r');
    // Bytes, not characters, for the common case: a control character is one byte in UTF-8,
    // and no other character's bytes look like one.
    if text.bytes().any(|byte| control(char::from(byte))) {
        std::borrow::Cow::Owned(text.replace(control, "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// The text to store and its meta after the sensitive-word verdict; a block is an error.
fn screened(
    verdict: &Scan<'_, '_>,
    text: &str,
) -> ServiceResult<(String, Option<serde_json::Value>)> {
    // Each list and word once, however often it matched.
    let lists = || {
        verdict
            .matches()
            .iter()
            .map(|m| m.list)
            .collect::<std::collections::BTreeSet<_>>()
    };
    match verdict.action {
        Action::Allow => Ok((text.to_owned(), None)),
        Action::Block => Err(ServiceError::invalid(
            "blocked",
            "this message contains words that are not allowed here",
        )),
        Action::Mask => Ok((
            verdict.masked().into_owned(),
            Some(serde_json::json!({ "sensitive": { "action": "mask", "lists": lists() } })),
        )),
        Action::Flag | Action::Handoff => {
            let words: std::collections::BTreeSet<&str> =
                verdict.matches().iter().map(|m| m.word).collect();
            Ok((
                text.to_owned(),
                Some(serde_json::json!({ "sensitive": {
                    "action": verdict.action.as_str(), "lists": lists(), "words": words,
                } })),
            ))
        }
    }
}

/// The id that follows a message through the logs, from ingress to delivery:
/// `<conversation id>/<seq>` (the outbox's delivery ids carry the same pair).
pub fn trace_id(message: &MessageRecord) -> String {
    format!("{}/{}", message.conversation_id, message.seq)
}
