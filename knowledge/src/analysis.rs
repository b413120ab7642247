//! Text analysis shared by indexing and querying: jieba segmentation for Chinese, English
//! stemming and stop words, one tokenizer for mixed text. Also tenant synonym groups.
//!
//! The chain is [`MixedTokenizer`] (full-width folding, lowercasing, jieba search-mode
//! segmentation, ASCII words split on punctuation, Chinese function words dropped), then
//! tantivy's English stop-word filter and English stemmer (which leave Chinese tokens as they are).

use std::collections::{HashMap, HashSet};

use tantivy::tokenizer::{
    Language, Stemmer, StopWordFilter, TextAnalyzer, Token, TokenStream, Tokenizer,
};
use tantivy_jieba::JiebaTokenizer;

/// Name under which the analyzer is registered in each tenant index.
pub const ANALYZER_NAME: &str = "switchboard_mixed";
/// Name of the CJK character-bigram tokenizer (see [`cjk_bigrams`]).
pub const BIGRAMS_NAME: &str = "switchboard_cjk_bigrams";

/// Chinese function words and fillers that carry no FAQ meaning.
const CHINESE_STOP_WORDS: &[&str] = &[
    "的", "了", "吗", "呢", "吧", "啊", "呀", "嘛", "哦", "么", "着", "过", "得", "地", "之", "把",
    "被", "我", "你", "您", "他", "她", "它", "我们", "你们", "是", "在", "和", "与", "及", "或",
    "就", "都", "也", "还", "又", "请问", "一下", "这", "那", "这个", "那个", "一个", "想", "能",
    "可以", "要",
];

/// True for CJK ideographs (the ranges jieba segments).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2EBEF)
}

/// Segments mixed Chinese/English text; see the module doc for the steps.
#[derive(Clone, Default)]
pub struct MixedTokenizer {
    jieba: JiebaTokenizer,
}

/// A token stream over tokens computed up front.
pub struct CollectedTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

impl TokenStream for CollectedTokenStream {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next.saturating_sub(1)]
    }

    fn token_mut(&mut self) -> &mut Token {
        let at = self.next.saturating_sub(1);
        &mut self.tokens[at]
    }
}

/// Folds full-width ASCII (ｉＰｈｏｎｅ, ０-９) to ASCII and lowercases.
fn fold(text: &str) -> String {
    text.chars()
        .map(|c| match c as u32 {
            0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            0x3000 => ' ',
            _ => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

impl Tokenizer for MixedTokenizer {
    type TokenStream<'a> = CollectedTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CollectedTokenStream {
        let folded = fold(text);
        let mut tokens = Vec::new();
        // Search mode also emits the parts of long words ("mail" of "e-mail", 物流 of 物流信息);
        // the same span must not count twice once punctuation is split off.
        let mut spans = HashSet::new();
        let mut stream = self.jieba.token_stream(&folded);
        while let Some(piece) = stream.next() {
            // jieba keeps runs like "github.com" or "e-mail" whole: split them into words.
            for word in piece.text.split(|c: char| !c.is_alphanumeric()) {
                let start =
                    piece.offset_from + (word.as_ptr() as usize - piece.text.as_ptr() as usize);
                let span = (start, start + word.len());
                if word.is_empty() || CHINESE_STOP_WORDS.contains(&word) || !spans.insert(span) {
                    continue;
                }
                tokens.push(Token {
                    offset_from: span.0,
                    offset_to: span.1,
                    position: tokens.len(),
                    text: word.to_string(),
                    position_length: 1,
                });
            }
        }
        CollectedTokenStream { tokens, next: 0 }
    }
}

/// The analyzer used for every searched field and every query.
pub fn analyzer() -> TextAnalyzer {
    let builder = TextAnalyzer::builder(MixedTokenizer::default()).dynamic();
    let builder = match StopWordFilter::new(Language::English) {
        Some(stop_words) => builder.filter_dynamic(stop_words),
        None => builder,
    };
    builder
        .filter_dynamic(Stemmer::new(Language::English))
        .build()
}

/// The analyzed tokens of `text`, in order, with repeats (what the index stores for it).
pub fn analyze(text: &str) -> Vec<String> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while let Some(token) = stream.next() {
        out.push(token.text.clone());
    }
    out
}

/// Overlapping character bigrams of each run of CJK ideographs (a lone ideograph is kept as it
/// is); other text gives nothing. They match where word segmentation differs between a question
/// and its paraphrase: 到付 in 可以到付吗 and in 货到付款.
pub fn cjk_bigrams(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut run: Vec<char> = Vec::new();
    let flush = |run: &mut Vec<char>, out: &mut Vec<String>| {
        match run.len() {
            0 => {}
            1 => out.push(run[0].to_string()),
            _ => out.extend(run.windows(2).map(|pair| pair.iter().collect::<String>())),
        }
        run.clear();
    };
    for c in text.chars() {
        if is_cjk(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Tokenizer form of [`cjk_bigrams`], for the index's bigram field.
#[derive(Clone, Default)]
pub struct CjkBigramTokenizer;

impl Tokenizer for CjkBigramTokenizer {
    type TokenStream<'a> = CollectedTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CollectedTokenStream {
        let tokens = cjk_bigrams(text)
            .into_iter()
            .enumerate()
            .map(|(position, text)| Token {
                position,
                text,
                ..Token::default()
            })
            .collect();
        CollectedTokenStream { tokens, next: 0 }
    }
}

/// A tenant's synonym groups (快递=物流=包裹, refund=money back), applied at query time:
/// when every token of one member appears in the query, the other members' tokens are added
/// to the query with a lower weight. Members are analyzed once, when the set is built.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Synonyms {
    /// Each group is a list of members; each member is its analyzed tokens.
    groups: Vec<Vec<Vec<String>>>,
    /// The groups that have a member beginning with each token, so a query looks at the groups
    /// its own tokens can match, not at every group.
    by_first_token: HashMap<String, Vec<u32>>,
}

/// Most groups a tenant's synonyms may have (one a line).
pub const MAX_SYNONYM_GROUPS: usize = 20_000;
/// Most members in one group.
pub const MAX_SYNONYM_MEMBERS: usize = 32;
/// Most tokens synonyms add to one query (each becomes a clause in three fields).
pub const MAX_SYNONYM_TOKENS: usize = 32;

impl Synonyms {
    /// No synonyms.
    pub fn none() -> Synonyms {
        Synonyms::default()
    }

    /// Builds from groups of phrases. Members that analyze to nothing and groups left with fewer
    /// than two members are dropped.
    pub fn new<G, M>(groups: G) -> Synonyms
    where
        G: IntoIterator<Item = M>,
        M: IntoIterator,
        M::Item: AsRef<str>,
    {
        let mut out = Vec::new();
        let mut by_first_token: HashMap<String, Vec<u32>> = HashMap::new();
        for group in groups {
            let mut members: Vec<Vec<String>> = Vec::new();
            let mut seen: HashSet<Vec<String>> = HashSet::new();
            for member in group {
                let tokens = analyze(member.as_ref());
                if !tokens.is_empty() && seen.insert(tokens.clone()) {
                    members.push(tokens);
                }
            }
            if members.len() >= 2 {
                let index = out.len() as u32;
                for member in &members {
                    let groups = by_first_token.entry(member[0].clone()).or_default();
                    if groups.last() != Some(&index) {
                        groups.push(index);
                    }
                }
                out.push(members);
            }
        }
        Synonyms {
            groups: out,
            by_first_token,
        }
    }

    /// Whether `text` is within the limits for a tenant's synonyms: at most
    /// [`MAX_SYNONYM_GROUPS`] groups of at most [`MAX_SYNONYM_MEMBERS`] members. The error says
    /// which limit, and the line.
    pub fn check(text: &str) -> Result<(), String> {
        let mut groups = 0;
        for (number, line) in Self::group_lines(text) {
            groups += 1;
            if groups > MAX_SYNONYM_GROUPS {
                return Err(format!(
                    "more than {MAX_SYNONYM_GROUPS} synonym groups (one a line)"
                ));
            }
            let members = Self::members(line).count();
            if members > MAX_SYNONYM_MEMBERS {
                return Err(format!(
                    "line {number} has {members} synonyms, the limit is {MAX_SYNONYM_MEMBERS}"
                ));
            }
        }
        Ok(())
    }

    /// The lines that hold groups, numbered from 1: not blank, not `#` comments.
    fn group_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
        text.lines()
            .enumerate()
            .map(|(index, line)| (index + 1, line.trim()))
            .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
    }

    fn members(line: &str) -> impl Iterator<Item = &str> {
        line.split(['=', ',', '，'])
    }

    /// Parses one group a line, members separated by `=` or `,`; blank lines and `#` comments
    /// are skipped. Example: `快递=物流=包裹` and `refund = money back`.
    pub fn parse(text: &str) -> Synonyms {
        Synonyms::new(Self::group_lines(text).map(|(_, line)| Self::members(line)))
    }

    /// Number of usable groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// True when there is no usable group.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Tokens to add to a query made of `query_tokens`, without those already present: at most
    /// [`MAX_SYNONYM_TOKENS`], from the groups in their order.
    pub fn expand(&self, query_tokens: &[String]) -> Vec<String> {
        let present: HashSet<&str> = query_tokens.iter().map(String::as_str).collect();
        // The groups one of whose members begins with a query token, in group order.
        let mut candidates: Vec<u32> = query_tokens
            .iter()
            .filter_map(|token| self.by_first_token.get(token))
            .flatten()
            .copied()
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        let mut added: Vec<String> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for group in candidates
            .into_iter()
            .map(|index| &self.groups[index as usize])
        {
            let matched = group
                .iter()
                .any(|member| member.iter().all(|t| present.contains(t.as_str())));
            if !matched {
                continue;
            }
            for token in group.iter().flatten() {
                if !present.contains(token.as_str()) && seen.insert(token.as_str()) {
                    if added.len() == MAX_SYNONYM_TOKENS {
                        return added;
                    }
                    added.push(token.clone());
                }
            }
        }
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_is_stemmed_and_stop_words_dropped() {
        assert_eq!(
            analyze("The Refunds were REFUNDED"),
            vec!["refund", "were", "refund"]
        );
        let mut tokens = analyze("shipping e-mail github.com");
        tokens.sort();
        assert_eq!(tokens, vec!["com", "e", "github", "mail", "ship"]);
    }

    #[test]
    fn chinese_is_segmented_and_function_words_dropped() {
        let tokens = analyze("我的快递到哪了？");
        assert!(tokens.contains(&"快递".to_string()), "{tokens:?}");
        assert!(!tokens.contains(&"的".to_string()), "{tokens:?}");
        assert!(!tokens.iter().any(|t| t == "？"), "{tokens:?}");
        let tokens = analyze("怎么申请退款");
        assert!(tokens.contains(&"退款".to_string()), "{tokens:?}");
        assert!(tokens.contains(&"申请".to_string()), "{tokens:?}");
    }

    #[test]
    fn mixed_and_full_width_text() {
        let tokens = analyze("ｉＰｈｏｎｅ订单怎么退货 refunds");
        for want in ["iphon", "订单", "退货", "refund"] {
            assert!(
                tokens.contains(&want.to_string()),
                "{want} missing from {tokens:?}"
            );
        }
    }

    #[test]
    fn punctuation_and_empty_give_nothing() {
        assert!(analyze("").is_empty());
        assert!(analyze("\"(:*~^)!?。，、《》").is_empty());
    }

    #[test]
    fn cjk_bigrams_cover_runs_of_ideographs() {
        assert_eq!(
            cjk_bigrams("货到付款 ok 吗"),
            vec!["货到", "到付", "付款", "吗"]
        );
        assert!(cjk_bigrams("only english").is_empty());
    }

    #[test]
    fn synonyms_expand_any_member_of_a_group() {
        let synonyms =
            Synonyms::parse("# comment\n快递=物流=包裹\nrefund = money back\n\nlonely\n");
        assert_eq!(synonyms.len(), 2);
        let added = synonyms.expand(&analyze("我的包裹到哪了"));
        assert!(
            added.contains(&"快递".to_string()) && added.contains(&"物流".to_string()),
            "{added:?}"
        );
        assert_eq!(
            synonyms.expand(&analyze("I want my money back")),
            vec!["refund"]
        );
        let added = synonyms.expand(&analyze("refund please"));
        assert_eq!(added, vec!["money", "back"]);
        assert!(synonyms.expand(&analyze("hello")).is_empty());
    }

    /// A tenant's synonyms are bounded when they are set, and a query takes a bounded number
    /// of tokens from them, however large a group is.
    #[test]
    fn synonyms_are_bounded() {
        let members = |count: usize| {
            (0..count)
                .map(|n| format!("w{n}"))
                .collect::<Vec<_>>()
                .join("=")
        };
        assert_eq!(Synonyms::check(&members(MAX_SYNONYM_MEMBERS)), Ok(()));
        let error = Synonyms::check(&format!("# groups\n\n{}", members(MAX_SYNONYM_MEMBERS + 1)))
            .unwrap_err();
        assert!(error.contains("line 3"), "{error}");
        let many = "a=b\n".repeat(MAX_SYNONYM_GROUPS + 1);
        assert!(Synonyms::check(&many).is_err());
        // A group stored before the limits (150,000 members) parses in linear time and adds at
        // most MAX_SYNONYM_TOKENS tokens to a query.
        let huge = Synonyms::parse(&members(150_000));
        let added = huge.expand(&analyze("w7"));
        assert_eq!(added.len(), MAX_SYNONYM_TOKENS);
        assert!(!added.contains(&"w7".to_string()));
    }
}
