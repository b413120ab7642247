//! The optional LLM step: on a confident FAQ answer, an OpenAI-compatible chat model may
//! phrase the answer, from the top knowledge hits only, citing their ids. Anything else (a
//! timeout, an HTTP or decoding error, an answer without a valid citation, a refusal) keeps
//! the FAQ answer.

use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestSystemMessageArgs, ChatCompletionRequestUserMessageArgs,
    CreateChatCompletionRequestArgs,
};
use async_openai::Client;

use crate::decision::{Decision, DecisionKind, Evidence};
use crate::settings::LlmSettings;

/// What the model must reply when the hits do not answer the question.
pub const NO_ANSWER: &str = "NO_ANSWER";

const SYSTEM_PROMPT: &str = "You are a customer-service assistant. Answer the customer's question using ONLY the \
knowledge entries given below. Reply in the customer's language, briefly. After the answer, cite the id of every \
entry you used in square brackets, for example [faq-1]. Never invent facts, prices or policies that are not in the \
entries. If the entries do not answer the question, reply exactly NO_ANSWER.";

/// An OpenAI-compatible endpoint the bot phrases confident answers with (the node's, or a
/// tenant's own).
pub struct LlmClient {
    client: Client<OpenAIConfig>,
    settings: LlmSettings,
}

/// Why the LLM step kept the FAQ answer.
#[derive(Debug, thiserror::Error)]
pub enum LlmFallback {
    #[error("llm call timed out after {0} ms")]
    Timeout(u64),
    #[error("llm call failed: {0}")]
    Api(String),
    #[error("llm reply is empty or declined")]
    NoAnswer,
    #[error("llm reply cites no given knowledge id")]
    NoCitation,
    #[error("llm reply cites an id that was not given: {0}")]
    UnknownCitation(String),
}

impl LlmClient {
    pub fn new(settings: LlmSettings) -> LlmClient {
        let mut config = OpenAIConfig::new().with_api_base(settings.base_url.trim_end_matches('/'));
        if !settings.api_key.is_empty() {
            config = config.with_api_key(settings.api_key.clone());
        }
        LlmClient {
            client: Client::with_config(config),
            settings,
        }
    }

    /// Rewrites a confident answer from its evidence, or explains why it did not.
    pub async fn ground(
        &self,
        question: &str,
        decision: &Decision,
    ) -> Result<Decision, LlmFallback> {
        let hits: Vec<&Evidence> = decision
            .evidence
            .iter()
            .take(self.settings.max_hits.max(1))
            .collect();
        let mut entries = String::new();
        for hit in &hits {
            entries.push_str(&format!(
                "[{}]\nQ: {}\nA: {}\n\n",
                hit.id, hit.question, hit.answer
            ));
        }
        let user = format!("Knowledge entries:\n\n{entries}Customer question: {question}");
        let request = CreateChatCompletionRequestArgs::default()
            .model(self.settings.model.clone())
            .messages(vec![
                ChatCompletionRequestSystemMessageArgs::default()
                    .content(SYSTEM_PROMPT)
                    .build()
                    .map_err(|e| LlmFallback::Api(e.to_string()))?
                    .into(),
                ChatCompletionRequestUserMessageArgs::default()
                    .content(user)
                    .build()
                    .map_err(|e| LlmFallback::Api(e.to_string()))?
                    .into(),
            ])
            .build()
            .map_err(|e| LlmFallback::Api(e.to_string()))?;
        let timeout = Duration::from_millis(self.settings.timeout_ms);
        let response = tokio::time::timeout(timeout, self.client.chat().create(request))
            .await
            .map_err(|_| LlmFallback::Timeout(self.settings.timeout_ms))?
            .map_err(|e| LlmFallback::Api(e.to_string()))?;
        let content = response
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .map(|c| c.trim().to_string())
            .unwrap_or_default();
        let given: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        let (text, cited) = parse_citations(&content, &given)?;
        let mut grounded = decision.clone();
        grounded.answer = text;
        grounded.faq_id = Some(cited);
        grounded.reason = "llm_answer".into();
        Ok(grounded)
    }
}

/// Splits a reply into its text (citations removed) and the first cited id. Every bracketed
/// token that looks like an id must be one of `given`.
pub(crate) fn parse_citations(
    content: &str,
    given: &[&str],
) -> Result<(String, String), LlmFallback> {
    if content.is_empty() || content.contains(NO_ANSWER) {
        return Err(LlmFallback::NoAnswer);
    }
    let mut text = String::new();
    let mut cited: Vec<String> = Vec::new();
    let mut rest = content;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']').map(|c| open + c) else {
            break;
        };
        let inner = &rest[open + 1..close];
        let ids: Vec<&str> = inner
            .split([',', ' ', '，'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let looks_like_ids = !ids.is_empty()
            && ids.iter().all(|id| {
                id.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
            });
        text.push_str(&rest[..open]);
        if looks_like_ids {
            for id in ids {
                if !given.contains(&id) {
                    return Err(LlmFallback::UnknownCitation(id.to_string()));
                }
                cited.push(id.to_string());
            }
        } else {
            text.push_str(&rest[open..=close]);
        }
        rest = &rest[close + 1..];
    }
    text.push_str(rest);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = text.trim().to_string();
    match cited.into_iter().next() {
        Some(first) if !text.is_empty() => Ok((text, first)),
        Some(_) => Err(LlmFallback::NoAnswer),
        None => Err(LlmFallback::NoCitation),
    }
}

/// Runs the LLM step on `decision` when it applies (a confident FAQ answer, an LLM configured,
/// the tenant allowing it); otherwise returns it unchanged.
pub(crate) async fn maybe_ground(
    llm: Option<&LlmClient>,
    enabled: bool,
    question: &str,
    decision: Decision,
) -> Decision {
    let Some(llm) = llm else { return decision };
    if !enabled
        || decision.kind != DecisionKind::Answer
        || decision.faq_id.is_none()
        || decision.evidence.is_empty()
    {
        return decision;
    }
    match llm.ground(question, &decision).await {
        Ok(grounded) => grounded,
        Err(reason) => {
            tracing::warn!(%reason, faq_id = ?decision.faq_id, "llm step fell back to the faq answer");
            decision
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_are_checked() {
        let given = ["zh-ship-fee", "zh-ship-time"];
        let (text, id) = parse_citations("满99元包邮。[zh-ship-fee]", &given).expect("valid");
        assert_eq!(
            (text.as_str(), id.as_str()),
            ("满99元包邮。", "zh-ship-fee")
        );
        let (_, id) =
            parse_citations("Free over 99 [zh-ship-time, zh-ship-fee].", &given).expect("valid");
        assert_eq!(id, "zh-ship-time");
        assert!(matches!(
            parse_citations("Free shipping.", &given),
            Err(LlmFallback::NoCitation)
        ));
        assert!(matches!(
            parse_citations("Free [other-id]", &given),
            Err(LlmFallback::UnknownCitation(_))
        ));
        assert!(matches!(
            parse_citations("NO_ANSWER", &given),
            Err(LlmFallback::NoAnswer)
        ));
        assert!(matches!(
            parse_citations("", &given),
            Err(LlmFallback::NoAnswer)
        ));
        assert!(matches!(
            parse_citations("[zh-ship-fee]", &given),
            Err(LlmFallback::NoAnswer)
        ));
    }
}
