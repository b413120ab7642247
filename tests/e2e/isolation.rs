//! No tenant can read or write another tenant's data.

use serde_json::json;
use switchboard_tests::TestApp;

#[tokio::test]
async fn tenants_cannot_reach_each_other() {
    let app = TestApp::spawn().await;
    let other_key = app.create_tenant("globex").await;
    let (_, acme_agent) = app.create_agent("Acme agent", &["general"], 2).await;
    let (_, globex_agent) = app
        .create_agent_in("globex", &other_key, "Globex agent", &["general"], 2)
        .await;

    // A globex customer writes; only the globex agent is offered the chat.
    let mut acme_console = app.agent_ws(&acme_agent).await;
    let mut globex_console = app.agent_ws(&globex_agent).await;
    let (globex_visitor, _) = app.visitor_in("globex").await;
    let mut customer = app.customer_ws(&globex_visitor).await;
    customer
        .send(json!({"type":"send","client_msg_id":"g","text":"globex secret"}))
        .await;
    let assigned = globex_console.expect_type("assigned").await;
    let globex_conversation = assigned["conversation"]["id"].as_str().unwrap().to_owned();
    let stray = acme_console
        .drain(std::time::Duration::from_millis(300))
        .await;
    assert!(stray.iter().all(|f| f["type"] != "assigned"));

    // acme's admin key does not open globex routes, and acme paths do not show globex data.
    let get = |path: String, key: String| {
        let http = app.http.clone();
        let url = app.url(&path);
        async move {
            http.get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        get(
            "/v1/tenants/globex/conversations".into(),
            app.admin_key.clone()
        )
        .await,
        401
    );
    assert_eq!(
        get(
            format!("/v1/tenants/acme/conversations/{globex_conversation}"),
            app.admin_key.clone()
        )
        .await,
        404
    );
    assert_eq!(
        get(
            format!("/v1/tenants/acme/conversations/{globex_conversation}/messages"),
            app.admin_key.clone()
        )
        .await,
        404
    );
    assert_eq!(
        get(
            format!("/v1/tenants/globex/conversations/{globex_conversation}"),
            other_key.clone()
        )
        .await,
        200
    );
    let (_, acme_list) = app.admin_get("/v1/tenants/acme/conversations").await;
    assert_eq!(acme_list["conversations"].as_array().unwrap().len(), 0);
    // Agent tokens are scoped too.
    assert_eq!(
        get(
            "/v1/tenants/globex/canned-replies".into(),
            acme_agent.clone()
        )
        .await,
        401
    );
    assert_eq!(
        get("/v1/tenants/acme/canned-replies".into(), acme_agent.clone()).await,
        200
    );
    // The acme agent cannot write into the globex conversation.
    acme_console.send(json!({"type":"send","conversation_id":globex_conversation,"client_msg_id":"x","text":"intrude"})).await;
    assert_eq!(
        acme_console.expect_type("error").await["code"],
        "not_assigned"
    );
    // A globex visitor token cannot resume as an acme visitor.
    let response = app
        .http
        .post(app.url("/v1/web/session"))
        .json(&json!({"tenant":"acme","token":globex_visitor}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // Creating agents needs the tenant's own key.
    let response = app
        .http
        .post(app.url("/v1/tenants/globex/agents"))
        .bearer_auth(&app.admin_key)
        .json(&json!({"name":"spy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}
