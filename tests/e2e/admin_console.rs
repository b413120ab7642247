//! The operator console (`/admin`, gateway/admin-ui) in Debian's headless Chromium against the
//! real server: a knowledge manager signs in, imports an XLSX file and watches the upload reach
//! done with the per-row report, edits a FAQ and sees "try the bot" answer with it; an admin
//! uploads routing policies, sees a hostile one refused with its error code, and rolls back; a
//! supervisor watches a chat arrive in the live view, leaves the agent a note and takes it over;
//! an admin configures channel apps, trains intents, saves the tenant's LLM endpoint with a
//! write-only key, edits business hours and rotates the key.
//!
//! With `SWITCHBOARD_SCREENSHOTS=1` one more test writes a PNG of every page in English and
//! Chinese to `docs/screenshots/operator-console/` (`=<dir>` writes there instead).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use store::MemberRole;
use switchboard_knowledge::testing::{cell, xlsx};
use switchboard_tests::TestApp;

use crate::chromium::{chromium_or_skip, Browser};

/// A JavaScript string literal of `text`.
fn js(text: &str) -> String {
    serde_json::to_string(text).expect("a string")
}

/// Types `value` into the input matched by `selector` as a person would (input and change
/// events, which the console listens to).
async fn fill(browser: &mut Browser, selector: &str, value: &str) {
    let done = browser
        .eval(&format!(
            "(() => {{ const e = document.querySelector({s}); if (!e) return false; e.focus(); e.value = {v}; e.dispatchEvent(new Event('input', {{bubbles: true}})); e.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()",
            s = js(selector),
            v = js(value)
        ))
        .await
        .expect("fill");
    assert_eq!(done, json!(true), "no element {selector}");
}

async fn click(browser: &mut Browser, selector: &str) {
    let done = browser
        .eval(&format!(
            "(() => {{ const e = document.querySelector({s}); if (!e || e.disabled) return false; e.click(); return true; }})()",
            s = js(selector)
        ))
        .await
        .expect("click");
    assert_eq!(done, json!(true), "cannot click {selector}");
}

/// Waits until `selector` matches an element; answers its text.
async fn wait_text(browser: &mut Browser, selector: &str) -> String {
    browser
        .wait_for(
            selector,
            &format!(
                "(() => {{ const e = document.querySelector({s}); return e ? e.textContent : null; }})()",
                s = js(selector)
            ),
        )
        .await
        .unwrap_or_else(|error| panic!("{selector}: {error}"))
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Opens the console of tenant `acme` at its sign-in form.
async fn open_console(app: &TestApp, binary: &PathBuf) -> Browser {
    let mut browser = Browser::launch(binary).await.expect("chromium starts");
    browser.call("Page.enable", json!({})).await.expect("page");
    browser
        .navigate(&app.url("/admin/?tenant=acme"))
        .await
        .expect("the console loads");
    wait_text(&mut browser, "#signin-submit").await;
    browser
}

/// Fills and sends the sign-in form.
async fn submit_sign_in(browser: &mut Browser, email: &str, password: &str) {
    fill(browser, "#signin-tenant", "acme").await;
    fill(browser, "#signin-email", email).await;
    fill(browser, "#signin-password", password).await;
    click(browser, "#signin-submit").await;
}

/// Opens the console of tenant `acme` and signs in through the form.
async fn sign_in(app: &TestApp, binary: &PathBuf, email: &str, password: &str) -> Browser {
    let mut browser = open_console(app, binary).await;
    submit_sign_in(&mut browser, email, password).await;
    let name = wait_text(&mut browser, "#member-name").await;
    assert_eq!(name, email, "the header names the member");
    browser
}

/// A knowledge manager of the bot-first demo shop signs in.
async fn knowledge_manager_signs_in(app: &TestApp, binary: &PathBuf) -> Browser {
    let email = "km@acme.example";
    let password = app
        .add_member("acme", email, MemberRole::KnowledgeManager)
        .await;
    sign_in(app, binary, email, password.as_str()).await
}

/// The pages in the navigation, in order.
async fn nav_pages(browser: &mut Browser) -> Value {
    browser
        .eval("[...document.querySelectorAll('#nav [data-page]')].map(a => a.dataset.page)")
        .await
        .expect("nav")
}

/// A workbook of three FAQs and one row without an answer (refused, reported by line).
fn faq_workbook() -> Vec<u8> {
    let rows = [
        ["id", "question", "answer", "tags"],
        [
            "xl-gift-wrap",
            "Do you offer gift wrapping?",
            "Yes, at checkout.",
            "orders",
        ],
        [
            "xl-store-hours",
            "When is the shop in Hangzhou open?",
            "Every day from 10:00 to 21:00.",
            "stores",
        ],
        ["xl-broken", "A row without an answer", "", "orders"],
        [
            "xl-bulk",
            "Do you give discounts for bulk orders?",
            "Orders of 50 items or more get 8% off.",
            "promotion",
        ],
    ];
    let mut sheet = String::new();
    for (index, row) in rows.iter().enumerate() {
        let line = index + 1;
        sheet.push_str(&format!(r#"<row r="{line}">"#));
        for (column, text) in ["A", "B", "C", "D"].iter().zip(row) {
            if !text.is_empty() {
                sheet.push_str(&cell(&format!("{column}{line}"), text));
            }
        }
        sheet.push_str("</row>");
    }
    xlsx(&sheet, Some("A1:D5"), None)
}

/// A policy fixture by its absolute path (Chromium reads no path with `..` in it).
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policies/fixtures")
        .join(name)
        .canonicalize()
        .expect("fixture")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knowledge_manager_imports_xlsx_edits_a_faq_and_the_bot_answers_with_it() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let app = TestApp::spawn_bot_first().await;
    let mut browser = knowledge_manager_signs_in(&app, &binary).await;
    // A knowledge manager sees the knowledge base and what their areas allow, not the team.
    let pages = nav_pages(&mut browser).await;
    assert_eq!(pages[0], "knowledge", "{pages}");
    assert!(
        !pages.as_array().expect("pages").contains(&json!("team")),
        "{pages}"
    );
    wait_text(&mut browser, "#kb-table tbody tr[data-faq-id]").await;

    // Import: the XLSX file goes up with a progress bar that reaches done, and the report
    // counts the rows and lists the refused one by its line.
    let dir = tempfile::tempdir().expect("temp dir");
    let workbook = dir.path().join("faqs.xlsx");
    std::fs::write(&workbook, faq_workbook()).expect("workbook written");
    click(&mut browser, "#kb-import").await;
    wait_text(&mut browser, "#import-dialog").await;
    browser
        .set_files("#import-file", &[workbook.as_path()])
        .await
        .expect("file chosen");
    click(&mut browser, "#import-start").await;
    let progress = browser
        .wait_for(
            "the import to finish",
            "(() => { const p = document.querySelector('#import-progress'); return p && (p.dataset.state === 'done' || p.dataset.state === 'error') ? { state: p.dataset.state, value: p.dataset.value, aria: p.querySelector('[role=progressbar]').getAttribute('aria-valuenow') } : null; })()",
        )
        .await
        .expect("the import ends");
    assert_eq!(
        progress,
        json!({"state": "done", "value": "100", "aria": "100"}),
        "the bar reached done"
    );
    assert_eq!(
        wait_text(&mut browser, "#import-inserted .stat-value").await,
        "3"
    );
    assert_eq!(
        wait_text(&mut browser, "#import-errors .stat-value").await,
        "1"
    );
    let refused = wait_text(&mut browser, "#import-error-rows tbody tr").await;
    assert!(refused.starts_with('4'), "line 4 is reported: {refused}");
    click(&mut browser, "#import-dialog .modal-foot .button").await;

    // Edit the imported FAQ: a new answer and another way to ask.
    fill(&mut browser, "#kb-search", "gift wrapping").await;
    browser
        .eval("document.querySelector('#kb-search').form.requestSubmit()")
        .await
        .expect("search");
    wait_text(&mut browser, "#kb-table tr[data-faq-id='xl-gift-wrap']").await;
    click(&mut browser, "#kb-table tr[data-faq-id='xl-gift-wrap']").await;
    wait_text(&mut browser, "#faq-editor #faq-answer").await;
    let answer = "Gift wrapping is 5 yuan: tick \"gift wrap\" at checkout.";
    fill(&mut browser, "#faq-answer", answer).await;
    fill(
        &mut browser,
        "#faq-alternates",
        "Can you wrap my order as a gift?",
    )
    .await;
    click(&mut browser, "#faq-save").await;
    let toast = wait_text(&mut browser, "#toast").await;
    assert!(toast.contains("xl-gift-wrap"), "{toast}");
    let (_, stored) = app.admin_get("/v1/tenants/acme/kb/faqs/xl-gift-wrap").await;
    assert_eq!(stored["answer"], answer, "{stored}");

    // Try the bot: it answers the question with the edited FAQ (once its index has the edit).
    fill(&mut browser, "#try-text", "Do you offer gift wrapping?").await;
    let started = Instant::now();
    let shown = loop {
        click(&mut browser, "#try-ask").await;
        let result = browser
            .wait_for(
                "the bot's decision",
                "(() => { const r = document.querySelector('#try-result'); const b = document.querySelector('#try-ask'); return r && !b.disabled ? { decision: r.dataset.decision, faq: r.dataset.faqId, answer: (document.querySelector('#try-answer') || {}).textContent || '', candidates: document.querySelectorAll('#try-candidates tbody tr').length, confidence: document.querySelector('#try-confidence').textContent } : null; })()",
            )
            .await
            .expect("a decision");
        if result["answer"] == answer || started.elapsed() > Duration::from_secs(20) {
            break result;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(shown["decision"], "answer", "{shown}");
    assert_eq!(shown["faq"], "xl-gift-wrap", "{shown}");
    assert_eq!(shown["answer"], answer, "{shown}");
    assert!(
        shown["candidates"].as_u64().unwrap_or(0) >= 1,
        "the top candidates are listed: {shown}"
    );
    assert!(
        shown["confidence"].as_str().unwrap_or("").contains('%'),
        "{shown}"
    );
}

/// The self-check panel's counts, once it is done (`null` while it runs).
const SELF_CHECK: &str = "(() => { const p = document.querySelector('#kb-selfcheck'); const n = (id) => Number(document.querySelector(id).dataset.count); return p && p.dataset.state === 'done' && document.querySelector('#selfcheck-right') ? { right: n('#selfcheck-right'), abstained: n('#selfcheck-abstained'), wrong: n('#selfcheck-wrong'), negatives_answered: Number(document.querySelector('#selfcheck-negatives').dataset.answered), misses: document.querySelectorAll('#selfcheck-misses tbody tr').length, took: document.querySelector('#selfcheck-took').textContent } : null; })()";

/// A knowledge manager sees how well the bot knows the knowledge base (each alternate held out
/// and asked against the rest), opens an FAQ from what it misses, and the panel checks again
/// after the FAQ changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knowledge_manager_sees_what_the_bot_misses_and_the_check_follows_a_change() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let app = TestApp::spawn_bot_first().await;
    let mut browser = knowledge_manager_signs_in(&app, &binary).await;
    let shown = browser
        .wait_for("the self-check", SELF_CHECK)
        .await
        .expect("the self-check is shown");
    // The panel shows what the route reports (the check is deterministic for one index).
    let (status, report) = app.admin_get("/v1/tenants/acme/bot/selfcheck").await;
    assert_eq!(status, 200, "{report}");
    for field in ["right", "abstained", "wrong", "negatives_answered"] {
        assert_eq!(shown[field], report[field], "{field}: {shown} / {report}");
    }
    let queries = report["queries"].as_u64().expect("queries");
    assert_eq!(
        ["right", "abstained", "wrong"]
            .iter()
            .map(|field| shown[*field].as_u64().expect("a count"))
            .sum::<u64>(),
        queries
    );
    assert_eq!(
        shown["misses"].as_u64(),
        report["misses"]
            .as_array()
            .map(|misses| misses.len() as u64),
        "{shown}"
    );

    // A miss that belongs to an FAQ opens that FAQ's editor.
    let expected = browser
        .eval("(() => { const row = [...document.querySelectorAll('#selfcheck-misses tbody tr')].find(r => r.dataset.expected !== 'none'); if (!row) return null; row.click(); return row.dataset.expected; })()")
        .await
        .expect("a miss");
    let expected = expected
        .as_str()
        .unwrap_or_else(|| panic!("the demo has misses of an FAQ: {report}"))
        .to_owned();
    wait_text(&mut browser, "#faq-editor #faq-answer").await;
    let opened = browser
        .eval("document.querySelector('#faq-id').value")
        .await
        .expect("the id");
    assert_eq!(opened, json!(expected));

    // One more way to ask: after the save the panel checks again by itself and asks one more
    // held-out text.
    let alternates = browser
        .eval("document.querySelector('#faq-alternates').value")
        .await
        .expect("alternates");
    let added = "请问这个问题怎么处理比较好";
    fill(
        &mut browser,
        "#faq-alternates",
        &format!("{}\n{added}", alternates.as_str().unwrap_or_default()),
    )
    .await;
    click(&mut browser, "#faq-save").await;
    wait_text(&mut browser, "#toast").await;
    browser
        .wait_for(
            "the check to start again",
            "document.querySelector('#kb-selfcheck').dataset.state === 'loading' || null",
        )
        .await
        .expect("the panel checks again after the change");
    let started = Instant::now();
    let again = loop {
        let again = browser
            .wait_for("the self-check", SELF_CHECK)
            .await
            .expect("the self-check ends");
        let asked = ["right", "abstained", "wrong"]
            .iter()
            .map(|field| again[*field].as_u64().unwrap_or(0))
            .sum::<u64>();
        // The bot indexes a change a moment after the store; under load, ask once more.
        if asked == queries + 1 || started.elapsed() > Duration::from_secs(30) {
            break asked;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        click(&mut browser, "#selfcheck-run").await;
    };
    assert_eq!(again, queries + 1, "the new alternate is asked too");
    if std::env::var("SWITCHBOARD_SCREENSHOTS").is_ok() {
        let shot = browser.screenshot(1440, 1100).await.expect("screenshot");
        let out = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/screenshots/operator-console-selfcheck.png");
        std::fs::write(out, shot).expect("screenshot written");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_uploads_policies_sees_a_bad_one_refused_and_rolls_back() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let app = TestApp::spawn().await;
    let email = "admin@acme.example";
    let password = app.add_member("acme", email, MemberRole::Admin).await;
    // A wrong password is refused with its own message; the right one signs in.
    let mut browser = open_console(&app, &binary).await;
    submit_sign_in(&mut browser, email, "not the password").await;
    let refused = browser
        .wait_for(
            "the refusal",
            "(() => { const e = document.querySelector('#signin-error'); return e ? [e.dataset.code, e.textContent] : null; })()",
        )
        .await
        .expect("refused");
    assert_eq!(refused[0], "bad_credentials", "{refused}");
    submit_sign_in(&mut browser, email, password.as_str()).await;
    assert_eq!(wait_text(&mut browser, "#member-name").await, email);
    let pages = nav_pages(&mut browser).await;
    assert_eq!(
        pages,
        json!([
            "knowledge",
            "gaps",
            "policies",
            "intents",
            "live",
            "reports",
            "channels",
            "team",
            "settings",
            "audit"
        ])
    );
    click(&mut browser, "#nav [data-page=policies]").await;
    wait_text(&mut browser, "#policy-routing").await;

    // Two good versions: each is validated, stored and made active.
    for (name, version) in [("vip-routing.wasm", 1), ("language-routing.wasm", 2)] {
        browser
            .set_files("#policy-file", &[fixture(name).as_path()])
            .await
            .expect("file chosen");
        click(&mut browser, "#policy-upload").await;
        let outcome = wait_text(&mut browser, "#policy-outcome, #policy-error").await;
        assert!(outcome.contains(&version.to_string()), "{name}: {outcome}");
        browser
            .wait_for(
                "the new version listed as active",
                &format!("document.querySelector('#policy-versions tr[data-version=\"{version}\"][data-active=true]') ? true : null"),
            )
            .await
            .expect("listed");
    }
    let row = wait_text(&mut browser, "#policy-versions tr[data-version='2']").await;
    assert!(row.contains(email), "uploaded_by is shown: {row}");

    // A component importing what policies may not use is refused with its code and message,
    // and nothing changes.
    browser
        .set_files("#policy-file", &[fixture("hostile-import.wasm").as_path()])
        .await
        .expect("file chosen");
    click(&mut browser, "#policy-upload").await;
    let code = browser
        .wait_for(
            "the refusal",
            "(() => { const e = document.querySelector('#policy-error'); return e ? e.dataset.code : null; })()",
        )
        .await
        .expect("refused");
    assert_eq!(code, "forbidden_import");
    let message = wait_text(&mut browser, "#policy-error .note-detail").await;
    assert!(!message.is_empty());
    let rows = browser
        .eval("document.querySelectorAll('#policy-versions tr[data-version]').length")
        .await
        .expect("rows");
    assert_eq!(rows, json!(2), "a refused component is not stored");

    // Roll back to version 1 (the button asks once more).
    click(&mut browser, "[data-activate='1']").await;
    click(&mut browser, "[data-activate='1'][data-armed=true]").await;
    browser
        .wait_for(
            "version 1 active again",
            "document.querySelector('#policy-versions tr[data-version=\"1\"][data-active=true]') && document.querySelector('#policy-versions tr[data-version=\"2\"][data-active=false]') ? true : null",
        )
        .await
        .expect("rolled back");
    let (_, versions) = app.admin_get("/v1/tenants/acme/policies/routing").await;
    let active: Vec<i64> = versions["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter(|v| v["active"] == true)
        .filter_map(|v| v["version"].as_i64())
        .collect();
    assert_eq!(active, vec![1], "{versions}");

    // The routing dry run names the version that decided.
    fill(&mut browser, "#dry-vip", "3").await;
    click(&mut browser, "#dry-run").await;
    let decided_by = wait_text(&mut browser, "#dry-decided-by").await;
    assert!(decided_by.contains("v1"), "{decided_by}");

    // Settings: one changed field is sent as a merge patch; the rest stays as it was.
    let (_, before) = app.admin_get("/v1/tenants/acme/settings").await;
    click(&mut browser, "#nav [data-page=settings]").await;
    wait_text(&mut browser, "#settings-save").await;
    fill(&mut browser, "#set-bot-answer_threshold", "0.62").await;
    assert!(wait_text(&mut browser, "#settings-changes")
        .await
        .contains('1'));
    click(&mut browser, "#settings-save").await;
    wait_text(&mut browser, "#toast").await;
    let (_, after) = app.admin_get("/v1/tenants/acme/settings").await;
    let threshold = after["bot"]["answer_threshold"].as_f64().unwrap_or(0.0);
    assert!((threshold - 0.62).abs() < 1e-4, "{after}");
    let mut expected = before.clone();
    expected["bot"]["answer_threshold"] = after["bot"]["answer_threshold"].clone();
    assert_eq!(after, expected, "only the changed field changed");
}

/// A supervisor reading a chat in the live view sees the customer's image as a thumbnail that
/// links the full image, and a PDF as a download link with its name and size.
#[tokio::test]
async fn supervisor_sees_the_customers_attachments_in_the_transcript() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let app = TestApp::spawn().await;
    let email = "lin@acme.example";
    let password = app.add_member("acme", email, MemberRole::Supervisor).await;
    let visitor = app.visitor().await;
    let png = crate::browser::tiny_png(64, 48);
    let pdf = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n".to_vec();
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for (name, bytes) in [("cup.png", png.clone()), ("invoice.pdf", pdf.clone())] {
        let response = client
            .post(app.url(&format!("/v1/web/attachments?name={name}")))
            .bearer_auth(&visitor)
            .body(bytes)
            .send()
            .await
            .expect("upload");
        assert_eq!(response.status(), 201, "{name}");
        let view: Value = response.json().await.expect("json");
        ids.push(view["id"].as_str().expect("id").to_owned());
    }
    let mut customer = app.customer_ws(&visitor).await;
    customer
        .send(json!({"type": "send", "client_msg_id": "c1", "text": "It arrived broken", "attachments": ids}))
        .await;
    customer.expect_type("receipt").await;

    let mut browser = sign_in(&app, &binary, email, password.as_str()).await;
    wait_text(&mut browser, "#live-table tr[data-state=queued]").await;
    click(&mut browser, "#live-table tr[data-state=queued]").await;
    let shown = browser
        .wait_for(
            "the attachments in the transcript",
            "(() => { const line = document.querySelector('#transcript .line-customer'); const a = line && line.querySelector('.attachment-image'); const img = a && a.querySelector('img'); const file = line && line.querySelector('.attachment-file'); return img && img.complete && img.naturalWidth > 0 && file ? [a.href, img.alt, file.href, file.querySelector('.attachment-name').textContent, file.querySelector('.attachment-size').textContent, line.querySelector('.bubble').textContent] : null; })()",
        )
        .await
        .expect("attachments");
    assert_eq!(shown[1], "cup.png");
    assert_eq!(shown[3], "invoice.pdf");
    assert_eq!(shown[4], format!("{} B", pdf.len()));
    assert_eq!(shown[5], "It arrived broken");
    if std::env::var("SWITCHBOARD_SCREENSHOTS").is_ok() {
        let shot = browser.screenshot(1280, 800).await.expect("screenshot");
        let out = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/screenshots/operator-console-attachments.png");
        std::fs::write(out, shot).expect("screenshot written");
    }
    let image = reqwest::get(shown[0].as_str().expect("href"))
        .await
        .expect("image");
    assert_eq!(image.headers()["content-type"], "image/png");
    assert_eq!(image.bytes().await.expect("bytes").as_ref(), png.as_slice());
    let file = reqwest::get(shown[2].as_str().expect("href"))
        .await
        .expect("file");
    assert!(file.headers()["content-disposition"]
        .to_str()
        .expect("header")
        .starts_with("attachment"));
    assert_eq!(file.bytes().await.expect("bytes").as_ref(), pdf.as_slice());
}

/// An admin erases a customer from a closed conversation's transcript (a deletion request):
/// the button asks twice, the toast counts what went, and the customer is gone from the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_erases_a_customer_from_a_closed_conversation() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let app = TestApp::spawn().await;
    let email = "root@acme.example";
    let password = app.add_member("acme", email, MemberRole::Admin).await;
    let (_, agent_token) = app.create_agent("Alice", &["general"], 3).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let (visitor, session) = app.visitor_in("acme").await;
    let customer_id = session["customer_id"].as_str().expect("id").to_owned();
    let upload = reqwest::Client::new()
        .post(app.url("/v1/web/attachments?name=cup.png"))
        .bearer_auth(&visitor)
        .body(crate::browser::tiny_png(64, 48))
        .send()
        .await
        .expect("upload");
    let photo: Value = upload.json().await.expect("json");
    let mut customer = app.customer_ws(&visitor).await;
    customer
        .send(json!({"type": "send", "client_msg_id": "c1", "text": "It arrived broken", "attachments": [photo["id"]]}))
        .await;
    customer.expect_type("receipt").await;
    let assigned = agent.expect_type("assigned").await;
    let conversation = assigned["conversation"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    agent
        .send(json!({"type": "send", "conversation_id": conversation, "client_msg_id": "a1", "text": "Sorry! A new one is on its way."}))
        .await;
    agent.expect_type("receipt").await;
    agent
        .send(json!({"type": "close", "conversation_id": conversation}))
        .await;
    agent.expect_type("unassigned").await;

    let mut browser = sign_in(&app, &binary, email, password.as_str()).await;
    click(&mut browser, "#nav [data-page=live]").await;
    wait_text(&mut browser, "#tab-history").await;
    click(&mut browser, "#tab-history").await;
    let row = format!("#history-table tr[data-conversation={}]", js(&conversation));
    wait_text(&mut browser, &row).await;
    click(&mut browser, &row).await;
    wait_text(&mut browser, "#history-transcript .line-customer").await;
    click(&mut browser, "#erase-customer").await;
    let armed = wait_text(&mut browser, "#erase-customer[data-armed=true]").await;
    assert!(armed.contains("Click again"), "{armed}");
    if std::env::var("SWITCHBOARD_SCREENSHOTS").is_ok() {
        let shot = browser.screenshot(1280, 800).await.expect("screenshot");
        let out = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/screenshots/operator-console-erase-customer.png");
        std::fs::write(out, shot).expect("screenshot written");
    }
    click(&mut browser, "#erase-customer").await;
    let toast = wait_text(&mut browser, "#toast").await;
    assert!(toast.contains("files: 1"), "{toast}");
    let (status, _) = app
        .admin_get(&format!("/v1/tenants/acme/customers/{customer_id}"))
        .await;
    assert_eq!(status, 404);
    browser
        .wait_for(
            "the conversation gone from the list",
            &format!("document.querySelector({}) ? null : true", js(&row)),
        )
        .await
        .expect("gone");
}

/// A JavaScript expression: the live row of `conversation` has `state`.
fn live_row_in(conversation: &str, state: &str) -> String {
    format!(
        "document.querySelector('#live-table tr[data-conversation={c}][data-state={s}]') ? true : null",
        c = js(conversation),
        s = js(state)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_watches_a_chat_arrive_notes_the_agent_and_takes_it_over() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    // Human first: every chat queues for a person.
    let app = TestApp::spawn().await;
    let email = "chen@acme.example";
    let password = app.add_member("acme", email, MemberRole::Supervisor).await;
    let mut browser = sign_in(&app, &binary, email, password.as_str()).await;
    assert_eq!(nav_pages(&mut browser).await, json!(["live", "reports"]));
    browser
        .wait_for(
            "the live socket",
            "(() => { const s = document.querySelector('#live-status'); return s && s.dataset.state === 'live' ? true : null; })()",
        )
        .await
        .expect("live");
    // Marks this page load: a reload would lose it.
    browser
        .eval("window.__sameLoad = true")
        .await
        .expect("mark");

    // A customer writes: the chat appears in its queue, pushed over the socket.
    let visitor = app.visitor().await;
    let mut customer = app.customer_ws(&visitor).await;
    let text = "My parcel never arrived, please help";
    customer
        .send(json!({"type": "send", "client_msg_id": "c1", "text": text}))
        .await;
    let queued = browser
        .wait_for(
            "the chat in the queue",
            "(() => { const r = document.querySelector('#live-table tr[data-state=queued]'); const q = document.querySelector('#live-queues [data-queue]'); return r && q ? { id: r.dataset.conversation, waiting: q.dataset.waiting, oldest: (q.querySelector('.queue-oldest') || {}).textContent || '' } : null; })()",
        )
        .await
        .expect("queued");
    let conversation = queued["id"].as_str().expect("id").to_owned();
    assert_eq!(queued["waiting"], "1", "{queued}");
    assert!(
        queued["oldest"].as_str().unwrap_or("").contains(':'),
        "{queued}"
    );
    assert_eq!(
        browser
            .eval("window.__sameLoad === true")
            .await
            .expect("mark"),
        json!(true),
        "no reload"
    );

    // An agent comes online and gets it; the live view follows.
    let (agent_id, agent_token) = app.create_agent("Wang Fang", &["general"], 3).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let assigned = agent
        .expect("the chat", |frame| frame["type"] == "assigned")
        .await;
    assert_eq!(assigned["conversation"]["id"], conversation.as_str());
    browser
        .wait_for("the chat assigned", &live_row_in(&conversation, "assigned"))
        .await
        .expect("assigned");
    let load = wait_text(
        &mut browser,
        &format!("#live-agents [data-agent={}] .bar-value", js(&agent_id)),
    )
    .await;
    assert_eq!(load, "1/3");

    // The supervisor opens it: the transcript, read-only.
    click(
        &mut browser,
        &format!("#live-table tr[data-conversation={}]", js(&conversation)),
    )
    .await;
    browser
        .wait_for(
            "the customer's message",
            &format!(
                "[...document.querySelectorAll('#transcript .line-customer .bubble')].some(b => b.textContent === {}) ? true : null",
                js(text)
            ),
        )
        .await
        .expect("transcript");

    // A transfer to a group nobody has is refused with its code.
    browser
        .eval("(() => { const s = document.querySelector('#transfer-to'); const o = document.createElement('option'); o.value = 'skill:no-such-group'; s.appendChild(o); return true; })()")
        .await
        .expect("option");
    fill(&mut browser, "#transfer-to", "skill:no-such-group").await;
    click(&mut browser, "#transfer-submit").await;
    let code = browser
        .wait_for(
            "the refusal",
            "(() => { const e = document.querySelector('#transfer-error'); return e ? e.dataset.code : null; })()",
        )
        .await
        .expect("refused");
    assert_eq!(code, "unknown_skill");

    // A private note reaches the agent, not the customer.
    let note = "VIP customer: offer a refund";
    fill(&mut browser, "#note-text", note).await;
    click(&mut browser, "#note-add").await;
    let frame = agent
        .expect("the note", |frame| frame["type"] == "note")
        .await;
    assert_eq!(frame["conversation_id"], conversation.as_str());
    assert_eq!(frame["text"], note);
    assert_eq!(frame["author"], email, "{frame}");
    let shown = wait_text(&mut browser, "#notes .note-item").await;
    assert!(shown.contains(note), "{shown}");

    // Take over (the button asks once more): the agent loses the chat.
    click(&mut browser, "#takeover").await;
    click(&mut browser, "#takeover[data-armed=true]").await;
    let unassigned = agent
        .expect("the chat leaves", |frame| frame["type"] == "unassigned")
        .await;
    assert_eq!(unassigned["conversation_id"], conversation.as_str());
    assert_eq!(unassigned["reason"], "taken_over", "{unassigned}");
    let link = browser
        .wait_for(
            "the console link",
            "(() => { const a = document.querySelector('#takeover-link'); return a ? a.getAttribute('href') : null; })()",
        )
        .await
        .expect("link");
    assert!(
        link.as_str().unwrap_or("").starts_with("/console#token="),
        "{link}"
    );
    let holder = browser
        .wait_for(
            "the supervisor's agent record holds it",
            &format!(
                "(() => {{ const a = document.querySelector('#conversation-agent'); return a && !a.textContent.includes({}) ? a.textContent : null; }})()",
                js("Wang Fang")
            ),
        )
        .await
        .expect("holder");
    assert!(holder.as_str().unwrap_or("").contains(':'), "{holder}");
    let (_, stored) = app
        .admin_get(&format!("/v1/tenants/acme/conversations/{conversation}"))
        .await;
    assert_ne!(
        stored["conversation"]["agent_id"],
        agent_id.as_str(),
        "{stored}"
    );
    assert_eq!(stored["conversation"]["state"], "assigned", "{stored}");
}

/// One chat from a customer to an agent and back, closed by the agent and rated `score` by the
/// customer: what the reports count.
async fn rated_chat(app: &TestApp, agent_token: &str, text: &str, score: i64) {
    let mut agent = app.agent_ws(agent_token).await;
    let visitor = app.visitor().await;
    let mut customer = app.customer_ws(&visitor).await;
    customer
        .send(json!({"type": "send", "client_msg_id": "c1", "text": text}))
        .await;
    let id = agent.expect_type("assigned").await["conversation"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    agent
        .send(json!({"type": "send", "conversation_id": id, "client_msg_id": "a1", "text": "好的，马上处理"}))
        .await;
    customer.expect_text("好的，马上处理").await;
    agent
        .send(json!({"type": "close", "conversation_id": id}))
        .await;
    customer
        .expect("the survey", |frame| frame["survey"]["scale"] == 5)
        .await;
    customer.send(json!({"type": "rate", "score": score})).await;
    customer.expect_type("rated").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_reads_the_reports_filters_them_and_downloads_a_table() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let app = TestApp::spawn().await;
    let (agent_id, agent_token) = app.create_agent("Wang Fang", &["general"], 3).await;
    rated_chat(&app, &agent_token, "我要人工客服，订单还没发货", 4).await;
    rated_chat(&app, &agent_token, "转人工，发票怎么开", 2).await;
    let email = "zhou@acme.example";
    let password = app.add_member("acme", email, MemberRole::Supervisor).await;
    let mut browser = sign_in(&app, &binary, email, password.as_str()).await;
    click(&mut browser, "#nav [data-page=reports]").await;
    // The episodes are written just after each close: the page shows both.
    let totals = browser
        .wait_for(
            "the totals",
            "(() => { const v = document.querySelector('#kpi-episodes .stat-value'); return v && v.textContent === '2' ? [...document.querySelectorAll('#report-totals .stat-value')].map(e => e.textContent) : null; })()",
        )
        .await
        .expect("totals");
    // Two conversations, none resolved by the bot, both handed to a person, CSAT 3.00.
    assert_eq!(totals[0], "2", "{totals}");
    assert_eq!(totals[1], "0%", "{totals}");
    assert_eq!(totals[2], "100%", "{totals}");
    assert_eq!(totals[4], "3.00", "{totals}");
    let bars = browser
        .eval("document.querySelectorAll('#chart-by-day rect').length")
        .await
        .expect("bars");
    assert!(bars.as_u64().unwrap_or(0) >= 1, "{bars}");
    let agent_row = wait_text(
        &mut browser,
        &format!("#agents-table tr[data-key={}]", js(&agent_id)),
    )
    .await;
    assert!(agent_row.contains("Wang Fang"), "{agent_row}");
    // The CSV link downloads the same table with the page's filters.
    let href = browser
        .eval("document.querySelector('[data-csv=by_agent]').getAttribute('href')")
        .await
        .expect("href");
    let href = href.as_str().expect("a link").to_owned();
    assert!(
        href.starts_with("/v1/tenants/acme/reports/by_agent.csv?from="),
        "{href}"
    );
    // A filter that matches nothing empties the page.
    fill(&mut browser, "#report-channel", "wechat").await;
    click(&mut browser, "#report-apply").await;
    browser
        .wait_for(
            "the filtered totals",
            "(() => { const v = document.querySelector('#kpi-episodes .stat-value'); return v && v.textContent === '0' ? true : null; })()",
        )
        .await
        .expect("filtered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_configures_channels_trains_intents_sets_hours_and_rotates_the_key() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    // The LLM endpoint below is a loopback http URL: allowed on this node only.
    let app = TestApp::spawn_with(|settings| {
        settings.channels.allow_http_push_urls = true;
        settings.channels.allow_private_push_hosts = true;
    })
    .await;
    let email = "admin@acme.example";
    let password = app.add_member("acme", email, MemberRole::Admin).await;
    let mut browser = sign_in(&app, &binary, email, password.as_str()).await;

    // Channels: a WeChat app is configured; its secrets are listed as set, never shown.
    click(&mut browser, "#nav [data-page=channels]").await;
    wait_text(&mut browser, "#channel-add").await;
    click(&mut browser, "#channel-add").await;
    wait_text(&mut browser, "#channel-editor").await;
    fill(&mut browser, "#channel-app", "shop").await;
    fill(&mut browser, "#channel-appid", "wx1234567890").await;
    fill(&mut browser, "#channel-token", "pushtoken").await;
    fill(&mut browser, "#channel-appsecret", "the-app-secret").await;
    click(&mut browser, "#channel-save").await;
    let row = wait_text(&mut browser, "#channels-table tr[data-app='wechat/shop']").await;
    assert!(row.contains("wx1234567890"), "{row}");
    assert!(!row.contains("the-app-secret"), "{row}");
    let webhook = browser
        .eval("document.querySelector(\"#channels-table tr[data-app='wechat/shop'] [data-copy]\").dataset.copy")
        .await
        .expect("webhook");
    assert_eq!(webhook, json!(app.url("/v1/channels/wechat/acme/shop")));
    let (_, stored) = app.admin_get("/v1/tenants/acme/channels/wechat/shop").await;
    assert_eq!(
        stored["secrets_set"],
        json!(["appsecret", "token"]),
        "{stored}"
    );
    // Its deliveries: none yet, and the last day's counts.
    wait_text(
        &mut browser,
        "#deliveries[data-app='wechat/shop'] #deliveries-day",
    )
    .await;
    // A mobile app with a short secret is refused with the server's code.
    click(&mut browser, "#channel-add").await;
    wait_text(&mut browser, "#channel-editor").await;
    fill(&mut browser, "#channel-kind", "mobile").await;
    fill(&mut browser, "#channel-app", "ios").await;
    fill(&mut browser, "#channel-jwt_secret", "short").await;
    click(&mut browser, "#channel-save").await;
    let code = browser
        .wait_for(
            "the refusal",
            "(() => { const e = document.querySelector('#channel-error'); return e ? e.dataset.code : null; })()",
        )
        .await
        .expect("refused");
    assert_eq!(code, "bad_config");
    click(&mut browser, "#channel-editor .icon-button").await;

    // Intents: train from a file, watch the job to its report, classify with the new head.
    click(&mut browser, "#nav [data-page=intents]").await;
    wait_text(&mut browser, "#model-current[data-kind=builtin]").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("intents.jsonl");
    std::fs::write(&file, switchboard_tests::intent_training_lines()).expect("training file");
    browser
        .set_files("#train-file", &[file.as_path()])
        .await
        .expect("file chosen");
    click(&mut browser, "#train-start").await;
    let state = browser
        .wait_for(
            "the training to end",
            "(() => { const p = document.querySelector('#train-progress'); return p && (p.dataset.state === 'done' || p.dataset.state === 'error') ? p.dataset.state : null; })()",
        )
        .await
        .expect("trained");
    assert_eq!(state, "done");
    let count = wait_text(
        &mut browser,
        "#train-labels [data-label=order_status] .bar-value",
    )
    .await;
    assert_eq!(count, "8");
    let accuracy = wait_text(&mut browser, "#report-held_out_accuracy .stat-value").await;
    assert!(accuracy.contains('%'), "{accuracy}");
    wait_text(&mut browser, "#jobs-table tr[data-job][data-state=done]").await;
    wait_text(&mut browser, "#model-current[data-kind=trained]").await;
    fill(&mut browser, "#classify-text", "我的快递现在在哪里").await;
    click(&mut browser, "#classify-submit").await;
    let classified = browser
        .wait_for(
            "the label",
            "(() => { const r = document.querySelector('#classify-result'); return r ? [r.dataset.label, r.dataset.model] : null; })()",
        )
        .await
        .expect("classified");
    assert_eq!(classified, json!(["order_status", "trained"]));

    // The tenant's LLM endpoint: none yet; a bad URL is refused with the server's code and
    // message; saved with a key, the page says a key is set and never holds the key itself.
    let (_, before) = app.admin_get("/v1/tenants/acme/settings").await;
    click(&mut browser, "#nav [data-page=settings]").await;
    wait_text(&mut browser, "#llm-current[data-state=none]").await;
    let needs = wait_text(&mut browser, "#llm-needs-enabled").await;
    assert!(needs.contains("llm_enabled"), "{needs}");
    let timeout = browser
        .eval("document.querySelector('#llm-timeout_ms').value")
        .await
        .expect("timeout");
    assert_eq!(timeout, json!("3000"), "the default timeout");
    fill(&mut browser, "#llm-base_url", "ftp://127.0.0.1:9/v1").await;
    fill(&mut browser, "#llm-model", "qwen-plus").await;
    click(&mut browser, "#llm-save").await;
    let refused = browser
        .wait_for(
            "the refusal",
            "(() => { const e = document.querySelector('#llm-error'); return e ? [e.dataset.code, e.textContent] : null; })()",
        )
        .await
        .expect("refused");
    assert_eq!(refused[0], "bad_llm", "{refused}");
    assert!(
        refused[1].as_str().unwrap_or_default().contains("base_url"),
        "the server's message is shown: {refused}"
    );
    let llm_key = "sk-console-test-7f3a9c";
    fill(&mut browser, "#llm-base_url", "http://127.0.0.1:9/v1").await;
    fill(&mut browser, "#llm-timeout_ms", "2500").await;
    fill(&mut browser, "#llm-api_key", llm_key).await;
    click(&mut browser, "#llm-save").await;
    let key_set = wait_text(&mut browser, "#llm-key-set").await;
    assert!(key_set.contains("a key is set"), "{key_set}");
    let current = wait_text(&mut browser, "#llm-current[data-state=own]").await;
    assert!(current.contains("http://127.0.0.1:9/v1"), "{current}");
    assert!(current.contains("qwen-plus"), "{current}");
    let (_, stored) = app.admin_get("/v1/tenants/acme/bot/llm").await;
    assert_eq!(
        stored["llm"]["base_url"], "http://127.0.0.1:9/v1",
        "{stored}"
    );
    assert_eq!(stored["llm"]["timeout_ms"], 2500, "{stored}");
    assert_eq!(stored["llm"]["api_key_set"], true, "{stored}");
    let page_has_key = |key: &str| {
        format!(
            "document.documentElement.outerHTML.includes({k}) || [...document.querySelectorAll('input, textarea')].some(e => e.value.includes({k}))",
            k = js(key)
        )
    };
    let shown = browser.eval(&page_has_key(llm_key)).await.expect("page");
    assert_eq!(shown, json!(false), "the key is never on the page");
    // Back on the page later: still only "a key is set", the key field empty.
    click(&mut browser, "#nav [data-page=audit]").await;
    wait_text(&mut browser, "#audit-table").await;
    click(&mut browser, "#nav [data-page=settings]").await;
    wait_text(&mut browser, "#llm-key-set").await;
    let shown = browser.eval(&page_has_key(llm_key)).await.expect("page");
    assert_eq!(shown, json!(false), "the key is never on the page");
    // Removing the key (a second click confirms) keeps the endpoint.
    click(&mut browser, "#llm-remove-key").await;
    click(&mut browser, "#llm-remove-key[data-armed=true]").await;
    browser
        .wait_for(
            "the key removed",
            "(() => !document.querySelector('#llm-key-set') && !document.querySelector('#llm-remove-key') || null)()",
        )
        .await
        .expect("key removed");
    let (_, stored) = app.admin_get("/v1/tenants/acme/bot/llm").await;
    assert_eq!(stored["llm"]["api_key_set"], false, "{stored}");
    assert_eq!(stored["llm"]["model"], "qwen-plus", "{stored}");
    // Removing the endpoint (a second click confirms): none again.
    click(&mut browser, "#llm-delete").await;
    click(&mut browser, "#llm-delete[data-armed=true]").await;
    wait_text(&mut browser, "#llm-current[data-state=none]").await;
    let (_, stored) = app.admin_get("/v1/tenants/acme/bot/llm").await;
    assert_eq!(stored["llm"], Value::Null, "{stored}");

    // Business hours: a bad time is refused by the server with its message; a good one is saved
    // as a merge patch of business_hours alone.
    wait_text(&mut browser, "#tab-hours").await;
    click(&mut browser, "#tab-hours").await;
    wait_text(&mut browser, "#hours-save").await;
    click(&mut browser, "#hours-enabled").await;
    click(
        &mut browser,
        "#hours-spans [data-span='0'] input[data-day=sat]",
    )
    .await;
    fill(
        &mut browser,
        "#hours-spans [data-span='0'] .span-open",
        "25:00",
    )
    .await;
    fill(&mut browser, "#holiday-new", "2026-10-01").await;
    click(&mut browser, "#holiday-add").await;
    click(&mut browser, "#hours-ooh [data-value=reject]").await;
    click(&mut browser, "#hours-save").await;
    let refused = browser
        .wait_for(
            "the refusal",
            "(() => { const e = document.querySelector('#hours-error'); return e ? [e.dataset.code, e.textContent] : null; })()",
        )
        .await
        .expect("refused");
    assert_eq!(refused[0], "bad_settings", "{refused}");
    fill(
        &mut browser,
        "#hours-spans [data-span='0'] .span-open",
        "08:30",
    )
    .await;
    click(&mut browser, "#hours-save").await;
    wait_text(&mut browser, "#toast").await;
    let (_, after) = app.admin_get("/v1/tenants/acme/settings").await;
    let hours = &after["business_hours"];
    assert_eq!(hours["enabled"], true, "{after}");
    assert_eq!(hours["weekly"][0]["open"], "08:30", "{after}");
    assert_eq!(
        hours["weekly"][0]["days"],
        json!(["mon", "tue", "wed", "thu", "fri", "sat"]),
        "{after}"
    );
    assert_eq!(hours["holidays"], json!(["2026-10-01"]), "{after}");
    assert_eq!(hours["out_of_hours"], "reject", "{after}");
    let mut expected = before.clone();
    expected["business_hours"] = after["business_hours"].clone();
    assert_eq!(after, expected, "only business_hours changed");

    // The admin key: rotated after a confirm step, shown once; the old key is refused.
    click(&mut browser, "#tab-adminkey").await;
    wait_text(&mut browser, "#adminkey-rotate").await;
    click(&mut browser, "#adminkey-rotate").await;
    click(&mut browser, "#adminkey-rotate[data-armed=true]").await;
    let key = wait_text(&mut browser, "#adminkey-secret .secret-value").await;
    assert!(key.len() >= 20, "{key}");
    let (status, _) = app.admin_get("/v1/tenants/acme/settings").await;
    assert_eq!(status, 401, "the old key is refused");
    let response = app
        .http
        .get(app.url("/v1/tenants/acme/settings"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "the new key works");
}

/// Every page of the console in English and Chinese, as PNGs for the docs. Runs only with
/// `SWITCHBOARD_SCREENSHOTS` set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshots_of_every_page_in_both_languages() {
    let Ok(target) = std::env::var("SWITCHBOARD_SCREENSHOTS") else {
        return;
    };
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let out = if target == "1" || target.is_empty() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots/operator-console")
    } else {
        PathBuf::from(target)
    };
    std::fs::create_dir_all(&out).expect("screenshot folder");
    // Quiet bot conversations close within a second, so the reports have the bot's share too.
    let app = TestApp::spawn_bot_first_with(|settings| {
        settings.idle_close.bot_quiet_ms = 500;
        settings.idle_close.sweep_every_ms = 100;
    })
    .await;
    let email = "lin@acme.example";
    let password = app.add_member("acme", email, MemberRole::Admin).await;
    // Some content on every page.
    for (kind, name) in [
        ("routing", "vip-routing.wasm"),
        ("routing", "language-routing.wasm"),
    ] {
        let wasm = std::fs::read(fixture(name)).expect("fixture");
        let (status, body) = app
            .admin_put(
                &format!("/v1/tenants/acme/policies/{kind}"),
                "application/wasm",
                wasm,
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, _) = app
        .admin_put(
            "/v1/tenants/acme/policies/sensitive-words/abuse",
            "application/json",
            serde_json::to_vec(&json!({"action": "block", "words": ["傻瓜", "idiot"]}))
                .expect("json"),
        )
        .await;
    assert_eq!(status, 200);
    app.create_agent("Wang Fang", &["general", "billing"], 4)
        .await;
    app.create_agent("Li Lei", &["general"], 6).await;
    // Some history for the reports: chats a person served and rated, and questions the bot
    // answered alone.
    let (_, report_agent) = app.create_agent("Zhou Min", &["general"], 4).await;
    for (text, score) in [
        ("我要人工客服，订单还没发货", 5),
        ("转人工，发票开错了", 4),
        ("I want to talk to a human about my refund", 2),
    ] {
        rated_chat(&app, &report_agent, text, score).await;
    }
    for text in ["买东西要付邮费吗", "多久发货", "is delivery free?"] {
        let visitor = app.visitor().await;
        let mut customer = app.customer_ws(&visitor).await;
        customer
            .send(json!({"type": "send", "client_msg_id": "q1", "text": text}))
            .await;
        customer
            .expect("the bot's answer", |frame| frame["sender"] == "bot")
            .await;
        customer
            .expect("the survey", |frame| frame["survey"]["scale"] == 5)
            .await;
        customer.send(json!({"type": "rate", "score": 5})).await;
        customer.expect_type("rated").await;
    }
    for (shortcut, text) in [
        ("hi", "您好，很高兴为您服务！"),
        ("wait", "Please wait a moment while I check your order."),
    ] {
        let (status, _) = app
            .admin_post(
                "/v1/tenants/acme/canned-replies",
                json!({"shortcut": shortcut, "text": text}),
            )
            .await;
        assert_eq!(status, 201);
    }
    app.add_member("acme", "zhao@acme.example", MemberRole::KnowledgeManager)
        .await;
    // One agent online with room for one chat: the first handoff is theirs, the next one queues.
    let (_, zhou) = app.create_agent("Zhou Min", &["general"], 1).await;
    let _zhou = app.agent_ws(&zhou).await;
    let mut customers = Vec::new();
    for (index, text) in [
        "运费怎么算？",
        "I want to talk to a person",
        "转人工，我要投诉",
    ]
    .iter()
    .enumerate()
    {
        let visitor = app.visitor().await;
        let mut customer = app.customer_ws(&visitor).await;
        customer
            .send(json!({"type": "send", "client_msg_id": format!("c{index}"), "text": text}))
            .await;
        customer
            .expect("the bot's reply", |frame| frame["sender"] == "bot")
            .await;
        customers.push(customer);
    }
    app.add_member("acme", "chen@acme.example", MemberRole::Supervisor)
        .await;
    // Channel apps, a trained intent head and business hours.
    for (path, body) in [
        (
            "/v1/tenants/acme/channels/wechat/flagship",
            json!({"appid": "wx5f1c0a9e7b3d2c41", "token": "t0ken", "appsecret": "s3cret", "encoding_aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}),
        ),
        (
            "/v1/tenants/acme/channels/douyin/store",
            json!({"client_key": "awx9k2m4p8q1", "client_secret": "s3cret"}),
        ),
        (
            "/v1/tenants/acme/channels/mobile/ios",
            json!({"jwt_secret": "a-long-enough-jwt-secret"}),
        ),
    ] {
        let (status, body) = app
            .admin_put(
                path,
                "application/json",
                serde_json::to_vec(&body).expect("json"),
            )
            .await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let response = app
        .http
        .post(app.url("/v1/tenants/acme/intents/train"))
        .bearer_auth(&app.admin_key)
        .body(switchboard_tests::intent_training_lines())
        .send()
        .await
        .expect("train");
    let status = response.status().as_u16();
    let accepted: Value = response.json().await.expect("json");
    assert_eq!(status, 202, "{accepted}");
    let job = app
        .wait_job("acme", accepted["job"]["id"].as_str().expect("job"))
        .await;
    assert_eq!(job["state"], "done", "{job}");
    let response = app
        .http
        .patch(app.url("/v1/tenants/acme/settings"))
        .bearer_auth(&app.admin_key)
        .json(&json!({"business_hours": {
            "weekly": [
                {"days": ["mon", "tue", "wed", "thu", "fri"], "open": "09:00", "close": "21:00"},
                {"days": ["sat", "sun"], "open": "10:00", "close": "18:00"}
            ],
            "holidays": ["2026-10-01", "2026-10-02", "2026-10-03"],
            "message": "您好，客服工作时间为工作日 9:00-21:00、周末 10:00-18:00。我们会尽快回复您。"
        }}))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 200);
    let (status, llm) = app
        .admin_put(
            "/v1/tenants/acme/bot/llm",
            "application/json",
            json!({"base_url": "https://llm.acme.example/v1", "model": "qwen-plus",
                   "api_key": "sk-screenshot", "timeout_ms": 3000})
            .to_string()
            .into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{llm}");

    for lang in ["en", "zh-CN"] {
        let mut browser = Browser::launch(&binary).await.expect("chromium starts");
        browser.call("Page.enable", json!({})).await.expect("page");
        browser
            .navigate(&app.url("/admin/?tenant=acme"))
            .await
            .expect("loads");
        browser
            .eval(&format!(
                "localStorage.setItem('switchboard:lang', {}); location.reload(); true",
                js(lang)
            ))
            .await
            .expect("language");
        tokio::time::sleep(Duration::from_millis(500)).await;
        wait_text(&mut browser, "#signin-submit").await;
        fill(&mut browser, "#signin-email", email).await;
        shot(&mut browser, &out, lang, "signin").await;
        fill(&mut browser, "#signin-password", password.as_str()).await;
        click(&mut browser, "#signin-submit").await;
        wait_text(&mut browser, "#member-name").await;

        // Knowledge, with an answer of the bot.
        wait_text(&mut browser, "#kb-table tbody tr[data-faq-id]").await;
        let question = if lang == "en" {
            "how much is shipping?"
        } else {
            "运费多少钱"
        };
        fill(&mut browser, "#try-text", question).await;
        click(&mut browser, "#try-ask").await;
        wait_text(&mut browser, "#try-result").await;
        shot(&mut browser, &out, lang, "knowledge").await;
        click(&mut browser, "#kb-table tbody tr[data-faq-id]").await;
        wait_text(&mut browser, "#faq-editor").await;
        shot(&mut browser, &out, lang, "knowledge-edit").await;
        click(&mut browser, "#faq-editor .icon-button").await;

        click(&mut browser, "#nav [data-page=policies]").await;
        wait_text(&mut browser, "#policy-versions tr[data-version]").await;
        browser
            .set_files("#policy-file", &[fixture("hostile-import.wasm").as_path()])
            .await
            .expect("file");
        click(&mut browser, "#policy-upload").await;
        wait_text(&mut browser, "#policy-error").await;
        fill(&mut browser, "#dry-vip", "3").await;
        click(&mut browser, "#dry-run").await;
        wait_text(&mut browser, "#dry-result").await;
        shot(&mut browser, &out, lang, "policies").await;
        click(&mut browser, "#tab-words").await;
        wait_text(&mut browser, "#word-lists tr[data-list]").await;
        fill(&mut browser, "#check-text", "你这个傻瓜 idiot").await;
        click(&mut browser, "#check-submit").await;
        wait_text(&mut browser, "#check-result").await;
        shot(&mut browser, &out, lang, "sensitive-words").await;

        click(&mut browser, "#nav [data-page=intents]").await;
        wait_text(&mut browser, "#jobs-table tr[data-job]").await;
        click(&mut browser, "#jobs-table tr[data-job]").await;
        wait_text(&mut browser, "#train-report #train-labels").await;
        let text = if lang == "en" {
            "where is my parcel?"
        } else {
            "我的快递到哪了"
        };
        fill(&mut browser, "#classify-text", text).await;
        click(&mut browser, "#classify-submit").await;
        wait_text(&mut browser, "#classify-result").await;
        shot(&mut browser, &out, lang, "intents").await;

        click(&mut browser, "#nav [data-page=live]").await;
        wait_text(&mut browser, "#live-table tr[data-state=queued]").await;
        wait_text(&mut browser, "#live-table tr[data-state=assigned]").await;
        shot(&mut browser, &out, lang, "live").await;
        click(&mut browser, "#live-table tr[data-state=assigned]").await;
        wait_text(&mut browser, "#transcript .line").await;
        wait_text(&mut browser, "#notes").await;
        let note = if lang == "en" {
            "Long-time customer: offer free shipping on the replacement."
        } else {
            "老客户：换货请免运费。"
        };
        fill(&mut browser, "#note-text", note).await;
        click(&mut browser, "#note-add").await;
        wait_text(&mut browser, "#notes .note-item").await;
        shot(&mut browser, &out, lang, "live-conversation").await;
        click(&mut browser, "#conversation .icon-button").await;

        click(&mut browser, "#nav [data-page=channels]").await;
        wait_text(
            &mut browser,
            "#channels-table tr[data-app='wechat/flagship']",
        )
        .await;
        click(
            &mut browser,
            "#channels-table tr[data-app='wechat/flagship']",
        )
        .await;
        wait_text(&mut browser, "#deliveries-day").await;
        shot(&mut browser, &out, lang, "channels").await;
        click(&mut browser, "[data-edit='wechat/flagship']").await;
        wait_text(&mut browser, "#channel-editor").await;
        shot(&mut browser, &out, lang, "channels-edit").await;
        click(&mut browser, "#channel-editor .icon-button").await;

        click(&mut browser, "#nav [data-page=team]").await;
        wait_text(&mut browser, "#members-table tr[data-member]").await;
        shot(&mut browser, &out, lang, "team-members").await;
        click(&mut browser, "#tab-agents").await;
        wait_text(&mut browser, "#agents-table tr[data-agent]").await;
        shot(&mut browser, &out, lang, "team-agents").await;
        click(&mut browser, "#tab-canned").await;
        wait_text(&mut browser, "#canned-table tr[data-canned]").await;
        shot(&mut browser, &out, lang, "team-canned").await;

        click(&mut browser, "#nav [data-page=settings]").await;
        wait_text(&mut browser, "#settings-save").await;
        shot(&mut browser, &out, lang, "settings").await;
        wait_text(&mut browser, "#llm-key-set").await;
        browser
            .eval("document.querySelector('#llm').scrollIntoView({block: 'center'})")
            .await
            .expect("scroll");
        shot(&mut browser, &out, lang, "settings-llm").await;
        browser.eval("window.scrollTo(0, 0)").await.expect("scroll");
        click(&mut browser, "#tab-hours").await;
        wait_text(&mut browser, "#hours-save").await;
        shot(&mut browser, &out, lang, "settings-hours").await;
        click(&mut browser, "#tab-adminkey").await;
        click(&mut browser, "#adminkey-rotate").await;
        click(&mut browser, "#adminkey-rotate[data-armed=true]").await;
        wait_text(&mut browser, "#adminkey-secret").await;
        shot(&mut browser, &out, lang, "settings-admin-key").await;

        click(&mut browser, "#nav [data-page=reports]").await;
        wait_text(&mut browser, "#agents-table tr[data-key]").await;
        shot(&mut browser, &out, lang, "reports").await;

        click(&mut browser, "#nav [data-page=audit]").await;
        wait_text(&mut browser, "#audit-table tbody tr").await;
        shot(&mut browser, &out, lang, "audit").await;
    }
}

async fn shot(browser: &mut Browser, out: &Path, lang: &str, page: &str) {
    // Let transitions and fonts settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = browser.screenshot(1440, 900).await.expect("screenshot");
    let short = if lang == "en" { "en" } else { "zh" };
    std::fs::write(out.join(format!("{page}.{short}.png")), png).expect("png written");
}
