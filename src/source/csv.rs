//! CSV reader: encoding detection, delimiter sniffing, streamed records with line numbers.

use std::fs::File;
use std::io::{self, BufReader, Cursor, Read};
use std::path::Path;
use std::sync::Arc;

use super::encoding::{self, Transcoder};
use super::records::Records;
use super::{Format, Source, SourceError, SourceInfo, SourceOptions};

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

    let mut records = Records::new(reader, delimiter, options.limits);
    let skip_until = options
        .header_row
        .unwrap_or(if sep_line.is_some() { 2 } else { 1 });
    let (headers, header_line) = loop {
        match records.next() {
            Ok(None) => {
                return Err(SourceError::Empty {
                    path: path.to_path_buf(),
                });
            }
            Ok(Some(record)) => {
                if record.line < skip_until || records.parser().is_blank(&record) {
                    continue;
                }
                let cells = records
                    .parser()
                    .cells(&record)
                    .map_err(|e| SourceError::Header {
                        path: path.to_path_buf(),
                        message: e.message,
                    })?;
                break (
                    cells.iter().map(|h| h.trim().to_string()).collect(),
                    record.line,
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
    let rows = super::Rows::chunked(records.into_chunks(headers.len(), read_bytes.total));

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
        rows,
        read_bytes: Some(read_bytes),
        reopen: super::Reopen::new(options),
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

fn is_blank(record: &::csv::ByteRecord) -> bool {
    record
        .iter()
        .all(|f| f.iter().all(|b| b.is_ascii_whitespace()))
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

    fn read_all(bytes: &[u8]) -> Option<Vec<crate::source::RowResult>> {
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
