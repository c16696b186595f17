//! The `date` step's formats: each parsed once when the mapping is compiled; a column's
//! values decide between formats that read a value differently (`03/04/2024`).

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::NaiveDate;

use super::transform::{Step, clip};

/// An input date format, checked and parsed once when the mapping is compiled.
#[derive(Debug, Clone)]
pub struct DateFormat {
    pub text: String,
    items: Vec<chrono::format::Item<'static>>,
    /// The format's literal characters (`/`, `-`): a value that lacks one cannot match.
    literals: Vec<char>,
}

impl DateFormat {
    pub(super) fn compile(text: &str) -> Result<DateFormat, String> {
        let items = chrono::format::StrftimeItems::new(text)
            .parse_to_owned()
            .map_err(|_| format!("date: {text:?} is not a valid input format"))?;
        let mut literals: Vec<char> = items
            .iter()
            .filter_map(|item| match item {
                chrono::format::Item::Literal(text) => Some(text.to_string()),
                chrono::format::Item::OwnedLiteral(text) => Some(text.to_string()),
                _ => None,
            })
            .flat_map(|text| text.chars().collect::<Vec<_>>())
            .filter(|c| !c.is_whitespace())
            .collect();
        literals.sort_unstable();
        literals.dedup();
        Ok(DateFormat {
            text: text.to_string(),
            items,
            literals,
        })
    }
}

/// A date, or the date of a date and time, in this format.
fn parse_date(value: &str, format: &DateFormat) -> Option<NaiveDate> {
    // A value without the format's separators cannot match it: skip chrono's parse.
    if !format.literals.iter().all(|c| value.contains(*c)) {
        return None;
    }
    let mut parsed = chrono::format::Parsed::new();
    chrono::format::parse(&mut parsed, value, format.items.iter()).ok()?;
    parsed.to_naive_date().ok().or_else(|| {
        parsed
            .to_naive_datetime_with_offset(0)
            .ok()
            .map(|dt| dt.date())
    })
}

/// What a whole column says about a `date` step's formats: for two formats that read some
/// value as different dates (`03/04/2024`), a value only one of them can read (`26/06/2024`)
/// settles the column for that one.
#[derive(Debug, Clone, Default)]
pub struct DateEvidence {
    /// (a, b) → (a value read differently by both, values only a reads, values only b reads)
    pairs: HashMap<(usize, usize), (bool, u64, u64)>,
}

impl Step {
    /// Whether this step has formats a column could decide between.
    pub fn decides_by_column(&self) -> bool {
        match self {
            Step::Date { from, .. } => {
                // Only formats of the same shape once day and month are alike
                // (`%d/%m/%Y`, `%m/%d/%Y`) can read one value two ways.
                let shapes: Vec<String> = from
                    .iter()
                    .map(|f| {
                        f.text
                            .replace("%d", "%N")
                            .replace("%m", "%N")
                            .replace("%e", "%N")
                    })
                    .collect();
                shapes
                    .iter()
                    .enumerate()
                    .any(|(i, a)| shapes[i + 1..].contains(a))
            }
            _ => false,
        }
    }

    /// Take one value of the column into account.
    pub fn observe(&self, value: &str, evidence: &mut DateEvidence) {
        let Step::Date { from, .. } = self else {
            return;
        };
        let value = value.trim();
        if value.is_empty() {
            return;
        }
        let dates: Vec<Option<NaiveDate>> = from.iter().map(|f| parse_date(value, f)).collect();
        for a in 0..dates.len() {
            for b in a + 1..dates.len() {
                let entry = evidence.pairs.entry((a, b)).or_default();
                match (dates[a], dates[b]) {
                    (Some(x), Some(y)) if x != y => entry.0 = true,
                    (Some(_), None) => entry.1 += 1,
                    (None, Some(_)) => entry.2 += 1,
                    _ => {}
                }
            }
        }
    }

    /// Drop the formats the column ruled out; returns what was decided, for the log.
    pub fn settle(&mut self, evidence: &DateEvidence) -> Vec<String> {
        let Step::Date { from, .. } = self else {
            return Vec::new();
        };
        let mut dropped = std::collections::BTreeSet::new();
        for (&(a, b), &(conflict, only_a, only_b)) in &evidence.pairs {
            if !conflict {
                continue;
            }
            if only_a > 0 && only_b == 0 {
                dropped.insert(b);
            } else if only_b > 0 && only_a == 0 {
                dropped.insert(a);
            }
        }
        let mut notes = Vec::new();
        let mut index = 0;
        from.retain(|format| {
            let keep = !dropped.contains(&index);
            if !keep {
                notes.push(format.text.clone());
            }
            index += 1;
            keep
        });
        notes
    }
}

pub(super) fn reformat_date(
    value: &str,
    from: &[DateFormat],
    to: &DateOutput,
) -> Result<String, String> {
    let mut first: Option<(NaiveDate, &str)> = None;
    for format in from {
        let Some(date) = parse_date(value, format) else {
            continue;
        };
        match first {
            None => first = Some((date, &format.text)),
            Some((earlier, earlier_format)) if earlier != date => {
                return Err(format!(
                    "{:?} is ambiguous: {earlier_format} reads it as {earlier}, {} as {date}; \
                     list only the format the file uses",
                    clip(value),
                    format.text
                ));
            }
            Some(_) => {}
        }
    }
    match first {
        Some((date, _)) => format_date(date, to),
        None => Err(format!(
            "{:?} is not a date in the format {}",
            clip(value),
            from.iter()
                .map(|f| f.text.as_str())
                .collect::<Vec<_>>()
                .join(" or ")
        )),
    }
}

/// The output format of a `date` step, parsed once; whether it is the usual ISO
/// `%Y-%m-%d` is decided then too.
#[derive(Debug, Clone)]
pub struct DateOutput {
    items: Vec<chrono::format::Item<'static>>,
    iso: bool,
}

impl DateOutput {
    pub(super) fn compile(text: &str) -> Result<DateOutput, String> {
        use chrono::format::{Item, Numeric, Pad};
        let items = chrono::format::StrftimeItems::new(text)
            .parse_to_owned()
            .map_err(|_| format!("date: {text:?} is not a valid output format"))?;
        let iso = [
            Item::Numeric(Numeric::Year, Pad::Zero),
            Item::Literal("-"),
            Item::Numeric(Numeric::Month, Pad::Zero),
            Item::Literal("-"),
            Item::Numeric(Numeric::Day, Pad::Zero),
        ];
        // Some items need a time or a zone (`%H`, `%z`, `%s`), which a date has not: chrono's
        // formatter would fail on every row, so the mapping is refused here.
        let sample = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default();
        let mut probe = String::new();
        if write!(probe, "{}", sample.format_with_items(items.iter())).is_err() {
            return Err(format!(
                "date: output format {text:?} asks for a time or a time zone; \
                 a date has only a year, month and day (use %Y, %m, %d, %b, %A ...)"
            ));
        }
        let iso = items.len() == iso.len()
            && items.iter().zip(&iso).all(|(a, b)| match (a, b) {
                (Item::OwnedLiteral(text), Item::Literal(literal)) => &**text == *literal,
                _ => a == b,
            });
        Ok(DateOutput { items, iso })
    }
}

/// The date in the output format; ISO written directly (chrono's general formatter was a
/// tenth of the mapping's time).
fn format_date(date: NaiveDate, to: &DateOutput) -> Result<String, String> {
    use chrono::Datelike;
    if to.iso && (0..=9999).contains(&date.year()) {
        let mut out = String::with_capacity(10);
        let mut buffer = itoa::Buffer::new();
        for (value, width) in [(date.year() as u32, 4), (date.month(), 2), (date.day(), 2)] {
            if !out.is_empty() {
                out.push('-');
            }
            let digits = buffer.format(value);
            out.extend(std::iter::repeat_n('0', width - digits.len()));
            out.push_str(digits);
        }
        return Ok(out);
    }
    let mut out = String::new();
    write!(out, "{}", date.format_with_items(to.items.iter()))
        .map_err(|_| format!("{date} cannot be written in the output format"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates_are_written_as_chrono_writes_them() {
        let to = DateOutput::compile("%Y-%m-%d").unwrap();
        for (y, m, d) in [
            (2024, 2, 9),
            (5, 1, 1),
            (9999, 12, 31),
            (-3, 6, 30),
            (10000, 1, 1),
        ] {
            let date = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            assert_eq!(
                format_date(date, &to).unwrap(),
                date.format("%Y-%m-%d").to_string(),
                "{date:?}"
            );
        }
    }

    #[test]
    fn output_formats_that_need_a_time_are_refused_when_the_mapping_compiles() {
        for text in ["%H:%M", "%Y-%m-%d %z", "%s", "%Y %:z"] {
            let error = DateOutput::compile(text).unwrap_err();
            assert!(error.contains("asks for a time"), "{text}: {error}");
        }
        assert!(DateOutput::compile("%d/%m/%Y %A").is_ok());
    }
}
