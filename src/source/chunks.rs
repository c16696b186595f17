//! The file after its header cut into chunks that several threads parse at once, put
//! back together in file order.
//!
//! The reader cuts the file after a line end where the quotes seen since the chunk began
//! are balanced (so, almost always, between two records), or anywhere once a chunk has
//! grown past `FORCED_CUT_BYTES` without such a place; each chunk is parsed as if it began
//! a record. A chunk whose parse ends inside a record (a quoted field with a line break
//! cut by a stray quote, or a cell bigger than a chunk) hands its parser, stopped in that
//! record, to the `Reassembler`, which goes on with it through the next chunk: the rows
//! are always the ones a single sequential parse gives, and no byte is parsed twice by
//! the parser whose rows stand. `Sequential` does this on one thread; `parallel.rs` on
//! several, each chunk settled in its turn.

use std::collections::VecDeque;
use std::io::{self, Read};

use super::records::{Fed, LineCount, Parser, Records, read_error, read_some};
use super::{Limits, RowResult};

/// Bytes a chunk holds before it is cut at the next line end.
pub const CHUNK_BYTES: usize = 128 * 1024;

/// Bytes past which a chunk is cut even where the quotes do not balance (a stray quote,
/// or one huge quoted cell), and even in the middle of a line: the reassembly below
/// makes any cut safe, and so no chunk, however the file is made, holds much more.
const FORCED_CUT_BYTES: usize = 8 * CHUNK_BYTES;

impl Records {
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
    /// How its rows are cut into cells.
    pub fn shape(&self) -> Shape {
        self.shape
    }

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
/// means the next chunk was parsed from the wrong place, so the parser stopped in that
/// record goes on through the next chunk instead (rare: a quoted line break cut by a
/// stray quote, or a cell bigger than a chunk).
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
    match chunks_of(file, delimiter, read_bytes, cuts, limits) {
        Some(chunks) => Sequential::new(chunks).collect(),
        None => Vec::new(),
    }
}

/// The chunks of the CSV text `file` after its header, as `read_rows` cuts them; `None`
/// if it has no header.
pub(super) fn chunks_of(
    file: &[u8],
    delimiter: u8,
    read_bytes: usize,
    cuts: Cuts,
    limits: Limits,
) -> Option<Chunks> {
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
            Ok(None) | Err(_) => return None,
        }
    };
    let mut chunks = records.into_chunks(width, file.len() as u64);
    chunks.chunk_bytes = cuts.chunk_bytes.max(1);
    chunks.forced_cut_bytes = cuts.forced_bytes.max(1);
    Some(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of `file` after its header, read in chunks of about `chunk_bytes`.
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

    /// An input of the `csv_chunks` fuzz target read as the target reads it: in its
    /// chunks and reads, then in one pass.
    fn replay_fuzz_input(data: &[u8]) -> (Vec<RowResult>, Vec<RowResult>) {
        let [chunk, read, delimiter, forced, cell, file @ ..] = data else {
            panic!("the input has its five leading bytes")
        };
        let delimiter = [b',', b';', b'\t', b'|'][usize::from(delimiter % 4)];
        let limits = match cell {
            0 => Limits::default(),
            n => Limits {
                cell_bytes: usize::from(*n),
            },
        };
        let cuts = Cuts {
            chunk_bytes: usize::from(chunk % 64) + 1,
            forced_bytes: usize::from(*forced) + 1,
        };
        let whole = Cuts {
            chunk_bytes: usize::MAX,
            forced_bytes: usize::MAX,
        };
        let read = usize::from(read % 64) + 1;
        (
            read_rows(file, delimiter, read, cuts, limits),
            read_rows(file, delimiter, usize::MAX, whole, limits),
        )
    }

    /// Found by the `csv_chunks` fuzz target: a lone CR inside a quoted field, cut at a
    /// chunk end, once made a row's message differ between chunked and one-pass reads.
    #[test]
    fn a_lone_cr_cut_at_a_chunk_end_reads_the_same_in_chunks_as_in_one_pass() {
        let data = include_bytes!("../../fuzz/corpus/csv_chunks/regression-lone-cr-line-count");
        let (chunked, one_pass) = replay_fuzz_input(data);
        assert_eq!(chunked, one_pass);
    }

    /// Found by the `csv_chunks` fuzz target in CI: a UTF-8 BOM in mid-file that began a
    /// chunk was dropped from its cell (`csv_core` drops a BOM that starts its first
    /// input), and one pass kept it.
    #[test]
    fn a_bom_in_mid_file_is_kept_where_a_chunk_starts() {
        let data = include_bytes!("../../fuzz/corpus/csv_chunks/regression-bom-at-a-chunk-start");
        let (chunked, one_pass) = replay_fuzz_input(data);
        assert_eq!(chunked, one_pass);
        let mut kept = one_pass.iter().filter_map(|row| row.as_ref().ok());
        assert!(
            kept.any(|row| row.cells.get(0) == Some("\u{feff}Ticket\tAsuntoola\tAbierto")),
            "{one_pass:?}"
        );
        // And a BOM at the start of what the parser is given is a cell's text too: the
        // file's own BOM is taken off before (csv.rs), so a second one is data.
        let rows = rows_in_chunks(b"id,n\n\xEF\xBB\xBF1,a\n", 4);
        assert_eq!(rows_in_chunks(b"id,n\n\xEF\xBB\xBF1,a\n", 1 << 20), rows);
        assert_eq!(
            rows[0].as_ref().map(|r| r.cells.get(0)),
            Ok(Some("\u{feff}1"))
        );
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
