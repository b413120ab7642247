//! Sensitive words: lists made of the input's first lines, checked against the rest (folding of
//! width, case, separators and traditional characters; overlapping matches).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_policies::sensitive::normalize::fold_word;
use switchboard_policies::sensitive::{Action, SensitiveWords, WordList};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (words, message) = text.split_once("\n\n").unwrap_or((text, text));
    let words: Vec<String> = words.lines().take(64).map(str::to_owned).collect();
    for word in &words {
        let _ = fold_word(word);
    }
    for action in [Action::Flag, Action::Mask] {
        let Ok(list) = WordList::new("fuzz", action, words.clone()) else {
            return;
        };
        if let Ok(index) = SensitiveWords::build(&[list]) {
            let verdict = index.check(message);
            let _ = verdict.masked;
        }
    }
});
