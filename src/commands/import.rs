//! `import`: reader thread → mapping → ledger check → sender → ledger + report.
//!
//! One coordinator task owns the ledger and the report, so every outcome is recorded
//! in one place and in order: `sending` is committed before a request leaves, and
//! the answer after it comes back.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cli::ImportArgs;
use crate::exit::Verdict;
use crate::ledger::location::Wanted;
use crate::ledger::{self, Ledger, Prior};
use crate::mapping::Payload;
use crate::outcome::{Outcome, Status};
use crate::report::{self, Progress, Reporter, Summary, Ui};
use crate::sender::{
    self, Backoff, Client, Delivery, Final, Sender, SenderConfig, StopKind, Token,
};
use crate::simulator::{Running, Scenario};
use crate::source::Cells;

use super::input::{self, Checked};
use super::tokens::{SlotState, TokenPool};

/// A row on its way to the CRM.
struct Outgoing {
    row: u64,
    cells: Cells,
    payload: Payload,
}

/// Rows taken from the reader in one go when a slot frees (skipped and invalid rows do
/// not take the slot, so several may pass before one is sent); bounded so that signals
/// and answers are still looked at.
const REFILL_AT_ONCE: usize = 64;

/// How often the results and errors files are flushed during a run.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Consecutive maybe-processed answers that mean the server is down, not unlucky.
const DOWN_AFTER: u32 = 10;

pub async fn run(args: &ImportArgs, ui: Ui) -> anyhow::Result<Verdict> {
    let started = Instant::now();
    let opened = input::open(&args.input, &args.mapping, args.operation.as_deref())?;
    let rate = args.rate.unwrap_or(if args.simulate { 50.0 } else { 5.0 });
    anyhow::ensure!(
        rate >= 0.0 && rate.is_finite(),
        "--rate {rate} must be a number of requests per second (0 = no limit)"
    );
    anyhow::ensure!(
        args.timeout > 0.0 && args.timeout.is_finite(),
        "--timeout must be a positive number of seconds"
    );

    // The simulator lives as long as this function: it is dropped (stopped) at the end.
    let (simulator, url, tokens) = if args.simulate {
        let sim = Running::start(Scenario {
            keep_cases: false,
            ..Scenario::default()
        })
        .await
        .context("could not start the built-in simulator")?;
        let url = sender::client::insert_url(&sim.url())?;
        let token = Token::new("simulated-token").context("simulator token")?;
        tracing::info!(url = %sim.url(), "Sending to the built-in simulator (no network, no account).");
        (Some(sim), url, vec![token])
    } else {
        let server = args
            .server
            .as_deref()
            .context("--server or --simulate is required")?;
        let url = sender::client::insert_url(server)?;
        let tokens = sender::token::load(
            args.token_file.as_deref(),
            std::env::var("WOLKVOX_TOKEN").ok(),
        )?;
        (None, url, tokens)
    };

    if opened.mapping.key_missing() {
        anyhow::bail!(
            "{}",
            input::no_key_message(&args.mapping, opened.mapping.headers())
        );
    }
    let target = super::target::of(
        args.server.as_deref(),
        args.simulate,
        &opened.mapping.operation,
    )?;
    let legacy = report::beside(&args.input.input, "ledger.sqlite");
    let chosen = ledger::location::open(Wanted {
        target: &target,
        explicit: args.ledger.ledger.as_deref(),
        legacy: Some(&legacy),
        expect_existing: args.ledger.expect_ledger,
    })?;
    let mut warnings = opened.warnings.clone();
    for notice in &chosen.notices {
        tracing::warn!("{notice}");
        warnings.push(notice.clone());
    }
    let ledger_created = chosen.created;
    let mut ledger = chosen.ledger;
    let ledger_path = ledger.path().to_path_buf();
    if ledger_created {
        let message = format!(
            "A new ledger for {target}: {}. No earlier import into this target is known to \
             it, so every valid row will be sent.",
            ledger_path.display()
        );
        if args.simulate {
            tracing::info!("{message}");
        } else {
            tracing::warn!("{message}");
        }
    }
    // A new key definition gives every ticket a new key: all of them would be created again.
    let key = opened.mapping.key_definition();
    match ledger.key_definition()? {
        Some(before) if before != key && !ledger.has_no_cases()? => anyhow::bail!(
            "the mapping's key changed from `key: {before}` to `key: {key}` since the tickets in \
             {} were created: every ticket would get a new key and be created again in the CRM. \
             Put `key: {before}` back in {} (rows a key cannot tell apart can be fixed in the \
             file instead). Nothing was sent.",
            ledger_path.display(),
            args.mapping.display()
        ),
        Some(before) if before == key => {}
        _ => ledger.set_key_definition(key)?,
    }
    // The input's hash lets `runs` show which file each run read (a changed export shows).
    let input_hash = file_sha256(&args.input.input).ok();
    ledger.begin_run(
        "import",
        &args.input.input.display().to_string(),
        input_hash.as_deref(),
        Some(&sha256_hex(opened.mapping_text.as_bytes())),
    )?;

    let headers = opened.source.headers.clone();
    let mut reporter = input::reporter(&args.input, &args.output, &opened.source)?;
    let client = Client::new(url, Duration::from_secs_f64(args.timeout))
        .context("could not build the HTTP client")?;
    let mut pool = TokenPool::new(tokens, usize::from(args.concurrency));
    let mut early_stop = None;
    if !args.no_preflight && !args.simulate {
        let plan = pool
            .preflight(&client, &opened.mapping.operation, args.quota_reserve)
            .await
            .map_err(|why| {
                anyhow::anyhow!(
                    "cannot reach {} ({why}): check --server and the network; nothing was sent",
                    client.url().host_str().unwrap_or_default()
                )
            })?;
        if plan.known {
            let rows = super::input::count_rows(&args.input).unwrap_or(0);
            let today = plan.calls_left_today.min(rows);
            let days = if plan.calls_per_day > 0 {
                rows.div_ceil(plan.calls_per_day)
            } else {
                0
            };
            tracing::info!(
                rows,
                calls_left_today = plan.calls_left_today,
                calls_per_day = plan.calls_per_day,
                "Quota plan: up to {rows} rows to send; {today} can go today; at this quota the \
                 whole file needs about {days} day(s) (rows created earlier are skipped)."
            );
        }
        if !pool.usable() {
            early_stop = Some(pool.last_refusal.clone().unwrap_or_default());
        }
    }
    let sender = Sender::new(
        client,
        SenderConfig {
            rate: (rate > 0.0).then_some(rate),
            max_retries: args.max_retries,
            retry_ambiguous: args.retry_ambiguous,
            backoff: Backoff::default(),
        },
    );

    let source_info = opened.source.info.clone();
    // A first run over an empty ledger, where one file cannot hold a key twice (the
    // duplicate check refuses the second), has no earlier answer to look up.
    let nothing_prior = ledger.has_no_cases()?
        && opened.mapping.on_duplicate_key == crate::mapping::spec::DuplicatePolicy::Reject;
    let mut rows = input::CheckedRows::spawn(opened.source.rows, opened.mapping.clone())
        .context("could not start the reader threads")?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let interrupted = Arc::new(AtomicBool::new(false));
    let signals = tokio::spawn(watch_signals(stop_tx.clone(), interrupted.clone()));

    let mut run = Coordinator {
        args,
        ledger: &ledger,
        reporter: &mut reporter,
        headers: &headers,
        stop_tx: &stop_tx,
        stop: None,
        sent: 0,
        consecutive_maybe: 0,
        progress: Progress::new(ui.quiet, opened.source.read_bytes.clone()),
        pool: &mut pool,
        requeued: VecDeque::new(),
        answered: Vec::new(),
        flushed: Instant::now(),
        nothing_prior,
    };
    if let Some(answer) = early_stop {
        run.out_of_tokens(&answer);
    }
    let mut in_flight: JoinSet<(usize, Outgoing, Delivery)> = JoinSet::new();
    let mut reader_done = false;
    loop {
        // Rows given back by a dropped token go first, to another token.
        while let Some(slot) = run.next_slot() {
            let Some(outgoing) = run.requeued.pop_front() else {
                break;
            };
            spawn(&mut in_flight, &sender, &stop_rx, &mut run, slot, outgoing);
        }
        if run.stop.is_some() {
            run.flush_requeued()?;
        }
        if reader_done && in_flight.is_empty() && run.requeued.is_empty() {
            break;
        }
        if run.stop.is_none() && !run.pool.usable() {
            run.out_of_tokens("");
            continue;
        }
        // Nothing recorded waits in memory while the run waits.
        run.settle()?;
        let can_take = run.stop.is_some() || run.next_slot().is_some();
        tokio::select! {
            biased;
            Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                match joined {
                    Ok((slot, outgoing, delivery)) => run.delivered(slot, outgoing, delivery)?,
                    Err(e) => anyhow::bail!("a send task failed: {e}"),
                }
                // Refill the freed slot at once when a row is ready: its `sending` mark
                // then commits together with the answer just recorded.
                for _ in 0..REFILL_AT_ONCE {
                    if reader_done || !run.requeued.is_empty() || run.stop.is_some() {
                        break;
                    }
                    let Some(slot) = run.next_slot() else { break };
                    match rows.try_next() {
                        std::task::Poll::Pending => break,
                        std::task::Poll::Ready(None) => reader_done = true,
                        std::task::Poll::Ready(Some(checked)) => {
                            if let Some(outgoing) = run.admit(checked)? {
                                spawn(&mut in_flight, &sender, &stop_rx, &mut run, slot, outgoing);
                            }
                        }
                    }
                }
            }
            item = rows.next(), if !reader_done && can_take && run.requeued.is_empty() => {
                match item {
                    None => reader_done = true,
                    Some(checked) => {
                        if let Some(outgoing) = run.admit(checked)?
                            && let Some(slot) = run.next_slot()
                        {
                            spawn(&mut in_flight, &sender, &stop_rx, &mut run, slot, outgoing);
                        }
                    }
                }
            }
        }
        if interrupted.load(Ordering::SeqCst) && run.stop.is_none() {
            run.stop = Some((Verdict::Interrupted, "interrupted (Ctrl-C)".into()));
        }
    }
    run.settle()?;
    run.reporter.flush()?;
    let token_uses = run.pool.uses();
    run.progress.finish();
    signals.abort();
    rows.join()?;

    let stop = run.stop.clone();
    let tally = reporter.tally().clone();
    let verdict = match &stop {
        Some((verdict, _)) => *verdict,
        None if tally.needing_attention() > 0 || tally.get(Status::Pending) > 0 => {
            Verdict::RowsNeedAttention
        }
        None => Verdict::Clean,
    };
    let counts: Vec<(&str, u64)> = Status::ALL
        .into_iter()
        .map(|s| (s.as_str(), tally.get(s)))
        .collect();
    ledger.finish_run(&counts, verdict.code())?;
    drop(simulator);

    let input_name = args.input.input.display().to_string();
    let ledger_name = ledger_path.display().to_string();
    let hint_args = super::target::args_for_hints(
        args.server.as_deref(),
        args.simulate,
        &args.mapping,
        args.ledger.ledger.as_deref(),
    );
    let summary = Summary {
        command: "import",
        input: &input_name,
        tally: &tally,
        elapsed: started.elapsed(),
        paths: reporter.paths(),
        source: &source_info,
        warnings: &warnings,
        stop_reason: stop.as_ref().map(|(_, reason)| reason.as_str()),
        exit_code: verdict.code(),
        ledger: Some(report::LedgerNote {
            path: &ledger_name,
            created: ledger_created,
            target_args: &hint_args,
        }),
        tokens: if args.simulate { &[] } else { &token_uses },
    };
    report::finish(&summary, args.output.json, ui)?;
    Ok(verdict)
}

fn spawn(
    in_flight: &mut JoinSet<(usize, Outgoing, Delivery)>,
    sender: &Sender,
    stop_rx: &watch::Receiver<bool>,
    run: &mut Coordinator<'_>,
    slot: usize,
    outgoing: Outgoing,
) {
    run.pool.start(slot);
    let token = run.pool.token(slot);
    let sender = sender.clone();
    let mut stop = stop_rx.clone();
    in_flight.spawn(async move {
        let delivery = sender.deliver(&outgoing.payload, &token, &mut stop).await;
        (slot, outgoing, delivery)
    });
}

struct Coordinator<'a> {
    args: &'a ImportArgs,
    pool: &'a mut TokenPool,
    /// Rows whose token was dropped mid-run: nothing was stored, another token sends them.
    requeued: VecDeque<Outgoing>,
    /// Answers recorded in the ledger's open transaction, whose results lines wait for
    /// its commit (see `settle`).
    answered: Vec<(Outcome, Cells)>,
    /// When the results and errors files were last flushed.
    flushed: Instant,
    /// No row can have an earlier answer in the ledger: skip the lookup.
    nothing_prior: bool,
    ledger: &'a Ledger,
    reporter: &'a mut Reporter,
    headers: &'a [String],
    stop_tx: &'a watch::Sender<bool>,
    /// Set once the run must send nothing more: how it will end, and why.
    stop: Option<(Verdict, String)>,
    sent: u64,
    consecutive_maybe: u32,
    progress: Progress,
}

impl Coordinator<'_> {
    fn record(&mut self, outcome: Outcome, cells: &Cells) -> anyhow::Result<()> {
        self.reporter.record(&outcome, cells, self.headers)?;
        Ok(())
    }

    /// Commit the ledger, then write the results lines of what it now holds: after a
    /// kill -9 the results file never says more than the ledger. The files are flushed a
    /// few times a second (and at the end), not once a row: the ledger is what a re-run
    /// trusts, and a write per row was a tenth of the importer's own cost.
    fn settle(&mut self) -> anyhow::Result<()> {
        self.ledger.commit()?;
        for (outcome, cells) in std::mem::take(&mut self.answered) {
            self.record(outcome, &cells)?;
        }
        if self.flushed.elapsed() >= FLUSH_EVERY {
            self.reporter.flush()?;
            self.flushed = Instant::now();
        }
        Ok(())
    }

    /// Send nothing more. An abort also cuts short the retries of rows in flight; a
    /// quota stop lets them finish, since their calls were already counted.
    fn halt(&mut self, verdict: Verdict, reason: String) {
        if self.stop.is_none() {
            if verdict == Verdict::QuotaStop {
                tracing::warn!(%reason, "Stopping the run.");
            } else {
                tracing::error!(%reason, "Stopping the run.");
            }
            self.stop = Some((verdict, reason));
        }
        if verdict != Verdict::QuotaStop {
            let _ = self.stop_tx.send(true);
        }
    }

    fn next_slot(&self) -> Option<usize> {
        if self.stop.is_some() {
            return None;
        }
        self.pool.pick()
    }

    /// Every token is rejected or at its quota: stop, resumably if quota was the reason.
    fn out_of_tokens(&mut self, last_answer: &str) {
        let answer = if last_answer.is_empty() {
            String::new()
        } else {
            format!(" (last answer: {last_answer})")
        };
        if self.pool.exhausted_by_quota() {
            let reset = self
                .pool
                .hours_to_reset
                .as_deref()
                .map(|h| format!(" (the CRM said it resets in {h} h)"))
                .unwrap_or_default();
            self.halt(
                Verdict::QuotaStop,
                format!(
                    "the daily quota is spent{answer}, less the reserve of {} calls: run again \
                     after the reset{reset}; the ledger continues where this run stopped",
                    self.args.quota_reserve
                ),
            );
        } else {
            self.halt(
                Verdict::Aborted,
                format!(
                    "the CRM rejected the token{answer}: check WOLKVOX_TOKEN / --token-file (an \
                     internal token of this CRM)"
                ),
            );
        }
    }

    /// Once stopped, rows waiting for another token are pending.
    fn flush_requeued(&mut self) -> anyhow::Result<()> {
        let reason = self
            .stop
            .as_ref()
            .map(|(_, r)| r.clone())
            .unwrap_or_default();
        while let Some(outgoing) = self.requeued.pop_front() {
            self.ledger.record(
                &outgoing.payload.key,
                Status::Pending,
                None,
                None,
                0,
                "not sent",
            )?;
            let outcome = Outcome::new(outgoing.row, outgoing.payload.key, Status::Pending)
                .with_message(format!("not sent: {reason}"));
            self.answered.push((outcome, outgoing.cells));
        }
        Ok(())
    }

    /// Decide what to do with a checked row: record it now, or hand it to the sender.
    fn admit(&mut self, checked: Checked) -> anyhow::Result<Option<Outgoing>> {
        let (row, cells, payload) = match checked {
            Checked::Invalid {
                row,
                cells,
                key,
                message,
            } => {
                self.record(
                    Outcome::new(row, key, Status::Invalid).with_message(message),
                    &cells,
                )?;
                return Ok(None);
            }
            Checked::Ready {
                row,
                cells,
                payload,
            } => (row, cells, payload),
        };
        let prior = if self.nothing_prior {
            None
        } else {
            self.ledger.prior(&payload.key)?
        };
        match prior {
            Some(Prior::Created { case_id, run }) => {
                let mut outcome = Outcome::new(row, payload.key, Status::Skipped)
                    .with_message(format!("already created by run {run}"));
                outcome.case_id = case_id;
                self.record(outcome, &cells)?;
                return Ok(None);
            }
            Some(Prior::InDoubt { run }) if !self.args.resend_uncertain => {
                let outcome =
                    Outcome::new(row, payload.key, Status::Uncertain).with_message(format!(
                        "run {run} sent it but got no answer: look it up in the CRM and record \
                         what you find with `wolkvox-import resolve`; it is sent again only once \
                         recorded missing"
                    ));
                self.record(outcome, &cells)?;
                return Ok(None);
            }
            _ => {}
        }
        if let Some((_, reason)) = &self.stop {
            let outcome = Outcome::new(row, payload.key, Status::Pending)
                .with_message(format!("not sent: {reason}"));
            self.record(outcome, &cells)?;
            return Ok(None);
        }
        if self.args.limit.is_some_and(|limit| self.sent >= limit) {
            let outcome = Outcome::new(row, payload.key, Status::Pending)
                .with_message("not sent: --limit reached");
            self.record(outcome, &cells)?;
            return Ok(None);
        }
        // Durable before the request leaves: a crash from here on leaves it "sending".
        self.ledger.mark_sending(&payload.key, row)?;
        self.sent += 1;
        self.progress.update(self.reporter.tally(), 1);
        Ok(Some(Outgoing {
            row,
            cells,
            payload,
        }))
    }

    fn delivered(
        &mut self,
        slot: usize,
        outgoing: Outgoing,
        delivery: Delivery,
    ) -> anyhow::Result<()> {
        self.pool.finish(slot, delivery.attempts);
        // A token refused by the CRM stored nothing: drop the token, and if another one is
        // left, the row goes out again with it.
        if let Final::Stop(kind @ (StopKind::TokenRejected | StopKind::Quota)) = &delivery.end {
            let fingerprint = self.pool.token(slot).fingerprint();
            let state = if *kind == StopKind::Quota {
                SlotState::Exhausted
            } else {
                SlotState::Rejected
            };
            self.pool.mark(slot, state);
            if self.pool.len() > 1 {
                tracing::warn!(
                    token = %fingerprint,
                    answer = %delivery.message,
                    live = self.pool.live_count(),
                    "Dropping this token for the rest of the run."
                );
            }
            if self.pool.usable() && self.stop.is_none() {
                self.requeued.push_back(outgoing);
                return Ok(());
            }
        }
        let Outgoing {
            row,
            cells,
            payload,
        } = outgoing;
        let payload = &payload;
        let (status, case_id) = match &delivery.end {
            Final::Created(id) => (Status::Created, id.clone()),
            Final::Rejected => (Status::Rejected, None),
            Final::Failed => (Status::Failed, None),
            Final::Uncertain => (Status::Uncertain, None),
            Final::NotSent | Final::Stop(_) => (Status::Pending, None),
        };
        self.ledger.record(
            &payload.key,
            status,
            case_id.as_deref(),
            delivery.http_status,
            delivery.attempts,
            &delivery.message,
        )?;
        match &delivery.end {
            Final::Stop(StopKind::TokenRejected | StopKind::Quota) => {
                if self.stop.is_none() && !self.pool.usable() {
                    self.out_of_tokens(&delivery.message);
                }
            }
            Final::Stop(StopKind::WrongEndpoint) => {
                self.halt(Verdict::Aborted, delivery.message.clone())
            }
            // Rows that failed after every retry count too: a server that cannot be
            // reached fails each row the same way.
            Final::Uncertain | Final::Failed => {
                self.consecutive_maybe += 1;
                if self.consecutive_maybe >= DOWN_AFTER {
                    self.halt(
                        Verdict::Aborted,
                        format!(
                            "{DOWN_AFTER} rows in a row failed or got no usable answer: the \
                             server looks down (last: {})",
                            delivery.message
                        ),
                    );
                }
            }
            _ => self.consecutive_maybe = 0,
        }
        let mut outcome =
            Outcome::new(row, payload.key.clone(), status).with_message(delivery.message);
        outcome.case_id = case_id;
        outcome.http_status = delivery.http_status;
        outcome.attempts = delivery.attempts;
        self.answered.push((outcome, cells));
        self.progress.update(self.reporter.tally(), 0);
        Ok(())
    }
}

/// First Ctrl-C or SIGTERM: stop sending, finish what is in flight. Second: exit now
/// (the ledger is consistent at every commit).
async fn watch_signals(stop: watch::Sender<bool>, interrupted: Arc<AtomicBool>) {
    let mut count = 0;
    loop {
        signal().await;
        count += 1;
        if count == 1 {
            tracing::warn!(
                "Interrupted: no new requests; waiting for those in flight. Ctrl-C again to quit at once."
            );
            interrupted.store(true, Ordering::SeqCst);
            let _ = stop.send(true);
        } else {
            std::process::exit(i32::from(crate::exit::INTERRUPTED));
        }
    }
}

#[cfg(unix)]
async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn signal() {
    let _ = tokio::signal::ctrl_c().await;
}

fn file_sha256(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
