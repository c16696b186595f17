//! Which CRM target a command works on, and so which ledger: shared by `import`,
//! `resolve` and `runs`, so each finds the same file from the same arguments.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::{AgainstArgs, TargetArgs};
use crate::ledger::{Ledger, Target, location};
use crate::mapping;
use crate::run::{Endpoint, Settings};
use crate::sender::{self, Token};
use crate::simulator::{Running, Scenario};

/// The target of `--server URL` (or `--simulate`) and an operation.
pub fn of(server: Option<&str>, simulate: bool, operation: &str) -> anyhow::Result<Target> {
    if simulate {
        return Ok(Target::simulator(operation));
    }
    let server = server.context("--server or --simulate is required")?;
    let url = sender::client::insert_url(server)?;
    Ok(Target::of_url(&url, operation))
}

/// Where an import's requests go: the built-in simulator, started here (it stops when the
/// returned handle is dropped), or the CRM of the settings, with its tokens.
pub async fn connect(
    settings: &Settings,
) -> anyhow::Result<(Option<Running>, reqwest::Url, Vec<Token>)> {
    match &settings.endpoint {
        Endpoint::Simulator => {
            let (sim, url, token) = start_simulator().await?;
            tracing::info!(url = %sim.url(), "Sending to the built-in simulator (no network, no account).");
            Ok((Some(sim), url, vec![token]))
        }
        Endpoint::Server { url, tokens } => Ok((None, url.clone(), tokens.clone())),
    }
}

/// The built-in simulator of `--simulate` (it stops when dropped), its insert URL and the
/// token it takes.
pub async fn start_simulator() -> anyhow::Result<(Running, reqwest::Url, Token)> {
    let sim = Running::start(Scenario {
        keep_cases: false,
        ..Scenario::default()
    })
    .await
    .context("could not start the built-in simulator")?;
    let url = sender::client::insert_url(&sim.url())?;
    let token = Token::new("simulated-token").context("simulator token")?;
    Ok((sim, url, token))
}

/// The operation of `--operation`, else of the mapping's `operation:`.
fn operation(args: &TargetArgs) -> anyhow::Result<Option<String>> {
    if let Some(operation) = &args.operation {
        return Ok(Some(operation.clone()));
    }
    let Some(path) = &args.mapping else {
        return Ok(None);
    };
    let (spec, _) = mapping::load(path)?;
    Ok(spec.operation.filter(|o| !o.trim().is_empty()))
}

/// The ledger `args` name: `--ledger`, else the target's file in the data directory.
/// `None` when they name no target at all.
pub fn ledger_of(args: &TargetArgs) -> anyhow::Result<Option<(PathBuf, Option<Target>)>> {
    if let Some(path) = &args.ledger {
        return Ok(Some((path.clone(), None)));
    }
    if args.server.is_none() && !args.simulate {
        return Ok(None);
    }
    let operation = operation(args)?
        .context("which operation? pass --mapping (the one the import used) or --operation")?;
    let target = of(args.server.as_deref(), args.simulate, &operation)?;
    Ok(Some((location::default_path(&target)?, Some(target))))
}

/// The ledger `args` name, which must exist: a command that reads history never starts one.
pub fn existing_ledger(args: &TargetArgs) -> anyhow::Result<PathBuf> {
    let (path, target) = ledger_of(args)?.context(
        "which CRM target? pass the --server (or --simulate) and --mapping the import used, or \
         --ledger FILE",
    )?;
    if !path.exists() {
        match target {
            Some(target) => anyhow::bail!(
                "no ledger for {target} at {}: no import into this target has run with the \
                 default ledger (check --server and the operation, or pass --ledger FILE)",
                path.display()
            ),
            None => anyhow::bail!("no ledger at {}", path.display()),
        }
    }
    Ok(path)
}

/// The arguments that name this target again, for the hints a summary prints.
pub fn args_for_hints(
    server: Option<&str>,
    simulate: bool,
    mapping: &Path,
    ledger: Option<&Path>,
) -> String {
    let mut args = match server {
        Some(server) if !simulate => format!("--server {}", shell_word(server)),
        _ => "--simulate".to_string(),
    };
    args.push_str(&format!(
        " --mapping {}",
        shell_word(&mapping.display().to_string())
    ));
    if let Some(ledger) = ledger {
        args.push_str(&format!(
            " --ledger {}",
            shell_word(&ledger.display().to_string())
        ));
    }
    args
}

/// `wolkvox-import COMMAND ERRORS ARGS`, with `--token-file` when one was given: what a
/// summary's hint says to run on the errors file once its rows are fixed.
pub fn errors_file_command(
    command: &str,
    errors: &Path,
    args: &str,
    token_file: Option<&Path>,
) -> String {
    let word = |path: &Path| shell_word(&path.display().to_string());
    let mut line = format!("wolkvox-import {command} {} {args}", word(errors));
    if let Some(file) = token_file {
        line.push_str(" --token-file ");
        line.push_str(&word(file));
    }
    line
}

/// A word a shell reads back as it is: quoted when it holds anything but plain characters.
pub fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The ledger `--server`, `--simulate` or `--ledger` names, read only (`validate` and
/// `preview` say what an import would do by it); `None` when none is
/// named, or when the target has none yet (said: every valid row would be new).
pub fn read_ledger(
    against: &AgainstArgs,
    mapping: &Path,
    operation: Option<&str>,
) -> anyhow::Result<Option<Ledger>> {
    let target = TargetArgs {
        server: against.server.clone(),
        simulate: against.simulate,
        mapping: Some(mapping.to_path_buf()),
        operation: operation.map(str::to_string),
        ledger: against.ledger.clone(),
    };
    let Some((path, named)) = ledger_of(&target)? else {
        return Ok(None);
    };
    if !path.exists() {
        let whose = named.map(|t| format!(" for {t}")).unwrap_or_default();
        tracing::info!(
            "No ledger{whose} at {}: no import into it has run, so an import would send every \
             valid row.",
            path.display()
        );
        return Ok(None);
    }
    let ledger = Ledger::open_read_only(&path)
        .with_context(|| format!("could not read the ledger {}", path.display()))?;
    Ok(Some(ledger))
}
