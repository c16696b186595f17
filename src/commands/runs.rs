//! `runs`: the history of imports recorded in a ledger.

use std::io::Write;

use anyhow::Context;

use crate::cli::RunsArgs;
use crate::exit::Verdict;
use crate::ledger::{Ledger, location};

pub fn run(args: &RunsArgs) -> anyhow::Result<Verdict> {
    let path = match super::target::ledger_of(&args.target)? {
        Some(_) => super::target::existing_ledger(&args.target)?,
        None => match only_ledger(args.show.is_some())? {
            Some(path) => path,
            None => return Ok(Verdict::Clean),
        },
    };
    let ledger = Ledger::open_read_only(&path)
        .with_context(|| format!("could not open the ledger {}", path.display()))?;
    let mut out = std::io::stdout().lock();
    let runs = ledger.runs()?;
    if let Some(target) = ledger.target()? {
        writeln!(out, "ledger {} — target {target}", path.display())?;
    }
    match args.show {
        None => {
            writeln!(
                out,
                "{:>4}  {:<24}  {:<24}  {:>4}  counts",
                "run", "started", "ended", "exit"
            )?;
            for run in &runs {
                writeln!(
                    out,
                    "{:>4}  {:<24}  {:<24}  {:>4}  {}",
                    run.id,
                    run.started_at,
                    run.ended_at.as_deref().unwrap_or("(did not finish)"),
                    run.exit_code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "-".into()),
                    run.counts.as_deref().unwrap_or("")
                )?;
            }
        }
        Some(id) => {
            let run = runs
                .iter()
                .find(|r| r.id == id)
                .with_context(|| format!("no run {id} in {}", path.display()))?;
            writeln!(out, "run {}: {} {}", run.id, run.command, run.input)?;
            if let Some(hash) = &run.input_sha256 {
                writeln!(out, "input   sha256 {hash}")?;
            }
            writeln!(out, "started {}", run.started_at)?;
            writeln!(
                out,
                "ended   {}",
                run.ended_at.as_deref().unwrap_or("(did not finish)")
            )?;
            writeln!(
                out,
                "counts  {}",
                run.counts.as_deref().unwrap_or("(none recorded)")
            )?;
            let open = ledger.open_rows(Some(id))?;
            if open.is_empty() {
                writeln!(out, "no rows of this run are uncertain, failed or rejected")?;
            } else {
                writeln!(out, "rows still needing attention:")?;
                for row in open {
                    writeln!(
                        out,
                        "  row {:>7}  {:<9}  {}  {}",
                        row.source_row, row.status, row.key, row.message
                    )?;
                }
            }
        }
    }
    Ok(Verdict::Clean)
}

/// With no target named: the one ledger in the data directory, or a list of them all
/// (`None`: the list was printed).
fn only_ledger(must_pick: bool) -> anyhow::Result<Option<std::path::PathBuf>> {
    let dir = location::data_dir()?;
    let found = location::known_ledgers()?;
    match found.as_slice() {
        [] => anyhow::bail!(
            "no ledgers in {} yet: an import creates its target's ledger there (or pass --ledger \
             FILE)",
            dir.display()
        ),
        [one] => Ok(Some(one.clone())),
        many => {
            anyhow::ensure!(
                !must_pick,
                "{} ledgers in {}: pass the --server (or --simulate) and --mapping of the import, \
                 or --ledger FILE",
                many.len(),
                dir.display()
            );
            let mut out = std::io::stdout().lock();
            writeln!(out, "ledgers in {}:", dir.display())?;
            for path in many {
                let about = Ledger::open_read_only(path).and_then(|l| {
                    let runs = l.runs()?;
                    Ok((
                        l.target()?,
                        runs.len(),
                        runs.last().map(|r| r.started_at.clone()),
                    ))
                });
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match about {
                    Ok((target, runs, last)) => writeln!(
                        out,
                        "  {name:<48}  target {}  {runs} runs, last {}",
                        target.as_deref().unwrap_or("?"),
                        last.as_deref().unwrap_or("-")
                    )?,
                    Err(e) => writeln!(out, "  {name:<48}  unreadable: {e}")?,
                }
            }
            writeln!(
                out,
                "pick one with --server (or --simulate) and --mapping, or --ledger FILE"
            )?;
            Ok(None)
        }
    }
}
