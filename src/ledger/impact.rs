//! What an import would do with a file's valid rows, by the target's ledger, before
//! anything is sent: `validate --server …` (or `--ledger`) shows it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use super::{Ledger, LedgerError, Prior};
use crate::mapping::{Payload, delta};

/// What an import would do with one valid row, by the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Not created yet (or provably not stored): sent.
    New,
    /// Created, and these fields changed since.
    Changed(Vec<String>),
    /// Created as it is now: skipped.
    Unchanged,
    /// Sent without an answer: not sent until settled.
    Uncertain,
}

impl Effect {
    pub fn of(ledger: &Ledger, payload: &Payload) -> Result<Effect, LedgerError> {
        Ok(match ledger.prior(&payload.key)? {
            None | Some(Prior::Retryable) => Effect::New,
            Some(Prior::InDoubt { .. }) => Effect::Uncertain,
            Some(Prior::Created {
                fields: Some(sent), ..
            }) => {
                let changed = delta::changed(&sent, &payload.fingerprints());
                if changed.is_empty() {
                    Effect::Unchanged
                } else {
                    Effect::Changed(changed)
                }
            }
            // Created by a release that kept no fingerprints: unchanged, as import treats it.
            Some(Prior::Created { fields: None, .. }) => Effect::Unchanged,
        })
    }

    /// As `preview` shows it: "new", "unchanged", "uncertain", or the changed fields.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Effect::New => "new".into(),
            Effect::Unchanged => "unchanged".into(),
            Effect::Uncertain => "uncertain".into(),
            Effect::Changed(fields) => serde_json::json!({ "changed": fields }),
        }
    }
}

/// Valid rows by what an import would do with them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Impact {
    /// The ledger read.
    pub ledger: String,
    /// Not created yet (or provably not stored): an import sends them.
    pub new: u64,
    /// Created, and changed since: `import --update` sends their updatable changes.
    pub changed: u64,
    /// Changed rows per field (`status`, `form.Ciudad`, …).
    pub changed_fields: BTreeMap<String, u64>,
    /// Created, and as they were sent: skipped.
    pub unchanged: u64,
    /// Sent by an earlier run without an answer: not sent until settled (`resolve`).
    pub uncertain: u64,
}

impl Impact {
    pub fn new(ledger: &Ledger) -> Impact {
        Impact {
            ledger: ledger.path().display().to_string(),
            ..Impact::default()
        }
    }

    /// Count one valid row.
    pub fn count(&mut self, ledger: &Ledger, payload: &Payload) -> Result<(), LedgerError> {
        match Effect::of(ledger, payload)? {
            Effect::New => self.new += 1,
            Effect::Uncertain => self.uncertain += 1,
            Effect::Unchanged => self.unchanged += 1,
            Effect::Changed(fields) => {
                self.changed += 1;
                for field in fields {
                    *self.changed_fields.entry(field).or_insert(0) += 1;
                }
            }
        }
        Ok(())
    }

    /// One line: "230 new, 3 changed (priority 1, status 2), 24 unchanged, 0 uncertain".
    pub fn describe(&self) -> String {
        let fields = if self.changed_fields.is_empty() {
            String::new()
        } else {
            let each: Vec<String> = self
                .changed_fields
                .iter()
                .map(|(field, n)| format!("{field} {n}"))
                .collect();
            format!(" ({})", each.join(", "))
        };
        format!(
            "{} new, {} changed{fields}, {} unchanged, {} uncertain",
            self.new, self.changed, self.unchanged, self.uncertain
        )
    }
}
