//! The states a key is in, as the ledger's `cases.status` column spells them. Bound as
//! SQL parameters, never written into statements (the migrations in `upgrade.rs` keep the
//! words they were written with: they are history).

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::outcome::Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// A request is (or was, when its run died) on its way: the CRM may have it.
    Sending,
    Created,
    /// The CRM refused the row: sending it unchanged will not help, a fixed one may go.
    Rejected,
    /// Provably not stored (or not sent): a later run sends it again.
    Failed,
    /// Sent, answer unknown: sent again only once someone records it missing.
    Uncertain,
    /// Was uncertain; someone checked the CRM and it is not there: sent again.
    Missing,
    /// Created, and an update of it is on its way (the case exists whatever comes back).
    Updating,
    /// Created, then deleted by `undo`: a later import creates it again.
    Deleted,
}

impl State {
    pub const ALL: [State; 8] = [
        State::Sending,
        State::Created,
        State::Rejected,
        State::Failed,
        State::Uncertain,
        State::Missing,
        State::Updating,
        State::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Sending => "sending",
            State::Created => "created",
            State::Rejected => "rejected",
            State::Failed => "failed",
            State::Uncertain => "uncertain",
            State::Missing => "missing",
            State::Updating => "updating",
            State::Deleted => "deleted",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// What a row's answered outcome leaves for its key.
    pub fn after(status: Status) -> State {
        match status {
            Status::Created => State::Created,
            Status::Rejected => State::Rejected,
            Status::Uncertain => State::Uncertain,
            // Not sent, or provably not stored: a later run sends it again.
            _ => State::Failed,
        }
    }

    /// The CRM may hold the case, and nobody has said whether it does.
    pub fn in_doubt(self) -> bool {
        matches!(self, State::Sending | State::Uncertain)
    }
}

impl ToSql for State {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for State {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<State> {
        let text = value.as_str()?;
        State::parse(text).ok_or_else(|| {
            FromSqlError::Other(format!("unknown case state {text:?} in the ledger").into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_as_itself() {
        for state in State::ALL {
            assert_eq!(State::parse(state.as_str()), Some(state));
        }
        assert_eq!(State::parse("created "), None);
    }
}
