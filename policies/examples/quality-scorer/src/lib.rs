//! A quality scorer: starts at 100 and deducts for a slow first agent response (over 30 s after
//! the handoff: 15), forbidden phrases in agent messages (20 each), an agent reply without a
//! greeting first (5), a conversation closed by the agent while the customer waited (20), and
//! an image or file the customer sent an agent that no agent answered within two minutes (10
//! each; WIT 0.2.0 and later: built as `legacy-quality-scorer` against 0.1.0 it sees no
//! attachments).

// Built twice: as `quality-scorer` against the current WIT, and as `legacy-quality-scorer`
// (feature `wit-0-1-0`) against the frozen 0.1.0.
#[cfg(not(feature = "wit-0-1-0"))]
wit_bindgen::generate!({ path: "../../wit", world: "quality" });
#[cfg(feature = "wit-0-1-0")]
wit_bindgen::generate!({ path: "../../wit-0.1.0", world: "quality" });

use switchboard::policy::types::{Finding, Message, Speaker};

struct QualityScorer;

const FORBIDDEN: [&str; 4] = ["不知道", "不归我管", "自己看", "i don't know"];
const GREETINGS: [&str; 4] = ["您好", "你好", "hello", "hi"];
/// How long an agent may take to answer an image or file before it counts as unanswered.
const ATTACHMENT_ANSWER_MS: u64 = 120_000;

/// The message's attachments as `image "a.png"`, for a finding's detail.
#[cfg(not(feature = "wit-0-1-0"))]
fn attachments_of(message: &Message) -> Vec<String> {
    use switchboard::policy::types::AttachmentKind;
    message
        .attachments
        .iter()
        .map(|attachment| {
            let kind = match attachment.kind {
                AttachmentKind::Image => "image",
                AttachmentKind::File => "file",
            };
            let name: String = attachment.name.chars().take(60).collect();
            format!("{kind} {name:?}")
        })
        .collect()
}

/// WIT 0.1.0 has no attachments.
#[cfg(feature = "wit-0-1-0")]
fn attachments_of(_message: &Message) -> Vec<String> {
    Vec::new()
}

impl Guest for QualityScorer {
    fn score(conversation: ClosedConversation) -> Assessment {
        let mut score: i32 = 100;
        let mut findings = Vec::new();
        let transcript = &conversation.transcript;
        let first_agent = transcript
            .iter()
            .position(|message| message.speaker == Speaker::Agent);

        if let (Some(index), Some(handoff)) = (first_agent, conversation.handed_off_at_unix_ms) {
            let waited_s = transcript[index].at_unix_ms.saturating_sub(handoff) / 1000;
            if waited_s > 30 {
                score -= 15;
                findings.push(Finding {
                    label: "slow_first_response".into(),
                    detail: format!("first agent reply after {waited_s} s"),
                    message_index: Some(index as u32),
                });
            }
            let greeting = transcript[index].text.to_lowercase();
            if !GREETINGS.iter().any(|word| greeting.contains(word)) {
                score -= 5;
                findings.push(Finding {
                    label: "no_greeting".into(),
                    detail: "the first agent reply has no greeting".into(),
                    message_index: Some(index as u32),
                });
            }
        }

        for (index, message) in transcript.iter().enumerate() {
            if message.speaker != Speaker::Agent {
                continue;
            }
            let text = message.text.to_lowercase();
            if let Some(phrase) = FORBIDDEN.iter().find(|phrase| text.contains(*phrase)) {
                score -= 20;
                findings.push(Finding {
                    label: "forbidden_phrase".into(),
                    detail: format!("agent wrote {phrase:?}"),
                    message_index: Some(index as u32),
                });
            }
        }

        // Images and files the customer sent once an agent was talking to them.
        if let Some(first_agent) = first_agent {
            for (index, message) in transcript.iter().enumerate().skip(first_agent) {
                let attachments = attachments_of(message);
                if message.speaker != Speaker::Customer || attachments.is_empty() {
                    continue;
                }
                let answered = transcript[index + 1..]
                    .iter()
                    .find(|later| later.speaker == Speaker::Agent)
                    .is_some_and(|reply| {
                        reply.at_unix_ms.saturating_sub(message.at_unix_ms) <= ATTACHMENT_ANSWER_MS
                    });
                if !answered {
                    score -= 10;
                    // The detail stays well under the host's 1000 bytes whatever the names.
                    let mut named = attachments[..attachments.len().min(3)].join(", ");
                    if attachments.len() > 3 {
                        named.push_str(&format!(" and {} more", attachments.len() - 3));
                    }
                    findings.push(Finding {
                        label: "attachment_unanswered".into(),
                        detail: format!(
                            "no agent reply within {} s to {named}",
                            ATTACHMENT_ANSWER_MS / 1000
                        ),
                        message_index: Some(index as u32),
                    });
                }
            }
        }

        let last_customer = transcript
            .iter()
            .rposition(|message| message.speaker == Speaker::Customer);
        let last_agent = transcript
            .iter()
            .rposition(|message| message.speaker == Speaker::Agent);
        if conversation.closed_by == Speaker::Agent && last_customer > last_agent {
            score -= 20;
            findings.push(Finding {
                label: "closed_while_customer_waited".into(),
                detail: "the agent closed the conversation after an unanswered customer message"
                    .into(),
                message_index: last_customer.map(|index| index as u32),
            });
        }

        Assessment {
            score: score.clamp(0, 100) as u8,
            findings,
        }
    }
}

export!(QualityScorer);
