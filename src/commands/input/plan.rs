//! What a run would do with the input's rows, for the quota plan: a pass over the file
//! before any call is made.

use crate::cli::InputArgs;
use crate::ledger::{Ledger, Prior};
use crate::mapping::{CompiledMapping, DuplicateKeys, check::Checked, check::check};
use crate::source;

/// What a run would do with the input's rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowPlan {
    /// Data rows in the file.
    pub rows: u64,
    /// Rows that would be sent: valid, and neither created nor left uncertain by an
    /// earlier run (uncertain ones count with --resend-uncertain), at most --limit.
    pub to_send: u64,
    pub invalid: u64,
    /// Rows an earlier run created (skipped) or left uncertain (not resent).
    pub done_before: u64,
}

/// The plan for the input `args` names. It is given the arguments, not the opened source
/// (the import calls it so), so it opens the input again (a workbook's archive is not
/// checked twice: `source/archive.rs` remembers it); `Source::reread` would spare the
/// sniffing if it were handed the source.
pub fn plan_rows(
    args: &InputArgs,
    mapping: &CompiledMapping,
    ledger: &Ledger,
    resend_uncertain: bool,
    limit: Option<u64>,
) -> anyhow::Result<RowPlan> {
    let mut plan = RowPlan::default();
    let mut keys = DuplicateKeys::default();
    let options = super::source_options(args)?;
    for item in source::open(&args.input, &options)?.rows {
        plan.rows += 1;
        match check(item, mapping, &mut keys) {
            Checked::Invalid { .. } => plan.invalid += 1,
            Checked::Ready { payload, .. } => match ledger.prior(&payload.key)? {
                Some(Prior::Created { .. }) => plan.done_before += 1,
                Some(Prior::InDoubt { .. }) if !resend_uncertain => plan.done_before += 1,
                _ => plan.to_send += 1,
            },
        }
    }
    if let Some(limit) = limit {
        plan.to_send = plan.to_send.min(limit);
    }
    Ok(plan)
}
