//! `switchboard`: serve, migrate, and manage tenants.

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
