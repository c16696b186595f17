//! The ledger stage: a SQLite file that remembers every key sent to one import target,
//! so a re-run never duplicates what an earlier run created.
//!
//! Protocol: a row is committed `sending` before its request leaves, and its result
//! after the answer. A `sending` row found by a later run belonged to a run that died
//! mid-request: it becomes `uncertain`, and is not resent unless the user says so.
//! One run at a time: an OS file lock (released by the kernel even on `kill -9`).
//!
//! `location` says where a target's ledger lives, `upgrade` brings ledgers of earlier
//! versions forward, `by_hand` records what a person checked in the CRM, `lookup` what
//! `reconcile` asked the CRM and found, and `writer` writes an import's marks and answers
//! in batches, on a thread and a connection of their own.

mod by_hand;
mod contacts;
mod durable;
pub mod fingerprint;
mod history;
mod impact;
pub mod location;
mod lookup;
mod state;
mod undo;
mod upgrade;
mod writer;

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

pub use by_hand::{Finding, Settled, UncertainRow};
pub use contacts::KnownContact;
pub use durable::Syncer;
pub use history::{FoundCase, OpenRow, RunRecord};
pub use impact::{Effect, Impact};
pub use location::Target;
pub use lookup::{Doubt, Found, KnownCase};
pub use state::State;
pub use undo::CreatedCase;
pub use writer::{Done, Finished, Write, Writer};

use crate::mapping::delta::{self, Fingerprints};
use crate::outcome::{Outcome, Status};

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
-- Version 1's table; version 5 rebuilds it as a rowid table (`upgrade.rs` says why).
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
        /// What it was last sent with, field by field; `None` for keys an earlier version
        /// created.
        fields: Option<Fingerprints>,
    },
    /// Sent, answer unknown: the CRM may or may not have it.
    InDoubt { run: i64 },
    /// Rejected or failed before: safe to send again.
    Retryable,
}

pub struct Ledger {
    conn: Connection,
    path: PathBuf,
    /// The file's lock, and the target's when the file is not the target's default one.
    _locks: Vec<File>,
    run_id: i64,
    /// Commit what is left on drop (not the writer thread's connection, whose batches
    /// are committed whole or not at all).
    commit_on_drop: bool,
}

impl Drop for Ledger {
    /// What was recorded is what the CRM answered: keep it even on an error path.
    fn drop(&mut self) {
        if self.commit_on_drop {
            let _ = self.commit();
        } else {
            self.rollback();
        }
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
            "UPDATE cases SET status = ?2, updated_at = ?1,
                 message = 'the run that sent it stopped before the answer: the CRM may have it'
             WHERE status = ?3",
            params![now(), State::Uncertain, State::Sending],
        )
        .map_err(sql)?;
        // An update in flight when its run died: the case exists, its fields are still
        // those sent before, so the next `--update` finds the change and sends it again.
        conn.execute(
            "UPDATE cases SET status = ?2, sending_fields = NULL, updated_at = ?1,
                 message = 'an update was on its way when its run stopped: sent again by the \
                 next import --update'
             WHERE status = ?3",
            params![now(), State::Created, State::Updating],
        )
        .map_err(sql)?;
        Ok(Ledger {
            conn,
            path: path.to_path_buf(),
            _locks: vec![lock],
            run_id: 0,
            commit_on_drop: true,
        })
    }

    /// Another connection to this ledger's file, for the writer thread of a run (`writer`):
    /// the locks stay with this one, which must not write while the other is in use.
    fn second_connection(&self) -> Result<Ledger, LedgerError> {
        let conn = Connection::open(&self.path).map_err(|e| self.sql(e))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;")
            .map_err(|e| self.sql(e))?;
        Ok(Ledger {
            conn,
            path: self.path.clone(),
            _locks: Vec::new(),
            run_id: self.run_id,
            commit_on_drop: false,
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
            commit_on_drop: true,
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

    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    pub fn prior(&self, key: &str) -> Result<Option<Prior>, LedgerError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT status, case_id, run_id, fields FROM cases WHERE key = ?1")
            .map_err(|e| self.sql(e))?;
        let found = statement
            .query_row(params![key], |r| {
                Ok((
                    r.get::<_, State>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })
            .optional()
            .map_err(|e| self.sql(e))?;
        Ok(found.map(|(state, case_id, run, fields)| match state {
            State::Created | State::Updating => Prior::Created {
                case_id,
                run,
                fields: fields.as_deref().and_then(delta::from_text),
            },
            state if state.in_doubt() => Prior::InDoubt { run },
            _ => Prior::Retryable,
        }))
    }

    /// Mark `key` and commit at once (the importer marks in batches, `mark_sending_deferred`).
    #[cfg(test)]
    pub fn mark_sending(&self, key: &str, row: u64, fields: &str) -> Result<(), LedgerError> {
        self.mark_sending_deferred(key, row, fields)?;
        self.commit()
    }

    /// Record that `key` is about to be sent, in the open transaction: it is committed
    /// by the next `commit`. For group commit: the importer's writer thread commits a
    /// batch of marks at once, then syncs it.
    /// `fields` are the fingerprints of what is sent (`mapping::delta`), kept for the next
    /// run to see what changed.
    pub fn mark_sending_deferred(
        &self,
        key: &str,
        row: u64,
        fields: &str,
    ) -> Result<(), LedgerError> {
        self.begin()?;
        let mut statement = self
            .conn
            .prepare_cached(
                "INSERT INTO cases(key, status, run_id, source_row, attempts, updated_at, fields,
                                   sent_at)
                 VALUES (?1, ?5, ?2, ?3, 0, ?4, ?6, ?4)
                 ON CONFLICT(key) DO UPDATE SET status = ?5, run_id = ?2,
                     source_row = ?3, case_id = NULL, http_status = NULL, message = NULL,
                     updated_at = ?4, fields = ?6, sending_fields = NULL, sent_at = ?4",
            )
            .map_err(|e| self.sql(e))?;
        statement
            .execute(params![
                key,
                self.run_id,
                row as i64,
                now(),
                State::Sending,
                fields
            ])
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

    /// Commit what was recorded. The importer's writer thread commits each batch before
    /// it says the batch is done, and only then are the results lines of its answers
    /// written, so the results file never says more than the ledger.
    pub fn commit(&self) -> Result<(), LedgerError> {
        if !self.conn.is_autocommit() {
            self.conn
                .prepare_cached("COMMIT")
                .and_then(|mut commit| commit.execute([]))
                .map_err(|e| self.sql(e))?;
        }
        Ok(())
    }

    /// Drop what the open transaction holds (a batch that failed half-way).
    fn rollback(&self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// Record a row's outcome for its key marked `sending`, in the open transaction: it is
    /// committed by the next `commit`.
    pub fn record(&self, outcome: &Outcome) -> Result<(), LedgerError> {
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
                outcome.key,
                State::after(outcome.status),
                outcome.case_id,
                outcome.http_status,
                outcome.attempts,
                outcome.message,
                now()
            ])
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Record that an update of created `key` is about to be sent with the fingerprints
    /// `fields`, in the open transaction (durable with the next sync, as a mark).
    pub fn mark_updating(&self, key: &str, fields: &str) -> Result<(), LedgerError> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "UPDATE cases SET status = ?2, sending_fields = ?3, updated_at = ?4
                 WHERE key = ?1",
            )
            .and_then(|mut s| s.execute(params![key, State::Updating, fields, now()]))
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Record how an update of `outcome.key` ended. The case stays created whatever the
    /// answer; only an update the CRM took moves its fingerprints to what was sent, so one
    /// that failed is found changed, and sent again, by the next run.
    pub fn record_update(&self, outcome: &Outcome) -> Result<(), LedgerError> {
        self.begin()?;
        let took = outcome.status == Status::Updated;
        self.conn
            .prepare_cached(
                "UPDATE cases SET status = ?2,
                     fields = CASE WHEN ?3 THEN sending_fields ELSE fields END,
                     sending_fields = NULL, http_status = ?4, attempts = ?5, message = ?6,
                     updated_at = ?7
                 WHERE key = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    outcome.key,
                    State::Created,
                    took,
                    outcome.http_status,
                    outcome.attempts,
                    outcome.message,
                    now()
                ])
            })
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// The SHA-256 of the file this run read, for `runs`: waits for the thread hashing it
    /// beside the run (`fingerprint::file_sha256_beside`). A file it could not read has no
    /// hash recorded.
    pub fn record_input_hash(
        &self,
        hashing: std::thread::JoinHandle<Option<String>>,
    ) -> Result<(), LedgerError> {
        let Ok(Some(hash)) = hashing.join() else {
            return Ok(());
        };
        self.conn
            .execute(
                "UPDATE runs SET input_sha256 = ?2 WHERE id = ?1",
                params![self.run_id, hash],
            )
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

/// A row's answer, for the tests of this module and its children.
#[cfg(test)]
pub(crate) fn answered(
    key: &str,
    status: crate::outcome::Status,
    case_id: Option<&str>,
    message: &str,
) -> Outcome {
    let mut outcome = Outcome::new(0, key, status).with_message(message);
    outcome.case_id = case_id.map(str::to_string);
    outcome.http_status = Some(200);
    outcome.attempts = 1;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Status;

    #[test]
    fn a_key_goes_sending_then_created_and_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        {
            let mut ledger = Ledger::open(&path, "t").unwrap();
            ledger.begin_run("import", "x.csv", None, None).unwrap();
            assert_eq!(ledger.prior("k1").unwrap(), None);
            ledger.mark_sending("k1", 2, "{}").unwrap();
            ledger
                .record(&crate::ledger::answered(
                    "k1",
                    Status::Created,
                    Some("abc"),
                    "",
                ))
                .unwrap();
            ledger.mark_sending("k2", 3, "{}").unwrap();
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
        ledger.mark_sending("k1", 2, "{}").unwrap();
        assert_eq!(status_on_disk(&path, "k1").as_deref(), Some("sending"));
        ledger
            .record(&crate::ledger::answered(
                "k1",
                Status::Created,
                Some("abc"),
                "",
            ))
            .unwrap();
        // Not durable yet: the importer writes no results line for it until it is.
        assert_eq!(status_on_disk(&path, "k1").as_deref(), Some("sending"));
        assert!(matches!(
            ledger.prior("k1").unwrap(),
            Some(Prior::Created { .. })
        ));
        ledger.mark_sending("k2", 3, "{}").unwrap();
        assert_eq!(status_on_disk(&path, "k1").as_deref(), Some("created"));
        ledger
            .record(&crate::ledger::answered("k2", Status::Rejected, None, "no"))
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
