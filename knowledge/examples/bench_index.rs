//! Speed at 100,000 FAQs: import (parse JSONL + index), index size on disk, search latency.
//!
//! The FAQs are generated with a fixed seed, so every run indexes the same data: half Chinese,
//! half English, words drawn from a Zipf distribution over 4,000 words per language (the shop
//! words below, then made-up words), as in real text. Queries are 2 to 6 words drawn the same way.
//! `--tiny-vocab` draws uniformly from the shop words only: every query term then matches about a
//! third of the index, a worst case.
//!
//! `--compare` also measures the same index searched without the common-term gate;
//! `--profile` breaks the slowest 1% of searches down (clauses, doc counts, time per phase);
//! `--writer-mb N` sets the writer's memory budget (default 256; the gateway uses the crate's 32);
//! `--k N` searches for N hits instead of 5 (the bot's rerank pool is 20 or more);
//! `--write-jsonl PATH` writes the FAQs to PATH and 3,000 queries to PATH.queries, then stops.
//!
//! `cargo run --release -p switchboard-knowledge --example bench_index [-- COUNT] [--tiny-vocab]
//! [--compare] [--profile] [--writer-mb N] [--k N] [--write-jsonl PATH]`

use std::time::{Duration, Instant};

use switchboard_knowledge::{
    parse_import, write_jsonl, FaqRecord, ImportFormat, KnowledgeIndex, SearchTuning, Synonyms,
};

const ZH: &[&str] = &[
    "订单",
    "发货",
    "快递",
    "物流",
    "退货",
    "退款",
    "换货",
    "发票",
    "优惠券",
    "积分",
    "会员",
    "支付",
    "微信",
    "支付宝",
    "银行卡",
    "分期",
    "地址",
    "修改",
    "取消",
    "账号",
    "密码",
    "手机号",
    "注册",
    "登录",
    "客服",
    "人工",
    "保修",
    "维修",
    "价格",
    "降价",
    "库存",
    "补货",
    "包裹",
    "运费",
    "包邮",
    "签收",
    "破损",
    "缺件",
    "售后",
    "审核",
    "到账",
    "时间",
    "工作日",
    "申请",
    "流程",
    "查询",
    "进度",
    "衣服",
    "鞋子",
    "尺码",
    "颜色",
    "手机",
    "耳机",
    "电脑",
    "家电",
    "生鲜",
    "海外",
    "偏远",
    "地区",
    "门店",
    "自提",
    "预售",
    "定金",
    "尾款",
    "赠品",
    "礼品卡",
    "余额",
    "提现",
    "实名",
    "认证",
];
const EN: &[&str] = &[
    "order",
    "ship",
    "delivery",
    "parcel",
    "return",
    "refund",
    "exchange",
    "invoice",
    "coupon",
    "points",
    "member",
    "payment",
    "card",
    "installment",
    "address",
    "change",
    "cancel",
    "account",
    "password",
    "phone",
    "register",
    "login",
    "agent",
    "warranty",
    "repair",
    "price",
    "discount",
    "stock",
    "restock",
    "fee",
    "free",
    "damaged",
    "missing",
    "review",
    "days",
    "apply",
    "status",
    "size",
    "color",
    "laptop",
    "headphones",
    "gift",
    "balance",
    "verify",
    "store",
    "pickup",
    "preorder",
    "deposit",
    "international",
    "tracking",
    "receipt",
    "subscription",
];

const SYLLABLES_ZH: &str = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处理府研";
const SYLLABLES_EN: &[&str] = &[
    "ka", "lo", "mi", "ter", "son", "da", "ri", "ven", "pa", "el", "to", "sha", "mor", "ni", "gu",
    "bel",
];

/// The shop words first, then made-up words, `size` in all.
fn vocabulary(chinese: bool, size: usize) -> Vec<String> {
    let mut words: Vec<String> = if chinese { ZH } else { EN }
        .iter()
        .map(|w| w.to_string())
        .collect();
    let zh: Vec<char> = SYLLABLES_ZH.chars().collect();
    let mut n = 0usize;
    while words.len() < size {
        let word = if chinese {
            format!(
                "{}{}",
                zh[n % zh.len()],
                zh[(n / zh.len() * 7 + n) % zh.len()]
            )
        } else {
            let s = SYLLABLES_EN;
            format!(
                "{}{}{}",
                s[n % s.len()],
                s[(n / s.len()) % s.len()],
                s[(n / (s.len() * s.len())) % s.len()]
            )
        };
        if !words.contains(&word) {
            words.push(word);
        }
        n += 1;
    }
    words
}

struct Vocab {
    words: Vec<String>,
    /// Cumulative Zipf weights (rank r has weight 1/r); empty for a uniform draw.
    cumulative: Vec<f64>,
}

impl Vocab {
    fn new(chinese: bool, tiny: bool) -> Vocab {
        if tiny {
            let words = vocabulary(chinese, 0);
            return Vocab {
                words,
                cumulative: Vec::new(),
            };
        }
        let words = vocabulary(chinese, 4_000);
        let mut total = 0.0;
        let cumulative = (1..=words.len())
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect();
        Vocab { words, cumulative }
    }

    fn draw(&self, rng: &mut Rng) -> &str {
        let at = match self.cumulative.last() {
            None => rng.below(self.words.len()),
            Some(total) => {
                let x = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
                self.cumulative
                    .partition_point(|&c| c < x)
                    .min(self.words.len() - 1)
            }
        };
        &self.words[at]
    }
}

/// xorshift64*: a tiny deterministic generator, enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `min` to `min + spread - 1` words.
    fn words(&mut self, min: usize, spread: usize, vocab: &Vocab, chinese: bool) -> String {
        let count = min + self.below(spread);
        let words: Vec<&str> = (0..count).map(|_| vocab.draw(self)).collect();
        words.join(if chinese { "" } else { " " })
    }
}

/// The 3,000 search queries: 2 to 6 words, alternately Chinese and English.
fn queries(vocabs: &[Vocab; 2]) -> Vec<String> {
    let mut rng = Rng(42);
    (0..3_000)
        .map(|n| rng.words(2, 5, &vocabs[n % 2], n % 2 == 0))
        .collect()
}

fn generate(count: usize, vocabs: &[Vocab; 2]) -> Vec<FaqRecord> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..count)
        .map(|n| {
            let chinese = n % 2 == 0;
            let vocab = &vocabs[n % 2];
            let question = format!("{} {}", rng.words(4, 5, vocab, chinese), n);
            let answer = rng.words(15, 20, vocab, chinese);
            let mut record = FaqRecord::new(question, answer);
            record.id = format!("b{n}");
            record.alternates = (0..2).map(|_| rng.words(3, 4, vocab, chinese)).collect();
            record
        })
        .collect()
}

fn dir_size(path: &std::path::Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// Cumulative on-CPU time of the calling thread (Linux `/proc/thread-self/schedstat`), so latency can be
/// read apart from waiting for a core on a shared machine. `None` elsewhere.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(
        text.split_whitespace().next()?.parse().ok()?,
    ))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// 200 warm-up searches, then every query once, timed; prints mean CPU and wall time per search
/// and the latency percentiles.
fn measure(
    index: &KnowledgeIndex,
    queries: &[String],
    k: usize,
    label: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let none = Synonyms::none();
    for query in queries.iter().take(200) {
        index.search("bench", query, k, &none)?;
    }
    let mut times = Vec::with_capacity(queries.len());
    let mut returned = 0;
    let cpu_started = thread_cpu();
    let loop_started = Instant::now();
    for query in queries {
        let started = Instant::now();
        returned += index.search("bench", query, k, &none)?.len();
        times.push(started.elapsed());
    }
    let wall = loop_started.elapsed();
    times.sort();
    if let (Some(before), Some(after)) = (cpu_started, thread_cpu()) {
        // schedstat is updated at scheduler ticks: only the mean over many queries is meaningful.
        let n = queries.len() as u32;
        println!(
            "search k={k} mean{label}: {:.3?} on cpu, {:.3?} wall (the rest is waiting for a core)",
            after.saturating_sub(before) / n,
            wall / n
        );
    }
    println!(
        "search k={k} over {} queries{label}: p50 {:.3?}, p99 {:.3?}, max {:.3?} ({:.1} hits/query)",
        times.len(),
        percentile(&times, 0.50),
        percentile(&times, 0.99),
        percentile(&times, 1.0),
        returned as f64 / times.len() as f64
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tiny = args.iter().any(|a| a == "--tiny-vocab");
    let count: usize = args
        .iter()
        .enumerate()
        .find(|(at, a)| {
            !a.starts_with("--")
                && (*at == 0
                    || !["--writer-mb", "--k", "--write-jsonl"].contains(&args[at - 1].as_str()))
        })
        .map(|(_, a)| a)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    // Index 0 is used for even records (Chinese), 1 for odd ones (English).
    let vocabs = [Vocab::new(true, tiny), Vocab::new(false, tiny)];
    let records = generate(count, &vocabs);
    let mut jsonl = Vec::new();
    write_jsonl(&mut jsonl, &records)?;
    println!(
        "generated {count} faqs ({:.1} MB of jsonl)",
        jsonl.len() as f64 / 1e6
    );
    // `--write-jsonl PATH`: the generated FAQs for an import through the API
    // (scripts/bench-kb-api.sh), and nothing else.
    if let Some(at) = args.iter().position(|a| a == "--write-jsonl") {
        let path = args.get(at + 1).ok_or("--write-jsonl needs a path")?;
        std::fs::write(path, &jsonl)?;
        std::fs::write(format!("{path}.queries"), queries(&vocabs).join("\n"))?;
        return Ok(());
    }

    let dir = tempfile::tempdir()?;
    let writer_mb: usize = match args.iter().position(|a| a == "--writer-mb") {
        Some(at) => args
            .get(at + 1)
            .ok_or("--writer-mb needs a number")?
            .parse()?,
        None => 256,
    };
    let index = KnowledgeIndex::open(dir.path())?.with_writer_memory(writer_mb * 1024 * 1024);
    let started = Instant::now();
    let parsed = parse_import(&jsonl, Some(ImportFormat::Jsonl))?;
    let parse_time = started.elapsed();
    let imported: Vec<FaqRecord> = parsed.records.into_iter().map(|r| r.record).collect();
    index.rebuild("bench", &imported, 1)?;
    let import_time = started.elapsed();
    println!(
        "import: {import_time:.2?} total ({parse_time:.2?} parsing, {:.2?} indexing), {:.0} faqs/s, {} errors",
        import_time - parse_time,
        count as f64 / import_time.as_secs_f64(),
        parsed.errors.len()
    );
    println!(
        "index size: {:.1} MB on disk",
        dir_size(&dir.path().join("bench"))? as f64 / 1e6
    );

    // Let background merges of the fresh segments finish before measuring.
    std::thread::sleep(Duration::from_secs(5));
    let queries = queries(&vocabs);
    let none = Synonyms::none();
    let k: usize = match args.iter().position(|a| a == "--k") {
        Some(at) => args.get(at + 1).ok_or("--k needs a number")?.parse()?,
        None => 5,
    };
    measure(&index, &queries, k, "")?;
    if args.iter().any(|a| a == "--compare") {
        // The same index searched without the common-term gate, in the same process.
        let ungated = KnowledgeIndex::open(dir.path())?.with_tuning(SearchTuning {
            common_fraction: 1.0,
            ..SearchTuning::default()
        });
        measure(&ungated, &queries, k, " (no common-term gate)")?;
        measure(&index, &queries, k, " (again, with the gate)")?;
        // How far the gate moves the results from the ungated ranking.
        let (mut same_top, mut overlap) = (0, 0);
        for query in &queries {
            let gated: Vec<String> = index
                .search("bench", query, k, &none)?
                .into_iter()
                .map(|c| c.id)
                .collect();
            let full: Vec<String> = ungated
                .search("bench", query, k, &none)?
                .into_iter()
                .map(|c| c.id)
                .collect();
            same_top += usize::from(gated.first() == full.first());
            overlap += gated.iter().filter(|id| full.contains(id)).count();
        }
        println!(
            "gate vs no gate: same top hit for {:.1}% of queries, {:.1}% of the top {k} shared",
            same_top as f64 * 100.0 / queries.len() as f64,
            overlap as f64 * 100.0 / (k * queries.len()) as f64
        );
    }

    if args.iter().any(|a| a == "--profile") {
        profile(&index, &queries)?;
    }

    let started = Instant::now();
    let mut one = imported[7].clone();
    one.answer = "updated answer".into();
    index.upsert("bench", &[one], 2)?;
    let visible = index
        .search("bench", &imported[7].question, 1, &none)?
        .first()
        .map(|c| c.answer.clone());
    println!(
        "single upsert to searchable: {:.2?} (visible: {})",
        started.elapsed(),
        visible.as_deref() == Some("updated answer")
    );
    Ok(())
}

/// `--profile`: every query through the profiling entry point (fastest of 3 runs); prints where the time of
/// the slowest 1% went against the rest, and the slowest queries' clauses with their doc counts.
fn profile(index: &KnowledgeIndex, queries: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let none = Synonyms::none();
    let mut rows = Vec::with_capacity(queries.len());
    for query in queries {
        // The fastest of three runs: on a shared machine a single run may include waiting for a
        // core, which says nothing about the query.
        let mut best: Option<(Duration, switchboard_knowledge::SearchProfile)> = None;
        for _ in 0..3 {
            let p = index.profile_search("bench", query, 5, &none)?;
            let total = p.analysis + p.scoring + p.fetching;
            if best.as_ref().is_none_or(|b| total < b.0) {
                best = Some((total, p));
            }
        }
        if let Some((total, p)) = best {
            rows.push((total, query, p));
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let first = &rows[0].2;
    let fastest: Vec<Duration> = rows.iter().rev().map(|r| r.0).collect();
    println!(
        "profile: {} segments, {} docs; fastest of 3 runs: p50 {:.3?}, p99 {:.3?}, max {:.3?}",
        first.segments,
        first.num_docs,
        percentile(&fastest, 0.5),
        percentile(&fastest, 0.99),
        percentile(&fastest, 1.0)
    );
    let slow = rows.len() / 100;
    for (name, part) in [("slowest 1%", &rows[..slow]), ("other 99%", &rows[slow..])] {
        let n = part.len() as u32;
        let sum = |f: &dyn Fn(&switchboard_knowledge::SearchProfile) -> Duration| {
            part.iter().map(|r| f(&r.2)).sum::<Duration>() / n
        };
        let clauses: usize = part.iter().map(|r| r.2.terms.len()).sum();
        let postings: u64 = part
            .iter()
            .map(|r| r.2.terms.iter().map(|t| t.3).sum::<u64>())
            .sum();
        let chinese = part
            .iter()
            .filter(|r| r.1.chars().any(|c| c as u32 >= 0x4e00))
            .count();
        println!(
            "{name}: n={n} analysis {:.1?} scoring {:.1?} fetch {:.1?}; {:.1} clauses, {:.0} postings/query, {chinese} chinese",
            sum(&|p| p.analysis),
            sum(&|p| p.scoring),
            sum(&|p| p.fetching),
            clauses as f64 / n as f64,
            postings as f64 / n as f64,
        );
        let mut by_field: std::collections::BTreeMap<String, (usize, u64)> = Default::default();
        for r in part {
            for t in &r.2.terms {
                let e = by_field.entry(t.0.clone()).or_default();
                e.0 += 1;
                e.1 += t.3;
            }
        }
        for (field, (count, docs)) in by_field {
            println!(
                "    {field:10} {:.1} clauses/query, {:.0} postings/query",
                count as f64 / n as f64,
                docs as f64 / n as f64
            );
        }
    }
    for (total, query, p) in rows.iter().take(12) {
        let terms: Vec<String> = p
            .terms
            .iter()
            .map(|t| {
                format!(
                    "{}:{}={}{}",
                    &t.0[..2],
                    t.1,
                    t.3,
                    if t.4 { "*" } else { "" }
                )
            })
            .collect();
        println!(
            "{total:.2?} (analysis {:.0?}, scoring {:.2?}, fetch {:.0?}) {query:?}: {} (* common)",
            p.analysis,
            p.scoring,
            p.fetching,
            terms.join(" ")
        );
    }
    Ok(())
}
