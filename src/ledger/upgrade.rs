//! Ledgers outlive releases: nightly jobs keep one for months. The schema carries a
//! version (`PRAGMA user_version`) and moves forward one migration at a time, each in one
//! transaction; a ledger an earlier release kept beside its input is merged into the
//! target's ledger, never ignored.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};

use super::{Ledger, LedgerError, SCHEMA_V1};

/// Migration `i` takes a ledger from version `i` to `i + 1`. Release 0.1.0 wrote the
/// tables of version 1 without setting a version, and `CREATE … IF NOT EXISTS` leaves
/// them as they are, so its ledgers are version 0 and the first step only records 1.
/// Version 2 keeps, per created key, a fingerprint of each field it was sent with
/// (`fields`, a JSON object: `mapping::delta`), and while an update is in flight the
/// fingerprints it sends (`sending_fields`). Keys created before have none.
/// Version 3 keeps when each key was last marked `sending` (`sent_at`: the window in which
/// `reconcile` looks an uncertain row up) and every look-up made of the CRM (`lookups`:
/// when, what was asked, what came back), so `runs --show` can say how a row was settled.
/// Version 4 keeps the CRM's contacts as look-ups and creations found them (`contacts`,
/// by e-mail: `ledger/contacts.rs`) and the size of the contacts module at each full scan.
/// Version 5 keeps the same `cases` columns in an ordinary (rowid) table with a unique
/// index on `key`: since version 2 a row holds its fingerprints (~500 bytes), and a
/// `WITHOUT ROWID` table stores whole rows in its B-tree nodes, which SQLite advises only
/// for rows under a twentieth of a page: the ledger's writes per sent row took 31 % less
/// time in the rowid table (benches/README.md, "Row 4 with the durable ledger").
const MIGRATIONS: &[&str] = &[
    SCHEMA_V1,
    "ALTER TABLE cases ADD COLUMN fields TEXT; ALTER TABLE cases ADD COLUMN sending_fields TEXT",
    "ALTER TABLE cases ADD COLUMN sent_at TEXT;
     CREATE TABLE lookups (
         id       INTEGER PRIMARY KEY,
         run_id   INTEGER NOT NULL REFERENCES runs(id),
         at       TEXT NOT NULL,
         endpoint TEXT NOT NULL,
         asked    TEXT NOT NULL,
         found    TEXT NOT NULL
     )",
    "CREATE TABLE contacts (
         email      TEXT PRIMARY KEY,
         status     TEXT NOT NULL,
         contact_id TEXT,
         checked_at INTEGER NOT NULL,
         batch      INTEGER,
         run_id     INTEGER,
         message    TEXT
     ) WITHOUT ROWID;
     CREATE TABLE contact_scans (
         at      INTEGER NOT NULL,
         records INTEGER NOT NULL
     )",
    "CREATE TABLE cases_v5 (
         key            TEXT PRIMARY KEY,
         status         TEXT NOT NULL,
         case_id        TEXT,
         run_id         INTEGER NOT NULL REFERENCES runs(id),
         source_row     INTEGER NOT NULL,
         http_status    INTEGER,
         attempts       INTEGER NOT NULL DEFAULT 0,
         message        TEXT,
         updated_at     TEXT NOT NULL,
         fields         TEXT,
         sending_fields TEXT,
         sent_at        TEXT
     );
     INSERT INTO cases_v5(key, status, case_id, run_id, source_row, http_status, attempts,
                          message, updated_at, fields, sending_fields, sent_at)
         SELECT key, status, case_id, run_id, source_row, http_status, attempts,
                message, updated_at, fields, sending_fields, sent_at
         FROM cases ORDER BY run_id, source_row;
     DROP TABLE cases;
     ALTER TABLE cases_v5 RENAME TO cases",
];

/// The version whose step copies the `cases` table (said before it runs: a large ledger
/// takes a while and needs as much free space again).
const COPIES_CASES: i64 = 5;

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Bring `conn` to `VERSION`, or refuse a ledger from a newer release.
pub(super) fn migrate(conn: &Connection, path: &Path) -> Result<(), LedgerError> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|source| LedgerError::NotALedger {
            path: path.to_path_buf(),
            source,
        })?;
    if found > VERSION {
        return Err(LedgerError::Newer {
            path: path.to_path_buf(),
            found,
            known: VERSION,
        });
    }
    if (1..COPIES_CASES).contains(&found) {
        tracing::info!(
            ledger = %path.display(),
            "Upgrading the ledger to schema {VERSION} (its table of cases is copied once)."
        );
    }
    for (from, step) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        // One transaction a step: a failed upgrade leaves the ledger as it was.
        let to = from as i64 + 1;
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {step}; PRAGMA user_version = {to}; COMMIT;"
        ))
        .map_err(|source| {
            let _ = conn.execute_batch("ROLLBACK");
            super::sqlite_error(path, source)
        })?;
    }
    Ok(())
}

/// The target an existing ledger file records, read without taking its lock.
pub(super) fn target_of(path: &Path) -> Result<Option<String>, LedgerError> {
    Ledger::open_read_only(path)?.target()
}

/// What merging an earlier release's ledger brought in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Absorbed {
    pub runs: u64,
    pub keys: u64,
    /// Where the old file was moved, so nothing reads it again by mistake.
    pub kept_as: PathBuf,
}

impl Ledger {
    /// Merge the ledger at `legacy` (same target, checked by the caller) into this one:
    /// its runs after ours, its keys where ours say less (created beats in doubt beats
    /// failed), then move the old file aside as `<name>.migrated`.
    pub(super) fn absorb(&mut self, legacy: &Path) -> Result<Absorbed, LedgerError> {
        // Its own lock first: an older binary may still be writing it.
        let lock = super::take_lock(legacy)?;
        let old_sql = |source| LedgerError::Sqlite {
            path: legacy.to_path_buf(),
            source,
        };
        {
            let old = Connection::open(legacy).map_err(old_sql)?;
            // Everything into the main file, so moving it moves everything.
            old.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;")
                .map_err(old_sql)?;
            migrate(&old, legacy)?;
        }
        self.commit()?;
        let merged = self.merge_from(legacy);
        let _ = self.conn.execute_batch("DETACH DATABASE legacy");
        let (runs, keys) = merged?;
        let kept_as = aside(legacy);
        std::fs::rename(legacy, &kept_as).map_err(|source| LedgerError::Io {
            path: legacy.to_path_buf(),
            source,
        })?;
        drop(lock);
        let mut lock_path = legacy.as_os_str().to_owned();
        lock_path.push(".lock");
        let _ = std::fs::remove_file(PathBuf::from(lock_path));
        Ok(Absorbed {
            runs,
            keys,
            kept_as,
        })
    }

    fn merge_from(&mut self, legacy: &Path) -> Result<(u64, u64), LedgerError> {
        let legacy_name = legacy.to_string_lossy().into_owned();
        self.conn
            .execute("ATTACH DATABASE ?1 AS legacy", params![legacy_name])
            .map_err(|e| self.sql(e))?;
        let tx = self.conn.transaction().map_err(|e| LedgerError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        let path = self.path.clone();
        let sql = |source| LedgerError::Sqlite {
            path: path.clone(),
            source,
        };
        let offset: i64 = tx
            .query_row("SELECT COALESCE(MAX(id), 0) FROM main.runs", [], |r| {
                r.get(0)
            })
            .map_err(sql)?;
        let runs = tx
            .execute(
                "INSERT INTO main.runs(id, started_at, ended_at, command, input, input_sha256,
                     mapping_sha256, exit_code, counts)
                 SELECT id + ?1, started_at, ended_at, command, input, input_sha256,
                     mapping_sha256, exit_code, counts
                 FROM legacy.runs ORDER BY id",
                params![offset],
            )
            .map_err(sql)?;
        // A `sending` row of a dead run is in doubt; the strongest knowledge of a key wins.
        let keys = tx
            .execute(
                "INSERT INTO main.cases(key, status, case_id, run_id, source_row, http_status,
                     attempts, message, updated_at)
                 SELECT key, CASE status WHEN 'sending' THEN 'uncertain' ELSE status END,
                     case_id, run_id + ?1, source_row, http_status, attempts, message, updated_at
                 FROM legacy.cases WHERE true
                 ON CONFLICT(key) DO UPDATE SET status = excluded.status,
                     case_id = excluded.case_id, run_id = excluded.run_id,
                     source_row = excluded.source_row, http_status = excluded.http_status,
                     attempts = excluded.attempts, message = excluded.message,
                     updated_at = excluded.updated_at
                 WHERE (CASE excluded.status WHEN 'created' THEN 3 WHEN 'uncertain' THEN 2
                            ELSE 1 END)
                     > (CASE main.cases.status WHEN 'created' THEN 3 WHEN 'uncertain' THEN 2
                            WHEN 'sending' THEN 2 ELSE 1 END)",
                params![offset],
            )
            .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok((runs as u64, keys as u64))
    }
}

/// `<legacy>.migrated`, or with a number when that name is taken.
fn aside(legacy: &Path) -> PathBuf {
    let mut name = legacy.as_os_str().to_owned();
    name.push(".migrated");
    let first = PathBuf::from(&name);
    if !first.exists() {
        return first;
    }
    (2..)
        .map(|n| {
            let mut numbered = name.clone();
            numbered.push(format!("-{n}"));
            PathBuf::from(numbered)
        })
        .find(|p| !p.exists())
        .unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_from_a_newer_release_is_refused_naming_both_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        drop(Ledger::open(&path, "t").unwrap());
        Connection::open(&path)
            .unwrap()
            .execute_batch(&format!("PRAGMA user_version = {}", VERSION + 1))
            .unwrap();
        let err = Ledger::open(&path, "t").unwrap_err();
        assert!(
            matches!(err, LedgerError::Newer { found, known, .. } if found == VERSION + 1 && known == VERSION)
        );
        assert!(err.to_string().contains("upgrade wolkvox-import"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_ledger_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        std::fs::write(
            &path,
            "this is a text file, not SQLite, and long enough to look like one".repeat(20),
        )
        .unwrap();
        let err = Ledger::open(&path, "t").unwrap_err();
        assert!(
            err.to_string().contains("is not a wolkvox-import ledger"),
            "{err}"
        );
    }
}
