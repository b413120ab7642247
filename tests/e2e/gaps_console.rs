//! The console's "Knowledge gaps" page in headless Chromium against the real server: a
//! knowledge manager sees the unanswered questions grouped (count, trend, examples), dismisses
//! an off-topic group, turns a group into a draft FAQ in the FAQ editor, publishes it, and the
//! bot answers the question with it. With `SWITCHBOARD_SCREENSHOTS=1` it also writes the page
//! in English and Chinese to `docs/screenshots/operator-console/gaps.{en,zh}.png`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use store::MemberRole;
use switchboard_tests::TestApp;

use crate::chromium::{chromium_or_skip, Browser};

const JOBS: [&str; 3] = [
    "do you have any job openings",
    "do you have any job openings?",
    "Do you have any job openings right now",
];
const WEATHER: [&str; 2] = ["what is the weather today", "how is the weather today"];

fn js(text: &str) -> String {
    serde_json::to_string(text).expect("a string")
}

/// Runs `script` (an expression over `e`, the element `selector` matches) and asserts it ran.
async fn on_element(browser: &mut Browser, selector: &str, script: &str) {
    let done = browser
        .eval(&format!(
            "(() => {{ const e = document.querySelector({s}); if (!e || e.disabled) return false; {script}; return true; }})()",
            s = js(selector)
        ))
        .await
        .expect("eval");
    assert_eq!(done, json!(true), "no usable element {selector}");
}

async fn fill(browser: &mut Browser, selector: &str, value: &str) {
    let script = format!(
        "e.focus(); e.value = {v}; e.dispatchEvent(new Event('input', {{bubbles: true}})); e.dispatchEvent(new Event('change', {{bubbles: true}}))",
        v = js(value)
    );
    on_element(browser, selector, &script).await;
}

async fn click(browser: &mut Browser, selector: &str) {
    on_element(browser, selector, "e.click()").await;
}

/// Waits for `expression` to be truthy (not null/false); answers its value.
async fn wait(browser: &mut Browser, what: &str, expression: &str) -> Value {
    browser
        .wait_for(what, expression)
        .await
        .unwrap_or_else(|error| panic!("{what}: {error}"))
}

/// Customers ask questions the demo knowledge base cannot answer, each in a conversation of
/// its own; returns when all are kept as gaps.
async fn ask_unanswered(app: &TestApp, questions: &[&str]) {
    for (index, text) in questions.iter().enumerate() {
        let visitor = app.visitor().await;
        let mut customer = app.customer_ws(&visitor).await;
        customer
            .send(json!({"type":"send","client_msg_id":format!("g{index}"),"text":text}))
            .await;
        let reply = customer
            .expect("bot reply", |frame| frame["sender"] == "bot")
            .await;
        assert!(reply["suggestions"].is_null(), "{text}: {reply}");
    }
}

#[tokio::test]
async fn knowledge_manager_turns_a_gap_into_a_published_faq_and_dismisses_another() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let app = TestApp::spawn_bot_first().await;
    let questions: Vec<&str> = JOBS.iter().chain(&WEATHER).copied().collect();
    ask_unanswered(&app, &questions).await;

    let email = "km@acme.example";
    let password = app
        .add_member("acme", email, MemberRole::KnowledgeManager)
        .await;
    let mut browser = Browser::launch(&binary).await.expect("chromium starts");
    browser.call("Page.enable", json!({})).await.expect("page");
    browser
        .navigate(&app.url("/admin/?tenant=acme#/gaps"))
        .await
        .expect("the console loads");
    wait(
        &mut browser,
        "the sign-in form",
        "document.querySelector('#signin-submit')",
    )
    .await;
    fill(&mut browser, "#signin-tenant", "acme").await;
    fill(&mut browser, "#signin-email", email).await;
    fill(&mut browser, "#signin-password", password.as_str()).await;
    click(&mut browser, "#signin-submit").await;
    wait(
        &mut browser,
        "the navigation",
        "document.querySelector('#nav [data-page=gaps]')",
    )
    .await;
    click(&mut browser, "#nav [data-page=gaps]").await;

    // The groups, largest first: the job questions (3), then the weather (2); each with its
    // trend (today last) and examples. Questions are kept off the turn: regroup until all are in.
    let started = Instant::now();
    let groups = loop {
        let groups = browser
            .eval("[...document.querySelectorAll('#gap-list .gap-group')].map(g => ({ id: g.dataset.gapId, count: g.querySelector('.gap-count').textContent, label: g.querySelector('.gap-label').textContent, trend: g.querySelector('.sparkline').dataset.trend, examples: [...g.querySelectorAll('.gap-examples li')].length }))")
            .await
            .expect("groups");
        if groups.as_array().map(Vec::len) == Some(2) && groups[1]["count"] == "2" {
            break groups;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{groups}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        click(&mut browser, "#gaps-refresh").await;
    };
    assert_eq!(groups[0]["count"], "3", "{groups}");
    assert!(
        JOBS.contains(&groups[0]["label"].as_str().unwrap()),
        "{groups}"
    );
    assert_eq!(groups[0]["trend"], "0,0,0,0,0,0,3");
    assert_eq!(groups[0]["examples"], 3);
    assert!(
        WEATHER.contains(&groups[1]["label"].as_str().unwrap()),
        "{groups}"
    );
    let jobs_id = groups[0]["id"].as_str().unwrap().to_owned();
    let weather_id = groups[1]["id"].as_str().unwrap().to_owned();

    if let Ok(target) = std::env::var("SWITCHBOARD_SCREENSHOTS") {
        let out = if target == "1" || target.is_empty() {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots/operator-console")
        } else {
            PathBuf::from(target)
        };
        std::fs::create_dir_all(&out).expect("screenshot folder");
        for lang in ["en", "zh"] {
            let lang_now = browser
                .eval("document.documentElement.lang")
                .await
                .expect("lang");
            if (lang == "zh") != (lang_now == "zh-CN") {
                click(&mut browser, "#lang").await;
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
            let png = browser.screenshot(1440, 900).await.expect("screenshot");
            std::fs::write(out.join(format!("gaps.{lang}.png")), png).expect("png written");
        }
    }

    // Dismiss the weather: gone from the list, back with "show dismissed", marked.
    click(
        &mut browser,
        &format!("[data-gap-id='{weather_id}'] .gap-dismiss"),
    )
    .await;
    wait(
        &mut browser,
        "the dismissed group to leave the list",
        &format!("!document.querySelector(\"[data-gap-id='{weather_id}']\") || null"),
    )
    .await;
    click(&mut browser, "#gaps-show-dismissed").await;
    wait(
        &mut browser,
        "the dismissed group with the dismissed ones",
        &format!(
            "document.querySelector(\"[data-gap-id='{weather_id}'].gap-dismissed .gap-restore\")"
        ),
    )
    .await;
    let (_, listed) = app.admin_get("/v1/tenants/acme/kb/gaps").await;
    assert!(listed["groups"]
        .as_array()
        .unwrap()
        .iter()
        .all(|g| g["id"] != weather_id.as_str()));

    // Draft FAQ: the editor opens prefilled with the group's questions; the knowledge manager
    // writes the answer and publishes.
    click(
        &mut browser,
        &format!("[data-gap-id='{jobs_id}'] .gap-draft"),
    )
    .await;
    let form = wait(
        &mut browser,
        "the FAQ editor",
        "(() => { const q = document.querySelector('#faq-editor #faq-question'); return q ? { id: document.querySelector('#faq-id').value, question: q.value, alternates: document.querySelector('#faq-alternates').value, answer: document.querySelector('#faq-answer').value } : null; })()",
    )
    .await;
    let question = form["question"].as_str().unwrap();
    assert!(JOBS.contains(&question), "{form}");
    let alternates: Vec<&str> = form["alternates"].as_str().unwrap().lines().collect();
    assert_eq!(alternates.len(), 2, "{form}");
    assert!(alternates
        .iter()
        .all(|a| JOBS.contains(a) && *a != question));
    assert_eq!(form["answer"], "", "no agent answered: {form}");
    let faq_id = form["id"].as_str().unwrap().to_owned();
    assert!(faq_id.starts_with("gap-"), "{form}");
    let answer = "Our open positions are on the careers page: jobs.acme.example.";
    fill(&mut browser, "#faq-answer", answer).await;
    click(&mut browser, "#faq-save").await;
    wait(
        &mut browser,
        "the group marked published",
        &format!("document.querySelector(\"[data-gap-id='{jobs_id}'] .badge-ok\")"),
    )
    .await;

    let (status, faq) = app
        .admin_get(&format!("/v1/tenants/acme/kb/faqs/{faq_id}"))
        .await;
    assert_eq!(status, 200, "{faq}");
    assert_eq!(faq["answer"], answer);
    assert_eq!(faq["enabled"], true);
    let chat = app.server.state.chat.clone();
    let started = Instant::now();
    while chat.bot_dense_lag() != Some(0) {
        assert!(started.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, decision) = app
        .admin_post(
            "/v1/tenants/acme/bot/ask",
            json!({ "text": "are there any job openings?" }),
        )
        .await;
    assert_eq!(decision["decision"], "answer", "{decision}");
    assert_eq!(decision["faq_id"], faq_id.as_str(), "{decision}");
}
