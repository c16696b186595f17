//! Workbook reader (xlsx, xlsm, xls, xlsb, ods) through calamine.

use std::path::Path;

use calamine::{Data, Range, Reader, open_workbook_auto};

use super::cell::cell_text;
use super::sheet::choose_sheet;
use super::{Cells, Row, RowResult, Source, SourceError, SourceInfo, SourceOptions, column_letter};

pub fn open(
    path: &Path,
    options: &SourceOptions,
    archive: super::Archive,
) -> Result<Source, SourceError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if archive == super::Archive::Check && matches!(ext.as_str(), "xlsx" | "xlsm" | "xlsb" | "ods")
    {
        super::archive::check(path, options.limits)?;
    }
    if ext == "xlsx" || ext == "xlsm" {
        return super::xlsx_stream::open(path, options);
    }
    let workbook_err = |e: calamine::Error| SourceError::Workbook {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut workbook = open_workbook_auto(path).map_err(workbook_err)?;
    let sheet = choose_sheet(path, workbook.sheets_metadata(), options.sheet.as_deref())?;
    let range = workbook.worksheet_range(&sheet).map_err(workbook_err)?;
    let (Some((first_row, first_col)), Some((last_row, _))) = (range.start(), range.end()) else {
        return Err(SourceError::Empty {
            path: path.to_path_buf(),
        });
    };

    // Row numbers in messages are Excel's: absolute 0-based index + 1.
    let header_abs = match options.header_row {
        Some(n) => (n.saturating_sub(1)) as u32,
        None => (first_row..=last_row)
            .find(|&r| !row_is_blank(&range, r))
            .unwrap_or(first_row),
    };
    if header_abs < first_row || header_abs > last_row {
        return Err(SourceError::Header {
            path: path.to_path_buf(),
            message: format!(
                "sheet {sheet:?} has no row {}: its data is in rows {}–{}",
                header_abs + 1,
                first_row + 1,
                last_row + 1
            ),
        });
    }
    let width = range.width();
    let mut headers: Vec<String> = (0..width)
        .map(|c| {
            range
                .get(((header_abs - first_row) as usize, c))
                .map(|cell| cell_text(cell).unwrap_or_default())
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .collect();
    // Trailing columns with no header carry nothing we can map.
    while headers.last().is_some_and(|h| h.is_empty()) {
        headers.pop();
    }
    if headers.is_empty() {
        return Err(SourceError::Empty {
            path: path.to_path_buf(),
        });
    }

    let width = headers.len();
    Ok(Source {
        path: path.to_path_buf(),
        headers,
        info: SourceInfo::workbook(sheet, u64::from(header_abs) + 1),
        read_bytes: None,
        reopen: super::Reopen::new(options),
        rows: super::Rows::each(ExcelRows {
            range,
            first_row,
            first_col,
            next: header_abs + 1,
            last: last_row,
            width,
        }),
    })
}

fn row_is_blank(range: &Range<Data>, abs_row: u32) -> bool {
    let Some((first_row, _)) = range.start() else {
        return true;
    };
    (0..range.width()).all(|c| {
        range
            .get(((abs_row - first_row) as usize, c))
            .is_none_or(|cell| match cell {
                Data::Empty => true,
                Data::String(s) => s.trim().is_empty(),
                _ => false,
            })
    })
}

struct ExcelRows {
    range: Range<Data>,
    first_row: u32,
    first_col: u32,
    next: u32,
    last: u32,
    width: usize,
}

impl Iterator for ExcelRows {
    type Item = RowResult;

    fn next(&mut self) -> Option<RowResult> {
        while self.next <= self.last {
            let abs = self.next;
            self.next += 1;
            if row_is_blank(&self.range, abs) {
                continue;
            }
            let rel = (abs - self.first_row) as usize;
            let mut cells = Cells::default();
            let mut cell_errors = Vec::new();
            for c in 0..self.width {
                let cell = self.range.get((rel, c)).unwrap_or(&Data::Empty);
                match cell_text(cell) {
                    Ok(text) => cells.push(&text),
                    Err(error) => {
                        let name =
                            format!("{}{}", column_letter(self.first_col as usize + c), abs + 1);
                        cell_errors.push((c, format!("cell {name} holds the error {error}")));
                        cells.push(&error);
                    }
                }
            }
            return Some(Ok(Row {
                number: u64::from(abs) + 1,
                cells,
                cell_errors,
            }));
        }
        None
    }
}
