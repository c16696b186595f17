//! What happened to one source row: plain data shared by the ledger and the report.

use std::fmt;

use crate::sender::{Delivery, Final};

/// A row's final status, as the results file spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// The CRM answered with success.
    Created,
    /// Created by an earlier run, changed since, and the CRM took the update
    /// (`import --update`).
    Updated,
    /// An earlier run already created this key (per the ledger); not sent.
    Skipped,
    /// The row failed the mapping's checks; not sent.
    Invalid,
    /// The CRM refused the row (a 4xx about the row); sending it again as-is won't help.
    Rejected,
    /// Not created, and the answer proves nothing was stored (retries exhausted); safe to resend.
    Failed,
    /// The CRM may or may not have stored it (timeout, 5xx after sending, dead run).
    Uncertain,
    /// Not sent in this run because the run stopped early; a re-run sends it.
    Pending,
    /// `validate` only: the row would be sent.
    Valid,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::Created,
        Status::Updated,
        Status::Skipped,
        Status::Invalid,
        Status::Rejected,
        Status::Failed,
        Status::Uncertain,
        Status::Pending,
        Status::Valid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Updated => "updated",
            Status::Skipped => "skipped",
            Status::Invalid => "invalid",
            Status::Rejected => "rejected",
            Status::Failed => "failed",
            Status::Uncertain => "uncertain",
            Status::Pending => "pending",
            Status::Valid => "valid",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Rows with these statuses go to the errors file: the user has something to do.
    pub fn needs_attention(self) -> bool {
        matches!(
            self,
            Status::Invalid | Status::Rejected | Status::Failed | Status::Uncertain
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of one source row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The row number the user sees (Excel row, or CSV line of the record's start).
    pub row: u64,
    pub key: String,
    pub status: Status,
    pub case_id: Option<String>,
    pub http_status: Option<u16>,
    pub attempts: u32,
    pub message: String,
}

impl Outcome {
    pub fn new(row: u64, key: impl Into<String>, status: Status) -> Self {
        Outcome {
            row,
            key: key.into(),
            status,
            case_id: None,
            http_status: None,
            attempts: 0,
            message: String::new(),
        }
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// What a delivery means for its row: the one step from the CRM's answer (as the
    /// sender settled it) to the row's status. `doubts` names values sent with a doubt (a
    /// phone number kept as typed), said on the row as `validate` says them.
    pub fn from_delivery(row: u64, key: String, delivery: Delivery, doubts: &str) -> Outcome {
        let (status, case_id) = match delivery.end {
            Final::Created(id) => (Status::Created, id),
            Final::Rejected => (Status::Rejected, None),
            Final::Failed => (Status::Failed, None),
            Final::Uncertain => (Status::Uncertain, None),
            // Nothing was stored: a later run sends it.
            Final::NotSent | Final::Stop(_) => (Status::Pending, None),
        };
        let message = match (doubts.is_empty(), delivery.message.is_empty()) {
            (true, _) => delivery.message,
            (false, true) => doubts.to_string(),
            (false, false) => format!("{}; {doubts}", delivery.message),
        };
        Outcome {
            row,
            key,
            status,
            case_id,
            http_status: delivery.http_status,
            attempts: delivery.attempts,
            message,
        }
    }
}

/// Counts per status, in a fixed order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    counts: [u64; 9],
}

impl Tally {
    pub fn add(&mut self, status: Status) {
        self.counts[status.index()] += 1;
    }

    pub fn get(&self, status: Status) -> u64 {
        self.counts[status.index()]
    }

    pub fn rows(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn needing_attention(&self) -> u64 {
        Status::ALL
            .into_iter()
            .filter(|s| s.needs_attention())
            .map(|s| self.get(s))
            .sum()
    }
}

/// How a run used one token, for the summary (by fingerprint, never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUse {
    pub fingerprint: String,
    /// Calls that reached the CRM, the preflight's included.
    pub calls: u64,
    /// Calls left today by the CRM's count (the preflight's figure less this run's
    /// calls), when known.
    pub quota_left: Option<u64>,
    /// `ok`, `rejected` or `quota`.
    pub state: &'static str,
}
