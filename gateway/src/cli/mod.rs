//! The command line: one module per command. Commands that need services open them the way
//! the server does ([`gateway::Services`]).

mod args;
mod bench;
mod bot;
mod demo_traffic;
mod export;
mod intents;
mod kb;
mod log_writer;
mod member;
mod migrate;
mod model_worker;
mod policy;
mod report;
mod serve;
mod tenant;

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

use args::StoreArgs;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Bot-first customer-service routing"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Listen address (default 127.0.0.1:8080).
        #[arg(long)]
        addr: Option<SocketAddr>,
        /// Production: no demo tenant, no demo credentials printed (also `demo = false` in the
        /// settings file, or SWITCHBOARD__DEMO=false).
        #[arg(long)]
        no_demo: bool,
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
        command: tenant::TenantCommand,
    },
    /// The members of a tenant who sign in to the operator console.
    Member {
        #[command(subcommand)]
        command: member::MemberCommand,
    },
    /// The knowledge base: import FAQs, search them.
    Kb {
        #[command(subcommand)]
        command: kb::KbCommand,
    },
    /// A tenant's intent classifier: train it, evaluate it.
    Intents {
        #[command(subcommand)]
        command: intents::IntentsCommand,
    },
    /// The bot: evaluate its decisions on labelled questions.
    Bot {
        #[command(subcommand)]
        command: bot::BotCommand,
    },
    /// WASM routing and quality policies: check a component, upload it.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Load test on loopback: customer–agent relay beside a bare WebSocket echo server.
    Bench(bench::BenchArgs),
    /// A tenant's conversations with their messages and events as CSV, JSON Lines or XLSX.
    Export(export::ExportArgs),
    /// The child process that runs one tenant's ONNX classifier (started by the server).
    #[command(hide = true)]
    ModelWorker {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Simulated days of customer traffic through the bot and agents (fills the reports).
    DemoTraffic(demo_traffic::DemoTrafficArgs),
    /// A tenant's report as JSON: volume, bot resolution, handoffs, times, satisfaction.
    Report(report::ReportArgs),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            addr,
            no_demo,
            store,
        } => serve::run(&store, addr, no_demo).await,
        Command::Migrate { store } => migrate::run(&store).await,
        Command::Tenant { command } => tenant::run(command).await,
        Command::Member { command } => member::run(command).await,
        Command::Kb { command } => kb::run(command).await,
        Command::Intents { command } => intents::run(command).await,
        Command::Bot { command } => bot::run(command).await,
        Command::Policy { command } => policy::run(command).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Export(args) => export::run(args).await,
        Command::ModelWorker { args } => model_worker::run_under_runtime(args),
        Command::DemoTraffic(args) => demo_traffic::run(args).await,
        Command::Report(args) => report::run(args).await,
    }
}

impl Cli {
    /// `model-worker` runs without an async runtime: its arguments, if it is that command.
    pub fn take_model_worker(&mut self) -> Option<Vec<std::ffi::OsString>> {
        match &mut self.command {
            Command::ModelWorker { args } => Some(std::mem::take(args)),
            _ => None,
        }
    }
}

/// Runs the model worker (see [`Cli::take_model_worker`]).
pub fn run_model_worker(args: Vec<std::ffi::OsString>) -> std::process::ExitCode {
    model_worker::run(args)
}
