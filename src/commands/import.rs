//! `import`: wiring. Opens the input, the target and its ledger, checks the tokens, hands
//! the rows to the run engine (`crate::run`), and prints the summary.

use std::time::Instant;

use anyhow::Context;

use crate::cli::ImportArgs;
use crate::contacts;
use crate::exit::Verdict;
use crate::ledger::location::Wanted;
use crate::ledger::{self, fingerprint};
use crate::mapping::spec::DuplicatePolicy;
use crate::outcome::Status;
use crate::report::metrics::{self, RunMetrics};
use crate::report::{self, Progress, Summary, Ui};
use crate::run::{self, Job, Settings};
use crate::sender::pool::TokenPool;
use crate::sender::{Client, Sender};

use super::input;

pub async fn run(args: &ImportArgs, ui: Ui) -> anyhow::Result<Verdict> {
    let started = Instant::now();
    let mut figures = RunMetrics {
        input: args.input.input.display().to_string(),
        ..RunMetrics::default()
    };
    let result = import(args, ui, &mut figures).await;
    if let Some(path) = &args.metrics_file {
        figures.exit_code = match &result {
            Ok(verdict) => verdict.code(),
            Err(_) => crate::exit::NOTHING_DONE,
        };
        figures.duration = started.elapsed();
        let text = metrics::render(&figures, std::time::SystemTime::now());
        // The run's outcome stands (the ledger and the results say it); the log says the
        // metrics are stale.
        if let Err(e) = metrics::write_atomically(path, &text) {
            tracing::error!(
                "could not write the metrics file {}: {e}; it still shows an earlier run",
                path.display()
            );
        }
    }
    result
}

async fn import(args: &ImportArgs, ui: Ui, figures: &mut RunMetrics) -> anyhow::Result<Verdict> {
    let started = Instant::now();
    // The reader, the mapping, the hash and the ledger's writer yield to the requests.
    crate::background::yield_to_the_sender();
    let opened = input::open(&args.input, &args.mapping, args.operation.as_deref())?;
    let settings = Settings::from_cli(args, &opened.mapping.operation)?;
    // The simulator lives as long as this function: it is dropped (stopped) at the end.
    let (simulator, url, tokens) = super::target::connect(&settings).await?;
    if opened.mapping.key_missing() {
        anyhow::bail!(
            "{}",
            input::no_key_message(&args.mapping, opened.mapping.headers())
        );
    }
    figures.target = Some(settings.target.id());
    let legacy = report::beside(&args.input.input, "ledger.sqlite");
    let chosen = ledger::location::open(Wanted {
        target: &settings.target,
        explicit: args.ledger.ledger.as_deref(),
        legacy: Some(&legacy),
        expect_existing: args.ledger.expect_ledger,
    })?;
    let mut warnings = opened.warnings.clone();
    for warning in settings.concurrency_warning().iter().chain(&chosen.notices) {
        tracing::warn!("{warning}");
        warnings.push(warning.clone());
    }
    let (ledger_created, mut ledger) = (chosen.created, chosen.ledger);
    if ledger_created {
        let message = format!(
            "A new ledger for {}: {}. No earlier import into this target is known to it, so \
             every valid row will be sent.",
            settings.target,
            ledger.path().display()
        );
        if settings.simulated() {
            tracing::info!("{message}");
        } else {
            tracing::warn!("{message}");
        }
    }
    input::check_key_definition(&args.input, &args.mapping, &opened, &ledger, &mut warnings)?;
    let client = Client::new(url, settings.timeout).context("could not build the HTTP client")?;
    let mut reconciled = None;
    let mut reconcile_calls = 0;
    if args.reconcile {
        anyhow::ensure!(
            !settings.simulated(),
            "--reconcile asks the CRM an earlier import went to (--server): the simulator of \
             --simulate keeps no case between runs"
        );
        let token = tokens.first().context("no token")?;
        let (settled, verdict) =
            super::reconcile::settle(args, &opened, &mut ledger, &client, token, &settings, ui)
                .await?;
        if matches!(verdict, Verdict::QuotaStop | Verdict::Aborted) {
            return Ok(verdict);
        }
        reconcile_calls = settled.calls + settled.token_info_calls;
        reconciled = (!settled.rows.is_empty()).then(|| report::Reconciled {
            rows: settled.rows.len() as u64,
            found: settled.count("created") as u64,
            missing: settled.count("pending") as u64,
            uncertain: settled.count("uncertain") as u64,
            calls: settled.calls,
        });
    }
    // The input's hash lets `runs` show which file each run read (a changed export shows);
    // a run killed midway has none.
    let input_hash = fingerprint::file_sha256_beside(&args.input.input);
    ledger.begin_run(
        "import",
        &args.input.input.display().to_string(),
        None,
        Some(&fingerprint::sha256_hex(opened.mapping_text.as_bytes())),
    )?;

    let mut reporter = input::reporter(&args.input, &args.output, &opened.source)?;
    let mut pool = TokenPool::new(tokens, settings.concurrency);
    // `--reconcile` looked up with the first token, before the pool was made.
    pool.count_earlier(0, reconcile_calls);
    let mut no_token_left = None;
    // The contacts the rows to send name (`contacts:`), read ahead before any call.
    let contact_plan = contacts::plan(
        &opened.source,
        &opened.mapping,
        Some(&ledger),
        &args.contacts.settings(settings.resend_uncertain),
    )
    .context("could not read the file ahead for its contacts; nothing was sent")?;
    if settings.preflight {
        // What this run would send, before any call: a header-only file spends none.
        let ahead = run::preflight::plan_rows(&opened.source, &opened.mapping, &ledger, &settings)
            .inspect_err(|e| {
                let why = e.to_string();
                tracing::warn!("No quota plan: the file could not be read ahead ({why}).");
            })
            .ok()
            .map(|mut ahead| {
                ahead.contact_calls = contact_plan.as_ref().map_or(0, contacts::Plan::calls);
                ahead
            });
        let operation = &opened.mapping.operation;
        no_token_left = run::preflight::check(
            &mut pool,
            &client,
            operation,
            settings.quota_reserve,
            ahead.as_ref(),
        )
        .await?;
    }
    let mut contact_verdicts = contacts::Verdicts::default();
    if let Some(plan) = &contact_plan
        && no_token_left.is_none()
    {
        let operation = &opened.mapping.operation;
        let mut caller = contacts::Caller::new(&client, &mut pool, operation, settings.rate);
        caller.ledger = Some(&ledger);
        let (settled, notes) =
            contacts::stage(plan, &mut caller, Some(&ledger), settings.durable).await?;
        warnings.extend(notes);
        // No token can make a call: no case is sent either.
        no_token_left = settled.stopped;
        contact_verdicts = settled.verdicts;
    }
    let source_info = opened.source.info.clone();
    // A first run over an empty ledger, where one file cannot hold a key twice (the
    // duplicate check refuses the second), has no earlier answer to look up.
    let nothing_prior =
        ledger.has_no_cases()? && opened.mapping.on_duplicate_key == DuplicatePolicy::Reject;
    // The ledger keeps each sent row's field fingerprints: the mapping threads make them.
    let mut mapping = opened.mapping.clone();
    mapping.fingerprints = true;
    let rows = input::CheckedRows::spawn(opened.source.rows, mapping)
        .context("could not start the reader threads")?;
    let job = Job {
        settings: &settings,
        ledger: &ledger,
        reporter: &mut reporter,
        pool: &mut pool,
        sender: Sender::new(client, settings.sender_config()),
        progress: Progress::new(ui.quiet, opened.source.read_bytes.clone()),
        nothing_prior,
        no_token_left,
        contacts: contact_verdicts,
        fed_back_error: crate::feedback::error_column(opened.mapping.headers()),
    };
    let ended = run::run(job, rows).await?;

    let tally = reporter.tally().clone();
    let token_uses = if settings.simulated() {
        Vec::new()
    } else {
        pool.uses()
    };
    figures.tally = Some(tally.clone());
    figures.sent = ended.rows_sent;
    figures.tokens = token_uses.clone();
    let verdict = match &ended.stop {
        Some(stop) => stop.verdict(),
        None if tally.needing_attention() > 0 || tally.get(Status::Pending) > 0 => {
            Verdict::RowsNeedAttention
        }
        None => Verdict::Clean,
    };
    if ended.broken.is_none() {
        let counts: Vec<(&str, u64)> = Status::ALL
            .into_iter()
            .map(|s| (s.as_str(), tally.get(s)))
            .collect();
        ledger.record_input_hash(input_hash)?;
        ledger.finish_run(&counts, verdict.code())?;
        // The last answers on disk too: a power cut after the exit loses nothing.
        if settings.durable {
            ledger.syncer()?.sync()?;
        }
    }
    drop(simulator);
    if let Some(error) = &ended.broken
        && ended.departed == 0
    {
        anyhow::bail!("{}", super::error_text(error));
    }

    let input_name = args.input.input.display().to_string();
    if tally.rows() == 0 {
        let note = if args.input.no_header {
            format!("{input_name}: no data rows (the file is empty): nothing to send")
        } else {
            format!(
                "{input_name}: no data rows (only the header, in row {}): nothing to send",
                source_info.header_row
            )
        };
        tracing::warn!("{note}");
        warnings.push(note);
    }
    let ledger_name = ledger.path().display().to_string();
    let hint_args = super::target::args_for_hints(
        args.server.as_deref(),
        args.simulate,
        &args.mapping,
        args.ledger.ledger.as_deref(),
    );
    let again = super::target::errors_file_command(
        "import",
        &reporter.paths().errors,
        &hint_args,
        args.token_file.as_deref(),
    );
    let stop_reason = ended.stop.as_ref().map(ToString::to_string);
    let rerun_when = ended.stop.as_ref().and_then(run::StopReason::rerun_when);
    let summary = Summary {
        command: "import",
        input: &input_name,
        tally: &tally,
        elapsed: started.elapsed(),
        paths: reporter.paths(),
        source: &source_info,
        warnings: &warnings,
        stop_reason: stop_reason.as_deref(),
        exit_code: verdict.code(),
        sent: Some(ended.rows_sent),
        rerun_when: rerun_when.as_deref(),
        ledger: Some(report::LedgerNote {
            path: &ledger_name,
            created: ledger_created,
            target_args: &hint_args,
        }),
        tokens: &token_uses,
        changed: Some(ended.changed),
        impact: None,
        reconciled,
        missing_contact: ended.missing_contact,
        invalid_created: ended.invalid_created,
        again: Some(&again),
    };
    report::finish(&summary, args.output.json, ui)?;
    Ok(verdict)
}
