//! `switchboard serve`: the server, with the demo tenant on first start unless turned off.

use std::net::SocketAddr;

use anyhow::Context;

use super::args::{init_logging, settings, StoreArgs};

pub async fn run(store: &StoreArgs, addr: Option<SocketAddr>, no_demo: bool) -> anyhow::Result<()> {
    let mut settings = settings(store, addr)?;
    if no_demo {
        settings.demo = false;
    }
    let _logs = init_logging(&settings);
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
        println!(
            "DEMO MODE: the demo tenant's admin key is printed at every start; for production run `switchboard serve --no-demo` (or set demo = false)"
        );
    }
    let state = server.state.clone();
    // systemd and container runtimes stop a service with SIGTERM: the same as Ctrl-C.
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        result = server.wait() => result?,
        _ = tokio::signal::ctrl_c() => {
            println!("shutting down");
            state.store.close().await;
        }
        _ = terminate => {
            println!("shutting down (SIGTERM)");
            state.store.close().await;
        }
    }
    Ok(())
}
