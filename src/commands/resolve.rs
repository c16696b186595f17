//! `resolve`: record what a person found in the CRM about uncertain rows, so the next
//! import sends exactly the missing ones.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::cli::ResolveArgs;
use crate::exit::Verdict;
use crate::ledger::{Finding, Ledger};
use crate::mapping::fold;
use crate::source::{self, SourceOptions};

pub fn run(args: &ResolveArgs) -> anyhow::Result<Verdict> {
    let path = super::target::existing_ledger(&args.target)?;
    if args.list {
        return list(&path);
    }
    let mut findings = Vec::new();
    for given in &args.created {
        let (key, case_id) = match given.rsplit_once('=') {
            Some((key, id)) => (key, Some(id.trim().to_string()).filter(|i| !i.is_empty())),
            None => (given.as_str(), None),
        };
        findings.push((key.trim().to_string(), Finding::Created { case_id }));
    }
    for key in &args.missing {
        findings.push((key.trim().to_string(), Finding::Missing));
    }
    let mut left = 0;
    if let Some(file) = &args.file {
        left = read_findings(file, &mut findings)?;
    }
    anyhow::ensure!(
        !findings.is_empty(),
        "nothing to record: pass --file CSV (the --list output filled in), --created KEY[=CASE_ID] \
         or --missing KEY{}",
        if left > 0 {
            format!(
                " ({left} lines of {} still say neither created nor missing)",
                args.file.as_deref().unwrap_or(Path::new("")).display()
            )
        } else {
            String::new()
        }
    );

    let target = Ledger::open_read_only(&path)
        .and_then(|l| l.target())
        .with_context(|| format!("could not read the ledger {}", path.display()))?
        .with_context(|| format!("{} names no CRM target: not a ledger", path.display()))?;
    let mut ledger = Ledger::open(&path, &target)
        .with_context(|| format!("could not open the ledger {}", path.display()))?;
    let source = args
        .file
        .as_deref()
        .map(|f| f.display().to_string())
        .unwrap_or_else(|| "the command line".into());
    ledger.begin_run("resolve", &source, None, None)?;
    match ledger.settle_by_hand(&findings)? {
        Ok(settled) => {
            ledger.finish_run(
                &[("created", settled.created), ("missing", settled.missing)],
                0,
            )?;
            let still = ledger.uncertain_rows()?.len();
            eprintln!(
                "resolve: {} recorded as in the CRM, {} as missing{} (ledger {}, run {})",
                settled.created,
                settled.missing,
                if settled.unchanged > 0 {
                    format!(", {} already as said", settled.unchanged)
                } else {
                    String::new()
                },
                path.display(),
                ledger.run_id()
            );
            if still > 0 {
                eprintln!("  {still} rows are still uncertain: they stay unsent until resolved");
            }
            if settled.missing > 0 {
                eprintln!(
                    "  next: run the import again: it sends the {} missing rows, and skips the \
                     rest",
                    settled.missing
                );
            }
            Ok(Verdict::Clean)
        }
        Err(refusals) => {
            ledger.finish_run(&[], crate::exit::NOTHING_DONE)?;
            anyhow::bail!(
                "nothing was recorded: {} of the findings would risk a duplicate or name no sent \
                 row; fix them and run resolve again:\n  {}",
                refusals.len(),
                refusals.join("\n  ")
            )
        }
    }
}

/// The uncertain rows as a CSV to fill in, on stdout.
fn list(path: &Path) -> anyhow::Result<Verdict> {
    let ledger = Ledger::open_read_only(path)
        .with_context(|| format!("could not open the ledger {}", path.display()))?;
    let rows = ledger.uncertain_rows()?;
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    out.write_record(["key", "status", "case_id", "row", "run", "message"])?;
    for row in &rows {
        out.write_record([
            row.key.as_str(),
            "uncertain",
            "",
            &row.source_row.to_string(),
            &row.run.to_string(),
            &row.message,
        ])?;
    }
    out.flush()?;
    drop(out);
    if rows.is_empty() {
        eprintln!("no uncertain rows in {}", path.display());
    } else {
        eprintln!(
            "{} uncertain rows: look each key up in the CRM and write created (and its case id) \
             or missing in the status column; then resolve --file with that CSV",
            rows.len()
        );
    }
    std::io::stdout().flush()?;
    Ok(Verdict::Clean)
}

/// Findings from a CSV (or workbook) with columns key, status and optionally case_id; the
/// number of lines whose status is neither created nor missing (left as they are).
fn read_findings(file: &Path, findings: &mut Vec<(String, Finding)>) -> anyhow::Result<usize> {
    // The source stage reads it: the file may come back from Excel with a BOM, `;`, or as
    // a workbook.
    let source = source::open(file, &SourceOptions::default())
        .with_context(|| format!("could not read {}", file.display()))?;
    let column = |name: &str| source.headers.iter().position(|h| fold(h) == name);
    let key_at = column("key").with_context(|| {
        format!(
            "{}: no `key` column (the columns are: {})",
            file.display(),
            source.headers.join(", ")
        )
    })?;
    let status_at = column("status").with_context(|| {
        format!(
            "{}: no `status` column (created or missing)",
            file.display()
        )
    })?;
    let id_at = column("case_id");
    let mut left = 0;
    let mut problems = Vec::new();
    for row in source.rows {
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                problems.push(format!("row {}: {}", e.number, e.message));
                continue;
            }
        };
        let key = row.cells.get(key_at).unwrap_or("").trim().to_string();
        let status = fold(row.cells.get(status_at).unwrap_or(""));
        let case_id = id_at
            .and_then(|i| row.cells.get(i))
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_string);
        if key.is_empty() {
            if !status.is_empty() {
                problems.push(format!("row {}: no key", row.number));
            }
            continue;
        }
        match status.as_str() {
            "created" => findings.push((key, Finding::Created { case_id })),
            "missing" => findings.push((key, Finding::Missing)),
            // A results file's other statuses: nothing a person found.
            "" => left += 1,
            other
                if crate::outcome::Status::ALL
                    .iter()
                    .any(|s| s.as_str() == other) =>
            {
                left += 1
            }
            other => problems.push(format!(
                "row {}: status {other:?} for {key}: write created or missing (or leave \
                 uncertain)",
                row.number
            )),
        }
    }
    anyhow::ensure!(
        problems.is_empty(),
        "{}: nothing was recorded:\n  {}",
        file.display(),
        problems.join("\n  ")
    );
    Ok(left)
}
