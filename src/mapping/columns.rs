//! Which column a mapping means: a header (exact, else ignoring case, accents and
//! spaces when that is unambiguous), a letter or a 1-based number.

use super::fold::{fold, nearest};

/// A column by its letter (`C`, `AB`) or 1-based number (`3`), for files without headers
/// (or a header that names no column).
fn by_position(name: &str, width: usize) -> Option<usize> {
    let name = name.trim();
    let index = if let Ok(number) = name.parse::<usize>() {
        number.checked_sub(1)?
    } else if !name.is_empty() && name.len() <= 3 && name.bytes().all(|b| b.is_ascii_uppercase()) {
        name.bytes()
            .fold(0usize, |acc, b| acc * 26 + usize::from(b - b'A') + 1)
            .checked_sub(1)?
    } else {
        return None;
    };
    (index < width).then_some(index)
}

/// Header lookup: exact, then forgiving case/accents/spaces when that is unambiguous.
pub(super) struct Columns<'a> {
    pub(super) headers: &'a [String],
    folded: Vec<String>,
}

impl<'a> Columns<'a> {
    /// A header the file repeats is a problem only for a mapping that names that column
    /// by it (`resolve` says so); a column the mapping leaves out, or names by letter, is
    /// unambiguous.
    pub(super) fn new(headers: &'a [String]) -> Self {
        Columns {
            headers,
            folded: headers.iter().map(|h| fold(h)).collect(),
        }
    }

    pub(super) fn resolve(&self, name: &str) -> Result<usize, String> {
        let exact: Vec<usize> = (0..self.headers.len())
            .filter(|&i| self.headers[i] == name)
            .collect();
        match exact.as_slice() {
            [one] => return Ok(*one),
            [first, second, ..] => {
                return Err(format!(
                    "the header {name:?} appears twice (columns {} and {}): rename one in the \
                     file so the mapping can tell them apart, or name the column by its letter",
                    crate::source::column_letter(*first),
                    crate::source::column_letter(*second)
                ));
            }
            [] => {}
        }
        let wanted = fold(name);
        let matches: Vec<usize> = (0..self.folded.len())
            .filter(|&i| self.folded[i] == wanted)
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] if by_position(name, self.headers.len()).is_some() => {
                by_position(name, self.headers.len()).ok_or_else(String::new)
            }
            [] => {
                let suggestion = nearest(name, self.headers)
                    .map(|i| format!("; did you mean {:?}?", self.headers[i]))
                    .unwrap_or_else(|| format!("; the columns are: {}", self.headers.join(", ")));
                Err(format!("no column {name:?} in the file{suggestion}"))
            }
            several => Err(format!(
                "{name:?} matches several columns ({}) once case and accents are ignored: \
                 write it exactly as in the file",
                several
                    .iter()
                    .map(|&i| format!("{:?}", self.headers[i]))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}
