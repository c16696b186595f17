//! Files that are not what they say, and cells a PHP back end must never see: a clear
//! error naming the file (or the row and column), never a panic, never a silent skip.

use crate::support::*;

fn validate(work: &Work, input: &str) -> Run {
    work.run(["validate", input, "--mapping", "tickets.yaml"])
}

#[test]
fn a_file_whose_content_is_not_what_its_name_says_is_named_as_what_it_is() {
    let work = Work::with_sample();
    work.write(
        "report.csv",
        "%PDF-1.4\n%\u{e2}\u{e3}\n1 0 obj << >>\nendobj\n",
    );
    work.copy("samples/tickets.xlsx", "workbook.csv");
    work.copy("samples/tickets.csv", "text.xlsx");
    let cases = [
        ("report.csv", "this looks like a PDF file, not CSV text"),
        (
            "workbook.csv",
            "give it its real extension (.xlsx, .ods, .xls)",
        ),
        ("text.xlsx", "this looks like text, not an .xlsx workbook"),
    ];
    for (input, says) in cases {
        let out = validate(&work, input);
        assert_eq!(out.code(), 1, "{input}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(input) && stderr.contains(says),
            "{input}: {stderr}"
        );
    }
}

#[test]
fn a_nul_byte_in_a_cell_makes_its_row_invalid_naming_the_column() {
    let work = Work::with_sample();
    tickets_csv(&work, "three.csv", 1..=3);
    let text = work.read("three.csv");
    let broken = text.replacen("T-000002,", "T-000002,\0", 1);
    assert_ne!(broken, text);
    work.write("three.csv", &broken);
    let out = validate(&work, "three.csv");
    out.assert_code(2);
    let results = read_results(&work.path("three.results.csv"));
    assert_eq!(count(&results, "valid"), 2);
    let bad = results.iter().find(|r| r.status == "invalid").unwrap();
    assert!(
        bad.message.contains("Fecha de radicación") && bad.message.contains("NUL byte"),
        "{bad:?}"
    );
}

/// What the binary may hold for data (RLIMIT_DATA) while it reads a hostile file: what a
/// run over the samples needs, with room to spare, and far less than the files below
/// would make it hold if they were read as they are.
const MEMORY_MB: u64 = 150;

fn capped_validate(work: &Work, input: &str, extra: &[&str]) -> Run {
    work.capped_bin(MEMORY_MB)
        .args(["validate", input, "--mapping", "tickets.yaml"])
        .args(extra)
        .run()
}

#[test]
fn a_cell_past_max_cell_bytes_is_a_row_error_read_past_without_holding_it() {
    let work = Work::with_sample();
    tickets_csv(&work, "three.csv", 1..=3);
    // Ticket 2's description: 200 MB inside one quoted field with line breaks in it.
    let text = work.read("three.csv");
    let at = text.find("T-000002,").unwrap();
    let start = at + text[at..].find(",\"").unwrap() + 2;
    let mut file = std::io::BufWriter::new(std::fs::File::create(work.path("three.csv")).unwrap());
    use std::io::Write;
    file.write_all(&text.as_bytes()[..start]).unwrap();
    let line = format!("{}\n", "x".repeat(999));
    for _ in 0..200_000 {
        file.write_all(line.as_bytes()).unwrap();
    }
    file.write_all(&text.as_bytes()[start..]).unwrap();
    file.flush().unwrap();
    drop(file);

    let out = capped_validate(&work, "three.csv", &["--max-cell-bytes", "1MiB"]);
    out.assert_code(2);
    let results = read_results(&work.path("three.results.csv"));
    assert_eq!(count(&results, "valid"), 2, "{results:?}");
    let bad = results.iter().find(|r| r.status == "invalid").unwrap();
    assert!(bad.message.contains("holds more than 1 MiB"), "{bad:?}");
    // The row after it keeps its own line number, past the 200,000 lines of the cell.
    assert!(
        results
            .iter()
            .any(|r| r.row > 200_000 && r.status == "valid"),
        "{results:?}"
    );

    // Imported, the other two are created; the one that was not read is not sent.
    let sim = Sim::strict();
    let out = work
        .capped_bin(MEMORY_MB)
        .args([
            "import",
            "three.csv",
            "--mapping",
            "tickets.yaml",
            "--force",
        ])
        .args([
            "--max-cell-bytes",
            "1MiB",
            "--server",
            &sim.url(),
            "--rate",
            "50",
        ])
        .env("WOLKVOX_TOKEN", TOKEN)
        .run();
    out.assert_code(2);
    let stored = sim.stored_per_ticket();
    assert_eq!(stored.keys().collect::<Vec<_>>(), [&ticket(1), &ticket(3)]);
}

#[test]
fn a_row_of_more_fields_than_any_sheet_has_is_a_row_error() {
    let work = Work::with_sample();
    tickets_csv(&work, "three.csv", 1..=3);
    let text = work.read("three.csv");
    let wide = format!("T-000002{}\n", ",data".repeat(2_000_000));
    let lines: Vec<&str> = text.lines().collect();
    let broken: String = text.replace(
        lines.iter().find(|l| l.starts_with("T-000002")).unwrap(),
        wide.trim_end(),
    );
    work.write("three.csv", &broken);
    let out = capped_validate(&work, "three.csv", &[]);
    out.assert_code(2);
    let results = read_results(&work.path("three.results.csv"));
    assert_eq!(count(&results, "valid"), 2, "{results:?}");
    let bad = results.iter().find(|r| r.status == "invalid").unwrap();
    assert!(bad.message.contains("more than 65536 fields"), "{bad:?}");
}

#[test]
fn workbooks_that_inflate_past_any_real_export_are_refused_before_they_are_read() {
    let work = Work::with_sample();
    work.copy("tests/fixtures/hostile/strings-bomb.xlsx", "strings.xlsx");
    work.copy("tests/fixtures/hostile/cell-bomb.xlsx", "cell.xlsx");
    let truncated = std::fs::read(repo("samples/tickets.xlsx")).unwrap();
    std::fs::write(work.path("cut.xlsx"), &truncated[..truncated.len() / 2]).unwrap();
    let cases = [
        (
            "strings.xlsx",
            "xl/sharedStrings.xml in the workbook inflates to more than 256 MiB",
        ),
        (
            "cell.xlsx",
            "sheet1.xml in the workbook holds a cell or tag of more than 16 MiB",
        ),
        ("cut.xlsx", "its zip archive is truncated or damaged"),
    ];
    for (input, says) in cases {
        let out = capped_validate(&work, input, &[]);
        assert_eq!(out.code(), 1, "{input}: {}", out.stderr());
        let text = out.stderr();
        assert!(
            text.contains(input) && text.contains(says),
            "{input}: {text}"
        );
    }
    // The check is no refusal of workbooks as such: the sample still reads.
    let out = capped_validate(&work, "tickets.xlsx", &[]);
    out.assert_code(2);
}

#[test]
fn a_mapping_whose_aliases_expand_exponentially_is_refused_in_our_words() {
    let work = Work::with_sample();
    let mut laughs = String::from("key:\n  - &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for (from, to) in "abcdefgh".chars().zip("bcdefghi".chars()) {
        laughs += &format!("  - &{to} [{}]\n", vec![format!("*{from}"); 9].join(", "));
    }
    let mapping = work
        .read("tickets.yaml")
        .replace("key: [Ticket]\n", &laughs);
    work.write("laughs.yaml", &mapping);
    let out = work
        .capped_bin(MEMORY_MB)
        .args(["validate", "tickets.csv", "--mapping", "laughs.yaml"])
        .run();
    out.assert_code(1);
    let text = out.stderr();
    assert!(
        text.contains("laughs.yaml") && text.contains("anchors and aliases are expanded"),
        "{text}"
    );
}

#[test]
fn a_quote_that_never_closes_is_named_as_a_cause_and_the_errors_file_stays_aligned() {
    let work = Work::with_sample();
    tickets_csv(&work, "five.csv", 1..=5);
    let text = work.read("five.csv");
    // A quote opens ticket 2's customer and closes only at ticket 3's description, so
    // the record runs on into ticket 3's first line.
    let at = text.find("T-000002,").unwrap();
    let (before, after) = text.split_at(at);
    let broken = format!("{before}{}", after.replacen(",Camila", ",\"Camila", 1));
    assert_ne!(broken, text);
    work.write("five.csv", &broken);
    let out = validate(&work, "five.csv");
    out.assert_code(2);
    let results = read_results(&work.path("five.results.csv"));
    let bad = results.iter().find(|r| r.status == "invalid").unwrap();
    assert!(bad.message.contains("a quote that never closes"), "{bad:?}");
    // In the errors file, `_row` and `_error` stay under their headers: it can be fixed
    // in a spreadsheet and fed back.
    let mut errors = csv::Reader::from_path(work.path("five.errors.csv")).unwrap();
    let headers = errors.headers().unwrap().clone();
    let at = |name: &str| headers.iter().position(|h| h == name).unwrap();
    for record in errors.records() {
        let record = record.unwrap();
        assert_eq!(record.len(), headers.len(), "{record:?}");
        assert!(record[at("_row")].parse::<u64>().is_ok(), "{record:?}");
        assert!(!record[at("_error")].is_empty(), "{record:?}");
    }
}
