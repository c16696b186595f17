//! CSV records from bytes: `csv_core` driven directly, every record with the line it
//! starts on (`chunks.rs` cuts the file for several threads to parse).
//!
//! Why not the csv crate's `Reader`: it counts lines wrongly after CRLF and blank lines,
//! it cannot say which input bytes made a record, and it parses on one thread only. Here
//! every byte is seen once: lines are counted from the bytes (LF, CRLF and a lone CR each
//! end a line, as editors show them).

use std::io::{self, Read};

use super::chunks::CHUNK_BYTES;
use super::{Cells, Limits, Row, RowError, RowResult};

/// Line ends seen in the bytes consumed so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineCount {
    ends: u64,
    /// The last byte seen was a CR whose next byte is not known yet (CRLF counts once).
    pending_cr: bool,
}

impl LineCount {
    /// Count the line ends in `bytes` (followed by `next`, if known).
    pub(super) fn advance(&mut self, bytes: &[u8], next: Option<u8>) {
        self.settle_cr(bytes);
        self.count(bytes, next);
    }

    /// `advance`, for bytes before a record's first character: that character is the
    /// first byte that is not a line end. Returns its line and its index in `bytes`.
    fn advance_to_record(&mut self, bytes: &[u8], next: Option<u8>) -> Option<(u64, usize)> {
        self.settle_cr(bytes);
        let Some(i) = bytes.iter().position(|b| *b != b'\n' && *b != b'\r') else {
            self.count(bytes, next);
            return None;
        };
        self.count(&bytes[..i], Some(bytes[i]));
        let start = (self.ends + 1, i);
        self.count(&bytes[i..], next);
        Some(start)
    }

    /// A CR left at the end of the last bytes ends a line unless these begin with an LF.
    fn settle_cr(&mut self, bytes: &[u8]) {
        if let Some(&first) = bytes.first()
            && std::mem::take(&mut self.pending_cr)
            && first != b'\n'
        {
            self.ends += 1;
        }
    }

    pub(super) fn count(&mut self, bytes: &[u8], next: Option<u8>) {
        self.ends += memchr::memchr_iter(b'\n', bytes).count() as u64;
        // A CR ends a line of its own unless an LF follows; CRs are rare outside CRLF
        // files, so this look is only taken when there are some.
        for i in memchr::memchr_iter(b'\r', bytes) {
            match bytes.get(i + 1).copied().or(next) {
                Some(b'\n') => {}
                Some(_) => self.ends += 1,
                None => self.pending_cr = true,
            }
        }
    }

    /// The line a reader has reached, for an error that stops it.
    pub fn line(&self) -> u64 {
        self.ends + 1
    }
}

/// A record the parser completed; its bytes are in the parser's buffers until the next.
pub struct RecordAt {
    /// The 1-based line of its first character (blank lines before it skipped).
    pub line: u64,
    /// Byte offset in the (decoded) input of its first character.
    pub offset: u64,
    len: usize,
    pub(super) fields: usize,
    /// The record outgrew the limits: its text was dropped as it was read.
    over: Option<Over>,
}

/// How a record outgrew the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Over {
    /// The 0-based field whose text passed `Limits::cell_bytes`.
    Cell(usize),
    Row,
    Fields,
}

pub(super) enum Fed {
    Record(RecordAt),
    /// Everything given was consumed without completing a record.
    NeedInput,
    End,
}

/// `csv_core` over bytes given piece by piece. A record that outgrows the limits is read
/// to its end with its text dropped as it comes, so memory stays bounded whatever the
/// file holds, and it becomes a row error.
pub struct Parser {
    core: csv_core::Reader,
    pub(super) delimiter: u8,
    pub(super) limits: Limits,
    out: Vec<u8>,
    ends: Vec<usize>,
    pub(super) lines: LineCount,
    /// Bytes consumed so far, as an offset in the decoded input.
    pub(super) offset: u64,
    /// The record in progress: bytes and fields written, where reading it began, and
    /// (once its first character is seen) its line and that character's offset.
    len: usize,
    fields: usize,
    began: u64,
    pub(super) start: Option<(u64, u64)>,
    /// The record in progress outgrew the limits (its text is being dropped).
    over: Option<Over>,
    /// `csv_core` has read nothing yet. A fresh `csv_core` reader drops a UTF-8 BOM at
    /// the start of its first input, and a parser starts on every chunk: a BOM that
    /// begins a chunk in mid-file would be dropped there and kept by one pass. The
    /// file's own BOM is taken off before parsing (`csv.rs`), so the parser keeps all.
    fresh: bool,
}

impl Parser {
    pub fn new(delimiter: u8, limits: Limits, lines: LineCount, offset: u64) -> Parser {
        Parser {
            core: csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
            delimiter,
            limits,
            out: vec![0; 4096],
            ends: vec![0; 64],
            lines,
            offset,
            len: 0,
            fields: 0,
            began: offset,
            start: None,
            over: None,
            fresh: true,
        }
    }

    /// Room for more text of the record in progress, up to the limits: past them the
    /// record is marked and its text from here on overwrites itself.
    fn make_room(&mut self) {
        if self.over.is_some() {
            self.len = 0;
            return;
        }
        let field_start = self.fields.checked_sub(1).map_or(0, |i| self.ends[i]);
        let cell_end = field_start.saturating_add(self.limits.cell_bytes);
        let row_end = self.limits.row_bytes();
        if self.len > cell_end {
            self.over = Some(Over::Cell(self.fields));
            self.len = 0;
        } else if self.len > row_end {
            self.over = Some(Over::Row);
            self.len = 0;
        } else {
            // Grow to one byte past the nearer limit at most, so passing it is seen.
            let grown = (self.out.len() * 2).min(cell_end.min(row_end) + 1);
            self.out.resize(grown.max(self.out.len() + 1), 0);
        }
    }

    /// Room for more field ends, up to `Limits::FIELDS`.
    fn make_room_for_ends(&mut self) {
        if self.over.is_none() && self.ends.len() < Limits::FIELDS {
            let grown = (self.ends.len() * 2).min(Limits::FIELDS);
            self.ends.resize(grown, 0);
            return;
        }
        self.over.get_or_insert(Over::Fields);
        self.fields = 0;
    }

    /// Parse from `input`; an empty `input` means the input has ended. Returns what
    /// happened and how many bytes were consumed.
    pub(super) fn feed(&mut self, input: &[u8]) -> (Fed, usize) {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            // One byte first, too few for `csv_core` to take as a BOM (see `fresh`).
            let given = match self.fresh && !rest.is_empty() {
                true => &rest[..1],
                false => rest,
            };
            self.fresh &= rest.is_empty();
            let (result, nin, nout, nend) = self.core.read_record(
                given,
                &mut self.out[self.len..],
                &mut self.ends[self.fields..],
            );
            let (consumed, next) = (&rest[..nin], rest.get(nin).copied());
            if self.start.is_some() {
                self.lines.advance(consumed, next);
            } else if let Some((line, index)) = self.lines.advance_to_record(consumed, next) {
                self.start = Some((line, self.offset + index as u64));
            }
            used += nin;
            self.offset += nin as u64;
            self.len += nout;
            self.fields += nend;
            match result {
                csv_core::ReadRecordResult::InputEmpty if used < input.len() => {}
                csv_core::ReadRecordResult::InputEmpty => return (Fed::NeedInput, used),
                csv_core::ReadRecordResult::OutputFull => self.make_room(),
                csv_core::ReadRecordResult::OutputEndsFull => self.make_room_for_ends(),
                csv_core::ReadRecordResult::Record => {
                    let record = RecordAt {
                        line: self.start.map_or(self.lines.line(), |(line, _)| line),
                        offset: self.start.map_or(self.began, |(_, first)| first),
                        len: std::mem::take(&mut self.len),
                        fields: std::mem::take(&mut self.fields),
                        over: self.over.take(),
                    };
                    self.start = None;
                    self.began = self.offset;
                    return (Fed::Record(record), used);
                }
                csv_core::ReadRecordResult::End => return (Fed::End, used),
            }
        }
    }

    pub fn is_blank(&self, record: &RecordAt) -> bool {
        record.over.is_none() && self.out[..record.len].iter().all(u8::is_ascii_whitespace)
    }

    /// The record's cells, checked to be UTF-8 all at once (per-field checks cost more
    /// than the parse).
    pub fn cells(&self, record: &RecordAt) -> Result<Cells, RowError> {
        if let Some(over) = record.over {
            return Err(RowError {
                number: record.line,
                cells: Cells::default(),
                message: over_message(self.limits, over),
            });
        }
        let bytes = &self.out[..record.len];
        let ends = &self.ends[..record.fields];
        match simdutf8::basic::from_utf8(bytes) {
            Ok(text) => Ok(Cells::from_parts(text.to_owned(), ends.to_vec())),
            Err(_) => Err(self.not_utf8(record)),
        }
    }

    fn not_utf8(&self, record: &RecordAt) -> RowError {
        let bytes = &self.out[..record.len];
        let ends = &self.ends[..record.fields];
        let at = std::str::from_utf8(bytes)
            .err()
            .map_or(0, |e| e.valid_up_to());
        let field = ends.iter().position(|&end| end > at).unwrap_or(0);
        let mut start = 0;
        let mut lossy = Cells::default();
        for &end in ends {
            lossy.push(&String::from_utf8_lossy(
                bytes.get(start..end).unwrap_or(&[]),
            ));
            start = end;
        }
        RowError {
            number: record.line,
            cells: lossy,
            message: format!(
                "field {} is not valid UTF-8 (byte 0x{:02X}, record starts at byte offset \
                 {}): the file mixes encodings; pass --encoding windows-1252 if it is a \
                 Windows export",
                field + 1,
                bytes.get(at).copied().unwrap_or(0),
                record.offset,
            ),
        }
    }

    /// A data row from a record: cells checked against the header's width.
    pub(super) fn row(&self, record: &RecordAt, width: usize) -> RowResult {
        let mut cells = self.cells(record)?;
        if cells.len() > width && (width..cells.len()).all(|i| cells.get(i) == Some("")) {
            // Trailing delimiters (`a;b;;;`) are common in Excel exports and carry nothing.
            cells.truncate(width);
        }
        if cells.len() != width {
            let message = format!(
                "the row has {} fields but the header has {width}: check for an unquoted \
                 delimiter or a missing one, or a quote that never closes (it joins the \
                 lines after it, and the rows on them, into one cell)",
                cells.len(),
            );
            return Err(RowError {
                number: record.line,
                cells,
                message,
            });
        }
        Ok(Row {
            number: record.line,
            cells,
            cell_errors: Vec::new(),
        })
    }
}

/// Why a record that outgrew the limits is not read.
fn over_message(limits: Limits, over: Over) -> String {
    let mib = |bytes: usize| bytes / (1024 * 1024);
    match over {
        Over::Cell(field) => format!(
            "field {} holds more than {} MiB of text (--max-cell-bytes), so the row is not \
             read; a quote that opens a field and never closes makes everything after it \
             one cell: check the quotes from this line on",
            field + 1,
            mib(limits.cell_bytes),
        ),
        Over::Row => format!(
            "the row holds more than {} MiB of text (four times --max-cell-bytes), so it \
             is not read; check for a quote that never closes",
            mib(limits.row_bytes()),
        ),
        Over::Fields => format!(
            "the row has more than {} fields, so it is not read (no spreadsheet has that \
             many columns): check the delimiter",
            Limits::FIELDS,
        ),
    }
}

/// Records read from a stream, one at a time (the header, then the chunks take over).
pub struct Records {
    pub(super) input: Box<dyn Read + Send>,
    pub(super) parser: Parser,
    pub(super) buf: Vec<u8>,
    pub(super) pos: usize,
    pub(super) filled: usize,
    pub(super) eof: bool,
}

impl Records {
    pub fn new(input: Box<dyn Read + Send>, delimiter: u8, limits: Limits) -> Records {
        Records {
            input,
            parser: Parser::new(delimiter, limits, LineCount::default(), 0),
            buf: vec![0; CHUNK_BYTES],
            pos: 0,
            filled: 0,
            eof: false,
        }
    }

    /// The next record (its bytes are in `parser()` until the next call).
    pub fn next(&mut self) -> io::Result<Option<RecordAt>> {
        loop {
            if self.pos == self.filled && !self.eof {
                self.pos = 0;
                self.filled = 0;
                self.filled = read_some(&mut self.input, &mut self.buf)?;
                self.eof = self.filled == 0;
            }
            let (fed, used) = self.parser.feed(&self.buf[self.pos..self.filled]);
            self.pos += used;
            match fed {
                Fed::Record(record) => return Ok(Some(record)),
                Fed::End => return Ok(None),
                Fed::NeedInput => {}
            }
        }
    }

    pub fn parser(&self) -> &Parser {
        &self.parser
    }
}

pub(super) fn read_some(input: &mut Box<dyn Read + Send>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match input.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The row error for input that cannot be read on.
pub fn read_error(e: &io::Error, line: u64) -> RowError {
    RowError {
        number: line,
        cells: Cells::default(),
        message: format!("the file cannot be read from here on: {e}"),
    }
}
