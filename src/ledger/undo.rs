//! What `undo` reads and writes: the cases one run created, and their deletion.

use rusqlite::params;

use super::{Ledger, LedgerError, State, now};

/// A key a run created, as `undo` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedCase {
    pub key: String,
    pub source_row: i64,
    /// `None` when the CRM answered without one: such a case cannot be deleted by id.
    pub case_id: Option<String>,
}

impl Ledger {
    /// The keys run `run` created that are still created (not deleted since), in row order.
    pub fn created_by(&self, run: i64) -> Result<Vec<CreatedCase>, LedgerError> {
        self.query_all(
            "SELECT key, source_row, case_id FROM cases
                 WHERE run_id = ?1 AND status IN (?2, ?3) ORDER BY source_row",
            params![run, State::Created, State::Updating],
            |r| {
                Ok(CreatedCase {
                    key: r.get(0)?,
                    source_row: r.get(1)?,
                    case_id: r.get(2)?,
                })
            },
        )
    }

    /// Record `keys` deleted from the CRM (or found gone), committed at once: a later import
    /// creates them again.
    pub fn mark_deleted(&self, keys: &[(String, String)]) -> Result<(), LedgerError> {
        self.begin()?;
        for (key, message) in keys {
            self.conn
                .prepare_cached(
                    "UPDATE cases SET status = ?2, fields = NULL, message = ?3, updated_at = ?4
                     WHERE key = ?1",
                )
                .and_then(|mut s| s.execute(params![key, State::Deleted, message, now()]))
                .map_err(|e| self.sql(e))?;
        }
        self.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Prior, answered};
    use crate::outcome::Status;

    #[test]
    fn a_deleted_case_is_no_longer_created_and_is_sent_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.sqlite"), "t").unwrap();
        ledger.begin_run("import", "x.csv", None, None).unwrap();
        for (i, key) in ["a", "b"].into_iter().enumerate() {
            ledger.mark_sending(key, i as u64 + 2, "{}").unwrap();
            ledger
                .record(&answered(
                    key,
                    Status::Created,
                    Some(&format!("id-{key}")),
                    "",
                ))
                .unwrap();
        }
        ledger.commit().unwrap();
        let run = ledger.run_id();
        let created = ledger.created_by(run).unwrap();
        assert_eq!(created.len(), 2);
        assert_eq!(created[0].case_id.as_deref(), Some("id-a"));
        ledger.begin_run("undo", "run 1", None, None).unwrap();
        ledger
            .mark_deleted(&[("a".into(), "deleted by undo".into())])
            .unwrap();
        assert_eq!(ledger.created_by(run).unwrap().len(), 1);
        assert_eq!(ledger.prior("a").unwrap(), Some(Prior::Retryable));
    }
}
