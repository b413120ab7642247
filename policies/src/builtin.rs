//! The built-in strategies: what decides when a tenant has no policy, and the fallback whenever
//! a tenant's policy fails. Plain Rust, no allocation beyond the answer, cannot fail.

use crate::types::{
    Assessment, ClosedConversation, Finding, Handoff, Route, RoutingDecision, Speaker,
};

/// The built-in routing strategy.
///
/// - skill group: the handoff's skill hint when it is non-empty and (if the queue snapshot is
///   non-empty) names a known group; otherwise [`BuiltinRouting::default_group`];
/// - priority: 2 for ordinary customers, `4 + vip_level` for VIPs, at most 9;
/// - no preferred agent, never a rejection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltinRouting {
    /// The group that takes conversations nobody hinted at; every tenant has one.
    pub default_group: String,
}

impl Default for BuiltinRouting {
    fn default() -> Self {
        Self {
            default_group: "general".to_owned(),
        }
    }
}

impl BuiltinRouting {
    pub fn route(&self, input: &Handoff) -> RoutingDecision {
        let hinted = input
            .skill_hint
            .as_deref()
            .map(str::trim)
            .filter(|hint| !hint.is_empty())
            .filter(|hint| {
                input.queues.is_empty() || input.queues.iter().any(|queue| queue.name == *hint)
            });
        let skill_group = hinted.unwrap_or(&self.default_group).to_owned();
        RoutingDecision::Route(Route {
            skill_group,
            priority: priority_for_vip_level(input.customer.vip_level),
            preferred_agent: None,
        })
    }
}

/// 0 → 2, 1 → 5, 2 → 6, ..., 5 and above → 9.
pub fn priority_for_vip_level(vip_level: u8) -> u8 {
    if vip_level == 0 {
        2
    } else {
        vip_level.saturating_add(4).min(9)
    }
}

/// The built-in quality scorer. Starts at 100 and deducts for:
///
/// | label | when | points |
/// |---|---|---|
/// | `no_agent_reply` | handed off (or assigned) but no agent ever wrote | 40 |
/// | `slow_first_response` | first agent message later than `first_response_target_ms` after the handoff | 10, or 25 past 3× the target |
/// | `slow_reply` | a customer waited longer than `reply_gap_target_ms` for an agent reply | 5 each, at most 30 |
/// | `unanswered_customer` | the customer's last message got no agent answer before close | 20 |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltinQuality {
    pub first_response_target_ms: u64,
    pub reply_gap_target_ms: u64,
}

impl Default for BuiltinQuality {
    fn default() -> Self {
        Self {
            first_response_target_ms: 60_000,
            reply_gap_target_ms: 120_000,
        }
    }
}

impl BuiltinQuality {
    pub fn score(&self, conversation: &ClosedConversation) -> Assessment {
        let mut findings = Vec::new();
        let mut deducted: u32 = 0;
        let transcript = &conversation.transcript;
        let human_phase_start = conversation
            .handed_off_at_unix_ms
            .or(conversation.assigned_at_unix_ms);
        let first_agent = transcript
            .iter()
            .position(|message| message.speaker == Speaker::Agent);

        match (human_phase_start, first_agent) {
            (Some(_), None) => {
                deducted += 40;
                findings.push(Finding {
                    label: "no_agent_reply".to_owned(),
                    detail: "the conversation was handed off but no agent replied".to_owned(),
                    message_index: None,
                });
            }
            (Some(start), Some(index)) => {
                let waited = transcript[index].at_unix_ms.saturating_sub(start);
                if waited > self.first_response_target_ms {
                    deducted += if waited > self.first_response_target_ms.saturating_mul(3) {
                        25
                    } else {
                        10
                    };
                    findings.push(Finding {
                        label: "slow_first_response".to_owned(),
                        detail: format!("first agent reply after {} s", waited / 1000),
                        message_index: Some(index as u32),
                    });
                }
            }
            (None, _) => {}
        }

        // Reply gaps: from the first unanswered customer message to the next agent message.
        if let Some(first_agent) = first_agent {
            let mut waiting_since: Option<(usize, u64)> = None;
            let mut gap_deduction: u32 = 0;
            for (index, message) in transcript.iter().enumerate().skip(first_agent) {
                match message.speaker {
                    Speaker::Customer => {
                        waiting_since.get_or_insert((index, message.at_unix_ms));
                    }
                    Speaker::Agent => {
                        if let Some((asked_index, asked_at)) = waiting_since.take() {
                            let gap = message.at_unix_ms.saturating_sub(asked_at);
                            if gap > self.reply_gap_target_ms {
                                gap_deduction = (gap_deduction + 5).min(30);
                                findings.push(Finding {
                                    label: "slow_reply".to_owned(),
                                    detail: format!("customer waited {} s for a reply", gap / 1000),
                                    message_index: Some(asked_index as u32),
                                });
                            }
                        }
                    }
                    Speaker::Bot | Speaker::System => {}
                }
            }
            deducted += gap_deduction;
            if let Some((asked_index, _)) = waiting_since {
                deducted += 20;
                findings.push(Finding {
                    label: "unanswered_customer".to_owned(),
                    detail: "the customer's last message got no agent reply".to_owned(),
                    message_index: Some(asked_index as u32),
                });
            }
        }

        Assessment {
            score: 100u32.saturating_sub(deducted) as u8,
            findings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Customer, Message, SkillGroupSnapshot};

    fn handoff() -> Handoff {
        Handoff {
            tenant: "acme".into(),
            conversation_id: "c1".into(),
            channel: "web".into(),
            customer: Customer {
                id: "u1".into(),
                ..Customer::default()
            },
            language: "zh-CN".into(),
            intent: None,
            intent_confidence: 0.0,
            handoff_reason: "asked_for_human".into(),
            skill_hint: None,
            last_messages: vec![],
            customer_attachments: Default::default(),
            queues: vec![],
            now_unix_ms: 0,
            utc_offset_minutes: 0,
        }
    }

    fn route_of(decision: RoutingDecision) -> Route {
        match decision {
            RoutingDecision::Route(route) => route,
            RoutingDecision::Reject { message } => panic!("unexpected rejection {message}"),
        }
    }

    #[test]
    fn builtin_routing_uses_hint_default_and_vip_priority() {
        let strategy = BuiltinRouting::default();
        let route = route_of(strategy.route(&handoff()));
        assert_eq!((route.skill_group.as_str(), route.priority), ("general", 2));

        let mut input = handoff();
        input.skill_hint = Some("billing".into());
        input.customer.vip_level = 3;
        let route = route_of(strategy.route(&input));
        assert_eq!((route.skill_group.as_str(), route.priority), ("billing", 7));

        input.queues = vec![SkillGroupSnapshot {
            name: "sales".into(),
            queue_length: 0,
            online_agents: vec![],
        }];
        input.customer.vip_level = 200;
        let route = route_of(strategy.route(&input));
        assert_eq!(
            (route.skill_group.as_str(), route.priority),
            ("general", 9),
            "unknown hint falls back"
        );
    }

    fn message(speaker: Speaker, at_s: u64) -> Message {
        Message {
            speaker,
            author_id: String::new(),
            text: "x".into(),
            at_unix_ms: at_s * 1000,
            attachments: vec![],
        }
    }

    fn closed(transcript: Vec<Message>) -> ClosedConversation {
        ClosedConversation {
            tenant: "acme".into(),
            conversation_id: "c1".into(),
            channel: "web".into(),
            language: "en".into(),
            opened_at_unix_ms: 0,
            handed_off_at_unix_ms: Some(10_000),
            assigned_at_unix_ms: Some(12_000),
            closed_at_unix_ms: 1_000_000,
            closed_by: Speaker::Agent,
            transcript,
        }
    }

    fn labels(assessment: &Assessment) -> Vec<&str> {
        assessment
            .findings
            .iter()
            .map(|finding| finding.label.as_str())
            .collect()
    }

    #[test]
    fn builtin_quality_scores_a_good_conversation_100() {
        let conversation = closed(vec![
            message(Speaker::Customer, 5),
            message(Speaker::Agent, 30),
            message(Speaker::Customer, 40),
            message(Speaker::Agent, 60),
        ]);
        let assessment = BuiltinQuality::default().score(&conversation);
        assert_eq!(assessment.score, 100);
        assert!(assessment.findings.is_empty());
    }

    #[test]
    fn builtin_quality_finds_slow_first_response_gaps_and_unanswered() {
        let conversation = closed(vec![
            message(Speaker::Customer, 5),
            message(Speaker::Agent, 100), // 90 s after handoff: slow (10)
            message(Speaker::Customer, 110),
            message(Speaker::Agent, 400),    // gap 290 s (5)
            message(Speaker::Customer, 410), // never answered (20)
        ]);
        let assessment = BuiltinQuality::default().score(&conversation);
        assert_eq!(
            labels(&assessment),
            ["slow_first_response", "slow_reply", "unanswered_customer"]
        );
        assert_eq!(assessment.score, 65);

        let assessment =
            BuiltinQuality::default().score(&closed(vec![message(Speaker::Customer, 5)]));
        assert_eq!(labels(&assessment), ["no_agent_reply"]);
        assert_eq!(assessment.score, 60);
    }
}
