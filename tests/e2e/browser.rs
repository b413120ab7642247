//! The real widget and agent console in Debian's headless Chromium: a customer types on the demo
//! page, an agent answers, and the answer appears — as text, never as markup; an agent signs in
//! to the console, takes a chat, replies from it, and is signed out when their token is reissued.
//! Driven over the DevTools protocol.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use switchboard_tests::TestApp;

use crate::chromium::{chromium_or_skip, Browser};

const SHADOW: &str = "document.getElementById('switchboard-widget').shadowRoot";

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
    let (unsure, _) = app.clarified_question().await;
    let mut browser = open_widget(&app, &binary).await;
    type_and_send(&mut browser, &unsure).await;
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

/// After the agent closes the chat, the widget shows the survey's stars; the customer picks four,
/// writes a comment and sends; the widget thanks them, and the rating is stored.
#[tokio::test]
async fn widget_rates_a_closed_chat_with_stars_and_a_comment() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let app = TestApp::spawn().await;
    let (agent_id, agent_token) = app.create_agent("Rating agent", &["general"], 2).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let mut browser = open_widget(&app, &binary).await;
    type_and_send(&mut browser, "where is my order?").await;
    let assigned = agent.expect_type("assigned").await;
    let conversation_id = assigned["conversation"]["id"].as_str().unwrap().to_owned();
    agent
        .send(json!({"type":"send","conversation_id":conversation_id,"client_msg_id":"a1","text":"It ships today."}))
        .await;
    agent
        .send(json!({"type":"close","conversation_id":conversation_id}))
        .await;
    let stars = browser
        .wait_for(
            "the survey's stars",
            &format!("(() => {{ const s = [...{SHADOW}.querySelectorAll('.sb-survey .sb-star:not([disabled])')]; return s.length ? s.length : null; }})()"),
        )
        .await
        .unwrap();
    assert_eq!(stars, json!(5));
    browser
        .eval(&format!(
            "(() => {{ {SHADOW}.querySelector('.sb-star[data-score=\"4\"]').click(); const c = {SHADOW}.querySelector('.sb-survey textarea'); c.value = 'Fast, thanks'; {SHADOW}.querySelector('.sb-rate-send').click(); return true; }})()"
        ))
        .await
        .unwrap();
    let thanks = browser
        .wait_for(
            "the thanks",
            &format!("(() => {{ const t = {SHADOW}.querySelector('.sb-rated'); return t ? t.textContent : null; }})()"),
        )
        .await
        .unwrap();
    assert!(thanks.as_str().unwrap().contains('4'), "{thanks}");
    // Stored with the conversation and the agent: the report has it.
    let mut rated = serde_json::Value::Null;
    for _ in 0..100 {
        let (status, body) = app.admin_get("/v1/tenants/acme/reports").await;
        assert_eq!(status, 200);
        rated = body["report"]["by_agent"][0].clone();
        if rated["ratings"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(rated["key"], agent_id.as_str(), "{rated}");
    assert_eq!(rated["csat_average"], 4.0, "{rated}");
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

/// Agent assist: for the customer's last message the console shows the bot's best FAQ answers
/// (with confidence) and the canned replies that share words with it; one click puts an answer
/// in the reply box, and only sending sends it.
#[tokio::test]
async fn the_console_suggests_faq_answers_and_canned_replies_and_inserts_one() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let app = TestApp::spawn_bot_first().await;
    let (_, token) = app.create_agent("Assisted agent", &["general"], 2).await;
    let (status, _) = app
        .admin_post(
            "/v1/tenants/acme/canned-replies",
            json!({"shortcut": "fee", "text": "运费规则：满99元包邮。"}),
        )
        .await;
    assert_eq!(status, 201);
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
            "(() => { const conn = document.getElementById('conn'); return conn && conn.dataset.state === 'open' ? true : null; })()",
        )
        .await
        .unwrap();
    // The customer asks for a person, then asks about the shipping fee.
    let visitor = app.visitor().await;
    let mut customer = app.customer_ws(&visitor).await;
    customer
        .send(json!({"type":"send","client_msg_id":"c1","text":"转人工"}))
        .await;
    browser
        .wait_for(
            "the chat in the console",
            "(() => document.querySelectorAll('#chats .chat').length === 1 ? true : null)()",
        )
        .await
        .unwrap();
    customer
        .send(json!({"type":"send","client_msg_id":"c2","text":"运费怎么算？"}))
        .await;
    let suggestions = browser
        .wait_for(
            "suggestions for the last message (the fee question, not the request for a person)",
            "(() => { const items = [...document.querySelectorAll('#assist .assist-item')]; const faq = items.find(i => i.querySelector('[data-faq]')); const texts = items.map(i => i.textContent); return !document.getElementById('assist').hidden && faq && texts.some(t => t.includes('运费规则')) ? texts : null; })()",
        )
        .await
        .unwrap();
    let shown = suggestions.to_string();
    assert!(
        shown.contains("运费规则"),
        "the matching canned reply: {shown}"
    );
    // With SWITCHBOARD_SCREENSHOTS set, the panel is pictured for the docs.
    if std::env::var("SWITCHBOARD_SCREENSHOTS").is_ok() {
        let png = browser.screenshot(1280, 800).await.expect("screenshot");
        let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/screenshots/agent-console-assist.png");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        std::fs::write(out, png).expect("screenshot written");
    }
    let inserted = browser
        .eval("(() => { document.querySelector('#assist [data-faq]').click(); return document.getElementById('reply').value; })()")
        .await
        .unwrap();
    let inserted = inserted.as_str().unwrap().to_owned();
    assert!(!inserted.is_empty());
    // Nothing went to the customer until the agent sends it.
    let before = customer.drain(Duration::from_millis(300)).await;
    assert!(
        before.iter().all(|frame| frame["sender"] != "agent"),
        "{before:?}"
    );
    browser
        .eval("document.getElementById('send').click()")
        .await
        .unwrap();
    let received = customer
        .expect("the inserted answer", |frame| frame["sender"] == "agent")
        .await;
    assert_eq!(received["text"], inserted.as_str());
}

/// Attachments in both browsers: the customer drops a PNG on the widget (and sees an unsupported
/// file refused with a retry button), the agent's console shows the image's thumbnail and links
/// the full image; the agent picks a PDF in the console and the widget shows it as a link that
/// downloads the PDF's bytes as an attachment.
#[tokio::test]
async fn an_image_from_the_widget_and_a_pdf_from_the_console() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let app = TestApp::spawn().await;
    let (_, token) = app.create_agent("Files agent", &["general"], 2).await;
    let mut console = Browser::launch(&binary).await.expect("chromium starts");
    console.call("Page.enable", json!({})).await.unwrap();
    console
        .call(
            "Page.navigate",
            json!({"url": app.url(&format!("/console#token={token}"))}),
        )
        .await
        .unwrap();
    console
        .wait_for(
            "the console, connected",
            "(() => { const conn = document.getElementById('conn'); return conn && conn.dataset.state === 'open' ? true : null; })()",
        )
        .await
        .unwrap();

    let mut widget = open_widget(&app, &binary).await;
    let png = tiny_png(160, 120);
    // A file the server does not take (an executable's header) is refused, can be retried or
    // removed; the photo is dropped on the chat as if dragged from the desktop.
    drop_on_widget(
        &mut widget,
        "setup.exe",
        "application/octet-stream",
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00",
    )
    .await;
    let refused = widget
        .wait_for(
            "the refused upload",
            &format!("(() => {{ const u = {SHADOW}.querySelector('.sb-upload[data-state=failed]'); return u ? [u.dataset.error, !u.querySelector('.sb-upload-retry').hidden, u.querySelector('.sb-upload-info').textContent] : null; }})()"),
        )
        .await
        .unwrap();
    assert_eq!(refused[0], "unsupported_type", "{refused}");
    assert_eq!(refused[1], true, "a retry button: {refused}");
    // While the tenant takes no files from customers the photo fails too; once it does again, a
    // click on retry uploads it.
    set_customer_attachments(&app, false).await;
    drop_on_widget(&mut widget, "broken-cup.png", "image/png", &png).await;
    widget
        .wait_for(
            "the photo refused",
            &format!("(() => {{ const u = {SHADOW}.querySelector('.sb-upload[data-error=attachments_off]'); return u && {SHADOW}.getElementById('sb-send').disabled ? true : null; }})()"),
        )
        .await
        .unwrap();
    set_customer_attachments(&app, true).await;
    widget
        .eval(&format!("{SHADOW}.querySelector('.sb-upload[data-error=attachments_off] .sb-upload-retry').click()"))
        .await
        .unwrap();
    widget
        .wait_for(
            "the photo uploaded",
            &format!("(() => {{ const u = {SHADOW}.querySelector('.sb-upload[data-state=ready]'); return u && !{SHADOW}.getElementById('sb-send').disabled ? true : null; }})()"),
        )
        .await
        .unwrap();
    if std::env::var("SWITCHBOARD_SCREENSHOTS").is_ok() {
        save_screenshot(&mut widget, "widget-attachments-tray.png").await;
    }
    // The refused file stays behind; the photo goes without a caption.
    widget
        .eval(&format!(
            "(() => {{ {SHADOW}.getElementById('sb-send').click(); return true; }})()"
        ))
        .await
        .unwrap();
    let left = widget
        .wait_for(
            "the photo sent and shown as a thumbnail",
            &format!("(() => {{ const m = {SHADOW}.querySelector('.sb-msg[data-sender=customer][data-seq] .sb-att-image img'); return m && m.complete && m.naturalWidth > 0 ? [...{SHADOW}.querySelectorAll('.sb-upload')].map(u => u.dataset.state) : null; }})()"),
        )
        .await
        .unwrap();
    assert_eq!(
        left,
        json!(["failed"]),
        "only the refused file stays in the tray"
    );
    widget
        .eval(&format!(
            "{SHADOW}.querySelector('.sb-upload-remove').click()"
        ))
        .await
        .unwrap();
    let tray_hidden = widget
        .eval(&format!("{SHADOW}.getElementById('sb-tray').hidden"))
        .await
        .unwrap();
    assert_eq!(tray_hidden, json!(true));

    // The agent sees the thumbnail; behind it is the full image, shown inline.
    let seen = console
        .wait_for(
            "the thumbnail in the console",
            "(() => { const a = document.querySelector('#transcript .msg[data-sender=customer] .att-image'); const img = a && a.querySelector('img'); return img && img.complete && img.naturalWidth > 0 ? [a.href, img.src, img.alt] : null; })()",
        )
        .await
        .unwrap();
    assert_eq!(seen[2], "broken-cup.png");
    let full = reqwest::get(seen[0].as_str().unwrap()).await.unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["content-type"], "image/png");
    assert!(
        full.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline"),
        "{:?}",
        full.headers()
    );
    assert_eq!(full.bytes().await.unwrap().as_ref(), png.as_slice());
    let thumbnail = reqwest::get(seen[1].as_str().unwrap()).await.unwrap();
    assert_eq!(thumbnail.status(), 200);
    assert!(thumbnail.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("image/"));

    // A screenshot pasted into the reply box lands in the tray too; the agent removes it again.
    console
        .eval(&format!(
            "(() => {{ const dt = new DataTransfer(); dt.items.add(new File([new Uint8Array({png})], 'image.png', {{type: 'image/png'}})); document.getElementById('reply').dispatchEvent(new ClipboardEvent('paste', {{clipboardData: dt, bubbles: true, cancelable: true}})); return true; }})()",
            png = serde_json::to_string(&png).unwrap()
        ))
        .await
        .unwrap();
    console
        .wait_for(
            "the pasted image uploaded",
            "(() => { const u = document.querySelector('#attach-tray .upload[data-state=ready]'); return u && u.querySelector('.upload-preview') ? true : null; })()",
        )
        .await
        .unwrap();
    let tray_hidden = console
        .eval("(() => { document.querySelector('#attach-tray .upload-remove').click(); return document.getElementById('attach-tray').hidden; })()")
        .await
        .unwrap();
    assert_eq!(tray_hidden, json!(true));

    // The agent answers with a PDF picked in the file dialog, and a caption.
    let pdf: &[u8] = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n";
    let folder = tempfile::tempdir().unwrap();
    let pdf_path = folder.path().join("return-label.pdf");
    std::fs::write(&pdf_path, pdf).unwrap();
    console
        .set_files("#attach-file", &[pdf_path.as_path()])
        .await
        .unwrap();
    console
        .wait_for(
            "the PDF uploaded",
            "(() => document.querySelector('#attach-tray .upload[data-state=ready]') ? true : null)()",
        )
        .await
        .unwrap();
    let caption = "Here is your return label.";
    console
        .eval(&format!(
            "(() => {{ const r = document.getElementById('reply'); r.value = {caption}; r.dispatchEvent(new Event('input', {{bubbles: true}})); document.getElementById('send').click(); return true; }})()",
            caption = serde_json::to_string(caption).unwrap()
        ))
        .await
        .unwrap();
    console
        .wait_for(
            "the reply with its file confirmed",
            "(() => { const m = [...document.querySelectorAll('#transcript .msg[data-sender=agent][data-seq]')].find(x => x.querySelector('.att-file')); return m && document.getElementById('attach-tray').hidden ? true : null; })()",
        )
        .await
        .unwrap();

    // The customer's widget shows the caption and a download link with the file's name and size.
    let link = widget
        .wait_for(
            "the PDF in the widget",
            &format!("(() => {{ const m = [...{SHADOW}.querySelectorAll('.sb-msg[data-sender=agent]')].find(x => x.querySelector('.sb-att-file')); if (!m) return null; const a = m.querySelector('.sb-att-file'); return [a.href, a.querySelector('.sb-att-name').textContent, a.querySelector('.sb-att-size').textContent, m.querySelector('.sb-bubble').textContent]; }})()"),
        )
        .await
        .unwrap();
    let href = link[0].as_str().unwrap();
    assert!(
        href.starts_with(&app.url("/v1/files/")),
        "an absolute link to the server: {href}"
    );
    assert_eq!(link[1], "return-label.pdf");
    assert_eq!(link[2], format!("{} B", pdf.len()));
    assert!(link[3].as_str().unwrap().contains(caption), "{link}");
    let download = reqwest::get(href).await.unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.headers()["content-type"], "application/pdf");
    let disposition = download.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment") && disposition.contains("return-label.pdf"),
        "{disposition}"
    );
    assert_eq!(download.bytes().await.unwrap().as_ref(), pdf);

    if std::env::var("SWITCHBOARD_SCREENSHOTS").is_ok() {
        save_screenshot(&mut widget, "widget-attachments.png").await;
        save_screenshot(&mut console, "agent-console-attachments.png").await;
    }

    // A link that no longer opens (signed links last an hour; here its signature is spoiled):
    // the image's load error makes the console and the widget ask for fresh links, and the
    // thumbnail shows again.
    console
        .eval("(() => { const img = document.querySelector('#transcript .msg[data-sender=customer] .att-image img'); window.__spoiled = img.src.replace(/sig=[^&]+/, 'sig=0'); img.src = window.__spoiled; return true; })()")
        .await
        .unwrap();
    console
        .wait_for(
            "the console's thumbnail with a fresh link",
            "(() => { const img = document.querySelector('#transcript .msg[data-sender=customer] .att-image img'); return img && img.complete && img.naturalWidth > 0 && img.src !== window.__spoiled && img.src.includes('sig=') ? true : null; })()",
        )
        .await
        .unwrap();
    widget
        .eval(&format!("(() => {{ const img = {SHADOW}.querySelector('.sb-msg[data-sender=customer] .sb-att-image img'); window.__spoiled = img.src.replace(/sig=[^&]+/, 'sig=0'); img.src = window.__spoiled; return true; }})()"))
        .await
        .unwrap();
    widget
        .wait_for(
            "the widget's thumbnail with a fresh link",
            &format!("(() => {{ const img = {SHADOW}.querySelector('.sb-msg[data-sender=customer] .sb-att-image img'); return img && img.complete && img.naturalWidth > 0 && img.src !== window.__spoiled && img.src.includes('sig=') ? true : null; }})()"),
        )
        .await
        .unwrap();

    // An unsent message kept over a reload keeps its attachments; one that names a file this
    // visitor did not upload is refused for good: a notice, no retry button.
    widget
        .eval("(() => { localStorage.setItem('switchboard:acme:outbox', JSON.stringify([{id: '6f1c1a2e-8d0b-4c1e-9a53-3b1f0e7d2c11', text: 'see attached', at: new Date().toISOString(), attachments: [{id: 'at_not_mine', kind: 'file', name: 'x.pdf', size: 3, url: '/v1/files/at_not_mine'}]}])); return true; })()")
        .await
        .unwrap();
    widget.call("Page.reload", json!({})).await.unwrap();
    let refused = widget
        .wait_for(
            "the message with a stranger's file refused",
            &format!("(() => {{ if (!window.Switchboard) return null; window.Switchboard.open(); const h = document.getElementById('switchboard-widget'); const m = h && h.shadowRoot && h.shadowRoot.querySelector('.sb-msg[data-client-msg-id=\"6f1c1a2e-8d0b-4c1e-9a53-3b1f0e7d2c11\"][data-state=failed]'); return m ? [m.dataset.error, !!m.querySelector('.sb-att-file'), !!m.querySelector('.sb-notice'), !!m.querySelector('.sb-retry')] : null; }})()"),
        )
        .await
        .unwrap();
    assert_eq!(refused, json!(["bad_attachment", true, true, false]));
}

/// Lets the tenant's customers send attachments, or not (the tenant's settings, replaced whole).
async fn set_customer_attachments(app: &TestApp, allowed: bool) {
    let (status, mut settings) = app.admin_get("/v1/tenants/acme/settings").await;
    assert_eq!(status, 200, "{settings}");
    settings["attachments"]["customers"] = json!(allowed);
    let (status, body) = app
        .admin_put(
            "/v1/tenants/acme/settings",
            "application/json",
            serde_json::to_vec(&settings).unwrap(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Drops a file named `name` with `bytes` on the widget's panel, the way a browser delivers a
/// file dragged from the desktop (dragenter, dragover, drop with a DataTransfer).
async fn drop_on_widget(browser: &mut Browser, name: &str, media_type: &str, bytes: &[u8]) {
    browser
        .eval(&format!(
            "(() => {{ const file = new File([new Uint8Array({bytes})], {name}, {{type: {media_type}}}); const dt = new DataTransfer(); dt.items.add(file); const panel = {SHADOW}.getElementById('sb-panel'); for (const type of ['dragenter', 'dragover', 'drop']) panel.dispatchEvent(new DragEvent(type, {{dataTransfer: dt, bubbles: true, cancelable: true, composed: true}})); return true; }})()",
            bytes = serde_json::to_string(bytes).unwrap(),
            name = serde_json::to_string(name).unwrap(),
            media_type = serde_json::to_string(media_type).unwrap(),
        ))
        .await
        .unwrap();
}

/// Writes the viewport to docs/screenshots/`name`.
async fn save_screenshot(browser: &mut Browser, name: &str) {
    let png = browser.screenshot(1280, 800).await.expect("screenshot");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/screenshots")
        .join(name);
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(out, png).expect("screenshot written");
}

/// A real RGB PNG of `width` x `height` (diagonal colour bands), written by hand: stored
/// (uncompressed) deflate blocks in a zlib stream, CRC-32 per chunk.
pub(crate) fn tiny_png(width: u32, height: u32) -> Vec<u8> {
    let mut raw = Vec::new();
    for y in 0..height {
        raw.push(0); // no filter
        for x in 0..width {
            let band = ((x + y) / 20) % 3;
            raw.extend_from_slice(match band {
                0 => &[37, 99, 235],
                1 => &[245, 158, 11],
                _ => &[16, 185, 129],
            });
        }
    }
    let mut zlib = vec![0x78, 0x01];
    let chunks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let len = chunk.len() as u16;
        zlib.push(u8::from(i + 1 == chunks.len()));
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(chunk);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());

    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (&b"IHDR"[..], header),
        (b"IDAT", zlib),
        (b"IEND", Vec::new()),
    ] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = png.len();
        png.extend_from_slice(kind);
        png.extend_from_slice(&data);
        let crc = crc32(&png[start..]);
        png.extend_from_slice(&crc.to_be_bytes());
    }
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
