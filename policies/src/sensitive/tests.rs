use std::borrow::Cow;

use super::*;

fn words(lists: &[(&str, Action, &[&str])]) -> SensitiveWords {
    let lists: Vec<WordList> = lists
        .iter()
        .map(|(name, action, words)| {
            WordList::new(*name, *action, words.iter().map(|word| word.to_string())).unwrap()
        })
        .collect();
    SensitiveWords::build(&lists).unwrap()
}

fn spans(verdict: &Verdict) -> Vec<(usize, usize, &str)> {
    verdict
        .matches
        .iter()
        .map(|found| (found.start, found.end, found.word.as_str()))
        .collect()
}

#[test]
fn empty_lists_allow_everything() {
    let verdict = SensitiveWords::empty().check("任何文本");
    assert_eq!(verdict.action, Action::Allow);
    assert!(verdict.matches.is_empty());
    assert_eq!(verdict.masked, "任何文本");
    let registry = SensitiveWordRegistry::new();
    assert_eq!(registry.check("new-tenant", "刷单").action, Action::Allow);
}

#[test]
fn plain_match_has_char_offsets_into_the_original() {
    let engine = words(&[("fraud", Action::Mask, &["刷单"])]);
    let verdict = engine.check("我们可以刷单吗");
    assert_eq!(verdict.action, Action::Mask);
    assert_eq!(spans(&verdict), [(4, 6, "刷单")]);
    assert_eq!(verdict.matches[0].list, "fraud");
    assert_eq!(verdict.masked, "我们可以**吗");
}

#[test]
fn full_width_and_case_evasions_hit() {
    let engine = words(&[("spam", Action::Flag, &["VX123", "qq群"])]);
    let verdict = engine.check("加我ｖｘ１２３，或者QQ群");
    assert_eq!(spans(&verdict), [(2, 7, "VX123"), (10, 13, "qq群")]);
    assert_eq!(verdict.action, Action::Flag);
    assert_eq!(
        verdict.masked, "加我ｖｘ１２３，或者QQ群",
        "flag does not mask"
    );
}

#[test]
fn separators_inserted_between_characters_hit_and_are_masked() {
    let engine = words(&[("fraud", Action::Mask, &["刷单"])]);
    for (text, start, end, masked) in [
        ("来刷 单", 1, 4, "来***"),
        ("来刷.单", 1, 4, "来***"),
        ("来刷，。单!", 1, 5, "来****!"),
        ("来刷\u{200B}单", 1, 4, "来***"),
        ("来刷😀单", 1, 4, "来***"),
        ("来刷　单", 1, 4, "来***"),
    ] {
        let verdict = engine.check(text);
        assert_eq!(spans(&verdict), [(start, end, "刷单")], "{text}");
        assert_eq!(verdict.masked, masked, "{text}");
    }
}

#[test]
fn traditional_and_simplified_match_each_other() {
    let simplified_list = words(&[("tw", Action::Flag, &["发票"])]);
    let verdict = simplified_list.check("代開發票");
    assert_eq!(spans(&verdict), [(2, 4, "发票")]);

    let traditional_list = words(&[("tw", Action::Flag, &["發票"])]);
    let verdict = traditional_list.check("代开发票");
    assert_eq!(spans(&verdict), [(2, 4, "發票")]);
}

#[test]
fn strongest_action_wins_and_overlaps_are_all_reported() {
    let engine = words(&[
        ("flagged", Action::Flag, &["法轮功"]),
        ("blocked", Action::Block, &["法轮"]),
        ("masked", Action::Mask, &["笨蛋"]),
        ("human", Action::Handoff, &["投诉"]),
    ]);
    let verdict = engine.check("法輪功");
    assert_eq!(verdict.action, Action::Block);
    assert_eq!(spans(&verdict), [(0, 2, "法轮"), (0, 3, "法轮功")]);
    assert_eq!(verdict.masked, "**功", "only mask and block lists mask");

    assert_eq!(engine.check("我要投诉你这个笨蛋").action, Action::Handoff);
    assert_eq!(engine.check("你这个笨蛋").action, Action::Mask);
    assert!(
        Action::Block > Action::Handoff
            && Action::Handoff > Action::Mask
            && Action::Mask > Action::Flag
    );
}

#[test]
fn the_same_word_in_two_lists_reports_both() {
    let engine = words(&[
        ("a", Action::Flag, &["赌博"]),
        ("b", Action::Handoff, &["賭博"]),
    ]);
    let verdict = engine.check("网上赌博");
    assert_eq!(verdict.action, Action::Handoff);
    let lists: Vec<&str> = verdict
        .matches
        .iter()
        .map(|found| found.list.as_str())
        .collect();
    assert_eq!(lists, ["a", "b"]);
}

#[test]
fn words_that_fold_to_nothing_are_ignored() {
    let engine = words(&[("punct", Action::Block, &["...", "！", "ok"])]);
    assert_eq!(engine.stats().ignored_words, 2);
    assert_eq!(engine.stats().patterns, 1);
    assert_eq!(engine.check("... ！").action, Action::Allow);
}

#[test]
fn plain_text_upload_format() {
    let list = WordList::from_plain_text(
        "zh",
        Action::Block,
        "\u{FEFF}刷单\r\n\r\n  代开发票  \n刷单\n",
    )
    .unwrap();
    assert_eq!(list.words(), ["刷单", "代开发票"]);
    assert_eq!(list.name(), "zh");
}

#[test]
fn bad_input_is_a_typed_error() {
    assert_eq!(
        "allow".parse::<Action>(),
        Err(SensitiveWordsError::UnknownAction("allow".into()))
    );
    assert_eq!("handoff".parse::<Action>(), Ok(Action::Handoff));
    assert_eq!(
        WordList::new("Bad Name", Action::Block, [])
            .unwrap_err()
            .code(),
        "invalid_list_name"
    );
    assert_eq!(
        WordList::new("ok", Action::Allow, []),
        Err(SensitiveWordsError::AllowIsNotAListAction)
    );
    let long = "字".repeat(MAX_WORD_CHARS + 1);
    assert_eq!(
        WordList::new("ok", Action::Block, ["a".to_owned(), long]).unwrap_err(),
        SensitiveWordsError::WordTooLong {
            index: 1,
            chars: MAX_WORD_CHARS + 1,
            limit: MAX_WORD_CHARS
        }
    );
    let message = SensitiveWordsError::UnknownAction("x".into()).to_string();
    assert!(message.starts_with("unknown action") && !message.ends_with('.'));
}

#[test]
fn registry_puts_replaces_and_removes_lists() {
    let registry = SensitiveWordRegistry::new();
    registry
        .put_list(
            "acme",
            WordList::new("a", Action::Flag, ["刷单".to_owned()]).unwrap(),
        )
        .unwrap();
    registry
        .put_list(
            "acme",
            WordList::new("b", Action::Block, ["赌博".to_owned()]).unwrap(),
        )
        .unwrap();
    assert_eq!(registry.check("acme", "赌博").action, Action::Block);
    assert_eq!(
        registry.check("other", "赌博").action,
        Action::Allow,
        "tenants do not share lists"
    );
    registry
        .put_list(
            "acme",
            WordList::new("b", Action::Mask, ["赌博".to_owned()]).unwrap(),
        )
        .unwrap();
    assert_eq!(registry.check("acme", "赌博").action, Action::Mask);
    assert!(registry.remove_list("acme", "b").unwrap());
    assert!(!registry.remove_list("acme", "b").unwrap());
    assert_eq!(registry.check("acme", "赌博").action, Action::Allow);
    assert_eq!(registry.check("acme", "刷单").action, Action::Flag);
}

#[test]
fn verdict_serializes_as_the_api_shape() {
    let engine = words(&[("fraud", Action::Mask, &["刷单"])]);
    let json = serde_json::to_value(engine.check("刷单")).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"action": "mask", "matches": [{"word": "刷单", "start": 0, "end": 2, "list": "fraud"}], "masked": "**"})
    );
}

/// The engine as it was before the character-level automaton: fold the whole text, search every
/// pattern at every position of the folded text, map byte offsets back through a per-byte origin
/// table, mask by character. Slow and obviously right.
fn reference_check(lists: &[WordList], text: &str) -> Verdict {
    let folded = normalize::fold_text(text);
    let mut action = Action::Allow;
    let mut matches = Vec::new();
    let mut masked_chars = std::collections::BTreeSet::new();
    for list in lists {
        for word in list.words() {
            let pattern = normalize::fold_word(word);
            if pattern.is_empty() {
                continue;
            }
            for (position, _) in folded.text.char_indices() {
                if !folded.text[position..].starts_with(&pattern) {
                    continue;
                }
                let start = folded.origin_char_of_byte[position] as usize;
                let end = folded.origin_char_of_byte[position + pattern.len() - 1] as usize + 1;
                action = action.max(list.action());
                if matches!(list.action(), Action::Mask | Action::Block) {
                    masked_chars.extend(start..end);
                }
                matches.push(WordMatch {
                    word: word.clone(),
                    start,
                    end,
                    list: list.name().to_owned(),
                });
            }
        }
    }
    matches.sort_by(|a, b| (a.start, a.end, &a.list).cmp(&(b.start, b.end, &b.list)));
    let masked = text
        .chars()
        .enumerate()
        .map(|(index, c)| {
            if masked_chars.contains(&index) {
                '*'
            } else {
                c
            }
        })
        .collect();
    // The random cases stay far below the cap on kept matches.
    assert!(matches.len() <= MAX_MATCHES_KEPT);
    Verdict {
        action,
        matches,
        matches_dropped: 0,
        masked,
    }
}

/// xorshift64*, for deterministic random cases.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Checks `text` and asserts the verdict equals the reference's; answers the matches found.
fn check_agrees_with_reference(
    engine: &SensitiveWords,
    lists: &[WordList],
    text: &str,
    case: usize,
) -> usize {
    let verdict = engine.check(text);
    assert_eq!(
        verdict,
        reference_check(lists, text),
        "case {case}, text {text:?}, lists {lists:?}"
    );
    verdict.matches.len()
}

/// One to three lists with random actions, each of 1 to `words` words of 1 to `pieces` pieces;
/// with `spaces`, one word in eight gets a space after its first character.
fn random_lists(
    rng: &mut Rng,
    word_pieces: &[&str],
    words: usize,
    pieces: usize,
    spaces: bool,
) -> Vec<WordList> {
    const ACTIONS: &[Action] = &[Action::Flag, Action::Mask, Action::Handoff, Action::Block];
    (0..1 + rng.below(3))
        .map(|index| {
            let list: Vec<String> = (0..1 + rng.below(words))
                .map(|_| {
                    let mut word: String = (0..1 + rng.below(pieces))
                        .map(|_| rng.pick(word_pieces))
                        .collect();
                    if spaces && rng.below(8) == 0 {
                        let middle = word.char_indices().nth(1).map_or(0, |(at, _)| at);
                        word.insert(middle, ' ');
                    }
                    word
                })
                .collect();
            let action = ACTIONS[rng.below(ACTIONS.len())];
            WordList::new(format!("list-{}", rng.below(3) + index), action, list).unwrap()
        })
        .collect()
}

#[test]
fn matches_the_reference_on_random_lists_and_texts() {
    // Few distinct characters so words overlap, nest and share prefixes and suffixes; with
    // traditional/simplified pairs, width and case variants, separators and characters that
    // are in no word.
    const WORD_PIECES: &[&str] = &[
        "刷", "单", "發", "发", "票", "法", "轮", "功", "a", "B", "ｃ", "1", "２", "é", "É", "ß",
        "𠀀",
    ];
    const TEXT_PIECES: &[&str] = &[
        "刷", "单", "發", "发", "票", "法", "轮", "輪", "功", "a", "A", "b", "ｂ", "c", "C", "1",
        "１", "２", "é", "É", "ß", "𠀀", " ", "，", "。", "·", "\u{200B}", "😀", "　", "的", "z",
        "Ω", "\n",
    ];
    let mut rng = Rng(0x0DDB_A115_EED5);
    let mut found = 0;
    for case in 0..400 {
        let lists = random_lists(&mut rng, WORD_PIECES, 12, 5, true);
        let engine = SensitiveWords::build(&lists).unwrap();
        for _ in 0..20 {
            let text: String = (0..rng.below(40)).map(|_| rng.pick(TEXT_PIECES)).collect();
            found += check_agrees_with_reference(&engine, &lists, &text, case);
        }
    }
    assert!(found > 2_000, "the cases should match often, found {found}");
}

#[test]
fn words_longer_than_the_word_cap_still_map_back() {
    // `WordList::new` caps words at MAX_WORD_CHARS, but a deserialized list is not checked.
    let long: String = (0..300)
        .map(|index| ["刷", "单", "a"][index % 3])
        .collect::<String>();
    let list: WordList = serde_json::from_value(serde_json::json!({
        "name": "long",
        "action": "mask",
        "words": [long.clone(), "单a"],
    }))
    .unwrap();
    let lists = [list];
    let engine = SensitiveWords::build(&lists).unwrap();
    let text = format!("前 {} 后", long.replace('单', "单 "));
    let verdict = engine.check(&text);
    assert_eq!(verdict, reference_check(&lists, &text));
    assert!(verdict
        .matches
        .iter()
        .any(|found| found.word == long && found.start == 2));
}

#[test]
fn characters_in_no_word_reset_the_automaton() {
    let engine = words(&[("w", Action::Block, &["刷单", "单刷"])]);
    assert_eq!(engine.check("刷的单").action, Action::Allow);
    assert_eq!(
        spans(&engine.check("刷 单的单刷")),
        [(0, 3, "刷单"), (4, 6, "单刷")]
    );
    assert_eq!(engine.check("刷的单").masked, "刷的单");
}

/// A list of overlapping words (`a` × 193, ... `a` × 256: as many ending together as allowed)
/// against a long message of `a`s finds millions of matches; the verdict keeps a bounded number
/// and still acts on all of them.
#[test]
fn overlapping_words_against_a_long_message_keep_a_bounded_verdict() {
    // As many words ending together as a list may have, each longer than a short walk back.
    let words: Vec<String> = (MAX_WORD_CHARS + 1 - MAX_ENDING_TOGETHER..=MAX_WORD_CHARS)
        .map(|n| "a".repeat(n))
        .collect();
    let list = WordList::new("hostile", Action::Mask, words).expect("list");
    let lists = [list];
    let matcher = SensitiveWords::build(&lists).expect("build");
    let text = "a".repeat(64 * 1024);
    let verdict = matcher.check(&text);
    assert_eq!(verdict.action, Action::Mask);
    assert_eq!(verdict.matches.len(), MAX_MATCHES_KEPT);
    assert!(
        verdict.matches_dropped > 1_000_000,
        "{}",
        verdict.matches_dropped
    );
    assert_eq!(verdict.masked, "*".repeat(64 * 1024));
    // The starts found through the ring of origins are the reference's, separators between
    // (198 folded characters: 21 matches).
    let text = "a a，a".repeat(66);
    assert_eq!(matcher.check(&text), reference_check(&lists, &text));
}

/// Words that are endings of one another all match at one place: past
/// [`MAX_ENDING_TOGETHER`] (counted once per list holding a word) the lists are refused, so a
/// message costs at most that many matches a character.
#[test]
fn lists_whose_words_end_together_too_often_are_refused() {
    let nested = |count: usize| {
        let words: Vec<String> = (1..=count).map(|n| "a".repeat(n)).collect();
        WordList::new("nested", Action::Mask, words).expect("list")
    };
    assert!(SensitiveWords::build(&[nested(MAX_ENDING_TOGETHER)]).is_ok());
    let refused = SensitiveWords::build(&[nested(MAX_ENDING_TOGETHER + 1)]).unwrap_err();
    assert_eq!(refused.code(), "too_nested");
    // A list stored before the limit still loads: it is screened, not left out.
    let legacy = SensitiveWords::load(&[nested(MAX_ENDING_TOGETHER + 1)]).expect("loads");
    assert_eq!(legacy.check("aaa").action, Action::Mask);
    // The same two words in many lists count once per list.
    let copies = |count: usize| -> Vec<WordList> {
        (0..count)
            .map(|index| {
                WordList::new(
                    format!("l{index}"),
                    Action::Flag,
                    vec!["刷单".into(), "单".into()],
                )
                .expect("list")
            })
            .collect()
    };
    assert!(SensitiveWords::build(&copies(MAX_ENDING_TOGETHER / 2)).is_ok());
    assert_eq!(
        SensitiveWords::build(&copies(MAX_ENDING_TOGETHER / 2 + 1))
            .unwrap_err()
            .code(),
        "too_nested"
    );
}

/// Words that are suffixes of one another end at the same position: their starts come from one
/// walk back over the text, through a stack buffer of 32 origins or a heap one for longer words.
/// Separators, combining marks, emoji, full-width and traditional forms sit between characters.
#[test]
fn nested_words_ending_together_match_the_reference() {
    const PIECES: &[&str] = &["刷", "單", "单", "Ａ", "a", "B", "é", "𠀀"];
    const NOISE: &[&str] = &[
        " ", "\u{301}", "😀", "，", "\u{200B}", "　", "的", "", "", "", "",
    ];
    let mut rng = Rng(0x0005_EED0_F5E9);
    let mut found = 0;
    for case in 0..60 {
        let chars: Vec<&str> = (0..20 + rng.below(50)).map(|_| rng.pick(PIECES)).collect();
        let words: Vec<String> = (0..1 + rng.below(6))
            .map(|_| chars[chars.len() - 1 - rng.below(chars.len())..].concat())
            .collect();
        let lists = [WordList::new("nested", Action::Mask, words).expect("list")];
        let engine = SensitiveWords::build(&lists).expect("build");
        for _ in 0..5 {
            let mut text = String::new();
            for _ in 0..1 + rng.below(2) {
                text.push_str(rng.pick(NOISE));
                for piece in &chars {
                    text.push_str(piece);
                    text.push_str(rng.pick(NOISE));
                }
            }
            found += check_agrees_with_reference(&engine, &lists, &text, case);
        }
    }
    assert!(found > 500, "the cases should match often, found {found}");
}

/// The borrowed scan's fields, compared with an owned verdict.
fn assert_scan_is(scan: &Scan<'_, '_>, verdict: &Verdict, context: &str) {
    assert_eq!(scan.action, verdict.action, "{context}");
    let matches: Vec<WordMatch> = scan.matches().iter().map(MatchRef::to_word_match).collect();
    assert_eq!(matches, verdict.matches, "{context}");
    assert_eq!(scan.matches_dropped, verdict.matches_dropped, "{context}");
    let masked = scan.masked();
    assert_eq!(masked, verdict.masked, "{context}");
    // The text itself, not a copy, when nothing is masked.
    if masked == scan.text() {
        assert!(matches!(masked, Cow::Borrowed(_)), "{context}");
    }
    assert_eq!(&scan.to_verdict(), verdict, "{context}");
}

#[test]
fn scan_agrees_with_the_reference_on_random_lists_and_texts() {
    const WORD_PIECES: &[&str] = &["刷", "单", "發", "票", "a", "B", "ｃ", "1", "é", "𠀀"];
    const TEXT_PIECES: &[&str] = &[
        "刷", "单", "發", "发", "票", "a", "A", "b", "ｂ", "C", "１", "é", "É", "𠀀", " ", "，",
        "\u{200B}", "😀", "的", "z",
    ];
    let mut rng = Rng(0x5CA7_0B0E);
    let (mut found, mut masked, mut spilled, mut many) = (0, 0, 0, 0);
    for case in 0..300 {
        let lists = random_lists(&mut rng, WORD_PIECES, 10, 4, false);
        let engine = SensitiveWords::build(&lists).unwrap();
        for _ in 0..20 {
            let text: String = (0..rng.below(80)).map(|_| rng.pick(TEXT_PIECES)).collect();
            let scan = engine.scan(&text);
            found += scan.matches().len();
            masked += usize::from(matches!(scan.masked(), Cow::Owned(_)));
            spilled += usize::from(scan.masked_ranges.len > 8);
            many += usize::from(scan.matches().len() > 4);
            let context = format!("case {case}, text {text:?}, lists {lists:?}");
            assert_scan_is(&scan, &reference_check(&lists, &text), &context);
            assert_eq!(scan.to_verdict(), engine.check(&text), "{context}");
        }
    }
    assert!(found > 5_000, "the cases should match often, found {found}");
    assert!(masked > 500, "the cases should mask often, masked {masked}");
    assert!(
        spilled > 20,
        "some cases should mask many ranges, {spilled}"
    );
    assert!(
        many > 200,
        "some cases should match more than the inline four, {many}"
    );
}

/// Ranges to mask that arrive out of order: a long word ending last covers ranges pushed before
/// it; more than the inline buffer holds, next to a flagging list that masks nothing.
#[test]
fn scan_masks_nested_and_many_ranges_like_check() {
    let lists = [
        WordList::new(
            "rude",
            Action::Mask,
            ["ab", "de", "abcdef"].map(str::to_owned),
        )
        .unwrap(),
        WordList::new("watch", Action::Flag, ["cd", "x"].map(str::to_owned)).unwrap(),
    ];
    let engine = SensitiveWords::build(&lists).unwrap();
    for text in [
        "abcdef",
        "a b c d e f",
        "ab de abcdef",
        &"abcdef x ".repeat(12),
        &"ab-de x ".repeat(10),
        "x cd x",
        "",
    ] {
        let scan = engine.scan(text);
        assert_scan_is(&scan, &reference_check(&lists, text), text);
    }
    assert_eq!(engine.scan("ab de abcdef").masked(), "** ** ******");
    assert_eq!(engine.scan("x cd x").action, Action::Flag);
    assert!(matches!(engine.scan("x cd x").masked(), Cow::Borrowed(_)));
    assert!(SensitiveWords::empty().scan("刷单").matches().is_empty());
}

#[test]
fn scan_keeps_the_same_bounded_matches_as_check() {
    // Two lists of the same nested words: as many matches at one place as lists may have.
    let words: Vec<String> = (MAX_WORD_CHARS + 1 - MAX_ENDING_TOGETHER / 2..=MAX_WORD_CHARS)
        .map(|n| "a".repeat(n))
        .collect();
    let lists = [
        WordList::new("hostile", Action::Mask, words.clone()).expect("list"),
        WordList::new("also", Action::Flag, words).expect("list"),
    ];
    let engine = SensitiveWords::build(&lists).expect("build");
    let text = format!("{}b{}", "a".repeat(4 * 1024), "a".repeat(300));
    let scan = engine.scan(&text);
    assert_eq!(scan.matches().len(), MAX_MATCHES_KEPT);
    assert!(scan.matches_dropped > 100_000, "{}", scan.matches_dropped);
    assert_scan_is(&scan, &engine.check(&text), "hostile");
    assert_eq!(
        scan.masked(),
        format!("{}b{}", "*".repeat(4 * 1024), "*".repeat(300))
    );
}

/// Past the kept matches, each place comes as one summary of its chain of words: the counts,
/// the action and the masking stay those of every match.
#[test]
fn summaries_after_the_kept_matches_count_act_and_mask_like_each_hit() {
    let lists = [
        WordList::new("m", Action::Mask, vec!["ab".into(), "b".into()]).expect("list"),
        WordList::new("f", Action::Flag, vec!["aab".into(), "ab".into()]).expect("list"),
        WordList::new("long", Action::Mask, vec!["ab".repeat(20)]).expect("list"),
    ];
    let engine = SensitiveWords::build(&lists).expect("build");
    for (text, masked) in [
        (
            format!("{}cb", "aab".repeat(400)),
            format!("{}c*", "a**".repeat(400)),
        ),
        ("ab".repeat(300), "*".repeat(600)),
        // Separators inside a match are masked with it ("ab" spans "a b").
        (
            format!("{}x", "a b，".repeat(200)),
            format!("{}，x", "*".repeat(799)),
        ),
    ] {
        let scan = engine.scan(&text);
        assert_eq!(scan.action, Action::Mask);
        assert_eq!(scan.matches().len(), MAX_MATCHES_KEPT);
        assert_eq!(
            scan.matches().len() + scan.matches_dropped,
            engine.count_matches(&text),
            "{text:.12}"
        );
        assert_eq!(scan.masked(), masked, "{text:.12}");
    }
    // Flag-only chains past the kept ones still raise the action.
    let lists = [
        WordList::new("m", Action::Mask, vec!["q".into()]).expect("list"),
        WordList::new("h", Action::Handoff, vec!["z".into()]).expect("list"),
    ];
    let engine = SensitiveWords::build(&lists).expect("build");
    let text = format!("{}z", "q".repeat(300));
    let scan = engine.scan(&text);
    assert_eq!(scan.action, Action::Handoff);
    assert_eq!(scan.masked(), format!("{}z", "*".repeat(300)));
    assert_eq!(scan.matches_dropped, 301 - MAX_MATCHES_KEPT);
}

/// A plain-text list's words: distinct non-blank lines, trimmed, in order; past the limit only
/// one more is kept (enough for `WordList::new` to refuse the list), so blank or repeated lines
/// never become millions of strings.
#[test]
fn plain_text_lists_keep_distinct_lines_and_stop_past_the_limit() {
    assert_eq!(
        plain_text_words("\u{FEFF}a\n\n  b \r\na\n\n"),
        ["a".to_string(), "b".to_string()]
    );
    assert!(plain_text_words(&"\n".repeat(1 << 20)).is_empty());
    let many: String = (0..MAX_WORDS_PER_LIST + 10)
        .map(|n| format!("w{n}\n"))
        .collect();
    let words = plain_text_words(&many);
    assert_eq!(words.len(), MAX_WORDS_PER_LIST + 1);
    assert!(matches!(
        WordList::new("big", Action::Mask, words),
        Err(SensitiveWordsError::TooManyWords { .. })
    ));
}
