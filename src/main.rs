//! Thin entry point: parse, set up logs, run, map the result to an exit code.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use wolkvox_import::cli::{Cli, LogFormat};
use wolkvox_import::exit;
use wolkvox_import::report::JsonNothingDone;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            if let Some(note) = from_the_environment(&e) {
                eprintln!("{note}");
            }
            // Help and version are answers; anything else is a usage error: nothing done.
            return if e.use_stderr() {
                ExitCode::from(exit::NOTHING_DONE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logs(&cli);
    let json_summary = cli.command.wants_json();
    let json_logs = cli.log_format == LogFormat::Json;
    let command = cli.command.name();
    match wolkvox_import::run(cli) {
        Ok(verdict) => verdict.into(),
        // The reader of stdout went away (`runs --json | head`): what it wanted it has;
        // nothing more to say, to it or anyone (as `cat` or `rg` do).
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let error = wolkvox_import::commands::error_text(&e);
            // A nightly `--json >> nightly.jsonl` records the nights nothing was done too.
            if json_summary {
                let object = JsonNothingDone {
                    command: command.to_string(),
                    exit_code: exit::NOTHING_DONE,
                    error: error.clone(),
                };
                if let Ok(line) = serde_json::to_string(&object) {
                    let _ = writeln!(std::io::stdout(), "{line}");
                }
            }
            if json_logs {
                tracing::error!(exit_code = exit::NOTHING_DONE, error = %error, "Nothing was done.");
            } else {
                eprintln!("error: {error}");
            }
            ExitCode::from(exit::NOTHING_DONE)
        }
    }
}

fn init_logs(cli: &Cli) {
    let ours = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    // HTTP internals stay at warn unless RUST_LOG asks: their traces are noise here.
    let default = format!("warn,wolkvox_import={ours}");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .without_time()
            .init(),
    }
}

/// Whether `e` is a write to a closed pipe.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A bad value that came from a `WOLKVOX_*` variable, not the command line: clap names the
/// flag (`--rate`), which a cron job or a CronJob never passed. Say where it came from.
fn from_the_environment(error: &clap::Error) -> Option<String> {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    // `--rate <RATE>`: the long name, as the command line would spell it.
    let long = arg.split_whitespace().next()?.strip_prefix("--")?;
    let given =
        std::env::args().any(|a| a == format!("--{long}") || a.starts_with(&format!("--{long}=")));
    if given {
        return None;
    }
    let command = Cli::command();
    let env = std::iter::once(&command)
        .chain(command.get_subcommands())
        .flat_map(|c| c.get_arguments())
        .filter(|a| a.get_long() == Some(long))
        .find_map(|a| a.get_env().map(|e| e.to_os_string()))?;
    std::env::var_os(&env)?;
    Some(format!(
        "note: that value of --{long} came from the environment variable {}; fix or unset it",
        env.to_string_lossy()
    ))
}
