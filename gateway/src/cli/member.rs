//! `switchboard member add|list|disable`: the members of a tenant who sign in to the operator
//! console, managed from the machine (the first admin, a forgotten password, an account to stop).

use clap::Subcommand;
use store::{MemberRole, MemberUpdate};

use super::args::{settings, StoreArgs};

#[derive(Subcommand)]
pub enum MemberCommand {
    /// Add a member; prints the generated password (shown once).
    Add {
        tenant: String,
        email: String,
        /// admin, knowledge_manager, supervisor or agent.
        #[arg(long, value_parser = parse_role)]
        role: MemberRole,
        /// Display name (default: the part of the email before `@`).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List a tenant's members.
    List {
        tenant: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Disable a member (their sessions end at once), or enable them again with `--enable`.
    Disable {
        tenant: String,
        email: String,
        #[arg(long)]
        enable: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn parse_role(text: &str) -> Result<MemberRole, String> {
    MemberRole::parse(text)
        .ok_or_else(|| "a role is admin, knowledge_manager, supervisor or agent".to_owned())
}

pub async fn run(command: MemberCommand) -> anyhow::Result<()> {
    match command {
        MemberCommand::Add {
            tenant,
            email,
            role,
            name,
            store,
        } => {
            let store = open(&store).await?;
            let name = name.unwrap_or_else(|| email.split('@').next().unwrap_or("").to_owned());
            let slots = tokio::sync::Semaphore::new(1);
            let (member, password) =
                gateway::add_member(&store, &slots, &tenant, &email, &name, role, None)
                    .await
                    .map_err(|error| anyhow::anyhow!(error.0.describe()))?;
            println!(
                "member {} ({}) added to {tenant}\npassword (shown once): {}",
                member.email,
                member.role.as_str(),
                password.unwrap_or_default()
            );
        }
        MemberCommand::List { tenant, store } => {
            let store = open(&store).await?;
            for member in store.members(&tenant).await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    member.email,
                    member.role.as_str(),
                    if member.disabled {
                        "disabled"
                    } else {
                        "enabled"
                    },
                    member.name
                );
            }
        }
        MemberCommand::Disable {
            tenant,
            email,
            enable,
            store,
        } => {
            let store = open(&store).await?;
            let (member, _) = store
                .member_credentials(&tenant, &email)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no member {email} in {tenant}"))?;
            let update = MemberUpdate {
                disabled: Some(!enable),
                ..MemberUpdate::default()
            };
            let member = store.update_member(&tenant, &member.id, &update).await?;
            println!(
                "member {} is {}",
                member.email,
                if member.disabled {
                    "disabled"
                } else {
                    "enabled"
                }
            );
        }
    }
    Ok(())
}

async fn open(store: &StoreArgs) -> anyhow::Result<store::Store> {
    let settings = settings(store, None)?;
    Ok(gateway::open_store(&settings).await?.0)
}
