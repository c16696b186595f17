//! A Wolkvox-compatible Cases Insert server (docs/wolkvox-api.md §7), for `--simulate`,
//! `simulate` and the tests. It has its own wire types and imports no pipeline stage,
//! so it cannot share a bug with the client.

mod scenario;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use rand::Rng;
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpListener;

pub use scenario::{Faults, Scenario, SuccessStyle};

const INSERT: &str = "/server/API/v2/cases/insert.php";
const TOKEN_INFO: &str = "/server/API/v2/token/tokenInformation.php";
const REQUIRED: [&str; 8] = [
    "operation",
    "case-type",
    "responsible",
    "owner",
    "contact",
    "description",
    "status",
    "priority",
];

/// A case the simulator stored.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StoredCase {
    pub id: String,
    pub fields: BTreeMap<String, String>,
}

/// One insert request as it arrived, for rate and concurrency checks.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Arrival {
    /// Milliseconds since the simulator started.
    pub at_ms: f64,
    pub status: u16,
}

/// The simulator's memory, shared by its handlers and readable by tests.
#[derive(Debug)]
pub struct SimState {
    scenario: Scenario,
    started: Instant,
    requests: AtomicU64,
    stored: AtomicU64,
    cases: Mutex<Vec<StoredCase>>,
    arrivals: Mutex<Vec<Arrival>>,
    uses: Mutex<HashMap<String, u64>>,
    in_flight: Mutex<HashMap<String, usize>>,
    peak_in_flight: AtomicUsize,
    /// Faults switched off for the rest of the run (`heal`).
    healed: std::sync::atomic::AtomicBool,
    /// Where every stored case is also written, one JSON line each (`simulate --cases-file`).
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

    /// A simulator that also writes every case it stores to `journal` as it stores it,
    /// one JSON object per line, as `GET /__cases` lists them: what it holds can be read
    /// from where its HTTP port cannot be reached (another network namespace), and after
    /// it is gone.
    pub fn with_journal(scenario: Scenario, journal: std::fs::File) -> Arc<SimState> {
        Arc::new(SimState::unshared(scenario, Some(Mutex::new(journal))))
    }

    fn unshared(scenario: Scenario, journal: Option<Mutex<std::fs::File>>) -> SimState {
        SimState {
            scenario,
            started: Instant::now(),
            requests: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            cases: Mutex::new(Vec::new()),
            arrivals: Mutex::new(Vec::new()),
            uses: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            peak_in_flight: AtomicUsize::new(0),
            healed: std::sync::atomic::AtomicBool::new(false),
            journal,
        }
    }

    /// Write a stored case to the journal: one line, written whole, before the answer.
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
            tracing::error!(%e, case = %case.id, "The case was stored but could not be written to --cases-file.");
        }
    }

    /// From now on the CRM and its network behave: no more injected faults (tests of what
    /// a person does after a bad night, against the same server).
    pub fn heal(&self) {
        self.healed.store(true, Ordering::SeqCst);
    }

    /// The most insert requests that were being answered at once, over all tokens.
    pub fn peak_in_flight(&self) -> usize {
        self.peak_in_flight.load(Ordering::SeqCst)
    }

    /// Calls each token made today (inserts and token information), by token.
    pub fn calls_per_token(&self) -> HashMap<String, u64> {
        lock(&self.uses).clone()
    }

    /// How many cases were stored (also when `keep_cases` is off).
    pub fn stored(&self) -> u64 {
        self.stored.load(Ordering::SeqCst)
    }

    pub fn cases(&self) -> Vec<StoredCase> {
        lock(&self.cases).clone()
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

    fn log(&self, at_ms: f64, status: u16) {
        if self.scenario.keep_cases {
            lock(&self.arrivals).push(Arrival { at_ms, status });
        }
    }

    /// Count a call against the token; `Err` is the answer when the token may not call.
    fn admit(&self, headers: &HeaderMap) -> Result<String, Refusal> {
        let token = headers
            .get("wolkvox-token")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or_default()
            .to_string();
        if token.is_empty() {
            return Err(Refusal(
                401,
                "UNAUTHORIZED",
                "PLEASE ENTER THE WOLKVOX-TOKEN",
            ));
        }
        if !self.scenario.tokens.is_empty() && !self.scenario.tokens.contains(&token) {
            return Err(Refusal(403, "FORBIDDEN", "PLEASE VALIDATE TOKEN"));
        }
        let mut uses = lock(&self.uses);
        let used = uses.entry(token.clone()).or_insert(0);
        if self.scenario.revoke_after.is_some_and(|n| *used >= n) {
            return Err(Refusal(403, "FORBIDDEN", "PLEASE VALIDATE TOKEN"));
        }
        if self.scenario.daily_limit > 0 && *used >= self.scenario.daily_limit {
            return Err(Refusal(403, "FORBIDDEN", "TOKEN LIMIT EXCEEDED"));
        }
        *used += 1;
        Ok(token)
    }
}

/// The gate's refusal of a call: status, reason phrase, message.
#[derive(Debug, Clone, Copy)]
struct Refusal(u16, &'static str, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, self.1, self.2)
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

pub fn app(state: Arc<SimState>) -> Router {
    Router::new()
        .route(INSERT, any(insert))
        .route(TOKEN_INFO, get(token_info))
        .route("/__cases", get(list_cases))
        .route("/__arrivals", get(list_arrivals))
        .route("/__reset_quota", axum::routing::post(reset_quota))
        .fallback(|| async {
            error(
                400,
                "BAD REQUEST",
                "THE API YOU WANT TO CONSULT DOES NOT EXIST",
            )
        })
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

fn new_id() -> String {
    let mut rng = rand::rng();
    (0..24)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

async fn insert(
    State(state): State<Arc<SimState>>,
    method: Method,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let at_ms = state.elapsed_ms();
    let number = state.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let response = answer_insert(&state, number, method, headers, multipart).await;
    state.log(at_ms, response.status().as_u16());
    response
}

async fn answer_insert(
    state: &Arc<SimState>,
    number: u64,
    method: Method,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let s = &state.scenario;
    if method != Method::POST {
        return error(405, "METHOD NOT ALLOWED", "METHOD NOT ALLOWED");
    }
    // Like PHP behind a web server, read the whole body before answering anything: an
    // early answer would cut the client's upload and look like a network fault.
    let fields = read_fields(multipart).await;
    let token = match state.admit(&headers) {
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
                &format!(
                    "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN ({})",
                    s.max_concurrent
                ),
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

    let Some(fields) = fields else {
        return error(400, "BAD REQUEST", "SOME PARAMETERS ARE REQUIRED");
    };
    if REQUIRED
        .iter()
        .any(|name| fields.get(*name).is_none_or(|v| v.trim().is_empty()))
    {
        return error(400, "BAD REQUEST", "SOME PARAMETERS ARE REQUIRED");
    }
    if let Some(form) = fields.get("form")
        && !matches!(
            serde_json::from_str::<serde_json::Value>(form),
            Ok(serde_json::Value::Object(_))
        )
    {
        return error(400, "BAD REQUEST", "THE FORM FIELD MUST BE A JSON OBJECT");
    }
    let case_type = fields
        .get("case-type")
        .map(String::as_str)
        .unwrap_or_default();
    if !s.case_types.is_empty() && !s.case_types.iter().any(|t| t == case_type) {
        return error(412, "PRECONDITION FAILED", "THE CASE TYPE DOES NOT EXIST");
    }

    let id = new_id();
    state.stored.fetch_add(1, Ordering::SeqCst);
    let case = StoredCase {
        id: id.clone(),
        fields,
    };
    state.journal(&case);
    if s.keep_cases {
        lock(&state.cases).push(case);
    }

    if chance(f.error_500_after_store) {
        return error(500, "INTERNAL SERVER ERROR", "INTERNAL SERVER ERROR");
    }
    if chance(f.drop_after_store) {
        return dropped();
    }
    if chance(f.hang_after_store) {
        tokio::time::sleep(f.hang_for).await;
    }
    let body = match s.success {
        SuccessStyle::Documented => json!({
            "code": "200", "error": null, "msg": "THE CASE WAS CREATED SUCCESSFULLY",
            "data": {"wolkvox_id": id}
        }),
        SuccessStyle::IntCodeNullString => json!({
            "code": 200, "error": "null", "msg": "THE CASE WAS CREATED SUCCESSFULLY",
            "data": {"wolkvox_id": id}
        }),
        SuccessStyle::NoId => json!({
            "code": "200", "error": null, "msg": "1 records were are created"
        }),
    };
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Every text part of a multipart body; `None` if the body is not multipart.
async fn read_fields(
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Option<BTreeMap<String, String>> {
    let mut multipart = multipart.ok()?;
    let mut fields = BTreeMap::new();
    while let Ok(Some(field)) = multipart.next_field().await {
        let name = field.name().unwrap_or_default().to_string();
        let text = field.text().await.ok()?;
        fields.insert(name, text);
    }
    Some(fields)
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
    (
        StatusCode::OK,
        axum::Json(json!({"code": "200", "error": "null", "msg": "1 records were are found", "data": data})),
    )
        .into_response()
}

async fn list_cases(State(state): State<Arc<SimState>>) -> Response {
    axum::Json(state.cases()).into_response()
}

async fn list_arrivals(State(state): State<Arc<SimState>>) -> Response {
    axum::Json(state.arrivals()).into_response()
}

async fn reset_quota(State(state): State<Arc<SimState>>) -> Response {
    state.reset_quota();
    StatusCode::NO_CONTENT.into_response()
}
