//! CSV reader: encoding detection, delimiter sniffing, streamed records with line numbers.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::encoding::{self, Transcoder};
use super::{Format, Row, RowError, RowResult, Source, SourceError, SourceInfo, SourceOptions};

const SAMPLE_BYTES: usize = 64 * 1024;
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

pub fn open(path: &Path, options: &SourceOptions) -> Result<Source, SourceError> {
    let io_err = |source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let mut sample = Vec::with_capacity(SAMPLE_BYTES);
    (&mut file)
        .take(SAMPLE_BYTES as u64)
        .read_to_end(&mut sample)
        .map_err(io_err)?;
    let complete = sample.len() < SAMPLE_BYTES;

    let (encoding, bom_len, reason) = match options.encoding {
        Some(forced) => {
            let detected = encoding::detect(&sample, complete);
            let bom_len = if detected.encoding == forced {
                detected.bom_len
            } else {
                0
            };
            (forced, bom_len, "chosen with --encoding".to_string())
        }
        None => {
            let d = encoding::detect(&sample, complete);
            (d.encoding, d.bom_len, d.reason)
        }
    };

    let text_sample = if encoding.is_utf8() {
        String::from_utf8_lossy(&sample[bom_len..]).into_owned()
    } else {
        let mut decoded = String::new();
        // Malformed bytes in the sample show up again, with their offset, when read for real.
        let _ = Transcoder::new(&sample[..], encoding).read_to_string(&mut decoded);
        decoded
    };

    // Excel writes `sep=;` as a first line to name the delimiter.
    let sep_line = excel_sep_line(&text_sample);
    let delimiter = options
        .delimiter
        .or(sep_line)
        .unwrap_or_else(|| sniff_delimiter(&text_sample));

    let read_bytes = super::ReadBytes {
        read: Arc::new(std::sync::atomic::AtomicU64::new(sample.len() as u64)),
        total: file.metadata().map(|m| m.len()).unwrap_or(0),
    };
    let counted = Counted {
        inner: file,
        read: read_bytes.read.clone(),
    };
    let head = Cursor::new(sample).chain(BufReader::with_capacity(256 * 1024, counted));
    let reader: Box<dyn Read + Send> = if encoding.is_utf8() {
        let mut head = head;
        io::copy(&mut (&mut head).take(bom_len as u64), &mut io::sink()).map_err(io_err)?;
        Box::new(head)
    } else {
        Box::new(Transcoder::new(head, encoding))
    };

    // The csv crate's line numbers go wrong after CRLF and blank lines; its byte offsets
    // are right, so lines are counted from the bytes themselves.
    let lines = Arc::new(Mutex::new(LineTracker::default()));
    let reader: Box<dyn Read + Send> = Box::new(Tee {
        inner: reader,
        lines: lines.clone(),
    });
    let mut records = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .buffer_capacity(256 * 1024)
        .from_reader(reader);

    let mut record = ::csv::ByteRecord::new();
    let skip_until = options
        .header_row
        .unwrap_or(if sep_line.is_some() { 2 } else { 1 });
    let (headers, header_line) = loop {
        match records.read_byte_record(&mut record) {
            Ok(false) => {
                return Err(SourceError::Empty {
                    path: path.to_path_buf(),
                });
            }
            Ok(true) => {
                let line = line_of(&lines, &record);
                if line < skip_until || is_blank(&record) {
                    continue;
                }
                let cells = decode_cells(&record, line).map_err(|e| SourceError::Header {
                    path: path.to_path_buf(),
                    message: e.message,
                })?;
                break (
                    cells.into_iter().map(|h| h.trim().to_string()).collect(),
                    line,
                );
            }
            Err(e) => {
                return Err(SourceError::Header {
                    path: path.to_path_buf(),
                    message: format!("cannot read the header row: {e}"),
                });
            }
        }
    };
    let headers: Vec<String> = headers;

    // A title line taken as the header has fewer fields than the rows below it.
    if options.header_row.is_none()
        && !options.no_header
        && let Some(usual) = usual_width(&text_sample, delimiter, complete)
        && headers.len() < usual
    {
        return Err(SourceError::Header {
            path: path.to_path_buf(),
            message: header_mismatch_hint(header_line, headers.len(), usual),
        });
    }
    let rows = CsvRows {
        records,
        record,
        lines,
        width: headers.len(),
        done: false,
    };

    Ok(Source {
        path: path.to_path_buf(),
        headers,
        info: SourceInfo {
            format: Format::Csv,
            encoding: Some(encoding.name().to_string()),
            encoding_reason: Some(reason),
            delimiter: Some(delimiter),
            sheet: None,
            header_row: header_line,
            warnings: Vec::new(),
        },
        rows: Box::new(rows),
        read_bytes: Some(read_bytes),
    })
}

/// Counts the bytes read from the file, for progress by bytes.
struct Counted {
    inner: File,
    read: Arc<std::sync::atomic::AtomicU64>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

fn header_mismatch_hint(header_line: u64, width: usize, usual: usize) -> String {
    format!(
        "line {header_line} was taken as the header but has {width} field(s), while most rows \
         below have {usual}: if there are title lines above the header, pass --header-row N \
         with the header's line number (or --delimiter if the delimiter was guessed wrong)"
    )
}

/// The most common field count of the records after the first one in the sample.
fn usual_width(sample: &str, delimiter: u8, complete: bool) -> Option<usize> {
    let widths = record_widths(sample, delimiter, complete);
    let mut counts = std::collections::BTreeMap::new();
    for w in widths.iter().skip(1) {
        *counts.entry(*w).or_insert(0usize) += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(width, n)| (*n, *width))
        .filter(|(_, n)| *n >= 2)
        .map(|(w, _)| w)
}

/// Counts the lines of everything the CSV parser has read, up to each record's start.
#[derive(Default)]
struct LineTracker {
    pending: VecDeque<u8>,
    base: u64,
    line: u64,
}

impl LineTracker {
    /// The 1-based line of the record whose first byte is at `offset` (or of the blank
    /// lines the parser skipped just before it). A line ends at LF, CRLF, or a lone CR,
    /// as text editors show them.
    fn line_at(&mut self, offset: u64) -> u64 {
        let consume = offset
            .saturating_sub(self.base)
            .min(self.pending.len() as u64) as usize;
        self.take(consume);
        // Skipped blank lines sit between `offset` and the record's first character.
        let blank = self
            .pending
            .iter()
            .take_while(|b| **b == b'\n' || **b == b'\r')
            .count();
        self.take(blank);
        self.line + 1
    }

    fn take(&mut self, n: usize) {
        let n = n.min(self.pending.len());
        let (front, back) = self.pending.as_slices();
        let (front, back) = if n <= front.len() {
            (&front[..n], &back[..0])
        } else {
            (front, &back[..n - front.len()])
        };
        let mut ends = (memchr::memchr_iter(b'\n', front).count()
            + memchr::memchr_iter(b'\n', back).count()) as u64;
        // CRLF counts once (at its LF); a lone CR ends a line of its own. CRs are rare
        // outside CRLF files, so the pairwise look is only made when there are some.
        if memchr::memchr(b'\r', front).is_some() || memchr::memchr(b'\r', back).is_some() {
            let at = |i: usize| {
                if i < front.len() {
                    Some(front[i])
                } else if i < n {
                    back.get(i - front.len()).copied()
                } else {
                    self.pending.get(n).copied()
                }
            };
            ends += (0..n)
                .filter(|&i| at(i) == Some(b'\r') && at(i + 1) != Some(b'\n'))
                .count() as u64;
        }
        self.pending.drain(..n);
        self.base += n as u64;
        self.line += ends;
    }
}

struct Tee {
    inner: Box<dyn Read + Send>,
    lines: Arc<Mutex<LineTracker>>,
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Ok(mut lines) = self.lines.lock() {
            lines.pending.extend(&buf[..n]);
        }
        Ok(n)
    }
}

fn line_of(lines: &Mutex<LineTracker>, record: &::csv::ByteRecord) -> u64 {
    let offset = record.position().map_or(0, |p| p.byte());
    lines.lock().map(|mut l| l.line_at(offset)).unwrap_or(0)
}

struct CsvRows {
    records: ::csv::Reader<Box<dyn Read + Send>>,
    record: ::csv::ByteRecord,
    lines: Arc<Mutex<LineTracker>>,
    width: usize,
    done: bool,
}

impl Iterator for CsvRows {
    type Item = RowResult;

    fn next(&mut self) -> Option<RowResult> {
        while !self.done {
            match self.records.read_byte_record(&mut self.record) {
                Ok(false) => self.done = true,
                Ok(true) => {
                    let line = line_of(&self.lines, &self.record);
                    if is_blank(&self.record) {
                        continue;
                    }
                    return Some(self.shape(line));
                }
                Err(e) => {
                    // The parser cannot go on past an I/O or decoding error: report where it stopped.
                    self.done = true;
                    let offset = e.position().map_or(0, |p| p.byte());
                    let line = self
                        .lines
                        .lock()
                        .map(|mut l| l.line_at(offset))
                        .unwrap_or(0);
                    return Some(Err(RowError {
                        number: line,
                        cells: Vec::new(),
                        message: format!("the file cannot be read from here on: {e}"),
                    }));
                }
            }
        }
        None
    }
}

impl CsvRows {
    fn shape(&self, line: u64) -> RowResult {
        let mut cells = decode_cells(&self.record, line)?;
        if cells.len() > self.width && cells[self.width..].iter().all(|c| c.is_empty()) {
            // Trailing delimiters (`a;b;;;`) are common in Excel exports and carry nothing.
            cells.truncate(self.width);
        }
        if cells.len() != self.width {
            let message = format!(
                "the row has {} fields but the header has {}: check for an unquoted delimiter \
                 or a missing one",
                cells.len(),
                self.width
            );
            return Err(RowError {
                number: line,
                cells,
                message,
            });
        }
        Ok(Row {
            number: line,
            cells,
            cell_errors: Vec::new(),
        })
    }
}

fn is_blank(record: &::csv::ByteRecord) -> bool {
    record
        .iter()
        .all(|f| f.iter().all(|b| b.is_ascii_whitespace()))
}

fn decode_cells(record: &::csv::ByteRecord, line: u64) -> Result<Vec<String>, RowError> {
    let mut cells = Vec::with_capacity(record.len());
    for (index, field) in record.iter().enumerate() {
        match std::str::from_utf8(field) {
            Ok(text) => cells.push(text.to_string()),
            Err(e) => {
                let offset = record.position().map_or(0, |p| p.byte());
                let lossy: Vec<String> = record
                    .iter()
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect();
                return Err(RowError {
                    number: line,
                    cells: lossy,
                    message: format!(
                        "field {} is not valid UTF-8 (byte 0x{:02X}, record starts at byte offset \
                         {offset}): the file mixes encodings; pass --encoding windows-1252 if it \
                         is a Windows export",
                        index + 1,
                        field.get(e.valid_up_to()).copied().unwrap_or(0),
                    ),
                });
            }
        }
    }
    Ok(cells)
}

fn excel_sep_line(text: &str) -> Option<u8> {
    let first = text.lines().next()?.trim();
    let rest = first.strip_prefix("sep=")?;
    match rest.as_bytes() {
        [b] => Some(*b),
        _ => None,
    }
}

/// Field counts of the first records of a sample (the last one dropped if the sample
/// is cut: it may be partial).
fn record_widths(sample: &str, delimiter: u8, complete: bool) -> Vec<usize> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(sample.as_bytes());
    let mut widths: Vec<usize> = reader
        .byte_records()
        .take(30)
        .filter_map(Result::ok)
        .filter(|r| !is_blank(r))
        .map(|r| r.len())
        .collect();
    if !complete && widths.len() > 2 {
        widths.pop();
    }
    widths
}

/// Pick the delimiter that splits the first lines into the most consistent number of fields.
pub fn sniff_delimiter(sample: &str) -> u8 {
    let mut best = (b',', 0usize, 0usize);
    for delimiter in DELIMITERS {
        let widths = record_widths(sample, delimiter, false);
        let Some(&first) = widths.iter().max() else {
            continue;
        };
        if first < 2 {
            continue;
        }
        let consistent = widths.iter().filter(|&&w| w == first).count();
        if (consistent, first) > (best.1, best.2) {
            best = (delimiter, consistent, first);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_semicolons_even_with_commas_in_text() {
        let sample = "Ticket;Asunto;Valor\n1;Hola, mundo;3,5\n2;Otro, más;4,0\n";
        assert_eq!(sniff_delimiter(sample), b';');
    }

    #[test]
    fn sniffs_tabs_and_pipes() {
        assert_eq!(sniff_delimiter("a\tb\tc\n1\t2\t3\n"), b'\t');
        assert_eq!(sniff_delimiter("a|b|c\n1|2|3\n"), b'|');
        assert_eq!(sniff_delimiter("a,b,c\n1,2,3\n"), b',');
    }

    fn read_all(bytes: &[u8]) -> Option<Vec<RowResult>> {
        let dir = tempfile::tempdir().ok()?;
        let path = dir.path().join("t.csv");
        std::fs::write(&path, bytes).ok()?;
        let source = open(&path, &SourceOptions::default()).ok()?;
        Some(source.rows.collect())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// Malformed input never panics; every record is a row or a row error, numbered
        /// in order and within the file's lines.
        #[test]
        fn malformed_csv_never_panics_and_rows_stay_in_order(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::Just(b'"'), proptest::prelude::Just(b','),
                    proptest::prelude::Just(b';'), proptest::prelude::Just(b'\n'),
                    proptest::prelude::Just(b'\r'), proptest::prelude::Just(b'a'),
                    proptest::prelude::Just(0xF1u8), proptest::prelude::Just(0xC3u8),
                    proptest::prelude::Just(b' '),
                ],
                0..400,
            )
        ) {
            let mut file = b"a,b,c\n".to_vec();
            file.extend(&bytes);
            let lone_cr = file.windows(2).filter(|w| w[0] == b'\r' && w[1] != b'\n').count()
                + usize::from(file.last() == Some(&b'\r'));
            let lines = (file.iter().filter(|b| **b == b'\n').count() + lone_cr) as u64 + 1;
            if let Some(rows) = read_all(&file) {
                let mut last = 1;
                for row in rows {
                    let number = match &row { Ok(r) => r.number, Err(e) => e.number };
                    proptest::prop_assert!(number > last || (number == last && row.is_err()));
                    proptest::prop_assert!(number <= lines, "row {number} of {lines} lines");
                    last = number;
                }
            }
        }
    }

    #[test]
    fn line_numbers_survive_crlf_blank_lines_and_quoted_newlines() {
        let rows = read_all(b"a,b\r\n1,2\r\n\r\n\"x\r\ny\",3\r\n4,5\r\n").unwrap();
        let numbers: Vec<u64> = rows.iter().map(|r| r.as_ref().unwrap().number).collect();
        assert_eq!(numbers, [2, 4, 6]);
    }

    #[test]
    fn excel_sep_line_names_the_delimiter() {
        assert_eq!(excel_sep_line("sep=;\na;b\n"), Some(b';'));
        assert_eq!(excel_sep_line("a;b\n"), None);
    }
}
