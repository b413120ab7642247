//! `switchboard`: serve, migrate, and manage tenants.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use gateway::config::Settings;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Bot-first customer-service routing"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct StoreArgs {
    /// A TOML settings file.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Local state directory (SQLite file, generated secrets).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// `postgres://...` or `sqlite://...` instead of the SQLite file in the data dir.
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// `redis://...`: cluster mode (with a shared PostgreSQL database and shared secrets).
    #[arg(long, global = true)]
    redis_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Listen address (default 127.0.0.1:8080).
        #[arg(long)]
        addr: Option<SocketAddr>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// The knowledge base: import FAQs, search them.
    Kb {
        #[command(subcommand)]
        command: KbCommand,
    },
    /// A tenant's intent classifier: train it, evaluate it.
    Intents {
        #[command(subcommand)]
        command: IntentsCommand,
    },
    /// The bot: evaluate its decisions on labelled questions.
    Bot {
        #[command(subcommand)]
        command: BotCommand,
    },
    /// WASM routing and quality policies: check a component, upload it.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Load test on loopback: customer–agent relay beside a bare WebSocket echo server.
    Bench {
        /// Customer–agent pairs (and echo connections).
        #[arg(long, default_value_t = 100)]
        pairs: usize,
        /// Messages in flight per connection.
        #[arg(long, default_value_t = 16)]
        inflight: usize,
        /// Seconds measured per phase (after one second of warm-up).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Message size in bytes.
        #[arg(long, default_value_t = 100)]
        bytes: usize,
        /// Idle customer connections to hold for the memory figure (0: skip).
        #[arg(long, default_value_t = 1000)]
        idle: usize,
        /// Measure on this PostgreSQL database (`postgres://...`) instead of SQLite.
        #[arg(long)]
        database_url: Option<String>,
    },
}

#[derive(Subcommand)]
enum IntentsCommand {
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

#[derive(Subcommand)]
enum BotCommand {
    /// Run labelled lines `{"q":"...","expect":"<faq id>|handoff|none"}` through the bot.
    Eval {
        #[arg(long)]
        tenant: String,
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
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

#[derive(Subcommand)]
enum KbCommand {
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

#[derive(Subcommand)]
enum TenantCommand {
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

fn settings(store: &StoreArgs, addr: Option<SocketAddr>) -> anyhow::Result<Settings> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let mut settings = Settings::load(store.config.as_deref(), &env)?;
    if let Some(dir) = &store.data_dir {
        settings.data_dir = dir.clone();
    }
    if let Some(url) = &store.redis_url {
        settings.redis_url = Some(url.clone());
    }
    if let Some(url) = &store.database_url {
        settings.database_url = Some(url.clone());
    }
    if let Some(addr) = addr {
        settings.addr = addr;
    }
    Ok(settings)
}

fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if settings.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { addr, store } => {
            let settings = settings(&store, addr)?;
            init_logging(&settings);
            let demo = settings.demo;
            let server = gateway::Server::start(settings).await?;
            println!("switchboard listening on http://{}", server.addr);
            if demo {
                for line in gateway::demo::ensure_demo(&server.state)
                    .await
                    .context("cannot create the demo tenant")?
                {
                    println!("{line}");
                }
            }
            let state = server.state.clone();
            tokio::select! {
                result = server.wait() => result?,
                _ = tokio::signal::ctrl_c() => {
                    println!("shutting down");
                    state.store.close().await;
                }
            }
            Ok(())
        }
        Command::Migrate { store } => {
            let settings = settings(&store, None)?;
            gateway::open_store(&settings).await?;
            println!("migrations applied to {}", redact(&settings.database_url()));
            Ok(())
        }
        Command::Tenant {
            command: TenantCommand::Create { name, json, store },
        } => {
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
        Command::Kb { command } => kb_command(command).await,
        Command::Intents { command } => intents_command(command).await,
        Command::Bot {
            command:
                BotCommand::Eval {
                    tenant,
                    file,
                    store,
                },
        } => bot_eval(&store, &tenant, &file).await,
        Command::Policy { command } => policy_command(command).await,
        Command::Bench {
            pairs,
            inflight,
            seconds,
            bytes,
            idle,
            database_url,
        } => {
            // Quiet unless asked (RUST_LOG): the report is the output.
            if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
                tracing_subscriber::fmt()
                    .with_env_filter(filter)
                    .with_writer(std::io::stderr)
                    .init();
            }
            let report = gateway::bench::run(gateway::bench::BenchOptions {
                pairs: pairs.max(1),
                inflight: inflight.max(1),
                seconds: seconds.max(1),
                message_bytes: bytes.max(24),
                idle,
                database_url,
            })
            .await?;
            println!("{report}");
            Ok(())
        }
    }
}

fn read_text(file: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file)
        .with_context(|| format!("cannot read {} as UTF-8 text", file.display()))
}

async fn open_tenant_store(
    store: &StoreArgs,
    tenant: &str,
) -> anyhow::Result<(Settings, gateway::store::Store)> {
    let settings = settings(store, None)?;
    let (opened, _) = gateway::open_store(&settings).await?;
    if opened.tenant(tenant).await?.is_none() {
        anyhow::bail!("no tenant named {tenant}");
    }
    Ok((settings, opened))
}

async fn intents_command(command: IntentsCommand) -> anyhow::Result<()> {
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
    let (settings, opened) = open_tenant_store(&store, &tenant).await?;
    let text = read_text(&file)?;
    let examples = gateway::intents::parse_training(&text, Some(&file.to_string_lossy()))
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let intents = gateway::intents::Intents::new(opened, &settings.data_dir.join("models"));
    if train {
        eprintln!(
            "training on {} examples (and the built-in intents)...",
            examples.len()
        );
        let outcome = intents
            .train(&tenant, examples)
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        let report = intents
            .evaluate(&tenant, &examples)
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        print!("{report}");
    }
    Ok(())
}

async fn bot_eval(store: &StoreArgs, tenant: &str, file: &std::path::Path) -> anyhow::Result<()> {
    let knowledge = open_knowledge(store, tenant).await?;
    let (settings, opened) = open_tenant_store(store, tenant).await?;
    let lines = switchboard_bot::eval::parse_eval_lines(&read_text(file)?).map_err(|errors| {
        let shown: Vec<String> = errors.iter().take(10).map(ToString::to_string).collect();
        anyhow::anyhow!("{} bad line(s): {}", errors.len(), shown.join("; "))
    })?;
    let runtime =
        gateway::botflow::BotRuntime::new(opened.clone(), knowledge.index().clone(), None);
    eprintln!("loading the models and embedding the FAQs...");
    let bot = runtime
        .ready()
        .await
        .map_err(|error| anyhow::anyhow!(error))?;
    let tenant_settings = match opened.tenant(tenant).await? {
        Some(record) => gateway::tenant::TenantSettings::from_stored(tenant, &record.settings),
        None => Default::default(),
    };
    let intents = gateway::intents::Intents::new(opened, &settings.data_dir.join("models"));
    if let Some(gateway::intents::TenantClassifier::Head(head)) =
        intents
            .classifier(tenant)
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))?
    {
        bot.set_intent_head(tenant, head);
    }
    let synonyms = knowledge.synonyms(tenant);
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

async fn policy_command(command: PolicyCommand) -> anyhow::Result<()> {
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
            let (_, opened) = open_tenant_store(&store, &tenant).await?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let policies = gateway::policy::Policies::new(opened, Default::default())?;
            let kind = match kind {
                Some(name) => gateway::policy::parse_kind(&name)
                    .map_err(|_| anyhow::anyhow!("--kind is routing or quality"))?,
                None => policies
                    .engine()
                    .check(&bytes)
                    .map_err(|error| anyhow::anyhow!("{} ({})", error, error.code()))?,
            };
            let version = policies
                .upload(&tenant, kind, bytes)
                .await
                .map_err(|error| anyhow::anyhow!("{error}"))?;
            println!("{kind} policy version {version} uploaded and active for {tenant}");
            Ok(())
        }
    }
}

async fn open_knowledge(
    store: &StoreArgs,
    tenant: &str,
) -> anyhow::Result<std::sync::Arc<gateway::kb::Knowledge>> {
    let settings = settings(store, None)?;
    let (store, _) = gateway::open_store(&settings).await?;
    if store.tenant(tenant).await?.is_none() {
        anyhow::bail!("no tenant named {tenant}");
    }
    let knowledge = gateway::kb::Knowledge::open(store, &settings.data_dir.join("kb"))?;
    // Brings this data dir's index up to date (a no-op when a running server keeps it current).
    if let Err(error) = knowledge.sync().await {
        eprintln!("note: the local index was not synced ({error}); a running server keeps its own");
    }
    Ok(knowledge)
}

async fn kb_command(command: KbCommand) -> anyhow::Result<()> {
    match command {
        KbCommand::Import {
            tenant,
            file,
            format,
            store,
        } => {
            let knowledge = open_knowledge(&store, &tenant).await?;
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
                .map_err(|error| anyhow::anyhow!("{error}"))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        KbCommand::Search {
            tenant,
            query,
            k,
            store,
        } => {
            let knowledge = open_knowledge(&store, &tenant).await?;
            let hits = knowledge
                .search(&tenant, &query, k.clamp(1, 50))
                .await
                .map_err(|error| anyhow::anyhow!("{error}"))?;
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

/// A database URL without its password, for printing.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}
