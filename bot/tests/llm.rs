//! The optional LLM step against a local server that speaks the chat-completions wire format.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use common::{fixture, TENANT};
use serde_json::{json, Value};
use switchboard_bot::{Bot, BotSettings, DecisionKind, LlmSettings, Turn};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Answers and cites the first id given in the prompt.
    Cite,
    /// Answers after 2 s.
    Slow,
    /// 500 with an OpenAI-style error body.
    Fail,
    /// Answers without any citation.
    NoCitation,
    /// Cites an id that was not given.
    WrongCitation,
}

#[derive(Clone)]
struct Server {
    mode: Mode,
    requests: Arc<Mutex<Vec<Value>>>,
}

fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000u32,
        "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    })
}

async fn chat(State(server): State<Server>, Json(body): Json<Value>) -> Response {
    server.requests.lock().expect("lock").push(body.clone());
    let prompt = body["messages"][1]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let first_id = prompt
        .split('[')
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap_or_default()
        .to_string();
    match server.mode {
        Mode::Cite => Json(completion(&format!("单笔订单满99元包邮，不满99元运费8元。[{first_id}]"))).into_response(),
        Mode::Slow => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Json(completion(&format!("late [{first_id}]"))).into_response()
        }
        Mode::Fail => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": {"message": "boom", "type": "server_error", "param": null, "code": null}})),
        )
            .into_response(),
        Mode::NoCitation => Json(completion("满99元包邮。")).into_response(),
        Mode::WrongCitation => Json(completion("满99元包邮。[made-up-id]")).into_response(),
    }
}

async fn start(mode: Mode) -> (String, Arc<Mutex<Vec<Value>>>) {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(Server {
            mode,
            requests: requests.clone(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/v1"), requests)
}

fn bot_with_llm(base_url: String, timeout_ms: u64) -> Arc<Bot> {
    let f = fixture();
    let bot = Bot::with_default_head(f.index.clone(), f.encoder.clone(), f.head.clone()).with_llm(
        LlmSettings {
            base_url,
            model: "test-model".into(),
            api_key: "sk-test".into(),
            timeout_ms,
            max_hits: 3,
        },
    );
    bot.index_faqs(TENANT, &f.records).expect("index");
    Arc::new(bot)
}

fn turn(text: &str) -> Turn {
    Turn::new(TENANT, text).with_synonyms(fixture().synonyms.clone())
}

fn faq_answer(id: &str) -> String {
    fixture()
        .records
        .iter()
        .find(|r| r.id == id)
        .expect("record")
        .answer
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_answer_with_a_citation_is_used() {
    let (url, requests) = start(Mode::Cite).await;
    let bot = bot_with_llm(url, 5_000);
    let d = bot.clone().decide_async(turn("运费怎么算")).await;
    assert_eq!(d.kind, DecisionKind::Answer);
    assert_eq!(d.reason, "llm_answer", "{d:?}");
    assert_eq!(d.faq_id.as_deref(), Some("zh-ship-fee"));
    assert_eq!(d.answer, "单笔订单满99元包邮，不满99元运费8元。");
    let requests = requests.lock().expect("lock");
    assert_eq!(requests.len(), 1);
    let body = &requests[0];
    assert_eq!(body["model"], "test-model");
    let prompt = body["messages"][1]["content"].as_str().expect("prompt");
    assert!(
        prompt.contains("[zh-ship-fee]") && prompt.contains(&faq_answer("zh-ship-fee")),
        "{prompt}"
    );
    assert!(prompt.contains("运费怎么算"));
    assert!(body["messages"][0]["content"]
        .as_str()
        .expect("system")
        .contains("ONLY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_is_not_asked_when_retrieval_is_unsure_or_disabled() {
    let (url, requests) = start(Mode::Cite).await;
    let bot = bot_with_llm(url, 5_000);
    let d = bot.clone().decide_async(turn("帮我预订一家酒店")).await;
    assert_eq!(d.kind, DecisionKind::OutOfScope);
    let d = bot.clone().decide_async(turn("转人工")).await;
    assert_eq!(d.kind, DecisionKind::Handoff);
    let off = Arc::new(BotSettings {
        llm_enabled: false,
        ..BotSettings::default()
    });
    let d = bot
        .clone()
        .decide_async(turn("运费怎么算").with_settings(off))
        .await;
    assert_eq!(d.reason, "faq_match");
    assert!(requests.lock().expect("lock").is_empty());
}

async fn assert_fallback(mode: Mode, timeout_ms: u64) {
    let (url, requests) = start(mode).await;
    let bot = bot_with_llm(url, timeout_ms);
    let t = turn("运费怎么算");
    let faq = tokio::task::block_in_place(|| bot.decide(&t));
    // Only the LLM step is timed: decide() is slow in debug builds on a busy machine.
    let started = std::time::Instant::now();
    let d = bot.refine_with_llm(&t, faq).await;
    assert_eq!(d.kind, DecisionKind::Answer);
    assert_eq!(d.reason, "faq_match", "{d:?}");
    assert_eq!(d.faq_id.as_deref(), Some("zh-ship-fee"));
    assert_eq!(d.answer, faq_answer("zh-ship-fee"));
    assert!(
        !requests.lock().expect("lock").is_empty(),
        "the llm was asked"
    );
    assert!(
        started.elapsed() < Duration::from_millis(timeout_ms + 1_500),
        "bounded by the timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_falls_back_to_the_faq_answer() {
    assert_fallback(Mode::Slow, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_falls_back_to_the_faq_answer() {
    assert_fallback(Mode::Fail, 1_500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_without_citation_falls_back() {
    assert_fallback(Mode::NoCitation, 5_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_citing_an_unknown_id_falls_back() {
    assert_fallback(Mode::WrongCitation, 5_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_falls_back() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let bot = bot_with_llm(format!("http://{addr}/v1"), 1_000);
    let d = bot.clone().decide_async(turn("运费怎么算")).await;
    assert_eq!(
        (d.reason.as_str(), d.answer.clone()),
        ("faq_match", faq_answer("zh-ship-fee"))
    );
}
