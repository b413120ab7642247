//! The contract a policy's answer must meet; a breach is an `invalid_answer` failure.

use crate::types::{Assessment, RoutingDecision};

pub const MAX_SKILL_GROUP_BYTES: usize = 64;
pub const MAX_AGENT_ID_BYTES: usize = 128;
pub const MAX_REJECT_MESSAGE_BYTES: usize = 2000;
pub const MAX_FINDINGS: usize = 100;
pub const MAX_LABEL_BYTES: usize = 64;
pub const MAX_FINDING_DETAIL_BYTES: usize = 1000;

fn check_name(what: &str, value: &str, max_bytes: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{what} is empty"));
    }
    if value.len() > max_bytes {
        return Err(format!(
            "{what} is {} bytes, the limit is {max_bytes}",
            value.len()
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{what} contains control characters"));
    }
    Ok(())
}

pub(crate) fn routing_decision(decision: &RoutingDecision) -> Result<(), String> {
    match decision {
        RoutingDecision::Route(route) => {
            check_name("skill group", &route.skill_group, MAX_SKILL_GROUP_BYTES)?;
            if route.priority > 9 {
                return Err(format!("priority {} is outside 0..=9", route.priority));
            }
            if let Some(agent) = &route.preferred_agent {
                check_name("preferred agent", agent, MAX_AGENT_ID_BYTES)?;
            }
            Ok(())
        }
        RoutingDecision::Reject { message } => {
            if message.trim().is_empty() {
                return Err("rejection message is empty".into());
            }
            if message.len() > MAX_REJECT_MESSAGE_BYTES {
                return Err(format!(
                    "rejection message is {} bytes, the limit is {MAX_REJECT_MESSAGE_BYTES}",
                    message.len()
                ));
            }
            Ok(())
        }
    }
}

pub(crate) fn assessment(assessment: &Assessment, transcript_len: usize) -> Result<(), String> {
    if assessment.score > 100 {
        return Err(format!("score {} is outside 0..=100", assessment.score));
    }
    if assessment.findings.len() > MAX_FINDINGS {
        return Err(format!(
            "{} findings, the limit is {MAX_FINDINGS}",
            assessment.findings.len()
        ));
    }
    for finding in &assessment.findings {
        check_name("finding label", &finding.label, MAX_LABEL_BYTES)?;
        if !finding
            .label
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
        {
            return Err(format!(
                "finding label {:?} is not snake_case ascii",
                finding.label
            ));
        }
        if finding.detail.len() > MAX_FINDING_DETAIL_BYTES {
            return Err(format!(
                "finding detail is {} bytes, the limit is {MAX_FINDING_DETAIL_BYTES}",
                finding.detail.len()
            ));
        }
        if let Some(index) = finding.message_index {
            if index as usize >= transcript_len {
                return Err(format!("finding message index {index} is past the transcript ({transcript_len} messages)"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Finding, Route};

    fn route(group: &str, priority: u8) -> RoutingDecision {
        RoutingDecision::Route(Route {
            skill_group: group.into(),
            priority,
            preferred_agent: None,
        })
    }

    #[test]
    fn routing_contract() {
        assert!(routing_decision(&route("vip", 9)).is_ok());
        assert_eq!(
            routing_decision(&route("vip", 10)).unwrap_err(),
            "priority 10 is outside 0..=9"
        );
        assert_eq!(
            routing_decision(&route("  ", 1)).unwrap_err(),
            "skill group is empty"
        );
        assert!(routing_decision(&route(&"g".repeat(65), 1)).is_err());
        assert!(routing_decision(&RoutingDecision::Reject {
            message: String::new()
        })
        .is_err());
        assert!(routing_decision(&RoutingDecision::Reject {
            message: "closed".into()
        })
        .is_ok());
    }

    #[test]
    fn assessment_contract() {
        let finding = |label: &str, index| Finding {
            label: label.into(),
            detail: String::new(),
            message_index: index,
        };
        assert!(assessment(
            &Assessment {
                score: 100,
                findings: vec![finding("slow_reply", Some(1))]
            },
            2
        )
        .is_ok());
        assert!(assessment(
            &Assessment {
                score: 101,
                findings: vec![]
            },
            2
        )
        .is_err());
        assert!(assessment(
            &Assessment {
                score: 50,
                findings: vec![finding("Slow Reply", None)]
            },
            2
        )
        .is_err());
        assert!(assessment(
            &Assessment {
                score: 50,
                findings: vec![finding("slow_reply", Some(2))]
            },
            2
        )
        .is_err());
    }
}
