//! A quality scorer: starts at 100 and deducts for a slow first agent response (over 30 s after
//! the handoff: 15), forbidden phrases in agent messages (20 each), an agent reply without a
//! greeting first (5) and a conversation closed by the agent while the customer waited (20).

wit_bindgen::generate!({ path: "../../wit", world: "quality" });

use switchboard::policy::types::{Finding, Speaker};

struct QualityScorer;

const FORBIDDEN: [&str; 4] = ["不知道", "不归我管", "自己看", "i don't know"];
const GREETINGS: [&str; 4] = ["您好", "你好", "hello", "hi"];

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
