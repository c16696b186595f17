//! Durable marks at speed: a row's `sending` mark must be on disk before its request
//! leaves, and one sync should cover the marks of several rows (group commit, done by the
//! ledger's writer thread). `Pace` decides how many rows are marked ahead of a free slot.

use std::time::Duration;

/// The least time of sending one sync should cover (see `Pace::size_ahead`).
const BATCH_WINDOW: Duration = Duration::from_millis(8);

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
    /// batch of marks, from its hand-over to the writer until it is committed and synced
    /// (the wait for the writer thread to run counts: rows wait for it too), in seconds.
    pub service_secs: f64,
    pub sync_secs: f64,
}

impl Pace {
    /// A batch of marks took `took`; `slots` is how many requests may be out at once.
    pub fn synced(&mut self, took: Duration, slots: usize) {
        self.sync_secs = average(self.sync_secs, took.as_secs_f64());
        self.size_ahead(slots);
    }

    /// A request took `took`, from its spawn to its answer.
    pub fn served(&mut self, took: Duration, slots: usize) {
        self.service_secs = average(self.service_secs, took.as_secs_f64());
        self.size_ahead(slots);
    }

    /// How few rows ready to leave may be left before the next batch of marks goes: at
    /// least one per slot, and those the slots send while one batch is written (half as
    /// many again, in case the next is slower). Waiting until then gathers more marks
    /// into one commit and one sync, and each costs CPU as well as the disk's time.
    pub fn low_water(&self, slots: usize) -> usize {
        if self.service_secs <= 0.0 || self.sync_secs <= 0.0 {
            return slots;
        }
        let per_batch = slots as f64 * self.sync_secs / self.service_secs;
        slots + ((1.5 * per_batch).ceil() as usize).min(self.ahead)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fast_crm_gets_rows_marked_ahead_and_a_slow_one_none() {
        let mut pace = Pace::default();
        // A 1 ms request and a 1 ms batch: two slots send 16 rows in the batch window.
        pace.synced(Duration::from_millis(1), 2);
        pace.served(Duration::from_millis(1), 2);
        assert_eq!(pace.ahead, 32);
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

    #[test]
    fn marks_go_when_the_rows_ready_would_not_last_a_batch() {
        let unmeasured = Pace::default();
        assert_eq!(
            unmeasured.low_water(2),
            2,
            "one row per slot before any figure"
        );
        // 0.25 ms a request over two slots, 1 ms a batch: 8 rows leave while one is
        // written, and half as many again are kept.
        let mut fast = Pace::default();
        fast.synced(Duration::from_millis(1), 2);
        fast.served(Duration::from_micros(250), 2);
        assert_eq!(fast.low_water(2), 2 + 12);
        // A slow CRM: a batch is written long before a slot frees.
        let mut slow = Pace::default();
        slow.synced(Duration::from_millis(1), 2);
        slow.served(Duration::from_millis(50), 2);
        assert_eq!(slow.low_water(2), 2);
        // Never more than the rows marked ahead.
        let mut disk = Pace::default();
        disk.synced(Duration::from_millis(200), 2);
        disk.served(Duration::from_micros(250), 2);
        assert_eq!(disk.low_water(2), 2 + MAX_AHEAD);
    }
}
