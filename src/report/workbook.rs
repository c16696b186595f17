//! `--report results.xlsx`: the results as an Excel workbook, for people who live in Excel.
//!
//! Built at the end of the run from the results CSV, which stays the crash-safe record:
//! a Summary sheet, then a Results sheet with a frozen header, an autofilter, and the rows
//! that need attention highlighted.

use std::path::Path;

use rust_xlsxwriter::{Color, Format, Workbook, XlsxError};

use super::ReportError;

pub fn write(
    path: &Path,
    results_csv: &Path,
    summary: &[(String, String)],
) -> Result<(), ReportError> {
    build(path, results_csv, summary).map_err(|e| ReportError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

#[derive(Debug, thiserror::Error)]
enum BuildError {
    #[error(transparent)]
    Xlsx(#[from] XlsxError),
    #[error("reading the results file: {0}")]
    Csv(#[from] csv::Error),
}

fn build(path: &Path, results_csv: &Path, summary: &[(String, String)]) -> Result<(), BuildError> {
    let mut workbook = Workbook::new();
    let bold = Format::new().set_bold();
    let attention = Format::new().set_background_color(Color::RGB(0xFFE0E0));

    let sheet = workbook.add_worksheet().set_name("Summary")?;
    sheet.set_column_width(0, 22)?;
    sheet.set_column_width(1, 80)?;
    for (row, (name, value)) in summary.iter().enumerate() {
        sheet.write_string_with_format(row as u32, 0, name, &bold)?;
        // Counts are numbers, so Excel can add them up.
        match value.parse::<u64>() {
            Ok(n) => sheet.write_number(row as u32, 1, n as f64)?,
            Err(_) => sheet.write_string(row as u32, 1, value)?,
        };
    }

    // Constant memory: rows go to a temporary file, so a million rows stay small.
    let sheet = workbook
        .add_worksheet_with_constant_memory()?
        .set_name("Results")?;
    let mut reader = csv::Reader::from_path(results_csv)?;
    let headers = reader.headers()?.clone();
    for (c, h) in headers.iter().enumerate() {
        sheet.write_string_with_format(0, c as u16, h, &bold)?;
    }
    let widths = [8.0, 20.0, 11.0, 26.0, 11.0, 9.0, 90.0];
    for (c, w) in widths.iter().enumerate() {
        sheet.set_column_width(c as u16, *w)?;
    }
    let mut last = 0u32;
    for (i, record) in reader.records().enumerate() {
        let record = record?;
        let row = i as u32 + 1;
        last = row;
        let flagged = matches!(
            record.get(2),
            Some("invalid" | "rejected" | "failed" | "uncertain")
        );
        for (c, value) in record.iter().enumerate() {
            let c = c as u16;
            // Row numbers, HTTP statuses and attempts are numbers; all else stays text.
            let number = matches!(c, 0 | 4 | 5)
                .then(|| value.parse::<f64>().ok())
                .flatten();
            match (number, flagged) {
                (Some(n), true) => sheet.write_number_with_format(row, c, n, &attention)?,
                (Some(n), false) => sheet.write_number(row, c, n)?,
                (None, true) => sheet.write_string_with_format(row, c, value, &attention)?,
                (None, false) => sheet.write_string(row, c, value)?,
            };
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    sheet.autofilter(0, 0, last.max(1), headers.len().saturating_sub(1) as u16)?;
    workbook.save(path)?;
    Ok(())
}
