//! What people and schedulers see: the workbook, logs, terminal hygiene, completions.

use calamine::{Reader, open_workbook_auto};

use crate::support::*;

#[test]
fn an_xlsx_report_has_a_summary_and_every_result_row() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    let out = work
        .import("tickets.csv", &sim, "run")
        .args(["--report", "results.xlsx"])
        .run();
    out.assert_code(2);
    let mut book = open_workbook_auto(work.path("results.xlsx")).unwrap();
    assert_eq!(book.sheet_names(), ["Summary", "Results"]);
    let summary = book.worksheet_range("Summary").unwrap();
    let pairs: Vec<(String, String)> = summary
        .rows()
        .map(|r| (r[0].to_string(), r[1].to_string()))
        .collect();
    assert!(
        pairs.contains(&("created".into(), "232".into())),
        "{pairs:?}"
    );
    let results = book.worksheet_range("Results").unwrap();
    assert_eq!(results.height(), 241);
    assert_eq!(results.get((0, 2)).unwrap().to_string(), "status");
    // The CSV results, written as the run went, are still there beside the input.
    assert_eq!(read_results(&work.path("tickets.results.csv")).len(), 240);
}

#[test]
fn json_logs_make_stderr_machine_readable() {
    let work = Work::with_sample();
    let out = work.run([
        "--log-format",
        "json",
        "validate",
        "tickets.csv",
        "--mapping",
        "tickets.yaml",
    ]);
    assert_eq!(out.code(), 2);
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let finished = lines
        .iter()
        .find(|l| l["fields"]["message"] == "Run finished.")
        .expect("a final summary line");
    // The figures are an object a log pipeline can query, not a string of JSON.
    let summary = &finished["fields"]["summary"];
    assert!(summary.is_object(), "{finished}");
    assert_eq!(summary["valid"], 232);
    assert_eq!(summary["exit_code"], 2);
    assert_eq!(finished["level"], "INFO");
    assert!(
        finished["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert!(out.stdout.is_empty(), "stdout carries data only");
}

#[test]
fn no_terminal_escapes_reach_a_non_terminal_stderr() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    let out = work
        .bin()
        .env("WOLKVOX_TOKEN", TOKEN)
        .args([
            "import",
            "tickets.csv",
            "--mapping",
            "tickets.yaml",
            "-v",
            "--rate",
            "0",
        ])
        .args(["--server", &sim.url()])
        .run();
    assert_eq!(out.code(), 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("created") && stderr.contains("next:"),
        "{stderr}"
    );
    assert!(!out.stderr.contains(&0x1b), "ANSI escape in: {stderr}");
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = bin().args(["completions", shell]).run();
        assert_eq!(out.code(), 0, "{shell}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("wolkvox-import"),
            "{shell}"
        );
    }
}

#[cfg(unix)]
#[test]
fn a_token_file_readable_by_others_draws_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let sim = Sim::strict();
    let work = Work::with_sample();
    let path = work.write("token.txt", TOKEN);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = work
        .bin()
        .args([
            "import",
            "tickets.csv",
            "--mapping",
            "tickets.yaml",
            "--rate",
            "0",
            "--force",
        ])
        .args(["--report", "r2.csv", "--errors", "e2.csv"])
        .args(["--token-file", "token.txt", "--server", &sim.url()])
        .run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.code(), 2, "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
}
