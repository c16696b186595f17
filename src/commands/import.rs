//! `import`: reader thread → mapping → ledger check → sender → ledger + report.
//!
//! One coordinator task owns the ledger and the report, so every outcome is recorded
//! in one place and in order: `sending` is committed before a request leaves, and
//! the answer after it comes back.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cli::{Durability, ImportArgs};
use crate::exit::Verdict;
use crate::ledger::location::Wanted;
use crate::ledger::{self, Ledger, LedgerError, Prior};
use crate::mapping::Payload;
use crate::outcome::{Outcome, Status};
use crate::report::metrics::{self, RunMetrics};
use crate::report::{self, Progress, Reporter, Summary, Ui};
use crate::sender::{
    self, Backoff, Client, Delivery, Final, Sender, SenderConfig, StopKind, Token,
};
use crate::simulator::{Running, Scenario};
use crate::source::Cells;

use super::input::{self, Checked};
use crate::sender::pool::{SlotState, TokenPool};

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

/// A sync of the ledger's WAL in progress: the commit count it covers, and its task.
type Syncing = (u64, tokio::task::JoinHandle<Result<Duration, LedgerError>>);

/// The end of the sync in progress; never, when there is none.
async fn wait_for(
    syncing: &mut Option<Syncing>,
) -> (
    u64,
    Result<Result<Duration, LedgerError>, tokio::task::JoinError>,
) {
    match syncing {
        Some((covers, task)) => {
            let synced = task.await;
            let covers = *covers;
            *syncing = None;
            (covers, synced)
        }
        None => std::future::pending().await,
    }
}

/// A running average that follows a change within some ten samples.
fn average(mean: f64, sample: f64) -> f64 {
    if mean == 0.0 {
        sample
    } else {
        0.8 * mean + 0.2 * sample
    }
}

/// The least time of sending one sync should cover (see `size_ahead`).
const BATCH_WINDOW: Duration = Duration::from_millis(2);

/// Most rows marked `sending` ahead of a free slot, waiting for their sync: the bound,
/// with the rows in flight, on what a power cut can leave uncertain.
const MAX_AHEAD: usize = 64;

/// How often the results and errors files are flushed during a run.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Consecutive maybe-processed answers that mean the server is down, not unlucky.
const DOWN_AFTER: u32 = 10;

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
    if args.simulate && args.server.is_some() {
        tracing::warn!(
            "--simulate: the server given (--server or WOLKVOX_SERVER) is not used; nothing is \
             sent to it"
        );
    }
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
    // `server|operation`, as `runs` names a target.
    figures.target = Some(target.id());
    let legacy = report::beside(&args.input.input, "ledger.sqlite");
    let chosen = ledger::location::open(Wanted {
        target: &target,
        explicit: args.ledger.ledger.as_deref(),
        legacy: Some(&legacy),
        expect_existing: args.ledger.expect_ledger,
    })?;
    let mut warnings = opened.warnings.clone();
    if args.concurrency > 2 {
        let warning = format!(
            "--concurrency {}: Wolkvox refuses a third simultaneous request per token (403 \
             EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS), and each refused call still costs \
             quota; keep 2, and give more tokens (--token-file) for more requests in flight",
            args.concurrency
        );
        tracing::warn!("{warning}");
        warnings.push(warning);
    }
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
    input::check_key_definition(&args.input, &args.mapping, &opened, &ledger, &mut warnings)?;
    // The input's hash lets `runs` show which file each run read (a changed export shows).
    let input_hash = file_sha256(&args.input.input).ok();
    ledger.begin_run(
        "import",
        &args.input.input.display().to_string(),
        input_hash.as_deref(),
        Some(&sha256_hex(opened.mapping_text.as_bytes())),
    )?;

    let mut reporter = input::reporter(&args.input, &args.output, &opened.source)?;
    let client = Client::new(url, Duration::from_secs_f64(args.timeout))
        .context("could not build the HTTP client")?;
    let mut pool = TokenPool::new(tokens, usize::from(args.concurrency));
    let mut early_stop = None;
    if !args.no_preflight && !args.simulate {
        // What this run would send, before any call: a header-only file spends none.
        let rows = input::plan_rows(
            &args.input,
            &opened.mapping,
            &ledger,
            args.resend_uncertain,
            args.limit,
        );
        let rows = match rows {
            Ok(rows) => Some(rows),
            Err(e) => {
                tracing::warn!(
                    "No quota plan: the file could not be read ahead ({}).",
                    super::error_text(&e)
                );
                None
            }
        };
        if rows.is_some_and(|r| r.rows == 0) {
            tracing::info!("No data rows: no token-information call made.");
        } else {
            let plan = pool
                .preflight(&client, &opened.mapping.operation, args.quota_reserve)
                .await
                .map_err(|why| {
                    anyhow::anyhow!(
                        "cannot reach {} ({why}): check --server and the network; nothing was \
                         sent",
                        client.url().host_str().unwrap_or_default()
                    )
                })?;
            if plan.known
                && let Some(rows) = rows
            {
                let send = rows.to_send;
                let today = plan.calls_left_today.min(send);
                let days = if plan.calls_per_day > 0 {
                    send.div_ceil(plan.calls_per_day)
                } else {
                    0
                };
                tracing::info!(
                    to_send = send,
                    invalid = rows.invalid,
                    done_before = rows.done_before,
                    calls_left_today = plan.calls_left_today,
                    calls_per_day = plan.calls_per_day,
                    "Quota plan: {send} rows to send ({} invalid and {} created or left \
                     uncertain by earlier runs are not); {today} can go today; at this quota \
                     they need about {days} day(s), retries aside.",
                    rows.invalid,
                    rows.done_before
                );
            }
            if !pool.usable() {
                early_stop = Some(pool.last_refusal.clone().unwrap_or_default());
            }
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
    let interrupted = Arc::new(AtomicU8::new(NO_SIGNAL));
    let signals = tokio::spawn(watch_signals(stop_tx.clone(), interrupted.clone()));

    let fast = args.durability.unwrap_or(if args.simulate {
        Durability::Fast
    } else {
        Durability::Full
    }) == Durability::Fast;
    let syncer = if fast { None } else { Some(ledger.syncer()?) };
    let mut run = Coordinator {
        args,
        ledger: &ledger,
        reporter: &mut reporter,
        stop_tx: &stop_tx,
        stop: None,
        rerun_when: None,
        sent: 0,
        rows_sent: 0,
        consecutive_maybe: 0,
        progress: Progress::new(ui.quiet, opened.source.read_bytes.clone()),
        pool: &mut pool,
        requeued: VecDeque::new(),
        ready: VecDeque::new(),
        durable: 0,
        ahead: 0,
        service_secs: 0.0,
        sync_secs: 0.0,
        fast,
        answered: Vec::new(),
        flushed: Instant::now(),
        nothing_prior,
        broken: None,
        report_broken: false,
        departed: 0,
    };
    if let Some(answer) = early_stop {
        run.out_of_tokens(&answer);
    }
    let mut in_flight: JoinSet<(usize, Outgoing, Delivery, Duration)> = JoinSet::new();
    let mut syncing: Option<Syncing> = None;
    let mut reader_done = false;
    loop {
        if syncer.is_none() {
            run.durable = run.ledger.committed();
        }
        // Rows given back by a dropped token go first, to another token; then the rows
        // whose `sending` mark is on disk, in file order.
        while let Some(slot) = run.next_slot() {
            let outgoing = match run.requeued.pop_front() {
                Some(outgoing) => outgoing,
                None if run
                    .ready
                    .front()
                    .is_some_and(|(seq, _)| *seq <= run.durable) =>
                {
                    match run.ready.pop_front() {
                        Some((_, outgoing)) => outgoing,
                        None => break,
                    }
                }
                None => break,
            };
            spawn(&mut in_flight, &sender, &stop_rx, &mut run, slot, outgoing);
        }
        if run.stop.is_some() {
            run.flush_unsent();
        }
        if reader_done && in_flight.is_empty() && run.requeued.is_empty() && run.ready.is_empty() {
            break;
        }
        if run.stop.is_none() && !run.pool.usable() {
            run.out_of_tokens("");
            continue;
        }
        // One sync at a time; it covers every commit made before it starts.
        if let Some(syncer) = &syncer
            && syncing.is_none()
            && run.ready.front().is_some_and(|(seq, _)| *seq > run.durable)
        {
            // The batch of marks made since the last sync, committed together.
            run.settle_now();
            let covers = run.ledger.committed();
            let syncer = syncer.clone();
            syncing = Some((
                covers,
                tokio::task::spawn_blocking(move || {
                    let started = Instant::now();
                    syncer.sync().map(|()| started.elapsed())
                }),
            ));
        }
        // Nothing recorded waits in memory while the run waits.
        run.settle();
        let can_take = run.stop.is_some() || run.wants_rows();
        tokio::select! {
            biased;
            (covers, synced) = wait_for(&mut syncing) => {
                match synced {
                    Ok(Ok(took)) => run.synced(covers, took),
                    Ok(Err(e)) => run.break_down(e.into()),
                    Err(e) => run.break_down(anyhow::anyhow!("the ledger sync failed: {e}")),
                }
            }
            Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                match joined {
                    Ok((slot, outgoing, delivery, took)) => {
                        run.served(took);
                        run.delivered(slot, outgoing, delivery)
                    }
                    Err(e) => anyhow::bail!("a send task failed: {e}"),
                }
                // Take the rows that are ready at once: their marks then commit (and sync)
                // together, and the freed slot is refilled without a wait.
                for _ in 0..REFILL_AT_ONCE {
                    if reader_done || !run.requeued.is_empty() || !run.wants_rows() {
                        break;
                    }
                    match rows.try_next() {
                        std::task::Poll::Pending => break,
                        std::task::Poll::Ready(None) => reader_done = true,
                        std::task::Poll::Ready(Some(checked)) => run.admit(checked),
                    }
                }
            }
            item = rows.next(), if !reader_done && can_take && run.requeued.is_empty() => {
                match item {
                    None => reader_done = true,
                    Some(checked) => run.admit(checked),
                }
            }
        }
        let signal = interrupted.load(Ordering::SeqCst);
        if signal != NO_SIGNAL && run.stop.is_none() {
            run.stop = Some((
                Verdict::Interrupted,
                format!("interrupted ({})", signal_name(signal)),
            ));
        }
    }
    if let Some((_, task)) = syncing.take() {
        let _ = task.await;
    }
    tracing::debug!(
        sync_ms = run.sync_secs * 1000.0,
        request_ms = run.service_secs * 1000.0,
        ahead = run.ahead,
        "Durable marks: the last averages."
    );
    run.settle();
    if let Err(e) = run.reporter.flush() {
        run.break_down(e.into());
    }
    let broken = run.broken.take();
    let token_uses = run.pool.uses();
    run.progress.finish();
    signals.abort();
    rows.join()?;

    let stop = run.stop.clone();
    let rerun_when = run.rerun_when.clone();
    let sent = run.departed;
    let rows_sent = run.rows_sent;
    let tally = reporter.tally().clone();
    figures.tally = Some(tally.clone());
    figures.sent = rows_sent;
    figures.tokens = if args.simulate {
        Vec::new()
    } else {
        token_uses.clone()
    };
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
    if broken.is_none() {
        ledger.finish_run(&counts, verdict.code())?;
        // The last answers on disk too: a power cut after the exit loses nothing.
        if let Some(syncer) = &syncer {
            syncer.sync()?;
        }
    }
    drop(simulator);
    if let Some(error) = &broken
        && sent == 0
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
        sent: Some(rows_sent),
        rerun_when: rerun_when.as_deref(),
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
    in_flight: &mut JoinSet<(usize, Outgoing, Delivery, Duration)>,
    sender: &Sender,
    stop_rx: &watch::Receiver<bool>,
    run: &mut Coordinator<'_>,
    slot: usize,
    outgoing: Outgoing,
) {
    run.pool.start(slot);
    run.departed += 1;
    let token = run.pool.token(slot);
    let sender = sender.clone();
    let mut stop = stop_rx.clone();
    in_flight.spawn(async move {
        let started = Instant::now();
        let delivery = sender.deliver(&outgoing.payload, &token, &mut stop).await;
        (slot, outgoing, delivery, started.elapsed())
    });
}

struct Coordinator<'a> {
    args: &'a ImportArgs,
    pool: &'a mut TokenPool,
    /// Rows whose token was dropped mid-run: nothing was stored, another token sends them.
    requeued: VecDeque<Outgoing>,
    /// Rows marked `sending`, each with the commit of its mark: it may leave once a sync
    /// covering that commit has finished (`durable`).
    ready: VecDeque<(u64, Outgoing)>,
    /// Commits known to be on disk.
    durable: u64,
    /// Rows that may wait marked beyond one per slot: none while the CRM answers fewer
    /// rows than the disk syncs; twice the answers of a sync when it answers faster, so
    /// it never waits for the disk; at most `MAX_AHEAD`.
    ahead: usize,
    /// Running averages of how long one request takes (permit wait included) and one
    /// sync, in seconds.
    service_secs: f64,
    sync_secs: f64,
    /// `--durability fast`: a mark may leave as soon as it is committed.
    fast: bool,
    /// The ledger or a results file could not be written: nothing more is sent or
    /// recorded, and the run ends with exit 3 (1 if nothing had been sent).
    broken: Option<anyhow::Error>,
    /// The results or errors file could not be written: no more lines are tried.
    report_broken: bool,
    /// Requests that left (or were handed to the sender): after the first, a failure
    /// ends the run with exit 3, not 1.
    departed: u64,
    /// Answers recorded in the ledger's open transaction, whose results lines wait for
    /// its commit (see `settle`).
    answered: Vec<(Outcome, Cells)>,
    /// When the results and errors files were last flushed.
    flushed: Instant,
    /// No row can have an earlier answer in the ledger: skip the lookup.
    nothing_prior: bool,
    ledger: &'a Ledger,
    reporter: &'a mut Reporter,
    stop_tx: &'a watch::Sender<bool>,
    /// Set once the run must send nothing more: how it will end, and why.
    stop: Option<(Verdict, String)>,
    /// What to do before the rows left pending can go, when the stop says more than
    /// "run again" (a token to fix, a quota reset to wait for).
    rerun_when: Option<String>,
    sent: u64,
    /// Rows a request was made for (answered, or given up on after retries).
    rows_sent: u64,
    consecutive_maybe: u32,
    progress: Progress,
}

impl Coordinator<'_> {
    fn record(&mut self, outcome: Outcome, cells: &Cells) {
        if self.report_broken {
            return;
        }
        if let Err(e) = self.reporter.record(&outcome, cells) {
            self.report_broken = true;
            self.break_down(e.into());
        }
    }

    /// Stop at once after a failed write: no request leaves without its durable mark,
    /// and nothing claims more than was recorded. Said once, naming the file.
    fn break_down(&mut self, error: anyhow::Error) {
        if self.broken.is_some() {
            return;
        }
        let reason = format!(
            "{}; stopped sending at once (rows in flight, and answers not yet recorded, are \
             left uncertain): make room \
             or fix the file, then run the same command again, it continues where this run \
             stopped",
            super::error_text(&error)
        );
        self.broken = Some(error);
        self.halt(Verdict::Aborted, reason);
    }

    /// Commit the ledger, then write the results lines of what it now holds: after a
    /// kill -9 the results file never says more than the ledger. The files are flushed a
    /// few times a second (and at the end), not once a row: the ledger is what a re-run
    /// trusts, and a write per row was a tenth of the importer's own cost.
    fn settle(&mut self) {
        // Marks waiting for a sync are committed as one batch when it starts (the loop's
        // `settle_now`); committing them one by one would cost SQLite's locks for each.
        let marks_waiting = !self.fast
            && self
                .ready
                .back()
                .is_some_and(|(seq, _)| *seq > self.ledger.committed());
        if !marks_waiting {
            self.settle_now();
        }
    }

    /// Commit the ledger now, then write the results lines it holds.
    fn settle_now(&mut self) {
        if self.broken.is_none()
            && let Err(e) = self.ledger.commit()
        {
            self.answered_lost();
            self.break_down(e.into());
        }
        for (outcome, cells) in std::mem::take(&mut self.answered) {
            self.record(outcome, &cells);
        }
        if self.flushed.elapsed() >= FLUSH_EVERY {
            if !self.report_broken
                && let Err(e) = self.reporter.flush()
            {
                self.report_broken = true;
                self.break_down(e.into());
            }
            self.flushed = Instant::now();
        }
    }

    /// A sync covering the first `covers` commits finished.
    fn synced(&mut self, covers: u64, took: Duration) {
        self.durable = self.durable.max(covers);
        self.sync_secs = average(self.sync_secs, took.as_secs_f64());
        self.size_ahead();
    }

    /// A request took `took`, from its spawn to its answer.
    fn served(&mut self, took: Duration) {
        self.service_secs = average(self.service_secs, took.as_secs_f64());
        self.size_ahead();
    }

    /// Enough rows marked ahead that the slots never wait for the disk: the rows they send
    /// during two syncs (a row marked while one sync runs waits for the next), and at least
    /// those of `BATCH_WINDOW`, so a CRM that answers in a fraction of a millisecond gets
    /// one sync per batch of rows, not per row. Zero while a request takes longer than
    /// that (the next row of each slot suffices): at a real CRM's pace a crash leaves only
    /// the rows in flight and those next rows uncertain.
    fn size_ahead(&mut self) {
        if self.service_secs <= 0.0 || self.sync_secs <= 0.0 {
            return;
        }
        let slots = (self.pool.in_flight() + self.pool.free_slots()) as f64;
        let window = self.sync_secs.max(BATCH_WINDOW.as_secs_f64());
        let per_sync = slots * window / self.service_secs;
        self.ahead = if per_sync < 1.0 {
            0
        } else {
            ((2.0 * per_sync).ceil() as usize).min(MAX_AHEAD)
        };
    }

    /// Whether to take another row from the reader: room in a slot, or in the rows that
    /// may wait for their sync.
    fn wants_rows(&self) -> bool {
        // With durable marks, each busy slot has its next row marked (and synced while its
        // request is out), so a slot that frees never waits for the disk.
        let ahead = if self.fast {
            0
        } else {
            self.pool.in_flight() + self.ahead
        };
        self.stop.is_none() && self.ready.len() < self.pool.free_slots() + ahead
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
                .map(|h| format!(" (the CRM said it resets in {h} h{})", reset_at(h)))
                .unwrap_or_default();
            self.rerun_when = Some(format!("after the quota resets{reset}, run"));
            self.halt(
                Verdict::QuotaStop,
                format!(
                    "the daily quota is spent{answer}, less the reserve of {} calls: run again \
                     after the reset{reset}; the ledger continues where this run stopped",
                    self.args.quota_reserve
                ),
            );
        } else {
            self.rerun_when = Some(
                "fix the token first (WOLKVOX_TOKEN or --token-file: an internal token of this \
                 CRM, CRM → Configuration → Wolkvox Integration → Tokens), then run"
                    .into(),
            );
            self.halt(
                Verdict::Aborted,
                format!(
                    "the CRM rejected the token{answer}: check WOLKVOX_TOKEN / --token-file (an \
                     internal token of this CRM)"
                ),
            );
        }
    }

    /// Once stopped, rows not sent (waiting for another token, or for their sync) are
    /// pending: their marks say so, and a re-run sends them.
    fn flush_unsent(&mut self) {
        let reason = self
            .stop
            .as_ref()
            .map(|(_, r)| r.clone())
            .unwrap_or_default();
        let unsent: Vec<Outgoing> = self
            .requeued
            .drain(..)
            .chain(self.ready.drain(..).map(|(_, o)| o))
            .collect();
        for outgoing in unsent {
            if self.broken.is_none()
                && let Err(e) = self.ledger.record(
                    &outgoing.payload.key,
                    Status::Pending,
                    None,
                    None,
                    0,
                    "not sent",
                )
            {
                self.break_down(e.into());
            }
            // Marked `sending` but never sent: with the ledger broken, a mark that was
            // committed stays, and the next run lists the row as uncertain although it
            // never left.
            let message = if self.broken.is_some() {
                format!(
                    "not sent ({reason}); the ledger could not record that: it never left, so \
                     if the next run lists it as uncertain, `resolve --missing` it"
                )
            } else {
                format!("not sent: {reason}")
            };
            let outcome = Outcome::new(outgoing.row, outgoing.payload.key, Status::Pending)
                .with_message(message);
            self.answered.push((outcome, outgoing.cells));
        }
    }

    /// Decide what to do with a checked row: record it now, or mark it `sending` and
    /// queue it until that mark is on disk.
    fn admit(&mut self, checked: Checked) {
        let (row, cells, payload) = match checked {
            Checked::Invalid {
                row,
                cells,
                key,
                message,
                ..
            } => {
                self.record(
                    Outcome::new(row, key, Status::Invalid).with_message(message),
                    &cells,
                );
                return;
            }
            Checked::Ready {
                row,
                cells,
                payload,
            } => (row, cells, payload),
        };
        let prior = match (self.nothing_prior, &self.broken) {
            (true, _) | (_, Some(_)) => Ok(None),
            (false, None) => self.ledger.prior(&payload.key),
        };
        let prior = prior.unwrap_or_else(|e| {
            self.break_down(e.into());
            None
        });
        match prior {
            Some(Prior::Created { case_id, run }) => {
                let mut outcome = Outcome::new(row, payload.key, Status::Skipped)
                    .with_message(format!("already created by run {run}"));
                outcome.case_id = case_id;
                self.record(outcome, &cells);
                return;
            }
            // The same key as a row this run has marked (`on_duplicate_key: send`): that one
            // is on its way, this one must not follow it.
            Some(Prior::InDoubt { run }) if run == self.ledger.run_id() => {
                let outcome = Outcome::new(row, payload.key, Status::Skipped)
                    .with_message("the same key as an earlier row of this run, sent once");
                self.record(outcome, &cells);
                return;
            }
            Some(Prior::InDoubt { run }) if !self.args.resend_uncertain => {
                let outcome =
                    Outcome::new(row, payload.key, Status::Uncertain).with_message(format!(
                        "run {run} sent it but got no answer: look it up in the CRM and record \
                         what you find with `wolkvox-import resolve`; it is sent again only once \
                         recorded missing"
                    ));
                self.record(outcome, &cells);
                return;
            }
            _ => {}
        }
        if let Some((_, reason)) = &self.stop {
            let outcome = Outcome::new(row, payload.key, Status::Pending)
                .with_message(format!("not sent: {reason}"));
            self.record(outcome, &cells);
            return;
        }
        if self.args.limit.is_some_and(|limit| self.sent >= limit) {
            let outcome = Outcome::new(row, payload.key, Status::Pending)
                .with_message("not sent: --limit reached");
            self.record(outcome, &cells);
            return;
        }
        // Committed now (or, with durable marks, in the batch the next sync covers), on
        // disk after that sync: only then may the request leave.
        let marked = if self.fast {
            self.ledger.mark_sending(&payload.key, row)
        } else {
            self.ledger.mark_sending_deferred(&payload.key, row)
        };
        if let Err(e) = marked {
            self.answered_lost();
            self.break_down(e.into());
            let reason = self
                .stop
                .as_ref()
                .map(|(_, r)| r.clone())
                .unwrap_or_default();
            let outcome = Outcome::new(row, payload.key, Status::Pending)
                .with_message(format!("not sent: {reason}"));
            self.record(outcome, &cells);
            return;
        }
        self.sent += 1;
        self.progress.update(self.reporter.tally(), 1);
        let commit = if self.fast {
            self.ledger.committed()
        } else {
            self.ledger.committed() + 1
        };
        self.ready.push_back((
            commit,
            Outgoing {
                row,
                cells,
                payload,
            },
        ));
    }

    /// A commit failed: the answers waiting for it are not in the ledger, which still says
    /// `sending` for them, so a re-run treats them as uncertain. The results say so too.
    fn answered_lost(&mut self) {
        for (outcome, _) in &mut self.answered {
            if outcome.status == Status::Pending {
                continue;
            }
            let answer = match &outcome.case_id {
                Some(id) => format!("{} (case {id})", outcome.status.as_str()),
                None => outcome.status.as_str().to_string(),
            };
            outcome.message = format!(
                "the CRM answered {answer}, but the ledger could not record it; a re-run \
                 finds it uncertain: record it with `wolkvox-import resolve`"
            );
            outcome.status = Status::Uncertain;
        }
    }

    fn delivered(&mut self, slot: usize, outgoing: Outgoing, delivery: Delivery) {
        self.pool.finish(slot, delivery.calls);
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
            if self.pool.tokens() > 1 {
                tracing::warn!(
                    token = %fingerprint,
                    answer = %delivery.message,
                    live = self.pool.live_count(),
                    "Dropping this token for the rest of the run."
                );
            }
            if self.pool.usable() && self.stop.is_none() {
                self.requeued.push_back(outgoing);
                return;
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
        let recorded = match &self.broken {
            Some(_) => Err(None),
            None => self
                .ledger
                .record(
                    &payload.key,
                    status,
                    case_id.as_deref(),
                    delivery.http_status,
                    delivery.attempts,
                    &delivery.message,
                )
                .map_err(Some),
        };
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
        if status != Status::Pending {
            self.rows_sent += 1;
        }
        // A value sent with a doubt (a phone number kept as typed) is said on its row, as
        // `validate` says it.
        let doubts = crate::mapping::describe(payload.warnings());
        let message = match (doubts.is_empty(), delivery.message.is_empty()) {
            (true, _) => delivery.message,
            (false, true) => doubts,
            (false, false) => format!("{}; {doubts}", delivery.message),
        };
        let mut outcome = Outcome::new(row, payload.key.clone(), status).with_message(message);
        outcome.case_id = case_id;
        outcome.http_status = delivery.http_status;
        outcome.attempts = delivery.attempts;
        self.answered.push((outcome, cells));
        if let Err(error) = recorded {
            self.answered_lost();
            if let Some(error) = error {
                self.break_down(error.into());
            }
        }
        self.progress.update(self.reporter.tally(), 0);
    }
}

/// No signal yet; SIGINT (Ctrl-C); SIGTERM (a `kill`, `docker stop`, Kubernetes).
const NO_SIGNAL: u8 = 0;
const SIGINT: u8 = 2;
const SIGTERM: u8 = 15;

fn signal_name(signal: u8) -> &'static str {
    if signal == SIGTERM {
        "SIGTERM"
    } else {
        "Ctrl-C"
    }
}

/// First Ctrl-C or SIGTERM: stop sending, finish what is in flight. Second: exit now
/// (the ledger is consistent at every commit).
async fn watch_signals(stop: watch::Sender<bool>, interrupted: Arc<AtomicU8>) {
    let mut count = 0;
    loop {
        let got = signal().await;
        count += 1;
        if count == 1 {
            let name = signal_name(got);
            tracing::warn!(
                "Interrupted by {name}: no new requests; waiting for those in flight. A second \
                 {name} quits at once."
            );
            interrupted.store(got, Ordering::SeqCst);
            let _ = stop.send(true);
        } else {
            std::process::exit(i32::from(crate::exit::INTERRUPTED));
        }
    }
}

/// The next SIGINT or SIGTERM, and which it was.
#[cfg(unix)]
async fn signal() -> u8 {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => SIGINT,
                _ = term.recv() => SIGTERM,
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            SIGINT
        }
    }
}

#[cfg(not(unix))]
async fn signal() -> u8 {
    let _ = tokio::signal::ctrl_c().await;
    SIGINT
}

/// When a reset `hours` from now falls, in UTC: " , around 2025-03-04 05:00 UTC".
fn reset_at(hours: &str) -> String {
    match hours.trim().parse::<f64>() {
        Ok(hours) if hours.is_finite() && (0.0..=48.0).contains(&hours) => {
            let at = chrono::Utc::now() + chrono::Duration::seconds((hours * 3600.0) as i64);
            format!(", around {}", at.format("%Y-%m-%d %H:%M UTC"))
        }
        _ => String::new(),
    }
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
