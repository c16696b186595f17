//! The run's policy, one row at a time: what to do with a checked row (`admit`), what an
//! answer means (`delivered`), and when outcomes are written (`hand_over`, `finished`).
//! One coordinator decides every write to the ledger and the report, so every outcome is
//! recorded in one place and in order; the ledger's writer thread only carries them out.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::exit::error_text;
use crate::ledger::{Finished, Ledger, Prior, Write, Writer};
use crate::mapping::check::Checked;
use crate::mapping::{Payload, delta};
use crate::outcome::{Outcome, Status};
use crate::report::{Progress, Reporter};
use crate::sender::pool::{SlotState, TokenPool};
use crate::sender::{Breaker, Delivery, Final, Operation, StopKind};
use crate::source::Cells;

use super::durable::Pace;
use super::messages::{StopReason, row};
use super::settings::Settings;

/// How often the results and errors files are flushed during a run.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Answers go to the writer with the next batch of marks, which at a busy run follows at
/// once. Without one they wait at most this long (or until this many are queued, or the
/// run has nothing out): an answer not yet committed is a row a crash leaves uncertain.
const ANSWERS_LINGER: Duration = Duration::from_millis(20);
const ANSWERS_AT_ONCE: usize = 64;

/// A row on its way to the CRM.
pub struct Outgoing {
    pub row: u64,
    pub cells: Cells,
    pub payload: Payload,
    pub operation: Operation,
    /// For an update: the fields that changed since the case was sent.
    changed: Vec<String>,
}

/// What the ledger knows of a key an earlier run created.
struct Created {
    case_id: Option<String>,
    run: i64,
    fields: Option<delta::Fingerprints>,
}

pub struct Coordinator<'a> {
    pub settings: &'a Settings,
    pub ledger: &'a Ledger,
    pub reporter: &'a mut Reporter,
    pub pool: &'a mut TokenPool,
    pub progress: Progress,
    /// Rows whose token was dropped mid-run: nothing was stored, another token sends them.
    pub requeued: VecDeque<Outgoing>,
    /// Rows marked `sending`, each with the writer's batch of its mark: it may leave once
    /// that batch is done (committed, and on disk when marks must be durable).
    pub ready: VecDeque<(u64, Outgoing)>,
    /// The ledger's writer thread: every write of the run goes through it.
    pub writer: Writer,
    pub pace: Pace,
    /// Set once the run must send nothing more.
    pub stop: Option<StopReason>,
    /// The ledger or a results file could not be written: nothing more is sent or
    /// recorded, and the run ends with exit 3 (1 if nothing had been sent).
    pub broken: Option<anyhow::Error>,
    /// Requests that left (or were handed to the sender): after the first, a failure
    /// ends the run with exit 3, not 1.
    pub departed: u64,
    /// Rows a request was made for (answered, or given up on after retries).
    pub rows_sent: u64,
    /// No row can have an earlier answer in the ledger: skip the look-up.
    nothing_prior: bool,
    fed_back_error: Option<usize>,
    /// The results or errors file could not be written: no more lines are tried.
    report_broken: bool,
    /// Answers queued for the ledger, each with its batch: its results line waits until
    /// that batch is done, so the results file never says more than the ledger.
    answered: VecDeque<(u64, Outcome, Cells)>,
    /// Since when answers have waited for a batch without a mark to carry them.
    lingering: Option<Instant>,
    /// Keys marked this run, with the batch of their latest write (the mark, then the
    /// answer) while it is not committed: the ledger's own reads do not see it yet (kept
    /// only when rows are looked up: `nothing_prior` is false).
    in_run: HashMap<String, u64>,
    /// When the results and errors files were last flushed.
    flushed: Instant,
    /// Rows marked for sending (`--limit` counts them).
    marked: u64,
    breaker: Breaker,
    /// Created rows whose fields changed since they were sent.
    pub changed: u64,
    /// Rows left invalid because the CRM lacks their contact.
    pub missing_contact: u64,
    /// Invalid rows whose ticket an earlier run created (from a fixed copy of the row).
    pub invalid_created: u64,
    /// A created key without fingerprints (an earlier version's) has been said.
    unfingerprinted: bool,
    /// Turns true when the rows in flight must give up (an abort, a signal).
    stop_tx: tokio::sync::watch::Sender<bool>,
    /// Contacts the CRM lacks, refused or could not settle: their rows are not sent.
    contacts: crate::contacts::Verdicts,
}

impl<'a> Coordinator<'a> {
    pub fn new(
        job: super::Job<'a>,
        writer: Writer,
        stop_tx: tokio::sync::watch::Sender<bool>,
    ) -> Coordinator<'a> {
        let mut run = Coordinator {
            settings: job.settings,
            ledger: job.ledger,
            reporter: job.reporter,
            pool: job.pool,
            progress: job.progress,
            requeued: VecDeque::new(),
            ready: VecDeque::new(),
            writer,
            pace: Pace::default(),
            stop: None,
            broken: None,
            departed: 0,
            rows_sent: 0,
            nothing_prior: job.nothing_prior,
            fed_back_error: job.fed_back_error,
            report_broken: false,
            answered: VecDeque::new(),
            lingering: None,
            in_run: HashMap::new(),
            flushed: Instant::now(),
            marked: 0,
            breaker: Breaker::default(),
            changed: 0,
            missing_contact: 0,
            invalid_created: 0,
            unfingerprinted: false,
            stop_tx,
            contacts: job.contacts,
        };
        if let Some(answer) = job.no_token_left {
            run.out_of_tokens(&answer);
        }
        run
    }

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
    pub fn break_down(&mut self, error: anyhow::Error) {
        if self.broken.is_some() {
            return;
        }
        let reason = StopReason::Broken(error_text(&error));
        self.broken = Some(error);
        self.halt(reason);
    }

    /// Hand the queued writes to the writer when something waits for them: a mark (its
    /// row leaves once it is done), or answers that have nothing to carry them soon
    /// (`nothing_out`: no request is out, so no mark follows until more rows come).
    /// Committing them one by one would cost SQLite's locks for each; the writer takes
    /// what was queued while it wrote the last batch.
    pub fn hand_over(&mut self, nothing_out: bool) {
        if self.writer.busy() || self.writer.queued() == 0 {
            return;
        }
        let answers_due = nothing_out
            || self.stop.is_some()
            || self.writer.queued() >= ANSWERS_AT_ONCE
            || self
                .lingering
                .is_some_and(|since| since.elapsed() >= ANSWERS_LINGER);
        // Marks go once the rows ready to leave run low, not one batch per row: each
        // batch costs a commit and a sync, and on a virtual machine a sync costs CPU too.
        let done = self.writer.done();
        let durable_ready = self.ready.partition_point(|(batch, _)| *batch <= done);
        let marks_due =
            self.writer.marks_queued() && durable_ready < self.pace.low_water(self.slots());
        if marks_due || answers_due {
            self.writer.hand_over();
            self.lingering = None;
        } else if self.lingering.is_none() {
            self.lingering = Some(Instant::now());
        }
    }

    /// When queued answers are due even if no mark comes (see `hand_over`).
    pub fn answers_due_at(&self) -> Option<Instant> {
        self.lingering.map(|since| since + ANSWERS_LINGER)
    }

    /// The writer finished a batch: the rows of its marks may leave, the results lines of
    /// its answers are written. A batch that failed stops the run: its answers are not in
    /// the ledger, which still says `sending` for them, so a re-run treats them as
    /// uncertain, and the results say so too.
    pub fn finished(&mut self, finished: Finished) {
        let took = self.writer.finished(&finished);
        match finished.result {
            Ok(()) => {
                if finished.held_marks {
                    let slots = self.slots();
                    self.pace.synced(took, slots);
                }
                let committed = self.writer.committed();
                self.in_run.retain(|_, batch| *batch > committed);
            }
            Err(e) => {
                // Committed, then not synced: its answers are recorded all the same.
                self.answered_lost(self.writer.committed() + 1);
                self.break_down(e.into());
            }
        }
        self.write_lines();
    }

    /// Write the results lines of the answers the ledger holds, and flush the files a few
    /// times a second (and at the end), not once a row: the ledger is what a re-run
    /// trusts, and a write per row was a tenth of the importer's own cost.
    pub fn write_lines(&mut self) {
        let committed = self.writer.committed();
        while self
            .answered
            .front()
            .is_some_and(|(batch, ..)| *batch <= committed)
        {
            if let Some((_, outcome, cells)) = self.answered.pop_front() {
                self.record(outcome, &cells);
            }
        }
        if self.flushed.elapsed() >= FLUSH_EVERY {
            self.flush();
            self.flushed = Instant::now();
        }
    }

    /// Every batch handed over is done, or failed: the last results lines are written.
    /// Answers no batch took (the writer stopped) are said uncertain.
    pub fn close(&mut self) {
        self.writer.close();
        self.answered_lost(self.writer.committed() + 1);
        self.write_lines();
    }

    pub fn flush(&mut self) {
        if !self.report_broken
            && let Err(e) = self.reporter.flush()
        {
            self.report_broken = true;
            self.break_down(e.into());
        }
    }

    /// How many requests may be out at once.
    pub fn slots(&self) -> usize {
        self.pool.in_flight() + self.pool.free_slots()
    }

    /// Whether to take another row from the reader: room in a slot, or in the rows that
    /// may wait for their sync.
    pub fn wants_rows(&self) -> bool {
        // Each busy slot has its next row marked while its request is out (its batch goes
        // to the writer once the rows ready to leave run low, `hand_over`), so a slot that
        // frees rarely waits for the ledger.
        let ahead = self.pool.in_flight() + self.pace.ahead;
        self.stop.is_none() && self.ready.len() < self.pool.free_slots() + ahead
    }

    /// Send nothing more. An abort also cuts short the retries of rows in flight; a
    /// quota stop lets them finish, since their calls were already counted.
    pub fn halt(&mut self, reason: StopReason) {
        let quota = matches!(reason, StopReason::QuotaSpent { .. });
        if self.stop.is_none() {
            if quota {
                tracing::warn!(reason = %reason, "Stopping the run.");
            } else {
                tracing::error!(reason = %reason, "Stopping the run.");
            }
            self.stop = Some(reason);
        }
        if !quota {
            let _ = self.stop_tx.send(true);
        }
    }

    /// A signal: the watcher has told the rows in flight, and said so in the log.
    pub fn interrupted(&mut self, signal: &'static str) {
        if self.stop.is_none() {
            self.stop = Some(StopReason::Interrupted(signal));
        }
    }

    /// A slot for the next request, unless the run has stopped.
    pub fn next_slot(&self) -> Option<usize> {
        if self.stop.is_some() {
            return None;
        }
        self.pool.pick()
    }

    /// The next row that may leave: one given back by a dropped token first (for another
    /// token), then the rows whose `sending` mark is on disk, in file order.
    pub fn next_outgoing(&mut self) -> Option<Outgoing> {
        if let Some(outgoing) = self.requeued.pop_front() {
            return Some(outgoing);
        }
        if self.ready.front()?.0 <= self.writer.done() {
            return self.ready.pop_front().map(|(_, outgoing)| outgoing);
        }
        None
    }

    /// Every token is rejected or at its quota: stop, resumably if quota was the reason.
    pub fn out_of_tokens(&mut self, last_answer: &str) {
        let reason = if self.pool.exhausted_by_quota() {
            StopReason::quota_spent(
                last_answer,
                self.settings.quota_reserve,
                self.pool.hours_to_reset.as_deref(),
            )
        } else {
            StopReason::TokenRejected {
                last_answer: last_answer.to_string(),
            }
        };
        self.halt(reason);
    }

    /// Once stopped, rows not sent (waiting for another token, or for their sync) are
    /// pending: their marks say so, and a re-run sends them.
    pub fn flush_unsent(&mut self) {
        let Some(reason) = self.stop.clone() else {
            return;
        };
        let unsent: Vec<Outgoing> = self
            .requeued
            .drain(..)
            .chain(self.ready.drain(..).map(|(_, o)| o))
            .collect();
        for outgoing in unsent {
            let mut outcome = Outcome::new(outgoing.row, outgoing.payload.key, Status::Pending)
                .with_message(row::not_sent(&reason));
            // An update not sent leaves its case created, with the fields sent before.
            let batch = if self.broken.is_none() {
                self.writer
                    .push(answer_write(outgoing.operation, outcome.clone()))
            } else {
                outcome.message = row::not_sent_unrecorded(&reason);
                0
            };
            self.answered.push_back((batch, outcome, outgoing.cells));
        }
    }

    /// The run that created `key`'s ticket, for an invalid row: its cells cannot be sent,
    /// but an earlier run may have created its ticket from a fixed copy (the errors file,
    /// fed back), and then the row needs no fixing to reach the CRM.
    fn created_before(&mut self, key: &str) -> Option<i64> {
        if key.is_empty() || self.nothing_prior || self.broken.is_some() {
            return None;
        }
        match self.ledger.prior(key) {
            Ok(Some(Prior::Created { run, .. })) => Some(run),
            Ok(_) => None,
            Err(e) => {
                self.break_down(e.into());
                None
            }
        }
    }

    /// Decide what to do with a checked row: record it now, or mark it `sending` and
    /// queue it until that mark is on disk.
    pub fn admit(&mut self, checked: Checked) {
        let (row, cells, payload) = match checked {
            Checked::Invalid {
                row,
                cells,
                key,
                message,
                errors,
            } => {
                // Bad cells only: a duplicate of another row's key is another ticket, and
                // the created ticket of that key is the other row's.
                let created = if errors.is_empty() {
                    None
                } else {
                    self.created_before(&key)
                };
                let message = match created {
                    Some(run) => {
                        self.invalid_created += 1;
                        row::invalid_but_created(&message, run)
                    }
                    None => message,
                };
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
            // Marked this run, in a batch the writer has not finished.
            (false, None) if self.in_run.contains_key(&payload.key) => Ok(Some(Prior::InDoubt {
                run: self.ledger.run_id(),
            })),
            (false, None) => self.ledger.prior(&payload.key),
        };
        let prior = prior.unwrap_or_else(|e| {
            self.break_down(e.into());
            None
        });
        let decided = match prior {
            Some(Prior::Created { run, .. })
                if crate::feedback::was_duplicate(self.fed_back_error, &cells) =>
            {
                let outcome = Outcome::new(row, payload.key.clone(), Status::Invalid)
                    .with_message(row::fed_back_duplicate(run));
                self.record(outcome, &cells);
                return;
            }
            Some(Prior::Created {
                case_id,
                run,
                fields,
            }) => {
                let created = Created {
                    case_id,
                    run,
                    fields,
                };
                return self.admit_created(row, cells, payload, created);
            }
            // The same key as a row this run has marked (`on_duplicate_key: send`): that one
            // is on its way, this one must not follow it. Said once that one's mark (or
            // answer) is in the ledger.
            Some(Prior::InDoubt { run }) if run == self.ledger.run_id() => {
                let outcome = Outcome::new(row, payload.key.clone(), Status::Skipped)
                    .with_message(row::SAME_KEY_THIS_RUN);
                let batch = self.in_run.get(&payload.key).copied().unwrap_or(0);
                self.answered.push_back((batch, outcome, cells));
                return;
            }
            Some(Prior::InDoubt { run }) if !self.settings.resend_uncertain => Some(
                Outcome::new(row, payload.key.clone(), Status::Uncertain)
                    .with_message(row::in_doubt(run)),
            ),
            _ => match self.contacts.for_row(payload.contact()) {
                // Its contact is not in the CRM: no case call is spent on it.
                Some((status, message)) => {
                    self.missing_contact += u64::from(status == Status::Invalid);
                    Some(Outcome::new(row, payload.key.clone(), status).with_message(message))
                }
                None => self.not_now(row, &payload.key),
            },
        };
        if let Some(outcome) = decided {
            self.record(outcome, &cells);
            return;
        }
        // Committed with the writer's next batch, and with durable marks on disk before
        // that batch is done: only then may the request leave.
        let mark = Write::Mark {
            key: payload.key.clone(),
            row,
            fields: payload.fingerprint_text(),
        };
        self.queue(
            mark,
            Outgoing {
                row,
                cells,
                payload,
                operation: Operation::Insert,
                changed: Vec::new(),
            },
        );
    }

    /// A row created by an earlier run: unchanged, it is skipped; changed, it is reported,
    /// and with `--update` its updatable fields are sent to its case.
    fn admit_created(&mut self, row: u64, cells: Cells, payload: Payload, created: Created) {
        let Created {
            case_id,
            run,
            fields,
        } = created;
        let now = payload.fingerprints();
        let changed = match &fields {
            Some(sent) => delta::changed(sent, &now),
            None => {
                if !self.unfingerprinted {
                    self.unfingerprinted = true;
                    tracing::warn!("{}", row::NO_FINGERPRINTS);
                }
                Vec::new()
            }
        };
        let skip = |message: String| {
            let mut outcome =
                Outcome::new(row, payload.key.clone(), Status::Skipped).with_message(message);
            outcome.case_id = case_id.clone();
            outcome
        };
        if changed.is_empty() {
            let outcome = skip(row::already_created(run));
            return self.record(outcome, &cells);
        }
        self.changed += 1;
        let update = match &case_id {
            Some(id) if self.settings.update => payload.for_update(id, &changed),
            _ => None,
        };
        let Some(update) = update else {
            let message = if !self.settings.update {
                row::changed(run, &changed)
            } else if case_id.is_none() {
                row::changed_without_id(run, &changed)
            } else {
                row::changed_not_updatable(run, &changed)
            };
            return self.record(skip(message), &cells);
        };
        if let Some(outcome) = self.not_now(row, &payload.key) {
            return self.record(outcome, &cells);
        }
        let mark = Write::MarkUpdate {
            key: payload.key.clone(),
            fields: delta::to_text(&now),
        };
        self.queue(
            mark,
            Outgoing {
                row,
                cells,
                payload: update,
                operation: Operation::Update,
                changed,
            },
        );
    }

    /// Why a row that would be sent is not, when the run has stopped or reached `--limit`.
    fn not_now(&self, row: u64, key: &str) -> Option<Outcome> {
        let message = match &self.stop {
            Some(reason) => row::not_sent(reason),
            None if self
                .settings
                .limit
                .is_some_and(|limit| self.marked >= limit) =>
            {
                row::LIMIT_REACHED.to_string()
            }
            None => return None,
        };
        Some(Outcome::new(row, key, Status::Pending).with_message(message))
    }

    /// A row to mark: it waits for its mark's batch, then leaves.
    fn queue(&mut self, mark: Write, outgoing: Outgoing) {
        let batch = self.writer.push(mark);
        if !self.nothing_prior {
            self.in_run.insert(outgoing.payload.key.clone(), batch);
        }
        self.marked += 1;
        self.progress.update(self.reporter.tally(), 1);
        self.ready.push_back((batch, outgoing));
    }

    /// The answers queued for batch `from` and later are not in the ledger (it failed, or
    /// the writer stopped), which still says `sending` for them, so a re-run treats them
    /// as uncertain. The results say so too, and are written now.
    fn answered_lost(&mut self, from: u64) {
        for (batch, outcome, _) in &mut self.answered {
            if *batch < from {
                continue;
            }
            *batch = 0;
            match outcome.status {
                // No answer to lose: a skip only waited for the other row's mark.
                Status::Skipped => continue,
                Status::Pending => {
                    let reason = self
                        .stop
                        .clone()
                        .unwrap_or(StopReason::Broken(String::new()));
                    outcome.message = row::not_sent_unrecorded(&reason);
                    continue;
                }
                _ => {}
            }
            let answer = match &outcome.case_id {
                Some(id) => format!("{} (case {id})", outcome.status.as_str()),
                None => outcome.status.as_str().to_string(),
            };
            outcome.message = row::answer_unrecorded(&answer);
            outcome.status = Status::Uncertain;
        }
    }

    /// A row's delivery ended: drop a refused token (and send the row with another), trip
    /// the breaker, stop on what stops a run, and record the outcome.
    pub fn delivered(&mut self, slot: usize, outgoing: Outgoing, delivery: Delivery) {
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
        match &delivery.end {
            Final::Stop(StopKind::TokenRejected | StopKind::Quota) => {
                if self.stop.is_none() && !self.pool.usable() {
                    self.out_of_tokens(&delivery.message);
                }
            }
            Final::Stop(StopKind::WrongEndpoint) => {
                self.halt(StopReason::WrongEndpoint(delivery.message.clone()))
            }
            end => {
                if self.breaker.trips(end) {
                    self.halt(StopReason::ServerDown {
                        rows: crate::sender::breaker::DOWN_AFTER,
                        last: delivery.message.clone(),
                    });
                }
            }
        }
        let Outgoing {
            row,
            cells,
            payload,
            operation,
            changed,
        } = outgoing;
        let doubts = crate::mapping::describe(payload.warnings());
        let mut outcome = Outcome::from_delivery(row, payload.key, delivery, &doubts);
        if outcome.status != Status::Pending {
            self.rows_sent += 1;
        }
        if operation == Operation::Update {
            outcome = row::after_update(outcome, &changed);
        }
        if self.broken.is_none() {
            let batch = self.writer.push(answer_write(operation, outcome.clone()));
            if let Some(latest) = self.in_run.get_mut(&outcome.key) {
                *latest = batch;
            }
            self.answered.push_back((batch, outcome, cells));
        } else {
            // Nothing more is recorded once the run broke down.
            self.answered.push_back((u64::MAX, outcome, cells));
            self.answered_lost(u64::MAX);
        }
        self.progress.update(self.reporter.tally(), 0);
    }
}

/// How a row's answer is recorded: an update's keeps the case created.
fn answer_write(operation: Operation, outcome: Outcome) -> Write {
    match operation {
        Operation::Insert => Write::Answer(outcome),
        Operation::Update => Write::AnswerUpdate(outcome),
    }
}
