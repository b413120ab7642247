//! Intents every tenant has, with Chinese and English examples written for this project.

use crate::encoder::Encoder;
use crate::error::Result;
use crate::intent::{train_on_texts, IntentHead, TrainConfig, TrainReport, OUT_OF_SCOPE_LABEL};
use crate::training_data::Example;

/// The customer asks for a human agent.
pub const HANDOFF_REQUEST: &str = "handoff_request";
pub const GREETING: &str = "greeting";
pub const THANKS: &str = "thanks";
pub const COMPLAINT: &str = "complaint";
pub const GOODBYE: &str = "goodbye";

/// Names of the built-in intents.
pub const BUILTIN_INTENTS: [&str; 5] = [HANDOFF_REQUEST, GREETING, THANKS, COMPLAINT, GOODBYE];

const HANDOFF_EXAMPLES: &[&str] = &[
    "转人工",
    "人工客服",
    "我要找人工",
    "帮我转接人工客服",
    "有没有真人",
    "我想和真人说话",
    "叫你们客服来",
    "接人工服务",
    "别让机器人回答了，我要人工",
    "能不能换个人工客服",
    "请转真人客服处理",
    "找你们的工作人员",
    "客服在吗，我要人工",
    "人工！",
    "talk to a human",
    "I want to speak to a real person",
    "connect me to an agent",
    "can I talk to someone from support",
    "get me a human please",
    "transfer me to customer service",
    "I need a live agent",
    "stop the bot, I want a person",
    "is there a real human I can chat with",
    "agent please",
    "let me speak with a representative",
    "human",
];

const GREETING_EXAMPLES: &[&str] = &[
    "你好",
    "您好",
    "在吗",
    "哈喽",
    "早上好",
    "下午好",
    "晚上好",
    "嗨",
    "你好，有人吗",
    "hello",
    "hi",
    "hi there",
    "hey",
    "good morning",
    "good evening",
    "hello, anyone there?",
    "hey, how are you",
    "greetings",
];

const THANKS_EXAMPLES: &[&str] = &[
    "谢谢",
    "谢谢你",
    "多谢",
    "非常感谢",
    "感谢帮助",
    "太感谢了",
    "好的谢谢",
    "辛苦了，谢谢",
    "thanks",
    "thank you",
    "thanks a lot",
    "thank you so much",
    "many thanks",
    "appreciate it",
    "great, thanks for the help",
    "cheers, that helped",
];

const COMPLAINT_EXAMPLES: &[&str] = &[
    "我要投诉",
    "你们的服务太差了",
    "我要投诉你们的快递员",
    "太失望了，再也不买了",
    "这是什么垃圾产品",
    "等了一个星期还没解决，太过分了",
    "你们就是骗子",
    "我非常不满意",
    "态度太恶劣了",
    "我要给差评",
    "I want to file a complaint",
    "this is the worst service ever",
    "I am very unhappy with your product",
    "your company is a scam",
    "I've been waiting for weeks, this is unacceptable",
    "I'm really disappointed",
    "your support staff was rude to me",
    "I want to complain about my order",
];

const GOODBYE_EXAMPLES: &[&str] = &[
    "再见",
    "拜拜",
    "没事了，再见",
    "就这样吧，拜拜",
    "下次再聊",
    "好的，没有其他问题了",
    "bye",
    "goodbye",
    "see you",
    "that's all, bye",
    "have a nice day, bye",
    "nothing else, thanks bye",
    "talk to you later",
    "see you next time",
];

/// General questions no built-in intent covers. Used only for the built-in-only head: a tenant's
/// own intents may cover these topics, so they are not mixed into tenant training.
const OUT_OF_SCOPE_EXAMPLES: &[&str] = &[
    "我的订单什么时候发货",
    "退款多久到账",
    "怎么修改收货地址",
    "密码忘了怎么办",
    "这个商品有优惠吗",
    "你们几点营业",
    "发票怎么开",
    "会员积分怎么用",
    "今天天气怎么样",
    "给我讲个笑话",
    "where is my package",
    "how do I reset my password",
    "what are your opening hours",
    "can I change my shipping address",
    "how long does a refund take",
    "do you ship to Canada",
    "what is the price of the premium plan",
    "how do I cancel my subscription",
    "what's the weather like",
    "tell me a joke",
];

/// Generic out-of-scope questions (English and Chinese) written for this project
/// (`models/data/generic_out_of_scope.txt`): world knowledge, chit-chat, personal tasks.
/// No shop's knowledge base answers them. Used as built-in negatives by the bot's per-tenant
/// self-calibration and by intent heads trained without out-of-scope examples.
pub fn generic_out_of_scope() -> Vec<&'static str> {
    include_str!("../data/generic_out_of_scope.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// The built-in examples; `with_out_of_scope` adds the general out-of-scope questions.
pub fn builtin_examples(with_out_of_scope: bool) -> Vec<Example> {
    let mut out = Vec::new();
    let groups: [(&str, &[&str]); 5] = [
        (HANDOFF_REQUEST, HANDOFF_EXAMPLES),
        (GREETING, GREETING_EXAMPLES),
        (THANKS, THANKS_EXAMPLES),
        (COMPLAINT, COMPLAINT_EXAMPLES),
        (GOODBYE, GOODBYE_EXAMPLES),
    ];
    for (label, texts) in groups {
        out.extend(texts.iter().map(|t| Example::new(*t, label)));
    }
    if with_out_of_scope {
        out.extend(
            OUT_OF_SCOPE_EXAMPLES
                .iter()
                .map(|t| Example::new(*t, OUT_OF_SCOPE_LABEL)),
        );
    }
    out
}

/// A tenant's training set: the tenant's examples plus the built-in ones. With no tenant
/// examples, the built-in out-of-scope questions are added so the head can reject.
/// A tenant example whose label is a built-in name adds to that intent.
pub fn training_set(tenant_examples: &[Example]) -> Vec<Example> {
    let mut out = builtin_examples(tenant_examples.is_empty());
    out.extend_from_slice(tenant_examples);
    out
}

/// Trains the head every tenant starts with (built-in intents only).
pub fn builtin_head(encoder: &Encoder) -> Result<(IntentHead, TrainReport)> {
    train_on_texts(encoder, &training_set(&[]), &TrainConfig::default())
}
