//! The ledger stage: a SQLite file that remembers every key sent to one import target,
//! so a re-run never duplicates what an earlier run created.
//!
//! Protocol: a row is committed `sending` before its request leaves, and its result
//! after the answer. A `sending` row found by a later run belonged to a run that died
//! mid-request: it becomes `uncertain`, and is not resent unless the user says so.
//! One run at a time: an OS file lock (released by the kernel even on `kill -9`).
//!
//! `location` says where a target's ledger lives, `upgrade` brings ledgers of earlier
//! versions forward, `by_hand` records what a person checked in the CRM.

mod by_hand;
mod durable;
pub mod location;
mod upgrade;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

pub use by_hand::{Finding, Settled, UncertainRow};
pub use durable::Syncer;
pub use location::Target;

use crate::outcome::Status;

/// The tables of schema version 1 (release 0.1.0 wrote them without a version).
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id             INTEGER PRIMARY KEY,
    started_at     TEXT NOT NULL,
    ended_at       TEXT,
    command        TEXT NOT NULL,
    input          TEXT NOT NULL,
    input_sha256   TEXT,
    mapping_sha256 TEXT,
    exit_code      INTEGER,
    counts         TEXT
);
-- WITHOUT ROWID and no secondary index: each commit on the hot path rewrites one B-tree
-- page, not three (`runs --show` scans, which is fine for a command run by hand).
CREATE TABLE IF NOT EXISTS cases (
    key         TEXT PRIMARY KEY,
    status      TEXT NOT NULL,
    case_id     TEXT,
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    source_row  INTEGER NOT NULL,
    http_status INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 0,
    message     TEXT,
    updated_at  TEXT NOT NULL
) WITHOUT ROWID;
";

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("the ledger {} is in use by another run{}: only one run at a time may import into a CRM target; wait for it to finish, then run this command again (nothing was sent)", path.display(), holder.as_deref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Locked {
        path: PathBuf,
        holder: Option<String>,
    },
    #[error("another run on this machine is importing into {target}{}: only one run at a time may import into a CRM target; wait for it to finish, then run this command again (nothing was sent)", holder.as_deref().map(|h| format!(" ({h})")).unwrap_or_default())]
    TargetBusy {
        target: String,
        holder: Option<String>,
    },
    #[error("the ledger {} records imports into {found:?}, not {wanted:?}: drop --ledger to use this target's own ledger (a ledger never serves two CRMs)", path.display())]
    OtherTarget {
        path: PathBuf,
        found: String,
        wanted: String,
    },
    #[error("no ledger for {target} at {} (--expect-ledger): is the volume that holds it mounted? Nothing was sent; without that ledger every ticket would be created again", path.display())]
    Missing { path: PathBuf, target: String },
    #[error("the ledger {} was written by a newer wolkvox-import (ledger version {found}; this one knows up to {known}): upgrade wolkvox-import", path.display())]
    Newer {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(
        "no data directory for the ledger (neither XDG_DATA_HOME nor HOME is usable): pass --ledger FILE or set WOLKVOX_LEDGER"
    )]
    NoDataDir,
    #[error("{} is not a wolkvox-import ledger ({source})", path.display())]
    NotALedger {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("ledger {}: {}", path.display(), sqlite_text(source))]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What an earlier run left for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prior {
    Created {
        case_id: Option<String>,
        run: i64,
    },
    /// Sent, answer unknown: the CRM may or may not have it.
    InDoubt {
        run: i64,
    },
    /// Rejected or failed before: safe to send again.
    Retryable,
}

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

pub struct Ledger {
    conn: Connection,
    path: PathBuf,
    /// The file's lock, and the target's when the file is not the target's default one.
    _locks: Vec<File>,
    run_id: i64,
    /// Transactions committed so far: a mark is durable once a sync that started after
    /// its commit has finished (see `durable`).
    commits: std::cell::Cell<u64>,
}

impl Drop for Ledger {
    /// What was recorded is what the CRM answered: keep it even on an error path.
    fn drop(&mut self) {
        let _ = self.commit();
    }
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.path)
            .field("run_id", &self.run_id)
            .finish()
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Ledger {
    /// Open (or create) the ledger for `target`, taking the single-writer lock.
    pub fn open(path: &Path, target: &str) -> Result<Ledger, LedgerError> {
        let lock = take_lock(path)?;
        let sql = |source| sqlite_error(path, source);
        let conn = Connection::open(path).map_err(sql)?;
        // WAL + NORMAL: every commit reaches the OS before the request leaves, so a killed
        // process loses nothing; `synchronous = FULL` would add an fsync per row for
        // power-loss safety at a large cost in throughput.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
        )
        .map_err(sql)?;
        upgrade::migrate(&conn, path)?;
        let found: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE name = 'target'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql)?;
        match found {
            Some(found) if found != target => {
                return Err(LedgerError::OtherTarget {
                    path: path.to_path_buf(),
                    found,
                    wanted: target.to_string(),
                });
            }
            Some(_) => {}
            None => {
                conn.execute(
                    "INSERT INTO meta(name, value) VALUES ('target', ?1)",
                    params![target],
                )
                .map_err(sql)?;
            }
        }
        // We hold the lock, so any `sending` row belongs to a run that died mid-request.
        conn.execute(
            "UPDATE cases SET status = 'uncertain', updated_at = ?1,
                 message = 'the run that sent it stopped before the answer: the CRM may have it'
             WHERE status = 'sending'",
            params![now()],
        )
        .map_err(sql)?;
        Ok(Ledger {
            conn,
            path: path.to_path_buf(),
            _locks: vec![lock],
            run_id: 0,
            commits: std::cell::Cell::new(0),
        })
    }

    /// Open for reading only (`runs`): no lock, no changes.
    pub fn open_read_only(path: &Path) -> Result<Ledger, LedgerError> {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|source| LedgerError::Sqlite {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Ledger {
            conn,
            path: path.to_path_buf(),
            _locks: Vec::new(),
            run_id: 0,
            commits: std::cell::Cell::new(0),
        })
    }

    fn sql(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn begin_run(
        &mut self,
        command: &str,
        input: &str,
        input_sha256: Option<&str>,
        mapping_sha256: Option<&str>,
    ) -> Result<i64, LedgerError> {
        self.conn
            .execute(
                "INSERT INTO runs(started_at, command, input, input_sha256, mapping_sha256)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![now(), command, input, input_sha256, mapping_sha256],
            )
            .map_err(|e| self.sql(e))?;
        self.run_id = self.conn.last_insert_rowid();
        Ok(self.run_id)
    }

    /// Whether no ticket was ever recorded in this ledger.
    pub fn has_no_cases(&self) -> Result<bool, LedgerError> {
        let any: bool = self
            .conn
            .query_row("SELECT EXISTS (SELECT 1 FROM cases)", [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        Ok(!any)
    }

    /// How many transactions this connection committed: the sequence number of the last.
    pub fn committed(&self) -> u64 {
        self.commits.get()
    }

    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    pub fn prior(&self, key: &str) -> Result<Option<Prior>, LedgerError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT status, case_id, run_id FROM cases WHERE key = ?1")
            .map_err(|e| self.sql(e))?;
        let found = statement
            .query_row(params![key], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .optional()
            .map_err(|e| self.sql(e))?;
        Ok(found.map(|(status, case_id, run)| match status.as_str() {
            "created" => Prior::Created { case_id, run },
            "sending" | "uncertain" => Prior::InDoubt { run },
            _ => Prior::Retryable,
        }))
    }

    /// Durably record that `key` is about to be sent. Call before the request leaves.
    /// Answers recorded since the last commit are committed with it: one commit a row,
    /// not two (each commit costs some fifteen system calls for SQLite's locks and the WAL).
    pub fn mark_sending(&self, key: &str, row: u64) -> Result<(), LedgerError> {
        self.mark_sending_deferred(key, row)?;
        self.commit()
    }

    /// Record that `key` is about to be sent, in the open transaction: it is committed
    /// by the next `commit`, whose sequence number is `committed() + 1`. For group commit:
    /// the importer commits a batch of marks at once, then has it synced.
    pub fn mark_sending_deferred(&self, key: &str, row: u64) -> Result<(), LedgerError> {
        self.begin()?;
        let mut statement = self
            .conn
            .prepare_cached(
                "INSERT INTO cases(key, status, run_id, source_row, attempts, updated_at)
                 VALUES (?1, 'sending', ?2, ?3, 0, ?4)
                 ON CONFLICT(key) DO UPDATE SET status = 'sending', run_id = ?2,
                     source_row = ?3, case_id = NULL, http_status = NULL, message = NULL,
                     updated_at = ?4",
            )
            .map_err(|e| self.sql(e))?;
        statement
            .execute(params![key, self.run_id, row as i64, now()])
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Open a transaction unless one is open.
    fn begin(&self) -> Result<(), LedgerError> {
        if self.conn.is_autocommit() {
            self.conn
                .prepare_cached("BEGIN")
                .and_then(|mut begin| begin.execute([]))
                .map_err(|e| self.sql(e))?;
        }
        Ok(())
    }

    /// Commit what was recorded. The importer calls this before it waits for anything,
    /// and before it writes the results lines of what it recorded, so the results file
    /// never says more than the ledger.
    pub fn commit(&self) -> Result<(), LedgerError> {
        if !self.conn.is_autocommit() {
            self.conn
                .prepare_cached("COMMIT")
                .and_then(|mut commit| commit.execute([]))
                .map_err(|e| self.sql(e))?;
            self.commits.set(self.commits.get() + 1);
        }
        Ok(())
    }

    /// Record the answer for a key marked `sending`, in the open transaction: it is
    /// durable at the next `commit` (or the next row's `mark_sending`).
    pub fn record(
        &self,
        key: &str,
        status: Status,
        case_id: Option<&str>,
        http_status: Option<u16>,
        attempts: u32,
        message: &str,
    ) -> Result<(), LedgerError> {
        let stored = match status {
            Status::Created => "created",
            Status::Rejected => "rejected",
            Status::Uncertain => "uncertain",
            // Not sent, or provably not stored: a later run sends it again.
            _ => "failed",
        };
        self.begin()?;
        let mut statement = self
            .conn
            .prepare_cached(
                "UPDATE cases SET status = ?2, case_id = ?3, http_status = ?4, attempts = ?5,
                     message = ?6, updated_at = ?7
                 WHERE key = ?1",
            )
            .map_err(|e| self.sql(e))?;
        statement
            .execute(params![
                key,
                stored,
                case_id,
                http_status,
                attempts,
                message,
                now()
            ])
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Close this run's history line: its exit code and how many rows ended in each state.
    pub fn finish_run(&self, counts: &[(&str, u64)], exit_code: u8) -> Result<(), LedgerError> {
        self.commit()?;
        let counts: serde_json::Map<String, serde_json::Value> = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| (name.to_string(), (*n).into()))
            .collect();
        self.conn
            .execute(
                "UPDATE runs SET ended_at = ?2, exit_code = ?3, counts = ?4 WHERE id = ?1",
                params![
                    self.run_id,
                    now(),
                    exit_code,
                    serde_json::Value::Object(counts).to_string()
                ],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Every row `sql` selects with `params`, each made by `row`.
    fn query_all<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, LedgerError> {
        let mut statement = self.conn.prepare(sql).map_err(|e| self.sql(e))?;
        let rows = statement.query_map(params, row).map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }

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
                 WHERE status IN ('uncertain', 'failed', 'rejected', 'sending')
                   AND (?1 IS NULL OR run_id = ?1)
                 ORDER BY run_id, source_row",
            params![run],
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

    /// The mappings' `key:` definitions that tickets were recorded under (as JSON text),
    /// oldest first.
    pub fn key_definitions(&self) -> Result<Vec<String>, LedgerError> {
        let text: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE name = 'keys'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.sql(e))?;
        Ok(text
            .and_then(|t| serde_json::from_str::<Vec<String>>(&t).ok())
            .unwrap_or_default())
    }

    pub fn add_key_definition(&self, key: &str) -> Result<(), LedgerError> {
        let mut keys = self.key_definitions()?;
        if keys.iter().any(|k| k == key) {
            return Ok(());
        }
        keys.push(key.to_string());
        self.conn
            .execute(
                "INSERT INTO meta(name, value) VALUES ('keys', ?1)
                 ON CONFLICT(name) DO UPDATE SET value = ?1",
                params![serde_json::Value::from(keys).to_string()],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    pub fn target(&self) -> Result<Option<String>, LedgerError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE name = 'target'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.sql(e))
    }
}

/// SQLite's text for an error, once: rusqlite's own Display repeats it ("database or disk
/// is full: Error code 13: database or disk is full").
fn sqlite_text(error: &rusqlite::Error) -> String {
    match error {
        rusqlite::Error::SqliteFailure(_, Some(message)) if !message.is_empty() => message.clone(),
        rusqlite::Error::SqliteFailure(e, None) => e.to_string(),
        other => other.to_string(),
    }
}

/// A SQLite error on `path`; "file is not a database" says so in our words.
fn sqlite_error(path: &Path, source: rusqlite::Error) -> LedgerError {
    match &source {
        rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::NotADatabase => {
            LedgerError::NotALedger {
                path: path.to_path_buf(),
                source,
            }
        }
        _ => LedgerError::Sqlite {
            path: path.to_path_buf(),
            source,
        },
    }
}

/// Take `<path>.lock`, or say who holds it.
fn take_lock(path: &Path) -> Result<File, LedgerError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let io = |source| LedgerError::Io {
        path: lock_path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&lock_path)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty());
            return Err(LedgerError::Locked {
                path: path.to_path_buf(),
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    // The kernel drops the lock when the process dies, so a stale file never blocks.
    file.set_len(0).map_err(io)?;
    write!(file, "pid {}", std::process::id()).map_err(io)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_goes_sending_then_created_and_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        {
            let mut ledger = Ledger::open(&path, "t").unwrap();
            ledger.begin_run("import", "x.csv", None, None).unwrap();
            assert_eq!(ledger.prior("k1").unwrap(), None);
            ledger.mark_sending("k1", 2).unwrap();
            ledger
                .record("k1", Status::Created, Some("abc"), Some(200), 1, "")
                .unwrap();
            ledger.mark_sending("k2", 3).unwrap();
        }
        let ledger = Ledger::open(&path, "t").unwrap();
        assert!(
            matches!(ledger.prior("k1").unwrap(), Some(Prior::Created { case_id: Some(id), .. }) if id == "abc")
        );
        // k2 was left `sending` by a dead run: in doubt, never silently resent.
        assert!(matches!(
            ledger.prior("k2").unwrap(),
            Some(Prior::InDoubt { .. })
        ));
    }

    /// What another process sees in the file: only what was committed.
    fn status_on_disk(path: &Path, key: &str) -> Option<String> {
        let reader = Connection::open(path).unwrap();
        reader
            .query_row("SELECT status FROM cases WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
            .unwrap()
    }

    #[test]
    fn an_answer_is_committed_with_the_next_sending_mark_or_at_the_latest_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        let mut ledger = Ledger::open(&path, "t").unwrap();
        ledger.begin_run("import", "x.csv", None, None).unwrap();
        ledger.mark_sending("k1", 2).unwrap();
        assert_eq!(status_on_disk(&path, "k1").as_deref(), Some("sending"));
        ledger
            .record("k1", Status::Created, Some("abc"), Some(200), 1, "")
            .unwrap();
        // Not durable yet: the importer writes no results line for it until it is.
        assert_eq!(status_on_disk(&path, "k1").as_deref(), Some("sending"));
        assert!(matches!(
            ledger.prior("k1").unwrap(),
            Some(Prior::Created { .. })
        ));
        ledger.mark_sending("k2", 3).unwrap();
        assert_eq!(status_on_disk(&path, "k1").as_deref(), Some("created"));
        ledger
            .record("k2", Status::Rejected, None, Some(200), 1, "no")
            .unwrap();
        drop(ledger);
        assert_eq!(status_on_disk(&path, "k2").as_deref(), Some("rejected"));
    }

    #[test]
    fn a_second_writer_is_refused_and_another_target_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        let first = Ledger::open(&path, "t").unwrap();
        assert!(matches!(
            Ledger::open(&path, "t"),
            Err(LedgerError::Locked { .. })
        ));
        drop(first);
        assert!(matches!(
            Ledger::open(&path, "other"),
            Err(LedgerError::OtherTarget { .. })
        ));
    }
}
