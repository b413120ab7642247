//! `switchboard`: serve, migrate, and manage tenants.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use gateway::config::Settings;

#[derive(Parser)]
#[command(name = "switchboard", version, about = "Bot-first customer-service routing")]
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
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
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
                for line in gateway::demo::ensure_demo(&server.state).await.context("cannot create the demo tenant")? {
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
        Command::Tenant { command: TenantCommand::Create { name, json, store } } => {
            let settings = settings(&store, None)?;
            let (store, _) = gateway::open_store(&settings).await?;
            let key = gateway::demo::create_tenant(&store, &name).await?;
            if json {
                println!("{}", serde_json::json!({ "tenant": name, "admin_key": key }));
            } else {
                println!("tenant {name} created\nadmin key (shown once): {key}");
            }
            Ok(())
        }
    }
}

/// A database URL without its password, for printing.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***{}", &url[..scheme], &url[at..]),
        _ => url.to_owned(),
    }
}
