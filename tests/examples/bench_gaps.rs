//! The knowledge-gap loop measured on public data (BANKING77, `../shared/eval/`): banking
//! questions are outside the demo knowledge base (a shop's FAQs), so for a set of intents their
//! **train** questions are asked live as customers and kept as gaps; the gaps API groups them;
//! each group of at least MIN_GROUP questions becomes a draft FAQ (its representative
//! questions), which is published with an answer naming the group's majority intent (the
//! knowledge manager's edit; which FAQ answers is what is measured, not its words); then the
//! intents' **test** questions are asked (the bot's decision, the dry run's path) and counted as
//! answered right (a FAQ drafted from a group of that intent), wrong (any other FAQ) or abstained.
//! Test questions of intents that were not published show the false answers the new FAQs add.
//!
//! First, the clustering alone on the train questions at several thresholds (groups, purity).
//!
//! `cargo run -p switchboard-tests --example bench_gaps -- [INTENTS] [TRAIN_PER_INTENT] [MIN_GROUP]`
//! (defaults 20 intents, 20 questions each, groups of 3 or more).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use engine::gaps::{cluster, Cluster, JOIN_THRESHOLD};
use engine::limits::Rate;
use serde_json::json;
use switchboard_tests::TestApp;

/// One CSV record of `text,category` (quoted fields may hold commas and doubled quotes).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

fn read_banking(file: &str) -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/eval")
        .join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields = csv_fields(line);
            (fields.len() == 2).then(|| (fields[0].trim().to_owned(), fields[1].trim().to_owned()))
        })
        .filter(|(text, _)| !text.is_empty())
        .collect()
}

/// Purity: the share of questions in their group's majority intent.
fn purity(assigned: &[usize], labels: &[&str]) -> f64 {
    let mut counts: HashMap<usize, HashMap<&str, usize>> = HashMap::new();
    for (group, label) in assigned.iter().zip(labels) {
        *counts.entry(*group).or_default().entry(label).or_default() += 1;
    }
    let majority: usize = counts
        .values()
        .map(|labels| labels.values().copied().max().unwrap_or(0))
        .sum();
    majority as f64 / assigned.len().max(1) as f64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let intents_wanted = args.first().copied().unwrap_or(20);
    let per_intent = args.get(1).copied().unwrap_or(20);
    let min_group = args.get(2).copied().unwrap_or(3) as i64;

    let train = read_banking("banking77_train.csv");
    let test = read_banking("banking77_test.csv");
    let mut all_intents: Vec<String> = train.iter().map(|(_, l)| l.clone()).collect();
    all_intents.sort();
    all_intents.dedup();
    // Every k-th intent in name order: a spread, chosen before looking at any result.
    let step = (all_intents.len() / intents_wanted).max(1);
    let chosen: Vec<String> = all_intents
        .iter()
        .step_by(step)
        .take(intents_wanted)
        .cloned()
        .collect();
    let mut questions: Vec<(String, String)> = Vec::new();
    for intent in &chosen {
        questions.extend(
            train
                .iter()
                .filter(|(_, l)| l == intent)
                .take(per_intent)
                .cloned(),
        );
    }
    println!(
        "BANKING77: {} intents, {} train questions as the unanswered ones (groups of {min_group}+ drafted)",
        chosen.len(),
        questions.len()
    );

    // The clustering alone, at several thresholds.
    let texts: Vec<&str> = questions.iter().map(|(t, _)| t.as_str()).collect();
    let vectors = engine::gaps::embed(&texts).await.expect("embeddings");
    let labels: Vec<&str> = questions.iter().map(|(_, l)| l.as_str()).collect();
    println!("threshold  groups  groups>={min_group}  in them  purity  intents led");
    for threshold in [0.86f32, 0.88, 0.90, 0.91, 0.92, 0.93, 0.94, 0.95] {
        let mut clusters: Vec<Cluster> = Vec::new();
        let assigned = cluster(&mut clusters, &vectors, threshold);
        let mut sizes = vec![0i64; clusters.len()];
        for &g in &assigned {
            sizes[g] += 1;
        }
        let big = sizes.iter().filter(|&&n| n >= min_group).count();
        let covered: i64 = sizes.iter().filter(|&&n| n >= min_group).sum();
        // Intents that are the majority of some group of `min_group` or more.
        let mut members: HashMap<usize, HashMap<&str, usize>> = HashMap::new();
        for (group, label) in assigned.iter().zip(&labels) {
            *members.entry(*group).or_default().entry(label).or_default() += 1;
        }
        let led: std::collections::BTreeSet<&str> = members
            .iter()
            .filter(|(group, _)| sizes[**group] >= min_group)
            .filter_map(|(_, counts)| {
                counts
                    .iter()
                    .max_by_key(|(l, n)| (**n, std::cmp::Reverse(**l)))
                    .map(|(l, _)| *l)
            })
            .collect();
        println!(
            "{threshold:>9.2}  {:>6}  {big:>10}  {:>6.1}%  {:>5.1}%  {:>11}{}",
            clusters.len(),
            covered as f64 * 100.0 / assigned.len() as f64,
            purity(&assigned, &labels) * 100.0,
            led.len(),
            if threshold == JOIN_THRESHOLD {
                "  (default)"
            } else {
                ""
            }
        );
    }

    if std::env::var("BENCH_GAPS_SWEEP_ONLY").is_ok() {
        return;
    }

    // The loop on the real server (one address asks everything: its limits are raised).
    let app = TestApp::spawn_bot_first_with(|settings| {
        settings.limits.sessions = Rate {
            per_second: 10_000,
            burst: 10_000,
        };
        settings.limits.messages = Rate {
            per_second: 10_000,
            burst: 10_000,
        };
    })
    .await;
    let started = Instant::now();
    for (index, (text, _)) in questions.iter().enumerate() {
        let visitor = app.visitor().await;
        let mut customer = app.customer_ws(&visitor).await;
        customer
            .send(json!({"type":"send","client_msg_id":format!("q{index}"),"text":text}))
            .await;
        customer
            .expect("bot reply", |frame| frame["sender"] == "bot")
            .await;
    }
    println!(
        "asked {} questions live in {:.1} s",
        questions.len(),
        started.elapsed().as_secs_f64()
    );
    let store = app.server.state.store.clone();
    // Kept off the turn: wait until the count stops growing.
    let mut last = usize::MAX;
    let gaps_kept = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (status, body) = app.admin_get("/v1/tenants/acme/kb/gaps?limit=200").await;
        assert_eq!(status, 200, "{body}");
        let total: usize = body["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["count"].as_u64().unwrap() as usize)
            .sum();
        if total == last {
            break total;
        }
        last = total;
    };
    // Before: the chosen intents' test questions against the knowledge base as it was.
    let mut before = [0usize; 3];
    for (text, _) in test.iter().filter(|(_, intent)| chosen.contains(intent)) {
        let (status, decision) = app
            .admin_post("/v1/tenants/acme/bot/ask", json!({ "text": text }))
            .await;
        assert_eq!(status, 200, "{decision}");
        before[if decision["decision"] == "answer" && decision["faq_id"].is_string() {
            1
        } else {
            2
        }] += 1;
    }
    let n = before.iter().sum::<usize>().max(1) as f64;
    println!(
        "before: {} test questions of the chosen intents, {:.1}% right, {:.1}% wrong (a shop FAQ), {:.1}% abstained",
        before.iter().sum::<usize>(),
        before[0] as f64 * 100.0 / n,
        before[1] as f64 * 100.0 / n,
        before[2] as f64 * 100.0 / n
    );
    let text_intent: HashMap<&str, &str> = questions
        .iter()
        .map(|(t, l)| (t.as_str(), l.as_str()))
        .collect();
    let (_, body) = app.admin_get("/v1/tenants/acme/kb/gaps?limit=200").await;
    let groups = body["groups"].as_array().unwrap().clone();
    let mut grouped = Vec::new();
    let mut group_labels = Vec::new();
    let mut faq_intent: HashMap<String, String> = HashMap::new();
    let mut drafted = 0;
    for (index, group) in groups.iter().enumerate() {
        let id = group["id"].as_str().unwrap();
        let members = store
            .gap_group_questions("acme", id, 10_000)
            .await
            .expect("members");
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for member in &members {
            let intent = text_intent
                .get(member.text.as_str())
                .copied()
                .unwrap_or("?");
            *counts.entry(intent).or_default() += 1;
            grouped.push(index);
            group_labels.push(intent);
        }
        if (members.len() as i64) < min_group {
            continue;
        }
        let majority = counts
            .iter()
            .max_by_key(|(name, n)| (**n, std::cmp::Reverse(**name)))
            .map(|(name, _)| name.to_string())
            .unwrap();
        let (status, draft) = app
            .admin_post(&format!("/v1/tenants/acme/kb/gaps/{id}/draft"), json!({}))
            .await;
        assert_eq!(status, 200, "{draft}");
        let body = json!({
            "question": draft["question"],
            "alternates": draft["alternates"],
            "answer": format!("(answer for {majority})"),
            "tags": draft["tags"],
            "locale": draft["locale"],
        });
        let faq_id = draft["id"].as_str().unwrap().to_owned();
        let (status, saved) = app
            .admin_put(
                &format!("/v1/tenants/acme/kb/faqs/{faq_id}"),
                "application/json",
                body.to_string().into_bytes(),
            )
            .await;
        assert!(status == 200 || status == 201, "{saved}");
        faq_intent.insert(faq_id, majority);
        drafted += 1;
    }
    let published: std::collections::BTreeSet<&str> =
        faq_intent.values().map(String::as_str).collect();
    println!(
        "kept {gaps_kept} of {} as gaps, {} groups (purity {:.1}%), {drafted} drafted and published, covering {} of {} intents",
        questions.len(),
        groups.len(),
        purity(&grouped, &group_labels) * 100.0,
        published.len(),
        chosen.len()
    );
    let chat = app.server.state.chat.clone();
    while chat.bot_dense_lag() != Some(0) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Ask the test questions: of the chosen intents, and of the others (which no new FAQ covers).
    // right, wrong (any FAQ), abstained, and of the wrong ones those from a new FAQ.
    let mut tally: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
    for (text, intent) in &test {
        let kind = if published.contains(intent.as_str()) {
            "published intents"
        } else if chosen.contains(intent) {
            "chosen, not published"
        } else {
            "other intents (control)"
        };
        let (status, decision) = app
            .admin_post("/v1/tenants/acme/bot/ask", json!({ "text": text }))
            .await;
        assert_eq!(status, 200, "{decision}");
        let slot = tally.entry(kind).or_default();
        match (decision["decision"].as_str(), decision["faq_id"].as_str()) {
            (Some("answer"), Some(faq)) => match faq_intent.get(faq) {
                Some(drafted) if drafted == intent => slot[0] += 1,
                Some(_) => {
                    slot[1] += 1;
                    slot[3] += 1;
                }
                None => slot[1] += 1,
            },
            _ => slot[2] += 1,
        }
    }
    println!("test questions                 n   right   wrong   abstained   wrong from a new FAQ");
    for (kind, [right, wrong, abstained, wrong_new]) in &tally {
        let n = right + wrong + abstained;
        let pct = |x: usize| x as f64 * 100.0 / n.max(1) as f64;
        println!(
            "{kind:<26} {n:>5}  {:>5.1}%  {:>5.1}%  {:>9.1}%  {:>20.1}%",
            pct(*right),
            pct(*wrong),
            pct(*abstained),
            pct(*wrong_new)
        );
    }
}
