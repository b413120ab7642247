//! Rules that need no model: explicit requests for a person, angry words, the customer's
//! language, and the bot's own short replies.

/// Chinese phrases that ask for a person. Matched as substrings.
const HANDOFF_PHRASES_ZH: &[&str] = &[
    "转人工",
    "人工客服",
    "人工服务",
    "找人工",
    "要人工",
    "接人工",
    "换人工",
    "真人",
    "人工坐席",
    "客服人员",
    "转接客服",
    "活人",
];

/// English phrases that ask for a person. Matched on word boundaries, lowercase.
const HANDOFF_PHRASES_EN: &[&str] = &[
    "real person",
    "human",
    "humans",
    "agent",
    "live agent",
    "representative",
    "operator",
    "speak to someone",
    "talk to someone",
    "speak to a person",
    "talk to a person",
    "a person",
    "live chat",
    "customer service rep",
];

/// Words that name a complaint: a person handles these unless an FAQ answers the turn
/// confidently ("怎么投诉商家" may be a question the knowledge base answers).
const COMPLAINT_ZH: &[&str] = &["投诉", "差评", "举报"];
const COMPLAINT_EN: &[&str] = &["complaint", "complain"];

/// Words that carry an angry tone: a person handles these even when an FAQ matches.
const ANGER_ZH: &[&str] = &[
    "骗子",
    "垃圾",
    "太差",
    "气死",
    "恶心",
    "什么破",
    "坑人",
    "欺诈",
    "无语了",
    "太过分",
];
const ANGER_EN: &[&str] = &[
    "scam",
    "terrible",
    "worst",
    "unacceptable",
    "ridiculous",
    "furious",
    "angry",
    "disgusting",
    "rip off",
    "ripoff",
    "fraud",
    "useless",
];

/// True when the text asks for a person in plain words.
pub fn explicit_handoff(text: &str) -> bool {
    contains_any(text, HANDOFF_PHRASES_ZH, HANDOFF_PHRASES_EN)
}

/// True when the text carries an angry or complaint word.
pub fn angry(text: &str) -> bool {
    angry_tone(text) || contains_any(text, COMPLAINT_ZH, COMPLAINT_EN)
}

/// True when the text carries an angry word (not merely the word "complaint"): the bot hands
/// off whatever the knowledge base holds.
pub fn angry_tone(text: &str) -> bool {
    contains_any(text, ANGER_ZH, ANGER_EN)
}

fn contains_any(text: &str, zh: &[&str], en: &[&str]) -> bool {
    if zh.iter().any(|p| text.contains(p)) {
        return true;
    }
    let lower = text.to_lowercase();
    // Words: runs of ASCII letters or digits (apostrophes dropped), joined by single spaces.
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .collect();
    let joined = format!(" {} ", words.join(" "));
    en.iter().any(|p| joined.contains(&format!(" {p} ")))
}

/// True when the text has something to read: a letter, digit or ideograph.
pub fn has_content(text: &str) -> bool {
    text.chars().any(char::is_alphanumeric)
}

/// The customer's language for replies: Chinese when the text has an ideograph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

pub fn language(text: &str) -> Lang {
    if switchboard_knowledge::guess_locale(text) == "zh" {
        Lang::Zh
    } else {
        Lang::En
    }
}

/// The bot's own short texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Greeting,
    Thanks,
    Goodbye,
    Clarify,
    OutOfScope,
    NoText,
    Handoff,
    ComplaintHandoff,
}

pub fn reply(kind: Reply, lang: Lang) -> &'static str {
    match (kind, lang) {
        (Reply::Greeting, Lang::Zh) => "您好！我是智能客服，请问有什么可以帮您？",
        (Reply::Greeting, Lang::En) => "Hello! I'm the virtual assistant. How can I help you today?",
        (Reply::Thanks, Lang::Zh) => "不客气！还有其他问题随时问我。",
        (Reply::Thanks, Lang::En) => "You're welcome! Ask me anytime if there's anything else.",
        (Reply::Goodbye, Lang::Zh) => "感谢您的咨询，再见！",
        (Reply::Goodbye, Lang::En) => "Thanks for reaching out. Goodbye!",
        (Reply::Clarify, Lang::Zh) => "我不太确定您想问的是哪个问题，您是想问：",
        (Reply::Clarify, Lang::En) => "I'm not sure I understood. Did you mean one of these?",
        (Reply::OutOfScope, Lang::Zh) => {
            "抱歉，这个问题我在这里没法帮您解答。需要的话我可以为您转接人工客服。"
        }
        (Reply::OutOfScope, Lang::En) => {
            "Sorry, I can't help with that here. If you like, I can connect you with a person."
        }
        (Reply::NoText, Lang::Zh) => "抱歉，我没有看懂，能用一句话描述一下您的问题吗？也可以为您转接人工客服。",
        (Reply::NoText, Lang::En) => {
            "Sorry, I didn't catch that. Could you describe your question in a few words? I can also connect you with a person."
        }
        (Reply::Handoff, Lang::Zh) => "好的，正在为您转接人工客服，请稍候。",
        (Reply::Handoff, Lang::En) => "Sure, I'm connecting you with a person. Please hold on.",
        (Reply::ComplaintHandoff, Lang::Zh) => "非常抱歉给您带来不好的体验，正在为您转接人工客服处理。",
        (Reply::ComplaintHandoff, Lang::En) => {
            "I'm sorry about your experience. I'm connecting you with a person who can sort this out."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_phrases_in_both_languages() {
        for t in [
            "转人工",
            "帮我接人工客服吧",
            "有真人吗",
            "I want a real person",
            "Agent!",
            "can I talk to a human?",
        ] {
            assert!(explicit_handoff(t), "{t}");
        }
        for t in [
            "运费怎么算",
            "How much is shipping?",
            "management",
            "humanity",
            "reagent",
        ] {
            assert!(!explicit_handoff(t), "{t}");
        }
    }

    #[test]
    fn anger_and_language() {
        assert!(angry("我要投诉你们"));
        assert!(angry("This is a SCAM."));
        assert!(!angry("怎么申请退货"));
        assert!(angry("我要投诉") && !angry_tone("我要投诉"));
        assert!(angry_tone("你们就是骗子"));
        assert_eq!(language("你好"), Lang::Zh);
        assert_eq!(language("hello"), Lang::En);
        assert!(!has_content("?!。，…  "));
        assert!(has_content("a"));
    }
}
