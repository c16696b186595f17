//! Every text a run writes about itself: why it stopped (`StopReason`), and what a row's
//! message says when the run, not the CRM, decided its fate. Tests and users read these;
//! they are written here and nowhere else.

use std::fmt;

use crate::exit::Verdict;

/// Why a run sends nothing more. Its `Display` is the stop message of the log, the
/// summary and every row left pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The first Ctrl-C or SIGTERM.
    Interrupted(&'static str),
    /// Every token's daily quota, less the reserve, is spent.
    QuotaSpent {
        last_answer: String,
        reserve: u64,
        /// ", around 2026-12-01 05:00 UTC" style, when the CRM said when it resets.
        reset: String,
    },
    /// The CRM refused every token.
    TokenRejected { last_answer: String },
    /// The API path answered that it does not exist: the server URL is wrong.
    WrongEndpoint(String),
    /// The breaker: this many rows in a row failed or got no usable answer.
    ServerDown { rows: u32, last: String },
    /// The ledger or a results file could not be written (the error's text, said once).
    Broken(String),
}

impl StopReason {
    /// The exit a stop leads to.
    pub fn verdict(&self) -> Verdict {
        match self {
            StopReason::Interrupted(_) => Verdict::Interrupted,
            StopReason::QuotaSpent { .. } => Verdict::QuotaStop,
            _ => Verdict::Aborted,
        }
    }

    /// What to do before the rows left pending can go, when it is more than "run again".
    pub fn rerun_when(&self) -> Option<String> {
        match self {
            StopReason::QuotaSpent { reset, .. } => {
                Some(format!("after the quota resets{reset}, run"))
            }
            StopReason::TokenRejected { .. } => Some(
                "fix the token first (WOLKVOX_TOKEN or --token-file: an internal token of this \
                 CRM, CRM → Configuration → Wolkvox Integration → Tokens), then run"
                    .into(),
            ),
            _ => None,
        }
    }

    /// The quota stop, with when the CRM said it resets (hours from now, as its token
    /// information answers).
    pub fn quota_spent(last_answer: &str, reserve: u64, hours_to_reset: Option<&str>) -> Self {
        let reset = hours_to_reset
            .map(|h| format!(" (the CRM said it resets in {h} h{})", reset_at(h)))
            .unwrap_or_default();
        StopReason::QuotaSpent {
            last_answer: last_answer.to_string(),
            reserve,
            reset,
        }
    }
}

/// " (last answer: …)", or nothing when there was none.
fn last(answer: &str) -> String {
    if answer.is_empty() {
        String::new()
    } else {
        format!(" (last answer: {answer})")
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Interrupted(signal) => write!(f, "interrupted ({signal})"),
            StopReason::QuotaSpent {
                last_answer,
                reserve,
                reset,
            } => write!(
                f,
                "the daily quota is spent{}, less the reserve of {reserve} calls: run again \
                 after the reset{reset}; the ledger continues where this run stopped",
                last(last_answer)
            ),
            StopReason::TokenRejected { last_answer } => write!(
                f,
                "the CRM rejected the token{}: check WOLKVOX_TOKEN / --token-file (an internal \
                 token of this CRM)",
                last(last_answer)
            ),
            StopReason::WrongEndpoint(message) => f.write_str(message),
            StopReason::ServerDown { rows, last } => write!(
                f,
                "{rows} rows in a row failed or got no usable answer: the server looks down \
                 (last: {last})"
            ),
            StopReason::Broken(error) => write!(
                f,
                "{error}; stopped sending at once (rows in flight, and answers not yet \
                 recorded, are left uncertain): make room or fix the file, then run the same \
                 command again, it continues where this run stopped"
            ),
        }
    }
}

/// When a reset `hours` from now falls, in UTC: ", around 2025-03-04 05:00 UTC".
fn reset_at(hours: &str) -> String {
    match hours.trim().parse::<f64>() {
        Ok(hours) if hours.is_finite() && (0.0..=48.0).contains(&hours) => {
            let at = chrono::Utc::now() + chrono::Duration::seconds((hours * 3600.0) as i64);
            format!(", around {}", at.format("%Y-%m-%d %H:%M UTC"))
        }
        _ => String::new(),
    }
}

/// The messages of rows the run decided about without asking the CRM.
pub mod row {
    use super::StopReason;
    use crate::mapping::delta::updatable;
    use crate::outcome::{Outcome, Status};

    pub fn already_created(run: i64) -> String {
        format!("already created by run {run}")
    }

    pub const SAME_KEY_THIS_RUN: &str = "the same key as an earlier row of this run, sent once";

    /// A fed-back row the errors file called a duplicate of another row's key, whose key
    /// that row created: another ticket, never that ticket's changes.
    pub fn fed_back_duplicate(run: i64) -> String {
        format!(
            "{} a row whose ticket run {run} created with this key: if this row is \
             another ticket, give it its own number in the file (it is never sent as that \
             ticket's changes)",
            crate::feedback::DUPLICATE_OF
        )
    }

    /// An invalid row whose ticket run `run` created, from a fixed copy of the row.
    pub fn invalid_but_created(message: &str, run: i64) -> String {
        format!(
            "{message} (its ticket is in the CRM already: run {run} created it, so this row \
             needs fixing only if its changes must reach the CRM)"
        )
    }

    pub fn in_doubt(run: i64) -> String {
        format!(
            "run {run} sent it but got no answer: `import --reconcile` (or `reconcile`) asks \
             the CRM and sends it only if the CRM lacks it; or check by hand and record it \
             with `wolkvox-import resolve`"
        )
    }

    pub fn not_sent(reason: &StopReason) -> String {
        format!("not sent: {reason}")
    }

    pub const LIMIT_REACHED: &str = "not sent: --limit reached";

    /// Said once a run, when the ledger has created keys from before fingerprints.
    pub const NO_FINGERPRINTS: &str = "Some rows were created by an earlier version, which \
        kept no fingerprint of what it sent: they are treated as unchanged (a change to them \
        is not seen until they are sent again).";

    /// The fields that cannot go through `cases/update.php`, said on their row.
    fn fixed(changed: &[String]) -> String {
        let fixed: Vec<&str> = changed
            .iter()
            .filter(|f| !updatable(f))
            .map(String::as_str)
            .collect();
        match fixed.as_slice() {
            [] => String::new(),
            [one] => format!("; {one} changed: cannot be updated through the API"),
            many => format!(
                "; {} changed: cannot be updated through the API",
                many.join(", ")
            ),
        }
    }

    /// A created row changed, without `--update`.
    pub fn changed(run: i64, changed: &[String]) -> String {
        let updatable: Vec<&str> = changed
            .iter()
            .filter(|f| updatable(f))
            .map(String::as_str)
            .collect();
        if updatable.is_empty() {
            return changed_not_updatable(run, changed);
        }
        format!(
            "changed since run {run}: {} — pass --update to send{}",
            updatable.join(", "),
            fixed(changed)
        )
    }

    /// A created row whose changes cannot go through `update.php` at all: nothing sent.
    pub fn changed_not_updatable(run: i64, changed: &[String]) -> String {
        format!("created by run {run}; nothing sent{}", fixed(changed))
    }

    /// A created row changed, but the CRM gave no case id when it was created.
    pub fn changed_without_id(run: i64, changed: &[String]) -> String {
        format!(
            "changed since run {run} ({}), but the CRM returned no case id for it: it cannot \
             be updated until its id is known (`wolkvox-import reconcile --ids` finds it in \
             the CRM, or record it with `wolkvox-import resolve`)",
            changed.join(", ")
        )
    }

    /// How an update's answer reads on its row: `updated` with the fields sent, or why not.
    pub fn after_update(mut outcome: Outcome, changed: &[String]) -> Outcome {
        let sent: Vec<&str> = changed
            .iter()
            .filter(|f| updatable(f))
            .map(String::as_str)
            .collect();
        let sent = sent.join(", ");
        match outcome.status {
            Status::Created => {
                outcome.status = Status::Updated;
                outcome.message = format!("updated: {sent}{}", fixed(changed));
            }
            // The case exists whatever the answer: the change is sent again next run.
            _ => {
                let why = std::mem::take(&mut outcome.message);
                outcome.message = format!(
                    "the update of {sent} did not go through ({why}); the next import \
                     --update sends it again"
                );
            }
        }
        outcome
    }

    /// Marked `sending` but never sent, and the ledger could not record that: a committed
    /// mark stays, and the next run lists the row as uncertain although it never left.
    pub fn not_sent_unrecorded(reason: &StopReason) -> String {
        format!(
            "not sent ({reason}); the ledger could not record that: it never left, so if the \
             next run lists it as uncertain, `resolve --missing` it"
        )
    }

    /// The CRM answered, but the ledger could not record the answer.
    pub fn answer_unrecorded(answer: &str) -> String {
        format!(
            "the CRM answered {answer}, but the ledger could not record it; a re-run finds it \
             uncertain: record it with `wolkvox-import resolve`"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stop_leads_to_its_exit_and_says_what_to_do() {
        let quota = StopReason::quota_spent("HTTP 403: TOKEN LIMIT EXCEEDED", 50, Some("7"));
        assert_eq!(quota.verdict(), Verdict::QuotaStop);
        let text = quota.to_string();
        assert!(
            text.contains("(last answer: HTTP 403: TOKEN LIMIT EXCEEDED)"),
            "{text}"
        );
        assert!(text.contains("reserve of 50 calls"), "{text}");
        assert!(text.contains("resets in 7 h, around "), "{text}");
        assert!(
            quota
                .rerun_when()
                .is_some_and(|w| w.starts_with("after the quota resets"))
        );

        let token = StopReason::TokenRejected {
            last_answer: String::new(),
        };
        assert_eq!(token.verdict(), Verdict::Aborted);
        assert!(
            token
                .to_string()
                .starts_with("the CRM rejected the token: check")
        );
        assert!(
            token
                .rerun_when()
                .is_some_and(|w| w.contains("fix the token"))
        );

        let signal = StopReason::Interrupted("SIGTERM");
        assert_eq!(signal.verdict(), Verdict::Interrupted);
        assert_eq!(signal.to_string(), "interrupted (SIGTERM)");
        assert_eq!(signal.rerun_when(), None);
    }

    #[test]
    fn a_reset_time_is_only_said_when_the_crm_gave_a_plausible_one() {
        assert_eq!(reset_at("soon"), "");
        assert_eq!(reset_at("1000"), "");
        assert!(reset_at("2.5").starts_with(", around 20"));
    }
}
