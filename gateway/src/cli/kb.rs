//! `switchboard kb import|search`: a tenant's knowledge base.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::args::{open_tenant, StoreArgs};

#[derive(Subcommand)]
pub enum KbCommand {
    /// Import FAQs (JSON Lines, CSV or XLSX), upserting by id.
    Import {
        #[arg(long)]
        tenant: String,
        /// The file to import.
        file: PathBuf,
        /// jsonl, csv or xlsx (default: from the file name, else the content).
        #[arg(long)]
        format: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Search a tenant's FAQs as the bot would.
    Search {
        #[arg(long)]
        tenant: String,
        query: String,
        #[arg(short, long, default_value_t = 5)]
        k: usize,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(command: KbCommand) -> anyhow::Result<()> {
    match command {
        KbCommand::Import {
            tenant,
            file,
            format,
            store,
        } => {
            let knowledge = open_tenant(&store, &tenant).await?.knowledge;
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let declared = match format {
                Some(name) => Some(switchboard_knowledge::ImportFormat::from_name(&name)?),
                None => {
                    switchboard_knowledge::ImportFormat::from_name(&file.to_string_lossy()).ok()
                }
            };
            let progress = |done: usize, total: usize| {
                let width = 30;
                let filled = if total == 0 {
                    width
                } else {
                    done * width / total
                };
                eprint!(
                    "\r[{}{}] {done}/{total}",
                    "#".repeat(filled),
                    " ".repeat(width - filled)
                );
                if done == total {
                    eprintln!();
                }
            };
            let report = knowledge
                .import(&tenant, bytes, declared, &progress)
                .await
                .map_err(|error| anyhow::anyhow!(error.describe()))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        KbCommand::Search {
            tenant,
            query,
            k,
            store,
        } => {
            let knowledge = open_tenant(&store, &tenant).await?.knowledge;
            let hits = knowledge
                .search(&tenant, &query, k.clamp(1, 50))
                .await
                .map_err(|error| anyhow::anyhow!(error.describe()))?;
            if hits.is_empty() {
                println!("no match");
            }
            for hit in hits {
                println!(
                    "{:>7.3}  {}  {}\n         {}",
                    hit.score, hit.id, hit.question, hit.answer
                );
            }
            Ok(())
        }
    }
}
