//! Tenant creation, and the `demo` tenant that the first run creates so the product can be
//! tried at once: one agent, a few canned replies, and the URLs to open.

use anyhow::Context;

use crate::AppState;
use store::crypto::{hash_admin_key, new_admin_key};
use store::util::{is_valid_slug, new_id};
use store::{CannedReply, Store, StoreError};

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

/// What the demo needs to be used: kept in the data directory so every start can print it.
#[derive(serde::Serialize, serde::Deserialize)]
struct DemoFile {
    admin_key: String,
    agent_id: String,
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
        let demo = DemoFile {
            admin_key,
            agent_id: agent.id,
        };
        std::fs::write(&path, serde_json::to_string_pretty(&demo)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        demo
    } else {
        match std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
        {
            Some(demo) => demo,
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
    Ok(vec![
        format!("demo site (customer widget): {base}/?tenant={DEMO_TENANT}"),
        format!("agent console:               {base}/console#token={token}"),
        format!("demo admin key:              {}", demo.admin_key),
    ])
}
