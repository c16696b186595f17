//! `runs`: the history of imports recorded in a ledger.

use std::io::Write;

use anyhow::Context;

use crate::cli::RunsArgs;
use crate::exit::Verdict;
use crate::ledger::Ledger;

pub fn run(args: &RunsArgs) -> anyhow::Result<Verdict> {
    anyhow::ensure!(
        args.ledger.exists(),
        "no ledger at {}: pass the --ledger file an import wrote",
        args.ledger.display()
    );
    let ledger = Ledger::open_read_only(&args.ledger)
        .with_context(|| format!("could not open the ledger {}", args.ledger.display()))?;
    let mut out = std::io::stdout().lock();
    let runs = ledger.runs()?;
    if let Some(target) = ledger.target()? {
        writeln!(out, "ledger {} — target {target}", args.ledger.display())?;
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
                .with_context(|| format!("no run {id} in {}", args.ledger.display()))?;
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
