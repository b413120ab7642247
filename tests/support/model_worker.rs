//! The model worker of the end-to-end tests: the servers they start in process run tenants'
//! classifiers with it (`settings.bot.tenant_model_worker`), as `switchboard model-worker` does
//! for the real server; the `switchboard` binary itself is not built for this package's tests.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    engine::intents::serve_model_worker(std::env::args_os().skip(1).collect())
}
