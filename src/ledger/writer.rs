//! The ledger's writes during an import, on a thread of their own.
//!
//! The run's coordinator is one thread that also drives every request, and SQLite's
//! statements and commits were a quarter of its time: at a fast CRM that thread, not the
//! network or the disk, set the pace. So the coordinator only queues what to write (a
//! `Write` is plain data, no SQL), and hands the queue over as one batch when the writer
//! is free. The writer runs the batch in one transaction, commits it, and when the batch
//! holds a `sending` mark and marks must be durable, syncs the WAL before it says the
//! batch is done (group commit: one fsync covers every mark of the batch, and every write
//! before them). A row leaves only once the batch of its mark is done, as before.
//!
//! Batches are done in the order they were handed over, one at a time, so "batch N is
//! done" means every write queued before it is committed, and every mark before it is on
//! disk. A batch whose writes or commit fail is rolled back as a whole (also if the thread
//! dies half-way: its connection rolls back, never commits, on drop), and the writer
//! stops: its marks were never durable, so none of their rows left, and its answers are
//! not in the ledger (their rows stay `sending`, which a re-run treats as uncertain). A
//! batch committed whose sync then fails keeps its answers (`Finished::committed`), but
//! its rows do not leave either.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Ledger, LedgerError, Syncer};
use crate::outcome::Outcome;

/// One thing to record, in the order the coordinator decided it.
#[derive(Debug)]
pub enum Write {
    /// A row is about to be sent, with the fingerprints of what it sends.
    Mark {
        key: String,
        row: u64,
        fields: String,
    },
    /// An update of a created case is about to be sent.
    MarkUpdate { key: String, fields: String },
    /// How a row's insert ended.
    Answer(Outcome),
    /// How an update ended.
    AnswerUpdate(Outcome),
}

impl Write {
    fn is_mark(&self) -> bool {
        matches!(self, Write::Mark { .. } | Write::MarkUpdate { .. })
    }

    fn apply(&self, ledger: &Ledger) -> Result<(), LedgerError> {
        match self {
            Write::Mark { key, row, fields } => ledger.mark_sending_deferred(key, *row, fields),
            Write::MarkUpdate { key, fields } => ledger.mark_updating(key, fields),
            Write::Answer(outcome) => ledger.record(outcome),
            Write::AnswerUpdate(outcome) => ledger.record_update(outcome),
        }
    }
}

struct Batch {
    writes: Vec<Write>,
    /// Sync the WAL after the commit (the batch holds a mark, and marks must be durable).
    sync: bool,
}

/// A batch the writer finished: its number (1 for the first), and whether it failed (the
/// coordinator times a batch itself, from its hand-over: `Writer::finished`).
#[derive(Debug)]
pub struct Finished {
    pub batch: u64,
    pub held_marks: bool,
    /// The batch is committed (even if its sync then failed): its answers are recorded.
    pub committed: bool,
    pub result: Result<(), LedgerError>,
}

/// Where the writer's answers arrive (kept apart from `Writer`, so that waiting for one
/// does not hold the coordinator).
pub type Done = tokio::sync::mpsc::UnboundedReceiver<Finished>;

/// The coordinator's side of the writer thread.
pub struct Writer {
    pending: Vec<Write>,
    pending_marks: bool,
    /// Batches handed over so far; the queued writes go with the next one.
    handed: u64,
    /// Batches done so far.
    done: u64,
    /// Batches committed so far (one more than `done` when the last one's sync failed).
    committed: u64,
    busy: bool,
    /// When the batch in progress was handed over.
    handed_at: Instant,
    durable: bool,
    to_thread: Option<mpsc::Sender<Batch>>,
    thread: Option<std::thread::JoinHandle<()>>,
    path: std::path::PathBuf,
}

impl Writer {
    /// Start the writer on its own connection to `ledger`'s file (which commits what it
    /// holds first: two connections cannot both write). With `durable`, each batch that
    /// holds a mark is on disk before it is done.
    pub fn start(ledger: &Ledger, durable: bool) -> Result<(Writer, Done), LedgerError> {
        ledger.commit()?;
        let syncer = if durable {
            Some(ledger.syncer()?)
        } else {
            None
        };
        let own = ledger.second_connection()?;
        let (to_thread, batches) = mpsc::channel();
        let (finished, done) = tokio::sync::mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("ledger".into())
            .spawn(move || {
                crate::background::lower_priority(crate::background::LEDGER_NICE);
                serve(&own, syncer.as_ref(), &batches, &finished)
            })
            .map_err(|source| LedgerError::Io {
                path: ledger.path().to_path_buf(),
                source,
            })?;
        let writer = Writer {
            pending: Vec::new(),
            pending_marks: false,
            handed: 0,
            done: 0,
            committed: 0,
            busy: false,
            handed_at: Instant::now(),
            durable,
            to_thread: Some(to_thread),
            thread: Some(thread),
            path: ledger.path().to_path_buf(),
        };
        Ok((writer, done))
    }

    /// Queue `write`; it is committed with the batch this returns the number of.
    pub fn push(&mut self, write: Write) -> u64 {
        self.pending_marks |= write.is_mark();
        self.pending.push(write);
        self.handed + 1
    }

    /// Batches done: every write queued for one of them is committed, every mark synced.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// Batches committed: their answers are in the ledger (on disk or not).
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// A batch is with the writer.
    pub fn busy(&self) -> bool {
        self.busy
    }

    /// Writes queued, not yet handed over.
    pub fn queued(&self) -> usize {
        self.pending.len()
    }

    /// A queued mark waits for the next batch.
    pub fn marks_queued(&self) -> bool {
        self.pending_marks
    }

    /// Hand the queued writes over as one batch, unless the writer is busy with one (then
    /// they go, with whatever is queued meanwhile, once it is done).
    pub fn hand_over(&mut self) {
        if self.busy || self.pending.is_empty() {
            return;
        }
        let batch = Batch {
            writes: std::mem::take(&mut self.pending),
            sync: self.durable && self.pending_marks,
        };
        self.pending_marks = false;
        // Sent or not, a batch is now in progress: a thread that is gone says so by
        // closing `Done`, which the run reads as this batch failing (`gone`).
        if let Some(to_thread) = &self.to_thread {
            let _ = to_thread.send(batch);
            self.busy = true;
            self.handed += 1;
            self.handed_at = Instant::now();
        }
    }

    /// Take in a batch the writer finished (from `Done`). `None` there means the thread
    /// is gone without a word: `gone` makes that a failure of the batch in progress.
    /// Returns how long the batch took from its hand-over: the wait for the thread to be
    /// scheduled counts, since rows wait for it as much as for the disk.
    pub fn finished(&mut self, finished: &Finished) -> Duration {
        self.busy = false;
        if finished.committed {
            self.committed = finished.batch;
        }
        if finished.result.is_ok() {
            self.done = finished.batch;
        } else {
            // Nothing more is written once a batch failed.
            self.to_thread = None;
            self.pending.clear();
        }
        self.handed_at.elapsed()
    }

    /// The failure of the batch in progress when the writer thread ended without saying.
    pub fn gone(&self) -> Finished {
        Finished {
            batch: self.handed,
            held_marks: true,
            committed: false,
            result: Err(LedgerError::Io {
                path: self.path.clone(),
                source: std::io::Error::other("the ledger's writer thread stopped"),
            }),
        }
    }

    /// Stop the writer: what is queued is dropped (call once every batch is done), and
    /// the thread ends with its connection.
    pub fn close(&mut self) {
        self.to_thread = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer thread: each batch in one transaction, committed, synced when asked, then
/// said done; after a failure, nothing more.
fn serve(
    ledger: &Ledger,
    syncer: Option<&Syncer>,
    batches: &mpsc::Receiver<Batch>,
    finished: &tokio::sync::mpsc::UnboundedSender<Finished>,
) {
    let mut batch_number = 0;
    while let Ok(batch) = batches.recv() {
        batch_number += 1;
        let committed = batch
            .writes
            .iter()
            .try_for_each(|write| write.apply(ledger))
            .and_then(|()| ledger.commit());
        if committed.is_err() {
            // None of the batch stays for a later commit.
            ledger.rollback();
        }
        let was_committed = committed.is_ok();
        let written = committed.and_then(|()| match syncer {
            Some(syncer) if batch.sync => syncer.sync(),
            _ => Ok(()),
        });
        let failed = written.is_err();
        let sent = finished.send(Finished {
            batch: batch_number,
            held_marks: batch.writes.iter().any(Write::is_mark),
            committed: was_committed,
            result: written,
        });
        if failed || sent.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Prior;
    use crate::outcome::Status;

    fn status(path: &std::path::Path, key: &str) -> Option<String> {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("SELECT status FROM cases WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .ok()
    }

    /// A ledger in `dir` with a run begun, and its path.
    fn run_ledger(dir: &tempfile::TempDir) -> (std::path::PathBuf, Ledger) {
        let path = dir.path().join("l.sqlite");
        let mut ledger = Ledger::open(&path, "t").unwrap();
        ledger.begin_run("import", "x.csv", None, None).unwrap();
        (path, ledger)
    }

    fn mark(key: &str) -> Write {
        Write::Mark {
            key: key.into(),
            row: 2,
            fields: "{}".into(),
        }
    }

    #[tokio::test]
    async fn a_batch_is_committed_in_order_and_said_done_once_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (path, ledger) = run_ledger(&dir);
        let (mut writer, mut done) = Writer::start(&ledger, true).unwrap();
        assert_eq!(writer.push(mark("A")), 1);
        writer.hand_over();
        assert!(writer.busy());
        // Queued while the first batch is written: it goes with the second.
        assert_eq!(writer.push(mark("B")), 2);
        writer.hand_over();
        let first = done.recv().await.unwrap();
        writer.finished(&first);
        assert_eq!((first.batch, writer.done()), (1, 1));
        assert!(first.held_marks && first.result.is_ok());
        assert_eq!(status(&path, "A").as_deref(), Some("sending"));
        assert_eq!(status(&path, "B"), None, "B was not handed over yet");

        let answer = crate::ledger::answered("A", Status::Created, Some("c1"), "");
        assert_eq!(writer.push(Write::Answer(answer)), 2);
        writer.hand_over();
        let second = done.recv().await.unwrap();
        writer.finished(&second);
        assert_eq!(writer.done(), 2);
        assert_eq!(status(&path, "A").as_deref(), Some("created"));
        assert_eq!(status(&path, "B").as_deref(), Some("sending"));
        // The run's own connection reads what the writer committed.
        assert!(matches!(
            ledger.prior("A").unwrap(),
            Some(Prior::Created { .. })
        ));
        writer.close();
    }

    /// The nice value of each thread of this process named `name`.
    #[cfg(target_os = "linux")]
    fn nice_of_threads_named(name: &str) -> Vec<i32> {
        let mut nice = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            // Fields after the command's closing parenthesis: state is the 3rd field of
            // stat, nice the 19th.
            let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
            if comm.trim() == name
                && let Some(n) = after.split_whitespace().nth(16)
            {
                nice.push(n.parse().unwrap());
            }
        }
        nice
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_writer_yields_to_the_sender_less_than_the_other_helpers() {
        crate::background::yield_to_the_sender();
        let expected = crate::background::nice_a_helper_gets(crate::background::LEDGER_NICE);
        let dir = tempfile::tempdir().unwrap();
        let (_, ledger) = run_ledger(&dir);
        let (mut writer, _done) = Writer::start(&ledger, true).unwrap();
        // Bounded: the thread sets its priority as it starts.
        let mut found = Vec::new();
        for _ in 0..200 {
            found = nice_of_threads_named("ledger");
            if found.contains(&expected) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(
            found.contains(&expected),
            "ledger threads' nice values: {found:?}"
        );
        writer.close();
    }

    #[test]
    fn the_writer_connection_never_commits_half_a_batch_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (path, ledger) = run_ledger(&dir);
        let own = ledger.second_connection().unwrap();
        own.mark_sending_deferred("A", 2, "{}").unwrap();
        drop(own); // as when the writer thread dies mid-batch
        assert_eq!(status(&path, "A"), None);
        // The run's own connection still commits what it holds when dropped.
        ledger.mark_sending_deferred("B", 3, "{}").unwrap();
        drop(ledger);
        assert_eq!(status(&path, "B").as_deref(), Some("sending"));
    }

    #[tokio::test]
    async fn a_failed_batch_is_rolled_back_whole_and_nothing_follows() {
        let dir = tempfile::tempdir().unwrap();
        let (path, ledger) = run_ledger(&dir);
        let (mut writer, mut done) = Writer::start(&ledger, false).unwrap();
        writer.push(mark("A"));
        // The second mark of the batch fails, as on a full disk.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON cases WHEN NEW.key = 'B'
             BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        )
        .unwrap();
        writer.push(mark("B"));
        writer.hand_over();
        let failed = done.recv().await.unwrap();
        writer.finished(&failed);
        assert!(failed.result.is_err());
        assert_eq!(writer.done(), 0);
        assert_eq!(
            status(&path, "A"),
            None,
            "the batch is rolled back as a whole"
        );
        writer.push(mark("C"));
        writer.hand_over();
        assert!(!writer.busy(), "nothing is handed over after a failure");
        writer.close();
        drop(ledger);
        assert_eq!(status(&path, "A"), None);
    }
}
