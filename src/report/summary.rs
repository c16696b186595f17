//! End-of-run summaries: a table for people on stderr, one JSON object on stdout.

use std::io::Write;
use std::time::Duration;

use serde_json::json;

use super::ReportPaths;
use crate::outcome::{Status, Tally, TokenUse};
use crate::source::SourceInfo;

/// Everything a summary says.
#[derive(Debug, Clone)]
pub struct Summary<'a> {
    pub command: &'a str,
    pub input: &'a str,
    pub tally: &'a Tally,
    pub elapsed: Duration,
    pub paths: &'a ReportPaths,
    pub source: &'a SourceInfo,
    pub warnings: &'a [String],
    /// Why the run stopped early, if it did.
    pub stop_reason: Option<&'a str>,
    pub exit_code: u8,
    /// Rows a request was made for (`import`): the rate is over these, not over rows
    /// skipped, invalid or left pending.
    pub sent: Option<u64>,
    /// What to do before pending rows can go ("fix the token first, then run"), when the
    /// run's stop says more than the exit code does.
    pub rerun_when: Option<&'a str>,
    pub ledger: Option<LedgerNote<'a>>,
    /// Calls per token, by fingerprint (never the token).
    pub tokens: &'a [TokenUse],
}

/// The ledger a run used, for the summary and its hints.
#[derive(Debug, Clone, Copy)]
pub struct LedgerNote<'a> {
    pub path: &'a str,
    /// No ledger existed for the target: this run started one.
    pub created: bool,
    /// The arguments that name the target again (`--server … --mapping …`), for hints.
    pub target_args: &'a str,
}

impl Summary<'_> {
    fn statuses(&self) -> Vec<Status> {
        if self.command == "validate" {
            vec![Status::Valid, Status::Invalid]
        } else {
            vec![
                Status::Created,
                Status::Skipped,
                Status::Invalid,
                Status::Rejected,
                Status::Failed,
                Status::Uncertain,
                Status::Pending,
            ]
        }
    }
}

/// `1 row`, `2 rows`.
fn rows(n: u64) -> String {
    if n == 1 {
        "1 row".into()
    } else {
        format!("{n} rows")
    }
}

pub fn print_human(summary: &Summary<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    let t = summary.tally;
    let secs = summary.elapsed.as_secs_f64();
    let per_second = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    writeln!(out)?;
    match summary.sent {
        Some(sent) => writeln!(
            out,
            "{} of {}: {} in {:.1} s; {sent} sent ({:.0} rows/s)",
            summary.command,
            summary.input,
            rows(t.rows()),
            secs,
            per_second(sent)
        )?,
        None => writeln!(
            out,
            "{} of {}: {} in {:.1} s ({:.0} rows/s)",
            summary.command,
            summary.input,
            rows(t.rows()),
            secs,
            per_second(t.rows())
        )?,
    }
    for status in summary.statuses() {
        let n = t.get(status);
        if n > 0 || matches!(status, Status::Created | Status::Valid | Status::Invalid) {
            writeln!(out, "  {:<10} {n:>8}", status.as_str())?;
        }
    }
    if let Some(reason) = summary.stop_reason {
        writeln!(out, "  stopped early: {reason}")?;
    }
    if let Some(encoding) = &summary.source.encoding {
        let delimiter = summary
            .source
            .delimiter
            .map(|d| {
                if d == b'\t' {
                    "tab".to_string()
                } else {
                    format!("\"{}\"", d as char)
                }
            })
            .unwrap_or_default();
        writeln!(
            out,
            "  read as:   {encoding} ({}), delimiter {delimiter}, header on line {}",
            summary.source.encoding_reason.as_deref().unwrap_or(""),
            summary.source.header_row
        )?;
    } else if let Some(sheet) = &summary.source.sheet {
        writeln!(
            out,
            "  read as:   sheet {sheet:?}, header in row {}",
            summary.source.header_row
        )?;
    }
    writeln!(out, "  results:   {}", summary.paths.results.display())?;
    if let Some(workbook) = &summary.paths.workbook {
        writeln!(out, "  workbook:  {}", workbook.display())?;
    }
    let attention = t.needing_attention();
    if attention > 0 {
        writeln!(
            out,
            "  errors:    {} ({} to look at)",
            summary.paths.errors.display(),
            rows(attention)
        )?;
    }
    if let Some(ledger) = summary.ledger {
        let new = if ledger.created {
            " (new: no earlier run into this target)"
        } else {
            ""
        };
        writeln!(out, "  ledger:    {}{new}", ledger.path)?;
    }
    for token in summary.tokens {
        writeln!(
            out,
            "  token {}: {} calls{}{}",
            token.fingerprint,
            token.calls,
            token
                .quota_left
                .map(|left| format!(", {left} left today"))
                .unwrap_or_default(),
            match token.state {
                "ok" => "",
                "rejected" => " (rejected by the CRM, dropped)",
                _ => " (daily quota reached)",
            }
        )?;
    }
    for warning in summary.warnings {
        writeln!(out, "  warning:   {warning}")?;
    }
    for hint in next_steps(summary) {
        writeln!(out, "  next: {hint}")?;
    }
    Ok(())
}

fn next_steps(summary: &Summary<'_>) -> Vec<String> {
    let t = summary.tally;
    let errors = summary.paths.errors.display();
    let mut hints = Vec::new();
    if t.get(Status::Invalid) > 0 {
        hints.push(format!(
            "{} invalid rows: fix them in {errors} (each has its row number and error) and run \
             it with the same mapping",
            t.get(Status::Invalid)
        ));
    }
    if t.get(Status::Rejected) > 0 {
        hints.push(format!(
            "{} rows rejected by the CRM: see the message column in {errors}",
            t.get(Status::Rejected)
        ));
    }
    if t.get(Status::Failed) > 0 {
        hints.push(format!(
            "{} rows failed without being stored: run the same command again to resend them",
            t.get(Status::Failed)
        ));
    }
    if t.get(Status::Uncertain) > 0 {
        let target = summary.ledger.map(|l| l.target_args).unwrap_or("…");
        hints.push(format!(
            "{} rows uncertain (the CRM may have them, so they are not resent on their own): \
             `wolkvox-import resolve {target} --list > uncertain.csv`, look each key up in the \
             CRM and write created (with its case id) or missing in its status column, then \
             `wolkvox-import resolve {target} --file uncertain.csv` and run this import again: \
             it sends only the missing ones",
            t.get(Status::Uncertain)
        ));
    }
    if t.get(Status::Pending) > 0 {
        let when = match (summary.rerun_when, summary.exit_code) {
            (Some(when), _) => when,
            (None, crate::exit::ABORTED) => "once what stopped the run (above) is fixed, run",
            (None, crate::exit::QUOTA_STOP) => "after the quota resets, run",
            (None, crate::exit::INTERRUPTED) => "when you are ready, run",
            (None, _) => "run",
        };
        hints.push(format!(
            "{} rows pending: {when} the same command again; the ledger skips what was created",
            t.get(Status::Pending)
        ));
    }
    hints
}

impl Summary<'_> {
    /// Name/value lines for the workbook's Summary sheet.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut pairs = vec![
            ("command".to_string(), self.command.to_string()),
            ("input".to_string(), self.input.to_string()),
            ("rows".to_string(), self.tally.rows().to_string()),
        ];
        for status in self.statuses() {
            pairs.push((
                status.as_str().to_string(),
                self.tally.get(status).to_string(),
            ));
        }
        pairs.push((
            "elapsed".into(),
            format!("{:.1} s", self.elapsed.as_secs_f64()),
        ));
        pairs.push(("exit code".into(), self.exit_code.to_string()));
        if let Some(reason) = self.stop_reason {
            pairs.push(("stopped early".into(), reason.to_string()));
        }
        pairs.push((
            "results file".into(),
            self.paths.results.display().to_string(),
        ));
        pairs.push((
            "errors file".into(),
            self.paths.errors.display().to_string(),
        ));
        if let Some(ledger) = self.ledger {
            pairs.push(("ledger".into(), ledger.path.to_string()));
            pairs.push(("ledger created".into(), ledger.created.to_string()));
        }
        for hint in next_steps(self) {
            pairs.push(("next".into(), hint));
        }
        pairs
    }
}

pub fn print_json(summary: &Summary<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    let t = summary.tally;
    let mut object = serde_json::Map::new();
    object.insert("rows".into(), t.rows().into());
    for status in summary.statuses() {
        object.insert(status.as_str().into(), t.get(status).into());
    }
    object.insert(
        "elapsed_s".into(),
        json!((summary.elapsed.as_secs_f64() * 1000.0).round() / 1000.0),
    );
    object.insert(
        "report".into(),
        summary.paths.results.display().to_string().into(),
    );
    object.insert(
        "errors".into(),
        summary.paths.errors.display().to_string().into(),
    );
    object.insert(
        "workbook".into(),
        json!(
            summary
                .paths
                .workbook
                .as_ref()
                .map(|w| w.display().to_string())
        ),
    );
    if let Some(sent) = summary.sent {
        object.insert("sent".into(), sent.into());
    }
    object.insert("exit_code".into(), summary.exit_code.into());
    object.insert("stopped".into(), json!(summary.stop_reason));
    object.insert("ledger".into(), json!(summary.ledger.map(|l| l.path)));
    if let Some(ledger) = summary.ledger {
        object.insert("ledger_created".into(), ledger.created.into());
    }
    object.insert("encoding".into(), json!(summary.source.encoding));
    object.insert(
        "encoding_reason".into(),
        json!(summary.source.encoding_reason),
    );
    object.insert("header_row".into(), json!(summary.source.header_row));
    object.insert(
        "delimiter".into(),
        json!(summary.source.delimiter.map(|d| (d as char).to_string())),
    );
    object.insert("sheet".into(), json!(summary.source.sheet));
    object.insert("warnings".into(), json!(summary.warnings));
    object.insert(
        "tokens".into(),
        summary
            .tokens
            .iter()
            .map(|t| {
                json!({
                    "token": t.fingerprint,
                    "calls": t.calls,
                    "quota_left": t.quota_left,
                    "state": t.state,
                })
            })
            .collect::<Vec<_>>()
            .into(),
    );
    writeln!(out, "{}", serde_json::Value::Object(object))
}
