//! The one path every endpoint's call takes, as insert's always has: the method, the whole
//! body read, the token and its daily quota (one use per call), the token's simultaneous
//! slots, the maintenance window, latency, the faults before the work and, once the work is
//! done, the faults that lose its answer. Each endpoint only supplies the work.

use crate::wolkvox;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::Serialize;

use super::{Faults, SimState, chance, dropped, error, lock};

/// Which API a call was made to (`GET /__arrivals` names it).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Insert,
    Update,
    QueryCases,
    Query,
    QueryDates,
    InsertMany,
    Delete,
}

/// What an endpoint's work came to.
pub(super) enum Done {
    /// The request was refused; nothing changed. Answered as is.
    Refused(Response),
    /// The work was done (stored, updated, deleted, looked up): the faults after storing
    /// may still lose this answer, as they lose an insert's.
    Worked(Response),
}

/// The gate's refusal of a call: status, reason phrase, message.
#[derive(Debug, Clone, Copy)]
pub(super) struct Refusal(pub u16, pub &'static str, pub &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, self.1, self.2)
    }
}

impl SimState {
    /// Count a call against the token; `Err` is the answer when the token may not call.
    pub(super) fn admit(&self, headers: &HeaderMap) -> Result<String, Refusal> {
        let token = headers
            .get("wolkvox-token")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or_default()
            .to_string();
        if token.is_empty() {
            return Err(Refusal(401, "UNAUTHORIZED", wolkvox::TOKEN_MISSING));
        }
        if !self.scenario.tokens.is_empty() && !self.scenario.tokens.contains(&token) {
            return Err(Refusal(403, "FORBIDDEN", wolkvox::TOKEN_INVALID));
        }
        let mut uses = lock(&self.uses);
        let used = uses.entry(token.clone()).or_insert(0);
        if self.scenario.revoke_after.is_some_and(|n| *used >= n) {
            return Err(Refusal(403, "FORBIDDEN", wolkvox::TOKEN_INVALID));
        }
        if self.scenario.daily_limit > 0 && *used >= self.scenario.daily_limit {
            return Err(Refusal(403, "FORBIDDEN", wolkvox::TOKEN_LIMIT));
        }
        *used += 1;
        Ok(token)
    }
}

/// Decrements a token's in-flight count when the request ends, however it ends.
struct InFlight {
    state: Arc<SimState>,
    token: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(n) = lock(&self.state.in_flight).get_mut(&self.token) {
            *n = n.saturating_sub(1);
        }
    }
}

/// Answer one call to `endpoint`: `body` reads the request's body, `work` does what the
/// endpoint does with it. Every call is numbered (for `maintenance`) and logged.
pub(super) async fn call<B>(
    state: &Arc<SimState>,
    endpoint: Endpoint,
    method: Method,
    headers: &HeaderMap,
    body: impl Future<Output = B>,
    work: impl FnOnce(&Arc<SimState>, B) -> Done,
) -> Response {
    let at_ms = state.elapsed_ms();
    let number = state.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let response = answer(state, number, method, headers, body, work).await;
    state.log(at_ms, endpoint, response.status().as_u16());
    response
}

async fn answer<B>(
    state: &Arc<SimState>,
    number: u64,
    method: Method,
    headers: &HeaderMap,
    body: impl Future<Output = B>,
    work: impl FnOnce(&Arc<SimState>, B) -> Done,
) -> Response {
    let s = &state.scenario;
    if method != Method::POST {
        return error(405, "METHOD NOT ALLOWED", "METHOD NOT ALLOWED");
    }
    // Like PHP behind a web server, read the whole body before answering anything: an
    // early answer would cut the client's upload and look like a network fault.
    let body = body.await;
    let token = match state.admit(headers) {
        Ok(token) => token,
        Err(refusal) => return refusal.into_response(),
    };
    let _in_flight = {
        let mut in_flight = lock(&state.in_flight);
        let n = in_flight.entry(token.clone()).or_insert(0);
        if *n >= s.max_concurrent {
            return error(
                403,
                "FORBIDDEN",
                &format!("{} PER TOKEN ({})", wolkvox::SIMULTANEOUS, s.max_concurrent),
            );
        }
        *n += 1;
        let total: usize = in_flight.values().sum();
        state.peak_in_flight.fetch_max(total, Ordering::SeqCst);
        InFlight {
            state: state.clone(),
            token,
        }
    };
    if s.maintenance
        .is_some_and(|(from, to)| (from..=to).contains(&number))
    {
        return error(
            403,
            "FORBIDDEN",
            "THE SERVICE IS UNDER MAINTENANCE, TRY AGAIN LATER",
        );
    }
    let delay = s.latency
        + if s.jitter.is_zero() {
            Duration::ZERO
        } else {
            s.jitter.mul_f64(rand::rng().random_range(0.0..1.0))
        };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let calm = Faults::default();
    let f = if state.healed.load(Ordering::SeqCst) {
        &calm
    } else {
        &s.faults
    };
    if chance(f.too_many_429) {
        let mut r = error(429, "TOO MANY REQUESTS", "TOO MANY REQUESTS");
        if let Ok(v) = f.retry_after_secs.to_string().parse() {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    if chance(f.error_503) {
        return error(503, "SERVICE UNAVAILABLE", "SERVICE UNAVAILABLE");
    }
    if chance(f.error_500_before_store) {
        return error(500, "INTERNAL SERVER ERROR", "INTERNAL SERVER ERROR");
    }
    if chance(f.drop_before_store) {
        return dropped();
    }

    let answer = match work(state, body) {
        Done::Refused(answer) => return answer,
        Done::Worked(answer) => answer,
    };

    if chance(f.error_500_after_store) {
        return error(500, "INTERNAL SERVER ERROR", "INTERNAL SERVER ERROR");
    }
    if chance(f.drop_after_store) {
        return dropped();
    }
    if chance(f.hang_after_store) {
        tokio::time::sleep(f.hang_for).await;
    }
    answer
}
