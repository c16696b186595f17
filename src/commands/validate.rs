//! `validate`: the dry run. Every row through the mapping; nothing is sent.

use std::time::Instant;

use anyhow::Context;

use crate::cli::ValidateArgs;
use crate::contacts;
use crate::exit::Verdict;
use crate::ledger::Impact;
use crate::mapping;
use crate::outcome::{Outcome, Status};
use crate::report::{self, Progress, Summary, Ui};
use crate::sender::pool::TokenPool;
use crate::sender::{self, Client};

use super::input::{self, Checked};

/// Bad cells listed on stderr; the rest are in the errors file.
const SHOWN_BAD_CELLS: usize = 20;

pub fn run(args: &ValidateArgs, ui: Ui) -> anyhow::Result<Verdict> {
    let started = Instant::now();
    let mut opened = input::open(&args.input, &args.mapping, args.operation.as_deref())?;
    opened.warn_if_no_key(&args.mapping);
    let mut reporter = input::reporter(&args.input, &args.output, &opened.source)?;
    let mut progress = Progress::new(ui.quiet, opened.source.read_bytes.clone());
    let info = opened.source.info.clone();
    let ledger =
        super::target::read_ledger(&args.against, &args.mapping, args.operation.as_deref())?;
    let mut impact = ledger.as_ref().map(Impact::new);
    let mut warnings = opened.warnings.clone();
    // `contacts:` with a CRM named: look them up, read only (nothing written or created).
    let contacts = check_contacts(args, &opened, ledger.as_ref(), &mut warnings)?;
    let mut rows = input::CheckedRows::spawn(opened.source.rows, opened.mapping.clone())
        .context("could not start the reader threads")?;
    // The first bad cells, said compiler-style once the file is read; the rest counted.
    let mut bad_cells: Vec<(u64, String)> = Vec::new();
    let mut more_bad_cells = 0u64;
    let mut missing_contact = 0u64;
    while let Some(checked) = rows.next_blocking() {
        let (outcome, cells) = match checked {
            Checked::Ready {
                row,
                cells,
                payload,
            } => {
                if let Some((status, message)) = contacts.for_row(payload.contact()) {
                    missing_contact += u64::from(status == Status::Invalid);
                    let outcome = Outcome::new(row, payload.key, status).with_message(message);
                    reporter.record(&outcome, &cells)?;
                    progress.update(reporter.tally(), 0);
                    continue;
                }
                if let (Some(ledger), Some(impact)) = (&ledger, &mut impact) {
                    impact.count(ledger, &payload)?;
                }
                // A value sent with a doubt (a phone kept as typed) is said on its row.
                let warnings = mapping::describe(payload.warnings());
                let outcome = Outcome::new(row, payload.key, Status::Valid);
                (outcome.with_message(warnings), cells)
            }
            Checked::Invalid {
                row,
                cells,
                key,
                message,
                errors,
            } => {
                let said: Vec<String> = if errors.is_empty() {
                    vec![message.clone()]
                } else {
                    errors
                        .iter()
                        .map(|e| format!("{}: {}", e.column, e.message))
                        .collect()
                };
                for text in said {
                    if bad_cells.len() < SHOWN_BAD_CELLS {
                        bad_cells.push((row, text));
                    } else {
                        more_bad_cells += 1;
                    }
                }
                (
                    Outcome::new(row, key, Status::Invalid).with_message(message),
                    cells,
                )
            }
        };
        reporter.record(&outcome, &cells)?;
        progress.update(reporter.tally(), 0);
    }
    progress.finish();
    rows.join()?;
    reporter.flush()?;
    let file = args.input.input.display().to_string();
    for (row, text) in &bad_cells {
        if ui.json_logs {
            tracing::warn!(file = %file, row, "{text}");
        } else if !ui.quiet {
            eprintln!("{file}:{row}: {text}");
        }
    }
    if more_bad_cells > 0 {
        let errors = reporter.paths().errors.display().to_string();
        if ui.json_logs {
            tracing::warn!(more = more_bad_cells, errors = %errors, "and {more_bad_cells} more in {errors}");
        } else if !ui.quiet {
            eprintln!("and {more_bad_cells} more in {errors}");
        }
    }
    let verdict = if reporter.tally().needing_attention() > 0 {
        Verdict::RowsNeedAttention
    } else {
        Verdict::Clean
    };
    let input_name = args.input.input.display().to_string();
    let again = again_command(args, &reporter.paths().errors);
    let summary = Summary {
        command: "validate",
        input: &input_name,
        tally: reporter.tally(),
        elapsed: started.elapsed(),
        paths: reporter.paths(),
        source: &info,
        warnings: &warnings,
        stop_reason: None,
        exit_code: verdict.code(),
        sent: None,
        rerun_when: None,
        ledger: None,
        tokens: &[],
        changed: None,
        impact: impact.as_ref(),
        reconciled: None,
        missing_contact,
        invalid_created: 0,
        again: Some(&again),
    };
    report::finish(&summary, args.output.json, ui)?;
    Ok(verdict)
}

/// The `validate` of the errors file, with this run's mapping and target, for the hint.
fn again_command(args: &ValidateArgs, errors: &std::path::Path) -> String {
    use super::target::shell_word;
    let mut target = format!(
        "--mapping {}",
        shell_word(&args.mapping.display().to_string())
    );
    let against = &args.against;
    match (&against.server, against.simulate) {
        (_, true) => target.push_str(" --simulate"),
        (Some(server), false) => {
            target.push_str(" --server ");
            target.push_str(&shell_word(server));
        }
        (None, false) => {}
    }
    if let Some(ledger) = &against.ledger {
        target.push_str(" --ledger ");
        target.push_str(&shell_word(&ledger.display().to_string()));
    }
    super::target::errors_file_command("validate", errors, &target, args.token_file.as_deref())
}

/// The read-only contact check of `validate --server/--simulate`: the verdicts of the
/// contacts the CRM lacks (rows invalid, unless `contacts.create` would create them), and
/// the note saying how many.
fn check_contacts(
    args: &ValidateArgs,
    opened: &input::Opened,
    ledger: Option<&crate::ledger::Ledger>,
    warnings: &mut Vec<String>,
) -> anyhow::Result<contacts::Verdicts> {
    let settings = args.contacts.settings(false);
    let Some(plan) = contacts::plan(&opened.source, &opened.mapping, ledger, &settings)? else {
        return Ok(contacts::Verdicts::default());
    };
    let against = &args.against;
    if against.server.is_none() && !against.simulate {
        tracing::info!(
            "The mapping checks contacts: pass --server (or --simulate) to look them up \
             (read only)."
        );
        return Ok(contacts::Verdicts::default());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (_simulator, url, tokens) = if against.simulate {
            let (sim, url, token) = super::target::start_simulator().await?;
            (Some(sim), url, vec![token])
        } else {
            let server = against.server.as_deref().unwrap_or_default();
            let url = sender::client::insert_url(server)?;
            let tokens = sender::token::load(
                args.token_file.as_deref(),
                std::env::var("WOLKVOX_TOKEN").ok(),
            )?;
            (None, url, tokens)
        };
        let client = Client::new(url, std::time::Duration::from_secs(30))
            .context("could not build the HTTP client")?;
        let mut pool = TokenPool::new(tokens, 2);
        let operation = &opened.mapping.operation;
        let mut caller = contacts::Caller::new(&client, &mut pool, operation, Some(5.0));
        let (mut settled, notes) = contacts::stage(&plan, &mut caller, None, false).await?;
        warnings.extend(notes);
        if let Some(why) = &settled.stopped {
            anyhow::bail!("the contacts could not be looked up: {why}");
        }
        if plan.create {
            // An import would create them: their rows are valid.
            settled
                .verdicts
                .0
                .retain(|_, v| !matches!(v, contacts::RowVerdict::Missing));
        }
        Ok(settled.verdicts)
    })
}
