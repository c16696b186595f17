//! Delivering one row: every attempt takes a rate-limit permit, and an answer is retried
//! only when it proves nothing was stored, or when the operation is one that repeating
//! cannot harm (see `operation.rs`).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::watch;

use super::{Attempt, Backoff, Client, Delivery, Final, Operation, Token, Verdict, classify};
use crate::mapping::Payload;

#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Requests per second; `None` for no limit.
    pub rate: Option<f64>,
    pub max_retries: u32,
    pub retry_ambiguous: bool,
    pub backoff: Backoff,
}

/// Shared by every in-flight delivery of a run.
#[derive(Clone)]
pub struct Sender {
    client: Client,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    config: SenderConfig,
}

impl Sender {
    pub fn new(client: Client, config: SenderConfig) -> Sender {
        let limiter = config.rate.filter(|r| *r > 0.0).map(|rate| {
            // Burst of one: requests are spaced evenly. The spacing is 1 % wider than
            // 1/rate so that network jitter on the way cannot put rate + 1 requests into
            // one second at the CRM's end; the run still achieves about 99 % of --rate.
            let period = Duration::from_secs_f64(1.01 / rate);
            let quota = Quota::with_period(period)
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::MIN);
            Arc::new(RateLimiter::direct(quota))
        });
        Sender {
            client,
            limiter,
            config,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Deliver one payload with `token`, retrying as `operation` allows; gives up early
    /// (without sending again) once `stop` turns true.
    pub async fn deliver(
        &self,
        operation: Operation,
        payload: &Payload,
        token: &Token,
        stop: &mut watch::Receiver<bool>,
    ) -> Delivery {
        let max_attempts = self.config.max_retries.saturating_add(1);
        let retry_ambiguous = self.config.retry_ambiguous || operation.repeatable();
        let mut last_status = None;
        let mut last_message = String::new();
        // Once an attempt may have stored the case, the row can never again be "not sent".
        let mut maybe_stored = false;
        let mut calls = 0;
        for attempt in 1..=max_attempts {
            if let Some(limiter) = &self.limiter {
                tokio::select! {
                    _ = limiter.until_ready() => {}
                    _ = stopped(stop) => return not_sent(attempt - 1, calls, last_status, last_message, maybe_stored),
                }
            } else if *stop.borrow() {
                return not_sent(attempt - 1, calls, last_status, last_message, maybe_stored);
            }
            let answer = self.client.send(operation, token, payload).await;
            if !matches!(answer, Attempt::NotSent(_)) {
                calls += 1;
            }
            if let Attempt::Answer { status, .. } = &answer {
                last_status = Some(*status);
            }
            let verdict = classify(&answer);
            let (after, reason) = match verdict {
                Verdict::Created { case_id, warning } => {
                    return Delivery {
                        end: Final::Created(case_id),
                        attempts: attempt,
                        calls,
                        http_status: last_status,
                        message: warning.unwrap_or_default(),
                    };
                }
                Verdict::Rejected(message) => {
                    return Delivery {
                        end: Final::Rejected,
                        attempts: attempt,
                        calls,
                        http_status: last_status,
                        message,
                    };
                }
                Verdict::Stop(kind, message) => {
                    return Delivery {
                        end: Final::Stop(kind),
                        attempts: attempt,
                        calls,
                        http_status: last_status,
                        message,
                    };
                }
                Verdict::Uncertain(message) if !retry_ambiguous => {
                    return Delivery {
                        end: Final::Uncertain,
                        attempts: attempt,
                        calls,
                        http_status: last_status,
                        message,
                    };
                }
                Verdict::Uncertain(message) => {
                    maybe_stored = true;
                    (None, message)
                }
                Verdict::Retry { after, reason } => (after, reason),
            };
            tracing::debug!(attempt, %reason, operation = operation.name(), "Retrying.");
            last_message = reason;
            if attempt == max_attempts {
                break;
            }
            let wait = self.config.backoff.delay(attempt, after);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped(stop) => return not_sent(attempt, calls, last_status, last_message, maybe_stored),
            }
        }
        let end = if maybe_stored {
            Final::Uncertain
        } else {
            Final::Failed
        };
        Delivery {
            end,
            attempts: max_attempts,
            calls,
            http_status: last_status,
            message: format!("gave up after {max_attempts} attempts: {last_message}"),
        }
    }
}

fn not_sent(
    attempts: u32,
    calls: u32,
    http_status: Option<u16>,
    last: String,
    maybe_stored: bool,
) -> Delivery {
    if maybe_stored {
        return Delivery {
            end: Final::Uncertain,
            attempts,
            calls,
            http_status,
            message: format!(
                "the run stopped; an earlier attempt may have stored the case ({last})"
            ),
        };
    }
    Delivery {
        end: Final::NotSent,
        attempts,
        calls,
        http_status,
        message: if last.is_empty() {
            "the run stopped before this row was sent".into()
        } else {
            format!("the run stopped before this row was sent again (last answer: {last})")
        },
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the run is over: treat a dropped sender as a stop.
    let _ = stop.wait_for(|s| *s).await;
}
