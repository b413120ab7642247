//! The real widget and agent console in Debian's headless Chromium: a customer types on the demo
//! page, an agent answers, and the answer appears — as text, never as markup; an agent signs in
//! to the console, takes a chat, replies from it, and is signed out when their token is reissued.
//! Driven over the DevTools protocol.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use switchboard_tests::TestApp;
use tokio_tungstenite::tungstenite::Message;

struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    page: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium_path() -> Option<PathBuf> {
    let candidates = [
        std::env::var("CHROMIUM").ok(),
        Some("/usr/bin/chromium".into()),
        Some("/usr/bin/chromium-browser".into()),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

impl Browser {
    async fn launch(binary: &PathBuf) -> anyhow::Result<Browser> {
        let profile = tempfile::tempdir()?;
        let child = Command::new(binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "--window-size=1280,800",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        // Chromium writes the port it chose into the profile directory.
        let port_file = profile.path().join("DevToolsActivePort");
        let started = Instant::now();
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                if let Some(port) = text
                    .lines()
                    .next()
                    .and_then(|line| line.trim().parse::<u16>().ok())
                {
                    break port;
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("chromium did not open its debugging port");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let targets: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
            .await?
            .json()
            .await?;
        let page_url = targets
            .as_array()
            .and_then(|targets| targets.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .ok_or_else(|| anyhow!("no page target: {targets}"))?
            .to_owned();
        let (page, _) = tokio_tungstenite::connect_async(&page_url).await?;
        Ok(Browser {
            child,
            _profile: profile,
            page,
            next_id: 1,
        })
    }

    async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.page
            .send(Message::Text(
                json!({"id": id, "method": method, "params": params})
                    .to_string()
                    .into(),
            ))
            .await?;
        loop {
            let message = tokio::time::timeout(Duration::from_secs(20), self.page.next())
                .await
                .map_err(|_| anyhow!("{method}: no answer"))?
                .ok_or_else(|| anyhow!("devtools closed"))??;
            if let Message::Text(text) = message {
                let value: Value = serde_json::from_str(&text)?;
                if value["id"] == id {
                    if let Some(error) = value.get("error") {
                        bail!("{method}: {error}");
                    }
                    return Ok(value["result"].clone());
                }
            }
        }
    }

    /// Evaluates an expression in the page and returns its JSON value.
    async fn eval(&mut self, expression: &str) -> anyhow::Result<Value> {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if let Some(exception) = result.get("exceptionDetails") {
            bail!("page threw: {exception}");
        }
        Ok(result["result"]["value"].clone())
    }

    async fn wait_for(&mut self, what: &str, expression: &str) -> anyhow::Result<Value> {
        let started = Instant::now();
        loop {
            let value = self.eval(expression).await?;
            if !value.is_null() && value != json!(false) {
                return Ok(value);
            }
            if started.elapsed() > Duration::from_secs(20) {
                bail!("timed out waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

const SHADOW: &str = "document.getElementById('switchboard-widget').shadowRoot";

/// The Chromium binary, or `None` when the test may be skipped (`SWITCHBOARD_SKIP_BROWSER=1`).
fn chromium_or_skip() -> Option<PathBuf> {
    let binary = chromium_path();
    if binary.is_none() {
        if std::env::var("SWITCHBOARD_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!("skipped: SWITCHBOARD_SKIP_BROWSER=1 and no chromium");
            return None;
        }
        panic!("chromium is not installed: run scripts/test.sh (it installs Debian's chromium), or set SWITCHBOARD_SKIP_BROWSER=1");
    }
    binary
}

/// Opens the demo page of tenant `acme` and the widget.
async fn open_widget(app: &TestApp, binary: &PathBuf) -> Browser {
    let mut browser = Browser::launch(binary).await.expect("chromium starts");
    browser.call("Page.enable", json!({})).await.unwrap();
    browser
        .call("Page.navigate", json!({"url": app.url("/?tenant=acme")}))
        .await
        .unwrap();
    browser
        .wait_for("the widget", &format!("(() => {{ const h = document.getElementById('switchboard-widget'); return !!(h && h.shadowRoot && h.shadowRoot.getElementById('sb-launcher')); }})()"))
        .await
        .unwrap();
    browser
        .eval(&format!("{SHADOW}.getElementById('sb-launcher').click()"))
        .await
        .unwrap();
    browser
}

/// Types `text` into the widget and presses send.
async fn type_and_send(browser: &mut Browser, text: &str) {
    browser
        .eval(&format!(
            "(() => {{ const input = {SHADOW}.getElementById('sb-input'); input.value = {text}; input.dispatchEvent(new Event('input', {{bubbles: true}})); {SHADOW}.getElementById('sb-send').click(); return true; }})()",
            text = serde_json::to_string(text).unwrap()
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn widget_shows_the_bots_suggestions_as_buttons_and_blocked_messages_as_not_sent() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let app = TestApp::spawn_bot_first().await;
    let (status, _) = app
        .admin_put(
            "/v1/tenants/acme/policies/sensitive-words/abuse",
            "application/json",
            serde_json::to_vec(&json!({"action": "block", "words": ["傻瓜"]})).unwrap(),
        )
        .await;
    assert_eq!(status, 200);
    let mut browser = open_widget(&app, &binary).await;
    type_and_send(&mut browser, "关于配送的问题").await;
    let buttons = browser
        .wait_for(
            "suggestion buttons",
            &format!("(() => {{ const b = [...{SHADOW}.querySelectorAll('.sb-suggestion:not([disabled])')]; return b.length ? b.map(x => x.dataset.suggestion) : null; }})()"),
        )
        .await
        .unwrap();
    let first = buttons[0].as_str().unwrap().to_owned();
    browser
        .eval(&format!(
            "{SHADOW}.querySelector('.sb-suggestion:not([disabled])').click()"
        ))
        .await
        .unwrap();
    // The click sent the question; the bot answers it, and the old buttons are spent.
    browser
        .wait_for(
            "the answer to the clicked question",
            &format!("(() => {{ const m = [...{SHADOW}.querySelectorAll('.sb-msg[data-sender=customer]')].map(x => x.textContent); return m.some(t => t.includes({first})) && {SHADOW}.querySelectorAll('.sb-msg[data-sender=bot]').length >= 2 ? true : null; }})()", first = serde_json::to_string(&first).unwrap()),
        )
        .await
        .unwrap();
    let live = browser
        .eval(&format!(
            "{SHADOW}.querySelectorAll('.sb-suggestion:not([disabled])').length"
        ))
        .await
        .unwrap();
    assert_eq!(live, json!(0));

    type_and_send(&mut browser, "你这个傻瓜").await;
    browser
        .wait_for(
            "the blocked notice",
            &format!("(() => {{ const m = {SHADOW}.querySelector('.sb-msg[data-error=blocked]'); return m ? m.dataset.state : null; }})()"),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn widget_in_chromium_talks_to_an_agent() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let app = TestApp::spawn().await;
    let (_, agent_token) = app.create_agent("Browser agent", &["general"], 2).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let mut browser = open_widget(&app, &binary).await;
    let typed = "<script>window.__injected = 1</script><img src=x onerror=\"window.__injected=2\"> where is my order?";
    type_and_send(&mut browser, typed).await;

    let assigned = agent.expect_type("assigned").await;
    let conversation_id = assigned["conversation"]["id"].as_str().unwrap().to_owned();
    let first = if assigned["messages"][0]["text"] == typed {
        true
    } else {
        agent.expect_text(typed).await["text"] == typed
    };
    assert!(first, "the agent sees exactly what the customer typed");

    let reply = "Your order ships today <b>bold?</b>";
    agent.send(json!({"type":"send","conversation_id":conversation_id,"client_msg_id":"a1","text":reply})).await;
    let shown = browser
        .wait_for(
            "the agent's reply",
            &format!("(() => {{ const m = [...{SHADOW}.querySelectorAll('.sb-msg[data-sender=agent]')]; return m.length ? m[m.length - 1].textContent : null; }})()"),
        )
        .await
        .unwrap();
    assert!(shown.as_str().unwrap().contains(reply), "shown: {shown}");
    // Markup in messages is shown as text and never runs.
    let markup = browser
        .eval(&format!("(() => ({{ injected: window.__injected || null, tags: {SHADOW}.querySelectorAll('#sb-messages b, #sb-messages script, #sb-messages img').length }}))()"))
        .await
        .unwrap();
    assert_eq!(markup, json!({"injected": null, "tags": 0}));
    let customer_text = browser
        .eval(&format!("(() => {{ const m = {SHADOW}.querySelector('.sb-msg[data-sender=customer]'); return m ? m.textContent : null; }})()"))
        .await
        .unwrap();
    assert!(
        customer_text.as_str().unwrap().contains("<script>"),
        "{customer_text}"
    );

    // A reload resumes the same conversation from the token in localStorage.
    browser.call("Page.reload", json!({})).await.unwrap();
    browser
        .wait_for("history after reload", &format!("(() => {{ const h = document.getElementById('switchboard-widget'); if (!h || !h.shadowRoot || !window.Switchboard) return null; window.Switchboard.open(); return h.shadowRoot.querySelectorAll('.sb-msg[data-sender=agent]').length > 0; }})()"))
        .await
        .unwrap();
    let stray = agent.drain(Duration::from_millis(300)).await;
    assert!(
        stray.iter().all(|f| f["type"] != "assigned"),
        "a reload must not open a new conversation: {stray:?}"
    );
}

/// The agent console: signs in from the `#token=` link, shows an assigned chat with the
/// customer's markup as text, sends the agent's reply, and signs out with a message when an admin
/// reissues the agent's token.
#[tokio::test]
async fn console_in_chromium_takes_a_chat_and_replies() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let app = TestApp::spawn().await;
    let (agent_id, token) = app.create_agent("Console agent", &["general"], 2).await;
    let mut browser = Browser::launch(&binary).await.expect("chromium starts");
    browser.call("Page.enable", json!({})).await.unwrap();
    browser
        .call(
            "Page.navigate",
            json!({"url": app.url(&format!("/console#token={token}"))}),
        )
        .await
        .unwrap();
    browser
        .wait_for(
            "the console, connected",
            "(() => { const app = document.getElementById('app'), conn = document.getElementById('conn'); return !!(app && conn && !app.hidden && conn.dataset.state === 'open'); })()",
        )
        .await
        .unwrap();
    let name = browser
        .eval("document.getElementById('agent-name').textContent")
        .await
        .unwrap();
    assert_eq!(name, json!("Console agent"));

    let visitor = app.visitor().await;
    let mut customer = app.customer_ws(&visitor).await;
    let typed = "<img src=x onerror=\"window.__injected=1\"> my parcel is late";
    customer
        .send(json!({"type":"send","client_msg_id":"c1","text":typed}))
        .await;
    let receipt = customer.expect_type("receipt").await;
    assert!(receipt["seq"].is_i64());
    let shown = browser
        .wait_for(
            "the customer's message in the transcript",
            "(() => { const m = document.querySelector('#transcript .msg[data-sender=customer]'); return m ? m.textContent : null; })()",
        )
        .await
        .unwrap();
    assert!(shown.as_str().unwrap().contains(typed), "shown: {shown}");
    let markup = browser
        .eval("(() => ({ injected: window.__injected || null, imgs: document.querySelectorAll('#transcript img').length, chats: document.querySelectorAll('#chats .chat').length }))()")
        .await
        .unwrap();
    assert_eq!(markup, json!({"injected": null, "imgs": 0, "chats": 1}));

    let reply = "It left the warehouse this morning.";
    browser
        .eval(&format!(
            "(() => {{ const r = document.getElementById('reply'); r.value = {reply}; r.dispatchEvent(new Event('input', {{bubbles: true}})); document.getElementById('send').click(); return true; }})()",
            reply = serde_json::to_string(reply).unwrap()
        ))
        .await
        .unwrap();
    let received = customer
        .expect("the console's reply", |frame| frame["sender"] == "agent")
        .await;
    assert_eq!(received["text"], reply);
    // The console's own copy is confirmed (it carries the stored seq).
    browser
        .wait_for(
            "the reply confirmed",
            "(() => { const m = [...document.querySelectorAll('#transcript .msg[data-sender=agent]')]; return m.some(x => x.dataset.seq) ? true : null; })()",
        )
        .await
        .unwrap();

    let (status, _) = app
        .admin_post(
            &format!("/v1/tenants/acme/agents/{agent_id}/token"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let notice = browser
        .wait_for(
            "the sign-in view with the reason",
            "(() => { const v = document.getElementById('signin-view'); const e = document.getElementById('signin-error'); return !v.hidden && !e.hidden ? e.textContent : null; })()",
        )
        .await
        .unwrap();
    assert!(!notice.as_str().unwrap().is_empty());
}
