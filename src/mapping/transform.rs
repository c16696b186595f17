//! Cleaning steps and validation rules, compiled once and applied per value.

use std::borrow::Cow;
use std::collections::HashMap;

use regex::Regex;

use super::dates::{DateFormat, DateOutput, reformat_date};
use super::fold::fold;
use super::phone::{PhoneStep, Reading};
use super::spec::Transform;

#[derive(Debug, Clone)]
pub enum Step {
    Trim,
    CollapseSpaces,
    Lower,
    Upper,
    Title,
    Map {
        /// The entries as written, for the common exact match (no folding needed).
        exact: HashMap<String, String>,
        values: HashMap<String, String>,
        default: Option<String>,
        allowed: Vec<String>,
    },
    Date {
        from: Vec<DateFormat>,
        to: DateOutput,
    },
    Phone(PhoneStep),
    Truncate(usize),
    Replace {
        pattern: Regex,
        with: String,
    },
    Split {
        separator: String,
        index: usize,
    },
}

impl Step {
    pub fn compile(transform: &Transform) -> Result<Step, String> {
        Ok(match transform {
            Transform::Trim => Step::Trim,
            Transform::CollapseSpaces => Step::CollapseSpaces,
            Transform::Lower => Step::Lower,
            Transform::Upper => Step::Upper,
            Transform::Title => Step::Title,
            Transform::Map(map) => {
                let mut values = HashMap::new();
                let mut exact = HashMap::new();
                let mut default = None;
                let mut allowed = Vec::new();
                for (from, to) in map {
                    if from == "*" {
                        default = Some(to.clone());
                        continue;
                    }
                    exact.insert(from.clone(), to.clone());
                    let folded = fold(from);
                    if let Some(previous) = values.insert(folded, to.clone())
                        && previous != *to
                    {
                        return Err(format!(
                            "map: {from:?} folds to the same text as another entry \
                             (case, accents and spaces are ignored) but maps elsewhere"
                        ));
                    }
                    allowed.push(from.clone());
                }
                Step::Map {
                    exact,
                    values,
                    default,
                    allowed,
                }
            }
            Transform::Date(spec) => {
                if spec.from.is_empty() {
                    return Err(
                        "date: `from` needs at least one input format, e.g. \"%d/%m/%Y\"".into(),
                    );
                }
                // Parsed once here, not per row; a bad format is a mapping error.
                let to = DateOutput::compile(&spec.to)?;
                let from = spec
                    .from
                    .iter()
                    .map(|f| DateFormat::compile(f))
                    .collect::<Result<_, _>>()?;
                Step::Date { from, to }
            }
            // Region and options settled here, not per row.
            Transform::Phone(spec) => Step::Phone(PhoneStep::compile(spec)?),
            Transform::Truncate(n) => Step::Truncate(*n),
            Transform::Split(spec) => {
                if spec.separator.is_empty() {
                    return Err("split: the separator cannot be empty".into());
                }
                Step::Split {
                    separator: spec.separator.clone(),
                    index: spec.index,
                }
            }
            Transform::Replace(spec) => Step::Replace {
                pattern: Regex::new(&spec.pattern)
                    .map_err(|e| format!("replace: bad pattern {:?}: {e}", spec.pattern))?,
                with: spec.with.clone(),
            },
        })
    }

    /// Apply this step, with nowhere for warnings to go (the column scan, tests).
    pub fn apply<'a>(&'a self, value: Cow<'a, str>) -> Result<Cow<'a, str>, String> {
        self.apply_noting(value, &mut Vec::new())
    }

    /// Apply this step; a value it passes on with a doubt (a phone kept as typed) adds a
    /// warning to `warnings`. Values are borrowed from the row (or the mapping) until a
    /// step changes them: most cells pass most steps unchanged, and then nothing is copied.
    pub fn apply_noting<'a>(
        &'a self,
        value: Cow<'a, str>,
        warnings: &mut Vec<String>,
    ) -> Result<Cow<'a, str>, String> {
        Ok(match self {
            Step::Trim if trimmed(&value).len() == value.len() => value,
            Step::Trim => match value {
                Cow::Borrowed(text) => Cow::Borrowed(text.trim()),
                Cow::Owned(text) => Cow::Owned(text.trim().to_string()),
            },
            Step::CollapseSpaces if is_collapsed(&value) => value,
            Step::CollapseSpaces => {
                Cow::Owned(value.split_whitespace().collect::<Vec<_>>().join(" "))
            }
            Step::Lower if !value.chars().any(char::is_uppercase) => value,
            Step::Lower => Cow::Owned(value.to_lowercase()),
            Step::Upper if !value.chars().any(char::is_lowercase) => value,
            Step::Upper => Cow::Owned(value.to_uppercase()),
            Step::Title => Cow::Owned(title_case(&value)),
            Step::Map {
                exact,
                values,
                default,
                allowed,
            } => {
                if trimmed(&value).is_empty() {
                    return Ok(value);
                }
                if let Some(mapped) = exact.get(value.as_ref()) {
                    return Ok(Cow::Borrowed(mapped));
                }
                match values.get(&fold(&value)) {
                    Some(mapped) => Cow::Borrowed(mapped),
                    None => match default {
                        Some(d) => Cow::Borrowed(d),
                        None => {
                            return Err(format!(
                                "{:?} is not in the value map; allowed: {}",
                                clip(&value),
                                allowed.join(", ")
                            ));
                        }
                    },
                }
            }
            Step::Date { from, to } => {
                let text = trimmed(&value);
                if text.is_empty() {
                    return Ok(value);
                }
                Cow::Owned(reformat_date(text, from, to)?)
            }
            Step::Phone(phone) => match phone.read(&value) {
                Reading::Number(number) => Cow::Owned(number),
                Reading::Blank => value,
                Reading::NotANumber(message) if phone.keeps_invalid() => {
                    warnings.push(format!("{message}; kept as typed"));
                    value
                }
                Reading::NotANumber(message) => return Err(message),
            },
            // No more bytes than `n` means no more characters either.
            Step::Truncate(n) if value.len() <= *n => value,
            Step::Truncate(n) => Cow::Owned(value.chars().take(*n).collect()),
            Step::Replace { pattern, with } => match value {
                Cow::Borrowed(text) => pattern.replace_all(text, with.as_str()),
                Cow::Owned(text) => {
                    Cow::Owned(pattern.replace_all(&text, with.as_str()).into_owned())
                }
            },
            Step::Split { separator, index } => match value {
                Cow::Borrowed(text) => Cow::Borrowed(split_part(text, separator, *index)),
                Cow::Owned(text) => Cow::Owned(split_part(&text, separator, *index).to_string()),
            },
        })
    }
}

/// Part `index` of `text` cut at `separator`, trimmed; empty if there is no such part.
fn split_part<'t>(text: &'t str, separator: &str, index: usize) -> &'t str {
    text.split(separator).nth(index).map_or("", str::trim)
}

/// Whether `collapse_spaces` would leave the value as it is: no space at either end,
/// no two in a row, and none but the plain space.
fn is_collapsed(value: &str) -> bool {
    let mut previous_space = true;
    for ch in value.chars() {
        if ch.is_whitespace() && (ch != ' ' || previous_space) {
            return false;
        }
        previous_space = ch == ' ';
    }
    !previous_space || value.is_empty()
}

/// `str::trim`, with a shortcut for the common value that has nothing to trim.
pub fn trimmed(value: &str) -> &str {
    match (value.as_bytes().first(), value.as_bytes().last()) {
        (Some(first), Some(last)) if first.is_ascii_graphic() && last.is_ascii_graphic() => value,
        _ => value.trim(),
    }
}

fn title_case(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut start = true;
    for ch in value.chars() {
        if start {
            out.extend(ch.to_uppercase());
        } else {
            out.extend(ch.to_lowercase());
        }
        start = !ch.is_alphanumeric();
    }
    out
}

/// A value for a message: at most 40 characters.
pub fn clip(value: &str) -> String {
    if value.chars().count() <= 40 {
        value.to_string()
    } else {
        let cut: String = value.chars().take(39).collect();
        format!("{cut}…")
    }
}

/// A pragmatic e-mail check: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !has_whitespace(value)
}

/// Any whitespace, Unicode included; most values are plain ASCII and answer in one pass.
fn has_whitespace(value: &str) -> bool {
    value.bytes().any(|b| b <= b' ' || b >= 0x80) && value.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn step(t: Transform) -> Step {
        Step::compile(&t).unwrap()
    }

    #[test]
    fn map_matches_after_folding_and_lists_allowed_values() {
        let map: BTreeMap<String, String> = [("Petición", "Request"), ("Queja", "Complaints")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let s = step(Transform::Map(map));
        assert_eq!(s.apply("  PETICION ".into()).unwrap(), "Request");
        let err = s.apply("Felicitación".into()).unwrap_err();
        assert!(err.contains("Petición") && err.contains("Queja"), "{err}");
    }

    #[test]
    fn map_star_is_the_default() {
        let map: BTreeMap<String, String> = [("Queja", "Complaints"), ("*", "Request")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(
            step(Transform::Map(map)).apply("otro".into()).unwrap(),
            "Request"
        );
    }

    #[test]
    fn dates_are_reformatted_and_ambiguity_refused() {
        let s = step(Transform::Date(super::super::spec::DateSpec {
            from: vec!["%d/%m/%Y".into()],
            to: "%Y-%m-%d".into(),
        }));
        assert_eq!(s.apply("26/06/2024".into()).unwrap(), "2024-06-26");
        assert!(s.apply("2024-06-26".into()).is_err());
        let both = step(Transform::Date(super::super::spec::DateSpec {
            from: vec!["%d/%m/%Y".into(), "%m/%d/%Y".into()],
            to: "%Y-%m-%d".into(),
        }));
        assert!(
            both.apply("03/04/2024".into())
                .unwrap_err()
                .contains("ambiguous")
        );
        assert_eq!(both.apply("26/06/2024".into()).unwrap(), "2024-06-26");
    }

    #[test]
    fn collapse_spaces_leaves_clean_text_and_fixes_the_rest() {
        let s = step(Transform::CollapseSpaces);
        for clean in ["Ana María Ríos", "x", ""] {
            assert!(
                matches!(s.apply(clean.into()).unwrap(), Cow::Borrowed(_)),
                "{clean:?}"
            );
        }
        for (dirty, fixed) in [
            ("  Ana   María ", "Ana María"),
            ("Ana\u{a0}María", "Ana María"),
            ("Ana\tRíos", "Ana Ríos"),
        ] {
            assert_eq!(s.apply(dirty.into()).unwrap(), fixed);
        }
    }

    #[test]
    fn a_phone_that_is_none_is_an_error_or_a_warning() {
        let phone = |on_invalid| {
            step(Transform::Phone(super::super::spec::PhoneSpec {
                country_code: Some("+57".into()),
                on_invalid,
                ..Default::default()
            }))
        };
        let refuse = phone(super::super::spec::OnInvalidPhone::Error);
        assert_eq!(
            refuse.apply("abc".into()).unwrap_err(),
            "not a phone number for CO: \"abc\""
        );
        assert_eq!(
            refuse.apply("301 555 0101".into()).unwrap(),
            "+573015550101"
        );
        let keep = phone(super::super::spec::OnInvalidPhone::Keep);
        let mut warnings = Vec::new();
        assert_eq!(
            keep.apply_noting("abc".into(), &mut warnings).unwrap(),
            "abc"
        );
        assert_eq!(
            warnings,
            ["not a phone number for CO: \"abc\"; kept as typed"]
        );
    }

    #[test]
    fn split_takes_one_part() {
        let s = step(Transform::Split(super::super::spec::SplitSpec {
            separator: " - ".into(),
            index: 1,
        }));
        assert_eq!(
            s.apply("Bogotá - Cundinamarca".into()).unwrap(),
            "Cundinamarca"
        );
        assert_eq!(s.apply("Bogotá".into()).unwrap(), "");
    }

    proptest::proptest! {
        /// Any change of case, accents or surrounding spaces still finds the map entry.
        #[test]
        fn map_matches_any_case_accent_and_space_variant(
            word in proptest::sample::select(vec!["Petición", "Queja", "Reclamo", "Sugerencia", "Atención al cliente"]),
            upper in proptest::collection::vec(proptest::bool::ANY, 24),
            strip_accents in proptest::bool::ANY,
            pad in 0usize..3,
        ) {
            let map: BTreeMap<String, String> = [(word.to_string(), "X".to_string())].into_iter().collect();
            let s = step(Transform::Map(map));
            let mut variant: String = word
                .chars()
                .zip(upper.iter().cycle())
                .map(|(c, up)| if *up { c.to_uppercase().next().unwrap_or(c) } else { c })
                .collect();
            if strip_accents {
                variant = variant.replace(['ó', 'Ó'], "o").replace(['é', 'É'], "e");
            }
            let variant = format!("{}{variant}{}", " ".repeat(pad), " ".repeat(pad));
            proptest::prop_assert_eq!(s.apply(variant.into()).unwrap(), "X");
        }

        /// A date written day-first comes back as the same ISO date; listing both orders
        /// refuses exactly the values that read differently.
        #[test]
        fn dates_round_trip_and_ambiguity_is_exact(day in 1u32..=28, month in 1u32..=12, year in 1990i32..2040) {
            let text = format!("{day:02}/{month:02}/{year}");
            let one = step(Transform::Date(super::super::spec::DateSpec {
                from: vec!["%d/%m/%Y".into()],
                to: "%Y-%m-%d".into(),
            }));
            proptest::prop_assert_eq!(one.apply(text.clone().into()).unwrap(), format!("{year}-{month:02}-{day:02}"));
            let both = step(Transform::Date(super::super::spec::DateSpec {
                from: vec!["%d/%m/%Y".into(), "%m/%d/%Y".into()],
                to: "%Y-%m-%d".into(),
            }));
            let ambiguous = day <= 12 && day != month;
            proptest::prop_assert_eq!(both.apply(text.into()).is_err(), ambiguous);
        }
    }

    #[test]
    fn email_check() {
        assert!(is_email("ana.perez@ejemplo.com.co"));
        assert!(!is_email("ana.perez@"));
        assert!(!is_email("ana perez@x.co"));
        assert!(!is_email("ana@@x.co"));
    }

    #[test]
    fn title_and_truncate() {
        assert_eq!(
            step(Transform::Title)
                .apply("ANA MARÍA pérez".into())
                .unwrap(),
            "Ana María Pérez"
        );
        assert_eq!(
            step(Transform::Truncate(3)).apply("añoso".into()).unwrap(),
            "año"
        );
    }
}
