//! The sensitive-word engine: per-tenant named word lists, each with an action, compiled into one
//! Aho-Corasick automaton per tenant over folded text (see [`normalize`]). The automaton works on
//! characters, folding the text as it reads it (see `matcher.rs`), so checking a message
//! allocates nothing but the verdict. [`SensitiveWords::scan`] borrows the words and list names
//! from the compiled lists instead of copying them, and masks only when asked: a message that
//! matches nothing allocates nothing at all. [`SensitiveWords::check`] builds the owned,
//! serializable [`Verdict`] the API returns from it.
//!
//! ```
//! use switchboard_policies::sensitive::{Action, SensitiveWords, WordList};
//!
//! let lists = vec![
//!     WordList::new("fraud", Action::Block, ["刷单".to_owned()]).unwrap(),
//!     WordList::new("rude", Action::Mask, ["笨蛋".to_owned()]).unwrap(),
//! ];
//! let words = SensitiveWords::build(&lists).unwrap();
//! let verdict = words.check("你这个笨 蛋");
//! assert_eq!(verdict.action, Action::Mask);
//! assert_eq!(verdict.masked, "你这个***");
//! assert_eq!((verdict.matches[0].start, verdict.matches[0].end), (3, 6));
//!
//! let scan = words.scan("你这个笨 蛋");
//! assert_eq!((scan.action, scan.matches()[0].word, scan.matches()[0].list), (Action::Mask, "笨蛋", "rude"));
//! assert_eq!(scan.masked(), "你这个***");
//! assert_eq!(scan.to_verdict(), verdict);
//! ```

mod matcher;
pub mod normalize;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use matcher::CharMatcher;

/// What to do with a message that contains a word. Ordered from weakest to strongest: a verdict
/// takes the strongest action across its matches (`block > handoff > mask > flag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// No match (only in verdicts; a list cannot have it).
    Allow,
    /// Store and forward, with a flag agents see.
    Flag,
    /// Store and forward with the matched characters replaced by `*`.
    Mask,
    /// Hand the conversation to a human.
    Handoff,
    /// Refuse the message (an error frame with code `blocked`).
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Flag => "flag",
            Action::Mask => "mask",
            Action::Handoff => "handoff",
            Action::Block => "block",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = SensitiveWordsError;

    /// Parses a list action: `block`, `mask`, `flag` or `handoff`.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "block" => Ok(Action::Block),
            "mask" => Ok(Action::Mask),
            "flag" => Ok(Action::Flag),
            "handoff" => Ok(Action::Handoff),
            other => Err(SensitiveWordsError::UnknownAction(other.to_owned())),
        }
    }
}

/// Bad input for the sensitive-word engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SensitiveWordsError {
    #[error("unknown action {0:?}, expected block, mask, flag or handoff")]
    UnknownAction(String),
    #[error("a word list cannot have the action allow")]
    AllowIsNotAListAction,
    #[error("invalid list name {0:?}: use 1 to 64 characters of a-z, 0-9, '_' and '-'")]
    InvalidListName(String),
    #[error("word {index} is {chars} characters long, the limit is {limit}")]
    WordTooLong {
        index: usize,
        chars: usize,
        limit: usize,
    },
    #[error("list has {count} words, the limit is {limit}")]
    TooManyWords { count: usize, limit: usize },
    #[error(
        "more than {limit} words of the lists end at one place of a text (words that are \
         endings of one another, like \"ab\", \"aab\" and \"aaab\", counted once per list)"
    )]
    TooNested { limit: usize },
    #[error("cannot build the matcher: {0}")]
    Build(String),
}

impl SensitiveWordsError {
    /// A stable machine-readable code for API responses.
    pub fn code(&self) -> &'static str {
        match self {
            SensitiveWordsError::UnknownAction(_) => "unknown_action",
            SensitiveWordsError::AllowIsNotAListAction => "invalid_action",
            SensitiveWordsError::InvalidListName(_) => "invalid_list_name",
            SensitiveWordsError::WordTooLong { .. } => "word_too_long",
            SensitiveWordsError::TooManyWords { .. } => "too_many_words",
            SensitiveWordsError::TooNested { .. } => "too_nested",
            SensitiveWordsError::Build(_) => "build_failed",
        }
    }
}

/// Longest word accepted, in characters.
pub const MAX_WORD_CHARS: usize = 256;
/// Most (list, word) entries that may end at one place of a text: words that are endings of
/// one another (`ab`, `aab`, `aaab`), each counted once per list holding it. Real lists stay far
/// below (at most 6 in a 65k-word list); a hostile one would make every character of a message
/// report this many matches.
pub const MAX_ENDING_TOGETHER: usize = 32;
/// Most words in one list.
pub const MAX_WORDS_PER_LIST: usize = 200_000;

/// The words of a plain-text list (one a line, a byte-order mark allowed): its distinct non-blank
/// lines, trimmed, in order, and no more than one past [`MAX_WORDS_PER_LIST`] (enough for
/// [`WordList::new`] to refuse the list), so 16 MiB of blank or repeated lines never become
/// millions of strings.
pub fn plain_text_words(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut seen = std::collections::HashSet::new();
    text.lines()
        .map(str::trim)
        .filter(|word| !word.is_empty() && seen.insert(*word))
        .take(MAX_WORDS_PER_LIST + 1)
        .map(str::to_owned)
        .collect()
}
/// Matches a verdict keeps (the action and the masking still see every match): a hostile list
/// of overlapping words against a long message finds millions.
pub const MAX_MATCHES_KEPT: usize = 256;

/// A named list of words with one action; what the gateway stores per tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WordList {
    name: String,
    action: Action,
    words: Vec<String>,
}

impl WordList {
    /// Validates the name and the words; trims words, drops blank ones and duplicates (first
    /// occurrence kept, order otherwise preserved).
    pub fn new(
        name: impl Into<String>,
        action: Action,
        words: impl IntoIterator<Item = String>,
    ) -> Result<Self, SensitiveWordsError> {
        let name = name.into();
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|byte| {
                byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_' || byte == b'-'
            });
        if !name_ok {
            return Err(SensitiveWordsError::InvalidListName(name));
        }
        if action == Action::Allow {
            return Err(SensitiveWordsError::AllowIsNotAListAction);
        }
        let mut seen = std::collections::HashSet::new();
        let mut kept = Vec::new();
        for (index, word) in words.into_iter().enumerate() {
            let word = word.trim();
            if word.is_empty() {
                continue;
            }
            let chars = word.chars().count();
            if chars > MAX_WORD_CHARS {
                return Err(SensitiveWordsError::WordTooLong {
                    index,
                    chars,
                    limit: MAX_WORD_CHARS,
                });
            }
            if seen.insert(word.to_owned()) {
                kept.push(word.to_owned());
            }
            if kept.len() > MAX_WORDS_PER_LIST {
                return Err(SensitiveWordsError::TooManyWords {
                    count: kept.len(),
                    limit: MAX_WORDS_PER_LIST,
                });
            }
        }
        Ok(Self {
            name,
            action,
            words: kept,
        })
    }

    /// Parses the plain-text upload format: one word a line (LF or CRLF, an optional UTF-8 BOM),
    /// blank lines ignored.
    pub fn from_plain_text(
        name: impl Into<String>,
        action: Action,
        text: &str,
    ) -> Result<Self, SensitiveWordsError> {
        Self::new(name, action, plain_text_words(text))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn action(&self) -> Action {
        self.action
    }

    pub fn words(&self) -> &[String] {
        &self.words
    }
}

/// One occurrence of a word in a checked text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WordMatch {
    /// The word as it is written in the list.
    pub word: String,
    /// Character offsets (Unicode scalar values) into the original text: `start..end`.
    pub start: usize,
    pub end: usize,
    /// The list the word belongs to.
    pub list: String,
}

/// The result of [`SensitiveWords::check`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The strongest action across the matches, `allow` when nothing matched.
    pub action: Action,
    /// The occurrences, overlapping ones included, ordered by start then end: the first
    /// [`MAX_MATCHES_KEPT`] found.
    pub matches: Vec<WordMatch>,
    /// Occurrences found beyond those kept in `matches` (sent only when there are some).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub matches_dropped: usize,
    /// The original text with every matched character (and separators inside a match) as `*`.
    pub masked: String,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

/// Figures about a built matcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildStats {
    /// Distinct folded patterns in the automaton.
    pub patterns: usize,
    /// Words that fold to nothing (only punctuation or symbols) and so can never match.
    pub ignored_words: usize,
    /// Heap bytes of the automaton and the pattern table.
    pub memory_bytes: usize,
    pub build_time: Duration,
}

/// One (list, word) entry a folded pattern stands for. `owners[pattern]` is the pattern's first
/// entry, so a hit reads one record (and the word's text) in the common case of a pattern with
/// one entry; further entries are chained after the patterns' first ones, in list order.
#[derive(Debug, Clone, Copy)]
struct PatternOwner {
    /// The list's index; `MASKS` set (in the first entry only) when one of the pattern's lists
    /// masks or blocks.
    list: u32,
    /// The word as written in the list: `texts[text_start..text_start + text_len]`.
    text_start: u32,
    text_len: u32,
    /// Index in `owners` of the pattern's next entry, `NO_OWNER` after the last one.
    next: u32,
}

const MASKS: u32 = 1 << 31;
const NO_OWNER: u32 = u32::MAX;

/// A compiled set of word lists (one tenant's). Immutable and `Sync`; rebuild to change.
#[derive(Debug, Clone)]
pub struct SensitiveWords {
    lists: Vec<WordList>,
    matcher: Option<CharMatcher>,
    /// The entries of every pattern: pattern id → its first entry, then the chained others.
    owners: Vec<PatternOwner>,
    /// The words' text, one after the other, so copying a matched word reads one place.
    texts: String,
    /// Per pattern, what the chain of patterns ending wherever it does stands for (itself and
    /// its endings): how many (list, word) entries, and the strongest action. A scan that has
    /// kept its [`MAX_MATCHES_KEPT`] matches takes each further place as one summary hit.
    chain_entries: Vec<u32>,
    chain_action: Vec<Action>,
    stats: BuildStats,
}

impl Default for SensitiveWords {
    fn default() -> Self {
        Self::empty()
    }
}

impl SensitiveWords {
    /// No lists: every text is allowed. What a new tenant starts with.
    pub fn empty() -> Self {
        Self {
            lists: Vec::new(),
            matcher: None,
            owners: Vec::new(),
            texts: String::new(),
            chain_entries: Vec::new(),
            chain_action: Vec::new(),
            stats: BuildStats {
                patterns: 0,
                ignored_words: 0,
                memory_bytes: 0,
                build_time: Duration::ZERO,
            },
        }
    }

    /// Compiles `lists`, refusing words that end together too often ([`MAX_ENDING_TOGETHER`]):
    /// for lists being uploaded.
    pub fn build(lists: &[WordList]) -> Result<Self, SensitiveWordsError> {
        let built = Self::load(lists)?;
        // The chain that ends at a pattern's place holds every entry ending there.
        let heaviest = built.chain_entries.iter().max().copied().unwrap_or(0);
        if heaviest as usize > MAX_ENDING_TOGETHER {
            return Err(SensitiveWordsError::TooNested {
                limit: MAX_ENDING_TOGETHER,
            });
        }
        Ok(built)
    }

    /// Compiles lists that were accepted when they were stored, under the limits of that time:
    /// a list stored before [`MAX_ENDING_TOGETHER`] still loads (it is never left unscreened).
    pub fn load(lists: &[WordList]) -> Result<Self, SensitiveWordsError> {
        let started = Instant::now();
        let mut pattern_ids: HashMap<String, usize> = HashMap::new();
        let mut patterns: Vec<String> = Vec::new();
        // The (list, word) indices of every pattern.
        let mut owners: Vec<Vec<(usize, usize)>> = Vec::new();
        let mut ignored_words = 0;
        for (list_index, list) in lists.iter().enumerate() {
            for (word_index, word) in list.words.iter().enumerate() {
                let folded = normalize::fold_word(word);
                if folded.is_empty() {
                    ignored_words += 1;
                    continue;
                }
                let id = *pattern_ids.entry(folded).or_insert_with_key(|folded| {
                    patterns.push(folded.clone());
                    owners.push(Vec::new());
                    patterns.len() - 1
                });
                owners[id].push((list_index, word_index));
            }
        }
        let mut matcher = if patterns.is_empty() {
            None
        } else {
            Some(CharMatcher::new(&patterns).map_err(SensitiveWordsError::Build)?)
        };
        // What each chain stands for, and the length of its longest word that masks (whose
        // start a summary hit carries: the masked range covers the chain's other masking
        // words, which are its endings).
        let mut chain_entries = vec![0u32; patterns.len()];
        let mut chain_action = vec![Action::Allow; patterns.len()];
        let mut summary_len = vec![0u32; patterns.len()];
        let masks = |list: usize| matches!(lists[list].action, Action::Mask | Action::Block);
        if let Some(matcher) = &mut matcher {
            matcher.for_each_chain(|chain| {
                let first = chain[0];
                for &pattern in chain {
                    chain_entries[first] += owners[pattern].len() as u32;
                    for &(list, _) in &owners[pattern] {
                        chain_action[first] = chain_action[first].max(lists[list].action);
                    }
                    if summary_len[first] == 0
                        && owners[pattern].iter().any(|&(list, _)| masks(list))
                    {
                        summary_len[first] = patterns[pattern].chars().count() as u32;
                    }
                }
            });
            matcher.set_summary_lengths(summary_len);
        }
        // Every pattern's first entry at its id, the others chained after them.
        let texts_len: usize = owners
            .iter()
            .flatten()
            .map(|&(list, word)| lists[list].words[word].len())
            .sum();
        if u32::try_from(texts_len).is_err() {
            return Err(SensitiveWordsError::Build(
                "the word lists are too large: more than 4 GiB of words".to_owned(),
            ));
        }
        let mut texts = String::with_capacity(texts_len);
        let mut flat = Vec::with_capacity(owners.iter().map(Vec::len).sum());
        let mut add = |flat: &mut Vec<PatternOwner>, &(list, word): &(usize, usize)| {
            let word = &lists[list].words[word];
            flat.push(PatternOwner {
                list: list as u32,
                text_start: texts.len() as u32,
                text_len: word.len() as u32,
                next: NO_OWNER,
            });
            texts.push_str(word);
        };
        for pattern_owners in &owners {
            add(&mut flat, &pattern_owners[0]);
            if pattern_owners
                .iter()
                .any(|&(list, _)| matches!(lists[list].action, Action::Mask | Action::Block))
            {
                flat.last_mut().expect("just pushed").list |= MASKS;
            }
        }
        for (pattern, pattern_owners) in owners.iter().enumerate() {
            let mut previous = pattern;
            for owner in &pattern_owners[1..] {
                flat[previous].next = flat.len() as u32;
                previous = flat.len();
                add(&mut flat, owner);
            }
        }
        let memory_bytes = matcher.as_ref().map_or(0, CharMatcher::memory_usage)
            + flat.capacity() * std::mem::size_of::<PatternOwner>()
            + texts.capacity()
            + chain_entries.capacity() * 4
            + chain_action.capacity() * std::mem::size_of::<Action>();
        let stats = BuildStats {
            patterns: patterns.len(),
            ignored_words,
            memory_bytes,
            build_time: started.elapsed(),
        };
        Ok(Self {
            lists: lists.to_vec(),
            matcher,
            owners: flat,
            texts,
            chain_entries,
            chain_action,
            stats,
        })
    }

    pub fn lists(&self) -> &[WordList] {
        &self.lists
    }

    pub fn stats(&self) -> BuildStats {
        self.stats
    }

    /// How many matches [`check`](Self::check) would report, without building the verdict: the
    /// matching cost alone, for benchmarks and diagnostics.
    #[doc(hidden)]
    pub fn count_matches(&self, text: &str) -> usize {
        let mut count = 0;
        if let Some(matcher) = &self.matcher {
            matcher.find(text, |hit| {
                let mut owner = self.owners[hit.pattern];
                count += 1;
                while owner.next != NO_OWNER {
                    owner = self.owners[owner.next as usize];
                    count += 1;
                }
                true
            });
        }
        count
    }

    /// Finds every listed word in `text` after folding both sides: the owned, serializable
    /// verdict the API returns. [`scan`](Self::scan) finds the same without copying the words
    /// and list names, and masks only when asked.
    pub fn check(&self, text: &str) -> Verdict {
        self.scan(text).to_verdict()
    }

    /// What [`check`](Self::check) finds, borrowing the words and list names from `self`:
    /// nothing is allocated unless something matches (then the match vector), and the masked
    /// text is built only by [`Scan::masked`]. The chat path uses this.
    pub fn scan<'w, 't>(&'w self, text: &'t str) -> Scan<'w, 't> {
        let mut scan = Scan {
            action: Action::Allow,
            matches: MatchList::default(),
            matches_dropped: 0,
            text,
            masked_ranges: Ranges::default(),
        };
        let Some(matcher) = &self.matcher else {
            return scan;
        };
        let mut action = Action::Allow;
        let matches = &mut scan.matches;
        let mut matches_dropped = 0;
        // Byte ranges of the original text to mask.
        let masked_ranges = &mut scan.masked_ranges;
        matcher.find(text, |hit| {
            if hit.summary {
                // The kept matches are full: the chain counts, acts and masks as a whole.
                matches_dropped += self.chain_entries[hit.pattern] as usize;
                action = action.max(self.chain_action[hit.pattern]);
                if hit.start_byte < hit.end_byte {
                    masked_ranges.push((hit.start_byte, hit.end_byte));
                }
                return true;
            }
            let mut owner = self.owners[hit.pattern];
            if owner.list & MASKS != 0 {
                masked_ranges.push((hit.start_byte, hit.end_byte));
            }
            loop {
                let list = &self.lists[(owner.list & !MASKS) as usize];
                action = action.max(list.action);
                if matches.len() >= MAX_MATCHES_KEPT {
                    matches_dropped += 1;
                } else {
                    let start = owner.text_start as usize;
                    matches.push(MatchRef {
                        word: &self.texts[start..start + owner.text_len as usize],
                        start: hit.start_char,
                        end: hit.end_char,
                        list: &list.name,
                    });
                }
                if owner.next == NO_OWNER {
                    break;
                }
                owner = self.owners[owner.next as usize];
            }
            // Once the kept matches are full, each further place may come as one summary hit.
            matches.len() < MAX_MATCHES_KEPT
        });
        // Hits come ordered by end; the verdict lists them by start, then end, then list name
        // (a stable sort, so the owners of one pattern keep their list order). Matches that do
        // not overlap are already in that order.
        let matches = scan.matches.as_mut_slice();
        let in_order = matches
            .windows(2)
            .all(|pair| (pair[0].start, pair[0].end) < (pair[1].start, pair[1].end));
        if !in_order {
            matches.sort_by(|a, b| {
                a.start
                    .cmp(&b.start)
                    .then(a.end.cmp(&b.end))
                    .then_with(|| a.list.cmp(b.list))
            });
        }
        scan.masked_ranges.normalize();
        scan.action = action;
        scan.matches_dropped = matches_dropped;
        scan
    }
}

/// One occurrence of a word, as [`SensitiveWords::scan`] finds it: [`WordMatch`] with the word
/// and the list name borrowed from the compiled lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchRef<'w> {
    /// The word as it is written in the list.
    pub word: &'w str,
    /// Character offsets (Unicode scalar values) into the original text: `start..end`.
    pub start: usize,
    pub end: usize,
    /// The list the word belongs to.
    pub list: &'w str,
}

impl MatchRef<'_> {
    /// The owned, serializable form.
    pub fn to_word_match(&self) -> WordMatch {
        WordMatch {
            word: self.word.to_owned(),
            start: self.start,
            end: self.end,
            list: self.list.to_owned(),
        }
    }
}

/// The result of [`SensitiveWords::scan`]: a [`Verdict`] that borrows the words and list names
/// from the compiled lists (`'w`) and the text (`'t`), and masks only on demand.
#[derive(Debug, Clone)]
pub struct Scan<'w, 't> {
    /// The strongest action across the matches, `allow` when nothing matched.
    pub action: Action,
    /// As [`Verdict::matches`] (see [`matches`](Self::matches)).
    matches: MatchList<'w>,
    /// Occurrences found beyond those kept in `matches`.
    pub matches_dropped: usize,
    text: &'t str,
    /// Sorted, disjoint byte ranges to mask.
    masked_ranges: Ranges,
}

impl<'w, 't> Scan<'w, 't> {
    /// As [`Verdict::matches`]: the occurrences, overlapping ones included, ordered by start
    /// then end (then list name): the first [`MAX_MATCHES_KEPT`] found.
    pub fn matches(&self) -> &[MatchRef<'w>] {
        self.matches.as_slice()
    }

    /// The checked text.
    pub fn text(&self) -> &'t str {
        self.text
    }

    /// [`Verdict::masked`]: the text with every character matched by a word of a masking or
    /// blocking list (and separators inside such a match) as `*`; the text itself, borrowed,
    /// when there is nothing to mask.
    pub fn masked(&self) -> Cow<'t, str> {
        mask(self.text, self.masked_ranges.as_slice())
    }

    /// The owned, serializable verdict ([`SensitiveWords::check`]).
    pub fn to_verdict(&self) -> Verdict {
        Verdict {
            action: self.action,
            matches: self.matches().iter().map(MatchRef::to_word_match).collect(),
            matches_dropped: self.matches_dropped,
            masked: self.masked().into_owned(),
        }
    }
}

/// A scan's matches: the first few inline (a chat message rarely has more), so most scans do
/// not allocate.
#[derive(Debug, Clone)]
struct MatchList<'w> {
    inline: [MatchRef<'w>; 4],
    len: usize,
    spilled: Vec<MatchRef<'w>>,
}

impl Default for MatchList<'_> {
    fn default() -> Self {
        let none = MatchRef {
            word: "",
            start: 0,
            end: 0,
            list: "",
        };
        Self {
            inline: [none; 4],
            len: 0,
            spilled: Vec::new(),
        }
    }
}

impl<'w> MatchList<'w> {
    fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn push(&mut self, found: MatchRef<'w>) {
        if self.len < self.inline.len() {
            self.inline[self.len] = found;
        } else {
            if self.len == self.inline.len() {
                self.spilled.reserve(16);
                self.spilled.extend_from_slice(&self.inline);
            }
            self.spilled.push(found);
        }
        self.len += 1;
    }

    fn as_slice(&self) -> &[MatchRef<'w>] {
        if self.len <= self.inline.len() {
            &self.inline[..self.len]
        } else {
            &self.spilled
        }
    }

    fn as_mut_slice(&mut self) -> &mut [MatchRef<'w>] {
        if self.len <= self.inline.len() {
            &mut self.inline[..self.len]
        } else {
            &mut self.spilled
        }
    }
}

/// Byte ranges to mask: the first few on the stack (a chat message rarely has more), ranges that
/// overlap the last one merged into it as they come (hits arrive ordered by end).
#[derive(Debug, Clone, Default)]
struct Ranges {
    inline: [(usize, usize); 8],
    len: usize,
    spilled: Vec<(usize, usize)>,
}

impl Ranges {
    fn push(&mut self, (start, end): (usize, usize)) {
        let last = if self.len <= self.inline.len() {
            self.len.checked_sub(1).map(|index| &mut self.inline[index])
        } else {
            self.spilled.last_mut()
        };
        if let Some(last) = last {
            if start <= last.1 && end >= last.1 {
                *last = (last.0.min(start), end);
                return;
            }
        }
        if self.len < self.inline.len() {
            self.inline[self.len] = (start, end);
        } else {
            if self.len == self.inline.len() {
                self.spilled.extend_from_slice(&self.inline);
            }
            self.spilled.push((start, end));
        }
        self.len += 1;
    }

    fn as_slice(&self) -> &[(usize, usize)] {
        if self.len <= self.inline.len() {
            &self.inline[..self.len]
        } else {
            &self.spilled
        }
    }

    /// Sorts the ranges and merges those that overlap, so they are disjoint and ascending.
    fn normalize(&mut self) {
        let ranges: &mut [(usize, usize)] = if self.len <= self.inline.len() {
            &mut self.inline[..self.len]
        } else {
            &mut self.spilled
        };
        if ranges.windows(2).all(|pair| pair[0].1 < pair[1].0) {
            return;
        }
        ranges.sort_unstable();
        let mut kept = 0;
        for index in 1..ranges.len() {
            let (start, end) = ranges[index];
            if start <= ranges[kept].1 {
                ranges[kept].1 = ranges[kept].1.max(end);
            } else {
                kept += 1;
                ranges[kept] = (start, end);
            }
        }
        let len = kept + 1;
        if self.len > self.inline.len() {
            self.spilled.truncate(len);
            if len <= self.inline.len() {
                self.inline[..len].copy_from_slice(&self.spilled);
                self.spilled.clear();
            }
        }
        self.len = len;
    }
}

const STARS: &str = "********************************";

/// Replaces every character inside the byte `ranges` (sorted, disjoint, on character
/// boundaries) with `*`.
fn mask<'t>(text: &'t str, ranges: &[(usize, usize)]) -> Cow<'t, str> {
    if ranges.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for &(start, end) in ranges {
        out.push_str(&text[copied..start]);
        // The characters in the range: its bytes that do not continue a character (a range is a
        // few characters, too short for `chars().count()`'s wide path).
        let mut stars = text.as_bytes()[start..end]
            .iter()
            .filter(|&&byte| (byte as i8) >= -0x40)
            .count();
        while stars > 0 {
            let run = stars.min(STARS.len());
            out.push_str(&STARS[..run]);
            stars -= run;
        }
        copied = end;
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// The word lists of every tenant and their compiled matchers. Tenants start with no lists.
/// Writers rebuild the tenant's matcher and swap it in; readers never wait for a build.
#[derive(Debug, Default)]
pub struct SensitiveWordRegistry {
    tenants: RwLock<HashMap<String, Arc<SensitiveWords>>>,
    /// Serializes writers so two concurrent list updates of a tenant cannot lose one another.
    writers: Mutex<()>,
}

impl SensitiveWordRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The tenant's compiled matcher (an empty one for an unknown tenant).
    pub fn get(&self, tenant: &str) -> Arc<SensitiveWords> {
        self.tenants
            .read()
            .ok()
            .and_then(|tenants| tenants.get(tenant).cloned())
            .unwrap_or_else(|| Arc::new(SensitiveWords::empty()))
    }

    pub fn check(&self, tenant: &str, text: &str) -> Verdict {
        self.get(tenant).check(text)
    }

    /// Adds or replaces the list with the same name, then rebuilds the tenant's matcher.
    pub fn put_list(
        &self,
        tenant: &str,
        list: WordList,
    ) -> Result<BuildStats, SensitiveWordsError> {
        let _writer = self
            .writers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = self.get(tenant);
        let mut lists: BTreeMap<String, WordList> = current
            .lists()
            .iter()
            .map(|list| (list.name.clone(), list.clone()))
            .collect();
        lists.insert(list.name.clone(), list);
        self.install(tenant, lists.into_values().collect(), SensitiveWords::build)
    }

    /// Removes a list by name; returns whether it existed.
    pub fn remove_list(&self, tenant: &str, name: &str) -> Result<bool, SensitiveWordsError> {
        let _writer = self
            .writers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = self.get(tenant);
        let before = current.lists().len();
        let lists: Vec<WordList> = current
            .lists()
            .iter()
            .filter(|list| list.name != name)
            .cloned()
            .collect();
        let existed = lists.len() != before;
        if existed {
            self.install(tenant, lists, SensitiveWords::load)?;
        }
        Ok(existed)
    }

    /// Replaces all of a tenant's lists at once (for example when loading them from the store).
    pub fn replace(
        &self,
        tenant: &str,
        lists: Vec<WordList>,
    ) -> Result<BuildStats, SensitiveWordsError> {
        let _writer = self
            .writers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.install(tenant, lists, SensitiveWords::load)
    }

    /// Builds `lists` with `build` ([`SensitiveWords::build`] for a new list, `load` for lists
    /// accepted before) and swaps the tenant's matcher.
    fn install(
        &self,
        tenant: &str,
        lists: Vec<WordList>,
        build: fn(&[WordList]) -> Result<SensitiveWords, SensitiveWordsError>,
    ) -> Result<BuildStats, SensitiveWordsError> {
        let built = build(&lists)?;
        let stats = built.stats();
        if let Ok(mut tenants) = self.tenants.write() {
            tenants.insert(tenant.to_owned(), Arc::new(built));
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests;
