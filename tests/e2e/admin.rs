//! The admin API, pages and documents.

use std::time::Duration;

use serde_json::{json, Value};
use switchboard_tests::{TestApp, WsClient};

#[tokio::test]
async fn canned_replies_crud_and_agent_read_access() {
    let app = TestApp::spawn().await;
    let (_, agent_token) = app.create_agent("Reader", &["general"], 2).await;
    let url = app.url("/v1/tenants/acme/canned-replies");
    let created: Value = app
        .http
        .post(&url)
        .bearer_auth(&app.admin_key)
        .json(&json!({"shortcut":"hi","text":"Hello! 您好！"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let duplicate = app
        .http
        .post(&url)
        .bearer_auth(&app.admin_key)
        .json(&json!({"shortcut":"hi","text":"again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(duplicate.status(), 409);
    let bad = app
        .http
        .post(&url)
        .bearer_auth(&app.admin_key)
        .json(&json!({"shortcut":"has space","text":"x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.json::<Value>().await.unwrap()["code"], "bad_shortcut");
    let updated = app
        .http
        .put(format!("{url}/{id}"))
        .bearer_auth(&app.admin_key)
        .json(&json!({"shortcut":"hello","text":"Hello there"}))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), 200);
    let listed: Value = app
        .http
        .get(&url)
        .bearer_auth(&agent_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed,
        json!([{"id":id,"shortcut":"hello","text":"Hello there"}])
    );
    // Agents read; only admins write.
    let denied = app
        .http
        .post(&url)
        .bearer_auth(&agent_token)
        .json(&json!({"shortcut":"x","text":"y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    assert_eq!(
        app.http
            .delete(format!("{url}/{id}"))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        app.http
            .delete(format!("{url}/{id}"))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn agents_are_listed_with_status_and_validated() {
    let app = TestApp::spawn().await;
    let (id, token) = app.create_agent("Listed", &["general", "billing"], 4).await;
    let _console = app.agent_ws(&token).await;
    let (status, body) = app.admin_get("/v1/tenants/acme/agents").await;
    assert_eq!(status, 200);
    let agent = &body["agents"][0];
    assert_eq!(agent["id"], id.as_str());
    assert_eq!(agent["status"], "online");
    assert_eq!(agent["skills"], json!(["general", "billing"]));
    assert!(agent.get("token").is_none());
    let me: Value = app
        .http
        .get(app.url("/v1/agent/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], "Listed");
    assert_eq!(me["tenant"], "acme");
    for (body, code) in [
        (json!({"name":""}), "bad_name"),
        (json!({"name":"x","max_concurrent":0}), "bad_max_concurrent"),
        (json!({"name":"x","skills":[]}), "bad_skills"),
        (json!({"name":"x","extra":1}), "bad_json"),
    ] {
        let response = app
            .http
            .post(app.url("/v1/tenants/acme/agents"))
            .bearer_auth(&app.admin_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        assert_eq!(response.json::<Value>().await.unwrap()["code"], code);
    }
    let response = app
        .http
        .post(app.url("/v1/tenants/acme/agents"))
        .json(&json!({"name":"x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn transcripts_filter_and_page() {
    let app = TestApp::spawn().await;
    for index in 0..5 {
        let mut customer = app.customer_ws(&app.visitor().await).await;
        customer
            .send(json!({"type":"send","client_msg_id":"c","text":format!("customer {index}")}))
            .await;
        customer.expect_type("receipt").await;
    }
    let (_, page) = app
        .admin_get("/v1/tenants/acme/conversations?limit=2&state=queued&channel=web")
        .await;
    assert_eq!(page["conversations"].as_array().unwrap().len(), 2);
    let mut seen: Vec<String> = page["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    let mut next = page["next"].as_str().map(str::to_owned);
    while let Some(cursor) = next {
        let (_, page) = app
            .admin_get(&format!(
                "/v1/tenants/acme/conversations?limit=2&cursor={cursor}"
            ))
            .await;
        seen.extend(
            page["conversations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_owned()),
        );
        next = page["next"].as_str().map(str::to_owned);
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (5, 5));
    let (_, none) = app
        .admin_get("/v1/tenants/acme/conversations?state=closed")
        .await;
    assert_eq!(none["conversations"], json!([]));
    let (status, bad) = app
        .admin_get("/v1/tenants/acme/conversations?state=nonsense")
        .await;
    assert_eq!((status, bad["code"].as_str()), (400, Some("bad_query")));
    let (status, bad) = app
        .admin_get("/v1/tenants/acme/conversations?cursor=zzz")
        .await;
    assert_eq!(status, 400, "{bad}");
}

#[tokio::test]
async fn customer_contact_fields_are_encrypted_at_rest() {
    let app = TestApp::spawn().await;
    let (_, session) = app.visitor_in("acme").await;
    let token = session["token"].as_str().unwrap();
    let mut customer = app.customer_ws(token).await;
    customer
        .send(json!({"type":"send","client_msg_id":"c","text":"hi"}))
        .await;
    customer.expect_type("receipt").await;
    let (_, list) = app.admin_get("/v1/tenants/acme/conversations").await;
    let customer_id = list["conversations"][0]["customer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let profile = json!({"name":"Li Lei","phone":"13800138000","email":"lilei@example.com","address":"北京市朝阳区建国路 88 号"});
    let response = app
        .http
        .put(app.url(&format!("/v1/tenants/acme/customers/{customer_id}")))
        .bearer_auth(&app.admin_key)
        .json(&profile)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, read) = app
        .admin_get(&format!("/v1/tenants/acme/customers/{customer_id}"))
        .await;
    assert_eq!(read["phone"], "13800138000");
    assert_eq!(read["address"], "北京市朝阳区建国路 88 号");
    // The database file holds no plaintext contact field.
    let db = std::fs::read(app.server.state.settings.data_dir.join("switchboard.db")).unwrap();
    let wal = std::fs::read(
        app.server
            .state
            .settings
            .data_dir
            .join("switchboard.db-wal"),
    )
    .unwrap_or_default();
    for needle in ["13800138000", "lilei@example.com", "建国路"] {
        let bytes = needle.as_bytes();
        for file in [&db, &wal] {
            assert!(
                !file.windows(bytes.len()).any(|w| w == bytes),
                "{needle} stored in plaintext"
            );
        }
    }
}

#[tokio::test]
async fn pages_health_and_openapi() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    for (path, needle) in [
        ("/", "widget.js"),
        ("/widget.js", "sb-launcher"),
        ("/console", "reply"),
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            response.text().await.unwrap().contains(needle),
            "{path} lacks {needle}"
        );
    }
    // The widget runs on the tenant's own site: the customer routes answer cross-origin preflights.
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/v1/web/session"))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,authorization",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    let missing = app
        .http
        .get(app.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["code"], "not_found");

    // Every path in the OpenAPI document is served (placeholders filled in): none answers 404 for
    // a missing route, and every documented method is routed.
    let doc: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 14, "only {} paths documented", paths.len());
    for (path, methods) in paths {
        let concrete = path.replace("{tenant}", "acme").replace("{id}", "x1");
        for method in methods
            .as_object()
            .unwrap()
            .keys()
            .filter(|key| ["get", "post", "put", "patch", "delete"].contains(&key.as_str()))
        {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = app
                .http
                .request(method.clone(), app.url(&concrete))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            assert!(
                status != 405,
                "{method} {path} is documented but not routed"
            );
            assert!(
                !(status == 404 && body.contains("route not found")),
                "{method} {path} is documented but not routed"
            );
        }
    }
}

/// Reissuing an agent's token revokes the old one at once: the open console is told and closed,
/// the old token is refused everywhere, the new one works.
#[tokio::test]
async fn reissuing_an_agents_token_revokes_the_old_one() {
    let app = TestApp::spawn().await;
    let (id, old) = app.create_agent("Leaver", &["general"], 2).await;
    let mut console = app.agent_ws(&old).await;
    let (status, body) = app
        .admin_post(&format!("/v1/tenants/acme/agents/{id}/token"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], id.as_str());
    let new = body["token"].as_str().unwrap().to_owned();
    assert_ne!(new, old);

    let revoked = console.expect_type("error").await;
    assert_eq!(revoked["code"], "token_revoked");
    let after = console.next_within(Duration::from_secs(5)).await;
    assert!(
        matches!(&after, Err(error) if error.to_string().contains("closed")),
        "the connection closes: {after:?}"
    );

    let me = |token: String| {
        let request = app.http.get(app.url("/v1/agent/me")).bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(me(old.clone()).await, 401);
    assert_eq!(me(new.clone()).await, 200);
    assert!(
        WsClient::connect(&app.ws_url(&format!("/v1/agent/ws?token={old}")))
            .await
            .is_err(),
        "the old token cannot open a console"
    );
    app.agent_ws(&new).await; // its hello frame

    // Only the tenant's admin, only the tenant's agents.
    let (status, _) = app
        .admin_post("/v1/tenants/acme/agents/ag_missing/token", json!({}))
        .await;
    assert_eq!(status, 404);
    let response = app
        .http
        .post(app.url(&format!("/v1/tenants/acme/agents/{id}/token")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}
