//! The row check: a source row through the mapping (a payload ready to send, or an
//! invalid row with every reason), then the in-file duplicate-key policy.
//!
//! The mapping of a row needs nothing but the row, so `CheckedRows` runs it on the
//! source's worker threads (`Rows::map_parallel`); the duplicate check needs the rows in
//! file order, so it runs on the receiving side, after the source put them back in order.

use std::sync::Arc;
use std::task::Poll;

use super::spec::DuplicatePolicy;
use super::{CompiledMapping, DuplicateKeys, FieldError, Payload, describe};
use crate::source::{Cells, Ordered, ReaderPanicked, RowResult, Rows};

/// A source row after the mapping: ready to send, or invalid with every reason.
#[derive(Debug)]
pub enum Checked {
    Ready {
        row: u64,
        cells: Cells,
        payload: Payload,
    },
    Invalid {
        row: u64,
        cells: Cells,
        key: String,
        message: String,
        /// The bad cells one by one, when the mapping found them (`message` joins them);
        /// empty when the row itself is the problem (unreadable, a duplicate).
        errors: Vec<FieldError>,
    },
}

/// Apply the mapping and the in-file duplicate check to one source row (rows one by one,
/// in file order).
pub fn check(item: RowResult, mapping: &CompiledMapping, keys: &mut DuplicateKeys) -> Checked {
    dedupe(map_row(item, mapping), mapping.on_duplicate_key, keys)
}

/// The mapping alone: safe to run for many rows at once, on several threads.
fn map_row(item: RowResult, mapping: &CompiledMapping) -> Checked {
    let feedback = mapping.feedback_column();
    let mut row = match item {
        Ok(row) => row,
        Err(e) => {
            return Checked::Invalid {
                row: crate::feedback::original_row(feedback, &e.cells).unwrap_or(e.number),
                cells: e.cells,
                key: String::new(),
                message: e.message,
                errors: Vec::new(),
            };
        }
    };
    // An errors file fed back keeps reporting the rows of the original file.
    if let Some(original) = crate::feedback::original_row(feedback, &row.cells) {
        row.number = original;
    }
    match mapping.apply(&row) {
        Ok(payload) => Checked::Ready {
            row: row.number,
            cells: row.cells,
            payload,
        },
        Err(errors) => Checked::Invalid {
            row: row.number,
            key: mapping.key_hint(&row),
            message: describe(&errors),
            cells: row.cells,
            errors,
        },
    }
}

/// The in-file duplicate check: needs the rows in file order.
fn dedupe(checked: Checked, policy: DuplicatePolicy, keys: &mut DuplicateKeys) -> Checked {
    match checked {
        Checked::Ready {
            row,
            cells,
            payload,
        } if policy == DuplicatePolicy::Reject => match keys.first_row(&payload.key, row) {
            Some(first) => Checked::Invalid {
                row,
                key: payload.key,
                cells,
                message: format!(
                    "{} row {first}: same key; if they are different tickets, give \
                     this one its own number in the file (before a first import you may instead \
                     add a column to `key:` that tells them apart)",
                    crate::feedback::DUPLICATE_OF
                ),
                errors: Vec::new(),
            },
            None => Checked::Ready {
                row,
                cells,
                payload,
            },
        },
        other => other,
    }
}

/// Threads that apply the mapping (besides the one that reads).
const MAP_WORKERS: usize = 2;

/// How many rows with warnings are logged one by one before they are only counted.
const LOGGED_WARNINGS: u64 = 5;

/// Checked rows in file order: the source's threads read and map them
/// (`Rows::map_parallel`), this side checks duplicate keys as they come.
pub struct CheckedRows {
    rows: Ordered<Checked>,
    keys: DuplicateKeys,
    policy: DuplicatePolicy,
    /// The duplicate-key table was sized from the file's expected rows.
    sized: bool,
    /// Rows with a value kept as typed (a phone that is none): the first few are
    /// logged, then only counted, so a file full of them does not flood the log.
    warned_rows: u64,
}

impl CheckedRows {
    pub fn spawn(rows: Rows, mapping: CompiledMapping) -> std::io::Result<CheckedRows> {
        let policy = mapping.on_duplicate_key;
        let mapping = Arc::new(mapping);
        let rows = rows.map_parallel(MAP_WORKERS, move |row| map_row(row, &mapping))?;
        Ok(CheckedRows {
            rows,
            keys: DuplicateKeys::default(),
            policy,
            sized: false,
            warned_rows: 0,
        })
    }

    /// A mapped row, in file order, through the duplicate check.
    fn settle(&mut self, checked: Checked) -> Checked {
        if !self.sized
            && let Some(expected) = self.rows.expected_rows()
        {
            // Sized once instead of growing.
            self.keys.expect(expected.min(100_000_000) as usize);
            self.sized = true;
        }
        let checked = dedupe(checked, self.policy, &mut self.keys);
        self.log_warnings(&checked);
        checked
    }

    /// The next row if one is ready now, without waiting: `Pending` if none has arrived.
    pub fn try_next(&mut self) -> Poll<Option<Checked>> {
        match self.rows.try_next() {
            Poll::Ready(Some(checked)) => Poll::Ready(Some(self.settle(checked))),
            other => other,
        }
    }

    /// The next row, from async code (cancel-safe: nothing is awaited after a receive).
    pub async fn next(&mut self) -> Option<Checked> {
        let checked = self.rows.next().await?;
        Some(self.settle(checked))
    }

    /// The next row, from a plain thread.
    pub fn next_blocking(&mut self) -> Option<Checked> {
        let checked = self.rows.next_blocking()?;
        Some(self.settle(checked))
    }

    fn log_warnings(&mut self, checked: &Checked) {
        let Checked::Ready { row, payload, .. } = checked else {
            return;
        };
        if payload.warnings().is_empty() {
            return;
        }
        self.warned_rows += 1;
        if self.warned_rows <= LOGGED_WARNINGS {
            tracing::warn!("row {row}: {}", describe(payload.warnings()));
        }
    }

    /// Wait for the threads; a panic in them is a bug worth reporting.
    pub fn join(self) -> Result<(), ReaderPanicked> {
        if self.warned_rows > LOGGED_WARNINGS {
            tracing::warn!(
                "{} rows in all have a value kept as typed (the results file lists each one, \
                 in its message column)",
                self.warned_rows
            );
        }
        self.rows.join()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::source::Row;

    fn mapping(extra: &str) -> CompiledMapping {
        let text = format!(
            "operation: op\nkey: [Ticket]\n{extra}fields:\n  case-type: {{ value: Request }}\n  \
             responsible: {{ value: a@op }}\n  owner: {{ value: a@op }}\n  contact: {{ value: \
             c@ejemplo.co }}\n  description: Texto\n  status: {{ value: Abierto }}\n  priority: \
             {{ value: Alta }}\n"
        );
        let spec = crate::mapping::parse(&text, Path::new("m.yaml")).unwrap();
        let headers = ["Ticket", "Texto"].map(String::from);
        CompiledMapping::compile(
            &spec,
            &headers,
            None,
            Path::new("m.yaml"),
            Path::new("t.csv"),
        )
        .unwrap()
    }

    /// Rows 2.. of tickets `keys` (an empty text makes a row invalid).
    fn rows(keys: &[(&str, &str)]) -> Vec<RowResult> {
        keys.iter()
            .zip(2u64..)
            .map(|((ticket, text), number)| {
                Ok(Row {
                    number,
                    cells: [*ticket, *text].into_iter().collect(),
                    cell_errors: Vec::new(),
                })
            })
            .collect()
    }

    /// What a check gives, in short: (row, Some(key)) if ready, (row, None) if not.
    fn summary(checked: &Checked) -> (u64, Option<String>) {
        match checked {
            Checked::Ready { row, payload, .. } => (*row, Some(payload.key.clone())),
            Checked::Invalid { row, .. } => (*row, None),
        }
    }

    #[test]
    fn the_threads_give_what_one_by_one_gives_and_a_second_key_is_a_duplicate_of_the_first() {
        let mut input: Vec<(String, String)> = (0..2000)
            .map(|i| {
                (
                    format!("T{}", i % 1500),
                    if i % 97 == 0 { "" } else { "x" }.into(),
                )
            })
            .collect();
        input.push(("T7".into(), "again".into()));
        let pairs: Vec<(&str, &str)> = input
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let mapping = mapping("");
        let mut keys = DuplicateKeys::default();
        let one_by_one: Vec<_> = rows(&pairs)
            .into_iter()
            .map(|row| summary(&check(row, &mapping, &mut keys)))
            .collect();
        let mut checked =
            CheckedRows::spawn(Rows::each(rows(&pairs).into_iter()), mapping).unwrap();
        let mut threaded = Vec::new();
        let mut last = None;
        while let Some(row) = checked.next_blocking() {
            threaded.push(summary(&row));
            last = Some(row);
        }
        checked.join().unwrap();
        assert_eq!(threaded, one_by_one);
        // T7 is row 9, its later rows 1509 and 2002 are duplicates of it.
        let Some(Checked::Invalid { row, message, .. }) = last else {
            panic!("the last T7 is a duplicate")
        };
        assert_eq!(row, 2002);
        assert!(message.starts_with("duplicate of row 9:"), "{message}");
        // 21 rows without a text; of the 500 repeated keys, 489 whose first row was valid
        // (an invalid row takes no key); the last T7.
        assert_eq!(
            threaded.iter().filter(|(_, key)| key.is_none()).count(),
            21 + 489 + 1
        );
    }

    #[test]
    fn an_errors_file_fed_back_keeps_the_original_row_numbers() {
        let text = "operation: op\nkey: [Ticket]\nfields:\n  case-type: { value: Request }\n  \
                    responsible: { value: a@op }\n  owner: { value: a@op }\n  contact: { value: \
                    c@ejemplo.co }\n  description: Texto\n  status: { value: Abierto }\n  \
                    priority: { value: Alta }\n";
        let spec = crate::mapping::parse(text, Path::new("m.yaml")).unwrap();
        let headers = ["_row", "Ticket", "Texto", "_error"].map(String::from);
        let mapping = CompiledMapping::compile(
            &spec,
            &headers,
            None,
            Path::new("m.yaml"),
            Path::new("e.csv"),
        )
        .unwrap();
        let row = Ok(Row {
            number: 2,
            cells: ["417", "T1", "x", "old"].into_iter().collect(),
            cell_errors: Vec::new(),
        });
        let checked = check(row, &mapping, &mut DuplicateKeys::default());
        assert_eq!(summary(&checked), (417, Some("T1".into())));
    }
}
