//! What the ledger tells about past runs, for `runs`: each run's line, the rows left open,
//! and where a key or a case id went.

use rusqlite::params;

use super::{Ledger, LedgerError, State};

/// One run's line in `runs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub id: i64,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub command: String,
    pub input: String,
    pub input_sha256: Option<String>,
    pub exit_code: Option<i64>,
    pub counts: Option<String>,
}

/// A row still needing attention, for `runs --show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRow {
    pub key: String,
    pub source_row: i64,
    pub status: String,
    pub message: String,
}

/// What the ledger holds for one key, for `runs --find`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundCase {
    pub key: String,
    pub status: String,
    pub case_id: Option<String>,
    pub run_id: i64,
    /// The input the run read (its name as given to `import`).
    pub input: Option<String>,
    pub source_row: i64,
    pub http_status: Option<i64>,
    pub attempts: i64,
    pub message: String,
    pub updated_at: String,
}

impl Ledger {
    pub fn runs(&self) -> Result<Vec<RunRecord>, LedgerError> {
        self.query_all(
            "SELECT id, started_at, ended_at, command, input, exit_code, counts, input_sha256
                 FROM runs ORDER BY id",
            [],
            |r| {
                Ok(RunRecord {
                    id: r.get(0)?,
                    started_at: r.get(1)?,
                    ended_at: r.get(2)?,
                    command: r.get(3)?,
                    input: r.get(4)?,
                    exit_code: r.get(5)?,
                    counts: r.get(6)?,
                    input_sha256: r.get(7)?,
                })
            },
        )
    }

    /// Rows whose latest state is uncertain, failed or rejected; of one run, or of all.
    pub fn open_rows(&self, run: Option<i64>) -> Result<Vec<OpenRow>, LedgerError> {
        self.query_all(
            "SELECT key, source_row, status, COALESCE(message, '') FROM cases
                 WHERE status IN (?2, ?3, ?4, ?5)
                   AND (?1 IS NULL OR run_id = ?1)
                 ORDER BY run_id, source_row",
            params![
                run,
                State::Uncertain,
                State::Failed,
                State::Rejected,
                State::Sending
            ],
            |r| {
                Ok(OpenRow {
                    key: r.get(0)?,
                    source_row: r.get(1)?,
                    status: r.get(2)?,
                    message: r.get(3)?,
                })
            },
        )
    }

    /// The cases whose key, or whose CRM case id, is `what` (a scan: `runs --find` is run
    /// by hand, and an index on case ids would cost every commit of every import).
    pub fn find(&self, what: &str) -> Result<Vec<FoundCase>, LedgerError> {
        self.query_all(
            "SELECT c.key, c.status, c.case_id, c.run_id, r.input, c.source_row,
                        c.http_status, c.attempts, COALESCE(c.message, ''), c.updated_at
                 FROM cases c LEFT JOIN runs r ON r.id = c.run_id
                 WHERE c.key = ?1 OR c.case_id = ?1
                 ORDER BY c.key",
            params![what],
            |r| {
                Ok(FoundCase {
                    key: r.get(0)?,
                    status: r.get(1)?,
                    case_id: r.get(2)?,
                    run_id: r.get(3)?,
                    input: r.get(4)?,
                    source_row: r.get(5)?,
                    http_status: r.get(6)?,
                    attempts: r.get(7)?,
                    message: r.get(8)?,
                    updated_at: r.get(9)?,
                })
            },
        )
    }
}
