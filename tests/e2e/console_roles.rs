//! The operator console's people over real HTTP: each role signs in and reaches its own areas
//! only; no member reaches another tenant; sessions are cookies with CSRF tokens that end on
//! sign-out and when a member is disabled; settings patches merge; every change is audited.

use serde_json::{json, Value};
use store::MemberRole;
use switchboard_tests::TestApp;

/// One route per area of the console, read-only.
const PROBES: [(&str, &str); 9] = [
    ("knowledge", "/v1/tenants/acme/kb/faqs"),
    ("bot", "/v1/tenants/acme/settings"),
    (
        "sensitive_words",
        "/v1/tenants/acme/policies/sensitive-words",
    ),
    ("policies", "/v1/tenants/acme/policies/routing"),
    ("team", "/v1/tenants/acme/members"),
    ("channels", "/v1/tenants/acme/channels"),
    ("live", "/v1/tenants/acme/conversations"),
    ("reports", "/v1/tenants/acme/reports"),
    ("audit", "/v1/tenants/acme/audit"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_reaches_its_own_areas_and_no_other_tenant() {
    let app = TestApp::spawn().await;
    let roles: [(MemberRole, &[&str]); 4] = [
        (
            MemberRole::Admin,
            &[
                "knowledge",
                "bot",
                "sensitive_words",
                "policies",
                "team",
                "channels",
                "settings",
                "live",
                "reports",
                "audit",
            ],
        ),
        (
            MemberRole::KnowledgeManager,
            &["knowledge", "bot", "sensitive_words", "reports"],
        ),
        (MemberRole::Supervisor, &["live", "reports"]),
        (MemberRole::Agent, &[]),
    ];
    for (role, areas) in roles {
        let email = format!("{}@acme.example", role.as_str());
        let password = app.add_member("acme", &email, role).await;
        let session = app
            .sign_in("acme", &email, &password)
            .await
            .unwrap_or_else(|refusal| panic!("{role:?} signs in: {refusal:?}"));
        assert_eq!(session.body["member"]["role"], role.as_str());
        assert_eq!(session.body["permissions"], json!(areas), "{role:?}");
        assert_eq!(
            session.body["agent_console_url"].is_string(),
            role == MemberRole::Agent
        );
        for (area, path) in PROBES {
            let (status, body) = session.get(path).await;
            if areas.contains(&area) {
                assert_eq!(status, 200, "{role:?} reads {area}: {body}");
            } else {
                assert_eq!(
                    (status, body["code"].as_str()),
                    (403, Some("role")),
                    "{role:?} is kept out of {area}"
                );
            }
        }
        // The whole settings object is the admins'; the bot's part also the knowledge managers'.
        let (status, body) = session
            .patch(
                "/v1/tenants/acme/settings",
                json!({ "utc_offset_minutes": 480 }),
            )
            .await;
        let expected = if areas.contains(&"settings") {
            200
        } else {
            403
        };
        assert_eq!(status, expected, "{role:?} patches limits: {body}");
        let (status, _) = session
            .patch(
                "/v1/tenants/acme/settings",
                json!({ "work_mode": "human_first" }),
            )
            .await;
        let expected = if areas.contains(&"bot") { 200 } else { 403 };
        assert_eq!(status, expected, "{role:?} patches the work mode");
    }

    // Another tenant: its pages refuse this tenant's session, and its sign-in these credentials.
    app.create_tenant("globex").await;
    let password = app
        .add_member("acme", "boss@acme.example", MemberRole::Admin)
        .await;
    let admin = app
        .sign_in("acme", "boss@acme.example", &password)
        .await
        .expect("admin signs in");
    for path in [
        "/v1/tenants/globex/kb/faqs",
        "/v1/tenants/globex/members",
        "/v1/tenants/globex/audit",
        "/v1/tenants/globex/settings",
    ] {
        let (status, body) = admin.get(path).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("other_tenant")),
            "{path}"
        );
    }
    let (status, body) = admin
        .post(
            "/v1/tenants/globex/members",
            json!({ "email": "x@y.z", "name": "X", "role": "admin" }),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("other_tenant")));
    let (status, body) = app
        .sign_in("globex", "boss@acme.example", &password)
        .await
        .err()
        .expect("refused");
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("bad_credentials"))
    );
    // And no session at all reaches nothing.
    let response = app
        .http
        .get(app.url("/v1/tenants/acme/members"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_need_csrf_end_on_sign_out_and_on_disable_and_guessing_is_limited() {
    let app = TestApp::spawn().await;
    let password = app
        .add_member("acme", "ops@acme.example", MemberRole::Admin)
        .await;
    // Wrong password and unknown email: the same refusal.
    for (email, password) in [
        ("ops@acme.example", "wrong password!"),
        ("who@acme.example", "whatever12"),
    ] {
        let (status, body) = app
            .sign_in("acme", email, password)
            .await
            .err()
            .expect("refused");
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("bad_credentials"))
        );
    }
    // Emails are not case-sensitive.
    let admin = app
        .sign_in("acme", "OPS@acme.example", &password)
        .await
        .expect("signs in");
    let cookie = admin.set_cookie.to_lowercase();
    for attribute in [
        "httponly",
        "samesite=strict",
        "path=/v1/tenants/acme/",
        "max-age=43200",
    ] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let (status, me) = admin.get("/v1/tenants/acme/auth/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["member"]["email"], "ops@acme.example");
    assert_eq!(me["csrf_token"], admin.csrf.as_str());

    // A change without the CSRF token is refused, whatever it is; with it, it is made.
    let new_member =
        json!({ "email": "kb@acme.example", "name": "Kim", "role": "knowledge_manager" });
    let (status, body) = admin
        .send(
            reqwest::Method::POST,
            "/v1/tenants/acme/members",
            Some(new_member.clone()),
            false,
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("csrf")));
    let forged = switchboard_tests::MemberSession {
        csrf: "forged".into(),
        ..app
            .sign_in("acme", "ops@acme.example", &password)
            .await
            .expect("again")
    };
    let (status, _) = forged
        .post("/v1/tenants/acme/members", new_member.clone())
        .await;
    assert_eq!(status, 403);
    let (status, created) = admin.post("/v1/tenants/acme/members", new_member).await;
    assert_eq!(status, 201, "{created}");
    let kb_password = created["password"]
        .as_str()
        .expect("generated once")
        .to_owned();
    let kb_id = created["member"]["id"].as_str().unwrap().to_owned();
    assert!(created["member"].get("password_hash").is_none());
    let kb = app
        .sign_in("acme", "kb@acme.example", &kb_password)
        .await
        .expect("the new member signs in");
    assert_eq!(kb.get("/v1/tenants/acme/kb/faqs").await.0, 200);

    // Disabled: the session ends at once and signing in is refused.
    let (status, body) = admin
        .patch(
            &format!("/v1/tenants/acme/members/{kb_id}"),
            json!({ "disabled": true }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = kb.get("/v1/tenants/acme/kb/faqs").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("session_expired"))
    );
    let (status, body) = app
        .sign_in("acme", "kb@acme.example", &kb_password)
        .await
        .err()
        .expect("refused");
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("member_disabled"))
    );
    // A reset password is answered once and works; the old one does not.
    let (_, body) = admin
        .patch(
            &format!("/v1/tenants/acme/members/{kb_id}"),
            json!({ "disabled": false, "password": "" }),
        )
        .await;
    let reset = body["password"]
        .as_str()
        .expect("a new password")
        .to_owned();
    assert!(app
        .sign_in("acme", "kb@acme.example", &kb_password)
        .await
        .is_err());
    assert!(app.sign_in("acme", "kb@acme.example", &reset).await.is_ok());
    let (status, body) = admin
        .patch(
            &format!("/v1/tenants/acme/members/{kb_id}"),
            json!({ "password": "short" }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("weak_password"))
    );

    // The last enabled admin cannot step down.
    let own_id = admin.body["member"]["id"].as_str().unwrap().to_owned();
    let (status, _) = admin
        .patch(
            &format!("/v1/tenants/acme/members/{own_id}"),
            json!({ "role": "agent" }),
        )
        .await;
    assert_eq!(status, 409);

    // Signing out ends the session.
    let (status, _) = admin.post("/v1/tenants/acme/auth/logout", json!({})).await;
    assert_eq!(status, 204);
    assert_eq!(admin.get("/v1/tenants/acme/auth/me").await.0, 401);

    // Guessing one account's password is slowed down, from any address.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let refusal = app
            .sign_in("acme", "ops@acme.example", "not the password")
            .await
            .err()
            .expect("refused");
        statuses.push(refusal.0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_patches_merge_and_every_change_is_in_the_audit_log() {
    let app = TestApp::spawn().await;
    let password = app
        .add_member("acme", "ops@acme.example", MemberRole::Admin)
        .await;
    let admin = app
        .sign_in("acme", "ops@acme.example", &password)
        .await
        .expect("signs in");
    // With the admin key: a whole object (PUT replaces).
    let response = app
        .http
        .put(app.url("/v1/tenants/acme/settings"))
        .bearer_auth(&app.admin_key)
        .json(&json!({ "work_mode": "human_first", "utc_offset_minutes": 480 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // A patch of one field keeps the others.
    let (status, settings) = admin
        .patch(
            "/v1/tenants/acme/settings",
            json!({ "bot": { "answer_threshold": 0.75 } }),
        )
        .await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["utc_offset_minutes"], 480);
    assert_eq!(settings["work_mode"], "human_first");
    assert_eq!(settings["bot"]["answer_threshold"], 0.75);
    // `null` returns a field to its default.
    let (_, settings) = admin
        .patch(
            "/v1/tenants/acme/settings",
            json!({ "utc_offset_minutes": null }),
        )
        .await;
    assert_eq!(settings["utc_offset_minutes"], 0);
    assert_eq!(settings["bot"]["answer_threshold"], 0.75);
    // Bad patches change nothing.
    for bad in [
        json!({ "bot": { "answer_threshold": 2 } }),
        json!({ "no_such_field": 1 }),
        json!([1, 2]),
    ] {
        let (status, body) = admin.patch("/v1/tenants/acme/settings", bad.clone()).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("bad_settings")),
            "{bad}"
        );
    }
    let (_, settings) = admin.get("/v1/tenants/acme/settings").await;
    assert_eq!(settings["bot"]["answer_threshold"], 0.75);
    assert_eq!(settings["work_mode"], "human_first");

    // The audit log: newest first, who did what, before and after; refused requests are not
    // changes.
    let (status, page) = admin.get("/v1/tenants/acme/audit").await;
    assert_eq!(status, 200);
    let entries = page["entries"].as_array().unwrap();
    let summary: Vec<(&str, &str)> = entries
        .iter()
        .map(|entry| {
            (
                entry["actor"].as_str().unwrap(),
                entry["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("ops@acme.example", "PATCH settings"),
            ("ops@acme.example", "PATCH settings"),
            ("admin key", "PUT settings"),
            ("ops@acme.example", "POST auth/login"),
        ]
    );
    let patch: &Value = &entries[1];
    assert_eq!(patch["actor_kind"], "member");
    assert_eq!(patch["target"], "settings");
    assert_eq!(patch["summary"]["after"]["bot"]["answer_threshold"], 0.75);
    assert_eq!(patch["summary"]["before"]["bot"]["answer_threshold"], 0.5);
    // Fields that did not change are not in the summary.
    assert!(patch["summary"]["after"]
        .get("utc_offset_minutes")
        .is_none());
    // Filtered and paged.
    let (_, page) = admin.get("/v1/tenants/acme/audit?actor=ADMIN%20KEY").await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    let (_, page) = admin.get("/v1/tenants/acme/audit?limit=2").await;
    let before = page["next_before"].as_i64().expect("another page");
    let (_, rest) = admin
        .get(&format!("/v1/tenants/acme/audit?limit=2&before={before}"))
        .await;
    let rest: Vec<&str> = rest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert_eq!(rest, ["PUT settings", "POST auth/login"]);

    // Rotating the admin key: the new one is answered once, the old one is refused at once.
    let (status, rotated) = admin.post("/v1/tenants/acme/admin-key", json!({})).await;
    assert_eq!(status, 200);
    let new_key = rotated["admin_key"].as_str().unwrap();
    let with_key = |key: &str| {
        app.http
            .get(app.url("/v1/tenants/acme/settings"))
            .bearer_auth(key)
            .send()
    };
    assert_eq!(with_key(&app.admin_key).await.unwrap().status(), 401);
    assert_eq!(with_key(new_key).await.unwrap().status(), 200);
    let (_, page) = admin.get("/v1/tenants/acme/audit?action=admin-key").await;
    assert_eq!(page["entries"][0]["actor"], "ops@acme.example");
    assert!(
        !page.to_string().contains(new_key),
        "the key is never logged"
    );
}
