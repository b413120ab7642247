//! Tenant creation, and the `demo` tenant that the first run creates so the product can be
//! tried at once: one agent, a few canned replies, and the URLs to open.

use anyhow::Context;

use crate::AppState;
use store::crypto::{hash_admin_key, new_admin_key};
use store::util::{is_valid_slug, new_id};
use store::{CannedReply, MemberRole, Store, StoreError};

pub const DEMO_TENANT: &str = "demo";

/// Creates a tenant and returns its admin key (shown once; only its hash is stored).
pub async fn create_tenant(store: &Store, name: &str) -> anyhow::Result<String> {
    if !is_valid_slug(name) {
        anyhow::bail!("tenant name must be 2-48 characters of a-z, 0-9 and '-', not starting or ending with '-'");
    }
    let key = new_admin_key();
    store
        .create_tenant(name, &hash_admin_key(&key))
        .await
        .map_err(|error| match error {
            StoreError::Conflict(message) => anyhow::anyhow!(message),
            other => anyhow::Error::new(other).context("cannot create tenant"),
        })?;
    Ok(key)
}

/// Creates a tenant with its first admin member: returns the admin key and the member's
/// password (both shown once).
pub async fn create_tenant_with_admin(
    store: &Store,
    name: &str,
    admin_email: &str,
) -> anyhow::Result<(String, String)> {
    crate::http::members::check_email(admin_email)
        .map_err(|error| anyhow::anyhow!("--admin-email: {error}"))?;
    let key = create_tenant(store, name).await?;
    let password = create_first_admin(store, name, admin_email).await?;
    Ok((key, password))
}

/// Creates a tenant's first admin member (the operator console's first sign-in) and returns the
/// generated password (shown once; only its argon2id hash is stored).
pub async fn create_first_admin(
    store: &Store,
    tenant: &str,
    email: &str,
) -> anyhow::Result<String> {
    let slots = tokio::sync::Semaphore::new(1);
    let (_, password) = crate::http::add_member(
        store,
        &slots,
        tenant,
        email,
        "Admin",
        MemberRole::Admin,
        None,
    )
    .await
    .map_err(|error| anyhow::anyhow!("first admin: {}", error.0.describe()))?;
    password.ok_or_else(|| anyhow::anyhow!("first admin: no password generated"))
}

/// The demo's first admin member.
pub const DEMO_ADMIN_EMAIL: &str = "admin@demo.local";

/// What the demo needs to be used: kept in the data directory so every start can print it.
#[derive(serde::Serialize, serde::Deserialize)]
struct DemoFile {
    admin_key: String,
    agent_id: String,
    /// The first admin's password (data directories from before the console have none).
    #[serde(default)]
    admin_password: Option<String>,
}

/// Creates the demo tenant on first run and returns the lines to print.
pub async fn ensure_demo(state: &AppState) -> anyhow::Result<Vec<String>> {
    let path = state.settings.data_dir.join("demo.json");
    let store = &state.store;
    let demo: DemoFile = if store.tenant(DEMO_TENANT).await?.is_none() {
        let admin_key = create_tenant(store, DEMO_TENANT).await?;
        let agent = store
            .create_agent(DEMO_TENANT, "Demo Agent 小演", &["general".to_owned()], 5)
            .await?;
        let replies = [
            ("hi", "Hello! How can I help you today? 您好，请问有什么可以帮您？"),
            ("wait", "Let me check that for you, one moment please. 我帮您查一下，请稍等。"),
            ("refund", "Refunds go back to the original payment method within 3-5 working days. 退款将在 3-5 个工作日内原路退回。"),
            ("bye", "Thank you for contacting us, have a nice day! 感谢您的咨询，祝您生活愉快！"),
        ];
        for (shortcut, text) in replies {
            let reply = CannedReply {
                id: new_id("cr_"),
                shortcut: shortcut.into(),
                text: text.into(),
            };
            store.put_canned_reply(DEMO_TENANT, &reply).await?;
        }
        let bundled = include_bytes!("../../knowledge/demo/faqs.jsonl").to_vec();
        let report = state
            .knowledge
            .import(
                DEMO_TENANT,
                bundled,
                Some(switchboard_knowledge::ImportFormat::Jsonl),
                &|_, _| {},
            )
            .await
            .map_err(|error| anyhow::anyhow!("demo knowledge base: {error}"))?;
        state
            .knowledge
            .set_synonyms(
                DEMO_TENANT,
                include_str!("../../knowledge/demo/synonyms.txt"),
            )
            .await
            .map_err(|error| anyhow::anyhow!("demo synonyms: {error}"))?;
        tracing::info!(faqs = report.counts.inserted, "demo knowledge base loaded");
        let admin_password = create_first_admin(store, DEMO_TENANT, DEMO_ADMIN_EMAIL).await?;
        let demo = DemoFile {
            admin_key,
            agent_id: agent.id,
            admin_password: Some(admin_password),
        };
        std::fs::write(&path, serde_json::to_string_pretty(&demo)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        demo
    } else {
        match std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str::<DemoFile>(&text).ok())
        {
            Some(mut demo) => {
                // A demo made before the console: give it its first admin now.
                let has_admin = store
                    .member_credentials(DEMO_TENANT, DEMO_ADMIN_EMAIL)
                    .await?
                    .is_some();
                if demo.admin_password.is_none() && !has_admin {
                    demo.admin_password =
                        Some(create_first_admin(store, DEMO_TENANT, DEMO_ADMIN_EMAIL).await?);
                    std::fs::write(&path, serde_json::to_string_pretty(&demo)?)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
                demo
            }
            None => {
                return Ok(vec![
                    "demo tenant exists (its keys are not in this data dir)".to_owned(),
                ])
            }
        }
    };
    let Some(agent) = store.agent(DEMO_TENANT, &demo.agent_id).await? else {
        return Ok(vec!["demo agent not found".to_owned()]);
    };
    let base = format!("http://{}", state.settings.addr);
    let token = crate::http::agent_token(state, &agent);
    let mut lines = vec![
        format!("demo site (customer widget): {base}/?tenant={DEMO_TENANT}"),
        format!("agent console:               {base}/console#token={token}"),
        format!("operator console:            {base}/admin/?tenant={DEMO_TENANT}"),
    ];
    if let Some(password) = &demo.admin_password {
        lines.push(format!(
            "  sign in as:                {DEMO_ADMIN_EMAIL} / {password}"
        ));
    }
    lines.push(format!("demo admin key (API):        {}", demo.admin_key));
    Ok(lines)
}
