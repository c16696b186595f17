//! The zip container of a workbook (xlsx, xlsm, xlsb, ods), looked at before calamine
//! reads it: a truncated or damaged archive is named as such, and a part that inflates
//! past what a real export holds (a "zip bomb": a few kilobytes that inflate to
//! gigabytes) is refused before any of it is held in memory.
//!
//! What calamine keeps whole in memory is the shared-strings table (and, for ODS, the
//! whole content); a worksheet is streamed, but one cell or tag of it is buffered whole.
//! So each such part is inflated here once, counting as it goes and keeping nothing:
//! the shared strings (and ODS content) may inflate to `PART_BYTES`, and no run of a
//! worksheet between two `<` (a tag, or a cell's text) may pass `--max-cell-bytes`.
//! The sizes a zip declares can lie; inflating cannot. The cost is one extra inflate of
//! the parts, a small share of what parsing their XML costs.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use super::{Limits, SourceError};

/// The most a string table (or an ODS file's content) may inflate to: a workbook of a
/// million rows of distinct 100-character texts needs about 130 MB.
pub const PART_BYTES: u64 = 256 * 1024 * 1024;

/// What a part is, for the limit it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Held whole in memory by the reader: counted against `PART_BYTES`.
    Whole,
    /// Streamed XML: no tag or text may pass the cell limit.
    Streamed,
    Other,
}

fn part_of(name: &str) -> Part {
    let lower = name.to_ascii_lowercase();
    let file = lower.rsplit('/').next().unwrap_or(&lower);
    if file.starts_with("sharedstrings") || lower == "content.xml" {
        Part::Whole
    } else if lower.starts_with("xl/worksheets/") && lower.ends_with(".xml") {
        Part::Streamed
    } else {
        Part::Other
    }
}

/// Check the archive at `path`; `Ok` if calamine may read it. Each pass over a file
/// opens it once (`source::open`); a pass that reads it again (`Source::reread`) checks it
/// again only if it changed since.
pub fn check(path: &Path, limits: Limits) -> Result<(), SourceError> {
    check_now(path, limits)
}

fn check_now(path: &Path, limits: Limits) -> Result<(), SourceError> {
    let refuse = |message: String| SourceError::Workbook {
        path: path.to_path_buf(),
        message,
    };
    let file = File::open(path).map_err(|source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| {
        refuse(format!(
            "the file is not a whole workbook: its zip archive is truncated or damaged \
             ({e}); save it again from Excel or LibreOffice, or copy it again"
        ))
    })?;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|e| {
            refuse(format!(
                "part {} of the workbook cannot be read: {e}",
                index + 1
            ))
        })?;
        let name = entry.name().map(|n| n.into_owned()).unwrap_or_default();
        let part = part_of(&name);
        if part == Part::Other {
            continue;
        }
        let scan = scan(&mut entry, part, limits)
            .map_err(|e| refuse(format!("{name} in the workbook is damaged: {e}")))?;
        match scan {
            Scan::Fits => {}
            Scan::TooBig => {
                return Err(refuse(format!(
                    "{name} in the workbook inflates to more than {} MiB, far more than \
                     any real export holds; the file is damaged or built to exhaust memory \
                     (save the sheet as CSV if it is real)",
                    PART_BYTES >> 20
                )));
            }
            Scan::CellTooBig { at } => {
                return Err(refuse(format!(
                    "{name} in the workbook holds a cell or tag of more than {} MiB (at \
                     byte {at} of the inflated sheet; --max-cell-bytes), more than any real \
                     export holds; the file is damaged or built to exhaust memory",
                    limits.cell_bytes >> 20
                )));
            }
        }
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Scan {
    Fits,
    TooBig,
    CellTooBig { at: u64 },
}

/// Inflate `entry` into nothing, stopping at the first limit passed.
fn scan(entry: &mut impl Read, part: Part, limits: Limits) -> std::io::Result<Scan> {
    let mut buf = vec![0u8; 64 * 1024];
    let (mut total, mut run) = (0u64, 0u64);
    let cell = limits.cell_bytes as u64;
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => return Ok(Scan::Fits),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let bytes = &buf[..n];
        match part {
            Part::Whole if total + n as u64 > PART_BYTES => return Ok(Scan::TooBig),
            Part::Streamed => {
                let mut from = 0;
                for i in memchr::memchr_iter(b'<', bytes) {
                    if run + (i - from) as u64 > cell {
                        return Ok(Scan::CellTooBig {
                            at: total + from as u64,
                        });
                    }
                    run = 0;
                    from = i;
                }
                run += (n - from) as u64;
                if run > cell {
                    return Ok(Scan::CellTooBig {
                        at: total + from as u64,
                    });
                }
            }
            _ => {}
        }
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_between_tags_past_the_cell_limit_is_found_across_reads() {
        let limits = Limits { cell_bytes: 100 };
        let fits = format!("<c><v>{}</v></c>", "x".repeat(90)).repeat(1000);
        assert_eq!(
            scan(&mut fits.as_bytes(), Part::Streamed, limits).unwrap(),
            Scan::Fits
        );
        let long = format!("<row>{}<c>", "y".repeat(200_000));
        assert_eq!(
            scan(&mut long.as_bytes(), Part::Streamed, limits).unwrap(),
            Scan::CellTooBig { at: 0 }
        );
        // Read a few bytes at a time, the run still adds up.
        let mut slow = std::io::BufReader::with_capacity(7, long.as_bytes());
        let found = scan(&mut slow, Part::Streamed, limits).unwrap();
        assert!(matches!(found, Scan::CellTooBig { .. }), "{found:?}");
        let whole = "<si><t>a</t></si>".repeat(100);
        assert_eq!(
            scan(&mut whole.as_bytes(), Part::Whole, limits).unwrap(),
            Scan::Fits
        );
    }

    #[test]
    fn the_parts_held_whole_and_the_sheets_are_told_apart() {
        assert_eq!(part_of("xl/sharedStrings.xml"), Part::Whole);
        assert_eq!(part_of("xl/sharedStrings.bin"), Part::Whole);
        assert_eq!(part_of("content.xml"), Part::Whole);
        assert_eq!(part_of("xl/worksheets/sheet1.xml"), Part::Streamed);
        assert_eq!(part_of("xl/styles.xml"), Part::Other);
    }
}
