//! What the ledger remembers of the CRM's contacts (schema 4), by e-mail:
//!
//! - `exists`: a look-up found it (its id), at `checked_at`; reused by later runs for
//!   `--contacts-max-age`. A contact found missing is not cached: the user may create it
//!   in the CRM before the next run.
//! - `sending`: in `insertMany` batch `batch`, committed (and synced) before the batch
//!   leaves; the answer is not known yet. A later run looks it up before sending it again.
//! - `created`: a batch created it (its id).
//! - `refused`: the CRM refused to create it (`message`); tried again by a later run.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use super::{Ledger, LedgerError};

/// A contact the ledger knows the CRM has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownContact {
    pub id: Option<String>,
    /// Unix seconds when it was found or created.
    pub at: i64,
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Ledger {
    /// The contacts found or created at most `max_age_secs` ago, by e-mail.
    pub fn known_contacts(
        &self,
        max_age_secs: u64,
    ) -> Result<HashMap<String, KnownContact>, LedgerError> {
        let since = unix_now().saturating_sub(i64::try_from(max_age_secs).unwrap_or(i64::MAX));
        let rows = self.query_all(
            "SELECT email, contact_id, checked_at FROM contacts
                 WHERE status IN ('exists', 'created') AND checked_at >= ?1",
            params![since],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    KnownContact {
                        id: r.get(1)?,
                        at: r.get(2)?,
                    },
                ))
            },
        );
        match rows {
            Ok(rows) => Ok(rows.into_iter().collect()),
            // A ledger read only (validate) from before schema 4 has no such table yet.
            Err(_) if !self.has_contacts_table()? => Ok(HashMap::new()),
            Err(e) => Err(e),
        }
    }

    fn has_contacts_table(&self) -> Result<bool, LedgerError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'contacts')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))
    }

    /// How many contacts the last full scan of the contacts module found, if one was made.
    pub fn last_contact_scan(&self) -> Result<Option<u64>, LedgerError> {
        if !self.has_contacts_table()? {
            return Ok(None);
        }
        self.conn
            .query_row(
                "SELECT records FROM contact_scans ORDER BY at DESC, rowid DESC LIMIT 1",
                [],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|n| n.map(|n| u64::try_from(n).unwrap_or(0)))
            .map_err(|e| self.sql(e))
    }

    /// Record that a full scan of the contacts module found `records` contacts.
    pub fn record_contact_scan(&self, records: u64) -> Result<(), LedgerError> {
        self.begin()?;
        self.conn
            .execute(
                "INSERT INTO contact_scans(at, records) VALUES (?1, ?2)",
                params![unix_now(), i64::try_from(records).unwrap_or(i64::MAX)],
            )
            .map_err(|e| self.sql(e))?;
        self.commit()
    }

    fn set_contact(
        &self,
        email: &str,
        status: &str,
        id: Option<&str>,
        batch: Option<i64>,
        message: Option<&str>,
    ) -> Result<(), LedgerError> {
        self.conn
            .prepare_cached(
                "INSERT INTO contacts(email, status, contact_id, checked_at, batch, run_id, message)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(email) DO UPDATE SET status = ?2, contact_id = ?3,
                     checked_at = ?4, batch = ?5, run_id = ?6, message = ?7",
            )
            .and_then(|mut s| {
                s.execute(params![
                    email,
                    status,
                    id,
                    unix_now(),
                    batch,
                    self.run_id,
                    message
                ])
            })
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Record look-ups: each e-mail with the id the CRM has it under, or `None` when the CRM
    /// does not have it (nothing cached for it). Committed at once.
    pub fn contacts_looked_up(
        &self,
        found: &[(String, Option<String>)],
    ) -> Result<(), LedgerError> {
        self.begin()?;
        for (email, id) in found {
            match id {
                Some(id) => self.set_contact(email, "exists", Some(id), None, None)?,
                None => self
                    .conn
                    .prepare_cached("DELETE FROM contacts WHERE email = ?1")
                    .and_then(|mut s| s.execute(params![email]))
                    .map(|_| ())
                    .map_err(|e| self.sql(e))?,
            }
        }
        self.commit()
    }

    /// Mark `emails` as one `insertMany` batch on its way, committed at once; the batch's
    /// number. The caller syncs before the batch leaves.
    pub fn mark_contacts_sending(&self, emails: &[&str]) -> Result<i64, LedgerError> {
        self.begin()?;
        let batch: i64 = self
            .conn
            .query_row(
                "SELECT COALESCE(MAX(batch), 0) + 1 FROM contacts",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.sql(e))?;
        for email in emails {
            self.set_contact(email, "sending", None, Some(batch), None)?;
        }
        self.commit()?;
        Ok(batch)
    }

    /// Record that the CRM created these contacts (with their ids, when it gave them).
    pub fn contacts_created(&self, created: &[(&str, Option<&str>)]) -> Result<(), LedgerError> {
        self.begin()?;
        for (email, id) in created {
            self.set_contact(email, "created", *id, None, None)?;
        }
        self.commit()
    }

    /// Record that the CRM refused to create `email`, with its message.
    pub fn contact_refused(&self, email: &str, message: &str) -> Result<(), LedgerError> {
        self.begin()?;
        self.set_contact(email, "refused", None, None, Some(message))?;
        self.commit()
    }

    /// The e-mails an earlier batch left `sending` (its answer never recorded).
    pub fn contacts_in_doubt(&self) -> Result<Vec<String>, LedgerError> {
        if !self.has_contacts_table()? {
            return Ok(Vec::new());
        }
        self.query_all(
            "SELECT email FROM contacts WHERE status = 'sending' ORDER BY email",
            [],
            |r| r.get(0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_and_created_contacts_are_remembered_and_a_batch_in_flight_is_in_doubt() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.sqlite"), "t").unwrap();
        ledger.begin_run("import", "x.csv", None, None).unwrap();
        ledger
            .contacts_looked_up(&[("a@x.co".into(), Some("1".into())), ("b@x.co".into(), None)])
            .unwrap();
        let batch = ledger.mark_contacts_sending(&["b@x.co", "c@x.co"]).unwrap();
        assert_eq!(batch, 1);
        assert_eq!(ledger.contacts_in_doubt().unwrap(), ["b@x.co", "c@x.co"]);
        ledger.contacts_created(&[("b@x.co", Some("2"))]).unwrap();
        assert_eq!(ledger.contacts_in_doubt().unwrap(), ["c@x.co"]);
        assert_eq!(ledger.mark_contacts_sending(&["c@x.co"]).unwrap(), 2);

        let known = ledger.known_contacts(86_400).unwrap();
        let mut emails: Vec<&String> = known.keys().collect();
        emails.sort();
        assert_eq!(emails, ["a@x.co", "b@x.co"]);
        assert_eq!(known["b@x.co"].id.as_deref(), Some("2"));
        // Checked 100 s ago: too old for a max age of 50 s.
        ledger
            .conn
            .execute("UPDATE contacts SET checked_at = checked_at - 100", [])
            .unwrap();
        assert!(ledger.known_contacts(50).unwrap().is_empty());

        assert_eq!(ledger.last_contact_scan().unwrap(), None);
        ledger.record_contact_scan(1234).unwrap();
        assert_eq!(ledger.last_contact_scan().unwrap(), Some(1234));
    }
}
