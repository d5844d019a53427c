//! The `ferry` binary: `serve` and `demo` run the server; `tasks`, `routes` and
//! `incoming` are the operator CLI, which talks to a running server over its HTTP API.
#![forbid(unsafe_code)]

mod access_cmd;
mod bench;
mod bench_delivery;
mod client;
mod demo;
mod demo_supplier;
mod filter_args;
mod incoming_cmd;
mod routes_cmd;
mod serve;
mod table;
mod tasks_cmd;
mod transfer;
mod try_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "ferry: an integration engine. Entities travel routes as tasks."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server on a configuration file.
    Serve(serve::Args),
    /// Check a configuration file and exit.
    Check(serve::CheckCommand),
    /// Apply pending database migrations of the configured store and exit.
    Migrate(serve::CheckArgs),
    /// Write every task (with logs, attempts and operator actions) as NDJSON.
    Export(transfer::ExportArgs),
    /// Read tasks written by `ferry export` into the configured store.
    Import(transfer::ImportArgs),
    /// Run the server on a bundled demo configuration with demo tasks in every status.
    Demo(demo::Args),
    /// Find, show, skip and retry tasks on a running server.
    #[command(subcommand)]
    Tasks(Box<tasks_cmd::Command>),
    /// List and run routes on a running server.
    #[command(subcommand)]
    Routes(routes_cmd::Command),
    /// Manage incoming configurations on a running server (reset a since mark).
    #[command(subcommand)]
    Incoming(incoming_cmd::Command),
    /// Add, list, disable and change the role of users (on the configured store).
    #[command(subcommand)]
    Users(access_cmd::Users),
    /// Create, list and revoke API tokens (on the configured store).
    #[command(subcommand)]
    Tokens(access_cmd::Tokens),
    /// Measure ingest, processing, queries, bulk actions and memory at scale.
    Bench(bench::Args),
    /// Run a route's transformers on a sample entity and show what would be sent
    /// (nothing is stored or sent).
    Try(try_cmd::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Every HTTPS client of the process (the engine's, the CLI's) uses rustls with ring.
    ferry_engine::connectors::tls::install_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Check(args) => serve::check(args).await,
            Command::Migrate(args) => serve::migrate(args).await,
            Command::Export(args) => transfer::export(args).await,
            Command::Import(args) => transfer::import(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Tasks(cmd) => tasks_cmd::run(*cmd).await,
            Command::Routes(cmd) => routes_cmd::run(cmd).await,
            Command::Incoming(cmd) => incoming_cmd::run(cmd).await,
            Command::Users(cmd) => access_cmd::users(cmd).await,
            Command::Tokens(cmd) => access_cmd::tokens(cmd).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Try(args) => try_cmd::run(args).await,
        }
    });
    // Do not wait for a transformer that ran past its time limit and still spins.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
