//! `switchboard`: serve, migrate, manage tenants, knowledge, intents, policies; benchmark.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = match cli::Cli::parse().model_worker() {
        // A tenant's model in a child process: no async runtime, no threads before its budget.
        Ok(args) => return cli::run_model_worker(args),
        Err(cli) => cli,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
