//! The knowledge base through the API: import with per-row errors, CRUD, export, search,
//! synonyms, isolation, and an index that follows the store.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchboard_tests::TestApp;

async fn import(
    app: &TestApp,
    tenant: &str,
    key: &str,
    body: Vec<u8>,
    format: Option<&str>,
) -> (u16, Value) {
    let mut url = app.url(&format!("/v1/tenants/{tenant}/kb/import"));
    if let Some(format) = format {
        url.push_str(&format!("?format={format}"));
    }
    let response = app
        .http
        .post(url)
        .bearer_auth(key)
        .body(body)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn search(app: &TestApp, tenant: &str, key: &str, q: &str) -> Vec<Value> {
    let response = app
        .http
        .get(app.url(&format!("/v1/tenants/{tenant}/kb/search")))
        .query(&[("q", q), ("k", "5")])
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "search {q:?}");
    response.json::<Vec<Value>>().await.unwrap()
}

const FAQS: &str = r#"{"id":"ship","question":"下单后多久发货？","answer":"付款后48小时内发货。","alternates":["什么时候发货"],"tags":["shipping"],"locale":"zh"}
{"id":"refund","question":"How do I get a refund?","answer":"Refunds go back to the original payment within 5 days.","alternates":["money back"],"locale":"en"}
this line is not json
{"id":"bad id with spaces","question":"q","answer":"a"}
{"id":"invoice","question":"怎么开发票？","answer":"在订单详情页申请电子发票。"}
"#;

#[tokio::test]
async fn import_reports_bad_rows_and_lands_good_ones_then_upserts() {
    let app = TestApp::spawn().await;
    let (status, report) = import(
        &app,
        "acme",
        &app.admin_key,
        FAQS.as_bytes().to_vec(),
        Some("jsonl"),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (
            report["inserted"].as_u64(),
            report["updated"].as_u64(),
            report["unchanged"].as_u64()
        ),
        (Some(3), Some(0), Some(0))
    );
    let lines: Vec<u64> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [3, 4]);
    // Importing again changes nothing; a changed answer is an update.
    let (_, again) = import(&app, "acme", &app.admin_key, FAQS.as_bytes().to_vec(), None).await;
    assert_eq!(again["unchanged"], 3);
    let changed = FAQS.replace("48小时内发货", "24小时内发货");
    let (_, updated) = import(&app, "acme", &app.admin_key, changed.into_bytes(), None).await;
    assert_eq!(
        (updated["updated"].as_u64(), updated["unchanged"].as_u64()),
        (Some(1), Some(2))
    );
    let hits = search(&app, "acme", &app.admin_key, "什么时候发货").await;
    assert_eq!(hits[0]["id"], "ship");
    assert!(hits[0]["answer"].as_str().unwrap().contains("24小时"));

    // CSV with alternates joined by |.
    let csv = "id,question,answer,alternates\nwarranty,Is there a warranty?,Two years on all devices.,guarantee|warranty period\n";
    let (status, report) = import(
        &app,
        "acme",
        &app.admin_key,
        csv.as_bytes().to_vec(),
        Some("csv"),
    )
    .await;
    assert_eq!((status, report["inserted"].as_u64()), (200, Some(1)));
    assert_eq!(
        search(&app, "acme", &app.admin_key, "guarantee").await[0]["id"],
        "warranty"
    );

    // A file that is not what it claims is a clear 400, and nothing is written.
    let (status, error) = import(
        &app,
        "acme",
        &app.admin_key,
        vec![0, 159, 146, 150, 1, 2],
        Some("csv"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(error["code"], "bad_file");
    let (status, error) = import(&app, "acme", &app.admin_key, b"{}".to_vec(), Some("pdf")).await;
    assert_eq!((status, error["code"].as_str()), (400, Some("bad_format")));
    let (status, _) = import(&app, "acme", "sbk_wrong", FAQS.as_bytes().to_vec(), None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn crud_is_searchable_within_a_second_and_export_round_trips() {
    let app = TestApp::spawn().await;
    let faq = |id: &str| app.url(&format!("/v1/tenants/acme/kb/faqs/{id}"));
    let created = app
        .http
        .put(faq("pay-methods"))
        .bearer_auth(&app.admin_key)
        .json(&json!({"question":"支持哪些付款方式？","answer":"支持微信支付、支付宝和银行卡。","alternates":["可以用支付宝吗"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let started = Instant::now();
    let hits = search(&app, "acme", &app.admin_key, "能用支付宝付款吗").await;
    assert_eq!(hits[0]["id"], "pay-methods");
    assert!(started.elapsed() < Duration::from_secs(1));
    let record: Value = app
        .http
        .get(faq("pay-methods"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(record["locale"], "zh");
    assert!(record["updated_at_ms"].as_i64().unwrap() > 0);

    // Disabling hides it from search; the record stays.
    let disabled = app
        .http
        .put(faq("pay-methods"))
        .bearer_auth(&app.admin_key)
        .json(&json!({"question":"支持哪些付款方式？","answer":"支持微信支付、支付宝和银行卡。","enabled":false}))
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), 200);
    assert!(search(&app, "acme", &app.admin_key, "支付宝")
        .await
        .is_empty());
    let bad = app
        .http
        .put(faq("x"))
        .bearer_auth(&app.admin_key)
        .json(&json!({"question":"","answer":"a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.json::<Value>().await.unwrap()["code"], "bad_faq");

    for id in ["a1", "a2", "a3"] {
        app.http
            .put(faq(id))
            .bearer_auth(&app.admin_key)
            .json(&json!({"question":format!("question {id}"),"answer":"answer, with \"quotes\" and a | bar","alternates":["alt one","alt two"]}))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(
        app.http
            .delete(faq("a3"))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        app.http
            .get(faq("a3"))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert!(search(&app, "acme", &app.admin_key, "question a3")
        .await
        .iter()
        .all(|hit| hit["id"] != "a3"));

    // Paged list.
    let page: Value = app
        .http
        .get(app.url("/v1/tenants/acme/kb/faqs?limit=2"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["faqs"].as_array().unwrap().len(), 2);
    assert_eq!(page["next"], "a2");

    // Export in both formats, import into another tenant: the same records.
    let other_key = app.create_tenant("other").await;
    for format in ["jsonl", "csv"] {
        let exported = app
            .http
            .get(app.url(&format!("/v1/tenants/acme/kb/export?format={format}")))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let (status, report) =
            import(&app, "other", &other_key, exported.to_vec(), Some(format)).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["errors"], json!([]), "{format}");
        let copied: Value = app
            .http
            .get(app.url("/v1/tenants/other/kb/faqs/a1"))
            .bearer_auth(&other_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(copied["answer"], "answer, with \"quotes\" and a | bar");
        assert_eq!(copied["alternates"], json!(["alt one", "alt two"]));
    }
}

#[tokio::test]
async fn search_is_per_tenant_takes_any_text_and_uses_synonyms() {
    let app = TestApp::spawn().await;
    let other_key = app.create_tenant("other").await;
    import(&app, "acme", &app.admin_key, FAQS.as_bytes().to_vec(), None).await;
    assert!(
        search(&app, "other", &other_key, "发货").await.is_empty(),
        "another tenant's FAQ leaked"
    );
    let denied = app
        .http
        .get(app.url("/v1/tenants/acme/kb/search?q=x"))
        .bearer_auth(&other_key)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    // 10,000 characters (mixed scripts keep the URL within what HTTP clients send).
    let long = format!("{}{}", "发货".repeat(500), "refund ".repeat(1_286));
    assert!(long.chars().count() >= 10_000);
    for text in [
        "",
        "\"(:*~^",
        "!!!???。。。",
        "AND OR NOT",
        long.as_str(),
        "title:refund^10 OR *",
    ] {
        search(&app, "acme", &app.admin_key, text).await;
    }
    // Synonyms apply at query time.
    assert!(search(&app, "acme", &app.admin_key, "reimbursement")
        .await
        .is_empty());
    let put = app
        .http
        .put(app.url("/v1/tenants/acme/kb/synonyms"))
        .bearer_auth(&app.admin_key)
        .body("refund=reimbursement\n快递=物流")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    assert_eq!(
        search(&app, "acme", &app.admin_key, "reimbursement").await[0]["id"],
        "refund"
    );
    // Over the limits (a group of 33): refused, and the synonyms in use stay.
    let group: Vec<String> = (0..33).map(|n| format!("w{n}")).collect();
    let refused = app
        .http
        .put(app.url("/v1/tenants/acme/kb/synonyms"))
        .bearer_auth(&app.admin_key)
        .body(group.join("="))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "bad_synonyms");
    assert_eq!(
        search(&app, "acme", &app.admin_key, "reimbursement").await[0]["id"],
        "refund"
    );
    // Agents of the tenant may search too.
    let (_, agent_token) = app.create_agent("Searcher", &["general"], 1).await;
    assert_eq!(
        search(&app, "acme", &agent_token, "refund").await[0]["id"],
        "refund"
    );
}

#[tokio::test]
async fn index_follows_the_store_when_another_process_writes() {
    let app = TestApp::spawn().await;
    import(&app, "acme", &app.admin_key, FAQS.as_bytes().to_vec(), None).await;
    // Another process (a CLI import, another node) writes to the store only.
    let record =
        switchboard_knowledge::FaqRecord::new("Do you ship to Canada?", "Yes, in 7-10 days.");
    app.server
        .state
        .store
        .upsert_faqs("acme", &[record])
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        if search(&app, "acme", &app.admin_key, "ship Canada")
            .await
            .first()
            .map(|h| h["question"] == "Do you ship to Canada?")
            .unwrap_or(false)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the index never caught up with the store"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn hostile_xlsx_is_bad_file_and_the_server_keeps_importing() {
    use switchboard_knowledge::testing::{cell, xlsx};
    let app = TestApp::spawn().await;
    let rows = format!(
        r#"<row r="1">{}{}</row><row r="2">{}{}</row>"#,
        cell("A1", "question"),
        cell("B1", "answer"),
        cell("A2", "Where is my order?"),
        cell("B2", "In the order page.")
    );
    // One cell at XFD1048576 (a dense grid of 17 billion cells in calamine).
    let far = format!(
        r#"{rows}<row r="1048576">{}</row>"#,
        cell("XFD1048576", "x")
    );
    let (status, error) = import(&app, "acme", &app.admin_key, xlsx(&far, None, None), None).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("bad_file")),
        "{error}"
    );
    // A deflate bomb in sharedStrings.xml.
    let mut strings = br#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>"#.to_vec();
    strings.extend(std::iter::repeat_n(b'a', 8 << 20));
    strings.extend_from_slice(b"</t></si></sst>");
    let bomb = xlsx(&rows, Some("A1:B2"), Some(&strings));
    let (status, error) = import(&app, "acme", &app.admin_key, bomb, Some("xlsx")).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("bad_file")),
        "{error}"
    );
    // Nothing else is affected: the same server imports a good workbook.
    let (status, report) = import(
        &app,
        "acme",
        &app.admin_key,
        xlsx(&rows, Some("A1:B2"), None),
        None,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["inserted"].as_u64(), Some(1), "{report}");
}

/// The console's import: a background job whose progress (indexing, done of total) can be
/// watched, and whose result is the same per-row report.
#[tokio::test]
async fn a_background_import_is_a_job_with_progress_and_the_same_report() {
    let app = TestApp::spawn().await;
    let mut lines = String::new();
    for i in 0..1_200 {
        lines.push_str(
            &json!({ "id": format!("q{i}"), "question": format!("问题 {i} 怎么办？"), "answer": format!("答案 {i}") })
                .to_string(),
        );
        lines.push('\n');
    }
    lines.push_str("not json\n");
    let response = app
        .http
        .post(app.url("/v1/tenants/acme/kb/import?format=jsonl&background=true"))
        .bearer_auth(&app.admin_key)
        .body(lines)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["job"]["kind"], "kb_import");
    let id = accepted["job"]["id"].as_str().unwrap().to_owned();
    let job = app.wait_job("acme", &id).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["result"]["inserted"], 1_200);
    assert_eq!(job["result"]["errors"].as_array().unwrap().len(), 1);
    assert_eq!(job["progress"]["phase"], "indexing", "{job}");
    assert_eq!(job["progress"]["total"], 1_200, "{job}");
    // Listed among the tenant's imports; another tenant's key sees none of it.
    let (_, jobs) = app.admin_get("/v1/tenants/acme/jobs?kind=kb_import").await;
    assert_eq!(jobs["jobs"][0]["id"], id.as_str());
    let other = app.create_tenant("globex").await;
    let response = app
        .http
        .get(app.url(&format!("/v1/tenants/globex/jobs/{id}")))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    // A file in a format the server cannot read is refused at once, not as a job.
    let response = app
        .http
        .post(app.url("/v1/tenants/acme/kb/import?format=docx&background=true"))
        .bearer_auth(&app.admin_key)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}
