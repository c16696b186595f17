//! Exit codes: the contract a scheduler reads (DESIGN.md, "Exit codes").

use std::process::ExitCode;

/// Every row created, valid, or skipped as already imported.
pub const SUCCESS: u8 = 0;
/// Nothing was done: bad arguments, unreadable input, bad mapping, no token.
pub const NOTHING_DONE: u8 = 1;
/// The run finished and some rows are invalid, rejected, failed or uncertain.
pub const ROWS_NEED_ATTENTION: u8 = 2;
/// Aborted mid-run: token rejected, API path wrong, server down (breaker).
pub const ABORTED: u8 = 3;
/// Stopped cleanly at the token's daily quota; a later run continues from the ledger.
pub const QUOTA_STOP: u8 = 4;
/// Interrupted by the user (Ctrl-C or SIGTERM).
pub const INTERRUPTED: u8 = 130;

/// How a run ended, before it becomes a process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    RowsNeedAttention,
    Aborted,
    QuotaStop,
    Interrupted,
}

impl Verdict {
    pub fn code(self) -> u8 {
        match self {
            Verdict::Clean => SUCCESS,
            Verdict::RowsNeedAttention => ROWS_NEED_ATTENTION,
            Verdict::Aborted => ABORTED,
            Verdict::QuotaStop => QUOTA_STOP,
            Verdict::Interrupted => INTERRUPTED,
        }
    }
}

impl From<Verdict> for ExitCode {
    fn from(verdict: Verdict) -> Self {
        ExitCode::from(verdict.code())
    }
}
