//! The run engine: admit → deliver → record. The command sets a run up (`Job`); the
//! engine takes the checked rows in file order, marks each `sending` (durably, before its
//! request leaves), hands it to the sender for its operation, and records every answer in
//! the ledger and then the results.
//!
//! - `settings`: the run's options, validated once;
//! - `coordinator`: the policy per row (skip, resend, `--limit`, token requeue, breaker)
//!   and where outcomes are written;
//! - `durable`: how many rows are marked ahead of a free slot (the ledger's writer thread
//!   commits and syncs their marks as one batch);
//! - `messages`: every stop and row message the run writes;
//! - `signals`: Ctrl-C and SIGTERM.

mod coordinator;
mod durable;
pub mod messages;
pub mod preflight;
mod settings;
mod signals;

use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::watch;

use crate::ledger::{Ledger, Writer};
use crate::mapping::check::CheckedRows;
use crate::report::{Progress, Reporter};
use crate::sender::Sender;
use crate::sender::pool::TokenPool;

use coordinator::Coordinator;
pub use messages::StopReason;
pub use settings::{Endpoint, MIN_RATE, Settings};

/// Rows taken from the reader in one go when a slot frees (skipped and invalid rows do
/// not take the slot, so several may pass before one is sent); bounded so that signals
/// and answers are still looked at.
const REFILL_AT_ONCE: usize = 64;

/// Everything a run works with, set up by the command.
pub struct Job<'a> {
    pub settings: &'a Settings,
    pub ledger: &'a Ledger,
    pub reporter: &'a mut Reporter,
    pub pool: &'a mut TokenPool,
    pub sender: Sender,
    pub progress: Progress,
    /// No row can have an earlier answer in the ledger: skip the look-up.
    pub nothing_prior: bool,
    /// The preflight found no usable token: the CRM's last refusal.
    pub no_token_left: Option<String>,
    /// The contacts whose rows are not sent (`contacts:`; empty without one).
    pub contacts: crate::contacts::Verdicts,
    /// An errors file fed back: its `_error` column (a row that was a duplicate of another
    /// row's key stays one, not a change of that row's ticket).
    pub fed_back_error: Option<usize>,
}

/// How a run ended.
pub struct Ended {
    pub stop: Option<StopReason>,
    /// Requests that left (or were handed to the sender).
    pub departed: u64,
    /// Rows a request was made for (answered, or given up on after retries).
    pub rows_sent: u64,
    /// The write that failed and stopped the run (its text is in `stop`).
    pub broken: Option<anyhow::Error>,
    /// Rows an earlier run created that changed since.
    pub changed: u64,
    /// Rows left invalid because the CRM lacks their contact.
    pub missing_contact: u64,
    /// Invalid rows whose ticket an earlier run created.
    pub invalid_created: u64,
}

/// Poll the requests just added once, so that each is handed to its connection, then let
/// the runtime run the connections, which write them, before this task goes on with its
/// own work (marks, results lines, rows from the reader): at a fast CRM that work would
/// otherwise hold every request back a few microseconds. An answer found there (a
/// request that could not be made, or one sent earlier that has just ended) is
/// returned, to be taken like any other.
async fn dispatch<F: Future>(in_flight: &mut FuturesUnordered<F>) -> Option<F::Output> {
    let polled =
        std::future::poll_fn(|cx| std::task::Poll::Ready(in_flight.poll_next_unpin(cx))).await;
    tokio::task::yield_now().await;
    match polled {
        std::task::Poll::Ready(answer) => answer,
        std::task::Poll::Pending => None,
    }
}

/// The answer `dispatch` found, else the next one to arrive.
async fn next_answer<F: Future>(
    early: &mut Option<F::Output>,
    in_flight: &mut FuturesUnordered<F>,
) -> Option<F::Output> {
    match early.take() {
        Some(answer) => Some(answer),
        None => in_flight.next().await,
    }
}

/// Run `job` over `rows` until every row is recorded or the run stops.
pub async fn run(job: Job<'_>, mut rows: CheckedRows) -> anyhow::Result<Ended> {
    let sender = job.sender.clone();
    let (writer, mut written) = Writer::start(job.ledger, job.settings.durable)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let signals = signals::Signals::watch(stop_tx.clone());
    let mut run = Coordinator::new(job, writer, stop_tx);
    // The requests in flight are futures of this task, not tasks of their own: an answer
    // is then taken as soon as it is read, and a request leaves without waiting for the
    // runtime to get round to a task (`dispatch`; benches/README.md, "Row 4 met").
    let mut in_flight = FuturesUnordered::new();
    // An answer `dispatch` found already there, taken before the next wait.
    let mut early = None;
    // An answer was taken: rows ready at the reader are taken too (`REFILL_AT_ONCE`).
    let mut refill = false;
    // Answers queued without a mark to carry them go to the writer by this time.
    let mut answers_due = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
    let mut answers_due_at = None;
    let mut reader_done = false;
    loop {
        let mut dispatched = false;
        while let Some(slot) = run.next_slot() {
            let Some(outgoing) = run.next_outgoing() else {
                break;
            };
            run.pool.start(slot);
            run.departed += 1;
            let token = run.pool.token(slot);
            let sender = sender.clone();
            let mut stop = stop_rx.clone();
            let request = async move {
                let started = Instant::now();
                let delivery = sender
                    .deliver(outgoing.operation, &outgoing.payload, &token, &mut stop)
                    .await;
                (slot, outgoing, delivery, started.elapsed())
            };
            // A panic in a request ends the run with an error, as a failed task did.
            in_flight.push(std::panic::AssertUnwindSafe(request).catch_unwind());
            dispatched = true;
        }
        if dispatched && early.is_none() {
            early = dispatch(&mut in_flight).await;
        }
        // After an answer, take the rows that are ready at once: their marks then go to
        // the ledger together. Done once the freed slot's next request is out (a row
        // taken now needs its own mark on disk before it leaves).
        if std::mem::take(&mut refill) {
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
        if run.stop.is_some() {
            run.flush_unsent();
        }
        if reader_done
            && in_flight.is_empty()
            && early.is_none()
            && run.requeued.is_empty()
            && run.ready.is_empty()
        {
            break;
        }
        if run.stop.is_none() && !run.pool.usable() {
            run.out_of_tokens("");
            continue;
        }
        run.hand_over(in_flight.is_empty());
        run.write_lines();
        let due = run.answers_due_at();
        if due != answers_due_at {
            answers_due_at = due;
            if let Some(at) = due {
                answers_due.as_mut().reset(at.into());
            }
        }
        let can_take = run.stop.is_some() || run.wants_rows();
        tokio::select! {
            biased;
            finished = written.recv(), if run.writer.busy() => {
                let finished = finished.unwrap_or_else(|| run.writer.gone());
                run.finished(finished);
            }
            () = &mut answers_due, if answers_due_at.is_some() && !run.writer.busy() => {}
            Some(joined) = next_answer(&mut early, &mut in_flight),
                if early.is_some() || !in_flight.is_empty() => {
                let (slot, outgoing, delivery, took) =
                    joined.map_err(|_| anyhow::anyhow!("a request panicked (a bug)"))?;
                let slots = run.slots();
                run.pace.served(took, slots);
                run.delivered(slot, outgoing, delivery);
                refill = true;
            }
            item = rows.next(), if !reader_done && can_take && run.requeued.is_empty() => {
                match item {
                    None => reader_done = true,
                    Some(checked) => run.admit(checked),
                }
            }
        }
        if let Some(signal) = signals.received() {
            run.interrupted(signal);
        }
    }
    // The last writes: everything queued goes, and each batch is waited for.
    loop {
        run.hand_over(true);
        if !run.writer.busy() {
            break;
        }
        let finished = written.recv().await.unwrap_or_else(|| run.writer.gone());
        run.finished(finished);
    }
    run.close();
    tracing::debug!(
        sync_ms = run.pace.sync_secs * 1000.0,
        request_ms = run.pace.service_secs * 1000.0,
        ahead = run.pace.ahead,
        "Durable marks: the last averages."
    );
    run.flush();
    run.progress.finish();
    drop(signals);
    rows.join()?;
    Ok(Ended {
        stop: run.stop.take(),
        departed: run.departed,
        rows_sent: run.rows_sent,
        broken: run.broken.take(),
        changed: run.changed,
        missing_contact: run.missing_contact,
        invalid_created: run.invalid_created,
    })
}
