//! `switchboard demo-traffic`: simulated days of customer traffic for a tenant (the demo by
//! default), so a new user sees the reports and the knowledge-gap page filled.
//!
//! Every conversation runs through the real code paths — the customer's messages through
//! `Chat::customer_send` (word lists, the bot worker, its decision), handoffs through the
//! routing, agents taking chats over, replying and closing, the idle close, the survey and the
//! rating — with this process's clock moved back to the conversation's simulated time
//! (`store::util::simulate_clock_offset`), so the stored times spread over the period. The
//! customers ask the tenant's own FAQ questions (and alternates) with everyday variations,
//! questions the knowledge base does not cover, and for a person. Seeded: the same seed gives
//! the same traffic.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use store::util::{now_ms, simulate_clock_offset};
use store::{ConversationState, Customer, CustomerProfile};
use switchboard_channels::ChannelKind;

use super::args::{settings, StoreArgs};

#[derive(Args)]
pub struct DemoTrafficArgs {
    /// The tenant (it must exist and have FAQs).
    #[arg(long, default_value = "demo")]
    tenant: String,
    /// How many conversations.
    #[arg(long, default_value_t = 240)]
    conversations: u32,
    /// Spread over this many days, ending now.
    #[arg(long, default_value_t = 7)]
    days: u32,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[command(flatten)]
    store: StoreArgs,
}

/// Questions the demo knowledge base does not answer (the knowledge-gap page groups them).
const UNCOVERED: &[&str] = &[
    "你们支持数字人民币支付吗",
    "可以用数字人民币付款吗",
    "数字人民币能用吗",
    "Can I pay with digital yuan?",
    "你们有线下门店吗",
    "附近有实体店可以看货吗",
    "Do you have a physical store I can visit?",
    "可以开增值税专用发票给个人吗",
    "商品可以刻字定制吗",
    "能不能帮我在包装上刻名字",
    "Can you engrave a name on the product?",
    "会员积分可以换现金吗",
    "积分能不能提现",
    "Can loyalty points be exchanged for cash?",
    "海外地址能发货吗",
    "你们发货到新加坡吗",
    "Do you ship to Singapore?",
];

const ASK_FOR_PERSON: &[&str] = &[
    "转人工",
    "我要找人工客服",
    "请帮我转接真人客服",
    "I want to talk to a human",
    "Can I speak to an agent please?",
];

const AGENT_REPLIES: &[&str] = &[
    "您好，我是客服，很高兴为您服务。我来帮您看一下。",
    "Hello, thanks for waiting. Let me look into this for you.",
    "已经帮您登记，我们会在 24 小时内处理，请留意短信通知。",
    "I have passed this on to the team; you will hear from us within a day.",
];

const COMMENTS: &[&str] = &[
    "",
    "",
    "",
    "很快就解决了，谢谢",
    "Quick and helpful",
    "等的时间有点长",
];

const PREFIXES: &[&str] = &["", "", "请问", "你好，", "hi, ", "您好 "];
const SUFFIXES: &[&str] = &["", "", "？", "?", "呢", " 谢谢"];

/// A small deterministic generator (xorshift64*), enough for simulated traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn between(&mut self, low_ms: i64, high_ms: i64) -> i64 {
        low_ms + (self.next() % (high_ms - low_ms).max(1) as u64) as i64
    }
}

/// Moves the simulated clock to `at`.
fn at(at: i64) {
    simulate_clock_offset(0);
    simulate_clock_offset(at - now_ms());
}

pub async fn run(args: DemoTrafficArgs) -> anyhow::Result<()> {
    let mut settings = settings(&args.store, Some("127.0.0.1:0".parse()?))?;
    // The simulation closes quiet conversations itself, one at a time.
    settings.idle_close.bot_quiet_ms = 0;
    settings.demo = false;
    let server = gateway::Server::start(settings).await?;
    let state = server.state.clone();
    let tenant = args.tenant.as_str();
    if state.store.tenant(tenant).await?.is_none() {
        anyhow::bail!("no tenant named {tenant} (start `switchboard serve` once for the demo)");
    }
    let (faqs, _) = state.store.all_faqs(tenant).await?;
    if faqs.is_empty() {
        anyhow::bail!("tenant {tenant} has no FAQs to ask about");
    }
    let mut agents = state.store.agents(tenant).await?;
    for name in ["客服 小李", "客服 小王", "Agent Chen"] {
        if agents.len() >= 4 {
            break;
        }
        if !agents.iter().any(|agent| agent.name == name) {
            agents.push(
                state
                    .store
                    .create_agent(tenant, name, &["general".to_owned()], 5)
                    .await?,
            );
        }
    }
    eprintln!("loading the bot's models...");
    state
        .chat
        .bot
        .ready()
        .await
        .map_err(|error| anyhow::anyhow!(error.describe()))?;
    let mut rng = Rng(args.seed.max(1));
    let real_now = now_ms();
    let span = i64::from(args.days.max(1)) * 86_400_000;
    // Start times, oldest first, weighted to daytime hours (UTC+8 09:00–22:00 mostly).
    let mut starts: Vec<i64> = (0..args.conversations)
        .map(|_| {
            let day = rng.between(0, i64::from(args.days.max(1))) * 86_400_000;
            let hour = if rng.chance(85) {
                rng.between(1, 14) // 09:00–22:00 in UTC+8
            } else {
                rng.between(0, 24)
            };
            let start = real_now - span + day + hour * 3_600_000 + rng.between(0, 3_600_000);
            start.min(real_now - 2 * 3_600_000)
        })
        .collect();
    starts.sort_unstable();
    let (mut answered, mut handed_off, mut rated) = (0, 0, 0);
    for (index, start) in starts.into_iter().enumerate() {
        at(start);
        let channel = match rng.below(10) {
            0..=5 => ChannelKind::Web,
            6 | 7 => ChannelKind::Wechat,
            8 => ChannelKind::Mobile,
            _ => ChannelKind::Douyin,
        };
        let customer = state
            .store
            .customer_for_identity(
                tenant,
                channel,
                &format!("demo-traffic-{}-{index}", args.seed),
                &CustomerProfile::default(),
            )
            .await?;
        let mut clock = start;
        let turns = 1 + usize::from(rng.chance(35));
        let scenario = rng.below(100);
        for turn in 0..turns {
            let text = if scenario < 62 || turn > 0 {
                let faq = rng.pick(&faqs);
                let base = if !faq.alternates.is_empty() && rng.chance(50) {
                    rng.pick(&faq.alternates).clone()
                } else {
                    faq.question.clone()
                };
                format!("{}{}{}", rng.pick(PREFIXES), base, rng.pick(SUFFIXES))
            } else if scenario < 85 {
                rng.pick(UNCOVERED).to_string()
            } else {
                rng.pick(ASK_FOR_PERSON).to_string()
            };
            let state_now = say(&state, &customer, &format!("dt-{index}-{turn}"), &text).await?;
            clock += rng.between(20_000, 90_000);
            at(clock);
            if state_now != ConversationState::Bot {
                break;
            }
            // An unanswered question: some customers ask for a person next.
            if (62..85).contains(&scenario) && rng.chance(45) {
                let person = rng.pick(ASK_FOR_PERSON).to_string();
                say(&state, &customer, &format!("dt-{index}-p"), &person).await?;
                clock += rng.between(5_000, 20_000);
                at(clock);
                break;
            }
        }
        let conversation = state
            .store
            .conversation_for_customer(&customer.id)
            .await?
            .context("the simulated customer has no conversation")?;
        match conversation.state {
            ConversationState::Queued => {
                handed_off += 1;
                // Someone takes it after a wait, replies, and closes.
                let agent = rng.pick(&agents).clone();
                clock += rng.between(10_000, 240_000);
                at(clock);
                state
                    .chat
                    .take_over(tenant, &conversation.id, &agent)
                    .await
                    .map_err(|error| anyhow::anyhow!(error.describe()))?;
                for reply in 0..(1 + rng.below(3)) {
                    clock += rng.between(8_000, 120_000);
                    at(clock);
                    state
                        .chat
                        .agent_send(
                            &agent,
                            &conversation.id,
                            &format!("dt-{index}-a{reply}"),
                            *rng.pick(AGENT_REPLIES),
                        )
                        .await
                        .map_err(|error| anyhow::anyhow!(error.describe()))?;
                }
                clock += rng.between(30_000, 600_000);
                at(clock);
                state
                    .chat
                    .close(&agent, &conversation.id)
                    .await
                    .map_err(|error| anyhow::anyhow!(error.describe()))?;
            }
            ConversationState::Bot => {
                answered += 1;
                // Quiet for the idle window: the sweep closes it.
                clock += 31 * 60_000;
                at(clock);
                state
                    .chat
                    .close_idle(30 * 60_000, Some(&conversation.id))
                    .await
                    .map_err(|error| anyhow::anyhow!(error.describe()))?;
            }
            _ => continue,
        }
        // The episode and the survey are written after the close; then some customers rate.
        let closed = state
            .store
            .conversation(&conversation.id)
            .await?
            .and_then(|c| c.closed_at)
            .context("the conversation did not close")?;
        for _ in 0..200 {
            if state
                .store
                .episode(&conversation.id, closed)
                .await?
                .is_some()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if rng.chance(55) {
            clock += rng.between(5_000, 60_000);
            at(clock);
            let human = conversation.state == ConversationState::Queued;
            let score = match rng.below(100) {
                0..=54 => 5,
                55..=79 => 4,
                80..=89 => 3,
                90..=95 => 2,
                _ => 1,
            } - i64::from(human && rng.chance(20));
            state
                .chat
                .rate(&customer, score.max(1), *rng.pick(COMMENTS), None)
                .await
                .map_err(|error| anyhow::anyhow!(error.describe()))?;
            rated += 1;
        }
        if (index + 1) % 50 == 0 {
            eprintln!("{} conversations", index + 1);
        }
    }
    simulate_clock_offset(0);
    println!(
        "simulated {} conversations over {} days for {tenant}: {answered} kept by the bot, {handed_off} handed to a person, {rated} rated",
        args.conversations, args.days
    );
    server.stop().await
}

/// One customer message, then the bot's turn: answers the conversation's state after it.
async fn say(
    state: &gateway::AppState,
    customer: &Customer,
    client_msg_id: &str,
    text: &str,
) -> anyhow::Result<ConversationState> {
    let appended = state
        .chat
        .customer_send(customer, client_msg_id, text, None)
        .await
        .map_err(|error| anyhow::anyhow!(error.describe()))?;
    let seq = appended.message.seq;
    // The bot answers (or hands off) in its worker: wait for it.
    for _ in 0..1_000 {
        let conversation = state
            .store
            .conversation(&appended.conversation.id)
            .await?
            .context("conversation vanished")?;
        if conversation.state != ConversationState::Bot || conversation.last_seq > seq {
            return Ok(conversation.state);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::bail!("the bot did not answer within 10 s")
}
