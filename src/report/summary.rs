//! End-of-run summaries: a table for people on stderr, one JSON object on stdout.

use std::io::Write;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;

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
    /// `import`: rows an earlier run created that changed since (sent with `--update`,
    /// reported without).
    pub changed: Option<u64>,
    /// `validate` with a ledger: what an import would do with the valid rows.
    pub impact: Option<&'a crate::ledger::Impact>,
    /// `import --reconcile`: what the look-ups before the sends settled.
    pub reconciled: Option<Reconciled>,
    /// Invalid rows whose only fault is a contact the CRM lacks (`contacts: check`): their
    /// fix is in the CRM, not in the errors file.
    pub missing_contact: u64,
    /// Invalid rows whose ticket an earlier run created (from a fixed copy): nothing to
    /// fix for the CRM to have them.
    pub invalid_created: u64,
    /// The command that runs the errors file once its rows are fixed, for the hint.
    pub again: Option<&'a str>,
}

/// What `import --reconcile` found of the rows earlier runs left uncertain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reconciled {
    /// Rows looked up.
    pub rows: u64,
    /// Found in the CRM (created, with its case id): not sent again.
    pub found: u64,
    /// Not in the CRM: sent by this import.
    pub missing: u64,
    /// Still uncertain (several matches, a near match, no answer): not sent.
    pub uncertain: u64,
    /// Look-up calls spent (each one a use of the token's quota).
    pub calls: u64,
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
                Status::Updated,
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
    rows_that(n, "")
}

/// `1 invalid row`, `2 invalid rows`: `kind` is a word and a space, or nothing.
fn rows_that(n: u64, kind: &str) -> String {
    if n == 1 {
        format!("1 {kind}row")
    } else {
        format!("{n} {kind}rows")
    }
}

/// `one` for a single row, `many` for any other count.
fn one_or_many(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// The pronoun for `n` rows.
fn them(n: u64) -> &'static str {
    one_or_many(n, "it", "them")
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
    if let Some(changed) = summary.changed.filter(|n| *n > 0) {
        let what = if t.get(Status::Updated) > 0 {
            "the updatable changes sent; each row says which fields"
        } else {
            "nothing sent for them: pass --update to send their changes; each row says what changed"
        };
        writeln!(out, "  changed since created: {changed} ({what})")?;
    }
    if let Some(impact) = summary.impact {
        writeln!(
            out,
            "  an import: {} (by {})",
            impact.describe(),
            impact.ledger
        )?;
    }
    if let Some(r) = &summary.reconciled {
        writeln!(
            out,
            "  reconciled first: {} rows looked up in {} calls: {} in the CRM, {} not (sent \
             now), {} still uncertain",
            r.rows, r.calls, r.found, r.missing, r.uncertain
        )?;
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
    let contact = summary.missing_contact.min(t.get(Status::Invalid));
    let in_crm = summary
        .invalid_created
        .min(t.get(Status::Invalid) - contact);
    let to_fix = t.get(Status::Invalid) - contact - in_crm;
    if to_fix > 0 {
        let then = match summary.again {
            Some(again) => format!(", then run: {again}"),
            None => " and run it with the same mapping".to_string(),
        };
        hints.push(format!(
            "{}: fix {} in {errors} (each has its row number and error){then}",
            rows_that(to_fix, "invalid "),
            them(to_fix)
        ));
    }
    if in_crm > 0 {
        hints.push(format!(
            "{} {} the CRM has already (an earlier run created {} from a fixed copy): \
             nothing to fix unless {} changes must reach the CRM",
            rows_that(
                in_crm,
                if to_fix > 0 {
                    "more invalid "
                } else {
                    "invalid "
                }
            ),
            one_or_many(in_crm, "is a ticket", "are tickets"),
            one_or_many(in_crm, "it", "them"),
            one_or_many(in_crm, "its", "their")
        ));
    }
    if contact > 0 {
        hints.push(format!(
            "{} {} the CRM does not have: create {} in \
             the CRM (or add `create:` to the mapping's `contacts:` section, which creates \
             them first), then run the same command again",
            rows_that(
                contact,
                if contact < t.get(Status::Invalid) {
                    "more "
                } else {
                    "invalid "
                }
            ),
            one_or_many(contact, "names a contact", "name contacts"),
            one_or_many(contact, "that contact", "those contacts")
        ));
    }
    if t.get(Status::Rejected) > 0 {
        hints.push(format!(
            "{} rejected by the CRM: see the message column in {errors}",
            rows(t.get(Status::Rejected))
        ));
    }
    if t.get(Status::Failed) > 0 {
        hints.push(format!(
            "{} failed without being stored: run the same command again to resend {}",
            rows(t.get(Status::Failed)),
            them(t.get(Status::Failed))
        ));
    }
    if t.get(Status::Uncertain) > 0 {
        let target = summary.ledger.map(|l| l.target_args).unwrap_or("…");
        hints.push(format!(
            "{} uncertain (the CRM may have {}, so {} not resent on {} own): \
             run this import again with --reconcile: it asks the CRM about them first and \
             sends only the missing ones (`wolkvox-import reconcile {} {target}` asks without \
             sending; to check by hand: `wolkvox-import resolve {target} --list`)",
            rows(t.get(Status::Uncertain)),
            them(t.get(Status::Uncertain)),
            one_or_many(t.get(Status::Uncertain), "it is", "they are"),
            one_or_many(t.get(Status::Uncertain), "its", "their"),
            summary.input
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
        let pending = format!(
            "{} pending: {when} the same command again; the ledger skips what was created",
            rows(t.get(Status::Pending))
        );
        // What stopped the run (a token refused, say) comes before fixing rows: the rows
        // fixed cannot go until it is.
        match summary.rerun_when {
            Some(_) => hints.insert(0, pending),
            None => hints.push(pending),
        }
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

/// The `--json` object of an `import` or `validate` run, and the `summary` of its
/// `--log-format json` line: what scripts read. `docs/summary.schema.json` is generated
/// from this type (regenerate it with `WOLKVOX_WRITE_SCHEMA=1 cargo test schema`).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "wolkvox-import run summary")]
pub struct JsonSummary {
    /// Data rows read (every status below added up).
    pub rows: u64,
    /// `import`: rows the CRM stored in this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "u64")]
    pub created: Option<u64>,
    /// `import`: rows an earlier run created whose changes the CRM took (`--update`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "u64")]
    pub updated: Option<u64>,
    /// `import`: rows an earlier run created that changed since: updated with
    /// `--update`, else reported (status `skipped`) and not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "u64")]
    pub changed: Option<u64>,
    /// `import`: rows an earlier run created (per the ledger): not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "u64")]
    pub skipped: Option<u64>,
    /// `validate`: rows the mapping accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "u64")]
    pub valid: Option<u64>,
    /// Rows the mapping refused: in the errors file, with why.
    pub invalid: u64,
    /// `import`: rows the CRM refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "u64")]
    pub rejected: Option<u64>,
    /// `import`: rows not stored (the next run resends them).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "u64")]
    pub failed: Option<u64>,
    /// `import`: rows the CRM may have stored: not resent on their own (`resolve`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "u64")]
    pub uncertain: Option<u64>,
    /// `import`: rows not sent because the run stopped early.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "u64")]
    pub pending: Option<u64>,
    /// Seconds the run took, to the millisecond.
    pub elapsed_s: f64,
    /// The results file (every row).
    pub report: String,
    /// The errors file (the rows to look at, with their original columns).
    pub errors: String,
    /// The `--report X.xlsx` workbook, if one was asked for.
    pub workbook: Option<String>,
    /// `import`: rows a request was made for.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "u64")]
    pub sent: Option<u64>,
    /// The process's exit code.
    pub exit_code: u8,
    /// Why the run stopped early, if it did.
    pub stopped: Option<String>,
    /// `import`: the ledger the run used.
    pub ledger: Option<String>,
    /// `import`: whether this run started that ledger (no earlier run into the target).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "bool")]
    pub ledger_created: Option<bool>,
    /// CSV: the encoding the file was read in.
    pub encoding: Option<String>,
    /// CSV: why that encoding.
    pub encoding_reason: Option<String>,
    /// The header's line (CSV) or row (workbook), counted from 1.
    pub header_row: u64,
    /// CSV: the delimiter, one character.
    pub delimiter: Option<String>,
    /// Workbook: the sheet read.
    pub sheet: Option<String>,
    pub warnings: Vec<String>,
    /// `import`: calls per token (by fingerprint, never the token).
    pub tokens: Vec<JsonToken>,
    /// `validate` with a ledger (`--server`, `--simulate` or `--ledger`): what an import
    /// would do with the valid rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "crate::ledger::Impact")]
    pub impact: Option<crate::ledger::Impact>,
    /// `import --reconcile`: what the look-ups before the sends settled.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Reconciled")]
    pub reconciled: Option<Reconciled>,
}

/// How a run used one token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonToken {
    /// The token's fingerprint (never the token).
    pub token: String,
    /// Calls that reached the CRM, the preflight's included.
    pub calls: u64,
    /// Calls left today by the CRM's count, when known.
    pub quota_left: Option<u64>,
    /// `ok`, `rejected` (dropped) or `quota` (its daily quota reached).
    pub state: TokenState,
}

/// What became of a token in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenState {
    Ok,
    Rejected,
    Quota,
}

/// The `--json` object of a run that did nothing (exit 1): a nightly
/// `--json >> nightly.jsonl` records those nights too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonNothingDone {
    /// The subcommand (`import`, `validate`, …).
    pub command: String,
    /// Always 1: nothing was done.
    pub exit_code: u8,
    /// Why.
    pub error: String,
}

/// Any line `--json` writes for `import` and `validate`: a run's summary, or what kept a run
/// from starting. The type `docs/summary.schema.json` describes.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
#[schemars(title = "wolkvox-import --json")]
pub enum JsonLine {
    Run(Box<JsonSummary>),
    NothingDone(JsonNothingDone),
}

/// The JSON Schema of `--json`, as committed in `docs/summary.schema.json`.
pub fn json_schema() -> String {
    // As written (`for_serialize`): a field is required unless it may be left out, and an
    // `Option` that is written as `null` may be `null`.
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<JsonLine>();
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

impl Summary<'_> {
    /// The summary as `--json` writes it.
    pub fn to_json(&self) -> JsonSummary {
        let t = self.tally;
        let import = self.command != "validate";
        let count = |status: Status, shown: bool| shown.then(|| t.get(status));
        JsonSummary {
            rows: t.rows(),
            created: count(Status::Created, import),
            updated: count(Status::Updated, import),
            changed: self.changed.filter(|_| import),
            skipped: count(Status::Skipped, import),
            valid: count(Status::Valid, !import),
            invalid: t.get(Status::Invalid),
            rejected: count(Status::Rejected, import),
            failed: count(Status::Failed, import),
            uncertain: count(Status::Uncertain, import),
            pending: count(Status::Pending, import),
            elapsed_s: (self.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            report: self.paths.results.display().to_string(),
            errors: self.paths.errors.display().to_string(),
            workbook: self
                .paths
                .workbook
                .as_ref()
                .map(|w| w.display().to_string()),
            sent: self.sent,
            exit_code: self.exit_code,
            stopped: self.stop_reason.map(str::to_string),
            ledger: self.ledger.map(|l| l.path.to_string()),
            ledger_created: self.ledger.map(|l| l.created),
            encoding: self.source.encoding.clone(),
            encoding_reason: self.source.encoding_reason.clone(),
            header_row: self.source.header_row,
            delimiter: self.source.delimiter.map(|d| (d as char).to_string()),
            sheet: self.source.sheet.clone(),
            warnings: self.warnings.to_vec(),
            tokens: self
                .tokens
                .iter()
                .map(|t| JsonToken {
                    token: t.fingerprint.clone(),
                    calls: t.calls,
                    quota_left: t.quota_left,
                    state: match t.state {
                        "ok" => TokenState::Ok,
                        "rejected" => TokenState::Rejected,
                        _ => TokenState::Quota,
                    },
                })
                .collect(),
            impact: self.impact.cloned(),
            reconciled: self.reconciled,
        }
    }
}

/// `--json`: the summary, one line on stdout.
pub fn print_json(summary: &Summary<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    let line = serde_json::to_string(&summary.to_json())?;
    writeln!(out, "{line}")
}

#[cfg(test)]
mod tests {
    /// `docs/summary.schema.json` is what scripts reading `--json` are told to expect: it
    /// must match the type that writes it. Regenerate with
    /// `WOLKVOX_WRITE_SCHEMA=1 cargo test schema`.
    #[test]
    fn the_committed_summary_schema_matches_the_summary_type() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/summary.schema.json");
        let generated = super::json_schema();
        if std::env::var_os("WOLKVOX_WRITE_SCHEMA").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            committed, generated,
            "docs/summary.schema.json is not the schema of report::JsonLine: \
             run WOLKVOX_WRITE_SCHEMA=1 cargo test schema"
        );
    }
}
