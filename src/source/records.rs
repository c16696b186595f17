//! CSV records from bytes: `csv_core` driven directly, every record with the line it
//! starts on, and the file cut into chunks of whole lines that several threads can parse
//! at once.
//!
//! Why not the csv crate's `Reader`: it counts lines wrongly after CRLF and blank lines,
//! it cannot say which input bytes made a record, and it parses on one thread only. Here
//! every byte is seen once: lines are counted from the bytes (LF, CRLF and a lone CR each
//! end a line, as editors show them).
//!
//! Parallel parsing: the reader cuts the file after a line end where the quotes seen since
//! the chunk began are balanced (so, almost always, between two records), and each chunk
//! is parsed as if it began a record. A chunk whose parse ends inside a record (a quoted
//! field with a line break, cut by a stray quote) hands that unfinished record to the next
//! chunk, which is then parsed again from it (`Reassembler`): the rows are always the ones
//! a single sequential parse gives.

use std::collections::VecDeque;
use std::io::{self, Read};

use super::{Cells, Limits, Row, RowError, RowResult};

/// Bytes a chunk holds before it is cut at the next line end.
pub const CHUNK_BYTES: usize = 128 * 1024;

/// Bytes past which a chunk is cut even where the quotes do not balance (a stray quote,
/// or one huge quoted cell), and even in the middle of a line: the reassembly below
/// makes any cut safe, and so no chunk, however the file is made, holds much more.
const FORCED_CUT_BYTES: usize = 8 * CHUNK_BYTES;

/// Line ends seen in the bytes consumed so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineCount {
    ends: u64,
    /// The last byte seen was a CR whose next byte is not known yet (CRLF counts once).
    pending_cr: bool,
}

impl LineCount {
    /// Count the line ends in `bytes` (followed by `next`, if known).
    fn advance(&mut self, bytes: &[u8], next: Option<u8>) {
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

    fn count(&mut self, bytes: &[u8], next: Option<u8>) {
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
    fields: usize,
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

enum Fed {
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
    delimiter: u8,
    limits: Limits,
    out: Vec<u8>,
    ends: Vec<usize>,
    lines: LineCount,
    /// Bytes consumed so far, as an offset in the decoded input.
    offset: u64,
    /// The record in progress: bytes and fields written, where reading it began, and
    /// (once its first character is seen) its line and that character's offset.
    len: usize,
    fields: usize,
    began: u64,
    start: Option<(u64, u64)>,
    /// The record in progress outgrew the limits (its text is being dropped).
    over: Option<Over>,
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
    fn feed(&mut self, input: &[u8]) -> (Fed, usize) {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            let (result, nin, nout, nend) = self.core.read_record(
                rest,
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
    fn row(&self, record: &RecordAt, width: usize) -> RowResult {
        let mut cells = self.cells(record)?;
        if cells.len() > width && (width..cells.len()).all(|i| cells.get(i) == Some("")) {
            // Trailing delimiters (`a;b;;;`) are common in Excel exports and carry nothing.
            cells.truncate(width);
        }
        if cells.len() != width {
            let message = format!(
                "the row has {} fields but the header has {width}: check for an unquoted \
                 delimiter or a missing one",
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
    input: Box<dyn Read + Send>,
    parser: Parser,
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
    eof: bool,
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

    /// The rest of the file, as chunks for `width`-field rows; `size`: the file's size.
    pub fn into_chunks(self, width: usize, size: u64) -> Chunks {
        let (delimiter, limits) = (self.parser.delimiter, self.parser.limits);
        Chunks {
            input: self.input,
            carry: self.buf[self.pos..self.filled].to_vec(),
            lines: self.parser.lines,
            offset: self.parser.offset,
            eof: self.eof,
            done: false,
            emitted: 0,
            chunk_bytes: CHUNK_BYTES,
            forced_cut_bytes: FORCED_CUT_BYTES,
            size,
            shape: Shape {
                delimiter,
                width,
                limits,
            },
        }
    }
}

fn read_some(input: &mut Box<dyn Read + Send>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match input.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// How the rows of a file are cut into cells.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub delimiter: u8,
    /// The header's field count.
    pub width: usize,
    pub limits: Limits,
}

/// Whole lines of the file, to be parsed as if they begin a record.
#[derive(Debug)]
pub struct Chunk {
    pub bytes: Vec<u8>,
    /// The line count where the chunk begins, and its offset in the decoded input.
    lines: LineCount,
    offset: u64,
    /// The end of the file: a last record without a line end is complete.
    last: bool,
    shape: Shape,
}

/// A record the chunk ended inside: the parser, stopped in it, goes on with the next
/// chunk (so a record is never parsed twice, however many chunks it spans, and one that
/// outgrows the limits is dropped as it is read instead of being kept to parse again).
pub struct OpenTail(Box<Parser>);

impl std::fmt::Debug for OpenTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenTail")
            .field("line", &self.0.start.map(|(line, _)| line))
            .finish()
    }
}

/// The rows of one chunk, parsed as if it began a record.
#[derive(Debug)]
pub struct ParsedChunk {
    pub rows: Vec<RowResult>,
    pub open: Option<OpenTail>,
}

impl Shape {
    /// Parse `bytes` on with `parser`; `last`: they end the file.
    fn parse_with(&self, mut parser: Parser, bytes: &[u8], last: bool) -> ParsedChunk {
        let mut rows = Vec::with_capacity(bytes.len() / 256 + 1);
        let mut used = 0;
        loop {
            let (fed, n) = parser.feed(&bytes[used..]);
            used += n;
            match fed {
                Fed::Record(record) => {
                    if !parser.is_blank(&record) {
                        rows.push(parser.row(&record, self.width));
                    }
                }
                Fed::End => break,
                // The end of the file: one more (empty) feed finishes the last record.
                Fed::NeedInput if last => {}
                Fed::NeedInput => {
                    let open = parser.start.is_some().then(|| OpenTail(Box::new(parser)));
                    return ParsedChunk { rows, open };
                }
            }
        }
        ParsedChunk { rows, open: None }
    }
}

impl Chunk {
    /// Its rows, parsed as if it begins a record.
    pub fn parse(&self) -> ParsedChunk {
        let parser = Parser::new(
            self.shape.delimiter,
            self.shape.limits,
            self.lines,
            self.offset,
        );
        self.shape.parse_with(parser, &self.bytes, self.last)
    }
}

/// The file after the header, cut into chunks of whole lines.
pub struct Chunks {
    input: Box<dyn Read + Send>,
    /// Bytes read past the last cut.
    carry: Vec<u8>,
    lines: LineCount,
    offset: u64,
    eof: bool,
    done: bool,
    /// Chunks given out so far.
    emitted: u64,
    /// How many bytes make a chunk (before the cut at the next line end).
    chunk_bytes: usize,
    /// How many bytes make a chunk cut anywhere (`FORCED_CUT_BYTES`).
    forced_cut_bytes: usize,
    /// The file's size in bytes, to foresee the number of rows.
    pub size: u64,
    pub shape: Shape,
}

impl Chunks {
    /// The next chunk; an error stops the reading (its line is where it stopped).
    pub fn next_chunk(&mut self) -> Option<Result<Chunk, (io::Error, u64)>> {
        if self.done {
            return None;
        }
        let mut bytes = std::mem::take(&mut self.carry);
        let mut searched = 0;
        loop {
            if bytes.len() >= self.chunk_bytes
                && let Some(cut) = cut_point(&bytes, searched)
                    .or_else(|| (bytes.len() >= self.forced_cut_bytes).then_some(bytes.len()))
            {
                self.carry = bytes[cut..].to_vec();
                bytes.truncate(cut);
                return Some(Ok(self.emit(bytes, false)));
            }
            if self.eof {
                // Even empty, the last chunk settles a record the one before left open.
                self.done = true;
                return Some(Ok(self.emit(bytes, true)));
            }
            searched = bytes.len();
            let want = bytes.len().max(self.chunk_bytes).clamp(64, 4 << 20);
            let start = bytes.len();
            bytes.resize(start + want, 0);
            match read_some(&mut self.input, &mut bytes[start..]) {
                Ok(n) => {
                    bytes.truncate(start + n);
                    self.eof = n == 0;
                }
                Err(e) => {
                    self.done = true;
                    bytes.truncate(start);
                    let mut lines = self.lines;
                    lines.count(&bytes, None);
                    return Some(Err((e, lines.line())));
                }
            }
            // A cut needs a line end: look again from just before the new bytes.
            searched = searched.saturating_sub(1);
        }
    }

    fn untouched(&self) -> bool {
        self.emitted == 0
    }

    fn emit(&mut self, bytes: Vec<u8>, last: bool) -> Chunk {
        self.emitted += 1;
        let chunk = Chunk {
            lines: self.lines,
            offset: self.offset,
            last,
            shape: self.shape,
            bytes,
        };
        // The cut is after an LF or after a CR whose next byte is not an LF.
        self.lines
            .advance(&chunk.bytes, self.carry.first().copied());
        self.offset += chunk.bytes.len() as u64;
        chunk
    }
}

/// Where to cut `bytes` (after a line end), so that the quotes before the cut balance;
/// `None` if there is no such place after `from`. The last such place is taken.
fn cut_point(bytes: &[u8], from: usize) -> Option<usize> {
    let total_quotes = memchr::memchr_iter(b'"', bytes).count();
    let mut quotes_after = 0;
    let mut end = bytes.len();
    while let Some(i) = memchr::memrchr2(b'\n', b'\r', &bytes[..end]) {
        if i < from {
            return None;
        }
        quotes_after += memchr::memchr_iter(b'"', &bytes[i + 1..end]).count();
        end = i;
        // A CR cuts only when the byte after it is known and is not an LF.
        let line_end = bytes[i] == b'\n' || bytes.get(i + 1).is_some_and(|b| *b != b'\n');
        if line_end && i + 1 < bytes.len() && (total_quotes - quotes_after).is_multiple_of(2) {
            return Some(i + 1);
        }
    }
    None
}

/// Puts chunk parses back together in file order: a chunk that ended inside a record
/// means the next chunk was parsed from the wrong place, so it is parsed again from
/// that record (rare: a quoted line break cut by a stray quote).
pub struct Reassembler {
    shape: Shape,
    open: Option<OpenTail>,
}

impl Reassembler {
    pub fn new(shape: Shape) -> Reassembler {
        Reassembler { shape, open: None }
    }

    /// Take chunk `chunk` (the next in file order) with where its own parse ended.
    /// `None`: the chunk's own rows stand. `Some(rows)`: they do not; these do.
    pub fn settle(&mut self, chunk: &Chunk, open: Option<OpenTail>) -> Option<Vec<RowResult>> {
        match self.open.take() {
            None => {
                self.open = open;
                None
            }
            Some(OpenTail(parser)) => {
                let parsed = self.shape.parse_with(*parser, &chunk.bytes, chunk.last);
                self.open = parsed.open;
                Some(parsed.rows)
            }
        }
    }

    /// The input stopped early: what was left open is a last record as it stands.
    pub fn finish(&mut self) -> Vec<RowResult> {
        match self.open.take() {
            Some(OpenTail(parser)) => self.shape.parse_with(*parser, &[], true).rows,
            None => Vec::new(),
        }
    }
}

/// The chunks parsed one after another on the calling thread: the rows of a CSV file
/// for whoever reads them one by one.
pub struct Sequential {
    chunks: Chunks,
    reassembler: Reassembler,
    ready: VecDeque<RowResult>,
}

impl Sequential {
    pub fn new(chunks: Chunks) -> Sequential {
        Sequential {
            reassembler: Reassembler::new(chunks.shape),
            chunks,
            ready: VecDeque::new(),
        }
    }

    pub fn into_chunks(self) -> Chunks {
        self.chunks
    }

    /// Nothing was read through this yet.
    pub fn untouched(&self) -> bool {
        self.ready.is_empty() && self.chunks.untouched()
    }
}

impl Iterator for Sequential {
    type Item = RowResult;

    fn next(&mut self) -> Option<RowResult> {
        loop {
            if let Some(row) = self.ready.pop_front() {
                return Some(row);
            }
            match self.chunks.next_chunk()? {
                Ok(chunk) => {
                    let parsed = chunk.parse();
                    let rows = self
                        .reassembler
                        .settle(&chunk, parsed.open)
                        .unwrap_or(parsed.rows);
                    self.ready.extend(rows);
                }
                Err((e, line)) => {
                    self.ready.extend(self.reassembler.finish());
                    self.ready.push_back(Err(read_error(&e, line)));
                }
            }
        }
    }
}

/// Where the chunk reader cuts a file: after about `chunk_bytes` at a line end where the
/// quotes balance, and anywhere past `forced_bytes` (`CHUNK_BYTES`, `FORCED_CUT_BYTES`).
#[derive(Debug, Clone, Copy)]
pub struct Cuts {
    pub chunk_bytes: usize,
    pub forced_bytes: usize,
}

/// The data rows of the CSV text `file` (its first non-blank record is the header), read
/// as an import reads them: the input comes `read_bytes` at a time, is cut into chunks
/// where `cuts` says and the chunk parses are put back together. For fuzzing and tests:
/// with `usize::MAX` everywhere it is one pass over the whole file, which every other way
/// of cutting the file must agree with (fuzz/fuzz_targets/csv_chunks.rs).
pub fn read_rows(
    file: &[u8],
    delimiter: u8,
    read_bytes: usize,
    cuts: Cuts,
    limits: Limits,
) -> Vec<RowResult> {
    /// At most `step` bytes per read, as a pipe or a slow disk gives them.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
        step: usize,
    }
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let rest = self.bytes.get(self.at..).unwrap_or_default();
            let n = rest.len().min(buf.len()).min(self.step.max(1));
            buf[..n].copy_from_slice(&rest[..n]);
            self.at += n;
            Ok(n)
        }
    }
    let input = Trickle {
        bytes: file.to_vec(),
        at: 0,
        step: read_bytes,
    };
    let mut records = Records::new(Box::new(input), delimiter, limits);
    let width = loop {
        match records.next() {
            Ok(Some(header)) if records.parser().is_blank(&header) => {}
            Ok(Some(header)) => break header.fields,
            Ok(None) | Err(_) => return Vec::new(),
        }
    };
    let mut chunks = records.into_chunks(width, file.len() as u64);
    chunks.chunk_bytes = cuts.chunk_bytes.max(1);
    chunks.forced_cut_bytes = cuts.forced_bytes.max(1);
    Sequential::new(chunks).collect()
}

/// The row error for input that cannot be read on.
pub fn read_error(e: &io::Error, line: u64) -> RowError {
    RowError {
        number: line,
        cells: Cells::default(),
        message: format!("the file cannot be read from here on: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of `file` (header first), read in chunks of about `chunk_bytes`.
    fn rows_in_chunks(file: &[u8], chunk_bytes: usize) -> Vec<RowResult> {
        rows_with(file, chunk_bytes, chunk_bytes, Limits::default())
    }

    /// The rows of `file`, cut every `chunk_bytes` where the quotes balance and every
    /// `forced` anyway, read with `limits`.
    fn rows_with(file: &[u8], chunk_bytes: usize, forced: usize, limits: Limits) -> Vec<RowResult> {
        read_rows(
            file,
            b',',
            usize::MAX,
            Cuts {
                chunk_bytes,
                forced_bytes: forced,
            },
            limits,
        )
    }

    #[test]
    fn a_cell_past_the_limit_is_a_row_error_and_the_rows_after_it_are_read() {
        let limits = Limits { cell_bytes: 1000 };
        let mut file = b"id,note\n1,short\n2,\"".to_vec();
        file.extend(std::iter::repeat_n(b"line\n".as_slice(), 5_000).flatten());
        file.extend(b"\"\n3,after\n4,");
        file.extend(std::iter::repeat_n(b'x', 20_000));
        file.extend(b"\n5,end\n");
        let whole = rows_with(&file, usize::MAX, usize::MAX, limits);
        for (size, forced) in [(64, 64), (100, 1000), (4096, 8192)] {
            assert_eq!(
                rows_with(&file, size, forced, limits),
                whole,
                "chunks of {size}"
            );
        }
        let numbers: Vec<u64> = whole
            .iter()
            .map(|r| r.as_ref().map_or_else(|e| e.number, |row| row.number))
            .collect();
        assert_eq!(numbers, [2, 3, 5004, 5005, 5006]);
        let error = whole[1].as_ref().unwrap_err();
        assert!(
            error.message.contains("field 2 holds more than"),
            "{}",
            error.message
        );
        assert!(
            whole[3]
                .as_ref()
                .is_err_and(|e| e.message.contains("field 2"))
        );
        assert_eq!(whole[4].as_ref().unwrap().cells.get(1), Some("end"));
    }

    #[test]
    fn a_row_of_too_many_fields_is_a_row_error() {
        let mut file = b"a,b\n1,2\n".to_vec();
        file.extend(",x".repeat(Limits::FIELDS + 10).as_bytes());
        file.extend(b"\n3,4\n");
        let rows = rows_in_chunks(&file, usize::MAX);
        assert_eq!(rows.len(), 3);
        assert!(
            rows[1]
                .as_ref()
                .is_err_and(|e| e.message.contains("fields"))
        );
        assert_eq!(rows[2].as_ref().unwrap().cells.get(0), Some("3"));
    }

    #[test]
    fn a_quoted_line_break_cut_by_a_stray_quote_is_put_back_together() {
        // The stray quote in `5" TV` makes the quotes before the next line end look
        // unbalanced, so cuts land inside the quoted two-line field.
        let mut file = b"id,item,note\n".to_vec();
        for i in 0..50 {
            file.extend(format!("{i},5\" TV,\"line one\nline two\"\n").as_bytes());
        }
        let whole = rows_in_chunks(&file, usize::MAX);
        assert_eq!(whole.len(), 50);
        for size in [1, 7, 16, 33, 100] {
            assert_eq!(rows_in_chunks(&file, size), whole, "chunks of {size} bytes");
        }
        let last = whole.last().unwrap().as_ref().unwrap();
        assert_eq!(last.number, 100);
        assert_eq!(last.cells.get(2), Some("line one\nline two"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

        /// However the file is cut into chunks, the rows (numbers, cells, errors) are the
        /// ones a single pass over the whole file gives.
        #[test]
        fn chunks_of_any_size_give_the_rows_of_one_pass(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::Just(b'"'), proptest::prelude::Just(b','),
                    proptest::prelude::Just(b'\n'), proptest::prelude::Just(b'\r'),
                    proptest::prelude::Just(b'a'), proptest::prelude::Just(b' '),
                    proptest::prelude::Just(0xC3u8), proptest::prelude::Just(0xB1u8),
                ],
                0..600,
            ),
            size in 1usize..80,
            forced in 1usize..200,
            cell_bytes in 1usize..40,
        ) {
            let mut file = b"a,b,c\r\n".to_vec();
            file.extend(&bytes);
            proptest::prop_assert_eq!(rows_in_chunks(&file, size), rows_in_chunks(&file, usize::MAX));
            // Cut anywhere, with cells and rows past small limits, the rows are the same.
            let limits = Limits { cell_bytes };
            proptest::prop_assert_eq!(
                rows_with(&file, size, forced, limits),
                rows_with(&file, usize::MAX, usize::MAX, limits)
            );
        }
    }
}
