//! Before the first row: one token-information call per token, which says whether each
//! token is accepted and how much of its daily quota is left, and so the quota plan (how
//! many rows can go today, and how many days the rest needs).

use crate::commands::input::RowPlan;
use crate::sender::Client;
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
        let today = plan.calls_left_today.min(send);
        let days = if plan.calls_per_day > 0 {
            send.div_ceil(plan.calls_per_day)
        } else {
            0
        };
        tracing::info!(
            to_send = send,
            invalid = rows.invalid,
            done_before = rows.done_before,
            calls_left_today = plan.calls_left_today,
            calls_per_day = plan.calls_per_day,
            "Quota plan: {send} rows to send ({} invalid and {} created or left uncertain by \
             earlier runs are not); {today} can go today; at this quota they need about \
             {days} day(s), retries aside.",
            rows.invalid,
            rows.done_before
        );
    }
    if pool.usable() {
        Ok(None)
    } else {
        Ok(Some(pool.last_refusal.clone().unwrap_or_default()))
    }
}
