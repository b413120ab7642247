//! Handoff: a conversation leaves the bot for a queue. The tenant's routing policy (or the
//! built-in strategy) picks the skill group, priority and preferred agent, or rejects with a
//! message (the conversation then stays with the bot).

use switchboard_policies::types::{
    AgentLoad, AttachmentCounts, Attribute, Handoff, RoutingDecision, SkillGroupSnapshot,
};

use super::{Chat, HandoffRequest, DEFAULT_SKILL_GROUP};
use crate::error::{ServiceError, ServiceResult};
use crate::hours::OutOfHours;
use crate::policy::{language_of, policy_messages};
use store::util::now_ms;

/// A sample conversation for a routing dry run; every field has a default.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingSample {
    pub channel: String,
    pub language: String,
    pub vip_level: u8,
    pub crm_tags: Vec<String>,
    pub attributes: std::collections::BTreeMap<String, String>,
    pub intent: Option<String>,
    pub handoff_reason: String,
    pub skill_hint: Option<String>,
    /// The customer's last messages, oldest first.
    pub messages: Vec<String>,
    /// The time to route at (default: now), to try opening hours.
    pub now_unix_ms: Option<u64>,
}

impl Default for RoutingSample {
    fn default() -> Self {
        RoutingSample {
            channel: "web".into(),
            language: "zh-CN".into(),
            vip_level: 0,
            crm_tags: Vec::new(),
            attributes: Default::default(),
            intent: None,
            handoff_reason: "explicit_request".into(),
            skill_hint: None,
            messages: Vec::new(),
            now_unix_ms: None,
        }
    }
}

impl RoutingSample {
    fn validate(&self) -> ServiceResult<()> {
        let short = |text: &str| text.chars().count() <= 200;
        let fits = self.messages.len() <= switchboard_policies::types::MAX_LAST_MESSAGES
            && self
                .messages
                .iter()
                .all(|text| text.chars().count() <= 4_000)
            && self.crm_tags.len() <= 32
            && self.crm_tags.iter().all(|tag| short(tag))
            && self.attributes.len() <= 32
            && self
                .attributes
                .iter()
                .all(|(key, value)| short(key) && short(value))
            && [&self.channel, &self.language, &self.handoff_reason]
                .iter()
                .all(|text| short(text))
            && self.intent.as_deref().is_none_or(short)
            && self.skill_hint.as_deref().is_none_or(short)
            && self.vip_level <= 9;
        if fits {
            Ok(())
        } else {
            Err(ServiceError::invalid(
                "bad_sample",
                "a sample has at most 20 messages of 4000 characters, 32 tags and attributes of 200, vip_level 0-9",
            ))
        }
    }
}

/// What a routing dry run decided, and who decided it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoutingDryRun {
    pub decision: RoutingDecision,
    /// `routing policy vN` or `built-in routing`.
    pub decided_by: String,
    /// Why the tenant's policy failed (the built-in strategy decided instead).
    pub failure: Option<String>,
    pub elapsed_us: u64,
    /// Set when the built-in routing is out of business hours: what the customer is told.
    pub out_of_hours: Option<String>,
}

impl Chat {
    /// Hands a conversation from the bot to a person: the tenant's routing policy (or the
    /// built-in strategy) picks the queue and priority, or rejects with a message.
    pub async fn hand_off(
        &self,
        conversation_id: &str,
        request: HandoffRequest,
    ) -> ServiceResult<()> {
        let conversation = self
            .store
            .conversation(conversation_id)
            .await?
            .ok_or(ServiceError::NotFound("conversation"))?;
        let tenant = conversation.tenant_id.clone();
        let settings = self.tenant_settings(&tenant).await;
        let customer = self
            .store
            .customer(&tenant, &conversation.customer_id)
            .await?;
        // The newest messages: the last few are the policy's `last_messages`, and the
        // customer's attachments are counted over all of them.
        let window = self
            .store
            .recent_messages(
                conversation_id,
                switchboard_policies::types::ATTACHMENT_COUNT_WINDOW as i64,
            )
            .await?;
        let messages = policy_messages(&window);
        let customer_attachments = AttachmentCounts::sent_by_customer(&messages);
        let last = window
            .len()
            .saturating_sub(switchboard_policies::types::MAX_LAST_MESSAGES);
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
            language: language_of(&window[last..]),
            intent: request.intent.as_ref().map(|(label, _)| label.clone()),
            intent_confidence: request
                .intent
                .as_ref()
                .map(|(_, score)| *score)
                .unwrap_or(0.0),
            handoff_reason: request.reason.clone(),
            skill_hint: request.skill_hint.clone(),
            last_messages: messages[last..].to_vec(),
            customer_attachments,
            queues: self.queue_snapshot(&tenant).await?,
            now_unix_ms: now_ms().max(0) as u64,
            utc_offset_minutes: settings.utc_offset_minutes,
        };
        let mut outcome = self.policies.route(input).await?;
        // Business hours belong to the built-in routing; a tenant's policy decides for itself.
        let hours = &settings.business_hours;
        let closed = matches!(outcome.decided_by, switchboard_policies::DecidedBy::BuiltIn)
            && !hours.is_open(now_ms(), settings.utc_offset_minutes);
        if closed && hours.out_of_hours == OutOfHours::Reject {
            outcome.decision = RoutingDecision::Reject {
                message: hours.message.clone(),
            };
        }
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
                    if closed {
                        let told = self
                            .store
                            .append_system_message(conversation_id, &hours.message)
                            .await?;
                        self.publish_message(&told);
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
    async fn queue_snapshot(&self, tenant: &str) -> ServiceResult<Vec<SkillGroupSnapshot>> {
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

    /// What the tenant's routing would decide now for a sample conversation (the active policy,
    /// or the built-in strategy with business hours): nothing is stored or queued.
    pub async fn routing_dry_run(
        &self,
        tenant: &str,
        sample: RoutingSample,
    ) -> ServiceResult<RoutingDryRun> {
        sample.validate()?;
        let settings = self.tenant_settings(tenant).await;
        let now = sample.now_unix_ms.unwrap_or_else(|| now_ms().max(0) as u64);
        let messages = sample
            .messages
            .iter()
            .map(|text| switchboard_policies::types::Message {
                speaker: switchboard_policies::types::Speaker::Customer,
                author_id: "sample".into(),
                text: text.clone(),
                at_unix_ms: now,
                attachments: Vec::new(),
            })
            .collect();
        let input = Handoff {
            tenant: tenant.to_owned(),
            conversation_id: "dry-run".into(),
            channel: sample.channel,
            customer: switchboard_policies::types::Customer {
                id: "sample".into(),
                vip_level: sample.vip_level,
                crm_tags: sample.crm_tags,
                attributes: sample
                    .attributes
                    .into_iter()
                    .map(|(key, value)| Attribute { key, value })
                    .collect(),
            },
            language: sample.language,
            intent: sample.intent,
            intent_confidence: 1.0,
            handoff_reason: sample.handoff_reason,
            skill_hint: sample.skill_hint,
            last_messages: messages,
            customer_attachments: Default::default(),
            queues: self.queue_snapshot(tenant).await?,
            now_unix_ms: now,
            utc_offset_minutes: settings.utc_offset_minutes,
        };
        let outcome = self.policies.route(input).await?;
        let built_in = matches!(outcome.decided_by, switchboard_policies::DecidedBy::BuiltIn);
        let hours = &settings.business_hours;
        let open = !built_in || hours.is_open(now as i64, settings.utc_offset_minutes);
        let mut decision = outcome.decision;
        if !open && hours.out_of_hours == OutOfHours::Reject {
            decision = RoutingDecision::Reject {
                message: hours.message.clone(),
            };
        }
        Ok(RoutingDryRun {
            decision,
            decided_by: match &outcome.decided_by {
                switchboard_policies::DecidedBy::Policy(id) => {
                    format!("routing policy v{}", id.version)
                }
                switchboard_policies::DecidedBy::BuiltIn => "built-in routing".into(),
            },
            failure: outcome.failure.map(|failure| failure.to_string()),
            elapsed_us: outcome.elapsed.as_micros() as u64,
            out_of_hours: (!open).then(|| hours.message.clone()),
        })
    }

    pub(crate) fn prefer_agent(&self, conversation_id: &str, agent_id: &str) {
        self.preferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(conversation_id.to_owned(), agent_id.to_owned());
    }
}
