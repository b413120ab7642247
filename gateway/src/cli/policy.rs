//! `switchboard policy check|upload`: WASM routing and quality policies.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::args::{open_tenant, StoreArgs};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Compile a component, tell its world, and run it on the sample input.
    Check { file: PathBuf },
    /// Validate and store a component as the tenant's next active version.
    Upload {
        #[arg(long)]
        tenant: String,
        /// routing or quality (default: the world the component exports).
        #[arg(long)]
        kind: Option<String>,
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Check { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let engine = switchboard_policies::PolicyEngine::new(Default::default())?;
            match engine.check(&bytes) {
                Ok(kind) => {
                    println!("ok: a {kind} policy; it compiled, imports nothing and answered the sample input");
                    Ok(())
                }
                Err(error) => anyhow::bail!("{} ({})", error, error.code()),
            }
        }
        PolicyCommand::Upload {
            tenant,
            kind,
            file,
            store,
        } => {
            let policies = open_tenant(&store, &tenant).await?.policies;
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let kind = match kind {
                Some(name) => engine::policy::parse_kind(&name)
                    .map_err(|_| anyhow::anyhow!("--kind is routing or quality"))?,
                None => policies
                    .engine()
                    .check(&bytes)
                    .map_err(|error| anyhow::anyhow!("{} ({})", error, error.code()))?,
            };
            let version = policies
                .upload(&tenant, kind, bytes, "cli")
                .await
                .map_err(|error| anyhow::anyhow!(error.describe()))?;
            println!("{kind} policy version {version} uploaded and active for {tenant}");
            Ok(())
        }
    }
}
