//! Asking the CRM about the plan's contacts: the look-ups (per contact, or pages of the
//! whole module), then `create.rs` for the missing ones. Every call takes a token of the
//! pool (its slot and quota count) and a `--rate` permit.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;

use super::{PAGE, Plan, RowVerdict, Verdicts, Way};
use crate::ledger::Ledger;
use crate::sender::lookup::{self, Failed, Looked, Query};
use crate::sender::pool::{SlotState, TokenPool};
use crate::sender::{Attempt, Client, StopKind};

/// The window a scan of the whole module asks for (every contact the CRM holds).
const SCAN_FROM: &str = "1970-01-01 00:00";
const SCAN_TO: &str = "2100-01-01 00:00";

/// The calls of the stage, over the run's tokens, one at a time, spaced by `--rate`.
pub struct Caller<'a> {
    pub client: &'a Client,
    pub pool: &'a mut TokenPool,
    pub operation: &'a str,
    /// Time between calls (`--rate`); `None`: no limit.
    pub spacing: Option<Duration>,
    /// Calls that reached the CRM.
    pub calls: u64,
    /// Set once no token can make a call: the CRM's last answer.
    pub stopped: Option<String>,
    called: bool,
    /// Where each look-up is kept (`lookups`, for `runs --show`); none when read-only.
    pub ledger: Option<&'a Ledger>,
}

impl<'a> Caller<'a> {
    pub fn new(
        client: &'a Client,
        pool: &'a mut TokenPool,
        operation: &'a str,
        rate: Option<f64>,
    ) -> Caller<'a> {
        Caller {
            client,
            pool,
            operation,
            spacing: rate
                .filter(|r| *r > 0.0)
                .map(|r| Duration::from_secs_f64(1.01 / r)),
            calls: 0,
            stopped: None,
            called: false,
            ledger: None,
        }
    }

    async fn pace(&mut self) {
        if self.called
            && let Some(spacing) = self.spacing
        {
            tokio::time::sleep(spacing).await;
        }
        self.called = true;
    }

    /// A token's refusal: drop it; false once none is left (the stage stops).
    fn token_refused(&mut self, slot: usize, kind: StopKind, answer: &str) -> bool {
        let state = if kind == StopKind::Quota {
            SlotState::Exhausted
        } else {
            SlotState::Rejected
        };
        if kind != StopKind::WrongEndpoint {
            self.pool.mark(slot, state);
            self.pool.last_refusal = Some(answer.to_string());
        }
        if kind == StopKind::WrongEndpoint || !self.pool.usable() {
            self.stopped = Some(answer.to_string());
            return false;
        }
        true
    }

    /// One look-up (retried inside), on the next usable token.
    pub async fn ask(&mut self, query: &Query) -> Result<Vec<lookup::Record>, Failed> {
        loop {
            let Some(slot) = self.slot() else {
                let why = self.stopped.clone().unwrap_or_default();
                return Err(Failed::Stop(StopKind::Quota, why));
            };
            self.pace().await;
            let token = self.pool.token(slot);
            self.pool.start(slot);
            let looked = lookup::ask(self.client, &token, self.operation, query).await;
            if let Some(ledger) = self.ledger {
                // The look-up's record is for people (`runs --show`): losing it loses no
                // ticket, so a ledger that cannot write it only says so.
                if let Err(e) =
                    ledger.record_lookup(query.endpoint(), &query.describe(), &looked.found())
                {
                    tracing::warn!("could not keep a contacts look-up in the ledger: {e}");
                }
            }
            let Looked { records, calls } = looked;
            self.pool.finish(slot, calls);
            self.calls += u64::from(calls);
            match records {
                Err(Failed::Stop(kind, answer)) => {
                    if !self.token_refused(slot, kind, &answer) {
                        return Err(Failed::Stop(kind, answer));
                    }
                }
                other => return other,
            }
        }
    }

    /// One raw-JSON call (`insertMany`), on the next usable token; `None` when none is
    /// left. Token refusals are the caller's to read (nothing was stored).
    pub async fn post(&mut self, tail: &str, body: &Value) -> Option<(usize, Attempt)> {
        let slot = self.slot()?;
        self.pace().await;
        let token = self.pool.token(slot);
        self.pool.start(slot);
        let answer = self.client.post_json(tail, &token, body).await;
        let reached = u32::from(!matches!(answer, Attempt::NotSent(_)));
        self.pool.finish(slot, reached);
        self.calls += u64::from(reached);
        Some((slot, answer))
    }

    fn slot(&mut self) -> Option<usize> {
        if self.stopped.is_some() {
            return None;
        }
        let slot = self.pool.pick();
        if slot.is_none() {
            self.stopped =
                Some(self.pool.last_refusal.clone().unwrap_or_else(|| {
                    "no token has calls left today (less the reserve)".to_string()
                }));
        }
        slot
    }

    pub(super) fn refused(&mut self, slot: usize, kind: StopKind, answer: &str) -> bool {
        self.token_refused(slot, kind, answer)
    }
}

/// What the stage found and did.
#[derive(Debug, Default)]
pub struct Settled {
    pub verdicts: Verdicts,
    /// Contacts the CRM lacked when looked up (before any was created).
    pub missing: usize,
    /// Rows naming them.
    pub missing_rows: u64,
    pub created: usize,
    /// `insertMany` calls made.
    pub batches: u64,
    /// Look-up calls made.
    pub lookups: u64,
    /// The stage stopped: no token can make a call (the CRM's last answer). No case may be
    /// sent.
    pub stopped: Option<String>,
    /// How the look-ups were made, as the log said it.
    pub way: String,
    /// A full scan of the module was made: the contacts it holds.
    pub scanned: Option<u64>,
}

/// Look the plan's contacts up and, with `create` (and a ledger to write), create the
/// missing ones. `ledger` is `None` when read-only (`validate`): nothing is written or
/// created.
pub async fn settle(
    plan: &Plan,
    caller: &mut Caller<'_>,
    ledger: Option<&Ledger>,
    durable: bool,
) -> anyhow::Result<Settled> {
    let mut settled = Settled {
        way: plan.describe_way(),
        ..Settled::default()
    };
    let start = caller.calls;
    let (found, unsettled) = look_up(plan, caller, &mut settled).await;
    if let Some(ledger) = ledger {
        if let Some(records) = settled.scanned {
            ledger.record_contact_scan(records)?;
        }
        let mut recorded: Vec<(String, Option<String>)> = found
            .iter()
            .map(|(email, id)| (email.clone(), id.clone()))
            .collect();
        recorded.extend(
            plan.to_check
                .iter()
                .filter(|e| !found.contains_key(*e) && !unsettled.contains_key(*e))
                .map(|e| (e.clone(), None)),
        );
        ledger.contacts_looked_up(&recorded)?;
    }
    let missing: Vec<&String> = plan
        .to_check
        .iter()
        .filter(|e| !found.contains_key(*e) && !unsettled.contains_key(*e))
        .collect();
    settled.missing = missing.len();
    settled.missing_rows = missing.iter().map(|e| plan.contacts[*e].rows).sum();
    for (email, why) in unsettled {
        settled.verdicts.0.insert(email, RowVerdict::Unsettled(why));
    }
    match ledger {
        Some(ledger) if plan.create && !missing.is_empty() => {
            let outcome = super::create::create(plan, &missing, caller, ledger, durable).await?;
            settled.created = outcome.created;
            settled.batches = outcome.batches;
            settled.verdicts.0.extend(outcome.verdicts);
        }
        _ => {
            for email in missing {
                settled
                    .verdicts
                    .0
                    .insert(email.clone(), RowVerdict::Missing);
            }
        }
    }
    settled.lookups = caller.calls - start - settled.batches;
    settled.stopped.clone_from(&caller.stopped);
    Ok(settled)
}

/// The ids of `emails` the CRM has (when it gave one), and those that could not be looked
/// up, with why.
type Found = (HashMap<String, Option<String>>, HashMap<String, String>);

async fn look_up(plan: &Plan, caller: &mut Caller<'_>, settled: &mut Settled) -> Found {
    let mut found = HashMap::new();
    let mut left: Vec<&String> = plan.to_check.iter().collect();
    if let Some(Way::Pages(_)) = plan.way {
        let wanted: HashSet<&str> = left.iter().map(|e| e.as_str()).collect();
        // Never more pages than one call per contact would have cost.
        let budget = left.len() as u64 - 1;
        match scan(caller, &wanted, budget).await {
            Ok((hits, complete)) => {
                found.extend(hits.found);
                if complete {
                    settled.scanned = Some(hits.records);
                    return (found, HashMap::new());
                }
                tracing::info!(
                    "Contacts: the pages of the contacts module ran past their budget (or \
                     could not be paged further); the contacts not found in them are looked \
                     up one by one."
                );
            }
            Err(why) => tracing::warn!(
                "Contacts: paging through the contacts module failed ({why}); looking them up \
                 one by one."
            ),
        }
        left.retain(|e| !found.contains_key(*e));
    }
    let mut unsettled = HashMap::new();
    for email in left {
        if caller.stopped.is_some() {
            unsettled.insert(
                email.clone(),
                "the run stopped before it was looked up".into(),
            );
            continue;
        }
        match one(caller, email).await {
            Ok(Some(id)) => {
                found.insert(email.clone(), id);
            }
            Ok(None) => {}
            Err(why) => {
                unsettled.insert(email.clone(), why.to_string());
            }
        }
    }
    (found, unsettled)
}

/// Look one contact up: `Some(id)` when the CRM has it (the id when it gave one).
pub(super) async fn one(
    caller: &mut Caller<'_>,
    email: &str,
) -> Result<Option<Option<String>>, Failed> {
    let query = Query::Module {
        module: "contacts".into(),
        field: "emailcontact".into(),
        value: email.to_string(),
    };
    let records = caller.ask(&query).await?;
    // Only an exact match counts: the CRM's matching may be "contains" (unknown).
    Ok(records
        .iter()
        .find(|r| lookup::text(r, "emailcontact").is_some_and(|e| e.trim() == email))
        .map(|r| lookup::text(r, "wolkvox_id").map(|id| id.into_owned())))
}

/// What pages of the contacts module showed.
struct Scanned {
    /// The wanted contacts found, with their ids.
    found: HashMap<String, Option<String>>,
    /// Contacts seen in all.
    records: u64,
}

/// Page through the whole contacts module: the `wanted` contacts found, and whether every
/// page was read (a page not full). Stops after `budget` pages, or when a page cannot be
/// paged past (more than a page created in one minute).
async fn scan(
    caller: &mut Caller<'_>,
    wanted: &HashSet<&str>,
    budget: u64,
) -> Result<(Scanned, bool), Failed> {
    let mut hits = HashMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut from = SCAN_FROM.to_string();
    for _ in 0..budget.max(1) {
        let query = Query::Dates {
            module: "contacts".into(),
            from: from.clone(),
            to: SCAN_TO.into(),
            limit: PAGE,
        };
        let page = caller.ask(&query).await?;
        let mut new = 0;
        for record in &page {
            let id = lookup::text(record, "wolkvox_id").map(|id| id.into_owned());
            if let Some(id) = &id
                && !seen.insert(id.clone())
            {
                continue;
            }
            new += 1;
            if let Some(email) = lookup::text(record, "emailcontact")
                && wanted.contains(email.trim())
            {
                hits.insert(email.trim().to_string(), id);
            }
        }
        if page.len() < PAGE {
            let records = seen.len() as u64;
            return Ok((
                Scanned {
                    found: hits,
                    records,
                },
                true,
            ));
        }
        let next = page
            .last()
            .and_then(|r| lookup::text(r, "date creation"))
            .and_then(|d| d.get(..16).map(str::to_string));
        match next {
            Some(next) if next != from && new > 0 => from = next,
            _ => break,
        }
    }
    let records = seen.len() as u64;
    Ok((
        Scanned {
            found: hits,
            records,
        },
        false,
    ))
}
