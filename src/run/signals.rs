//! Ctrl-C and SIGTERM: the first stops sending and lets the requests in flight finish;
//! the second exits at once (the ledger is consistent at every commit).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::watch;

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

/// Watches for signals while the run lasts (stops watching when dropped).
pub struct Signals {
    received: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl Signals {
    /// Watch; on the first signal, `stop` turns true.
    pub fn watch(stop: watch::Sender<bool>) -> Signals {
        let received = Arc::new(AtomicU8::new(NO_SIGNAL));
        let task = tokio::spawn(watch_signals(stop, received.clone()));
        Signals { received, task }
    }

    /// The first signal received, by name.
    pub fn received(&self) -> Option<&'static str> {
        match self.received.load(Ordering::SeqCst) {
            NO_SIGNAL => None,
            signal => Some(signal_name(signal)),
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn watch_signals(stop: watch::Sender<bool>, received: Arc<AtomicU8>) {
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
            received.store(got, Ordering::SeqCst);
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
