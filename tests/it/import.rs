//! The end-to-end import: what the CRM stores, the results file, the exit codes.

use std::collections::BTreeSet;

use crate::support::*;

#[test]
fn the_sample_import_creates_every_valid_row_exactly_once_and_exits_2() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    let out = work.import("tickets.csv", &sim, "run").run();
    out.assert_code(2);

    let results = work.results("run");
    let data_rows = csv::Reader::from_path(work.path("tickets.csv"))
        .unwrap()
        .records()
        .count();
    assert_eq!(results.len(), data_rows, "one results line per data row");
    let created: BTreeSet<String> = results
        .iter()
        .filter(|r| r.status == "created")
        .map(|r| r.key.clone())
        .collect();
    assert_eq!(created.len(), count(&results, "created"));
    assert_eq!(count(&results, "invalid"), data_rows - created.len());

    // What the CRM stored is exactly the rows reported created, each once.
    let stored = sim.stored_per_ticket();
    assert_eq!(stored.keys().cloned().collect::<BTreeSet<_>>(), created);
    assert!(
        stored.values().all(|&n| n == 1),
        "a ticket was stored twice"
    );
    // Case ids in the results are the simulator's.
    let ids: BTreeSet<String> = sim.cases().into_iter().map(|c| c.id).collect();
    assert!(
        results
            .iter()
            .filter(|r| r.status == "created")
            .all(|r| ids.contains(&r.case_id))
    );
}

#[test]
fn stored_cases_carry_the_mapped_fields() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    work.import("tickets.csv", &sim, "run").run();
    let case = sim
        .cases()
        .into_iter()
        .find(|c| ticket_of(c) == "PQR-2024-000001")
        .expect("the first ticket was stored");
    let f = &case.fields;
    assert_eq!(f["operation"], "modulotest01");
    assert_eq!(f["case-type"], "Request"); // Petición, through the value map
    assert_eq!(f["contact"], "camila1@ejemplo.com.co");
    assert_eq!(f["owner"], "ADMIN_@modulotest01");
    assert_eq!(f["status"], "Abierto");
    assert_eq!(f["priority"], "Baja");
    assert_eq!(
        f["description"],
        "Reporta mala atención en la oficina del centro:\nesperó 2 horas y no fue atendido."
    );
    let form: serde_json::Value = serde_json::from_str(&f["form"]).unwrap();
    assert_eq!(form["Teléfono"], "+573005550001");
    assert_eq!(form["Fecha de radicación"], "2024-02-09");
    assert_eq!(form["Cliente"], "Camila Ordóñez");
    assert!(
        !f.contains_key("solution"),
        "an empty optional field is not sent"
    );
}

#[test]
fn invalid_rows_carry_the_line_a_text_editor_shows_and_the_column() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    work.import("tickets.csv", &sim, "run").run();
    let text = work.read("tickets.csv");
    let results = work.results("run");
    let by_row = |row: u64| results.iter().find(|r| r.row == row).unwrap().clone();

    // Ticket 30 has no e-mail; ticket 60 has a broken one; 90 has an unknown type.
    let r = by_row(line_of(&text, "PQR-2024-000030,"));
    assert_eq!(r.status, "invalid");
    assert!(
        r.message.contains("\"Correo\"") && r.message.contains("required"),
        "{}",
        r.message
    );
    let r = by_row(line_of(&text, "PQR-2024-000060,"));
    assert!(r.message.contains("not a valid e-mail"), "{}", r.message);
    let r = by_row(line_of(&text, "PQR-2024-000090,"));
    assert!(
        r.message.contains("Felicitación") && r.message.contains("Petición"),
        "{}",
        r.message
    );
    // A multi-line description before a row does not shift its number.
    let r = by_row(line_of(&text, "PQR-2024-000003,"));
    assert_eq!(
        (r.status.as_str(), r.key.as_str()),
        ("created", "PQR-2024-000003")
    );
}

#[test]
fn the_errors_file_keeps_the_original_cells_with_row_and_error() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    work.import("tickets.csv", &sim, "run").run();
    let bytes = std::fs::read(work.path("run.errors.csv")).unwrap();
    assert!(
        bytes.starts_with("\u{feff}".as_bytes()),
        "UTF-8 BOM for Excel"
    );
    let mut reader = csv::Reader::from_reader(&bytes[3..]);
    let headers = reader.headers().unwrap().clone();
    assert_eq!(headers.get(0), Some("Ticket"));
    assert_eq!(&headers[headers.len() - 2], "_row");
    assert_eq!(&headers[headers.len() - 1], "_error");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let results = work.results("run");
    assert_eq!(rows.len(), count(&results, "invalid"));
    // Byte-for-byte: the row of ticket 60 is the original record.
    let original: Vec<csv::StringRecord> = csv::Reader::from_path(work.path("tickets.csv"))
        .unwrap()
        .records()
        .map(Result::unwrap)
        .filter(|r| &r[0] == "PQR-2024-000060")
        .collect();
    let copied = rows.iter().find(|r| &r[0] == "PQR-2024-000060").unwrap();
    assert_eq!(
        copied.iter().take(14).collect::<Vec<_>>(),
        original[0].iter().collect::<Vec<_>>()
    );
}

#[test]
fn a_clean_file_exits_0() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    let text = work.read("tickets.csv");
    // The first 20 records are all valid in the sample.
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut writer = csv::Writer::from_path(work.path("clean.csv")).unwrap();
    writer.write_record(reader.headers().unwrap()).unwrap();
    for record in reader.records().take(20) {
        writer.write_record(&record.unwrap()).unwrap();
    }
    writer.flush().unwrap();
    let out = work.import("clean.csv", &sim, "run").arg("--json").run();
    out.assert_code(0);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["created"], 20);
    assert_eq!(summary["rows"], 20);
    assert_eq!(sim.cases().len(), 20);
}

#[test]
fn a_column_the_file_lacks_exits_1_before_any_request() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    let mapping = work
        .read("tickets.yaml")
        .replace("column: Correo", "column: Corrreo");
    work.write("tickets.yaml", &mapping);
    let out = work.import("tickets.csv", &sim, "run").run();
    assert_eq!(out.code(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"Corrreo\"") && stderr.contains("did you mean \"Correo\""),
        "{stderr}"
    );
    assert_eq!(
        sim.requests(),
        0,
        "nothing may be sent with a broken mapping"
    );
}

#[test]
fn a_wrong_token_stops_the_run_with_exit_3_after_few_requests() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    let out = work
        .import("tickets.csv", &sim, "run")
        .env("WOLKVOX_TOKEN", "not-the-token")
        .run();
    out.assert_code(3);
    assert!(sim.requests() < 10, "{} requests", sim.requests());
    assert!(sim.cases().is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PLEASE VALIDATE TOKEN"), "{stderr}");
    // Every row is still accounted for: not sent, so pending for the next run.
    let results = work.results("run");
    assert_eq!(count(&results, "created"), 0);
    assert!(count(&results, "pending") > 200);
}

/// With the token refused, fixing it comes first in the hints: the invalid rows, once
/// fixed, could not go before it is.
#[test]
fn a_refused_token_is_the_first_thing_the_summary_says_to_fix() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    let out = work
        .bin()
        .env("WOLKVOX_TOKEN", "not-the-token")
        .args(["import", "tickets.csv", "--mapping", "tickets.yaml"])
        .args(["--server", &sim.url()])
        .run();
    out.assert_code(3);
    let stderr = out.stderr();
    let hints: Vec<&str> = stderr
        .lines()
        .filter_map(|line| line.trim().strip_prefix("next: "))
        .collect();
    assert!(hints.len() >= 2, "{stderr}");
    assert!(hints[0].contains("fix the token first"), "{stderr}");
    assert!(
        hints[1..].iter().any(|h| h.contains("invalid rows")),
        "{stderr}"
    );
}

#[test]
fn a_token_revoked_mid_run_stops_it_and_the_rest_stays_pending() {
    let sim = Sim::start(wolkvox_import::simulator::Scenario {
        tokens: vec![TOKEN.into()],
        revoke_after: Some(5),
        ..Default::default()
    });
    let work = Work::with_sample();
    let out = work.import("tickets.csv", &sim, "run").run();
    assert_eq!(out.code(), 3);
    // The preflight's token-information call is the first of the 5.
    assert_eq!(sim.cases().len(), 4);
    let results = work.results("run");
    assert_eq!(count(&results, "created"), 4);
    assert_eq!(results.len(), 240);
}

#[test]
fn no_token_exits_1_and_says_how_to_give_one() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    let out = work
        .import("tickets.csv", &sim, "run")
        .env_remove("WOLKVOX_TOKEN")
        .run();
    assert_eq!(out.code(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("WOLKVOX_TOKEN") && stderr.contains("--token-file"),
        "{stderr}"
    );
    assert_eq!(sim.requests(), 0);
}

#[test]
fn the_token_file_is_read_and_the_token_never_appears_in_any_output() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    work.write("token.txt", &format!("{TOKEN}\n"));
    let out = work
        .import("tickets.csv", &sim, "run")
        .env_remove("WOLKVOX_TOKEN")
        .args(["--token-file", "token.txt", "--json", "-vv"])
        .env("RUST_LOG", "trace")
        .run();
    out.assert_code(2);
    assert_eq!(sim.cases().len(), 232);
    let mut haystacks = vec![out.stdout.clone(), out.stderr.clone()];
    for file in [
        work.path("run.results.csv"),
        work.path("run.errors.csv"),
        work.ledger(),
    ] {
        haystacks.push(std::fs::read(file).unwrap());
    }
    for (i, bytes) in haystacks.iter().enumerate() {
        let found = bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes());
        assert!(!found, "the token leaked into output #{i}");
    }
}

#[test]
fn the_rate_limit_is_never_burst_over() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    let out = work
        .import("tickets.csv", &sim, "run")
        .args(["--rate", "40", "--limit", "60"])
        .run();
    assert_eq!(out.code(), 2);
    let arrivals: Vec<f64> = sim.state().arrivals().iter().map(|a| a.at_ms).collect();
    assert_eq!(arrivals.len(), 60);
    for (i, start) in arrivals.iter().enumerate() {
        let in_window = arrivals[i..]
            .iter()
            .take_while(|t| **t < start + 1000.0)
            .count();
        assert!(
            in_window <= 40,
            "{in_window} requests in one second at --rate 40"
        );
    }
}

#[test]
fn xlsx_and_csv_of_the_same_data_give_the_same_payloads() {
    let work = Work::with_sample();
    let from_csv = payloads(&work, "tickets.csv");
    let from_xlsx = payloads(&work, "tickets.xlsx");
    assert_eq!(from_csv.len(), 240);
    assert_eq!(from_xlsx.len(), 240);
    for (i, (a, b)) in from_csv.iter().zip(&from_xlsx).enumerate() {
        assert_eq!(a, b, "data row {}", i + 1);
    }
}

#[test]
fn xlsx_rows_are_numbered_as_excel_shows_them() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    let out = work.import("tickets.xlsx", &sim, "run").run();
    assert_eq!(out.code(), 2);
    let results = work.results("run");
    // Header in row 1, ticket N in Excel row N + 1.
    let r = results.iter().find(|r| r.key == "PQR-2024-000030").unwrap();
    assert_eq!((r.row, r.status.as_str()), (31, "invalid"));
    assert_eq!(sim.cases().len(), 232);
}
