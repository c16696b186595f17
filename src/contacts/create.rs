//! Creating the missing contacts with `custom/insertMany.php`, exactly once: each batch is
//! marked `sending` in the ledger (committed, and synced with `--durability full`) before
//! it leaves, and the ids are recorded after. An answer that may have stored the batch (a
//! 500, a cut connection, a timeout) is never followed by the same batch: its e-mails are
//! looked up first, and only those the CRM does not have are sent again. A refused batch
//! is split in halves until the refused contact is alone; a contact refused alone is
//! looked up (it may exist already) before its rows are called rejected.

use std::collections::{HashMap, VecDeque};

use serde_json::{Map, Value, json};

use super::settle::{Caller, one};
use super::{Plan, RowVerdict};
use crate::ledger::Ledger;
use crate::sender::{Attempt, Backoff, Verdict, classify};

/// Sends of one batch (and what is left of it after a look-up) before its contacts are
/// left for a re-run.
const ROUNDS: u32 = 4;

const INSERT_MANY: &str = "custom/insertMany.php";

#[derive(Debug, Default)]
pub(super) struct Created {
    pub created: usize,
    /// `insertMany` calls that reached the CRM.
    pub batches: u64,
    pub verdicts: HashMap<String, RowVerdict>,
}

pub(super) async fn create(
    plan: &Plan,
    missing: &[&String],
    caller: &mut Caller<'_>,
    ledger: &Ledger,
    durable: bool,
) -> anyhow::Result<Created> {
    let mut out = Created::default();
    let mut queue: VecDeque<Vec<String>> = missing
        .chunks(plan.batch.max(1))
        .map(|chunk| chunk.iter().map(|e| (*e).clone()).collect())
        .collect();
    while let Some(batch) = queue.pop_front() {
        if let Some(why) = &caller.stopped {
            let why = format!("the run stopped before it was created: {why}");
            for email in batch {
                out.verdicts
                    .insert(email, RowVerdict::Unsettled(why.clone()));
            }
            continue;
        }
        send(plan, batch, caller, ledger, durable, &mut out, &mut queue).await?;
    }
    Ok(out)
}

/// The body of one `insertMany` call.
fn body(plan: &Plan, operation: &str, emails: &[String]) -> Value {
    let entries: Vec<Value> = emails
        .iter()
        .map(|email| {
            let mut entry = Map::new();
            entry.insert("emailcontact".into(), email.clone().into());
            if let Some(wanted) = plan.contacts.get(email) {
                for (name, value) in &wanted.fields {
                    entry.insert((*name).into(), value.clone().into());
                }
            }
            Value::Object(entry)
        })
        .collect();
    json!({ "operation": operation, "module": "contacts", "fields": entries })
}

/// The ids a 2xx answer gives, in order, when it gives one per contact sent.
fn ids(answer: &Attempt, sent: usize) -> Vec<Option<String>> {
    let given: Vec<Option<String>> = match answer {
        Attempt::Answer { body, .. } => serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v.get("data").and_then(Value::as_array).cloned())
            .unwrap_or_default()
            .iter()
            .map(|item| {
                item.get("wolkvox_id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect(),
        _ => Vec::new(),
    };
    if given.len() == sent {
        given
    } else {
        vec![None; sent]
    }
}

async fn send(
    plan: &Plan,
    batch: Vec<String>,
    caller: &mut Caller<'_>,
    ledger: &Ledger,
    durable: bool,
    out: &mut Created,
    queue: &mut VecDeque<Vec<String>>,
) -> anyhow::Result<()> {
    let backoff = Backoff::default();
    let mut left = batch;
    let mut last = String::new();
    for round in 1..=ROUNDS {
        if left.is_empty() {
            return Ok(());
        }
        let emails: Vec<&str> = left.iter().map(String::as_str).collect();
        ledger.mark_contacts_sending(&emails)?;
        if durable {
            ledger.syncer()?.sync()?;
        }
        let request = body(plan, caller.operation, &left);
        let Some((slot, answer)) = caller.post(INSERT_MANY, &request).await else {
            last = caller.stopped.clone().unwrap_or_default();
            break;
        };
        if !matches!(answer, Attempt::NotSent(_)) {
            out.batches += 1;
        }
        let mut wait = None;
        match classify(&answer) {
            Verdict::Created { .. } => {
                let ids = ids(&answer, left.len());
                let created: Vec<(&str, Option<&str>)> = left
                    .iter()
                    .zip(&ids)
                    .map(|(email, id)| (email.as_str(), id.as_deref()))
                    .collect();
                ledger.contacts_created(&created)?;
                out.created += left.len();
                return Ok(());
            }
            Verdict::Rejected(_) if left.len() > 1 => {
                // Which one? Halves, in order, until it is alone.
                let second = left.split_off(left.len() / 2);
                queue.push_front(second);
                queue.push_front(left);
                return Ok(());
            }
            Verdict::Rejected(message) => {
                let email = &left[0];
                // Refused alone: it may exist already (created by an answer never read).
                match one(caller, email).await {
                    Ok(Some(id)) => ledger.contacts_looked_up(&[(email.clone(), id)])?,
                    Ok(None) => {
                        ledger.contact_refused(email, &message)?;
                        out.verdicts
                            .insert(email.clone(), RowVerdict::Refused(message));
                    }
                    Err(why) => {
                        out.verdicts
                            .insert(email.clone(), RowVerdict::Unsettled(why.to_string()));
                    }
                }
                return Ok(());
            }
            Verdict::Stop(kind, message) => {
                last = message.clone();
                // Nothing was stored; another token sends the batch, if one is left.
                if !caller.refused(slot, kind, &message) {
                    break;
                }
                continue;
            }
            Verdict::Retry { after, reason } => {
                // Proved not stored: the same batch again.
                wait = after;
                last = reason;
            }
            Verdict::Uncertain(message) => {
                last = message;
                // It may be stored: look each one up before sending any again.
                let mut still = Vec::new();
                for email in std::mem::take(&mut left) {
                    match one(caller, &email).await {
                        Ok(Some(id)) => {
                            ledger.contacts_created(&[(email.as_str(), id.as_deref())])?;
                            out.created += 1;
                        }
                        Ok(None) => still.push(email),
                        Err(why) => {
                            out.verdicts
                                .insert(email, RowVerdict::Unsettled(why.to_string()));
                        }
                    }
                }
                left = still;
            }
        }
        if round < ROUNDS && !left.is_empty() {
            tokio::time::sleep(backoff.delay(round, wait)).await;
        }
    }
    let why = format!("not created after {ROUNDS} tries: {last}");
    for email in left {
        out.verdicts
            .insert(email, RowVerdict::Unsettled(why.clone()));
    }
    Ok(())
}
