//! Exports of conversations (`GET /v1/tenants/{t}/exports/conversations`): every format and row
//! kind read back, the filters, the CSV formula guard, the roles, the audit entry, and XLSX
//! sheets that split at their row limit.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};
use serde_json::Value;
use switchboard_channels::ChannelKind;
use switchboard_tests::TestApp;

const FORMULA: &str = "=HYPERLINK(\"http://evil.example\",\"click\")";
const AWKWARD: &str = "中文, with \"quotes\"\nand a second line";

struct Seeded {
    web: String,
    wechat: String,
    agent: String,
    /// Messages in all conversations.
    messages: usize,
}

/// Three conversations: two on the web (one with a formula and awkward text), one on WeChat
/// assigned to an agent who answered.
async fn seed(app: &TestApp) -> Seeded {
    let store = &app.server.state.store;
    let entry = store::Entry {
        state: store::ConversationState::Queued,
        skill_group: "general".into(),
        priority: 0,
    };
    let mut ids = Vec::new();
    for (channel, visitor, texts) in [
        (ChannelKind::Web, "w1", vec!["hello", FORMULA]),
        (ChannelKind::Web, "w2", vec![AWKWARD]),
        (
            ChannelKind::Wechat,
            "x1",
            vec!["-1 is my order number", "@all"],
        ),
    ] {
        let customer = store
            .customer_for_identity(
                &app.tenant,
                channel,
                visitor,
                &store::CustomerProfile {
                    phone: Some("+86 138 0000 0000".into()),
                    ..Default::default()
                },
            )
            .await
            .expect("customer");
        let mut id = String::new();
        for (index, text) in texts.iter().enumerate() {
            // The awkward text comes with a photo.
            let meta = (*text == AWKWARD).then(|| {
                serde_json::json!({"attachments": [{"id": "att-1", "kind": "image",
                    "name": "cup.png", "media_type": "image/png", "size": 812}]})
            });
            id = store
                .append_customer_message_with(
                    &customer,
                    Some(&format!("c{index}")),
                    text,
                    &entry,
                    meta,
                )
                .await
                .expect("message")
                .conversation
                .id;
        }
        ids.push(id);
    }
    let agent = store
        .create_agent(&app.tenant, "Ann", &["general".into()], 5)
        .await
        .expect("agent");
    store
        .assign(&ids[2], &agent, "joined")
        .await
        .expect("assign")
        .expect("assigned");
    store
        .append_agent_message(&ids[2], &agent.id, "a1", "+1 for patience")
        .await
        .expect("reply");
    let mut messages = 0;
    for id in &ids {
        messages += store.conversation(id).await.unwrap().unwrap().last_seq as usize;
    }
    Seeded {
        web: ids[0].clone(),
        wechat: ids[2].clone(),
        agent: agent.id,
        messages,
    }
}

/// An export with the admin key: status, headers, body.
async fn export(app: &TestApp, query: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let response = app
        .http
        .get(app.url(&format!(
            "/v1/tenants/{}/exports/conversations?{query}",
            app.tenant
        )))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .expect("export");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body").to_vec();
    (status, headers, body)
}

fn csv_rows(body: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::str::from_utf8(body).expect("utf-8");
    let text = text
        .strip_prefix('\u{feff}')
        .expect("a byte order mark first");
    assert!(text.contains("\r\n"), "RFC 4180 line ends");
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|record| record.expect("record").iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

fn column(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|column| column == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

fn jsonl(body: &[u8]) -> Vec<Value> {
    std::str::from_utf8(body)
        .expect("utf-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

fn xlsx_sheets(body: Vec<u8>) -> Vec<(String, Vec<Vec<Data>>)> {
    let mut workbook: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(body)).expect("xlsx");
    let names = workbook.sheet_names().to_vec();
    names
        .into_iter()
        .map(|name| {
            let range = workbook.worksheet_range(&name).expect("sheet");
            let rows = range.rows().map(<[Data]>::to_vec).collect();
            (name, rows)
        })
        .collect()
}

#[tokio::test]
async fn exports_read_back_in_every_format_with_filters_and_the_formula_guard() {
    let app = TestApp::spawn().await;
    let seeded = seed(&app).await;

    // CSV, one row per conversation.
    let (status, headers, body) = export(&app, "format=csv").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"acme-conversations-")
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    let (header, rows) = csv_rows(&body);
    assert_eq!(header, engine::export::CONVERSATION_COLUMNS);
    assert_eq!(rows.len(), 3);
    let wechat = rows
        .iter()
        .find(|row| row[0] == seeded.wechat)
        .expect("the WeChat conversation");
    assert_eq!(wechat[column(&header, "channel")], "wechat");
    assert_eq!(wechat[column(&header, "agent_id")], seeded.agent);
    assert_eq!(wechat[column(&header, "agent_messages")], "1");
    let transcript = &wechat[column(&header, "transcript")];
    assert!(
        transcript.contains("customer: -1 is my order number"),
        "{transcript}"
    );
    assert!(
        transcript.contains("agent: +1 for patience"),
        "{transcript}"
    );
    assert!(wechat[column(&header, "events")].contains("assigned"));
    let with_photo = rows
        .iter()
        .find(|row| row[column(&header, "transcript")].contains("second line"))
        .expect("the conversation with the photo");
    assert!(
        with_photo[column(&header, "transcript")].ends_with("and a second line [image cup.png]"),
        "{}",
        with_photo[column(&header, "transcript")]
    );
    // No contact field is exported.
    assert!(!String::from_utf8_lossy(&body).contains("138 0000"));

    // CSV, one row per message: the awkward text survives quoting, formulas are guarded.
    let (status, _, body) = export(&app, "format=csv&rows=message").await;
    assert_eq!(status, 200);
    let (header, rows) = csv_rows(&body);
    assert_eq!(header, engine::export::MESSAGE_COLUMNS);
    assert_eq!(rows.len(), seeded.messages);
    let texts: Vec<&str> = rows
        .iter()
        .map(|row| row[column(&header, "text")].as_str())
        .collect();
    assert!(texts.contains(&AWKWARD), "{texts:?}");
    let attachments: Vec<&str> = rows
        .iter()
        .map(|row| row[column(&header, "attachments")].as_str())
        .filter(|cell| !cell.is_empty())
        .collect();
    assert_eq!(attachments, ["image cup.png"]);
    assert!(texts.contains(&format!("'{FORMULA}").as_str()), "{texts:?}");
    assert!(texts.contains(&"'-1 is my order number"));
    assert!(texts.contains(&"'@all"));
    assert!(texts.contains(&"'+1 for patience"));
    assert!(texts.contains(&"hello"));
    assert!(!texts.contains(&FORMULA));

    // JSON Lines, one line per conversation with its messages and events nested.
    let (status, headers, body) = export(&app, "format=jsonl").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/x-ndjson");
    let lines = jsonl(&body);
    assert_eq!(lines.len(), 3);
    let nested: usize = lines
        .iter()
        .map(|line| line["messages"].as_array().unwrap().len())
        .sum();
    assert_eq!(nested, seeded.messages);
    let web = lines
        .iter()
        .find(|line| line["conversation_id"] == seeded.web.as_str())
        .unwrap();
    assert_eq!(
        web["messages"][1]["text"], FORMULA,
        "JSON carries text as it is"
    );
    assert_eq!(web["messages"][0]["sender_kind"], "customer");
    let wechat = lines
        .iter()
        .find(|line| line["conversation_id"] == seeded.wechat.as_str())
        .unwrap();
    assert!(wechat["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|event| event["kind"] == "assigned" && event["actor_kind"].is_string()));
    // In (updated_at, id) order.
    let keys: Vec<(i64, String)> = lines
        .iter()
        .map(|line| {
            (
                line["updated_at"].as_i64().unwrap(),
                line["conversation_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);

    // JSON Lines, one line per message.
    let (status, _, body) = export(&app, "format=jsonl&rows=message").await;
    assert_eq!(status, 200);
    let lines = jsonl(&body);
    assert_eq!(lines.len(), seeded.messages);
    assert!(lines
        .iter()
        .all(|line| line["conversation_id"].is_string() && line["seq"].is_i64()));

    // XLSX, both kinds: typed cells, text unchanged (inline strings are never formulas).
    let (status, headers, body) = export(&app, "format=xlsx&rows=message").await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let sheets = xlsx_sheets(body);
    assert_eq!(sheets.len(), 1);
    let (name, rows) = &sheets[0];
    assert_eq!(name, "messages");
    assert_eq!(rows.len(), seeded.messages + 1);
    assert_eq!(rows[0][0], Data::String("conversation_id".into()));
    let texts: Vec<String> = rows.iter().skip(1).map(|row| row[5].to_string()).collect();
    assert!(texts.contains(&FORMULA.to_owned()), "{texts:?}");
    assert!(texts.contains(&AWKWARD.to_owned()), "{texts:?}");
    assert!(rows
        .iter()
        .skip(1)
        .all(|row| matches!(row[1], Data::Float(_) | Data::Int(_))));
    let (status, _, body) = export(&app, "format=xlsx").await;
    assert_eq!(status, 200);
    let sheets = xlsx_sheets(body);
    assert_eq!(sheets[0].0, "conversations");
    assert_eq!(sheets[0].1.len(), 4);

    // Filters.
    let count = |query: &'static str| {
        let app = &app;
        async move {
            let (status, _, body) = export(app, &format!("format=jsonl&{query}")).await;
            assert_eq!(status, 200, "{query}: {}", String::from_utf8_lossy(&body));
            jsonl(&body)
        }
    };
    let only = count("channel=wechat").await;
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["conversation_id"], seeded.wechat.as_str());
    assert_eq!(count("channel=web").await.len(), 2);
    assert_eq!(count("skill_group=general").await.len(), 3);
    assert_eq!(count("skill_group=sales").await.len(), 0);
    let by_agent = export(&app, &format!("format=jsonl&agent={}", seeded.agent)).await;
    assert_eq!(jsonl(&by_agent.2).len(), 1);
    assert_eq!(count("from=2999-01-01&to=2999-02-01").await.len(), 0);
    assert_eq!(count("to=2000-01-01").await.len(), 0);
    assert_eq!(count("from=2000-01-01T00:00:00Z").await.len(), 3);
    let today = engine::export::rfc3339(store::util::now_ms());
    let today = &today[..10];
    let (status, _, body) = export(&app, &format!("format=jsonl&from={today}&to={today}")).await;
    assert_eq!(status, 200);
    assert_eq!(jsonl(&body).len(), 3, "a date `to` covers the whole day");

    // Bad queries are refused with their codes before anything is streamed.
    for (query, code) in [
        ("format=pdf", "bad_format"),
        ("rows=words", "bad_rows"),
        ("from=yesterday", "bad_period"),
        ("from=2026-12-02&to=2026-12-01", "bad_period"),
        // `to` defaults to now: a period starting later is empty by mistake.
        ("from=2999-01-01", "bad_period"),
        ("channel=fax", "bad_channel"),
        ("colour=red", "bad_query"),
    ] {
        let (status, _, body) = export(&app, query).await;
        assert_eq!(status, 400, "{query}");
        let body: Value = serde_json::from_slice(&body).expect("an error body");
        assert_eq!(body["code"], code, "{query}");
    }
}

#[tokio::test]
async fn exports_are_for_admins_and_supervisors_and_audited() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let path = format!(
        "/v1/tenants/{}/exports/conversations?format=csv&channel=web",
        app.tenant
    );
    for (email, role, allowed) in [
        ("sup@acme.example", store::MemberRole::Supervisor, true),
        ("agent@acme.example", store::MemberRole::Agent, false),
        (
            "km@acme.example",
            store::MemberRole::KnowledgeManager,
            false,
        ),
    ] {
        let password = app.add_member(&app.tenant, email, role).await;
        let session = app
            .sign_in(&app.tenant, email, &password)
            .await
            .expect("signed in");
        // A download link: the cookie, no CSRF header.
        let response = app
            .http
            .get(app.url(&path))
            .header("cookie", &session.cookie)
            .send()
            .await
            .expect("export");
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("body");
        if allowed {
            assert_eq!(status, 200, "{email}");
            assert_eq!(csv_rows(&body).1.len(), 2);
        } else {
            assert_eq!(status, 403, "{email}");
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["code"], "role");
        }
    }
    // Without credentials, or with another tenant's key.
    let response = app.http.get(app.url(&path)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let other_key = app.create_tenant("globex").await;
    let response = app
        .http
        .get(app.url(&path))
        .bearer_auth(other_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);

    // Each export is an audit entry with its parameters; refusals are not.
    let (status, body) = app
        .admin_get(&format!("/v1/tenants/{}/audit", app.tenant))
        .await;
    assert_eq!(status, 200, "{body}");
    let exports: Vec<&Value> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["action"] == "GET exports/conversations")
        .collect();
    assert_eq!(exports.len(), 1, "{body}");
    assert_eq!(exports[0]["actor"], "sup@acme.example");
    assert_eq!(exports[0]["summary"]["export"]["format"], "csv");
    assert_eq!(exports[0]["summary"]["export"]["channel"], "web");
}

#[tokio::test]
async fn xlsx_sheets_split_at_their_row_limit() {
    let app = TestApp::spawn().await;
    let seeded = seed(&app).await;
    let request = engine::export::ExportRequest::parse(
        &app.tenant,
        &engine::export::ExportQuery {
            format: Some("xlsx".into()),
            rows: Some("message".into()),
            ..Default::default()
        },
        store::util::now_ms(),
        0,
    )
    .unwrap();
    let (sender, mut receiver) = tokio::sync::mpsc::channel(4);
    let store = app.server.state.store.clone();
    // Three rows a sheet: the header and two messages.
    let running = async move {
        let stats = engine::export::run_with_sheet_rows(&store, &request, &sender, 3).await;
        drop(sender);
        stats
    };
    let reading = async {
        let mut bytes = Vec::new();
        while let Some(chunk) = receiver.recv().await {
            bytes.extend(chunk.expect("a chunk"));
        }
        bytes
    };
    let (stats, bytes) = tokio::join!(running, reading);
    let stats = stats.expect("export");
    assert_eq!(stats.rows as usize, seeded.messages);
    assert_eq!(stats.conversations, 3);
    let sheets = xlsx_sheets(bytes);
    let expected = seeded.messages.div_ceil(2);
    assert_eq!(sheets.len(), expected);
    assert_eq!(sheets[0].0, "messages");
    assert_eq!(sheets[1].0, "messages 2");
    let mut seen = 0;
    for (_, rows) in &sheets {
        assert_eq!(
            rows[0][0],
            Data::String("conversation_id".into()),
            "each sheet has the header"
        );
        assert!(rows.len() <= 3);
        seen += rows.len() - 1;
    }
    assert_eq!(seen, seeded.messages);
}

/// Evaluates `expression` in the page; it must answer `true`.
async fn page_does(browser: &mut crate::chromium::Browser, what: &str, expression: &str) {
    let done = browser.eval(expression).await.expect(what);
    assert_eq!(done, serde_json::json!(true), "{what}");
}

/// Sets a form control of the console as a person would (input and change events).
fn set_value(selector: &str, value: &str) -> String {
    format!(
        "(() => {{ const e = document.querySelector({s}); if (!e) return false; e.value = {v}; e.dispatchEvent(new Event('input', {{bubbles: true}})); e.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()",
        s = serde_json::to_string(selector).unwrap(),
        v = serde_json::to_string(value).unwrap()
    )
}

fn click_on(selector: &str) -> String {
    format!(
        "(() => {{ const e = document.querySelector({s}); if (!e) return false; e.click(); return true; }})()",
        s = serde_json::to_string(selector).unwrap()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_exports_from_the_console_dialog() {
    let Some(binary) = crate::chromium::chromium_or_skip() else {
        return;
    };
    let app = TestApp::spawn().await;
    let seeded = seed(&app).await;
    let email = "lin@acme.example";
    let password = app
        .add_member(&app.tenant, email, store::MemberRole::Supervisor)
        .await;
    let mut browser = crate::chromium::Browser::launch(&binary)
        .await
        .expect("chromium starts");
    browser
        .call("Page.enable", serde_json::json!({}))
        .await
        .expect("page");
    browser
        .navigate(&app.url("/admin/?tenant=acme"))
        .await
        .expect("the console loads");
    browser
        .wait_for(
            "the sign-in form",
            "document.querySelector('#signin-submit') ? true : null",
        )
        .await
        .expect("sign-in form");
    for (selector, value) in [
        ("#signin-tenant", "acme"),
        ("#signin-email", email),
        ("#signin-password", password.as_str()),
    ] {
        page_does(&mut browser, selector, &set_value(selector, value)).await;
    }
    page_does(&mut browser, "sign in", &click_on("#signin-submit")).await;
    browser
        .wait_for(
            "the export button",
            "document.querySelector('#export-open') ? true : null",
        )
        .await
        .expect("the live page has the export button");
    page_does(&mut browser, "open", &click_on("#export-open")).await;
    browser
        .wait_for(
            "the dialog",
            "document.querySelector('#export-dialog') ? true : null",
        )
        .await
        .expect("dialog");
    for (selector, value) in [
        ("#export-format", "csv"),
        ("#export-rows", "message"),
        ("#export-channel", "wechat"),
    ] {
        page_does(&mut browser, selector, &set_value(selector, value)).await;
    }
    // A start date after the end date is caught in the dialog.
    page_does(
        &mut browser,
        "from",
        &set_value("#export-from", "2026-12-02"),
    )
    .await;
    page_does(&mut browser, "to", &set_value("#export-to", "2026-12-01")).await;
    page_does(&mut browser, "start", &click_on("#export-start")).await;
    browser
        .wait_for(
            "the period error",
            "document.querySelector('#export-error') ? true : null",
        )
        .await
        .expect("a period error");
    page_does(&mut browser, "from", &set_value("#export-from", "")).await;
    page_does(&mut browser, "to", &set_value("#export-to", "")).await;
    page_does(&mut browser, "start", &click_on("#export-start")).await;
    let href = browser
        .wait_for(
            "the download link",
            "(() => { const a = document.querySelector('#export-link'); return a ? a.getAttribute('href') : null; })()",
        )
        .await
        .expect("link");
    let href = href.as_str().expect("a link").to_owned();
    assert!(
        href.starts_with("/v1/tenants/acme/exports/conversations?"),
        "{href}"
    );
    assert!(
        href.contains("rows=message") && href.contains("channel=wechat"),
        "{href}"
    );
    // The page's session downloads it.
    let text = browser
        .eval(&format!(
            "fetch({}).then(r => r.status === 200 ? r.text() : 'status ' + r.status)",
            serde_json::to_string(&href).unwrap()
        ))
        .await
        .expect("download");
    let text = text.as_str().expect("text");
    // `text()` drops the byte order mark.
    let (header, rows) = csv_rows(format!("\u{feff}{text}").as_bytes());
    assert_eq!(rows.len(), 4, "{text}");
    assert!(rows
        .iter()
        .all(|row| row[column(&header, "conversation_id")] == seeded.wechat));
}

#[tokio::test]
async fn a_tenant_runs_two_exports_at_once_and_a_third_waits() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    // Two exports in flight (their slots held as a running export holds them).
    let connections = &app.server.state.connections;
    let held: Vec<_> = (0..2)
        .map(|_| connections.open("export acme", 2).expect("a slot"))
        .collect();
    let (status, headers, body) = export(&app, "format=csv").await;
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(&body));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "rate_limited");
    assert!(headers.contains_key("retry-after"));
    // Another tenant is not held up.
    let other_key = app.create_tenant("globex").await;
    let response = app
        .http
        .get(app.url("/v1/tenants/globex/exports/conversations"))
        .bearer_auth(other_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    drop(held);
    let (status, _, _) = export(&app, "format=csv").await;
    assert_eq!(status, 200);
    // A finished export gives its slot back (when the server drops the body, just after its
    // last chunk).
    let started = std::time::Instant::now();
    while connections.count("export acme") != 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the slot came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_export_that_fails_ends_with_its_error_not_a_short_file() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let request = engine::export::ExportRequest::parse(
        &app.tenant,
        &engine::export::ExportQuery::default(),
        store::util::now_ms(),
        0,
    )
    .unwrap();
    // A store that cannot answer: the export's first read fails.
    let store = app.server.state.store.clone();
    store.close().await;
    let mut receiver = engine::export::spawn(store, request);
    let mut items = Vec::new();
    while let Some(item) = receiver.recv().await {
        items.push(item);
    }
    let last = items.pop().expect("an item");
    let error = last.expect_err("the last item is the error");
    assert_eq!(error.code(), "internal");
    assert!(items.iter().all(Result::is_ok));
}
