//! Satisfaction and reports on the real server: the bot's quiet conversation is closed by the
//! idle sweep and asks for a rating; a person's conversation is closed by its agent and rated
//! over the long-poll route; the report counts both by its definitions (docs/reports.md), in
//! JSON and CSV, for the roles that may read it.

use serde_json::{json, Value};
use switchboard_tests::TestApp;

async fn get_report(app: &TestApp, query: &str) -> Value {
    let (status, body) = app
        .admin_get(&format!("/v1/tenants/acme/reports{query}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["report"].clone()
}

/// Waits until the report counts `episodes` (the episode is written just after the close).
async fn report_with(app: &TestApp, episodes: u64) -> Value {
    for _ in 0..200 {
        let report = get_report(app, "").await;
        if report["totals"]["episodes"] == episodes {
            return report;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the report never counted {episodes} conversations");
}

#[tokio::test]
async fn a_quiet_bot_conversation_is_closed_asks_for_a_rating_and_counts_as_resolved_by_the_bot() {
    let app = TestApp::spawn_bot_first_with(|settings| {
        settings.idle_close.bot_quiet_ms = 400;
        settings.idle_close.sweep_every_ms = 100;
    })
    .await;
    let visitor = app.visitor().await;
    let mut customer = app.customer_ws(&visitor).await;
    customer
        .send(json!({"type":"send","client_msg_id":"q1","text":"买东西要付邮费吗"}))
        .await;
    let answer = customer
        .expect("the bot's answer", |f| f["sender"] == "bot")
        .await;
    assert!(answer.get("survey").is_none(), "{answer}");
    // Nothing more is said: the sweep closes it, and the bot asks for a rating.
    customer
        .expect("the idle notice", |f| f["sender"] == "system")
        .await;
    let survey = customer
        .expect("the survey", |f| {
            f["type"] == "message" && f["survey"].is_object()
        })
        .await;
    assert_eq!(survey["survey"]["scale"], 5);
    assert_eq!(survey["sender"], "bot");

    // Out of range first, then a real rating, then a changed mind.
    customer.send(json!({"type":"rate","score":9})).await;
    let refused = customer.expect_type("error").await;
    assert_eq!(refused["code"], "bad_rating");
    customer
        .send(json!({"type":"rate","score":4,"comment":"很快"}))
        .await;
    assert_eq!(customer.expect_type("rated").await["score"], 4);
    customer.send(json!({"type":"rate","score":5})).await;
    assert_eq!(customer.expect_type("rated").await["score"], 5);

    let report = report_with(&app, 1).await;
    let totals = &report["totals"];
    assert_eq!(totals["bot_resolved"], 1, "{report:#}");
    assert_eq!(totals["handed_off"], 0);
    assert_eq!(totals["bot_resolution_rate"], 1.0);
    assert_eq!(totals["bot_answers"], 1);
    assert_eq!(totals["ratings"], 1, "a second rating replaces the first");
    assert_eq!(totals["csat_average"], 5.0);
    assert_eq!(report["satisfaction"]["bot"]["csat_average"], 5.0);
    assert_eq!(
        report["satisfaction"]["distribution"],
        json!([0, 0, 0, 0, 1])
    );
    assert_eq!(report["by_channel"][0]["key"], "web");

    // Writing again reopens the conversation: the old survey can no longer be answered.
    customer
        .send(json!({"type":"send","client_msg_id":"q2","text":"谢谢"}))
        .await;
    customer
        .expect("the bot's reply", |f| {
            f["sender"] == "bot" && f["seq"].as_i64() > survey["seq"].as_i64()
        })
        .await;
    customer.send(json!({"type":"rate","score":1})).await;
    assert_eq!(
        customer.expect_type("error").await["code"],
        "nothing_to_rate"
    );
}

#[tokio::test]
async fn an_agents_conversation_is_rated_over_http_and_reported_by_agent_with_times_and_csv() {
    let app = TestApp::spawn().await;
    let (agent_id, agent_token) = app.create_agent("Carol", &["general"], 3).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let visitor = app.visitor().await;
    let mut customer = app.customer_ws(&visitor).await;
    customer
        .send(json!({"type":"send","client_msg_id":"c1","text":"我的订单还没到"}))
        .await;
    let assigned = agent.expect_type("assigned").await;
    let id = assigned["conversation"]["id"].as_str().unwrap().to_owned();
    // The customer is tagged in the CRM: the report can be filtered by it.
    let customer_id = assigned["conversation"]["customer"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = app
        .admin_put(
            &format!("/v1/tenants/acme/customers/{customer_id}/attributes"),
            "application/json",
            serde_json::to_vec(&json!({"crm_tags": ["gold", "50%_off"]})).unwrap(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    agent
        .send(json!({"type":"send","conversation_id":id,"client_msg_id":"a1","text":"我来查一下"}))
        .await;
    customer.expect_text("我来查一下").await;
    agent
        .send(json!({"type":"close","conversation_id":id}))
        .await;
    customer
        .expect("the survey", |f| f["survey"]["scale"] == 5)
        .await;
    // Rated over the long-poll route, as a client without a WebSocket does.
    let rated = app
        .http
        .post(app.url("/v1/web/rating"))
        .bearer_auth(&visitor)
        .json(&json!({"score":2,"comment":"等太久了"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rated.status(), 200);
    let body: Value = rated.json().await.unwrap();
    assert_eq!(body, json!({"type":"rated","score":2}));

    let report = report_with(&app, 1).await;
    let totals = &report["totals"];
    assert_eq!(totals["handed_off"], 1, "{report:#}");
    assert_eq!(totals["bot_resolved"], 0);
    assert_eq!(totals["first_response"]["count"], 1);
    assert_eq!(totals["handle"]["count"], 1);
    assert!(totals["first_response"]["p50_ms"].as_i64().unwrap() >= 0);
    assert_eq!(report["by_agent"][0]["key"], agent_id.as_str());
    assert_eq!(report["by_agent"][0]["csat_average"], 2.0);
    assert_eq!(report["satisfaction"]["human"]["ratings"], 1);
    assert_eq!(report["handoff_reasons"][0]["reason"], "human_first");

    // Filters: another channel has nothing; this agent has the one.
    let other = get_report(&app, "?channel=wechat").await;
    assert_eq!(other["totals"]["episodes"], 0);
    let mine = get_report(&app, &format!("?agent={agent_id}")).await;
    assert_eq!(mine["totals"]["episodes"], 1);
    // Tags are found as written, on SQLite as on PostgreSQL.
    for (tag, found) in [
        ("gold", 1),
        ("50%25_off", 1),
        ("gol", 0),
        ("GOLD", 0),
        ("silver", 0),
    ] {
        let tagged = get_report(&app, &format!("?tag={tag}")).await;
        assert_eq!(tagged["totals"]["episodes"], found, "{tag}");
    }
    let (status, body) = app
        .admin_get("/v1/tenants/acme/reports?from=2026-13-01")
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_period")));
    // A period at the end of the i64 range would cut slices past it.
    let (status, body) = app
        .admin_get("/v1/tenants/acme/reports?from=9223372036840375806&to=9223372036854775807")
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_period")));

    // Each table downloads as CSV.
    let csv = app
        .http
        .get(app.url("/v1/tenants/acme/reports/by_agent.csv"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("acme-by_agent.csv"));
    let text = csv.text().await.unwrap();
    let mut lines = text.trim_start_matches('\u{feff}').lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("key,episodes,bot_resolved,handed_off"));
    assert!(lines
        .next()
        .unwrap()
        .starts_with(&format!("{agent_id},1,0,1")));
    let (status, body) = app.admin_get("/v1/tenants/acme/reports/nope.csv").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("unknown_table"))
    );
}

#[tokio::test]
async fn supervisors_and_knowledge_managers_read_reports_and_agents_do_not() {
    let app = TestApp::spawn().await;
    for (role, allowed) in [
        (store::MemberRole::Supervisor, true),
        (store::MemberRole::KnowledgeManager, true),
        (store::MemberRole::Agent, false),
    ] {
        let email = format!("{}@acme.test", role.as_str());
        let password = app.add_member("acme", &email, role).await;
        let session = app
            .sign_in("acme", &email, &password)
            .await
            .expect("signed in");
        let (status, body) = session.get("/v1/tenants/acme/reports").await;
        if allowed {
            assert_eq!(status, 200, "{role:?}: {body}");
        } else {
            assert_eq!(status, 403, "{role:?}: {body}");
        }
    }
    // Without credentials: nothing.
    let anonymous = app
        .http
        .get(app.url("/v1/tenants/acme/reports"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// A tenant words its own survey, or turns it off; an over-long text is refused.
#[tokio::test]
async fn a_tenant_changes_the_survey_text_or_turns_the_survey_off() {
    let app = TestApp::spawn().await;
    let put = |survey: Value| {
        let body =
            serde_json::to_vec(&json!({"work_mode": "human_first", "survey": survey})).unwrap();
        let app = &app;
        async move {
            app.admin_put("/v1/tenants/acme/settings", "application/json", body)
                .await
        }
    };
    let (status, body) = put(json!({"prompt": "长".repeat(501)})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_settings")));
    let (status, body) = put(json!({"prompt": "Rate us, please"})).await;
    assert_eq!(status, 200, "{body}");

    let (_, agent_token) = app.create_agent("Carol", &["general"], 3).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let mut customer = app.customer_ws(&app.visitor().await).await;
    customer
        .send(json!({"type":"send","client_msg_id":"c1","text":"hello"}))
        .await;
    let id = agent.expect_type("assigned").await["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    agent
        .send(json!({"type":"close","conversation_id":id}))
        .await;
    let survey = customer
        .expect("the survey", |f| f["survey"]["scale"] == 5)
        .await;
    assert_eq!(survey["text"], "Rate us, please");

    // Off: the next close asks nothing.
    let (status, body) = put(json!({"enabled": false})).await;
    assert_eq!(status, 200, "{body}");
    customer
        .send(json!({"type":"send","client_msg_id":"c2","text":"one more thing"}))
        .await;
    agent.expect_type("assigned").await;
    agent
        .send(json!({"type":"close","conversation_id":id}))
        .await;
    customer
        .expect("the close notice", |f| {
            f["sender"] == "system" && f["seq"].as_i64() > survey["seq"].as_i64()
        })
        .await;
    let later = customer.drain(std::time::Duration::from_millis(800)).await;
    assert!(
        later.iter().all(|f| f.get("survey").is_none()),
        "no survey when it is off: {later:?}"
    );
}
