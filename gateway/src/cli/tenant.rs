//! `switchboard tenant create`.

use clap::Subcommand;

use super::args::{settings, StoreArgs};

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and its first admin member; print the admin API key and the member's
    /// password (both shown once).
    Create {
        /// URL-safe slug, used as `{tenant}` in every path.
        name: String,
        /// The first admin's email (they sign in to the operator console with it).
        #[arg(long)]
        admin_email: String,
        /// Print `{"tenant", "admin_key", "admin_email", "admin_password"}`.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(command: TenantCommand) -> anyhow::Result<()> {
    let TenantCommand::Create {
        name,
        admin_email,
        json,
        store,
    } = command;
    let settings = settings(&store, None)?;
    let (store, _) = gateway::open_store(&settings).await?;
    let (key, password) =
        gateway::demo::create_tenant_with_admin(&store, &name, &admin_email).await?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "tenant": name,
                "admin_key": key,
                "admin_email": admin_email.trim().to_lowercase(),
                "admin_password": password,
            })
        );
    } else {
        println!(
            "tenant {name} created\nadmin key (shown once): {key}\n\
             first admin: {} / {password} (shown once; sign in at /admin/?tenant={name})",
            admin_email.trim().to_lowercase()
        );
    }
    Ok(())
}
