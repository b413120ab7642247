//! `switchboard migrate`: apply the database migrations and exit.

use super::args::{settings, StoreArgs};

pub async fn run(store: &StoreArgs) -> anyhow::Result<()> {
    let settings = settings(store, None)?;
    gateway::open_store(&settings).await?;
    println!("migrations applied to {}", redact(&settings.database_url()));
    Ok(())
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
