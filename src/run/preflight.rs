//! Before the first row: one token-information call per token, which says whether each
//! token is accepted and how much of its daily quota is left, and so the quota plan (how
//! many rows can go today, and how many days the rest needs).

use crate::ledger::{Ledger, LedgerError, Prior};
use crate::mapping::check::{self, Checked};
use crate::mapping::{CompiledMapping, DuplicateKeys, delta};
use crate::sender::Client;
use crate::source::Source;

use super::Settings;

/// What a run would do with the input's rows, read ahead before any call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowPlan {
    /// Data rows in the file.
    pub rows: u64,
    /// Requests the rows need: inserts of rows neither created nor left uncertain by an
    /// earlier run (uncertain ones count with --resend-uncertain), and with --update the
    /// updates of created rows that changed; at most --limit.
    pub to_send: u64,
    pub invalid: u64,
    /// Rows an earlier run created (skipped) or left uncertain (not resent).
    pub done_before: u64,
    /// Calls the contacts stage may spend first (`contacts:`): look-ups, and batches of
    /// `insertMany` if every contact looked up were missing.
    pub contact_calls: u64,
}

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The plan for the opened `source`, whose rows are read again (the same options, the same
/// header): what `settings` would send of it, by the ledger.
pub fn plan_rows(
    source: &Source,
    mapping: &CompiledMapping,
    ledger: &Ledger,
    settings: &Settings,
) -> Result<RowPlan, PlanError> {
    let mut plan = RowPlan::default();
    let mut keys = DuplicateKeys::default();
    // A fed-back errors file: a row that was a duplicate of another row's key stays one
    // (invalid), as the run decides it, not a ticket created before.
    let fed_back_error = crate::feedback::error_column(mapping.headers());
    for item in source.reread()? {
        plan.rows += 1;
        match check::check(item, mapping, &mut keys) {
            Checked::Invalid { .. } => plan.invalid += 1,
            Checked::Ready { payload, cells, .. } => match ledger.prior(&payload.key)? {
                Some(Prior::Created { .. })
                    if crate::feedback::was_duplicate(fed_back_error, &cells) =>
                {
                    plan.invalid += 1
                }
                Some(Prior::Created {
                    fields: Some(sent),
                    case_id: Some(id),
                    ..
                }) if settings.update => {
                    let changed = delta::changed(&sent, &payload.fingerprints());
                    if payload.for_update(&id, &changed).is_some() {
                        plan.to_send += 1;
                    } else {
                        plan.done_before += 1;
                    }
                }
                Some(Prior::Created { .. }) => plan.done_before += 1,
                Some(Prior::InDoubt { .. }) if !settings.resend_uncertain => plan.done_before += 1,
                _ => plan.to_send += 1,
            },
        }
    }
    if let Some(limit) = settings.limit {
        plan.to_send = plan.to_send.min(limit);
    }
    Ok(plan)
}
use crate::sender::pool::TokenPool;

/// Ask the CRM about the tokens and say the quota plan. `Ok(Some(answer))` when no token
/// is usable (the CRM's last refusal): the run stops before its first row. A file with no
/// data rows spends no call; an unreachable server is an error, since nothing would get
/// through.
pub async fn check(
    pool: &mut TokenPool,
    client: &Client,
    operation: &str,
    reserve: u64,
    ahead: Option<&RowPlan>,
) -> anyhow::Result<Option<String>> {
    if ahead.is_some_and(|a| a.rows == 0) {
        tracing::info!("No data rows: no token-information call made.");
        return Ok(None);
    }
    let plan = pool
        .preflight(client, operation, reserve)
        .await
        .map_err(|why| {
            anyhow::anyhow!(
                "cannot reach {} ({why}): check --server and the network; nothing was sent",
                client.url().host_str().unwrap_or_default()
            )
        })?;
    if plan.known
        && let Some(rows) = ahead
    {
        let send = rows.to_send;
        let calls = send + rows.contact_calls;
        let today = plan
            .calls_left_today
            .min(calls)
            .saturating_sub(rows.contact_calls);
        let days = if plan.calls_per_day > 0 {
            calls.div_ceil(plan.calls_per_day)
        } else {
            0
        };
        tracing::info!(
            to_send = send,
            invalid = rows.invalid,
            done_before = rows.done_before,
            contact_calls = rows.contact_calls,
            calls_left_today = plan.calls_left_today,
            calls_per_day = plan.calls_per_day,
            "Quota plan: {send} rows to send ({} invalid and {} created or left uncertain by \
             earlier runs are not), after at most {} contact call(s); {today} rows can go \
             today; at this quota they need about {days} day(s), retries aside.",
            rows.invalid,
            rows.done_before,
            rows.contact_calls
        );
    }
    if pool.usable() {
        Ok(None)
    } else {
        Ok(Some(pool.last_refusal.clone().unwrap_or_default()))
    }
}
