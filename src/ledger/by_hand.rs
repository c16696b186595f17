//! What a person found in the CRM about uncertain rows (`resolve`): "this one exists,
//! with case id X", "that one does not". Recorded so the next import sends exactly the
//! missing ones, and never a ticket someone saw in the CRM.

use rusqlite::params;

use super::{Ledger, LedgerError, State, now};

/// One key as checked by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The CRM has it (with its case id, when the person noted it).
    Created { case_id: Option<String> },
    /// The CRM does not have it: safe to send.
    Missing,
}

/// An uncertain row, as `resolve --list` offers it to be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UncertainRow {
    pub key: String,
    pub run: i64,
    pub source_row: i64,
    pub message: String,
}

/// What `settle_by_hand` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    pub created: u64,
    pub missing: u64,
    /// Findings that matched what the ledger already knew (e.g. created and created).
    pub unchanged: u64,
}

impl Ledger {
    /// Rows an earlier run sent without getting an answer, oldest run first.
    pub fn uncertain_rows(&self) -> Result<Vec<UncertainRow>, LedgerError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT key, run_id, source_row, COALESCE(message, '') FROM cases
                 WHERE status IN (?1, ?2) ORDER BY run_id, source_row",
            )
            .map_err(|e| self.sql(e))?;
        let rows = statement
            .query_map(params![State::Uncertain, State::Sending], |r| {
                Ok(UncertainRow {
                    key: r.get(0)?,
                    run: r.get(1)?,
                    source_row: r.get(2)?,
                    message: r.get(3)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }

    /// Record every finding, or none: a finding that could make a duplicate (a key the
    /// ledger saw created, said to be missing) or that names a key never sent as missing
    /// is refused, and the refusals come back to be shown, nothing written. Runs under
    /// this ledger's current run (`begin_run("resolve", …)` first).
    pub fn settle_by_hand(
        &mut self,
        findings: &[(String, Finding)],
    ) -> Result<Result<Settled, Vec<String>>, LedgerError> {
        let mut refusals = Vec::new();
        let mut plan = Vec::new();
        for (key, finding) in findings {
            let now_known = self.state_of(key)?;
            match (finding, now_known.as_ref().map(|(s, _, r)| (*s, r))) {
                (Finding::Missing, None) => refusals.push(format!(
                    "{key}: not in the ledger, so no run sent it; nothing to mark missing (check \
                     the key)"
                )),
                (Finding::Missing, Some((State::Created, run))) => {
                    let id = now_known
                        .as_ref()
                        .and_then(|(_, id, _)| id.clone())
                        .map(|id| format!(" as case {id}"))
                        .unwrap_or_default();
                    refusals.push(format!(
                        "{key}: run {run} got the CRM's answer that it was created{id}; not \
                         marked missing (that would send it again)"
                    ));
                }
                // Failed or rejected before: already sent again by the next import.
                (Finding::Missing, Some(_)) | (Finding::Created { .. }, _) => {
                    plan.push((key, finding))
                }
            }
        }
        if !refusals.is_empty() {
            return Ok(Err(refusals));
        }
        let mut settled = Settled::default();
        self.begin()?;
        for (key, finding) in plan {
            let before = self.state_of(key)?;
            let state = before.as_ref().map(|(s, _, _)| *s);
            match finding {
                Finding::Created { case_id } => {
                    let known_id = before.as_ref().and_then(|(_, id, _)| id.as_deref());
                    if state == Some(State::Created)
                        && (case_id.is_none() || case_id.as_deref() == known_id)
                    {
                        settled.unchanged += 1;
                        continue;
                    }
                    let case_id = case_id.as_deref().or(known_id);
                    self.write_finding(
                        key,
                        State::Created,
                        case_id,
                        "checked by hand: in the CRM",
                    )?;
                    settled.created += 1;
                }
                Finding::Missing => {
                    if !state.is_some_and(State::in_doubt) {
                        settled.unchanged += 1;
                        continue;
                    }
                    self.write_finding(
                        key,
                        State::Missing,
                        None,
                        "checked by hand: not in the CRM; the next import sends it",
                    )?;
                    settled.missing += 1;
                }
            }
        }
        self.commit()?;
        Ok(Ok(settled))
    }

    fn state_of(&self, key: &str) -> Result<Option<(State, Option<String>, i64)>, LedgerError> {
        use rusqlite::OptionalExtension;
        self.conn
            .prepare_cached("SELECT status, case_id, run_id FROM cases WHERE key = ?1")
            .and_then(|mut s| {
                s.query_row(params![key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()
            })
            .map_err(|e| self.sql(e))
    }

    fn write_finding(
        &self,
        key: &str,
        state: State,
        case_id: Option<&str>,
        message: &str,
    ) -> Result<(), LedgerError> {
        self.conn
            .prepare_cached(
                "INSERT INTO cases(key, status, case_id, run_id, source_row, attempts, message,
                     updated_at)
                 VALUES (?1, ?2, ?3, ?4, 0, 0, ?5, ?6)
                 ON CONFLICT(key) DO UPDATE SET status = ?2, case_id = ?3, run_id = ?4,
                     message = ?5, updated_at = ?6",
            )
            .and_then(|mut s| s.execute(params![key, state, case_id, self.run_id, message, now()]))
            .map_err(|e| self.sql(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Prior;
    use crate::outcome::Status;

    fn ledger_with_uncertain() -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        let mut ledger = Ledger::open(&path, "t").unwrap();
        ledger.begin_run("import", "x.csv", None, None).unwrap();
        for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
            ledger.mark_sending(key, i as u64 + 2, "{}").unwrap();
            ledger
                .record(&crate::ledger::answered(
                    key,
                    Status::Uncertain,
                    None,
                    "500",
                ))
                .unwrap();
        }
        ledger.mark_sending("done", 9, "{}").unwrap();
        ledger
            .record(&crate::ledger::answered(
                "done",
                Status::Created,
                Some("id-done"),
                "",
            ))
            .unwrap();
        ledger.commit().unwrap();
        ledger.begin_run("resolve", "by hand", None, None).unwrap();
        (dir, ledger)
    }

    #[test]
    fn findings_settle_uncertain_keys_so_only_the_missing_ones_are_sent_again() {
        let (_dir, mut ledger) = ledger_with_uncertain();
        let settled = ledger
            .settle_by_hand(&[
                (
                    "a".into(),
                    Finding::Created {
                        case_id: Some("id-a".into()),
                    },
                ),
                ("b".into(), Finding::Missing),
            ])
            .unwrap()
            .unwrap();
        assert_eq!((settled.created, settled.missing), (1, 1));
        assert!(
            matches!(ledger.prior("a").unwrap(), Some(Prior::Created { case_id: Some(id), .. }) if id == "id-a")
        );
        assert_eq!(ledger.prior("b").unwrap(), Some(Prior::Retryable));
        assert!(matches!(
            ledger.prior("c").unwrap(),
            Some(Prior::InDoubt { .. })
        ));
        assert_eq!(ledger.uncertain_rows().unwrap().len(), 1);
    }

    #[test]
    fn a_finding_that_could_duplicate_refuses_them_all() {
        let (_dir, mut ledger) = ledger_with_uncertain();
        let refused = ledger
            .settle_by_hand(&[
                ("a".into(), Finding::Missing),
                ("done".into(), Finding::Missing),
                ("never-sent".into(), Finding::Missing),
            ])
            .unwrap()
            .unwrap_err();
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(
            refused[0].starts_with("done: run 1 got the CRM's answer"),
            "{refused:?}"
        );
        // Nothing was written, not even the acceptable finding.
        assert!(matches!(
            ledger.prior("a").unwrap(),
            Some(Prior::InDoubt { .. })
        ));
    }
}
