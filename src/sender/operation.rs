//! What a request does at the CRM, and so how it may be retried. An insert sent twice can
//! store two cases: an answer that may mean "stored" is never retried (unless the user
//! says `--retry-ambiguous`). Operations that are the same when repeated (an update, a
//! look-up) will retry those answers like any other.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `cases/insert.php`: one new case per request.
    Insert,
}

impl Operation {
    /// Whether sending it again after an ambiguous answer (a timeout, a 500, a cut
    /// connection) can do no harm.
    pub fn repeatable(self) -> bool {
        match self {
            Operation::Insert => false,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
        }
    }
}
