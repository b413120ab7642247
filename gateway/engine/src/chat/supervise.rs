//! What supervisors see and do: the live view of a tenant (queues, agents, open conversations),
//! private notes to the agent holding a chat, transfers on the agent's behalf, and taking a chat
//! over.

use serde::Serialize;
use store::util::now_ms;
use store::{
    queued_since, Agent, Conversation, ConversationEvent, ConversationFilter, ConversationState,
};

use super::Chat;
use crate::bus::{agent_topic, BusEvent};
use crate::error::{ServiceError, ServiceResult};
use crate::presence::AgentStatus;

/// Open conversations of each state shown at most.
const LIVE_CONVERSATIONS_PER_STATE: i64 = 200;
/// Characters in a note.
pub const NOTE_MAX_CHARS: usize = 2_000;

#[derive(Debug, Clone, Serialize)]
pub struct QueueView {
    pub skill_group: String,
    pub waiting: i64,
    pub oldest_wait_ms: i64,
    /// Agents online who serve this group.
    pub agents_online: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct AgentView {
    pub id: String,
    pub name: String,
    pub skills: Vec<String>,
    /// `online`, `away` or `offline`.
    pub status: &'static str,
    pub load: i64,
    pub max_concurrent: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversationView {
    #[serde(flatten)]
    pub conversation: Conversation,
    /// For queued conversations: since when they wait (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<i64>,
}

/// A tenant now, as a supervisor's live view shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveView {
    pub queues: Vec<QueueView>,
    pub agents: Vec<AgentView>,
    /// Open conversations (with the bot, queued, assigned), newest activity first.
    pub conversations: Vec<ConversationView>,
}

pub fn status_name(status: Option<AgentStatus>) -> &'static str {
    match status {
        Some(AgentStatus::Online) => "online",
        Some(AgentStatus::Away) => "away",
        None => "offline",
    }
}

impl Chat {
    pub async fn live_view(&self, tenant: &str) -> ServiceResult<LiveView> {
        let loads = self.store.agent_loads(tenant).await?;
        let agents: Vec<AgentView> = self
            .store
            .agents(tenant)
            .await?
            .into_iter()
            .map(|agent| AgentView {
                status: status_name(self.presence.status(&agent.id)),
                load: loads.get(&agent.id).copied().unwrap_or(0),
                id: agent.id,
                name: agent.name,
                skills: agent.skills,
                max_concurrent: agent.max_concurrent,
            })
            .collect();
        let queues = self
            .store
            .tenant_queues(tenant)
            .await?
            .into_iter()
            .map(|queue| QueueView {
                agents_online: agents
                    .iter()
                    .filter(|agent| {
                        agent.status == "online"
                            && agent
                                .skills
                                .iter()
                                .any(|skill| *skill == queue.skill_group || skill == "*")
                    })
                    .count(),
                skill_group: queue.skill_group,
                waiting: queue.waiting,
                oldest_wait_ms: queue.oldest_wait_ms,
            })
            .collect();
        let now = now_ms();
        let mut conversations = Vec::new();
        for state in ["queued", "assigned", "bot"] {
            let filter = ConversationFilter {
                state: Some(state.into()),
                limit: Some(LIVE_CONVERSATIONS_PER_STATE),
                ..ConversationFilter::default()
            };
            let (page, _) = self.store.list_conversations(tenant, &filter).await?;
            conversations.extend(page.into_iter().map(|conversation| {
                ConversationView {
                    waiting_since: (conversation.state == ConversationState::Queued)
                        .then(|| queued_since(conversation.queue_key, now)),
                    conversation,
                }
            }));
        }
        conversations.sort_by(|a, b| b.conversation.updated_at.cmp(&a.conversation.updated_at));
        Ok(LiveView {
            queues,
            agents,
            conversations,
        })
    }

    async fn tenant_conversation(&self, tenant: &str, id: &str) -> ServiceResult<Conversation> {
        self.store
            .conversation(id)
            .await?
            .filter(|conversation| conversation.tenant_id == tenant)
            .ok_or(ServiceError::NotFound("conversation"))
    }

    /// A private note from a supervisor: stored with the conversation's events and shown to the
    /// agent holding it (a `note` frame), never to the customer.
    pub async fn add_note(
        &self,
        tenant: &str,
        conversation_id: &str,
        author: &str,
        text: &str,
    ) -> ServiceResult<ConversationEvent> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > NOTE_MAX_CHARS {
            return Err(ServiceError::invalid(
                "bad_note",
                format!("a note is 1 to {NOTE_MAX_CHARS} characters"),
            ));
        }
        let conversation = self.tenant_conversation(tenant, conversation_id).await?;
        let note = self.store.add_note(&conversation, author, text).await?;
        if let (ConversationState::Assigned, Some(agent)) =
            (conversation.state, &conversation.agent_id)
        {
            self.bus.publish(
                &agent_topic(agent),
                BusEvent::Note {
                    conversation_id: conversation.id.clone(),
                    author: author.to_owned(),
                    text: text.to_owned(),
                    at: note.created_at,
                },
            );
        }
        Ok(note)
    }

    /// The notes on one of the tenant's conversations, oldest first.
    pub async fn notes(
        &self,
        tenant: &str,
        conversation_id: &str,
    ) -> ServiceResult<Vec<ConversationEvent>> {
        let conversation = self.tenant_conversation(tenant, conversation_id).await?;
        Ok(self
            .store
            .events(&conversation.id)
            .await?
            .into_iter()
            .filter(|event| event.kind == "note")
            .collect())
    }

    /// Moves an assigned conversation on its agent's behalf (to a skill group's queue, or to an
    /// online agent with room), as the agent's own transfer would.
    pub async fn transfer_for(
        &self,
        tenant: &str,
        conversation_id: &str,
        target: &super::TransferTarget,
    ) -> ServiceResult<()> {
        let conversation = self.tenant_conversation(tenant, conversation_id).await?;
        let holder = match (conversation.state, &conversation.agent_id) {
            (ConversationState::Assigned, Some(agent)) => self.store.agent(tenant, agent).await?,
            _ => None,
        }
        .ok_or_else(|| ServiceError::invalid("not_assigned", "no agent holds this conversation"))?;
        self.transfer(&holder, conversation_id, target).await
    }

    /// A supervisor takes a queued or assigned conversation for themselves, working it as
    /// `agent` (their own agent record) in the agent console.
    pub async fn take_over(
        &self,
        tenant: &str,
        conversation_id: &str,
        agent: &Agent,
    ) -> ServiceResult<()> {
        let conversation = self.tenant_conversation(tenant, conversation_id).await?;
        let notice = format!("{0} took over the chat · {0} 已接手对话", agent.name);
        let moved = match (conversation.state, &conversation.agent_id) {
            (ConversationState::Queued, _) => {
                self.store.assign(conversation_id, agent, &notice).await?
            }
            (ConversationState::Assigned, Some(holder)) if *holder == agent.id => return Ok(()),
            (ConversationState::Assigned, Some(holder)) => {
                let moved = self
                    .store
                    .reassign(conversation_id, holder, agent, &notice)
                    .await?;
                if moved.is_some() {
                    self.bus.publish(
                        &agent_topic(holder),
                        BusEvent::Unassigned {
                            conversation_id: conversation_id.to_owned(),
                            reason: "taken_over".into(),
                        },
                    );
                }
                moved
            }
            _ => None,
        };
        let (conversation, message) = moved.ok_or_else(|| {
            ServiceError::invalid(
                "not_waiting",
                "only a queued or assigned conversation can be taken over",
            )
        })?;
        self.bus.publish(
            &agent_topic(&agent.id),
            BusEvent::Assigned {
                conversation_id: conversation.id.clone(),
            },
        );
        self.publish_message(&message);
        self.kick(tenant);
        Ok(())
    }
}
