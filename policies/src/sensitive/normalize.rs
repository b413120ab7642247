//! Text folding for sensitive-word matching. Words and text go through the same [`fold`], so an
//! evasion that survives folding on one side survives it on the other:
//!
//! - full-width ASCII (`ＡＢＣ１２３`) → half-width, the ideographic space → dropped;
//! - letters → lowercase;
//! - traditional Chinese → simplified, one character for one character (about 2.7k pairs from
//!   the `fast2s` table, expanded once into a dense array over U+3400..=U+9FFF);
//! - everything that is not a letter or a number (spaces, punctuation, symbols, emoji,
//!   zero-width characters, combining marks) → dropped, so `法 轮.功` folds to `法轮功`.
//!
//! Folding never merges or splits characters, so every folded character points back to exactly
//! one original character: that is what keeps match offsets exact.

use std::sync::OnceLock;

const CJK_FIRST: u32 = 0x3400;
const CJK_LAST: u32 = 0x9FFF;

fn t2s_table() -> &'static [char] {
    static TABLE: OnceLock<Box<[char]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut buffer = [0u8; 4];
        (CJK_FIRST..=CJK_LAST)
            .map(|code| {
                let Some(traditional) = char::from_u32(code) else {
                    return '\0';
                };
                let converted = fast2s::convert(traditional.encode_utf8(&mut buffer));
                let mut chars = converted.chars();
                match (chars.next(), chars.next()) {
                    (Some(simplified), None) => simplified,
                    _ => traditional,
                }
            })
            .collect()
    })
}

/// Folds one character: `None` means the character is dropped (a separator).
#[inline]
pub fn fold(c: char) -> Option<char> {
    let code = c as u32;
    if code < 0x80 {
        return if c.is_ascii_alphanumeric() {
            Some(c.to_ascii_lowercase())
        } else {
            None
        };
    }
    if (CJK_FIRST..=CJK_LAST).contains(&code) {
        return Some(t2s_table()[(code - CJK_FIRST) as usize]);
    }
    if (0xFF01..=0xFF5E).contains(&code) {
        // Full-width ASCII variants sit at a fixed distance from ASCII.
        let ascii = char::from_u32(code - 0xFEE0).unwrap_or(c);
        return if ascii.is_ascii_alphanumeric() {
            Some(ascii.to_ascii_lowercase())
        } else {
            None
        };
    }
    if c.is_alphanumeric() {
        let mut lower = c.to_lowercase();
        return match (lower.next(), lower.next()) {
            (Some(single), None) => Some(single),
            _ => Some(c),
        };
    }
    None
}

/// Folds a whole word (used for patterns).
pub fn fold_word(word: &str) -> String {
    word.chars().filter_map(fold).collect()
}

/// Folded text and, for every byte of it, the index of the original character it came from: the
/// straightforward reference the matcher's tests compare against.
#[cfg(test)]
pub(crate) struct Folded {
    pub text: String,
    pub origin_char_of_byte: Vec<u32>,
}

#[cfg(test)]
pub(crate) fn fold_text(text: &str) -> Folded {
    let mut folded = String::with_capacity(text.len());
    let mut origin_char_of_byte = Vec::with_capacity(text.len());
    for (char_index, c) in text.chars().enumerate() {
        if let Some(folded_char) = fold(c) {
            folded.push(folded_char);
            let width = folded_char.len_utf8();
            origin_char_of_byte.extend(std::iter::repeat_n(char_index as u32, width));
        }
    }
    Folded {
        text: folded,
        origin_char_of_byte,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_width_case_separators_and_traditional() {
        assert_eq!(fold_word("ＡＢｃ１２３"), "abc123");
        assert_eq!(fold_word("Hello, World!"), "helloworld");
        assert_eq!(fold_word("法 轮·功"), "法轮功");
        assert_eq!(fold_word("發票 臺灣 體育"), "发票台湾体育");
        assert_eq!(fold_word("法\u{200B}轮😀功"), "法轮功");
        assert_eq!(fold_word("ÉCOLE"), "école");
        assert_eq!(fold_word("，。！？、"), "");
    }

    #[test]
    fn origins_point_at_original_characters() {
        let folded = fold_text("a 發b");
        assert_eq!(folded.text, "a发b");
        assert_eq!(folded.origin_char_of_byte, [0, 2, 2, 2, 3]);
    }
}
