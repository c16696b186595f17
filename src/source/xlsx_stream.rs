//! XLSX read as a stream of cells (calamine's cell reader), so a 100k-row workbook is
//! never held whole in memory. The workbook lives on its own thread, which owns it while
//! the cell reader borrows it, and hands rows over a bounded channel.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use calamine::{Data, Reader, Xlsx, open_workbook};

use super::cell::{cell_text, zero_pad_width, zero_padded};
use super::sheet::choose_sheet;
use super::{
    Cells, Row, RowError, RowResult, Source, SourceError, SourceInfo, SourceOptions, column_letter,
};

/// What the reading thread says first: the header row, or why there is none.
enum Start {
    Headers {
        headers: Vec<String>,
        sheet: String,
        header_row: u64,
    },
    Failed(SourceError),
}

pub fn open(path: &Path, options: &SourceOptions) -> Result<Source, SourceError> {
    let (start_tx, start_rx) = sync_channel::<Start>(1);
    let (rows_tx, rows_rx) = sync_channel::<RowResult>(1024);
    let owned = path.to_path_buf();
    let reopen = super::Reopen::new(options);
    let options = options.clone();
    std::thread::spawn(move || {
        crate::background::lower_priority(crate::background::HELPER_NICE);
        stream(&owned, &options, &start_tx, &rows_tx)
    });
    match start_rx.recv() {
        Ok(Start::Headers {
            headers,
            sheet,
            header_row,
        }) => Ok(Source {
            path: path.to_path_buf(),
            headers,
            info: SourceInfo::workbook(sheet, header_row),
            read_bytes: None,
            reopen,
            rows: super::Rows::each(ChannelRows(rows_rx)),
        }),
        Ok(Start::Failed(e)) => Err(e),
        Err(_) => Err(SourceError::Workbook {
            path: path.to_path_buf(),
            message: "the reader stopped before the header row".into(),
        }),
    }
}

struct ChannelRows(Receiver<RowResult>);

impl Iterator for ChannelRows {
    type Item = RowResult;
    fn next(&mut self) -> Option<RowResult> {
        self.0.recv().ok()
    }
}

/// One worksheet row as read: (column, value) pairs in column order.
struct RawRow {
    row: u32,
    cells: Vec<(u32, Data)>,
}

impl RawRow {
    fn is_blank(&self) -> bool {
        self.cells.iter().all(|(_, d)| match d {
            Data::Empty => true,
            Data::String(s) => s.trim().is_empty(),
            _ => false,
        })
    }
}

fn stream(
    path: &PathBuf,
    options: &SourceOptions,
    start: &SyncSender<Start>,
    rows: &SyncSender<RowResult>,
) {
    let fail = |message: String| {
        let _ = start.send(Start::Failed(SourceError::Workbook {
            path: path.clone(),
            message,
        }));
    };
    let mut workbook: Xlsx<BufReader<File>> = match open_workbook(path) {
        Ok(w) => w,
        Err(e) => return fail(e.to_string()),
    };
    let sheet = match choose_sheet(path, workbook.sheets_metadata(), options.sheet.as_deref()) {
        Ok(sheet) => sheet,
        Err(e) => {
            let _ = start.send(Start::Failed(e));
            return;
        }
    };
    let mut cells = match workbook.worksheet_cells_reader(&sheet) {
        Ok(reader) => reader,
        Err(e) => return fail(e.to_string()),
    };
    // Per style id (the cell's `s`, an index into `cellXfs`): the width its number format
    // pads to, if it is only zeros (`0000000000`). Worked out once, not per cell.
    let pads: Vec<Option<usize>> = cells
        .styles()
        .iter()
        .map(|style| {
            let format = style.number_format.as_ref()?;
            zero_pad_width(&format.format_code)
        })
        .collect();

    // Cells arrive row by row; gather each row before handing it on.
    let mut pending: Option<RawRow> = None;
    let mut finished = false;
    let mut next_row = || -> Result<Option<RawRow>, String> {
        // The reader must not be asked again once it said the sheet is over.
        while !finished {
            match cells.next_cell_with_style_id() {
                Ok(Some((cell, style))) => {
                    let (r, c) = cell.get_position();
                    let mut value = Data::from(cell.get_value().clone());
                    if let Some(width) = pads.get(style).copied().flatten() {
                        value = zero_padded(value, width);
                    }
                    match &mut pending {
                        Some(raw) if raw.row == r => raw.cells.push((c, value)),
                        _ => {
                            let done = pending.replace(RawRow {
                                row: r,
                                cells: vec![(c, value)],
                            });
                            if done.is_some() {
                                return Ok(done);
                            }
                        }
                    }
                }
                Ok(None) => finished = true,
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(pending.take())
    };

    // The header: the first non-blank row, or the one --header-row names.
    let wanted = options.header_row.map(|n| n.saturating_sub(1) as u32);
    let header = loop {
        match next_row() {
            Ok(Some(raw)) if wanted.is_some_and(|w| raw.row < w) => continue,
            Ok(Some(raw)) if wanted.is_none() && raw.is_blank() => continue,
            Ok(Some(raw)) => break raw,
            Ok(None) => {
                let _ = start.send(Start::Failed(SourceError::Empty { path: path.clone() }));
                return;
            }
            Err(e) => return fail(e),
        }
    };
    let first_col = header.cells.iter().map(|(c, _)| *c).min().unwrap_or(0);
    let mut headers: Vec<String> = Vec::new();
    for (c, value) in &header.cells {
        let index = (c - first_col) as usize;
        if headers.len() <= index {
            headers.resize(index + 1, String::new());
        }
        headers[index] = cell_text(value).unwrap_or_default().trim().to_string();
    }
    while headers.last().is_some_and(|h| h.is_empty()) {
        headers.pop();
    }
    if headers.is_empty() {
        let _ = start.send(Start::Failed(SourceError::Empty { path: path.clone() }));
        return;
    }
    let width = headers.len();
    if start
        .send(Start::Headers {
            headers,
            sheet,
            header_row: u64::from(header.row) + 1,
        })
        .is_err()
    {
        return;
    }

    loop {
        let raw = match next_row() {
            Ok(Some(raw)) => raw,
            Ok(None) => return,
            Err(e) => {
                let _ = rows.send(Err(RowError {
                    number: 0,
                    cells: Cells::default(),
                    message: format!("the workbook cannot be read from here on: {e}"),
                }));
                return;
            }
        };
        if raw.is_blank() {
            continue;
        }
        if rows.send(Ok(shape(raw, first_col, width))).is_err() {
            return;
        }
    }
}

fn shape(mut raw: RawRow, first_col: u32, width: usize) -> Row {
    // Cells come in column order (a file written otherwise is put in order): written
    // straight into one buffer, gaps as empty cells.
    if !raw.cells.is_sorted_by_key(|(c, _)| *c) {
        raw.cells.sort_by_key(|(c, _)| *c);
    }
    let mut cells = Cells::default();
    let mut cell_errors = Vec::new();
    for (c, value) in raw.cells {
        let Some(index) = c
            .checked_sub(first_col)
            .map(|i| i as usize)
            .filter(|i| *i < width && *i >= cells.len())
        else {
            continue;
        };
        while cells.len() < index {
            cells.push("");
        }
        match cell_text(&value) {
            Ok(text) => cells.push(&text),
            Err(error) => {
                let name = format!("{}{}", column_letter(c as usize), raw.row + 1);
                cell_errors.push((index, format!("cell {name} holds the error {error}")));
                cells.push(&error);
            }
        }
    }
    while cells.len() < width {
        cells.push("");
    }
    Row {
        number: u64::from(raw.row) + 1,
        cells,
        cell_errors,
    }
}
