//! The sender stage: delivers one payload with the rate limit, retries and backoff
//! (`retry.rs`), over the run's tokens (`pool.rs`), reading each answer (`classify.rs`).
//!
//! Every attempt, retries included, takes a rate-limit permit: `--rate` is a promise to
//! the CRM. Only answers that prove nothing was stored are retried (see `classify`).

mod backoff;
pub mod breaker;
pub mod classify;
pub mod client;
pub mod delete;
pub mod lookup;
mod operation;
pub mod pool;
mod retry;
pub mod token;

pub use backoff::Backoff;
pub use breaker::Breaker;
pub use classify::{Attempt, StopKind, Verdict, classify};
pub use client::Client;
pub use operation::Operation;
pub use retry::{Sender, SenderConfig};
pub use token::Token;

/// The end of one row's delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Final {
    Created(Option<String>),
    Rejected,
    /// Retries exhausted on answers that prove nothing was stored.
    Failed,
    Uncertain,
    /// The run stopped before this row was tried (again); nothing was stored.
    NotSent,
    /// This answer stops the whole run; the row itself was not stored.
    Stop(StopKind),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub end: Final,
    pub attempts: u32,
    /// The attempts that reached the CRM (and so cost quota): those that never left
    /// (connection refused, DNS, TLS) are not counted.
    pub calls: u32,
    pub http_status: Option<u16>,
    pub message: String,
}
