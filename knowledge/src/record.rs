//! The FAQ record and its validation.

use serde::{Deserialize, Serialize};

use crate::error::RecordError;

/// Longest accepted id, in bytes (ids are ASCII).
pub const MAX_ID_LEN: usize = 128;
/// Longest accepted question or alternate, in characters.
pub const MAX_QUESTION_CHARS: usize = 1_000;
/// Longest accepted answer, in characters.
pub const MAX_ANSWER_CHARS: usize = 20_000;
/// Most alternates one record may carry.
pub const MAX_ALTERNATES: usize = 50;
/// Most tags one record may carry.
pub const MAX_TAGS: usize = 50;

/// One FAQ as knowledge managers keep it. The store is the truth; the index derives from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaqRecord {
    /// Stable key for upserts: given by the author or derived from the question
    /// ([`derived_id`]), so re-importing the same file updates instead of duplicating.
    pub id: String,
    /// The canonical question, shown to customers when the bot suggests FAQs.
    pub question: String,
    /// The answer the bot sends.
    pub answer: String,
    /// Other phrasings of the question; searched with the question's weight.
    #[serde(default)]
    pub alternates: Vec<String>,
    /// Free labels for managers (filtering, reporting); not searched.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Language of the record (`zh`, `en`, ...); analysis handles mixed text regardless.
    #[serde(default)]
    pub locale: String,
    /// Disabled records stay in the store but are never indexed nor returned by search.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Last change in milliseconds since the Unix epoch, set by the store.
    #[serde(default)]
    pub updated_at_ms: i64,
}

fn default_enabled() -> bool {
    true
}

impl FaqRecord {
    /// A new enabled record with a derived id and a guessed locale.
    pub fn new(question: impl Into<String>, answer: impl Into<String>) -> FaqRecord {
        let question = question.into();
        FaqRecord {
            id: derived_id(&question),
            locale: guess_locale(&question).to_string(),
            question,
            answer: answer.into(),
            alternates: Vec::new(),
            tags: Vec::new(),
            enabled: true,
            updated_at_ms: 0,
        }
    }

    /// Checks every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), RecordError> {
        validate_id(&self.id)?;
        if self.question.trim().is_empty() {
            return Err(RecordError::EmptyQuestion);
        }
        if self.answer.trim().is_empty() {
            return Err(RecordError::EmptyAnswer);
        }
        if self.question.chars().count() > MAX_QUESTION_CHARS {
            return Err(RecordError::TooLong {
                field: "question",
                max: MAX_QUESTION_CHARS,
            });
        }
        if self.answer.chars().count() > MAX_ANSWER_CHARS {
            return Err(RecordError::TooLong {
                field: "answer",
                max: MAX_ANSWER_CHARS,
            });
        }
        if self.alternates.len() > MAX_ALTERNATES {
            return Err(RecordError::TooMany {
                field: "alternates",
                max: MAX_ALTERNATES,
            });
        }
        if self.tags.len() > MAX_TAGS {
            return Err(RecordError::TooMany {
                field: "tags",
                max: MAX_TAGS,
            });
        }
        if self
            .alternates
            .iter()
            .any(|a| a.chars().count() > MAX_QUESTION_CHARS)
        {
            return Err(RecordError::TooLong {
                field: "alternate",
                max: MAX_QUESTION_CHARS,
            });
        }
        if self.tags.iter().any(|t| t.chars().count() > 100) {
            return Err(RecordError::TooLong {
                field: "tag",
                max: 100,
            });
        }
        if self.locale.len() > 35
            || !self
                .locale
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(RecordError::BadLocale(crate::import::quoted(&self.locale)));
        }
        Ok(())
    }

    /// Trims text fields and takes NUL characters out of them (a stray one from a spreadsheet
    /// export would make PostgreSQL refuse the whole import), drops empty alternates and tags,
    /// fills a missing id and locale. Import calls this before [`FaqRecord::validate`].
    pub fn normalize(&mut self) {
        let clean = |text: &str| text.replace('\0', "").trim().to_string();
        self.id = clean(&self.id);
        self.question = clean(&self.question);
        self.answer = clean(&self.answer);
        for list in [&mut self.alternates, &mut self.tags] {
            list.iter_mut().for_each(|s| *s = clean(s));
            list.retain(|s| !s.is_empty());
        }
        self.locale = self.locale.trim().to_ascii_lowercase();
        if self.id.is_empty() && !self.question.is_empty() {
            self.id = derived_id(&self.question);
        }
        if self.locale.is_empty() {
            self.locale = guess_locale(&self.question).to_string();
        }
    }
}

/// Ids are 1 to 128 characters of `A-Z a-z 0-9 _ - . :`, so they are safe in URLs, file names and CSV.
pub fn validate_id(id: &str) -> Result<(), RecordError> {
    if id.is_empty() {
        return Err(RecordError::EmptyId);
    }
    if id.len() > MAX_ID_LEN {
        return Err(RecordError::IdTooLong(MAX_ID_LEN));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
    {
        return Err(RecordError::BadIdCharset(id.to_string()));
    }
    Ok(())
}

/// A stable id derived from the question: `faq-` and 16 hex digits of a 64-bit FNV-1a hash of the
/// trimmed, lowercased question. Stable across builds and platforms (unlike std's hasher).
pub fn derived_id(question: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in question.trim().to_lowercase().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("faq-{hash:016x}")
}

/// `zh` when the text has any CJK ideograph, `en` otherwise.
pub fn guess_locale(text: &str) -> &'static str {
    if text.chars().any(crate::analysis::is_cjk) {
        "zh"
    } else {
        "en"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizing_takes_nul_characters_out() {
        let mut record = FaqRecord::new(" 如何\u{0}退货 ", "七天内\u{0}可退");
        record.alternates = vec!["\u{0}".into(), "怎么退\u{0}".into()];
        record.normalize();
        assert_eq!(
            (record.question.as_str(), record.answer.as_str()),
            ("如何退货", "七天内可退")
        );
        assert_eq!(record.alternates, ["怎么退"]);
    }

    #[test]
    fn validation_reports_each_problem() {
        let good = FaqRecord::new("如何退货", "七天内可退");
        assert_eq!(good.validate(), Ok(()));
        assert_eq!(good.locale, "zh");
        let mut r = good.clone();
        r.question = "  ".into();
        assert_eq!(r.validate(), Err(RecordError::EmptyQuestion));
        let mut r = good.clone();
        r.answer.clear();
        assert_eq!(r.validate(), Err(RecordError::EmptyAnswer));
        let mut r = good.clone();
        r.id = "a/b".into();
        assert!(matches!(r.validate(), Err(RecordError::BadIdCharset(_))));
        let mut r = good.clone();
        r.id = "x".repeat(129);
        assert_eq!(r.validate(), Err(RecordError::IdTooLong(128)));
        let mut r = good;
        r.id.clear();
        assert_eq!(r.validate(), Err(RecordError::EmptyId));
    }

    #[test]
    fn derived_ids_are_stable_and_case_insensitive() {
        assert_eq!(derived_id("How do I pay?"), derived_id("  how do i pay? "));
        assert_ne!(derived_id("a"), derived_id("b"));
        assert_eq!(derived_id("a").len(), 20);
    }
}
