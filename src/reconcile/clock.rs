//! The CRM's clock and the date windows: `queryDates.php` takes minutes in the CRM's own
//! time (`date creation` is server time, its zone unknown), so the offset is read once
//! from a case whose creation the ledger saw, and each row's window is the minutes around
//! its send.

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};

use crate::sender::lookup::{self, Record};

/// Looked at before the first send and after the last answer of a row: the CRM dates a
/// case between the two, and its clock may be off by a little.
const MARGIN: TimeDelta = TimeDelta::minutes(3);
/// The most a case used to read the clock may take from send to answer, and the most the
/// clocks may disagree beyond whole quarter hours: both below `MARGIN`.
const READ_WITHIN: TimeDelta = TimeDelta::minutes(2);
/// Rows of ledgers older than schema 3 have no send time: the window reaches back this
/// far from their answer (more than every retry of a row takes).
const NO_SEND_TIME: TimeDelta = TimeDelta::minutes(10);

/// The CRM's offset from UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    offset: TimeDelta,
}

pub fn parse_ours(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A record's `date creation` (`YYYY-MM-DD HH:MM:SS`, the CRM's clock).
pub fn created(record: &Record) -> Option<NaiveDateTime> {
    let text = lookup::text(record, "date creation")?;
    let text = text.trim();
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M"))
        .ok()
}

impl Clock {
    /// The offset that puts `record`'s creation between `sent` and `answered` (ours),
    /// rounded to the quarter hour every time zone is a multiple of; `None` when the
    /// record has no readable date or the clocks disagree by more than the margin.
    pub fn from_case(record: &Record, sent: &str, answered: &str) -> Option<Clock> {
        let (sent, answered) = (parse_ours(sent)?, parse_ours(answered)?);
        if answered < sent || answered - sent > READ_WITHIN {
            return None;
        }
        let created = created(record)?;
        let middle = sent + (answered - sent) / 2;
        let raw = created - middle.naive_utc();
        let quarter = TimeDelta::minutes(15).num_seconds();
        let offset = TimeDelta::seconds(
            (raw.num_seconds() as f64 / quarter as f64).round() as i64 * quarter,
        );
        let skew = (raw - offset).abs();
        (skew <= READ_WITHIN).then_some(Clock { offset })
    }

    /// The CRM's minute for our `time`.
    pub fn minute(&self, time: DateTime<Utc>) -> String {
        (time.naive_utc() + self.offset)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    }

    /// Whether a case created at `created` (the CRM's clock) may be the send of a row
    /// in `span`.
    pub fn within(&self, created: NaiveDateTime, span: &Span) -> bool {
        let ours = created - self.offset;
        span.from.naive_utc() <= ours && ours <= span.to.naive_utc() + TimeDelta::minutes(1)
    }
}

/// A stretch of our time holding the sends of some rows (indexes into the caller's list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub rows: Vec<usize>,
}

/// The window of one row: from before its send to after its answer.
pub fn row_span(index: usize, sent_at: Option<&str>, answered_at: &str) -> Option<Span> {
    let answered = parse_ours(answered_at)?;
    let sent = sent_at
        .and_then(parse_ours)
        .unwrap_or(answered - NO_SEND_TIME)
        .min(answered);
    Some(Span {
        from: sent - MARGIN,
        to: answered + MARGIN,
        rows: vec![index],
    })
}

/// Overlapping windows merged: one date query answers for all their rows.
pub fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| s.from);
    let mut merged: Vec<Span> = Vec::new();
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.from <= last.to => {
                last.to = last.to.max(span.to);
                last.rows.extend(span.rows);
            }
            _ => merged.push(span),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(created: &str) -> Record {
        serde_json::from_value(serde_json::json!({ "date creation": created })).unwrap()
    }

    #[test]
    fn the_offset_is_read_to_the_quarter_hour() {
        let sent = "2026-12-01T10:00:00.000Z";
        let answered = "2026-12-01T10:00:01.000Z";
        let utc = Clock::from_case(&record("2026-12-01 10:00:00"), sent, answered).unwrap();
        assert_eq!(utc.minute(parse_ours(sent).unwrap()), "2026-12-01 10:00");
        // Bogotá, a minute of clock drift.
        let bogota = Clock::from_case(&record("2026-12-01 05:01:10"), sent, answered).unwrap();
        assert_eq!(bogota.minute(parse_ours(sent).unwrap()), "2026-12-01 05:00");
        // Kathmandu's +05:45.
        let nepal = Clock::from_case(&record("2026-12-01 15:45:00"), sent, answered).unwrap();
        assert_eq!(nepal.minute(parse_ours(sent).unwrap()), "2026-12-01 15:45");
        // Seven minutes off any zone: not a clock to trust.
        assert!(Clock::from_case(&record("2026-12-01 10:07:30"), sent, answered).is_none());
        // A row answered (or written) long after it was sent cannot date its case.
        let late = "2026-12-01T13:00:00.000Z";
        assert!(Clock::from_case(&record("2026-12-01 10:00:00"), sent, late).is_none());
        assert!(Clock::from_case(&record("yesterday"), sent, answered).is_none());
    }

    #[test]
    fn overlapping_windows_merge_and_distant_ones_do_not() {
        let span = |i, sent: &str, answered: &str| row_span(i, Some(sent), answered).unwrap();
        let spans = merge(vec![
            span(0, "2026-12-01T10:00:00Z", "2026-12-01T10:00:01Z"),
            span(2, "2026-12-01T11:00:00Z", "2026-12-01T11:00:05Z"),
            span(1, "2026-12-01T10:03:00Z", "2026-12-01T10:03:30Z"),
        ]);
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].rows, vec![0, 1]);
        assert_eq!(spans[1].rows, vec![2]);
        // No send time (an older ledger): ten minutes back from the answer.
        let old = row_span(0, None, "2026-12-01T10:30:00Z").unwrap();
        assert_eq!(old.from, parse_ours("2026-12-01T10:17:00Z").unwrap());
    }
}
