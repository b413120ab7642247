//! What the commands share: the store flags, settings, logging, reading a file, opening the
//! services.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use gateway::config::Settings;

#[derive(Args, Clone)]
pub(crate) struct StoreArgs {
    /// A TOML settings file.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Local state directory (SQLite file, generated secrets).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// `postgres://...` or `sqlite://...` instead of the SQLite file in the data dir.
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// `redis://...`: cluster mode (with a shared PostgreSQL database and shared secrets).
    #[arg(long, global = true)]
    pub redis_url: Option<String>,
}

pub(crate) fn settings(store: &StoreArgs, addr: Option<SocketAddr>) -> anyhow::Result<Settings> {
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

/// Logs to stderr through a writer thread (`log_writer`: a slow stderr drops lines instead of
/// blocking the server), in colour only on a terminal. Keep the returned guard while the
/// command runs: dropped, it waits briefly for the queued lines.
pub(crate) fn init_logging(settings: &Settings) -> Option<super::log_writer::Flushed> {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    let Some((writer, flushed)) = super::log_writer::non_blocking(std::io::stderr()) else {
        let builder = builder.with_writer(std::io::stderr);
        if settings.log.format == "json" {
            builder.json().init();
        } else {
            builder.init();
        }
        return None;
    };
    let builder = builder.with_writer(writer);
    if settings.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    Some(flushed)
}

pub(crate) fn read_text(file: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file)
        .with_context(|| format!("cannot read {} as UTF-8 text", file.display()))
}

/// The services, checked to hold the tenant.
pub(crate) async fn open_tenant(
    store: &StoreArgs,
    tenant: &str,
) -> anyhow::Result<gateway::Services> {
    let settings = settings(store, None)?;
    let services = gateway::Services::open(&settings).await?;
    if services.store.tenant(tenant).await?.is_none() {
        anyhow::bail!("no tenant named {tenant}");
    }
    Ok(services)
}
