//! Durable marks at speed: a row's `sending` mark must be on disk before its request
//! leaves, and one sync should cover the marks of several rows (group commit). `Pace`
//! decides how many rows are marked ahead of a free slot; `Syncing` is the one sync in
//! progress.

use std::time::{Duration, Instant};

use crate::ledger::{LedgerError, Syncer};

/// The least time of sending one sync should cover (see `Pace::size_ahead`).
const BATCH_WINDOW: Duration = Duration::from_millis(2);

/// Most rows marked `sending` ahead of a free slot, waiting for their sync: the bound,
/// with the rows in flight, on what a power cut can leave uncertain.
const MAX_AHEAD: usize = 64;

/// A running average that follows a change within some ten samples.
fn average(mean: f64, sample: f64) -> f64 {
    if mean == 0.0 {
        sample
    } else {
        0.8 * mean + 0.2 * sample
    }
}

/// How fast the CRM answers and the disk syncs, and so how many rows to mark ahead.
#[derive(Debug, Default)]
pub struct Pace {
    /// Rows that may wait marked beyond one per slot: none while the CRM answers fewer
    /// rows than the disk syncs; twice the answers of a sync when it answers faster, so
    /// it never waits for the disk; at most `MAX_AHEAD`.
    pub ahead: usize,
    /// Running averages of how long one request takes (permit wait included) and one
    /// sync, in seconds.
    pub service_secs: f64,
    pub sync_secs: f64,
}

impl Pace {
    /// A sync took `took`; `slots` is how many requests may be out at once.
    pub fn synced(&mut self, took: Duration, slots: usize) {
        self.sync_secs = average(self.sync_secs, took.as_secs_f64());
        self.size_ahead(slots);
    }

    /// A request took `took`, from its spawn to its answer.
    pub fn served(&mut self, took: Duration, slots: usize) {
        self.service_secs = average(self.service_secs, took.as_secs_f64());
        self.size_ahead(slots);
    }

    /// Enough rows marked ahead that the slots never wait for the disk: the rows they send
    /// during two syncs (a row marked while one sync runs waits for the next), and at least
    /// those of `BATCH_WINDOW`, so a CRM that answers in a fraction of a millisecond gets
    /// one sync per batch of rows, not per row. Zero while a request takes longer than
    /// that (the next row of each slot suffices): at a real CRM's pace a crash leaves only
    /// the rows in flight and those next rows uncertain.
    fn size_ahead(&mut self, slots: usize) {
        if self.service_secs <= 0.0 || self.sync_secs <= 0.0 {
            return;
        }
        let window = self.sync_secs.max(BATCH_WINDOW.as_secs_f64());
        let per_sync = slots as f64 * window / self.service_secs;
        self.ahead = if per_sync < 1.0 {
            0
        } else {
            ((2.0 * per_sync).ceil() as usize).min(MAX_AHEAD)
        };
    }
}

/// The sync of the ledger's WAL in progress, if any: the commit count it covers, and its
/// task. One at a time; each covers every commit made before it starts.
#[derive(Default)]
pub struct Syncing(Option<(u64, tokio::task::JoinHandle<Result<Duration, LedgerError>>)>);

/// A finished sync: the commits it covers, and how long it took (or why it failed).
pub type Synced = (u64, Result<Duration, anyhow::Error>);

impl Syncing {
    pub fn idle(&self) -> bool {
        self.0.is_none()
    }

    /// Start a sync covering the first `covers` commits.
    pub fn start(&mut self, syncer: &Syncer, covers: u64) {
        let syncer = syncer.clone();
        self.0 = Some((
            covers,
            tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                syncer.sync().map(|()| started.elapsed())
            }),
        ));
    }

    /// The end of the sync in progress; never, when there is none.
    pub async fn done(&mut self) -> Synced {
        match &mut self.0 {
            Some((covers, task)) => {
                let covers = *covers;
                let synced = task.await;
                self.0 = None;
                let took = match synced {
                    Ok(Ok(took)) => Ok(took),
                    Ok(Err(e)) => Err(e.into()),
                    Err(e) => Err(anyhow::anyhow!("the ledger sync failed: {e}")),
                };
                (covers, took)
            }
            None => std::future::pending().await,
        }
    }

    /// Let a sync in progress finish (its outcome no longer matters: the run syncs again
    /// at its end).
    pub async fn finish(&mut self) {
        if let Some((_, task)) = self.0.take() {
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fast_crm_gets_rows_marked_ahead_and_a_slow_one_none() {
        let mut pace = Pace::default();
        // A 0.2 ms request and a 1 ms sync: two slots send 10 rows a sync.
        pace.synced(Duration::from_millis(1), 2);
        pace.served(Duration::from_micros(200), 2);
        assert_eq!(pace.ahead, 40);
        // A CRM 50 ms away: the next row of each slot is enough.
        let mut slow = Pace::default();
        slow.synced(Duration::from_millis(1), 2);
        slow.served(Duration::from_millis(50), 2);
        assert_eq!(slow.ahead, 0);
        // Never past the bound the README gives for a crash.
        let mut instant = Pace::default();
        instant.synced(Duration::from_millis(20), 2);
        instant.served(Duration::from_micros(10), 2);
        assert_eq!(instant.ahead, MAX_AHEAD);
    }
}
