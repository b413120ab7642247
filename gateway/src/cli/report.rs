//! `switchboard report`: a tenant's report as JSON (the same figures as the API and the
//! console; docs/reports.md).

use clap::Args;
use store::reports::EpisodeFilter;
use store::util::now_ms;

use super::args::{settings, StoreArgs};

#[derive(Args)]
pub struct ReportArgs {
    #[arg(long)]
    tenant: String,
    /// The last this many days (ending now).
    #[arg(long, default_value_t = 7)]
    days: u32,
    #[arg(long)]
    channel: Option<String>,
    #[arg(long)]
    skill_group: Option<String>,
    /// An agent id.
    #[arg(long)]
    agent: Option<String>,
    /// A customer CRM tag.
    #[arg(long)]
    tag: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    let settings = settings(&args.store, None)?;
    let services = gateway::Services::open(&settings).await?;
    let Some(tenant) = services.store.tenant(&args.tenant).await? else {
        anyhow::bail!("no tenant named {}", args.tenant);
    };
    let offset = engine::tenant::TenantSettings::from_stored(&args.tenant, &tenant.settings)
        .utc_offset_minutes;
    let to = now_ms() + 1;
    let filter = EpisodeFilter {
        from: to - i64::from(args.days.max(1)) * 86_400_000,
        to,
        channel: args.channel,
        skill_group: args.skill_group,
        agent: args.agent,
        tag: args.tag,
    };
    let report = engine::reports::report(&services.store, &args.tenant, &filter, offset)
        .await
        .map_err(|error| anyhow::anyhow!(error.describe()))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
