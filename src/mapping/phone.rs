//! The `phone` step: the first phone number of a value, read with libphonenumber's
//! metadata (the `phonenumber` crate) and written in E.164, or refused.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use phonenumber::metadata::DATABASE;
use phonenumber::{Mode, PhoneNumber, country};
use regex::Regex;

use super::spec::{OnInvalidPhone, PhoneExtension, PhoneSpec};
use super::transform::clip;

/// A `phone` step, with its region and options settled when the mapping is compiled.
#[derive(Debug, Clone)]
pub struct PhoneStep {
    /// Where numbers written without a country code belong.
    region: Option<country::Id>,
    /// The numbering plan of the region's country code, looked up once here: most numbers
    /// of a file are of that country.
    home: Option<(u16, Arc<Regex>)>,
    /// The shortcut for plainly written numbers of the region (see `plain`).
    plain: Option<Plain>,
    keep_extension: bool,
    keep_invalid: bool,
}

/// What a value is, read as a phone number.
#[derive(Debug, PartialEq, Eq)]
pub enum Reading {
    /// The first number of the value, in E.164 (and `;ext=` when extensions are kept).
    Number(String),
    /// Nothing but white space: stays as it is, for `required` and `default` to judge.
    Blank,
    /// No number the region could have; the message quotes the value.
    NotANumber(String),
}

impl PhoneStep {
    pub fn compile(spec: &PhoneSpec) -> Result<PhoneStep, String> {
        let by_code = match &spec.country_code {
            Some(text) => Some(region_of_code(text)?),
            None => None,
        };
        let by_name = match &spec.region {
            Some(text) => Some(region_by_name(text)?),
            None => None,
        };
        let region = match (by_code, by_name) {
            (Some((code, _)), Some((own, id))) if code != own => {
                return Err(format!(
                    "phone: region {} has the country code +{own}, not +{code}; give one of them",
                    id.as_ref()
                ));
            }
            (_, Some(region)) | (Some(region), None) => Some(region),
            (None, None) => None,
        };
        let home = match region {
            Some((code, id)) => Some((
                code,
                plan(code).ok_or_else(|| {
                    format!("phone: no numbering plan is known for {}", id.as_ref())
                })?,
            )),
            None => None,
        };
        Ok(PhoneStep {
            region: region.map(|(_, id)| id),
            plain: home
                .as_ref()
                .and_then(|(code, plan)| Plain::compile(*code, plan.clone())),
            home,
            keep_extension: spec.extension == PhoneExtension::Keep,
            keep_invalid: spec.on_invalid == OnInvalidPhone::Keep,
        })
    }

    /// Whether a value with no number is sent as typed (with a warning) rather than
    /// making its row invalid.
    pub fn keeps_invalid(&self) -> bool {
        self.keep_invalid
    }

    pub fn read(&self, value: &str) -> Reading {
        let text = value.trim();
        if text.is_empty() {
            return Reading::Blank;
        }
        if let Some(plain) = &self.plain {
            if let Some(number) = plain.read(text) {
                return Reading::Number(number);
            }
            if plain.surely_none(text) {
                return self.not_a_number(text);
            }
        }
        self.read_with_library(text)
    }

    /// `read` without the shortcut: what the shortcut must agree with.
    fn read_with_library(&self, text: &str) -> Reading {
        match self.first_number(text).and_then(|n| self.write(&n)) {
            Some(number) => Reading::Number(number),
            None => self.not_a_number(text),
        }
    }

    fn not_a_number(&self, text: &str) -> Reading {
        Reading::NotANumber(match self.region {
            Some(region) => {
                format!(
                    "not a phone number for {}: {:?}",
                    region.as_ref(),
                    clip(text)
                )
            }
            None => format!(
                "not a phone number: {:?} (with no `country_code` or `region`, only \
                     numbers written with + and their country code are read)",
                clip(text)
            ),
        })
    }

    /// The first number of a value that may hold several (`301 555 0101 / 310 222 3333`).
    fn first_number(&self, text: &str) -> Option<PhoneNumber> {
        let part = text
            .split(is_list_separator)
            .map(str::trim)
            .find(|part| part.bytes().any(|b| b.is_ascii_digit()))?;
        if let Some(number) = self.number(part) {
            return Some(number);
        }
        // Two numbers with only spaces or a word between them (`3015550101 o 3102223333`),
        // or a number and a note (`3015550101 (casa)`): the longest run of leading words
        // that is a number, when what follows is clearly not part of it: no digits, or
        // enough for a number of its own. A stray digit or two (`3015550101 2`) could be a
        // typo inside the number, so that value stays refused.
        let spaces: Vec<usize> = part
            .char_indices()
            .filter(|(_, c)| c.is_whitespace())
            .map(|(i, _)| i)
            .collect();
        for &cut in spaces.iter().rev() {
            let rest_digits = part[cut..].bytes().filter(u8::is_ascii_digit).count();
            if rest_digits != 0 && rest_digits < MIN_DIGITS_OF_A_NUMBER {
                continue;
            }
            if let Some(number) = self.number(part[..cut].trim_end()) {
                return Some(number);
            }
        }
        None
    }

    /// One candidate, read by the library and checked against the numbering plan.
    fn number(&self, text: &str) -> Option<PhoneNumber> {
        // Exports write the international prefix as 00 (`0057 300…`), but a region's own
        // dialling rules may read 00 otherwise (in CO, `005` picks a long-distance
        // carrier, which would make `0057 300…` a number of +7): 00 is read as + first.
        if let Some(rest) = text.strip_prefix("00")
            && let Some(number) = self.parsed(&format!("+{rest}"))
        {
            return Some(number);
        }
        self.parsed(text)
    }

    fn parsed(&self, text: &str) -> Option<PhoneNumber> {
        // The crate tries its RFC 3966 reader first on any text without a space, and that
        // reader takes all between `+` and the first `-` or `.` as the country code
        // (`+57301-555-0101` is refused as code 57301). libphonenumber reads only a
        // `tel:` URI that way; a space sends written numbers to the crate's other reader.
        let written;
        let text = if text
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("tel:"))
        {
            text
        } else {
            written = format!("{text} ");
            written.as_str()
        };
        let number = phonenumber::parse(self.region, text).ok()?;
        self.fits_plan(&number).then_some(number)
    }

    /// Whether the national number is one its country's numbering plan has room for (its
    /// general pattern, which also fixes the lengths). The library's parse alone accepts
    /// any digits it could not strip further (`0300123456` in CO leaves `0123456`), and
    /// its `is_valid` knows only the ranges assigned when its metadata was made.
    fn fits_plan(&self, number: &PhoneNumber) -> bool {
        let code = number.code().value();
        let national = number.national().to_string();
        match &self.home {
            Some((home, pattern)) if *home == code => pattern.is_match(&national),
            _ => plan(code).is_some_and(|pattern| pattern.is_match(&national)),
        }
    }

    fn write(&self, number: &PhoneNumber) -> Option<String> {
        let mut out = String::with_capacity(24);
        write!(out, "{}", number.format().mode(Mode::E164)).ok()?;
        if self.keep_extension
            && let Some(extension) = number.extension()
            && !extension.is_empty()
        {
            out.push_str(";ext=");
            out.push_str(extension);
        }
        Some(out)
    }
}

/// The common case without the library's parser, which costs a few microseconds a value
/// (more than the rest of a row's mapping): a number written with digits, spaces and
/// `()-.` only, with `+` and the region's code, `00` and the code, or no code, whose
/// national part fits the region's plan and starts with nothing the library would strip
/// or re-read (the international, national and carrier prefixes of the region's
/// metadata). Such a number is `+`, the code and those digits whichever way it is read;
/// anything else goes to the library, and a property test holds the two to the same
/// answers.
///
/// The same goes for the commonest value that is no number: digits (and `()-.`, no space)
/// with no `+`, international prefix or country code in front, in a region whose metadata
/// rewrites no prefix. Whatever the library strips from such digits, what is left is a
/// tail of them with the region's code; when no tail fits the plan, it has no answer.
#[derive(Debug, Clone)]
struct Plain {
    code: String,
    plan: Arc<Regex>,
    /// Matches at the start of digits the library would not take as they are.
    special: Regex,
    /// Matches at the start of digits the library would read as international.
    international: Regex,
    /// Whether some tail of the digits fits the plan.
    some_tail_fits: Regex,
    /// Whether a region of the code rewrites its national prefix (then the library's
    /// national number need not be a tail of the digits).
    rewrites: bool,
}

impl Plain {
    fn compile(code: u16, plan: Arc<Regex>) -> Option<Plain> {
        let regions = DATABASE.by_code(&code)?;
        let mut starts = Vec::new();
        let mut international = Vec::new();
        let mut general = Vec::new();
        for meta in &regions {
            international.extend(
                meta.international_prefix()
                    .map(|re| format!("(?:{})", re.as_str())),
            );
            general.push(format!(
                "(?:{})",
                meta.descriptors().general().national_number().as_str()
            ));
            starts.extend(
                meta.international_prefix()
                    .map(|re| re.as_str().to_string()),
            );
            starts.extend(
                meta.national_prefix_for_parsing()
                    .map(|re| re.as_str().to_string()),
            );
            starts.extend(meta.national_prefix().map(regex::escape));
        }
        if starts.is_empty() {
            // A never-matching pattern: nothing is special.
            starts.push("[^\\s\\S]".into());
        }
        let starts: Vec<String> = starts.iter().map(|s| format!("(?:{s})")).collect();
        let special = digits_regex(&format!("(?x)^(?:{})", starts.join("|")))?;
        if international.is_empty() {
            international.push("[^\\s\\S]".into());
        }
        let international = digits_regex(&format!("(?x)^(?:{})", international.join("|")))?;
        let some_tail_fits = digits_regex(&format!("(?x)^[0-9]*(?:{})$", general.join("|")))?;
        Some(Plain {
            code: code.to_string(),
            plan,
            special,
            international,
            some_tail_fits,
            rewrites: regions
                .iter()
                .any(|meta| meta.national_prefix_transform_rule().is_some()),
        })
    }

    /// The digits of a plainly written value (digits, spaces, `()-.` and a leading `+`).
    fn digits<'b>(text: &str, buffer: &'b mut [u8; 24]) -> Option<&'b str> {
        let mut count = 0;
        for (i, byte) in text.bytes().enumerate() {
            match byte {
                b'0'..=b'9' => {
                    *buffer.get_mut(count)? = byte;
                    count += 1;
                }
                b' ' | b'(' | b')' | b'-' | b'.' => {}
                b'+' if i == 0 => {}
                _ => return None,
            }
        }
        std::str::from_utf8(buffer.get(..count)?).ok()
    }

    /// Whether the library surely finds no number in `text` (see the type's comment).
    fn surely_none(&self, text: &str) -> bool {
        let mut buffer = [0u8; 24];
        let Some(digits) = Self::digits(text, &mut buffer) else {
            return false;
        };
        // A space could part two numbers (see `first_number`); `00` is tried as `+`.
        !self.rewrites
            && !text.starts_with('+')
            && !text.bytes().any(|b| b == b' ')
            && !digits.starts_with("00")
            && !digits.starts_with(self.code.as_str())
            && !self.international.is_match(digits)
            && !self.some_tail_fits.is_match(digits)
    }

    fn read(&self, text: &str) -> Option<String> {
        let mut buffer = [0u8; 24];
        let digits = Self::digits(text, &mut buffer)?;
        // `00` is read as `+` (see `PhoneStep::number`).
        let international = if text.starts_with('+') {
            Some(digits)
        } else {
            digits.strip_prefix("00")
        };
        let national = match international {
            Some(digits) if self.special.is_match(digits) => return None,
            Some(digits) => digits.strip_prefix(self.code.as_str())?,
            // The library may read these as a code and a number: its business.
            None if digits.starts_with(self.code.as_str()) => return None,
            None => digits,
        };
        if self.special.is_match(national) || !self.plan.is_match(national) {
            return None;
        }
        let mut out = String::with_capacity(1 + self.code.len() + national.len());
        out.push('+');
        out.push_str(&self.code);
        out.push_str(national);
        Some(out)
    }
}

/// Fewer digits than this after a number are not a second number (the shortest national
/// numbers in libphonenumber's metadata have 4 to 7 digits; 7 keeps stray digits out).
const MIN_DIGITS_OF_A_NUMBER: usize = 7;

/// What separates numbers in one cell. A comma is one too: libphonenumber reads
/// `300 123 4567, 12` as extension 12, but in a spreadsheet it lists numbers.
fn is_list_separator(c: char) -> bool {
    matches!(c, '/' | '\\' | ';' | ',' | '|' | '\n' | '\r')
}

/// The region a country calling code (`+57`, `57`, `0057`) stands for: its main country.
fn region_of_code(text: &str) -> Result<(u16, country::Id), String> {
    let digits = text.trim();
    let digits = digits
        .strip_prefix('+')
        .or_else(|| digits.strip_prefix("00"))
        .unwrap_or(digits);
    let refused = || format!("phone: country_code {text:?} is not a country calling code");
    let code: u16 = digits.parse().map_err(|_| refused())?;
    // The main country comes first (`+1` → US); non-geographic codes (+800) have none.
    let main = DATABASE
        .by_code(&code)
        .and_then(|regions| regions.into_iter().next())
        .ok_or_else(refused)?;
    let id = main.id().parse().map_err(|_| refused())?;
    Ok((code, id))
}

/// A region by its ISO 3166 code (`CO`, `co`), with its country calling code.
fn region_by_name(text: &str) -> Result<(u16, country::Id), String> {
    let name = text.trim().to_ascii_uppercase();
    let refused = || format!("phone: region {text:?} is not a region code such as CO or MX");
    let id: country::Id = name.parse().map_err(|_| refused())?;
    let meta = DATABASE.by_id(id.as_ref()).ok_or_else(refused)?;
    Ok((meta.country_code(), id))
}

/// A pattern of the metadata, matched only against ASCII digits (a national number, the
/// digits of a plain value): compiled without Unicode, where `\d` is 0-9 and not the
/// 760 ranges of every script's digits, which made each compile cost milliseconds at
/// start-up. A pattern that needs Unicode (none is known) is compiled with it.
fn digits_regex(pattern: &str) -> Option<Regex> {
    regex::RegexBuilder::new(pattern)
        .unicode(false)
        .build()
        .or_else(|_| Regex::new(pattern))
        .ok()
}

/// The numbering plan of a country calling code: the national numbers of every region
/// that shares it, as one anchored pattern. Built once per code and kept (numbers of
/// other countries than the mapping's come up now and then, not per row).
fn plan(code: u16) -> Option<Arc<Regex>> {
    static PLANS: LazyLock<Mutex<HashMap<u16, Option<Arc<Regex>>>>> =
        LazyLock::new(Default::default);
    let mut plans = PLANS.lock().unwrap_or_else(PoisonError::into_inner);
    plans
        .entry(code)
        .or_insert_with(|| digits_regex(&plan_pattern(code)?).map(Arc::new))
        .clone()
}

/// The text of `plan`'s pattern for `code` (its tests compile it with Unicode too).
fn plan_pattern(code: u16) -> Option<String> {
    let regions = DATABASE.by_code(&code)?;
    let patterns: Vec<String> = regions
        .iter()
        .map(|meta| {
            format!(
                "(?:{})",
                meta.descriptors().general().national_number().as_str()
            )
        })
        .collect();
    // The metadata's patterns are written with white space for layout, as the library
    // itself reads them.
    Some(format!("(?x)^(?:{})$", patterns.join("|")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(yaml: &str) -> PhoneStep {
        let spec: PhoneSpec = serde_saphyr::from_str(yaml).unwrap();
        PhoneStep::compile(&spec).unwrap()
    }

    fn number(text: &str) -> Reading {
        Reading::Number(text.into())
    }

    #[test]
    fn a_colombian_number_is_written_in_e164_however_it_is_typed() {
        let co = step("country_code: \"+57\"");
        for typed in [
            "301 555 0101",
            "3015550101",
            "+57 (301) 555-0101",
            "57 301 555 0101",
            "0057 301 555 0101",
            "00 57 301-555-0101",
            "+57-301-555-0101",
            "+57301-555-0101",
            "  301.555.0101 ",
        ] {
            assert_eq!(co.read(typed), number("+573015550101"), "{typed:?}");
        }
        assert_eq!(co.read("(601) 555 0101"), number("+576015550101"));
    }

    #[test]
    fn an_extension_is_dropped_or_kept_apart_never_merged() {
        let dropped = step("country_code: \"+57\"");
        let kept = step("{country_code: \"+57\", extension: keep}");
        for typed in [
            "300-123-4567 ext 12",
            "300 123 4567 Ext. 12",
            "3001234567 x12",
            "300 123 4567 extensión 12",
            "300 123 4567 anexo 12",
        ] {
            assert_eq!(dropped.read(typed), number("+573001234567"), "{typed:?}");
            assert_eq!(
                kept.read(typed),
                number("+573001234567;ext=12"),
                "{typed:?}"
            );
        }
        assert_eq!(kept.read("300 123 4567"), number("+573001234567"));
    }

    #[test]
    fn of_two_numbers_in_a_cell_the_first_is_taken() {
        let co = step("country_code: \"+57\"");
        for typed in [
            "301 555 0101 / 310 222 3333",
            "301 555 0101, 310 222 3333",
            "3015550101;3102223333",
            "301 555 0101\n310 222 3333",
            "3015550101 3102223333",
            "301 555 0101 o 310 222 3333",
            "301 555 0101 y 310 222 3333",
            "301 555 0101 | 310 222 3333",
            "301 555 0101 (casa)",
        ] {
            assert_eq!(co.read(typed), number("+573015550101"), "{typed:?}");
        }
    }

    #[test]
    fn a_number_the_plan_has_no_room_for_is_refused_not_prefixed() {
        let co = step("country_code: \"+57\"");
        for typed in [
            "0300123456",
            "300123456",
            "2123456789",
            "3015550101 2",
            "12",
        ] {
            assert_eq!(
                co.read(typed),
                Reading::NotANumber(format!("not a phone number for CO: {typed:?}")),
                "{typed:?}"
            );
        }
        // The shortcuts answer the commonest values without the library's parser.
        let plain = co.plain.as_ref().unwrap();
        assert_eq!(
            plain.read("+57 300 555 0001").as_deref(),
            Some("+573005550001")
        );
        assert!(plain.surely_none("06000003") && plain.surely_none("0300123456"));
        // The national trunk prefix is the library's business: 0 before a full number goes.
        assert_eq!(co.read("0 601 555 0101"), number("+576015550101"));
    }

    #[test]
    fn text_with_no_number_is_an_error_or_kept_as_the_mapping_says() {
        let co = step("country_code: \"+57\"");
        assert_eq!(
            co.read("abc"),
            Reading::NotANumber("not a phone number for CO: \"abc\"".into())
        );
        assert!(!co.keeps_invalid());
        let keep = step("{region: CO, on_invalid: keep}");
        assert!(keep.keeps_invalid());
        assert!(matches!(keep.read("abc"), Reading::NotANumber(_)));
    }

    #[test]
    fn empty_cells_stay_empty() {
        let co = step("country_code: \"+57\"");
        assert_eq!(co.read(""), Reading::Blank);
        assert_eq!(co.read("  "), Reading::Blank);
    }

    #[test]
    fn numbers_of_other_countries_keep_their_own_code() {
        let co = step("country_code: \"+57\"");
        assert_eq!(co.read("+1 212 555 0100"), number("+12125550100"));
        assert_eq!(co.read("0034 912 345 678"), number("+34912345678"));
        assert_eq!(co.read("+52 55 1234 5678"), number("+525512345678"));
    }

    /// The patched metadata load (vendor/phonenumber/PATCHED.md) no longer checks the
    /// patterns when it loads; this is that check, with the options they are compiled with
    /// when first used (where a pattern that did not compile would panic).
    #[test]
    fn every_pattern_of_the_metadata_compiles() {
        fn descriptors(meta: &phonenumber::Metadata) -> Vec<&phonenumber::metadata::Descriptor> {
            let d = meta.descriptors();
            let optional = [
                d.fixed_line(),
                d.mobile(),
                d.toll_free(),
                d.premium_rate(),
                d.shared_cost(),
                d.personal_number(),
                d.voip(),
                d.pager(),
                d.uan(),
                d.emergency(),
                d.voicemail(),
                d.short_code(),
                d.standard_rate(),
                d.carrier(),
                d.no_international(),
            ];
            std::iter::once(d.general())
                .chain(optional.into_iter().flatten())
                .collect()
        }
        let mut patterns: Vec<(String, &str)> = Vec::new();
        for meta in DATABASE.iter() {
            let id = meta.id();
            let singles = [
                meta.international_prefix(),
                meta.national_prefix_for_parsing(),
                meta.leading_digits(),
            ];
            for regex in singles.into_iter().flatten() {
                patterns.push((format!("{id}: prefix or leading digits"), regex.as_str()));
            }
            for desc in descriptors(meta) {
                patterns.push((
                    format!("{id}: number type"),
                    desc.national_number().as_str(),
                ));
            }
            for format in meta.formats().iter().chain(meta.international_formats()) {
                patterns.push((format!("{id}: format"), format.pattern().as_str()));
                for leading in format.leading_digits() {
                    patterns.push((format!("{id}: format's leading digits"), leading.as_str()));
                }
            }
        }
        assert!(patterns.len() > 4000, "only {} patterns", patterns.len());
        for (whose, pattern) in &patterns {
            if let Err(e) = regex::RegexBuilder::new(pattern)
                .ignore_whitespace(true)
                .build()
            {
                panic!("{whose}: {pattern:?} does not compile: {e}");
            }
        }
    }

    /// What the patch changed: a pattern is not parsed when the metadata loads (here, one
    /// that would not compile loads). If an update of the crate loses the patch, this
    /// fails, and every command starts ~90 ms slower again.
    #[test]
    fn the_metadata_loads_without_parsing_its_patterns() {
        let xml = r#"<phoneNumberMetadata><territories>
            <territory id="XX" countryCode="999">
              <generalDesc><nationalNumberPattern>[0-9</nationalNumberPattern></generalDesc>
            </territory>
        </territories></phoneNumberMetadata>"#;
        let loaded = phonenumber::metadata::Database::parse(xml);
        assert!(loaded.is_ok(), "{:?}", loaded.err());
    }

    #[test]
    fn every_plan_compiled_without_unicode_reads_digits_as_with_it() {
        let (mut checked, mut unicode_took) = (0, 0);
        for meta in DATABASE.iter() {
            let code = meta.country_code();
            let ascii = plan(code).expect("a plan for every code the metadata has");
            let unicode = Regex::new(&plan_pattern(code).unwrap()).unwrap();
            let d = meta.descriptors();
            let examples = [
                d.fixed_line(),
                d.mobile(),
                d.toll_free(),
                d.premium_rate(),
                d.voip(),
            ]
            .into_iter()
            .flatten()
            .filter_map(|desc| desc.example());
            for example in examples {
                // The example, and near misses: a digit less, a digit more.
                let shorter = &example[..example.len() - 1];
                for digits in [
                    example.to_string(),
                    shorter.to_string(),
                    format!("{example}0"),
                ] {
                    assert_eq!(
                        ascii.is_match(&digits),
                        unicode.is_match(&digits),
                        "+{code}: {digits}"
                    );
                    checked += 1;
                }
                // Compiled without Unicode (no fallback was needed): an Arabic-Indic
                // digit is no digit of a national number, where Unicode's `\d` took it.
                let foreign = format!("{shorter}\u{0663}");
                assert!(!ascii.is_match(&foreign), "+{code}: {foreign}");
                unicode_took += usize::from(unicode.is_match(&foreign));
            }
        }
        assert!(checked > 1000, "only {checked} numbers were checked");
        assert!(
            unicode_took > 100,
            "Unicode's \\d took {unicode_took} foreign digits"
        );
    }

    #[test]
    fn the_region_is_named_by_code_or_by_iso_code() {
        assert_eq!(
            step("region: mx").read("55 1234 5678"),
            number("+525512345678")
        );
        assert_eq!(
            step("country_code: \"52\"").read("55 1234 5678"),
            number("+525512345678")
        );
        let us = step("{country_code: \"+1\", region: CA}");
        assert_eq!(us.read("(416) 555-0100"), number("+14165550100"));
        let compile = |yaml: &str| {
            PhoneStep::compile(&serde_saphyr::from_str::<PhoneSpec>(yaml).unwrap()).unwrap_err()
        };
        assert_eq!(
            compile("country_code: \"+999\""),
            "phone: country_code \"+999\" is not a country calling code"
        );
        assert_eq!(
            compile("region: XX"),
            "phone: region \"XX\" is not a region code such as CO or MX"
        );
        assert_eq!(
            compile("{country_code: \"+57\", region: MX}"),
            "phone: region MX has the country code +52, not +57; give one of them"
        );
    }

    #[test]
    fn without_a_region_only_international_numbers_are_read() {
        let any = step("{}");
        assert_eq!(any.read("+57 301 555 0101"), number("+573015550101"));
        assert!(matches!(any.read("301 555 0101"), Reading::NotANumber(m) if m.contains("with +")));
    }

    proptest::proptest! {
        /// The shortcut for plainly written numbers answers as the library does, in
        /// regions with different prefixes (CO: carrier codes after 0; MX: 01 and 044; US:
        /// 011 and 1; AR: a prefix rewrite; IT: national numbers starting with 0; GB, DE,
        /// BR), whenever it answers at all.
        #[test]
        fn the_shortcut_agrees_with_the_library(
            region in proptest::sample::select(vec!["CO", "MX", "US", "AR", "IT", "GB", "DE", "BR", "ES", "PE"]),
            prefix in proptest::sample::select(vec!["", "+", "00", "0", "0 ", "+0", "1", "01", "011 ", "+ "]),
            with_code in proptest::bool::ANY,
            digits in "[0-9]{6,12}",
            cuts in proptest::collection::vec((0usize..12, proptest::sample::select(vec![" ", "-", ".", "(", ")", ") "])), 0..4),
        ) {
            let phone = step(&format!("region: {region}"));
            let code = phone.plain.as_ref().map(|p| p.code.clone()).unwrap_or_default();
            let mut body = digits.clone();
            for (at, separator) in cuts.iter().rev() {
                let at = (*at).min(body.len());
                body.insert_str(at, separator);
            }
            let text = format!("{prefix}{}{body}", if with_code { code.as_str() } else { "" });
            if let Some(quick) = phone.plain.as_ref().and_then(|p| p.read(text.trim())) {
                proptest::prop_assert_eq!(
                    Reading::Number(quick),
                    phone.read_with_library(text.trim()),
                    "{}", text
                );
            }
            if phone.plain.as_ref().is_some_and(|p| p.surely_none(text.trim())) {
                let library = phone.read_with_library(text.trim());
                proptest::prop_assert!(matches!(library, Reading::NotANumber(_)), "{}: {:?}", text, library);
            }
        }

        /// Whatever a cell holds, the step answers (the library is never allowed to panic a
        /// mapping thread), and a number it writes is E.164.
        #[test]
        fn any_text_gives_e164_or_a_refusal(text in "[0-9 +()./,;x#a-zA-Z-]{0,30}") {
            match step("country_code: \"+57\"").read(&text) {
                Reading::Number(n) => proptest::prop_assert!(
                    n.starts_with('+') && n[1..].bytes().all(|b| b.is_ascii_digit()) && n.len() <= 16,
                    "{n}"
                ),
                Reading::Blank => proptest::prop_assert!(text.trim().is_empty()),
                Reading::NotANumber(_) => {}
            }
        }
    }
}
