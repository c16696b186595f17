//! One file per subcommand, wiring the stages together. `anyhow` lives here and in main.

mod import;
mod init_mapping;
pub(crate) mod input;
mod preview;
mod reconcile;
mod resolve;
mod runs;
mod simulate;
mod target;
mod token_info;
mod undo;

mod validate;

use crate::cli::{Cli, Command};
use crate::exit::Verdict;

/// Run the parsed command line; `Err` means nothing was done (exit 1).
pub fn run(cli: Cli) -> anyhow::Result<Verdict> {
    let ui = crate::report::Ui {
        quiet: cli.quiet,
        json_logs: cli.log_format == crate::cli::LogFormat::Json,
    };
    match cli.command {
        Command::Validate(args) => validate::run(&args, ui),
        // One thread for the sends: they wait on the network, and one thread spares the
        // wake-ups between threads that cost more CPU than the requests themselves.
        Command::Import(args) => single_thread_runtime()?.block_on(import::run(&args, ui)),
        Command::Preview(args) => preview::run(&args),
        Command::InitMapping(args) => init_mapping::run(&args),
        Command::Simulate(args) => runtime()?.block_on(simulate::run(&args)),
        Command::Runs(args) => runs::run(&args),
        Command::Resolve(args) => resolve::run(&args),
        Command::Undo(args) => runtime()?.block_on(undo::run(&args)),
        Command::Reconcile(args) => runtime()?.block_on(reconcile::run(&args, ui)),
        Command::TokenInfo(args) => runtime()?.block_on(token_info::run(&args)),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            clap_complete::generate(
                shell,
                &mut command,
                "wolkvox-import",
                &mut std::io::stdout(),
            );
            Ok(Verdict::Clean)
        }
    }
}

pub use crate::exit::error_text;

fn single_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}
