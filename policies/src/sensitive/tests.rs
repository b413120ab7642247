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
