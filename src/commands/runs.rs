//! `runs`: the history of imports recorded in a ledger, and where one ticket went.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};

use crate::cli::RunsArgs;
use crate::exit::Verdict;
use crate::ledger::{FoundCase, Ledger, RunRecord, location};

pub fn run(args: &RunsArgs) -> anyhow::Result<Verdict> {
    if !args.find.is_empty() {
        return find(args);
    }
    let path = match super::target::ledger_of(&args.target)? {
        Some(_) => super::target::existing_ledger(&args.target)?,
        None => match only_ledger(args.show.is_some(), args.json)? {
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
            let open = ledger.open_rows(Some(id))?;
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

/// A case found for `--find`, with the ledger (and its target) that holds it.
type Hit<'a> = (&'a Path, Option<&'a str>, FoundCase);

/// `--find`: what the ledger (or every ledger in the data directory) holds for each key
/// or case id asked about.
fn find(args: &RunsArgs) -> anyhow::Result<Verdict> {
    let ledgers: Vec<PathBuf> = match super::target::ledger_of(&args.target)? {
        Some(_) => vec![super::target::existing_ledger(&args.target)?],
        None => {
            let found = location::known_ledgers()?;
            anyhow::ensure!(
                !found.is_empty(),
                "no ledgers in {} yet: an import creates its target's ledger there (or pass \
                 --ledger FILE)",
                location::data_dir()?.display()
            );
            found
        }
    };
    let mut opened = Vec::new();
    for path in &ledgers {
        let ledger = Ledger::open_read_only(path)
            .with_context(|| format!("could not open the ledger {}", path.display()))?;
        let target = ledger.target()?;
        opened.push((path.as_path(), target, ledger));
    }
    let mut answers: Vec<(&str, Vec<Hit<'_>>)> = Vec::new();
    for what in &args.find {
        let mut hits = Vec::new();
        for (path, target, ledger) in &opened {
            for case in ledger.find(what)? {
                hits.push((*path, target.as_deref(), case));
            }
        }
        answers.push((what.as_str(), hits));
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let results: Vec<Value> = answers
            .iter()
            .map(|(what, hits)| {
                json!({
                    "query": what,
                    "found": hits
                        .iter()
                        .map(|(path, target, case)| json!({
                            "key": case.key,
                            "status": case.status,
                            "case_id": case.case_id,
                            "run": case.run_id,
                            "input": case.input,
                            "row": case.source_row,
                            "http_status": case.http_status,
                            "attempts": case.attempts,
                            "message": case.message,
                            "updated_at": case.updated_at,
                            "ledger": path.display().to_string(),
                            "target": target,
                        }))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        let object = json!({
            "ledgers": ledgers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "results": results,
        });
        writeln!(out, "{object}")?;
        return Ok(Verdict::Clean);
    }
    let searched = if ledgers.len() == 1 {
        format!("the ledger {}", ledgers[0].display())
    } else {
        format!("{} ledgers", ledgers.len())
    };
    for (what, hits) in &answers {
        if hits.is_empty() {
            writeln!(
                out,
                "{what}: not in {searched} (no run sent a row with this key or got this case id)"
            )?;
            continue;
        }
        for (path, target, case) in hits {
            let named = if case.key == *what {
                String::new()
            } else {
                format!(" (case {what})")
            };
            let input = case.input.as_deref().unwrap_or("?");
            writeln!(
                out,
                "{}{named}: {} by run {}, row {} of {input}",
                case.key, case.status, case.run_id, case.source_row
            )?;
            if let Some(id) = &case.case_id {
                writeln!(out, "  case id   {id}")?;
            }
            if let Some(code) = case.http_status {
                writeln!(
                    out,
                    "  answer    HTTP {code} after {} attempt(s)",
                    case.attempts
                )?;
            }
            if !case.message.is_empty() {
                writeln!(out, "  message   {}", case.message)?;
            }
            writeln!(out, "  updated   {}", case.updated_at)?;
            writeln!(
                out,
                "  ledger    {}{}",
                path.display(),
                target.map(|t| format!(" (target {t})")).unwrap_or_default()
            )?;
        }
    }
    Ok(Verdict::Clean)
}

/// With no target named: the one ledger in the data directory, or a list of them all
/// (`None`: the list was printed).
fn only_ledger(must_pick: bool, json: bool) -> anyhow::Result<Option<PathBuf>> {
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
            let mut listed = Vec::new();
            if !json {
                writeln!(out, "ledgers in {}:", dir.display())?;
            }
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
                    Ok((target, runs, last)) if json => listed.push(json!({
                        "ledger": path.display().to_string(),
                        "target": target,
                        "runs": runs,
                        "last_started_at": last,
                    })),
                    Err(e) if json => listed.push(json!({
                        "ledger": path.display().to_string(),
                        "error": e.to_string(),
                    })),
                    Ok((target, runs, last)) => writeln!(
                        out,
                        "  {name:<48}  target {}  {runs} runs, last {}",
                        target.as_deref().unwrap_or("?"),
                        last.as_deref().unwrap_or("-")
                    )?,
                    Err(e) => writeln!(out, "  {name:<48}  unreadable: {e}")?,
                }
            }
            if json {
                writeln!(
                    out,
                    "{}",
                    json!({"data_dir": dir.display().to_string(), "ledgers": listed})
                )?;
            } else {
                writeln!(
                    out,
                    "pick one with --server (or --simulate) and --mapping, or --ledger FILE"
                )?;
            }
            Ok(None)
        }
    }
}
