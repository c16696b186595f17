//! The one place where a workbook cell becomes text. Every rule here has a test.

use calamine::{Data, ExcelDateTime};

/// The text of a cell, or the spreadsheet error it holds.
///
/// - text stays text byte for byte (leading zeros, `+57…`, 16+ digit numbers typed as text);
/// - whole-number floats print without `.0`; other floats in shortest round-trip form;
/// - in XLSX, a whole number under a format of only zeros (`0000000000`) is padded as
///   Excel shows it (`0300123456`; `zero_padded`, applied by the XLSX reader);
/// - dates → `2024-03-07`, datetimes → `2024-03-07T14:05:00`, times → `14:05:00`;
/// - booleans → `true`/`false`; formulas arrive as their cached value.
pub fn cell_text(cell: &Data) -> Result<String, String> {
    Ok(match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => float_text(*f),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(dt) => datetime_text(dt),
        Data::DateTimeIso(s) => s.clone(),
        Data::DurationIso(s) => s.clone(),
        Data::Error(e) => return Err(format!("{e}")),
    })
}

/// The number of digits a number format pads whole numbers to, when it does nothing else:
/// `0000000000` (Excel shows 300123456 as `0300123456`). Any other format (decimals,
/// thousands separators, literals, several sections) is `None`: those cells keep the
/// plain number.
pub fn zero_pad_width(format_code: &str) -> Option<usize> {
    let code = format_code.trim();
    (!code.is_empty() && code.bytes().all(|b| b == b'0')).then_some(code.len())
}

/// A number cell as a zero-padding format shows it (`-0042` for -42 in `0000`), as text,
/// so it reaches the mapping as Excel shows it. A number with a fraction is left alone:
/// Excel would show it rounded, and rounding a cell would lose what it holds.
pub fn zero_padded(cell: Data, width: usize) -> Data {
    let whole = match cell {
        Data::Int(i) => i,
        Data::Float(f)
            if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 =>
        {
            f as i64
        }
        other => return other,
    };
    let sign = if whole < 0 { "-" } else { "" };
    Data::String(format!("{sign}{:0width$}", whole.unsigned_abs()))
}

fn float_text(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
        format!("{}", f as i64)
    } else {
        // Rust's Display is the shortest text that reads back as the same float.
        format!("{f}")
    }
}

fn datetime_text(dt: &ExcelDateTime) -> String {
    if dt.is_duration() {
        let total_seconds = (dt.as_f64() * 86_400.0).round() as i64;
        let (h, rest) = (total_seconds / 3600, total_seconds % 3600);
        return format!("{h:02}:{:02}:{:02}", rest / 60, rest % 60);
    }
    let value = dt.as_f64();
    let (y, mo, d, h, mi, s, ms) = dt.to_ymd_hms_milli();
    // Round to the nearest second: Excel stores times as fractions of a day.
    let (h, mi, s) = if ms >= 500 {
        carry_second(h, mi, s)
    } else {
        (h, mi, s)
    };
    if (0.0..1.0).contains(&value) {
        format!("{h:02}:{mi:02}:{s:02}")
    } else if h == 0 && mi == 0 && s == 0 {
        format!("{y:04}-{mo:02}-{d:02}")
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
    }
}

fn carry_second(h: u8, mi: u8, s: u8) -> (u8, u8, u8) {
    if s < 59 {
        (h, mi, s + 1)
    } else if mi < 59 {
        (h, mi + 1, 0)
    } else if h < 23 {
        (h + 1, 0, 0)
    } else {
        (23, 59, 59)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{CellErrorType, ExcelDateTimeType};

    fn date(value: f64, is_1904: bool) -> Data {
        Data::DateTime(ExcelDateTime::new(
            value,
            ExcelDateTimeType::DateTime,
            is_1904,
        ))
    }

    #[test]
    fn text_cells_are_kept_byte_for_byte() {
        for text in [
            "0057 301 555 0101",
            "+573015550101",
            "1234567890123456789",
            "  a ",
        ] {
            assert_eq!(cell_text(&Data::String(text.into())).unwrap(), text);
        }
    }

    #[test]
    fn whole_floats_have_no_trailing_zero() {
        assert_eq!(cell_text(&Data::Float(3015550101.0)).unwrap(), "3015550101");
        assert_eq!(cell_text(&Data::Float(-2.0)).unwrap(), "-2");
    }

    #[test]
    fn other_floats_are_shortest_round_trip() {
        assert_eq!(
            cell_text(&Data::Float(0.1 + 0.2)).unwrap(),
            "0.30000000000000004"
        );
        assert_eq!(cell_text(&Data::Float(0.3)).unwrap(), "0.3");
        assert_eq!(cell_text(&Data::Float(1234.5)).unwrap(), "1234.5");
    }

    #[test]
    fn dates_times_and_datetimes_are_iso_8601() {
        // 45358 = 2024-03-07 in the 1900 system.
        assert_eq!(cell_text(&date(45358.0, false)).unwrap(), "2024-03-07");
        assert_eq!(
            cell_text(&date(45358.0 + (14.0 * 60.0 + 5.0) / 1440.0, false)).unwrap(),
            "2024-03-07T14:05:00"
        );
        assert_eq!(
            cell_text(&date((14.0 * 60.0 + 5.0) / 1440.0, false)).unwrap(),
            "14:05:00"
        );
    }

    #[test]
    fn the_1904_date_system_is_honoured() {
        // The same day is 1462 days smaller in the 1904 system.
        assert_eq!(
            cell_text(&date(45358.0 - 1462.0, true)).unwrap(),
            "2024-03-07"
        );
    }

    #[test]
    fn only_formats_of_zeros_pad() {
        assert_eq!(zero_pad_width("0000000000"), Some(10));
        assert_eq!(zero_pad_width("0"), Some(1));
        for other in [
            "General",
            "0.00",
            "#,##0",
            "00000;-00000",
            "\"N\"000",
            "@",
            "",
        ] {
            assert_eq!(zero_pad_width(other), None, "{other}");
        }
    }

    #[test]
    fn zero_padded_numbers_read_as_excel_shows_them() {
        let text = |cell: Data, width| cell_text(&zero_padded(cell, width)).unwrap();
        assert_eq!(text(Data::Float(300123456.0), 10), "0300123456");
        assert_eq!(text(Data::Int(42), 5), "00042");
        assert_eq!(text(Data::Float(-42.0), 4), "-0042");
        // Wider than the format: all the digits, as Excel shows them.
        assert_eq!(text(Data::Float(3015550101.0), 5), "3015550101");
        // A fraction, text and dates are left as they are.
        assert_eq!(text(Data::Float(12.5), 4), "12.5");
        assert_eq!(text(Data::String("0057".into()), 10), "0057");
        assert_eq!(text(date(45358.0, false), 10), "2024-03-07");
    }

    #[test]
    fn booleans_and_errors() {
        assert_eq!(cell_text(&Data::Bool(true)).unwrap(), "true");
        assert_eq!(
            cell_text(&Data::Error(CellErrorType::NA)).unwrap_err(),
            "#N/A"
        );
        assert_eq!(
            cell_text(&Data::Error(CellErrorType::Div0)).unwrap_err(),
            "#DIV/0!"
        );
    }
}
