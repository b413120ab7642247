//! `switchboard bot eval`: labelled lines through the bot, as live chat runs them.

use std::path::PathBuf;

use clap::Subcommand;

use super::args::{read_text, settings, StoreArgs};

#[derive(Subcommand)]
pub enum BotCommand {
    /// Run labelled lines `{"q":"...","expect":"<faq id>|handoff|none"}` through the bot.
    Eval {
        #[arg(long)]
        tenant: String,
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
}

async fn eval(store: &StoreArgs, tenant: &str, file: &std::path::Path) -> anyhow::Result<()> {
    let settings = settings(store, None)?;
    let services = gateway::Services::open(&settings).await?;
    if services.store.tenant(tenant).await?.is_none() {
        anyhow::bail!("no tenant named {tenant}");
    }
    let lines = switchboard_bot::eval::parse_eval_lines(&read_text(file)?).map_err(|errors| {
        let shown: Vec<String> = errors.iter().take(10).map(ToString::to_string).collect();
        anyhow::anyhow!("{} bad line(s): {}", errors.len(), shown.join("; "))
    })?;
    eprintln!("loading the models and embedding the FAQs...");
    let bot = services
        .bot
        .ready()
        .await
        .map_err(|error| anyhow::anyhow!(error.describe()))?;
    let tenant_settings = match services.store.tenant(tenant).await? {
        Some(record) => engine::tenant::TenantSettings::from_stored(tenant, &record.settings),
        None => Default::default(),
    };
    if let Some(engine::intents::TenantClassifier::Head(head)) = services
        .intents
        .classifier(tenant)
        .await
        .map_err(|error| anyhow::anyhow!(error.describe()))?
    {
        bot.set_intent_head(tenant, head);
    }
    let synonyms = services.knowledge.synonyms(tenant);
    let tenant_name = tenant.to_owned();
    let report = tokio::task::spawn_blocking(move || {
        switchboard_bot::evaluate_with(
            &bot,
            &tenant_name,
            &lines,
            std::sync::Arc::new(tenant_settings.bot),
            synonyms,
        )
    })
    .await?;
    print!("{report}");
    Ok(())
}

pub async fn run(command: BotCommand) -> anyhow::Result<()> {
    let BotCommand::Eval {
        tenant,
        file,
        store,
    } = command;
    eval(&store, &tenant, &file).await
}
