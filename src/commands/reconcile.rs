//! `reconcile` (and the first step of `import --reconcile`): wiring. Opens the input and
//! the target's ledger, maps the rows the ledger is in doubt of, hands them to the
//! reconcile stage (`crate::reconcile`), and writes what it settled: the ledger, a results
//! file (`<input>.reconciled.csv`) and a summary.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::ImportArgs;
use crate::exit::Verdict;
use crate::ledger::location::Wanted;
use crate::ledger::{self, Ledger, fingerprint};
use crate::mapping::check::{self, Checked};
use crate::mapping::{DuplicateKeys, Payload};
use crate::reconcile::{self, Options, Report};
use crate::report::{self, Ui};
use crate::run::Settings;
use crate::sender::client::TokenInfoError;
use crate::sender::{Client, StopKind, Token};

use super::input::{self, Opened};

pub async fn run(args: &ImportArgs, ui: Ui) -> anyhow::Result<Verdict> {
    // The hash of the input (and a workbook's reader) yield to the look-ups.
    crate::background::yield_to_the_sender();
    let opened = input::open(&args.input, &args.mapping, args.operation.as_deref())?;
    let settings = Settings::from_cli(args, &opened.mapping.operation)?;
    anyhow::ensure!(
        !settings.simulated(),
        "reconcile asks the CRM the import went to (--server): the simulator of `import \
         --simulate` keeps no case between runs, so there is nothing to look up"
    );
    let (_simulator, url, tokens) = super::target::connect(&settings).await?;
    let legacy = report::beside(&args.input.input, "ledger.sqlite");
    let path = match &args.ledger.ledger {
        Some(path) => path.clone(),
        None => ledger::location::default_path(&settings.target)?,
    };
    anyhow::ensure!(
        path.exists() || legacy.exists(),
        "nothing was imported into {} yet (no ledger at {}): there is no uncertain row to look \
         up; check --server, --mapping (its operation) and --ledger, or run the import first",
        settings.target,
        path.display()
    );
    let chosen = ledger::location::open(Wanted {
        target: &settings.target,
        explicit: args.ledger.ledger.as_deref(),
        legacy: Some(&legacy),
        expect_existing: true,
    })?;
    let client = Client::new(url, settings.timeout).context("could not build the HTTP client")?;
    let token = tokens.into_iter().next().context("no token")?;
    let mut ledger = chosen.ledger;
    let (_, verdict) = settle(args, &opened, &mut ledger, &client, &token, &settings, ui).await?;
    Ok(verdict)
}

/// Reconcile the ledger's rows in doubt against the CRM, as a run of its own; what it
/// found is in the ledger when it returns.
pub async fn settle(
    args: &ImportArgs,
    opened: &Opened,
    ledger: &mut Ledger,
    client: &Client,
    token: &Token,
    settings: &Settings,
    ui: Ui,
) -> anyhow::Result<(Report, Verdict)> {
    let input_name = args.input.input.display().to_string();
    let wanted: HashSet<String> = ledger
        .doubts(args.lookups.ids)?
        .into_iter()
        .map(|d| d.key)
        .collect();
    if wanted.is_empty() {
        if !ui.quiet {
            eprintln!(
                "reconcile: no row of {} is uncertain{}: nothing to look up",
                ledger.path().display(),
                if args.lookups.ids {
                    " or without a case id"
                } else {
                    ""
                }
            );
        }
        return Ok((Report::default(), Verdict::Clean));
    }
    // Hashed beside the look-ups (as `import` does), recorded when the run ends.
    let input_hash = fingerprint::file_sha256_beside(&args.input.input);
    let payloads = payloads(opened, &wanted)?;
    ledger.begin_run(
        "reconcile",
        &input_name,
        None,
        Some(&fingerprint::sha256_hex(opened.mapping_text.as_bytes())),
    )?;
    let operation = &opened.mapping.operation;
    let mut max_calls = args.lookups.max_calls;
    let mut token_info_calls = 0;
    if settings.preflight {
        // Look-ups spend the daily quota as inserts do, and leave --quota-reserve unused.
        let answer = client.token_info(token, operation).await;
        if !matches!(answer, Err(TokenInfoError::Unreachable(_))) {
            token_info_calls += 1;
        }
        match answer {
            Ok(info) if info.limit > 0 => {
                let budget = info.left.saturating_sub(settings.quota_reserve);
                max_calls = Some(max_calls.map_or(budget, |max| max.min(budget)));
            }
            Ok(_) => {}
            Err(TokenInfoError::QuotaSpent) => {
                eprintln!(
                    "reconcile: the token's daily quota is spent: nothing looked up; run it \
                     again after the reset"
                );
                ledger.record_input_hash(input_hash)?;
                ledger.finish_run(&[("calls", 0)], Verdict::QuotaStop.code())?;
                return Ok((Report::default(), Verdict::QuotaStop));
            }
            Err(TokenInfoError::Rejected(why)) => {
                anyhow::bail!("the CRM refused the token ({why}): nothing was looked up")
            }
            Err(TokenInfoError::Unreachable(why)) => anyhow::bail!(
                "cannot reach {} ({why}): check --server and the network; nothing was looked up",
                client.url().host_str().unwrap_or_default()
            ),
            Err(TokenInfoError::Unavailable(why)) => {
                tracing::warn!("No token information ({why}): looking up without a quota plan.");
            }
        }
    }
    let options = Options {
        ids: args.lookups.ids,
        max_calls,
        spacing: settings
            .rate
            .filter(|r| *r > 0.0)
            .and_then(|r| std::time::Duration::try_from_secs_f64(1.0 / r).ok()),
        quiet: ui.quiet,
    };
    let mut report = reconcile::reconcile(
        ledger,
        client,
        token,
        operation,
        &payloads,
        &opened.mapping.lookup,
        &options,
    )
    .await?;
    report.token_info_calls = token_info_calls;
    let verdict = match &report.stop {
        Some((StopKind::Quota, _)) => Verdict::QuotaStop,
        Some(_) => Verdict::Aborted,
        None if report.unsettled > 0 => Verdict::RowsNeedAttention,
        None => Verdict::Clean,
    };
    let counts = [
        ("created", report.count("created") as u64),
        ("pending", report.count("pending") as u64),
        ("uncertain", report.count("uncertain") as u64),
        ("calls", report.calls),
    ];
    ledger.record_input_hash(input_hash)?;
    ledger.finish_run(&counts, verdict.code())?;
    let results = results_path(args);
    write_results(&results, &report)
        .with_context(|| format!("could not write {}", results.display()))?;
    if let Some((_, why)) = &report.stop {
        eprintln!("reconcile stopped: {why}");
    }
    if !ui.quiet || report.stop.is_some() {
        eprintln!(
            "reconcile (run {}): {} rows looked up: {} in the CRM (created), {} not in it (the \
             next import sends them), {} still uncertain; {} calls, retries included (planned {}). Each row: {}",
            ledger.run_id(),
            report.rows.len(),
            report.count("created"),
            report.count("pending"),
            report.count("uncertain"),
            report.calls,
            report.planned,
            results.display()
        );
    }
    if args.output.json && !args.reconcile {
        let summary = serde_json::json!({
            "command": "reconcile",
            "input": input_name,
            "run": ledger.run_id(),
            "rows": report.rows.len(),
            "created": report.count("created"),
            "pending": report.count("pending"),
            "uncertain": report.count("uncertain"),
            "calls": report.calls,
            "planned_calls": report.planned,
            "results": results.display().to_string(),
            "stop_reason": report.stop.as_ref().map(|(_, why)| why),
            "exit_code": verdict.code(),
        });
        println!("{summary}");
    }
    Ok((report, verdict))
}

/// The payloads of the input's rows whose key is `wanted` (what each was sent as, when the
/// file is the one imported).
fn payloads(opened: &Opened, wanted: &HashSet<String>) -> anyhow::Result<HashMap<String, Payload>> {
    let mut found = HashMap::new();
    let mut keys = DuplicateKeys::default();
    let rows = opened
        .source
        .reread()
        .with_context(|| "could not read the input again".to_string())?;
    for item in rows {
        if let Checked::Ready { payload, .. } = check::check(item, &opened.mapping, &mut keys)
            && wanted.contains(&payload.key)
        {
            found.insert(payload.key.clone(), payload);
        }
    }
    Ok(found)
}

/// Beside the results file: `<input>.reconciled.csv`, or with `--report X.results.csv`,
/// `X.reconciled.csv`.
fn results_path(args: &ImportArgs) -> PathBuf {
    match &args.output.report {
        Some(report) => {
            let name = report.to_string_lossy();
            let stem = name
                .strip_suffix(".results.csv")
                .or_else(|| name.strip_suffix(".csv"))
                .or_else(|| name.strip_suffix(".xlsx"))
                .unwrap_or(&name);
            PathBuf::from(format!("{stem}.reconciled.csv"))
        }
        None => report::beside(&args.input.input, "reconciled.csv"),
    }
}

/// One line per row looked up: row, key, status (created, pending, uncertain), case id,
/// message. Written whole, then renamed into place.
fn write_results(path: &Path, report: &Report) -> anyhow::Result<()> {
    let partial = PathBuf::from(format!("{}.partial", path.display()));
    {
        let mut writer = csv::Writer::from_path(&partial)?;
        writer.write_record(["row", "key", "status", "case_id", "message"])?;
        for row in &report.rows {
            writer.write_record([
                row.row.to_string().as_str(),
                &row.key,
                row.status,
                row.case_id.as_deref().unwrap_or_default(),
                &row.message,
            ])?;
        }
        writer.flush()?;
    }
    std::fs::rename(&partial, path)?;
    Ok(())
}
