//! What a request does at the CRM, and so how it may be retried. An insert sent twice can
//! store two cases: an answer that may mean "stored" is never retried (unless the user
//! says `--retry-ambiguous`). An update is the same when repeated, so it retries those
//! answers like any other.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `cases/insert.php`: one new case per request.
    Insert,
    /// `cases/update.php`: new values for a case the ledger knows the id of. Sent twice,
    /// it leaves the case as sent once.
    Update,
}

impl Operation {
    /// Whether sending it again after an ambiguous answer (a timeout, a 500, a cut
    /// connection) can do no harm.
    pub fn repeatable(self) -> bool {
        match self {
            Operation::Insert => false,
            Operation::Update => true,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
        }
    }
}
