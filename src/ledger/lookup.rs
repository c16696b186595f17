//! What `reconcile` reads and writes: the rows in doubt (with when they were sent), the
//! CRM's look-ups (each kept: when, what was asked, what came back) and what each row was
//! found to be. A row's run stays the import that sent it (so `undo --run` of that import
//! still finds it); its message names the reconcile run and the look-up that settled it.

use rusqlite::params;

use super::{Ledger, LedgerError, State, now};

/// A row `reconcile` looks up: sent without an answer that settles it, or (with `--ids`)
/// created without the CRM giving its case id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doubt {
    pub key: String,
    pub run: i64,
    pub source_row: i64,
    pub state: State,
    /// When it was last marked `sending` (RFC 3339, UTC); `None` in ledgers older than
    /// schema 3.
    pub sent_at: Option<String>,
    /// When its outcome was recorded (for an uncertain row: after the last attempt).
    pub answered_at: String,
    /// The fingerprints of what was sent (`mapping::delta`), when kept.
    pub fields: Option<String>,
}

/// A created case with its id and the times around its creation: the CRM's clock is read
/// from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownCase {
    pub key: String,
    pub case_id: String,
    pub sent_at: String,
    pub answered_at: String,
}

/// What a look-up found for one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Exactly one case matches: created, with this id.
    Case(String),
    /// None matches: safe to send (an uncertain row becomes `missing`).
    Nothing,
    /// Still not known; the message says why (several matches, a near match, a failure).
    Unsettled(String),
}

impl Ledger {
    /// The rows to look up: every uncertain one, and with `ids` every created one without
    /// a case id; oldest send first.
    pub fn doubts(&self, ids: bool) -> Result<Vec<Doubt>, LedgerError> {
        self.query_all(
            "SELECT key, run_id, source_row, status, sent_at, updated_at, fields FROM cases
                 WHERE status IN (?1, ?2) OR (?3 AND status = ?4 AND case_id IS NULL)
                 ORDER BY COALESCE(sent_at, updated_at), source_row",
            params![State::Uncertain, State::Sending, ids, State::Created],
            |r| {
                Ok(Doubt {
                    key: r.get(0)?,
                    run: r.get(1)?,
                    source_row: r.get(2)?,
                    state: r.get(3)?,
                    sent_at: r.get(4)?,
                    answered_at: r.get(5)?,
                    fields: r.get(6)?,
                })
            },
        )
    }

    /// The most recently created case whose id and send time the ledger knows, and whose
    /// row was not written since its answer (an update, `resolve` or `reconcile` moves
    /// `updated_at` away from when the CRM created it): answered within two minutes.
    pub fn known_case(&self) -> Result<Option<KnownCase>, LedgerError> {
        let mut cases = self.query_all(
            "SELECT key, case_id, sent_at, updated_at FROM cases
                 WHERE status = ?1 AND case_id IS NOT NULL AND sent_at IS NOT NULL
                   AND (julianday(updated_at) - julianday(sent_at)) * 1440 BETWEEN 0 AND 2
                 ORDER BY sent_at DESC LIMIT 1",
            params![State::Created],
            |r| {
                Ok(KnownCase {
                    key: r.get(0)?,
                    case_id: r.get(1)?,
                    sent_at: r.get(2)?,
                    answered_at: r.get(3)?,
                })
            },
        )?;
        Ok(cases.pop())
    }

    /// Every case id the ledger knows, with its key: a case found in the CRM that another
    /// key created is not this row's.
    pub fn case_ids(&self) -> Result<std::collections::HashMap<String, String>, LedgerError> {
        Ok(self
            .query_all(
                "SELECT case_id, key FROM cases WHERE case_id IS NOT NULL",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .into_iter()
            .collect())
    }

    /// The case ids of keys created (with an id) that were marked `sending` between `from`
    /// and `to`: a date window of the CRM must hold them all.
    pub fn created_between(&self, from: &str, to: &str) -> Result<Vec<String>, LedgerError> {
        self.query_all(
            "SELECT case_id FROM cases
                 WHERE status = ?1 AND case_id IS NOT NULL
                   AND julianday(sent_at) >= julianday(?2) AND julianday(sent_at) < julianday(?3)",
            params![State::Created, from, to],
            |r| r.get(0),
        )
    }

    /// How many keys were marked `sending` between `from` and `to` (RFC 3339): a floor on
    /// the cases a date window of the CRM holds.
    pub fn sent_between(&self, from: &str, to: &str) -> Result<u64, LedgerError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM cases
                     WHERE julianday(sent_at) >= julianday(?1) AND julianday(sent_at) < julianday(?2)",
                params![from, to],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.sql(e))
    }

    /// Keep one look-up (in this ledger's current run); its number, for the rows'
    /// messages.
    pub fn record_lookup(
        &self,
        endpoint: &str,
        asked: &str,
        found: &str,
    ) -> Result<i64, LedgerError> {
        self.conn
            .execute(
                "INSERT INTO lookups(run_id, at, endpoint, asked, found) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![self.run_id, now(), endpoint, asked, found],
            )
            .map_err(|e| self.sql(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The look-ups of run `run`, in order: (number, at, endpoint, asked, found).
    pub fn lookups(&self, run: i64) -> Result<Vec<[String; 5]>, LedgerError> {
        self.query_all(
            "SELECT id, at, endpoint, asked, found FROM lookups WHERE run_id = ?1 ORDER BY id",
            params![run],
            |r| {
                Ok([
                    r.get::<_, i64>(0)?.to_string(),
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                ])
            },
        )
    }

    /// Record what was found for `doubt`, with `message` saying how. Only a row still in
    /// the state it was read in is changed (nothing else writes meanwhile: the lock).
    pub fn settle_looked_up(
        &self,
        doubt: &Doubt,
        found: &Found,
        message: &str,
    ) -> Result<(), LedgerError> {
        let (state, case_id) = match (found, doubt.state) {
            (Found::Case(id), _) => (State::Created, Some(id.as_str())),
            // A created row the CRM does not show stays created: it was answered created,
            // and sending it again could duplicate it; the message says so.
            (Found::Nothing, State::Created) => (State::Created, None),
            (Found::Nothing, _) => (State::Missing, None),
            (Found::Unsettled(_), state) => (state, None),
        };
        self.conn
            .prepare_cached(
                "UPDATE cases SET status = ?2, case_id = COALESCE(?3, case_id), message = ?4,
                     updated_at = CASE WHEN ?7 THEN updated_at ELSE ?5 END
                 WHERE key = ?1 AND status = ?6",
            )
            .and_then(|mut s| {
                s.execute(params![
                    doubt.key,
                    state,
                    case_id,
                    message,
                    now(),
                    doubt.state,
                    // Nothing learnt: the row keeps the time of its answer (the end of the
                    // window the next reconcile looks in).
                    matches!(found, Found::Unsettled(_))
                ])
            })
            .map_err(|e| self.sql(e))?;
        Ok(())
    }
}
