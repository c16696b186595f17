//! The feedback columns, `_row` and `_error`: an errors file is the input's own columns
//! and then these two (the row's number in the original file, and why it needs looking
//! at), so that it can be fixed and run again with the same mapping.
//!
//! Their names and rules live here, and only here: the reporter writes them
//! ([`Layout`]), the mapping and `init-mapping` leave them out of the data columns
//! ([`is_feedback_column`]), and the reader takes a fed-back row's original number from
//! `_row` ([`row_column`], [`original_row`]).

use crate::source::Cells;

/// The original row's number (the CSV line, or the workbook row).
pub const ROW: &str = "_row";
/// Why the row is in the errors file.
pub const ERROR: &str = "_error";

/// How the message of a row refused as a duplicate of another row's key starts
/// (`mapping::check`, and `run::messages::row::fed_back_duplicate`): `was_duplicate`
/// knows such a row again when its errors file is fed back.
pub const DUPLICATE_OF: &str = "duplicate of";

/// Whether `header` is one of the columns an errors file adds (fed back, they are not data).
pub fn is_feedback_column(header: &str) -> bool {
    header == ROW || header == ERROR
}

/// The `_row` column of an input, if the input is an errors file fed back.
pub fn row_column(headers: &[String]) -> Option<usize> {
    headers.iter().position(|h| h == ROW)
}

/// The original row a fed-back row stands for: its `_row` cell, when that is a number.
pub fn original_row(row_column: Option<usize>, cells: &Cells) -> Option<u64> {
    cells.get(row_column?)?.trim().parse().ok()
}

/// The `_error` column of an input, if the input is an errors file fed back.
pub fn error_column(headers: &[String]) -> Option<usize> {
    headers.iter().position(|h| h == ERROR)
}

/// Whether a fed-back row was in the errors file as a duplicate of another row's key.
pub fn was_duplicate(error_column: Option<usize>, cells: &Cells) -> bool {
    error_column
        .and_then(|c| cells.get(c))
        .is_some_and(|e| e.trim_start().starts_with(DUPLICATE_OF))
}

/// How an input's rows are written to its errors file, decided once from its headers.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Per input column: whether it is data (kept) or an earlier `_row`/`_error` (dropped).
    keep: Vec<bool>,
    /// The input's data columns: every row is padded to this many before `_row`.
    data_columns: usize,
    row_column: Option<usize>,
    /// The errors file's header.
    header: Vec<String>,
}

impl Layout {
    pub fn new(headers: &[String]) -> Layout {
        let keep: Vec<bool> = headers.iter().map(|h| !is_feedback_column(h)).collect();
        let mut header: Vec<String> = headers
            .iter()
            .filter(|h| !is_feedback_column(h))
            .cloned()
            .collect();
        let data_columns = header.len();
        header.extend([ROW.to_string(), ERROR.to_string()]);
        Layout {
            keep,
            data_columns,
            row_column: row_column(headers),
            header,
        }
    }

    /// The errors file's header: the input's data columns, then `_row` and `_error`.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// One line of the errors file: the row's data cells, then `_row` and `_error`.
    ///
    /// `row` is the row's number as the results file gives it; a row fed back keeps the
    /// text of its own `_row` cell (when not empty), so the file keeps pointing at the
    /// original rows however often it goes round. A ragged row may have more or fewer
    /// cells than the header: all are kept, and a short one (or one not read at all) is
    /// padded, so that `_row` and `_error` stay under their own headers.
    pub fn record<'a>(&self, cells: &'a Cells, row: &'a str, error: &'a str) -> Vec<&'a str> {
        let original_row = self
            .row_column
            .and_then(|i| cells.get(i))
            .filter(|r| !r.is_empty())
            .unwrap_or(row);
        let mut record: Vec<&str> = Vec::with_capacity(self.header.len().max(cells.len() + 2));
        record.extend(
            self.keep
                .iter()
                .zip(cells.iter())
                .filter(|(keep, _)| **keep)
                .map(|(_, cell)| cell),
        );
        if cells.len() > self.keep.len() {
            record.extend(cells.iter().skip(self.keep.len()));
        } else {
            record.resize(record.len().max(self.data_columns), "");
        }
        record.push(original_row);
        record.push(error);
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn cells(values: &[&str]) -> Cells {
        let mut cells = Cells::default();
        for value in values {
            cells.push(value);
        }
        cells
    }

    #[test]
    fn a_first_errors_file_adds_the_row_and_why() {
        let layout = Layout::new(&headers(&["Ticket", "Correo"]));
        assert_eq!(layout.header(), ["Ticket", "Correo", "_row", "_error"]);
        assert_eq!(
            layout.record(&cells(&["T-1", "ana@"]), "7", "Correo: bad"),
            ["T-1", "ana@", "7", "Correo: bad"]
        );
    }

    #[test]
    fn a_fed_back_file_keeps_the_original_row_and_drops_the_old_error() {
        let fed = headers(&["Ticket", "Correo", "_row", "_error"]);
        let layout = Layout::new(&fed);
        assert_eq!(layout.header(), ["Ticket", "Correo", "_row", "_error"]);
        let row = cells(&["T-1", "ana@x", "41", "old message"]);
        assert_eq!(
            layout.record(&row, "2", "new message"),
            ["T-1", "ana@x", "41", "new message"]
        );
        assert_eq!(original_row(row_column(&fed), &row), Some(41));
        // An empty `_row` falls back to the row's own number.
        let row = cells(&["T-1", "ana@x", "", "old"]);
        assert_eq!(layout.record(&row, "2", "m"), ["T-1", "ana@x", "2", "m"]);
        assert_eq!(original_row(row_column(&fed), &row), None);
    }

    #[test]
    fn ragged_rows_keep_every_cell_and_short_ones_are_padded() {
        let layout = Layout::new(&headers(&["A", "B", "C"]));
        assert_eq!(
            layout.record(&cells(&["1", "2", "3", "4"]), "5", "e"),
            ["1", "2", "3", "4", "5", "e"]
        );
        assert_eq!(
            layout.record(&cells(&["1"]), "5", "e"),
            ["1", "", "", "5", "e"]
        );
        assert_eq!(layout.record(&cells(&[]), "5", "e"), ["", "", "", "5", "e"]);
    }

    #[test]
    fn only_the_two_added_columns_are_feedback() {
        assert!(is_feedback_column("_row") && is_feedback_column("_error"));
        assert!(!is_feedback_column("row") && !is_feedback_column("_Row"));
    }
}
