//! `switchboard intents train|eval`: a tenant's intent classifier.

use std::path::PathBuf;

use clap::Subcommand;

use super::args::{open_tenant, read_text, StoreArgs};

#[derive(Subcommand)]
pub enum IntentsCommand {
    /// Train the tenant's intents (built-in ones included) from JSON Lines or CSV `text,label`.
    Train {
        #[arg(long)]
        tenant: String,
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Accuracy, per-label recall and out-of-scope recall on labelled examples.
    Eval {
        #[arg(long)]
        tenant: String,
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(command: IntentsCommand) -> anyhow::Result<()> {
    let (tenant, file, store, train) = match command {
        IntentsCommand::Train {
            tenant,
            file,
            store,
        } => (tenant, file, store, true),
        IntentsCommand::Eval {
            tenant,
            file,
            store,
        } => (tenant, file, store, false),
    };
    let services = open_tenant(&store, &tenant).await?;
    let text = read_text(&file)?;
    let examples = engine::intents::parse_training(&text, Some(&file.to_string_lossy()))
        .map_err(|error| anyhow::anyhow!(error.describe()))?;
    let intents = services.intents;
    if train {
        eprintln!(
            "training on {} examples (and the built-in intents)...",
            examples.len()
        );
        let outcome = intents
            .train(&tenant, examples)
            .await
            .map_err(|error| anyhow::anyhow!(error.describe()))?;
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        let report = intents
            .evaluate(&tenant, &examples)
            .await
            .map_err(|error| anyhow::anyhow!(error.describe()))?;
        print!("{report}");
    }
    Ok(())
}
