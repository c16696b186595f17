//! Progress on stderr: a live line on a terminal, a plain line every 10 s elsewhere.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::outcome::{Status, Tally};

pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
    last_draw: Instant,
    every: Duration,
    quiet: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
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
        }
    }

    /// Cheap to call per row: the line is only formatted when it will be shown.
    pub fn update(&mut self, tally: &Tally, in_flight: usize) {
        if let Some(bar) = &self.bar {
            if self.last_draw.elapsed() >= Duration::from_millis(100) {
                self.last_draw = Instant::now();
                bar.set_message(describe(tally, in_flight, self.started.elapsed()));
            }
        } else if !self.quiet && self.last_line.elapsed() >= self.every {
            self.last_line = Instant::now();
            let line = describe(tally, in_flight, self.started.elapsed());
            tracing::info!(progress = %line, "Progress.");
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn describe(tally: &Tally, in_flight: usize, elapsed: Duration) -> String {
    let rows = tally.rows();
    let rate = rows as f64 / elapsed.as_secs_f64().max(0.001);
    let mut parts = vec![format!("{rows} rows ({rate:.0}/s)")];
    for status in [
        Status::Created,
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
