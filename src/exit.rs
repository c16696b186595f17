//! How the process ends: the exit codes a scheduler reads (README.md, "Exit codes"), and
//! the text of the error that ended it.

use std::process::ExitCode;

/// Every row created, valid, or skipped as already imported.
pub const SUCCESS: u8 = 0;
/// Nothing was done: bad arguments, unreadable input, bad mapping, no token.
pub const NOTHING_DONE: u8 = 1;
/// The run finished and some rows are invalid, rejected, failed or uncertain (and for
/// `runs --find`: a key or case id asked about is in no ledger).
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

/// An error and its causes, each said once: our messages already quote the OS's or
/// SQLite's words, and a chain printed whole would repeat them ("disk full: disk full").
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        // A cause our message already quotes: its own causes are in it too.
        if text.contains(&cause) {
            break;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}
