//! Files that are not what they say, and cells a PHP back end must never see: a clear
//! error naming the file (or the row and column), never a panic, never a silent skip.

use crate::support::*;

fn validate(work: &Work, input: &str) -> std::process::Output {
    work.bin()
        .args(["validate", input, "--mapping", "tickets.yaml"])
        .output()
        .unwrap()
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
        assert_eq!(code(&out), 1, "{input}");
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
    assert_eq!(code(&out), 2, "{}", String::from_utf8_lossy(&out.stderr));
    let results = read_results(&work.path("three.results.csv"));
    assert_eq!(count(&results, "valid"), 2);
    let bad = results.iter().find(|r| r.status == "invalid").unwrap();
    assert!(
        bad.message.contains("Fecha de radicación") && bad.message.contains("NUL byte"),
        "{bad:?}"
    );
}
