//! The cells of one row in one buffer: two allocations a row instead of one per cell
//! (a third of the reader's time went to allocating and freeing cells one by one).

use std::fmt;

/// A row's cells, in header order, stored as one string and the end of each cell.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Cells {
    text: String,
    ends: Vec<usize>,
}

impl Cells {
    /// Cells from one buffer already split: `ends[i]` is where cell `i` ends in `text`.
    /// Ends that are out of order or past the text are clamped, never a panic.
    pub(crate) fn from_parts(text: String, mut ends: Vec<usize>) -> Cells {
        let mut floor = 0;
        for end in &mut ends {
            *end = (*end).clamp(floor, text.len());
            while !text.is_char_boundary(*end) {
                *end -= 1;
            }
            floor = *end;
        }
        Cells { text, ends }
    }

    pub fn push(&mut self, cell: &str) {
        self.text.push_str(cell);
        self.ends.push(self.text.len());
    }

    /// Cell `index`, if the row has that many.
    pub fn get(&self, index: usize) -> Option<&str> {
        let end = *self.ends.get(index)?;
        let start = match index {
            0 => 0,
            _ => self.ends[index - 1],
        };
        self.text.get(start..end)
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.get(i).unwrap_or(""))
    }

    /// Keep the first `len` cells.
    pub fn truncate(&mut self, len: usize) {
        if len < self.ends.len() {
            self.ends.truncate(len);
            self.text.truncate(self.ends.last().copied().unwrap_or(0));
        }
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }
}

impl<S: AsRef<str>> FromIterator<S> for Cells {
    fn from_iter<I: IntoIterator<Item = S>>(cells: I) -> Cells {
        let mut out = Cells::default();
        for cell in cells {
            out.push(cell.as_ref());
        }
        out
    }
}

impl fmt::Debug for Cells {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_keep_empty_and_accented_values_apart() {
        let cells: Cells = ["", "ñandú", "", "x"].into_iter().collect();
        assert_eq!(cells.len(), 4);
        assert_eq!(cells.to_vec(), ["", "ñandú", "", "x"]);
        assert_eq!(cells.get(1), Some("ñandú"));
        assert_eq!(cells.get(4), None);
        let mut cut = cells.clone();
        cut.truncate(2);
        assert_eq!(cut.to_vec(), ["", "ñandú"]);
    }

    #[test]
    fn broken_ends_are_clamped_not_a_panic() {
        let cells = Cells::from_parts("añb".into(), vec![2, 1, 99]);
        assert_eq!(cells.to_vec(), ["a", "", "ñb"]);
    }
}
