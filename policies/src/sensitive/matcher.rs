//! A character-level Aho-Corasick automaton over folded text, stored as a double array.
//!
//! Why not the `aho-corasick` crate: it works on UTF-8 bytes, so a Chinese character costs three
//! transitions through an automaton with about three times as many states, and the text has to
//! be folded into a new string first, with an origin index per byte to map matches back. Every
//! character of the original text is folded *and* mapped to a dense alphabet id by one look-up
//! in a 64K-entry table of 16-bit ids over the whole BMP (a character that occurs in no pattern
//! gets id 0 and sends the automaton straight back to the root), then takes one transition of a
//! double-array trie (`base[s] + id`, verified by `check`; from the root, one read of a dense
//! table), so a Chinese character costs one mostly-cached look-up and one automaton step, with
//! no folded copy of the text and nothing allocated. The steps record nothing else: a hit (rare
//! next to a step) walks back over the original text, once per position, to map its patterns'
//! starts back to original character and byte offsets.
//!
//! Semantics are those of matching the folded patterns against the folded text with every
//! overlapping occurrence reported, exactly what the previous byte automaton did.

use std::collections::HashMap;
use std::fmt;

use super::normalize::fold;

/// Alphabet id of a character that folds to nothing: skipped, the automaton does not move.
const SEPARATOR: u32 = u32::MAX;
/// Alphabet id of a folded character that occurs in no pattern: back to the root.
const UNKNOWN: u32 = 0;
/// An unused double-array slot, and "no state" in links.
const NONE: u32 = u32::MAX;
/// The root's own `check` (never the parent of anything).
const ROOT_CHECK: u32 = u32::MAX - 1;
const ROOT: usize = 0;
/// Entries of the dense table over the Basic Multilingual Plane: an alphabet id below
/// `BMP_SEPARATOR`, or one of these two markers.
const BMP_SEPARATOR: u16 = u16::MAX;
/// The character's id does not fit 16 bits (an alphabet of more than 65,533 characters): look it
/// up in the map. Ids are given by frequency, so only the rarest characters get there.
const BMP_LARGE: u16 = u16::MAX - 1;

/// The hot half of a double-array slot: what one step of the automaton reads.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Children of this state are at `base & BASE_MASK` + id; the three high bits are flags.
    base: u32,
    /// The parent state of the state stored in this slot, `NONE` when the slot is free.
    check: u32,
}

/// The cold half: read on a failed transition out of a deep state and on a match.
#[derive(Debug, Clone, Copy)]
struct Links {
    /// Failure link: the longest proper suffix of this state that is also a state.
    fail: u32,
    /// The nearest state on the suffix chain (this one included) that ends a pattern.
    out: u32,
}

/// Flag in `Slot::base`: `Links::out` is not `NONE` (a pattern ends here or at a suffix).
const HAS_OUT: u32 = 1 << 31;
/// Flag in `Slot::base`: the failure link is the root (true of every depth-1 state).
const FAILS_TO_ROOT: u32 = 1 << 30;
/// Flag in `Slot::base`: a pattern ends at this very state (`Links::out` is the state itself).
const ENDS_HERE: u32 = 1 << 29;
const BASE_MASK: u32 = ENDS_HERE - 1;

/// `CharMatcher::ends` entry: pattern id << `END_PATTERN_SHIFT` | `END_MORE` when a shorter
/// pattern ends at the same place too | the pattern's length in folded characters, or
/// `END_LONG` for 255 and more (then in `pattern_chars`).
const END_PATTERN_SHIFT: u32 = 9;
const END_MORE: u32 = 1 << 8;
const END_LONG: u32 = 0xFF;
/// Pattern ids must fit the `ends` entries.
const MAX_PATTERNS: usize = 1 << (32 - END_PATTERN_SHIFT);
/// Patterns up to this many folded characters find their starts by walking back over the text
/// from the hit; longer ones through [`Origins`], so a text full of long hits is not walked
/// again for each of them.
const SHORT_WALK: usize = 32;

/// One occurrence, in original-text offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub pattern: usize,
    pub start_char: usize,
    pub end_char: usize,
    pub start_byte: usize,
    pub end_byte: usize,
    /// This hit stands for the whole chain of patterns ending here (`pattern` is its longest;
    /// the start is that of its summary length, see [`CharMatcher::set_summary_lengths`]).
    pub summary: bool,
}

#[derive(Clone)]
pub(crate) struct CharMatcher {
    /// Alphabet id of every code point of the BMP after folding (`BMP_SEPARATOR`, `BMP_LARGE`):
    /// 128 KiB, one look-up folds and classifies a character.
    bmp: Box<[u16]>,
    /// Folded character → alphabet id, for characters outside the BMP and `BMP_LARGE` ones.
    alphabet: HashMap<char, u32>,
    /// The root's transition for every alphabet id (the root itself when there is none).
    root_next: Box<[u32]>,
    /// Double array; padded so that `base + id` is always in bounds.
    slots: Vec<Slot>,
    links: Vec<Links>,
    /// What a hit needs about each slot whose state ends a pattern, in one read (see
    /// `END_PATTERN_SHIFT`); `NONE` elsewhere.
    ends: Vec<u32>,
    /// Length of each pattern in folded characters.
    pattern_chars: Vec<u32>,
    /// The size of an [`Origins`] ring: a power of two, at least the longest pattern.
    ring_size: usize,
    /// Per pattern, the length (folded characters) whose start a summary hit of the chain the
    /// pattern begins carries; 0: the hit's start is its end. Empty: no summaries.
    summary_len: Vec<u32>,
}

/// The origins (character and byte index) of the last folded characters before the latest hit
/// of a long pattern, in a ring filled forward from one such hit to the next: over one scan
/// each character is walked once more at most, however many long patterns end at each place.
#[derive(Default)]
struct Origins {
    /// Empty until the scan's first long hit.
    ring: Vec<(usize, usize)>,
    /// Where the next folded character's origin goes.
    head: usize,
    /// How many of the ring's entries, counting back from `head`, are filled.
    filled: usize,
    /// The text is accounted for up to here.
    end_char: usize,
    end_byte: usize,
}

impl fmt::Debug for CharMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CharMatcher")
            .field("patterns", &self.pattern_chars.len())
            .field("alphabet", &self.alphabet.len())
            .field("slots", &self.slots.len())
            .field("memory_bytes", &self.memory_usage())
            .finish()
    }
}

/// A trie node while building (children as a sibling list, in ascending id order).
struct TrieNode {
    first_child: u32,
    last_child: u32,
    next_sibling: u32,
    label: u32,
    pattern: u32,
}

impl CharMatcher {
    /// Builds the automaton for distinct, non-empty, already folded patterns.
    pub(crate) fn new(patterns: &[String]) -> Result<Self, String> {
        if patterns.len() >= MAX_PATTERNS {
            return Err(format!(
                "the word lists are too large: more than {} distinct words",
                MAX_PATTERNS - 1
            ));
        }
        // Alphabet: the folded characters of the patterns, most frequent first (small ids pack
        // the double array better).
        let mut counts: HashMap<char, u32> = HashMap::new();
        for pattern in patterns {
            for c in pattern.chars() {
                *counts.entry(c).or_insert(0) += 1;
            }
        }
        let mut by_count: Vec<(char, u32)> = counts.into_iter().collect();
        by_count.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let alphabet: HashMap<char, u32> = by_count
            .iter()
            .enumerate()
            .map(|(index, &(c, _))| (c, index as u32 + 1))
            .collect();
        let alphabet_len = alphabet.len() + 1;
        let id_of_folded = |c: char| -> u32 {
            match fold(c) {
                None => SEPARATOR,
                Some(folded) => alphabet.get(&folded).copied().unwrap_or(UNKNOWN),
            }
        };
        let bmp: Box<[u16]> = (0..0x1_0000u32)
            .map(
                |code| match char::from_u32(code).map_or(SEPARATOR, id_of_folded) {
                    SEPARATOR => BMP_SEPARATOR,
                    id => u16::try_from(id)
                        .ok()
                        .filter(|&id| id < BMP_LARGE)
                        .unwrap_or(BMP_LARGE),
                },
            )
            .collect();

        // Patterns as id sequences, inserted into a sibling-list trie in sorted order, so the
        // child to follow is always the last one created.
        let encoded: Vec<Vec<u32>> = patterns
            .iter()
            .map(|pattern| pattern.chars().map(|c| alphabet[&c]).collect())
            .collect();
        let mut order: Vec<u32> = (0..encoded.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| encoded[a as usize].cmp(&encoded[b as usize]));
        let mut trie = vec![TrieNode {
            first_child: NONE,
            last_child: NONE,
            next_sibling: NONE,
            label: 0,
            pattern: NONE,
        }];
        for &pattern in &order {
            let mut node = 0usize;
            for &label in &encoded[pattern as usize] {
                let last = trie[node].last_child;
                if last != NONE && trie[last as usize].label == label {
                    node = last as usize;
                    continue;
                }
                let child = trie.len() as u32;
                trie.push(TrieNode {
                    first_child: NONE,
                    last_child: NONE,
                    next_sibling: NONE,
                    label,
                    pattern: NONE,
                });
                if last == NONE {
                    trie[node].first_child = child;
                } else {
                    trie[last as usize].next_sibling = child;
                }
                trie[node].last_child = child;
                node = child as usize;
            }
            trie[node].pattern = pattern;
        }

        // Double-array placement, breadth first (so the shallow, busy states share a few cache
        // lines at the front): each state's children go at `base + id` for the smallest base
        // whose slots are all free.
        let free = Slot {
            base: 0,
            check: NONE,
        };
        let mut slots: Vec<Slot> = Vec::with_capacity(trie.len() + trie.len() / 8 + alphabet_len);
        slots.push(Slot {
            base: 0,
            check: ROOT_CHECK,
        });
        let mut pattern_of = vec![NONE];
        // (trie node, slot) in breadth-first order; the order is reused for failure links.
        let mut queue: Vec<(u32, u32)> = Vec::with_capacity(trie.len());
        queue.push((0, ROOT as u32));
        let mut next_check = 1usize;
        let mut labels: Vec<u32> = Vec::new();
        let mut head = 0;
        while head < queue.len() {
            let (node, slot) = queue[head];
            head += 1;
            let node = &trie[node as usize];
            pattern_of[slot as usize] = node.pattern;
            labels.clear();
            let mut child = node.first_child;
            while child != NONE {
                labels.push(trie[child as usize].label);
                child = trie[child as usize].next_sibling;
            }
            let Some(&first) = labels.first() else {
                continue;
            };
            let first = first as usize;
            // Scan for a base; `next_check` skips the dense prefix of the array.
            let mut position = next_check.max(first + 1) - 1;
            let mut occupied = 0usize;
            let mut first_free = true;
            let base = loop {
                position += 1;
                if slots.get(position).is_some_and(|slot| slot.check != NONE) {
                    occupied += 1;
                    continue;
                }
                if first_free {
                    next_check = position;
                    first_free = false;
                }
                let base = position - first;
                let fits = labels[1..].iter().all(|&label| {
                    slots
                        .get(base + label as usize)
                        .is_none_or(|slot| slot.check == NONE)
                });
                if fits {
                    break base;
                }
            };
            if occupied * 20 >= (position + 1 - next_check) * 19 {
                next_check = position;
            }
            if base > BASE_MASK as usize - alphabet_len {
                return Err(format!(
                    "the word lists are too large: more than {} automaton states",
                    BASE_MASK as usize - alphabet_len
                ));
            }
            // Every `base + id` stays in bounds, whatever the id.
            let end = base + alphabet_len;
            if slots.len() < end {
                slots.resize(end, free);
                pattern_of.resize(end, NONE);
            }
            slots[slot as usize].base = base as u32;
            let mut child = node.first_child;
            while child != NONE {
                let target = base + trie[child as usize].label as usize;
                slots[target].check = slot;
                queue.push((child, target as u32));
                child = trie[child as usize].next_sibling;
            }
        }
        // A state without children keeps base 0; the padding must cover it too.
        if slots.len() < alphabet_len {
            slots.resize(alphabet_len, free);
            pattern_of.resize(alphabet_len, NONE);
        }

        // Failure and output links, breadth first (a suffix is always shallower).
        let mut links = vec![
            Links {
                fail: ROOT as u32,
                out: NONE,
            };
            slots.len()
        ];
        let child = |slots: &[Slot], state: usize, id: u32| -> Option<usize> {
            let target = (slots[state].base & BASE_MASK) as usize + id as usize;
            (slots[target].check as usize == state).then_some(target)
        };
        for &(node, slot) in &queue[1..] {
            let slot = slot as usize;
            let parent = slots[slot].check as usize;
            let label = trie[node as usize].label;
            let fail = if parent == ROOT {
                ROOT
            } else {
                let mut state = links[parent].fail as usize;
                loop {
                    if let Some(next) = child(&slots, state, label) {
                        break next;
                    }
                    if state == ROOT {
                        break ROOT;
                    }
                    state = links[state].fail as usize;
                }
            };
            let out = if pattern_of[slot] != NONE {
                slot as u32
            } else {
                links[fail].out
            };
            links[slot] = Links {
                fail: fail as u32,
                out,
            };
        }
        slots[ROOT].base |= FAILS_TO_ROOT;
        for &(_, slot) in &queue[1..] {
            let slot = slot as usize;
            if links[slot].fail as usize == ROOT {
                slots[slot].base |= FAILS_TO_ROOT;
            }
            if links[slot].out != NONE {
                slots[slot].base |= HAS_OUT;
            }
            if links[slot].out == slot as u32 {
                slots[slot].base |= ENDS_HERE;
            }
        }
        let ends: Vec<u32> = pattern_of
            .iter()
            .enumerate()
            .map(|(slot, &pattern)| {
                if pattern == NONE {
                    return NONE;
                }
                let more = links[links[slot].fail as usize].out != NONE;
                let chars = (encoded[pattern as usize].len() as u32).min(END_LONG);
                pattern << END_PATTERN_SHIFT | if more { END_MORE } else { 0 } | chars
            })
            .collect();
        let root_next: Box<[u32]> = (0..alphabet_len as u32)
            .map(|id| match child(&slots, ROOT, id) {
                Some(next) if id != UNKNOWN => next as u32,
                _ => ROOT as u32,
            })
            .collect();
        slots.shrink_to_fit();
        Ok(Self {
            bmp,
            alphabet,
            root_next,
            slots,
            links,
            ends,
            ring_size: encoded
                .iter()
                .map(Vec::len)
                .max()
                .unwrap_or(0)
                .next_power_of_two(),
            pattern_chars: encoded.iter().map(|ids| ids.len() as u32).collect(),
            summary_len: Vec::new(),
        })
    }

    /// Heap bytes of the automaton and its tables.
    pub(crate) fn memory_usage(&self) -> usize {
        self.bmp.len() * 2
            + self.alphabet.capacity() * (std::mem::size_of::<(char, u32)>() + 1)
            + self.root_next.len() * 4
            + self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.links.capacity() * std::mem::size_of::<Links>()
            + self.ends.capacity() * 4
            + self.pattern_chars.capacity() * 4
            + self.summary_len.capacity() * 4
    }

    /// Calls `visit(chain)` for every pattern with the chain of patterns that end wherever it
    /// does: the pattern itself first, then those that are its endings, longest first.
    pub(crate) fn for_each_chain(&self, mut visit: impl FnMut(&[usize])) {
        let mut chain = Vec::new();
        for (state, &end) in self.ends.iter().enumerate() {
            if end == NONE {
                continue;
            }
            chain.clear();
            let mut out = state as u32;
            while out != NONE {
                chain.push((self.ends[out as usize] >> END_PATTERN_SHIFT) as usize);
                out = self.links[self.links[out as usize].fail as usize].out;
            }
            visit(&chain);
        }
    }

    /// Turns on summary hits: once a caller of [`CharMatcher::find`] answers a hit with
    /// `false`, each later place is reported by one hit for its whole chain, whose start is
    /// `lengths[longest pattern]` folded characters back (0: the end).
    pub(crate) fn set_summary_lengths(&mut self, lengths: Vec<u32>) {
        self.summary_len = lengths;
    }

    /// One step: the state after reading `id` (a real alphabet id) in `state`.
    #[inline(always)]
    fn next(&self, mut state: usize, id: u32) -> usize {
        // The common cases without a data-dependent branch: the transition exists, or it does
        // not and the failure link is the root (then the root's transition is the answer).
        let base = self.slots[state].base;
        let target = (base & BASE_MASK) as usize + id as usize;
        let found = self.slots[target].check as usize == state;
        let from_root = self.root_next[id as usize] as usize;
        if found || base & FAILS_TO_ROOT != 0 {
            return if found { target } else { from_root };
        }
        state = self.links[state].fail as usize;
        loop {
            let base = self.slots[state].base;
            let target = (base & BASE_MASK) as usize + id as usize;
            if self.slots[target].check as usize == state {
                return target;
            }
            if base & FAILS_TO_ROOT != 0 {
                return self.root_next[id as usize] as usize;
            }
            state = self.links[state].fail as usize;
        }
    }

    #[inline(always)]
    fn id(&self, c: char) -> u32 {
        if let Some(&id) = self.bmp.get(c as usize) {
            if id < BMP_LARGE {
                return u32::from(id);
            }
            if id == BMP_SEPARATOR {
                return SEPARATOR;
            }
        }
        self.id_slow(c)
    }

    #[cold]
    #[inline(never)]
    fn id_slow(&self, c: char) -> u32 {
        match fold(c) {
            None => SEPARATOR,
            Some(folded) => self.alphabet.get(&folded).copied().unwrap_or(UNKNOWN),
        }
    }

    /// Calls `on_hit` for every occurrence of every pattern in `text` (folded on the fly),
    /// overlapping ones included, in order of end, longest first at the same end. `on_hit`
    /// answers whether it still wants each one: once it says no (and summary lengths are set),
    /// each later place comes as one summary hit for all the patterns ending there.
    pub(crate) fn find(&self, text: &str, mut on_hit: impl FnMut(Hit) -> bool) {
        let mut origins = Origins::default();
        // Set once `on_hit` answered `false` (with summary lengths set).
        let mut summarize = false;
        let mut state = ROOT;
        for (char_index, (byte_index, c)) in text.char_indices().enumerate() {
            let id = self.id(c);
            // One test for both rare ids (`UNKNOWN` is 0, `SEPARATOR` the largest).
            if id.wrapping_sub(1) >= SEPARATOR - 1 {
                if id == UNKNOWN {
                    state = ROOT;
                }
                continue;
            }
            state = if state == ROOT {
                self.root_next[id as usize] as usize
            } else {
                self.next(state, id)
            };
            if self.slots[state].base & HAS_OUT != 0 {
                self.report(
                    text,
                    state,
                    char_index + 1,
                    byte_index + c.len_utf8(),
                    &mut origins,
                    &mut summarize,
                    &mut on_hit,
                );
            }
        }
    }

    /// Reports the patterns that end at `state`, after the original text's `end_char`th
    /// character (ending at `end_byte`). Their starts are found by walking back over the text,
    /// counting the characters that do not fold to nothing: a hit is rare next to a step, so
    /// the steps keep no record of where each folded character came from. The walk is done once
    /// per position, however many patterns end there (longest first); for patterns longer than
    /// [`SHORT_WALK`] the origins come from `origins`, filled forward from the last long hit.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        text: &str,
        state: usize,
        end_char: usize,
        end_byte: usize,
        origins: &mut Origins,
        summarize: &mut bool,
        on_hit: &mut impl FnMut(Hit) -> bool,
    ) {
        // Most often the state itself ends one pattern: one read of `ends` says so.
        let first = if self.slots[state].base & ENDS_HERE != 0 {
            state as u32
        } else {
            self.links[state].out
        };
        let end = self.ends[first as usize];
        let longest = self.chars(end);
        if *summarize {
            let pattern = (end >> END_PATTERN_SHIFT) as usize;
            let length = self.summary_len[pattern] as usize;
            let start = if length == 0 {
                (end_char, end_byte)
            } else if length > SHORT_WALK {
                self.fill_origins(origins, text, end_char, end_byte, length);
                origins.ring[origins.head.wrapping_sub(length) & (origins.ring.len() - 1)]
            } else {
                let mut start = (end_char, end_byte);
                self.walk_back(text, end_char, end_byte, length, |_, origin| start = origin);
                start
            };
            on_hit(Hit {
                pattern,
                start_char: start.0,
                end_char,
                start_byte: start.1,
                end_byte,
                summary: true,
            });
            return;
        }
        let mut wants_each = true;
        let mut report = |end: u32, start: (usize, usize)| {
            wants_each &= on_hit(Hit {
                pattern: (end >> END_PATTERN_SHIFT) as usize,
                start_char: start.0,
                end_char,
                start_byte: start.1,
                end_byte,
                summary: false,
            });
        };
        // Each pattern of the chain at `first` (suffixes of one another, longest first) with
        // the origin of its first folded character, given by `origin(length)`.
        let chain = |origin: &dyn Fn(usize) -> (usize, usize),
                     report: &mut dyn FnMut(u32, (usize, usize))| {
            let mut out = first;
            while out != NONE {
                let end = self.ends[out as usize];
                report(end, origin(self.chars(end)));
                out = self.links[self.links[out as usize].fail as usize].out;
            }
        };
        if longest > SHORT_WALK {
            self.fill_origins(origins, text, end_char, end_byte, longest);
            let mask = origins.ring.len() - 1;
            let ring = &origins.ring;
            let head = origins.head;
            chain(
                &|length| ring[head.wrapping_sub(length) & mask],
                &mut report,
            );
        } else if end & END_MORE == 0 {
            let mut start = (end_char, end_byte);
            self.walk_back(text, end_char, end_byte, longest, |_, origin| {
                start = origin
            });
            report(end, start);
        } else {
            // Several short patterns: the origin of each of the last `longest` folded
            // characters, the last one first.
            let mut small = [(0usize, 0usize); SHORT_WALK];
            self.walk_back(text, end_char, end_byte, longest, |folded, origin| {
                small[folded - 1] = origin;
            });
            chain(&|length| small[length - 1], &mut report);
        }
        if !wants_each && !self.summary_len.is_empty() {
            *summarize = true;
        }
    }

    /// Brings `origins` up to `end_byte` with at least the last `count` folded characters:
    /// forward from where it was left when that is enough, else by a walk back from the end.
    fn fill_origins(
        &self,
        origins: &mut Origins,
        text: &str,
        end_char: usize,
        end_byte: usize,
        count: usize,
    ) {
        if origins.ring.is_empty() {
            origins.ring = vec![(0, 0); self.ring_size];
        }
        let mask = origins.ring.len() - 1;
        if origins.filled > 0 {
            let from_byte = origins.end_byte;
            let chars = text[from_byte..end_byte].char_indices();
            for (char_index, (offset, c)) in (origins.end_char..).zip(chars) {
                if self.id(c) != SEPARATOR {
                    origins.ring[origins.head] = (char_index, from_byte + offset);
                    origins.head = (origins.head + 1) & mask;
                    origins.filled = (origins.filled + 1).min(origins.ring.len());
                }
            }
            origins.end_char = end_char;
            origins.end_byte = end_byte;
            if origins.filled >= count {
                return;
            }
        }
        let (ring, head) = (&mut origins.ring, origins.head);
        let mut filled = 0;
        self.walk_back(text, end_char, end_byte, count, |folded, origin| {
            ring[head.wrapping_sub(folded) & mask] = origin;
            filled = folded;
        });
        origins.filled = filled;
        origins.end_char = end_char;
        origins.end_byte = end_byte;
    }

    /// The length in folded characters of the pattern of an `ends` entry.
    #[inline]
    fn chars(&self, end: u32) -> usize {
        match end & END_LONG {
            END_LONG => self.pattern_chars[(end >> END_PATTERN_SHIFT) as usize] as usize,
            chars => chars as usize,
        }
    }

    /// Walks back from `end_byte` over the last `count` characters that do not fold to nothing,
    /// calling `visit(n, (char index, byte index))` for the nth of them.
    #[inline]
    fn walk_back(
        &self,
        text: &str,
        end_char: usize,
        end_byte: usize,
        count: usize,
        mut visit: impl FnMut(usize, (usize, usize)),
    ) {
        let mut folded = 0;
        for (walked, (byte_index, c)) in text[..end_byte].char_indices().rev().enumerate() {
            if self.id(c) != SEPARATOR {
                folded += 1;
                visit(folded, (end_char - walked - 1, byte_index));
                if folded == count {
                    return;
                }
            }
        }
    }
}
