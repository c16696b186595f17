//! `runs`: the history of imports recorded in a ledger, and where one ticket went.

use std::io::Write;

use anyhow::Context;
use serde_json::{Value, json};

mod find;
mod ledgers;

use crate::cli::RunsArgs;
use crate::exit::Verdict;
use crate::ledger::{Ledger, RunRecord};

pub fn run(args: &RunsArgs) -> anyhow::Result<Verdict> {
    if !args.find.is_empty() {
        return find::find(args);
    }
    let path = match super::target::ledger_of(&args.target)? {
        Some(_) => super::target::existing_ledger(&args.target)?,
        None => match ledgers::only_ledger(args.show.is_some(), args.json)? {
            Some(path) => path,
            None => return Ok(Verdict::Clean),
        },
    };
    let ledger = Ledger::open_read_only(&path)
        .with_context(|| format!("could not open the ledger {}", path.display()))?;
    let mut out = std::io::stdout().lock();
    let runs = ledger.runs()?;
    let target = ledger.target()?;
    match args.show {
        None if args.json => {
            let object = json!({
                "ledger": path.display().to_string(),
                "target": target,
                "runs": runs.iter().map(run_json).collect::<Vec<_>>(),
            });
            writeln!(out, "{object}")?;
        }
        None => {
            if let Some(target) = &target {
                writeln!(out, "ledger {} — target {target}", path.display())?;
            }
            writeln!(
                out,
                "{:>4}  {:<9}  {:<24}  {:<24}  {:>4}  counts",
                "run", "command", "started", "ended", "exit"
            )?;
            for run in &runs {
                writeln!(
                    out,
                    "{:>4}  {:<9}  {:<24}  {:<24}  {:>4}  {}",
                    run.id,
                    run.command,
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
            let open = ledger.open_rows(Some(id))?;
            let lookups = ledger.lookups(id)?;
            if args.json {
                let object = json!({
                    "ledger": path.display().to_string(),
                    "target": target,
                    "run": run_json(run),
                    "open_rows": open
                        .iter()
                        .map(|row| json!({
                            "row": row.source_row,
                            "key": row.key,
                            "status": row.status,
                            "message": row.message,
                        }))
                        .collect::<Vec<_>>(),
                    "lookups": lookups
                        .iter()
                        .map(|[n, at, endpoint, asked, found]| json!({
                            "lookup": n, "at": at, "endpoint": endpoint,
                            "asked": asked, "found": found,
                        }))
                        .collect::<Vec<_>>(),
                });
                writeln!(out, "{object}")?;
                return Ok(Verdict::Clean);
            }
            if let Some(target) = &target {
                writeln!(out, "ledger {} — target {target}", path.display())?;
            }
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
            if !lookups.is_empty() {
                writeln!(
                    out,
                    "look-ups of the CRM (each row's message, `runs --find KEY`, names the one \
                     that settled it):"
                )?;
                for [n, at, endpoint, asked, found] in &lookups {
                    // The ids found, all kept (`--json`), the first few shown.
                    let ids: Vec<&str> = found.split(' ').collect();
                    let shown = if ids.len() > 6 {
                        format!("{} …", ids[..6].join(" "))
                    } else {
                        found.clone()
                    };
                    writeln!(out, "  {n:>5}  {at}  {endpoint}  {asked}  → {shown}")?;
                }
            }
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

/// One run as JSON; its counts as the object they were recorded as.
fn run_json(run: &RunRecord) -> Value {
    let counts = run
        .counts
        .as_deref()
        .map(|text| serde_json::from_str::<Value>(text).unwrap_or_else(|_| text.into()));
    json!({
        "run": run.id,
        "command": run.command,
        "input": run.input,
        "input_sha256": run.input_sha256,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "exit_code": run.exit_code,
        "counts": counts,
    })
}
