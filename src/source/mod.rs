//! The source stage: turns a spreadsheet into a stream of `Row { number, cells }`.
//!
//! Row numbers are the ones the user sees: the Excel row number, or for CSV the
//! physical line where the record starts (header = line 1 unless `--header-row`).
//! A row that cannot be read is a `RowError` carrying its number: never a panic,
//! never a silent skip.
//!
//! The rows come one by one (`Rows` is an iterator), or put through a function on several
//! threads and handed out in file order (`Rows::map_parallel`, parallel.rs): a CSV file is
//! then cut into chunks of whole lines (chunks.rs) that the threads parse. How a CSV
//! chunk is cut and parsed, and how a workbook is read, stay inside this module.

mod archive;
mod cell;
mod cells;
mod chunks;
mod csv;
mod encoding;
mod excel;
mod parallel;
mod records;
mod sheet;
mod xlsx_stream;

use std::fmt;
use std::path::{Path, PathBuf};

pub use cell::cell_text;
pub use cells::Cells;
pub use chunks::{Cuts, read_rows};
pub use encoding::Encoding;
pub use parallel::{Ordered, ReaderPanicked};

/// One data row of the source, cells in header order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub number: u64,
    pub cells: Cells,
    /// Cells that hold a spreadsheet error (`#N/A`, `#REF!`): (column index, message).
    /// They fail the row only if the mapping uses that column.
    pub cell_errors: Vec<(usize, String)>,
}

/// A row that could not be read. Its cells, as far as they were read, go to the
/// errors file so nothing the user wrote is lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub number: u64,
    pub cells: Cells,
    pub message: String,
}

pub type RowResult = Result<Row, RowError>;

/// How much text one row may hold. A cell past it (a CSV field whose quote never closes
/// swallows the rest of the file; a crafted file holds one of gigabytes) makes its row an
/// error, read past without being kept, so memory stays bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of text in one cell (`--max-cell-bytes`).
    pub cell_bytes: usize,
}

impl Limits {
    /// The default cap on a cell: far above any real export (a spreadsheet cell holds
    /// 32,767 characters), far below what would exhaust memory.
    pub const CELL_BYTES: usize = 16 * 1024 * 1024;
    /// Fields in one row: four times Excel's 16,384 columns.
    pub const FIELDS: usize = 65_536;

    /// Bytes of text in one row: four full cells.
    pub fn row_bytes(&self) -> usize {
        self.cell_bytes.saturating_mul(4)
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            cell_bytes: Limits::CELL_BYTES,
        }
    }
}

/// How to read the input, from the command line.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    /// Sheet name, or 1-based index, for workbooks.
    pub sheet: Option<String>,
    /// 1-based row (line, for CSV) holding the headers; default: the first non-empty one.
    pub header_row: Option<u64>,
    /// CSV delimiter; default: sniffed.
    pub delimiter: Option<u8>,
    /// CSV encoding; default: detected.
    pub encoding: Option<Encoding>,
    /// The file has no header row: columns are named A, B, C… and the first row is data.
    pub no_header: bool,
    pub limits: Limits,
}

/// What the reader decided about the file, for the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    pub format: Format,
    pub encoding: Option<String>,
    pub encoding_reason: Option<String>,
    pub delimiter: Option<u8>,
    pub sheet: Option<String>,
    pub header_row: u64,
    pub warnings: Vec<String>,
}

impl SourceInfo {
    /// What is known of a workbook source: its sheet and header row.
    pub fn workbook(sheet: String, header_row: u64) -> SourceInfo {
        SourceInfo {
            format: Format::Workbook,
            encoding: None,
            encoding_reason: None,
            delimiter: None,
            sheet: Some(sheet),
            header_row,
            warnings: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Workbook,
}

/// An opened source: its headers, what was detected, and the rows still to read.
pub struct Source {
    pub path: PathBuf,
    pub headers: Vec<String>,
    pub info: SourceInfo,
    pub rows: Rows,
    /// How far the reader is through the file, for progress: bytes read so far (updated
    /// as the rows are read) and the file's size. CSV only.
    pub read_bytes: Option<ReadBytes>,
    /// How it was opened, to read its rows again (`reread`).
    reopen: Reopen,
}

/// What reading a source's rows again needs: the options it was opened with, and the
/// file's size and modification time when it was, which say whether a workbook's archive
/// (checked then) needs checking again.
#[derive(Debug, Clone)]
struct Reopen {
    options: SourceOptions,
    stamp: Option<Stamp>,
}

impl Reopen {
    fn new(options: &SourceOptions) -> Reopen {
        Reopen {
            options: options.clone(),
            stamp: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: std::time::SystemTime,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let metadata = std::fs::metadata(path).ok()?;
        Some(Stamp {
            len: metadata.len(),
            modified: metadata.modified().ok()?,
        })
    }
}

impl Source {
    /// The data rows again from the top, for a pass that reads ahead (the date scan, the
    /// quota plan, an earlier key's check) while these rows wait for the real one. The
    /// file is read with the options it was opened with, so it decides its encoding,
    /// delimiter, header row and sheet as it did; a workbook's archive, checked when it
    /// was opened, is checked again only if the file changed since. A header that is not
    /// the one first read (the file was rewritten in between) is an error: the mapping
    /// was compiled against the first.
    pub fn reread(&self) -> Result<Rows, SourceError> {
        let unchanged = self.reopen.stamp.is_some() && Stamp::of(&self.path) == self.reopen.stamp;
        let archive = if unchanged {
            Archive::Checked
        } else {
            Archive::Check
        };
        let again = open_as(&self.path, &self.reopen.options, archive)?;
        if again.headers != self.headers {
            return Err(SourceError::Header {
                path: self.path.clone(),
                message: "the file changed while it was being read: its header row is not \
                          the one first read; run again once the file is written"
                    .into(),
            });
        }
        Ok(again.rows)
    }
}

/// Whether opening a workbook checks its zip archive (`archive.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Archive {
    Check,
    /// Checked when this source was first opened, and the file has not changed since.
    Checked,
}

/// The data rows still to read: one by one as an iterator, or put through a function on
/// several threads and handed out in order (`map_parallel`, in parallel.rs).
pub struct Rows {
    /// A row to give before the rest (the first data row of a file without a header).
    first: Option<RowResult>,
    rest: RowSource,
}

enum RowSource {
    Each(Box<dyn Iterator<Item = RowResult> + Send>),
    Chunked(Box<chunks::Sequential>),
}

impl Rows {
    pub fn each(rows: impl Iterator<Item = RowResult> + Send + 'static) -> Rows {
        Rows {
            first: None,
            rest: RowSource::Each(Box::new(rows)),
        }
    }

    fn chunked(chunks: chunks::Chunks) -> Rows {
        Rows {
            first: None,
            rest: RowSource::Chunked(Box::new(chunks::Sequential::new(chunks))),
        }
    }

    /// For a CSV file not read yet: the row to give first, and the chunks. Other
    /// sources come back as they are.
    fn into_chunks(self) -> Result<(Option<RowResult>, chunks::Chunks), Rows> {
        match self.rest {
            RowSource::Chunked(rows) if rows.untouched() => Ok((self.first, rows.into_chunks())),
            rest => Err(Rows {
                first: self.first,
                rest,
            }),
        }
    }
}

impl Iterator for Rows {
    type Item = RowResult;

    fn next(&mut self) -> Option<RowResult> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        match &mut self.rest {
            RowSource::Each(rows) => rows.next(),
            RowSource::Chunked(rows) => rows.next(),
        }
    }
}

/// Bytes of the file read so far, shared with whoever shows progress.
#[derive(Debug, Clone)]
pub struct ReadBytes {
    pub read: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub total: u64,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("path", &self.path)
            .field("headers", &self.headers)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Errors that stop the run before any row is read (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is empty: there is no header row", path.display())]
    Empty { path: PathBuf },
    #[error("{}: {problem}", path.display())]
    Misnamed { path: PathBuf, problem: String },
    #[error("{}: {message}", path.display())]
    Header { path: PathBuf, message: String },
    #[error("cannot open the workbook {}: {message}", path.display())]
    Workbook { path: PathBuf, message: String },
    #[error("{}: no sheet {wanted:?}; the sheets are: {}", path.display(), available.join(", "))]
    NoSuchSheet {
        path: PathBuf,
        wanted: String,
        available: Vec<String>,
    },
    #[error(
        "{}: unknown file type {ext:?}; use .csv (or .txt/.tsv), .xlsx, .xlsm, .xls, .xlsb or .ods",
        path.display()
    )]
    UnknownType { path: PathBuf, ext: String },
}

/// Open a source by its file extension.
pub fn open(path: &Path, options: &SourceOptions) -> Result<Source, SourceError> {
    open_as(path, options, Archive::Check)
}

fn open_as(path: &Path, options: &SourceOptions, archive: Archive) -> Result<Source, SourceError> {
    // Taken before anything is read: a change from here on shows in `reread`.
    let stamp = Stamp::of(path);
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if let Some(problem) = misnamed(path, &ext) {
        return Err(SourceError::Misnamed {
            path: path.to_path_buf(),
            problem,
        });
    }
    let mut source = match ext.as_str() {
        "csv" | "txt" | "tsv" | "" => csv::open(path, options),
        "xlsx" | "xlsm" | "xls" | "xlsb" | "ods" | "xla" | "xlam" => {
            excel::open(path, options, archive)
        }
        _ => Err(SourceError::UnknownType {
            path: path.to_path_buf(),
            ext,
        }),
    }?;
    if options.no_header {
        // What was read as the header is the first data row; columns go by letter.
        let first = Row {
            number: source.info.header_row,
            cells: std::mem::take(&mut source.headers).into_iter().collect(),
            cell_errors: Vec::new(),
        };
        source.headers = (0..first.cells.len()).map(column_letter).collect();
        source.rows.first = Some(Ok(first));
    }
    source.reopen.stamp = stamp;
    Ok(source)
}

/// What a file's first bytes say it is, when its name says otherwise: a PDF, an archive
/// or a program named `.csv`, a CSV named `.xlsx`. `None` when they agree (or the file
/// cannot be read: opening it says why).
fn misnamed(path: &Path, ext: &str) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 8];
    let mut file = std::fs::File::open(path).ok()?;
    let n = file.read(&mut head).ok()?;
    let head = &head[..n];
    let zip = head.starts_with(b"PK\x03\x04");
    let ole = head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]);
    let kind = if zip {
        "a ZIP archive (an .xlsx or .ods workbook is one)"
    } else if ole {
        "an old-style Office file (an .xls workbook is one)"
    } else if head.starts_with(b"%PDF") {
        "a PDF file"
    } else if head.starts_with(b"\x7fELF") {
        "a program (ELF)"
    } else if head.starts_with(&[0x1F, 0x8B]) {
        "a gzip archive"
    } else {
        "text"
    };
    match ext {
        "csv" | "txt" | "tsv" | "" if kind != "text" => Some(format!(
            "this looks like {kind}, not CSV text{}",
            if zip || ole {
                ": if it is a workbook, give it its real extension (.xlsx, .ods, .xls)"
            } else {
                ""
            }
        )),
        "xlsx" | "xlsm" | "xlsb" | "ods" | "xla" | "xlam" if !zip && n > 0 => Some(format!(
            "this looks like {kind}, not an .{ext} workbook (which is a ZIP archive){}",
            if kind == "text" {
                ": if it is CSV, name it .csv"
            } else {
                ""
            }
        )),
        "xls" if !ole && !zip && n > 0 => Some(format!(
            "this looks like {kind}, not an .xls workbook{}",
            if kind == "text" {
                ": if it is CSV, name it .csv"
            } else {
                ""
            }
        )),
        _ => None,
    }
}

/// Excel-style column letters for a 0-based index: 0 → A, 26 → AA.
pub fn column_letter(mut index: usize) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'A' + (index % 26) as u8);
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    letters.reverse();
    String::from_utf8_lossy(&letters).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_read_again_gives_the_same_rows_unless_its_header_changed() {
        let dir = std::env::temp_dir().join(format!("wolkvox-reread-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.csv");
        // A title line, then semicolons: what the first open decided is decided again.
        std::fs::write(&path, "Reporte\nid;nota\n1;uno\n2;\"dos\nlíneas\"\n").unwrap();
        let options = SourceOptions {
            header_row: Some(2),
            ..SourceOptions::default()
        };
        let source = open(&path, &options).unwrap();
        let again: Vec<RowResult> = source.reread().unwrap().collect();
        assert_eq!(again.len(), 2);
        assert_eq!(again[1].as_ref().unwrap().cells.get(1), Some("dos\nlíneas"));
        let first: Vec<RowResult> = open(&path, &options).unwrap().rows.collect();
        assert_eq!(again, first);

        std::fs::write(&path, "Reporte\nid;texto\n1;uno\n").unwrap();
        let error = source.reread().err().unwrap().to_string();
        assert!(
            error.contains("t.csv") && error.contains("changed"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn column_letters_follow_excel() {
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(25), "Z");
        assert_eq!(column_letter(26), "AA");
        assert_eq!(column_letter(701), "ZZ");
        assert_eq!(column_letter(702), "AAA");
    }
}
