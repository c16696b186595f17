//! A Wolkvox-compatible CRM server (docs/wolkvox-api.md §7 and §8), for `--simulate`,
//! `simulate` and the tests: cases insert, update, look-ups and delete, the contacts
//! module, token information. It has its own wire types and imports no pipeline stage,
//! so it cannot share a bug with the client.
//!
//! Every API call goes through `gate::call` (token, quota, slots, maintenance, latency,
//! faults); `cases`, `contacts` and `query` only say what each endpoint does.

mod cases;
mod contacts;
mod delete;
mod gate;
mod query;
mod scenario;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use rand::Rng;
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpListener;

pub use cases::StoredCase;
pub use contacts::{Contact, StoredContact, parse_contacts};
pub use gate::Endpoint;
pub use scenario::{Faults, Scenario, SuccessStyle};

const API: &str = "/server/API/v2";

/// One API request as it arrived, for rate and concurrency checks.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Arrival {
    /// Milliseconds since the simulator started.
    pub at_ms: f64,
    pub endpoint: Endpoint,
    pub status: u16,
}

/// What the CRM holds: cases and contacts, each in the order stored, deleted ones kept
/// (marked), with an index by id.
#[derive(Debug, Default)]
struct Book {
    cases: Vec<StoredCase>,
    case_at: HashMap<String, usize>,
    contacts: Vec<StoredContact>,
    contact_at: HashMap<String, usize>,
    /// Live (not deleted) contacts by their e-mail, trimmed.
    contact_by_email: HashMap<String, usize>,
}

/// The simulator's memory, shared by its handlers and readable by tests.
#[derive(Debug)]
pub struct SimState {
    scenario: Scenario,
    started: Instant,
    /// API calls numbered as they arrive (for `maintenance`).
    requests: AtomicU64,
    /// Cases stored, planted duplicates included (also when `keep_cases` is off).
    stored: AtomicU64,
    /// Inserts accepted (for `no_id_every` and `duplicate_every`).
    inserts: AtomicU64,
    book: Mutex<Book>,
    arrivals: Mutex<Vec<Arrival>>,
    uses: Mutex<HashMap<String, u64>>,
    in_flight: Mutex<HashMap<String, usize>>,
    peak_in_flight: AtomicUsize,
    /// Faults switched off for the rest of the run (`heal`).
    healed: AtomicBool,
    /// Where every stored, updated or deleted case is also written, one JSON line each
    /// time (`simulate --cases-file`).
    journal: Option<Mutex<std::fs::File>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A handler that panicked holding the lock left valid data: keep serving.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SimState {
    pub fn new(scenario: Scenario) -> Arc<SimState> {
        Arc::new(SimState::unshared(scenario, None))
    }

    /// A simulator that also writes a case to `journal` each time it stores, updates or
    /// deletes it, one JSON object per line as `GET /__cases` lists them: the last line
    /// of an id is what the CRM holds. What it holds can be read from where its HTTP port
    /// cannot be reached (another network namespace), and after it is gone.
    pub fn with_journal(scenario: Scenario, journal: std::fs::File) -> Arc<SimState> {
        Arc::new(SimState::unshared(scenario, Some(Mutex::new(journal))))
    }

    fn unshared(scenario: Scenario, journal: Option<Mutex<std::fs::File>>) -> SimState {
        let mut book = Book::default();
        for contact in scenario.contacts.iter().flatten() {
            book.add_contact(contact.clone());
        }
        SimState {
            scenario,
            started: Instant::now(),
            requests: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            inserts: AtomicU64::new(0),
            book: Mutex::new(book),
            arrivals: Mutex::new(Vec::new()),
            uses: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            peak_in_flight: AtomicUsize::new(0),
            healed: AtomicBool::new(false),
            journal,
        }
    }

    /// Write a case as it now is to the journal: one line, written whole, before the answer.
    fn journal(&self, case: &StoredCase) {
        let Some(journal) = &self.journal else {
            return;
        };
        let result = serde_json::to_vec(case)
            .map_err(std::io::Error::from)
            .and_then(|mut line| {
                line.push(b'\n');
                std::io::Write::write_all(&mut *lock(journal), &line)
            });
        if let Err(e) = result {
            tracing::error!(%e, case = %case.id, "The case was changed but could not be written to --cases-file.");
        }
    }

    /// From now on the CRM and its network behave: no more injected faults (tests of what
    /// a person does after a bad night, against the same server).
    pub fn heal(&self) {
        self.healed.store(true, Ordering::SeqCst);
    }

    /// The scenario's faults again, after `heal` (a CRM good for one run, bad for the next).
    pub fn fail_again(&self) {
        self.healed.store(false, Ordering::SeqCst);
    }

    /// The most API requests that were being answered at once, over all tokens.
    pub fn peak_in_flight(&self) -> usize {
        self.peak_in_flight.load(Ordering::SeqCst)
    }

    /// Calls each token made today (every endpoint and token information), by token.
    pub fn calls_per_token(&self) -> HashMap<String, u64> {
        lock(&self.uses).clone()
    }

    /// How many cases were stored (also when `keep_cases` is off), planted duplicates too.
    pub fn stored(&self) -> u64 {
        self.stored.load(Ordering::SeqCst)
    }

    /// Every case stored, in order, deleted ones too (marked `deleted`).
    pub fn cases(&self) -> Vec<StoredCase> {
        lock(&self.book).cases.clone()
    }

    /// Every contact: the configured list first, then those `insertMany` created; deleted
    /// ones too (marked `deleted`).
    pub fn contacts(&self) -> Vec<StoredContact> {
        lock(&self.book).contacts.clone()
    }

    /// Test hook: date case or contact `id` as created at `created` (`YYYY-MM-DD HH:MM:SS`,
    /// server time), to plant records in given minutes. False when no record has that id
    /// or the time is not written so.
    pub fn set_created(&self, id: &str, created: &str) -> bool {
        if chrono::NaiveDateTime::parse_from_str(created, "%Y-%m-%d %H:%M:%S").is_err() {
            return false;
        }
        let mut book = lock(&self.book);
        if let Some(&at) = book.case_at.get(id) {
            book.cases[at].created = created.to_string();
            return true;
        }
        if let Some(&at) = book.contact_at.get(id) {
            book.contacts[at].created = created.to_string();
            return true;
        }
        false
    }

    pub fn arrivals(&self) -> Vec<Arrival> {
        lock(&self.arrivals).clone()
    }

    /// Forget the day's calls, as the CRM does at its daily reset.
    pub fn reset_quota(&self) {
        lock(&self.uses).clear();
    }

    fn elapsed_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    fn log(&self, at_ms: f64, endpoint: Endpoint, status: u16) {
        if self.scenario.keep_cases {
            lock(&self.arrivals).push(Arrival {
                at_ms,
                endpoint,
                status,
            });
        }
    }
}

pub fn app(state: Arc<SimState>) -> Router {
    let path = |tail: &str| format!("{API}/{tail}");
    Router::new()
        .route(&path("cases/insert.php"), any(cases::insert))
        .route(&path("cases/update.php"), any(cases::update))
        .route(&path("cases/queryCases.php"), any(query::query_cases))
        .route(&path("custom/query.php"), any(query::query))
        .route(&path("custom/queryDates.php"), any(query::query_dates))
        .route(&path("custom/insertMany.php"), any(contacts::insert_many))
        .route(&path("custom/delete.php"), any(query::delete))
        .route(crate::wolkvox::TOKEN_INFO_PATH, get(token_info))
        .route("/__cases", get(list_cases))
        .route("/__contacts", get(list_contacts))
        .route("/__arrivals", get(list_arrivals))
        .route("/__reset_quota", axum::routing::post(reset_quota))
        .fallback(|| async { error(400, "BAD REQUEST", crate::wolkvox::NO_SUCH_API) })
        .with_state(state)
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: Arc<SimState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A simulator running on this process's runtime, for `import --simulate`.
pub struct Running {
    pub addr: SocketAddr,
    pub state: Arc<SimState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Running {
    pub async fn start(scenario: Scenario) -> std::io::Result<Running> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = SimState::new(scenario);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = serve(listener, served, shutdown).await {
                tracing::error!(%e, "The simulator stopped.");
            }
        });
        Ok(Running {
            addr,
            state,
            stop: Some(stop),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn error(status: u16, reason: &str, msg: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        axum::Json(json!({"code": status, "error": reason, "msg": msg})),
    )
        .into_response()
}

/// 400 SOME PARAMETERS ARE REQUIRED, the CRM's answer to a missing or empty field.
fn required() -> Response {
    error(400, "BAD REQUEST", "SOME PARAMETERS ARE REQUIRED")
}

/// A 200 with the CRM's envelope.
fn ok(body: serde_json::Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Headers, then a body that breaks: the client sees the connection drop mid-answer.
fn dropped() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("connection dropped"))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn chance(p: f64) -> bool {
    p > 0.0 && rand::rng().random_bool(p.clamp(0.0, 1.0))
}

/// A record id as the CRM writes them: 24 hex digits.
fn new_id() -> String {
    let mut rng = rand::rng();
    (0..24)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// The server's clock, as records are dated: `YYYY-MM-DD HH:MM:SS`, local time.
fn now() -> String {
    chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Every `every`-th (1-based `n`); `None` or 0: never.
fn every(every: Option<u64>, n: u64) -> bool {
    every.is_some_and(|every| every > 0 && n.is_multiple_of(every))
}

async fn token_info(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(_query): Query<HashMap<String, String>>,
) -> Response {
    let token = match state.admit(&headers) {
        Ok(token) => token,
        Err(refusal) => return refusal.into_response(),
    };
    let used = lock(&state.uses).get(&token).copied().unwrap_or(0);
    let limit = state.scenario.daily_limit;
    let data = json!({
        "token_limit": limit,
        "token_use_today": used,
        "available_consumition_options": limit.saturating_sub(used),
        "hours_to_restart_count": 24,
    });
    ok(json!({"code": "200", "error": "null", "msg": "1 records were are found", "data": data}))
}

async fn list_cases(State(state): State<Arc<SimState>>) -> Response {
    axum::Json(state.cases()).into_response()
}

async fn list_contacts(State(state): State<Arc<SimState>>) -> Response {
    axum::Json(state.contacts()).into_response()
}

async fn list_arrivals(State(state): State<Arc<SimState>>) -> Response {
    axum::Json(state.arrivals()).into_response()
}

async fn reset_quota(State(state): State<Arc<SimState>>) -> Response {
    state.reset_quota();
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::every;

    #[test]
    fn every_nth_is_counted_from_one_and_zero_is_off() {
        let hits: Vec<u64> = (1..=7).filter(|n| every(Some(3), *n)).collect();
        assert_eq!(hits, [3, 6]);
        assert!((1..=7).all(|n| every(Some(1), n)));
        assert!(!(1..=7).any(|n| every(Some(0), n) || every(None, n)));
    }
}
