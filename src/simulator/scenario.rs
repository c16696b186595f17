//! What the simulator does: tokens, limits, latency and faults. Plain data.

use std::time::Duration;

use super::Contact;

/// A simulator's behaviour. `Scenario::default()` is a well-behaved CRM that accepts
/// any non-empty token and has no daily limit.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Accepted tokens; empty accepts any non-empty token.
    pub tokens: Vec<String>,
    /// Calls a token may make per "day" (every call counts); 0 = unlimited.
    pub daily_limit: u64,
    /// A token is revoked (403 PLEASE VALIDATE TOKEN) after this many calls.
    pub revoke_after: Option<u64>,
    /// Simultaneous requests a token may have before 403 EXCEEDS THE LIMIT … (2).
    pub max_concurrent: usize,
    /// Case types the CRM knows; an unknown one → 412.
    pub case_types: Vec<String>,
    pub latency: Duration,
    pub jitter: Duration,
    pub faults: Faults,
    /// Requests numbered in this range (1-based, inclusive) get the maintenance 403.
    pub maintenance: Option<(u64, u64)>,
    /// How success bodies look.
    pub success: SuccessStyle,
    /// Keep every stored case's fields (for tests and `GET /__cases`); off, only count them,
    /// so a long in-process `--simulate` run stays small.
    pub keep_cases: bool,
    /// The CRM's contacts. `Some` (even empty): an insert whose `contact` is not the
    /// e-mail of one of them, or of one `insertMany` created since, gets 412 THE CONTACT
    /// DOES NOT EXIST. `None`: contacts are not checked (the contacts module starts empty).
    pub contacts: Option<Vec<Contact>>,
    /// Answer every N-th accepted insert without an id (stored all the same), as
    /// `SuccessStyle::NoId` answers all of them: the case exists, its id is unknown.
    pub no_id_every: Option<u64>,
    /// Store every N-th accepted insert twice (two cases, two ids; the answer names the
    /// first): a duplicate planted in the CRM, for look-up tests.
    pub duplicate_every: Option<u64>,
}

/// Probabilities (0.0–1.0) of each fault, per API request (every endpoint but token
/// information). "After store" means after the endpoint's work: stored, updated,
/// deleted or looked up.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub error_500_before_store: f64,
    pub error_500_after_store: f64,
    pub error_503: f64,
    pub too_many_429: f64,
    pub retry_after_secs: u64,
    pub drop_before_store: f64,
    pub drop_after_store: f64,
    /// Store, then answer only after this long (longer than the client's timeout).
    pub hang_after_store: f64,
    pub hang_for: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SuccessStyle {
    /// `{"code":"200","error":null,…,"data":{"wolkvox_id":…}}`
    #[default]
    Documented,
    /// `{"code":200,"error":"null",…}` with the id.
    IntCodeNullString,
    /// No id anywhere.
    NoId,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            tokens: Vec::new(),
            daily_limit: 0,
            revoke_after: None,
            max_concurrent: 2,
            case_types: ["Request", "Complaints", "Claims", "Suggestions"]
                .map(String::from)
                .to_vec(),
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            faults: Faults::default(),
            maintenance: None,
            success: SuccessStyle::default(),
            keep_cases: true,
            contacts: None,
            no_id_every: None,
            duplicate_every: None,
        }
    }
}
