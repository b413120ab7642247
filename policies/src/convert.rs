//! Conversions between the public Rust types and the bindings generated from the WIT. The
//! generated types never leave this crate.

use crate::host::quality_bindings::switchboard::policy::types as qwit;
use crate::host::routing_bindings::switchboard::policy::types as rwit;
use crate::types::{
    Assessment, ClosedConversation, Finding, Handoff, Message, Route, RoutingDecision, Speaker,
};

fn speaker_to_routing(speaker: Speaker) -> rwit::Speaker {
    match speaker {
        Speaker::Customer => rwit::Speaker::Customer,
        Speaker::Bot => rwit::Speaker::Bot,
        Speaker::Agent => rwit::Speaker::Agent,
        Speaker::System => rwit::Speaker::System,
    }
}

fn speaker_to_quality(speaker: Speaker) -> qwit::Speaker {
    match speaker {
        Speaker::Customer => qwit::Speaker::Customer,
        Speaker::Bot => qwit::Speaker::Bot,
        Speaker::Agent => qwit::Speaker::Agent,
        Speaker::System => qwit::Speaker::System,
    }
}

fn routing_message(message: &Message) -> rwit::Message {
    rwit::Message {
        speaker: speaker_to_routing(message.speaker),
        author_id: message.author_id.clone(),
        text: message.text.clone(),
        at_unix_ms: message.at_unix_ms,
    }
}

fn quality_message(message: &Message) -> qwit::Message {
    qwit::Message {
        speaker: speaker_to_quality(message.speaker),
        author_id: message.author_id.clone(),
        text: message.text.clone(),
        at_unix_ms: message.at_unix_ms,
    }
}

/// Keeps only the newest `max_last_messages`.
pub(crate) fn handoff_to_wit(input: &Handoff, max_last_messages: usize) -> rwit::Handoff {
    let skip = input.last_messages.len().saturating_sub(max_last_messages);
    rwit::Handoff {
        tenant: input.tenant.clone(),
        conversation_id: input.conversation_id.clone(),
        channel: input.channel.clone(),
        customer: rwit::Customer {
            id: input.customer.id.clone(),
            vip_level: input.customer.vip_level,
            crm_tags: input.customer.crm_tags.clone(),
            attributes: input
                .customer
                .attributes
                .iter()
                .map(|attribute| rwit::Attribute {
                    key: attribute.key.clone(),
                    value: attribute.value.clone(),
                })
                .collect(),
        },
        language: input.language.clone(),
        intent: input.intent.clone(),
        intent_confidence: input.intent_confidence,
        handoff_reason: input.handoff_reason.clone(),
        skill_hint: input.skill_hint.clone(),
        last_messages: input
            .last_messages
            .iter()
            .skip(skip)
            .map(routing_message)
            .collect(),
        queues: input
            .queues
            .iter()
            .map(|queue| rwit::SkillGroupSnapshot {
                name: queue.name.clone(),
                queue_length: queue.queue_length,
                online_agents: queue
                    .online_agents
                    .iter()
                    .map(|agent| rwit::AgentLoad {
                        agent_id: agent.agent_id.clone(),
                        active_conversations: agent.active_conversations,
                        max_conversations: agent.max_conversations,
                    })
                    .collect(),
            })
            .collect(),
        now_unix_ms: input.now_unix_ms,
        utc_offset_minutes: input.utc_offset_minutes,
    }
}

pub(crate) fn routing_decision_from_wit(decision: rwit::RoutingDecision) -> RoutingDecision {
    match decision {
        rwit::RoutingDecision::Route(route) => RoutingDecision::Route(Route {
            skill_group: route.skill_group,
            priority: route.priority,
            preferred_agent: route.preferred_agent,
        }),
        rwit::RoutingDecision::Reject(message) => RoutingDecision::Reject { message },
    }
}

pub(crate) fn closed_conversation_to_wit(
    conversation: &ClosedConversation,
) -> qwit::ClosedConversation {
    qwit::ClosedConversation {
        tenant: conversation.tenant.clone(),
        conversation_id: conversation.conversation_id.clone(),
        channel: conversation.channel.clone(),
        language: conversation.language.clone(),
        opened_at_unix_ms: conversation.opened_at_unix_ms,
        handed_off_at_unix_ms: conversation.handed_off_at_unix_ms,
        assigned_at_unix_ms: conversation.assigned_at_unix_ms,
        closed_at_unix_ms: conversation.closed_at_unix_ms,
        closed_by: speaker_to_quality(conversation.closed_by),
        transcript: conversation
            .transcript
            .iter()
            .map(quality_message)
            .collect(),
    }
}

pub(crate) fn assessment_from_wit(assessment: qwit::Assessment) -> Assessment {
    Assessment {
        score: assessment.score,
        findings: assessment
            .findings
            .into_iter()
            .map(|finding| Finding {
                label: finding.label,
                detail: finding.detail,
                message_index: finding.message_index,
            })
            .collect(),
    }
}
