//! `switchboard`: serve, migrate, manage tenants, knowledge, intents, policies; benchmark.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let mut cli = cli::Cli::parse();
    if let Some(args) = cli.take_model_worker() {
        // A tenant's model in a child process: no async runtime, no threads before its budget.
        return cli::run_model_worker(args);
    }
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
