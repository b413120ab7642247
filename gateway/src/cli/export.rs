//! `switchboard export`: a tenant's conversations with their messages and events as CSV, JSON
//! Lines or XLSX, the export the console downloads (`engine::export`), written to a file or to
//! standard output as it is read from the store.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tokio::sync::mpsc;

use super::args::{settings, StoreArgs};
use engine::export::{self, ExportQuery, ExportRequest};

#[derive(Args)]
pub struct ExportArgs {
    #[arg(long)]
    tenant: String,
    /// csv, jsonl or xlsx.
    #[arg(long, default_value = "csv")]
    format: String,
    /// conversation (one row per conversation) or message (one row per message).
    #[arg(long, default_value = "conversation")]
    rows: String,
    /// Start of the period (last activity): milliseconds, an RFC 3339 time or a date
    /// (YYYY-MM-DD, in the tenant's UTC offset).
    #[arg(long)]
    from: Option<String>,
    /// End of the period, exclusive; a date includes that whole day. Default: now.
    #[arg(long)]
    to: Option<String>,
    #[arg(long)]
    channel: Option<String>,
    #[arg(long)]
    skill_group: Option<String>,
    /// An agent's id.
    #[arg(long)]
    agent: Option<String>,
    /// The file to write (standard output without it). Written beside as `<file>.part` and
    /// renamed when complete, so a failed export leaves no file that looks whole.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    let settings = settings(&args.store, None)?;
    let (store, _) = gateway::open_store(&settings).await?;
    let Some(tenant) = store.tenant(&args.tenant).await? else {
        anyhow::bail!("no tenant named {}", args.tenant);
    };
    let offset = engine::tenant::TenantSettings::from_stored(&tenant.id, &tenant.settings)
        .utc_offset_minutes;
    let query = ExportQuery {
        format: Some(args.format.clone()),
        rows: Some(args.rows.clone()),
        from: args.from.clone(),
        to: args.to.clone(),
        channel: args.channel.clone(),
        skill_group: args.skill_group.clone(),
        agent: args.agent.clone(),
    };
    let request = ExportRequest::parse(&tenant.id, &query, store::util::now_ms(), offset)
        .map_err(|error| anyhow::anyhow!("{} ({})", error.describe(), error.code()))?;
    let part = args.out.as_ref().map(|out| {
        let mut name = out.as_os_str().to_owned();
        name.push(".part");
        PathBuf::from(name)
    });
    // Plain blocking writes: this command does nothing else meanwhile.
    let mut output: Box<dyn Write + Send> = match &part {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let (sender, mut receiver) = mpsc::channel(export::CHANNEL_BATCHES);
    let exporting = async {
        let result = export::run(&store, &request, &sender).await;
        drop(sender);
        result
    };
    let writing = async {
        while let Some(chunk) = receiver.recv().await {
            let Ok(bytes) = chunk else { continue };
            output.write_all(&bytes)?;
        }
        output.flush()?;
        anyhow::Ok(())
    };
    let (exported, written) = tokio::join!(exporting, writing);
    let failed = match (exported, written) {
        (Ok(stats), Ok(())) => {
            if let (Some(part), Some(out)) = (&part, &args.out) {
                tokio::fs::rename(part, out).await.with_context(|| {
                    format!("cannot rename {} to {}", part.display(), out.display())
                })?;
            }
            eprintln!(
                "exported {} conversation(s), {} row(s){}",
                stats.conversations,
                stats.rows,
                args.out
                    .as_ref()
                    .map(|out| format!(" to {}", out.display()))
                    .unwrap_or_default()
            );
            None
        }
        (_, Err(error)) => Some(error.context("cannot write the export")),
        (Err(error), _) => Some(anyhow::anyhow!("export failed: {}", error.describe())),
    };
    store.close().await;
    match failed {
        None => Ok(()),
        Some(error) => {
            if let Some(part) = &part {
                let _ = tokio::fs::remove_file(part).await;
            }
            Err(error)
        }
    }
}
