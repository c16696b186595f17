//! Progress on stderr: a live line on a terminal, a plain line every 10 s elsewhere.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::outcome::{Status, Tally};
use crate::source::ReadBytes;

pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
    last_draw: Instant,
    every: Duration,
    quiet: bool,
    bytes: Option<ReadBytes>,
}

impl Progress {
    pub fn new(quiet: bool, bytes: Option<ReadBytes>) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let bar = (tty && !quiet).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let now = Instant::now();
        Progress {
            bar,
            started: now,
            last_line: now,
            last_draw: now,
            every: Duration::from_secs(10),
            quiet,
            bytes,
        }
    }

    /// Cheap to call per row: the line is only formatted when it will be shown.
    pub fn update(&mut self, tally: &Tally, in_flight: usize) {
        if let Some(bar) = &self.bar {
            if self.last_draw.elapsed() >= Duration::from_millis(100) {
                self.last_draw = Instant::now();
                bar.set_message(describe(
                    tally,
                    in_flight,
                    self.started.elapsed(),
                    self.bytes.as_ref(),
                ));
            }
        } else if !self.quiet && self.last_line.elapsed() >= self.every {
            self.last_line = Instant::now();
            let line = describe(
                tally,
                in_flight,
                self.started.elapsed(),
                self.bytes.as_ref(),
            );
            tracing::info!(progress = %line, "Progress.");
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn describe(
    tally: &Tally,
    in_flight: usize,
    elapsed: Duration,
    bytes: Option<&ReadBytes>,
) -> String {
    let rows = tally.rows();
    let rate = rows as f64 / elapsed.as_secs_f64().max(0.001);
    let mut parts = vec![format!("{rows} rows ({rate:.0}/s)")];
    if let Some(bytes) = bytes.filter(|b| b.total > 0) {
        let read = bytes
            .read
            .load(std::sync::atomic::Ordering::Relaxed)
            .min(bytes.total);
        let done = read as f64 / bytes.total as f64;
        let mb = |b: u64| b as f64 / 1_048_576.0;
        let mut part = format!("{:.1} of {:.1} MB read", mb(read), mb(bytes.total));
        // The reader runs ahead of the sends by a bounded queue: close enough for an ETA.
        if done > 0.01 && done < 1.0 {
            let left = elapsed.as_secs_f64() * (1.0 - done) / done;
            part.push_str(&format!(
                ", ETA {}:{:02}",
                (left as u64) / 60,
                (left as u64) % 60
            ));
        }
        parts.push(part);
    }
    for status in [
        Status::Created,
        Status::Updated,
        Status::Valid,
        Status::Skipped,
        Status::Invalid,
        Status::Rejected,
        Status::Failed,
        Status::Uncertain,
        Status::Pending,
    ] {
        let n = tally.get(status);
        if n > 0 {
            parts.push(format!("{} {n}", status.as_str()));
        }
    }
    if in_flight > 0 {
        parts.push(format!("in flight {in_flight}"));
    }
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn the_line_names_counts_bytes_and_an_eta() {
        let mut tally = Tally::default();
        for _ in 0..90 {
            tally.add(Status::Created);
        }
        tally.add(Status::Invalid);
        let bytes = ReadBytes {
            read: Arc::new(AtomicU64::new(50 * 1_048_576)),
            total: 100 * 1_048_576,
        };
        let line = describe(&tally, 2, Duration::from_secs(10), Some(&bytes));
        assert_eq!(
            line,
            "91 rows (9/s) · 50.0 of 100.0 MB read, ETA 0:10 · created 90 · invalid 1 · in flight 2"
        );
    }
}
