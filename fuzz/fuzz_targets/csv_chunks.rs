//! The CSV reader: however the input arrives and is cut into chunks, the rows (their
//! numbers, cells and errors) are the ones one pass over the whole file gives.
//!
//! Input: a byte choosing the chunk size (1 to 64 bytes, so cuts land everywhere), a byte
//! choosing the read size (1 to 64 bytes), a byte choosing the delimiter, a byte choosing
//! where a chunk is cut even inside a line (1 to 256 bytes), a byte choosing the most
//! text a cell may hold (1 to 255 bytes, or 0: the default 16 MiB), then the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wolkvox_import::source::{Cuts, Limits, read_rows};

const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

fuzz_target!(|data: &[u8]| {
    let [chunk, read, delimiter, forced, cell, file @ ..] = data else {
        return;
    };
    let chunk_bytes = usize::from(chunk % 64) + 1;
    let read_bytes = usize::from(read % 64) + 1;
    let delimiter = DELIMITERS[usize::from(delimiter % 4)];
    let forced_bytes = usize::from(*forced) + 1;
    let limits = match cell {
        0 => Limits::default(),
        n => Limits {
            cell_bytes: usize::from(*n),
        },
    };

    // One read and one chunk: sizes past the file's end (`usize::MAX` would do, but
    // makes the reader ask for its largest buffer on every run).
    let whole = file.len() + 1;
    let one_pass = read_rows(
        file,
        delimiter,
        whole,
        Cuts {
            chunk_bytes: whole,
            forced_bytes: whole,
        },
        limits,
    );
    let cuts = Cuts {
        chunk_bytes,
        forced_bytes,
    };
    let chunked = read_rows(file, delimiter, read_bytes, cuts, limits);
    assert_eq!(
        chunked, one_pass,
        "chunks of {chunk_bytes} bytes (forced {forced_bytes}), reads of {read_bytes}, \
         cells of at most {} bytes",
        limits.cell_bytes
    );

    // Rows come in file order: each starts on a later line than the one before.
    let mut last = 0;
    for row in &one_pass {
        let number = match row {
            Ok(row) => row.number,
            Err(error) => error.number,
        };
        assert!(number > last, "row {number} after row {last}");
        last = number;
    }
});
