//! `switchboard tenant create`.

use clap::Subcommand;

use super::args::{settings, StoreArgs};

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its admin API key.
    Create {
        /// URL-safe slug, used as `{tenant}` in every path.
        name: String,
        /// Print `{"tenant": ..., "admin_key": ...}`.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(command: TenantCommand) -> anyhow::Result<()> {
    let TenantCommand::Create { name, json, store } = command;
    let settings = settings(&store, None)?;
    let (store, _) = gateway::open_store(&settings).await?;
    let key = gateway::demo::create_tenant(&store, &name).await?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "tenant": name, "admin_key": key })
        );
    } else {
        println!("tenant {name} created\nadmin key (shown once): {key}");
    }
    Ok(())
}
