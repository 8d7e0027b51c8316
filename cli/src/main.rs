//! `polylock`: distributed locks from the shell, on every polylock backend.
//! See `polylock --help` and the README's CLI section.

mod args;
mod commands;
mod exit;
mod output;
mod run;
mod spinner;

use clap::Parser;
use polylock::{Client, ClientOptions, Secret};

use crate::args::{Cli, Command};
use crate::output::Output;

fn main() {
    let cli = Cli::parse();
    init_logging(cli.log.as_deref());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the CLI");
    let code = runtime.block_on(dispatch(cli));
    std::process::exit(code);
}

/// Logs to stderr when `--log FILTER` or `RUST_LOG` asks for it.
fn init_logging(filter: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match filter {
        Some(filter) => EnvFilter::new(filter),
        None => match EnvFilter::try_from_default_env() {
            Ok(filter) => filter,
            Err(_) => return,
        },
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Runs the subcommand; returns the exit code.
async fn dispatch(cli: Cli) -> i32 {
    let out = Output { json: cli.json };
    let Some(url) = cli.url else {
        eprintln!("polylock: no backend URL: pass --url or set POLYLOCK_URL");
        return exit::USAGE;
    };
    let mut options = ClientOptions::new(url);
    options.token = cli.token.map(Secret::new);
    let client = match Client::from_options(options).await {
        Ok(client) => client,
        Err(error) => return fail(&error),
    };
    let result = match cli.command {
        Command::Run(args) => return run::run(&client, args).await,
        Command::Acquire(args) => commands::acquire(&client, out, args).await,
        Command::Renew(args) => commands::renew(&client, out, args).await,
        Command::Release(args) => commands::release(&client, out, args).await,
        Command::Status(args) => commands::status(&client, out, args).await,
        Command::List(args) => commands::list(&client, out, args).await,
        Command::Delete(args) => commands::delete(&client, out, args).await,
        Command::CreateSemaphore(args) => commands::create_semaphore(&client, out, args).await,
        Command::Watch(args) => commands::watch(&client, out, args).await,
    };
    match result {
        Ok(code) => code,
        Err(error) => fail(&error),
    }
}

/// Reports `error` on stderr; its exit code.
pub(crate) fn fail(error: &polylock::Error) -> i32 {
    eprintln!("polylock: {error} [{}]", error.kind().code());
    exit::code_for(error)
}
