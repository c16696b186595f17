//! Deleting cases (`undo`): one `custom/delete.php` call per batch of ids, retried on any
//! failure but a refusal, since a delete repeated deletes nothing more.

use super::classify::{Attempt, StopKind, Verdict as Answer, classify};
use super::{Backoff, Client, Token};
use crate::exit::Verdict;

/// Tries of one batch.
const TRIES: u32 = 5;

/// Why a batch was not deleted.
#[derive(Debug)]
pub enum Failed {
    Refused(String),
    Stop(StopKind, String),
    NoAnswer(String),
}

impl Failed {
    /// The exit a failure stops the whole undo with, if it does.
    pub fn stops(&self) -> Option<Verdict> {
        match self {
            Failed::Stop(StopKind::Quota, _) => Some(Verdict::QuotaStop),
            Failed::Stop(_, _) => Some(Verdict::Aborted),
            _ => None,
        }
    }
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Refused(m) | Failed::Stop(_, m) | Failed::NoAnswer(m) => f.write_str(m),
        }
    }
}

/// One batch, retried on any failure but a refusal: the ids the CRM said it did not have.
pub async fn cases(
    client: &Client,
    token: &Token,
    operation: &str,
    ids: &[String],
) -> Result<Vec<String>, Failed> {
    let backoff = Backoff::default();
    let mut last = String::new();
    for attempt in 1..=TRIES {
        let answer = client.delete_cases(token, operation, ids).await;
        let body = match &answer {
            Attempt::Answer { status, body, .. } => Some((*status, body.clone())),
            _ => None,
        };
        match classify(&answer) {
            Answer::Created { .. } => {
                return Ok(body.map(|(_, b)| not_found(&b)).unwrap_or_default());
            }
            // Every id unknown: nothing to delete, which is what undo wants.
            Answer::Rejected(_) if body.as_ref().is_some_and(|(s, _)| *s == 404) => {
                return Ok(ids.to_vec());
            }
            Answer::Rejected(m) => return Err(Failed::Refused(m)),
            Answer::Stop(kind, m) => return Err(Failed::Stop(kind, m)),
            Answer::Retry { reason: m, .. } | Answer::Uncertain(m) => last = m,
        }
        if attempt < TRIES {
            tokio::time::sleep(backoff.delay(attempt, None)).await;
        }
    }
    Err(Failed::NoAnswer(format!(
        "gave up after {TRIES} tries: {last}"
    )))
}

/// The ids a delete answer says it did not find (`data.not_found`), when it lists them.
fn not_found(body: &str) -> Vec<String> {
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    json.pointer("/data/not_found")
        .and_then(|v| v.as_array())
        .map(|ids| {
            ids.iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
