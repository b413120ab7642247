//! `switchboard tenant create` and `tenant rotate-key`.

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
    /// Replace a tenant's admin API key: prints the new one (shown once); the old one stops
    /// working at once.
    RotateKey {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(command: TenantCommand) -> anyhow::Result<()> {
    let (name, admin_email, json, store) = match command {
        TenantCommand::Create {
            name,
            admin_email,
            json,
            store,
        } => (name, admin_email, json, store),
        TenantCommand::RotateKey { name, store } => return rotate_key(&name, &store).await,
    };
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

async fn rotate_key(name: &str, store: &StoreArgs) -> anyhow::Result<()> {
    let settings = settings(store, None)?;
    let (store, _) = gateway::open_store(&settings).await?;
    let key = store::crypto::new_admin_key();
    store
        .set_admin_key_hash(name, &store::crypto::hash_admin_key(&key))
        .await
        .map_err(|error| anyhow::anyhow!("tenant {name}: {error}"))?;
    println!("new admin key for {name} (shown once; the old one no longer works): {key}");
    Ok(())
}
