//! `runs --find`: where one ticket went, by key or CRM case id, in one ledger or all.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};

use crate::cli::RunsArgs;
use crate::exit::Verdict;
use crate::ledger::{FoundCase, Ledger, location};

/// A case found for `--find`, with the ledger (and its target) that holds it.
type Hit<'a> = (&'a Path, Option<&'a str>, FoundCase);

/// `--find`: what the ledger (or every ledger in the data directory) holds for each key
/// or case id asked about. Exit 2 when one of them is in no ledger, so that a script can
/// check "did these tickets go?" by the exit code alone, as with `grep`.
pub fn find(args: &RunsArgs) -> anyhow::Result<Verdict> {
    let ledgers: Vec<PathBuf> = match super::super::target::ledger_of(&args.target)? {
        Some(_) => vec![super::super::target::existing_ledger(&args.target)?],
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
    let verdict = if answers.iter().any(|(_, hits)| hits.is_empty()) {
        Verdict::RowsNeedAttention
    } else {
        Verdict::Clean
    };
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
            "exit_code": verdict.code(),
        });
        writeln!(out, "{object}")?;
        return Ok(verdict);
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
    Ok(verdict)
}
