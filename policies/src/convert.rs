//! Conversions between the public Rust types and the bindings generated from each WIT version
//! (`bindings`). The generated types never leave this crate. A version's input is the public
//! input without the fields added after it; its answer types never changed.

use crate::types::{Assessment, Finding, Handoff, Route, RoutingDecision, Speaker};

/// The conversions every version shares: the types that are the same in all of them.
macro_rules! shared_conversions {
    ($wit:path) => {
        use $wit as wit;

        fn speaker(speaker: Speaker) -> wit::Speaker {
            match speaker {
                Speaker::Customer => wit::Speaker::Customer,
                Speaker::Bot => wit::Speaker::Bot,
                Speaker::Agent => wit::Speaker::Agent,
                Speaker::System => wit::Speaker::System,
            }
        }

        fn customer(customer: &crate::types::Customer) -> wit::Customer {
            wit::Customer {
                id: customer.id.clone(),
                vip_level: customer.vip_level,
                crm_tags: customer.crm_tags.clone(),
                attributes: customer
                    .attributes
                    .iter()
                    .map(|attribute| wit::Attribute {
                        key: attribute.key.clone(),
                        value: attribute.value.clone(),
                    })
                    .collect(),
            }
        }

        fn queues(queues: &[crate::types::SkillGroupSnapshot]) -> Vec<wit::SkillGroupSnapshot> {
            queues
                .iter()
                .map(|queue| wit::SkillGroupSnapshot {
                    name: queue.name.clone(),
                    queue_length: queue.queue_length,
                    online_agents: queue
                        .online_agents
                        .iter()
                        .map(|agent| wit::AgentLoad {
                            agent_id: agent.agent_id.clone(),
                            active_conversations: agent.active_conversations,
                            max_conversations: agent.max_conversations,
                        })
                        .collect(),
                })
                .collect()
        }

        pub(crate) fn routing_decision(decision: wit::RoutingDecision) -> RoutingDecision {
            match decision {
                wit::RoutingDecision::Route(route) => RoutingDecision::Route(Route {
                    skill_group: route.skill_group,
                    priority: route.priority,
                    preferred_agent: route.preferred_agent,
                }),
                wit::RoutingDecision::Reject(message) => RoutingDecision::Reject { message },
            }
        }

        pub(crate) fn assessment(assessment: wit::Assessment) -> Assessment {
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

        /// The newest `max_last_messages` of the handoff's messages.
        fn newest(input: &Handoff, max_last_messages: usize) -> &[crate::types::Message] {
            let skip = input.last_messages.len().saturating_sub(max_last_messages);
            &input.last_messages[skip..]
        }

        /// The closed conversation, each message as this version's `message` sees it.
        pub(crate) fn closed_conversation(
            conversation: &crate::types::ClosedConversation,
        ) -> wit::ClosedConversation {
            wit::ClosedConversation {
                tenant: conversation.tenant.clone(),
                conversation_id: conversation.conversation_id.clone(),
                channel: conversation.channel.clone(),
                language: conversation.language.clone(),
                opened_at_unix_ms: conversation.opened_at_unix_ms,
                handed_off_at_unix_ms: conversation.handed_off_at_unix_ms,
                assigned_at_unix_ms: conversation.assigned_at_unix_ms,
                closed_at_unix_ms: conversation.closed_at_unix_ms,
                closed_by: speaker(conversation.closed_by),
                transcript: conversation.transcript.iter().map(message).collect(),
            }
        }
    };
}

/// `switchboard:policy@0.2.0`: everything, attachments included.
pub(crate) mod v0_2 {
    use super::*;
    use crate::types::{AttachmentKind, Message};

    shared_conversions!(crate::bindings::v0_2::types);

    fn message(message: &Message) -> wit::Message {
        wit::Message {
            speaker: speaker(message.speaker),
            author_id: message.author_id.clone(),
            text: message.text.clone(),
            at_unix_ms: message.at_unix_ms,
            attachments: message
                .attachments
                .iter()
                .map(|attachment| wit::Attachment {
                    kind: match attachment.kind {
                        AttachmentKind::Image => wit::AttachmentKind::Image,
                        AttachmentKind::File => wit::AttachmentKind::File,
                    },
                    name: attachment.name.clone(),
                    media_type: attachment.media_type.clone(),
                    size_bytes: attachment.size_bytes,
                })
                .collect(),
        }
    }

    /// Keeps only the newest `max_last_messages`.
    pub(crate) fn handoff(input: &Handoff, max_last_messages: usize) -> wit::Handoff {
        wit::Handoff {
            tenant: input.tenant.clone(),
            conversation_id: input.conversation_id.clone(),
            channel: input.channel.clone(),
            customer: customer(&input.customer),
            language: input.language.clone(),
            intent: input.intent.clone(),
            intent_confidence: input.intent_confidence,
            handoff_reason: input.handoff_reason.clone(),
            skill_hint: input.skill_hint.clone(),
            last_messages: newest(input, max_last_messages)
                .iter()
                .map(message)
                .collect(),
            customer_attachments: wit::AttachmentCounts {
                images: input.customer_attachments.images,
                files: input.customer_attachments.files,
            },
            queues: queues(&input.queues),
            now_unix_ms: input.now_unix_ms,
            utc_offset_minutes: input.utc_offset_minutes,
        }
    }
}

/// `switchboard:policy@0.1.0`: no attachments (a message keeps its caption as its text, and
/// the routing input has no counts).
pub(crate) mod v0_1 {
    use super::*;
    use crate::types::Message;

    shared_conversions!(crate::bindings::v0_1::types);

    fn message(message: &Message) -> wit::Message {
        wit::Message {
            speaker: speaker(message.speaker),
            author_id: message.author_id.clone(),
            text: message.text.clone(),
            at_unix_ms: message.at_unix_ms,
        }
    }

    /// Keeps only the newest `max_last_messages`.
    pub(crate) fn handoff(input: &Handoff, max_last_messages: usize) -> wit::Handoff {
        wit::Handoff {
            tenant: input.tenant.clone(),
            conversation_id: input.conversation_id.clone(),
            channel: input.channel.clone(),
            customer: customer(&input.customer),
            language: input.language.clone(),
            intent: input.intent.clone(),
            intent_confidence: input.intent_confidence,
            handoff_reason: input.handoff_reason.clone(),
            skill_hint: input.skill_hint.clone(),
            last_messages: newest(input, max_last_messages)
                .iter()
                .map(message)
                .collect(),
            queues: queues(&input.queues),
            now_unix_ms: input.now_unix_ms,
            utc_offset_minutes: input.utc_offset_minutes,
        }
    }
}
