//! Sensitive words at scale: build time, memory and matching throughput on Chinese text with the
//! 65,143-word list from `shared/eval/sensitive_words_zh_65k.txt`.
//!
//! `cargo run --release -p switchboard-policies --example bench_sensitive -- [WORDS_FILE] [CORPUS_OUT]`
//!
//! The corpus (deterministic, about 16 MB) is written to CORPUS_OUT so `bench-sensitive.sh` can
//! run the Python ahocorasick-rs reference on the very same bytes.
//!
//! Every throughput is given twice: over wall-clock time, and over the time the thread was
//! actually on a CPU (`/proc/thread-self/schedstat`), which a shared, loaded machine disturbs
//! much less. `BENCH_DFA=1` adds the aho-corasick DFA row (about half a GiB of memory).

use std::time::{Duration, Instant};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use switchboard_policies::sensitive::normalize::fold_word;
use switchboard_policies::sensitive::{
    Action, SensitiveWords, WordList, MAX_ENDING_TOGETHER, MAX_WORD_CHARS,
};

const CORPUS_BYTES: usize = 16 << 20;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Customer-service chat: phrases of orders, delivery, refunds and accounts, numbers, a little
/// English, some traditional characters, and a listed word about every 2 KB.
fn corpus(words: &[String], bytes: usize) -> Vec<String> {
    const PHRASES: &[&str] = &[
        "你好，请问有人在吗",
        "我的订单一直没有发货",
        "快递显示已经签收但是我没有收到",
        "我想申请退款",
        "这个商品有质量问题",
        "能不能帮我查一下物流",
        "订单号是",
        "请问什么时候能到",
        "我要投诉你们的客服",
        "账号登录不上去了",
        "验证码一直收不到",
        "会员积分怎么兑换",
        "优惠券为什么用不了",
        "发票怎么开",
        "地址填错了可以修改吗",
        "麻烦尽快处理一下",
        "好的谢谢",
        "已经等了三天了",
        "客服电话打不通",
        "商品和图片描述不一致",
        "尺码偏小想换大一号",
        "退货运费谁来承担",
        "我是老客户了",
        "价格比昨天贵了",
        "支付成功了但是订单显示未付款",
        "银行卡扣款两次",
        "请帮我转人工",
        "这个活动什么时候结束",
        "您好，很高兴为您服务",
        "请提供一下您的订单号",
        "我们已经为您加急处理",
        "预计明天下午送达",
        "非常抱歉给您带来不便",
        "退款会在三个工作日内原路退回",
        "请问还有其他可以帮您的吗",
        "請問訂單甚麼時候發貨",
        "這個產品的質量怎麼樣",
        "我們會盡快為您處理",
        "謝謝您的耐心等待",
        "the package has not arrived yet",
        "order status still pending",
        "thanks for your help",
    ];
    const PUNCTUATION: &[&str] = &["，", "。", "？", "！", "…", " ", "～", "；"];
    let mut rng = Rng(0x5EED_CAFE_F00D_1234);
    let mut messages = Vec::new();
    let mut total = 0;
    let mut until_word = 2048usize;
    while total < bytes {
        let mut message = String::new();
        let target = 40 + rng.below(200);
        while message.len() < target {
            message.push_str(PHRASES[rng.below(PHRASES.len())]);
            if rng.below(6) == 0 {
                message.push_str(&format!("{}", 100_000 + rng.below(900_000)));
            }
            message.push_str(PUNCTUATION[rng.below(PUNCTUATION.len())]);
        }
        if message.len() >= until_word {
            message.push_str(&words[rng.below(words.len())]);
            until_word = 2048;
        } else {
            until_word -= message.len();
        }
        total += message.len();
        messages.push(message);
    }
    messages
}

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| {
                    line.split_whitespace()
                        .nth(1)
                        .and_then(|kb| kb.parse::<usize>().ok())
                        .map(|kb| kb * 1024)
                })
        })
        .unwrap_or(0)
}

fn mb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

/// Nanoseconds this thread has spent on a CPU (Linux); 0 elsewhere. The kernel brings a running
/// thread's figure up to date only at a scheduler event, so yield first.
fn on_cpu_ns() -> u64 {
    std::thread::yield_now();
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|stat| stat.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Runs `work` once; returns its result, the wall-clock time and the on-CPU time.
fn timed<T>(work: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let cpu = on_cpu_ns();
    let started = Instant::now();
    let result = work();
    let wall = started.elapsed();
    let cpu = Duration::from_nanos(on_cpu_ns().saturating_sub(cpu));
    (result, wall, cpu)
}

/// "W MB/s wall, C MB/s on-CPU".
/// `runs` rows of `work` over every message: rates, time a message and matches found.
fn per_message_rows(
    runs: usize,
    label: &str,
    messages: &[String],
    work: impl Fn(&String) -> usize,
) {
    let bytes: usize = messages.iter().map(String::len).sum();
    for _ in 0..runs {
        let (matches, wall, cpu) = timed(|| messages.iter().map(&work).sum::<usize>());
        println!(
            "{label}: {}, {:.2} µs a message, {matches} matches",
            rates(bytes, wall, cpu),
            wall.as_secs_f64() * 1e6 / messages.len().max(1) as f64,
        );
    }
}

fn rates(bytes: usize, wall: Duration, cpu: Duration) -> String {
    format!(
        "{:>7.1} MB/s wall, {:>7.1} MB/s on-CPU",
        mb_per_s(bytes, wall),
        mb_per_s(bytes, cpu)
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let words_path = args.next().unwrap_or_else(|| {
        format!(
            "{}/../../shared/eval/sensitive_words_zh_65k.txt",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let corpus_out = args.next();
    let text = std::fs::read_to_string(&words_path)
        .unwrap_or_else(|error| panic!("{words_path}: {error}"));

    let rss_before = rss_bytes();
    let started = Instant::now();
    let list = WordList::from_plain_text("zh65k", Action::Mask, &text).expect("list");
    let parse_time = started.elapsed();
    let engine = SensitiveWords::build(std::slice::from_ref(&list)).expect("build");
    let stats = engine.stats();
    let rss_after = rss_bytes();
    println!(
        "words: {} in the list, {} folded patterns, {} ignored",
        list.words().len(),
        stats.patterns,
        stats.ignored_words
    );
    println!(
        "build: parse {:.0} ms, fold + automaton {:.0} ms; automaton + tables {:.1} MiB; process RSS +{:.1} MiB (list text included)",
        parse_time.as_secs_f64() * 1e3,
        stats.build_time.as_secs_f64() * 1e3,
        stats.memory_bytes as f64 / (1 << 20) as f64,
        rss_after.saturating_sub(rss_before) as f64 / (1 << 20) as f64,
    );

    let corpus_bytes = std::env::var("BENCH_CORPUS_MB")
        .ok()
        .and_then(|value| value.parse::<usize>().ok())
        .map_or(CORPUS_BYTES, |mb| mb << 20);
    let messages = corpus(list.words(), corpus_bytes);
    let total_bytes: usize = messages.iter().map(String::len).sum();
    let whole = messages.join("\n");
    if let Some(path) = &corpus_out {
        std::fs::write(path, &whole).expect("write corpus");
    }
    let chars: usize = whole.chars().count();
    println!(
        "corpus: {} messages, {:.1} MB, {} chars (avg {} bytes a message)",
        messages.len(),
        total_bytes as f64 / 1e6,
        chars,
        total_bytes / messages.len()
    );

    // 1. The engine as the gateway's chat path uses it (`screened` in gateway/engine's chat
    //    module): one `scan` per chat message (fold + overlapping match, words and list names
    //    borrowed), and the masked text only when the verdict's action is `mask` (a `block` is
    //    refused, `flag`/`handoff`/`allow` store the text as it is).
    per_message_rows(
        3,
        "check per message, chat path (scan + mask when it masks)",
        &messages,
        |message| {
            let scan = engine.scan(message);
            if scan.action == Action::Mask {
                std::hint::black_box(scan.masked().into_owned());
            }
            scan.matches().len()
        },
    );

    // 1a. The owned, serializable verdict (the dry-run API, `check`): two strings per match and
    //     the masked copy always.
    per_message_rows(
        2,
        "owned verdict per message (check, the dry-run API)",
        &messages,
        |message| engine.check(message).matches.len(),
    );

    // 1b. The matching alone (fold + automaton + offsets, no verdict): what the engine costs
    //     before it allocates the two strings per match and the masked copy the API returns.
    per_message_rows(
        2,
        "match only per message (no verdict)    ",
        &messages,
        |message| engine.count_matches(message),
    );

    // 2. Messages that match nothing, through the chat path's `scan` (nothing allocated).
    let clean: Vec<&String> = messages
        .iter()
        .filter(|message| engine.scan(message).matches().is_empty())
        .collect();
    let clean_bytes: usize = clean.iter().map(|message| message.len()).sum();
    const CLEAN_ROUNDS: usize = 4;
    for _ in 0..2 {
        let (matches, wall, cpu) = timed(|| {
            (0..CLEAN_ROUNDS)
                .flat_map(|_| clean.iter())
                .map(|message| engine.scan(message).matches().len())
                .sum::<usize>()
        });
        assert_eq!(matches, 0);
        println!(
            "scan per message, no match ({} messages x {CLEAN_ROUNDS}): {}, {:.2} µs a message",
            clean.len(),
            rates(clean_bytes * CLEAN_ROUNDS, wall, cpu),
            wall.as_secs_f64() * 1e6 / (clean.len() * CLEAN_ROUNDS).max(1) as f64
        );
    }

    // 3. One check over the whole corpus at once (the first 256 matches kept, the rest counted).
    let (verdict, wall, cpu) = timed(|| engine.check(&whole));
    println!(
        "check whole corpus in one call:           {}, {} matches",
        rates(whole.len(), wall, cpu),
        verdict.matches.len()
    );
    drop(verdict);

    // 4. The parts: folding alone, and a plain automaton on the raw words and raw text
    //    (non-overlapping, no folding: what the Python reference does).
    let (folded, wall, cpu) = timed(|| fold_word(&whole));
    println!(
        "fold only (into a new string):            {}",
        rates(whole.len(), wall, cpu)
    );
    std::hint::black_box(folded);

    let started = Instant::now();
    let raw = AhoCorasick::new(list.words()).expect("raw automaton");
    let raw_build = started.elapsed();
    let (raw_matches, wall, cpu) = timed(|| raw.find_iter(&whole).count());
    println!(
        "raw aho-corasick (no folding, non-overlapping, like the python reference): {}, {} matches, build {:.0} ms, {:.1} MiB",
        rates(whole.len(), wall, cpu),
        raw_matches,
        raw_build.as_secs_f64() * 1e3,
        raw.memory_usage() as f64 / (1 << 20) as f64
    );

    // The worst a tenant's own list can make of one message: as many words ending together as
    // a list may have (each longer than a short walk back), against 64 KiB of their letter.
    let nested: Vec<String> = (MAX_WORD_CHARS + 1 - MAX_ENDING_TOGETHER..=MAX_WORD_CHARS)
        .map(|n| "a".repeat(n))
        .collect();
    let hostile = SensitiveWords::build(&[
        WordList::new("nested", Action::Mask, nested).expect("nested list")
    ])
    .expect("a list at the limit builds");
    let text = "a".repeat(64 * 1024);
    for _ in 0..3 {
        let (dropped, wall, cpu) = timed(|| {
            let scan = hostile.scan(&text);
            std::hint::black_box(scan.masked());
            scan.to_verdict().matches_dropped
        });
        println!(
            "worst case, {MAX_ENDING_TOGETHER} nested words of {} to {MAX_WORD_CHARS} characters against 64 KiB of their letter: {:.1} ms wall, {:.1} ms on-CPU, {dropped} matches past the kept ones",
            MAX_WORD_CHARS + 1 - MAX_ENDING_TOGETHER,
            wall.as_secs_f64() * 1e3,
            cpu.as_secs_f64() * 1e3,
        );
    }

    // 5. The aho-corasick crate's DFA on the folded patterns and folded text (overlapping): the
    //    fastest byte automaton it offers, and what it costs in memory.
    if std::env::var_os("BENCH_DFA").is_some() {
        let mut patterns: Vec<String> = list
            .words()
            .iter()
            .map(|word| fold_word(word))
            .filter(|pattern| !pattern.is_empty())
            .collect();
        patterns.sort_unstable();
        patterns.dedup();
        let folded = fold_word(&whole);
        for kind in [AhoCorasickKind::ContiguousNFA, AhoCorasickKind::DFA] {
            let rss_before = rss_bytes();
            let started = Instant::now();
            let automaton = AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .kind(Some(kind))
                .build(&patterns)
                .expect("automaton");
            let build = started.elapsed();
            let rss_after = rss_bytes();
            let (found, wall, cpu) = timed(|| automaton.find_overlapping_iter(&folded).count());
            println!(
                "aho-corasick {kind:?}, folded, overlapping (match only): {}, {} matches, build {:.0} ms, {:.1} MiB (RSS +{:.1} MiB)",
                rates(folded.len(), wall, cpu),
                found,
                build.as_secs_f64() * 1e3,
                automaton.memory_usage() as f64 / (1 << 20) as f64,
                rss_after.saturating_sub(rss_before) as f64 / (1 << 20) as f64
            );
        }
    }
}
