//! The workflows people follow, with the defaults they use (no `--ledger` unless the test
//! is about it), each judged by what the CRM stored: every ticket exactly once.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use wolkvox_import::simulator::{Faults, Scenario};

use crate::support::*;

fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON summary ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn assert_each_once(sim: &Sim, tickets: impl IntoIterator<Item = usize>) {
    let stored = sim.stored_per_ticket();
    let wanted: BTreeMap<String, usize> = tickets.into_iter().map(|i| (ticket(i), 1)).collect();
    assert_eq!(
        stored, wanted,
        "the CRM must hold every ticket exactly once"
    );
}

#[test]
fn a_renamed_nightly_export_creates_only_the_new_tickets() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    tickets_csv(&work, "export-2026-11-30.csv", 1..=60);
    let night1 = work
        .import("export-2026-11-30.csv", &sim, "night1")
        .arg("--json")
        .run();
    night1.assert_code(0);
    assert_eq!(json_of(&night1)["ledger_created"], true);

    // The next night's export has a new name and carries half of last night's tickets.
    tickets_csv(&work, "export-2026-12-01.csv", 31..=90);
    let night2 = work
        .import("export-2026-12-01.csv", &sim, "night2")
        .arg("--json")
        .run();
    assert_eq!(night2.code(), 0);
    let summary = json_of(&night2);
    assert_eq!(summary["ledger_created"], false);
    assert_eq!(
        (summary["created"].as_u64(), summary["skipped"].as_u64()),
        (Some(30), Some(30))
    );
    assert_eq!(summary["ledger"], json_of(&night1)["ledger"]);
    assert_each_once(&sim, 1..=90);
}

#[test]
fn the_errors_file_loop_creates_each_fixed_ticket_once() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    tickets_csv(&work, "tickets-40.csv", 1..=40);
    let original = work.read("tickets-40.csv");
    let broken = break_emails(&original, &[5, 17, 33]);
    work.write("tickets-40.csv", &broken);
    let first = work.import("tickets-40.csv", &sim, "first").run();
    assert_eq!(first.code(), 2);
    assert_eq!(sim.cases().len(), 37);

    // As the hint says: fix the rows in the errors file and run it with the same mapping.
    let errors = work.read("first.errors.csv");
    assert!(errors.contains("ana@"), "{errors}");
    work.write(
        "fixed.csv",
        &errors
            .replace("ana@\"", "ana@x.co\"")
            .replace("ana@,", "ana@x.co,"),
    );
    let fixed = work.import("fixed.csv", &sim, "fixed").run();
    fixed.assert_code(0);
    assert_eq!(count(&work.results("fixed"), "created"), 3);

    // Later someone fixes the original too and runs it again: nothing is created twice.
    work.write("tickets-40.csv", &original);
    let again = work.import("tickets-40.csv", &sim, "again").run();
    assert_eq!(again.code(), 0);
    assert_eq!(count(&work.results("again"), "skipped"), 40);
    assert_each_once(&sim, 1..=40);
}

/// The nightly file still holds the broken cells after the errors file was fixed and
/// imported: the next night's run says those rows' tickets are in the CRM, and asks to fix
/// only the rows whose tickets are not (a bad cell left as it was, a second row of a key).
#[test]
fn a_night_that_reads_the_unfixed_file_again_asks_to_fix_only_what_the_crm_lacks() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    tickets_csv(&work, "nightly.csv", 1..=30);
    let broken = break_emails(&work.read("nightly.csv"), &[5, 17, 23]);
    // And a second row with ticket 2's key: another ticket, whose fix is in the file.
    let mut writer = csv::Writer::from_writer(broken.into_bytes());
    let mut second = csv::Reader::from_path(work.path("nightly.csv"))
        .unwrap()
        .records()
        .nth(1)
        .unwrap()
        .unwrap();
    assert_eq!(&second[0], ticket(2));
    second = second
        .iter()
        .enumerate()
        .map(|(i, c)| if i == 3 { "Otro asunto" } else { c })
        .collect();
    writer.write_record(&second).unwrap();
    work.write(
        "nightly.csv",
        &String::from_utf8(writer.into_inner().unwrap()).unwrap(),
    );
    work.import("nightly.csv", &sim, "night1")
        .run()
        .assert_code(2);
    // Two of the three rows fixed in the errors file and imported; the third left as it was.
    let errors = work.read("night1.errors.csv");
    let fixed = errors.replacen("ana@,", "ana@x.co,", 2);
    assert_eq!(fixed.matches("ana@x.co,").count(), 2, "{fixed}");
    work.write("fixed.csv", &fixed);
    let fed_back = work.import("fixed.csv", &sim, "fixed").run();
    fed_back.assert_code(2);
    assert_eq!(count(&work.results("fixed"), "created"), 2);

    // The next night, the same unfixed export, as cron runs it (defaults, no -q).
    let night2 = work
        .import_as_typed("nightly.csv", &sim)
        .args([
            "--report",
            "night2.results.csv",
            "--errors",
            "night2.errors.csv",
        ])
        .run();
    night2.assert_code(2);
    let stderr = night2.stderr();
    assert!(
        stderr.contains("next: 2 invalid rows: fix them in night2.errors.csv"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "next: 2 more invalid rows are tickets the CRM has already (an earlier run \
             created them from a fixed copy)"
        ),
        "{stderr}"
    );
    let results = work.results("night2");
    let in_crm: Vec<&ResultRow> = results
        .iter()
        .filter(|r| r.status == "invalid" && r.message.contains("in the CRM already: run 2"))
        .collect();
    assert_eq!(in_crm.len(), 2, "{results:?}");
    assert_eq!(count(&results, "invalid"), 4);
    // Every ticket once, but 23, whose row was never fixed.
    assert_each_once(&sim, (1..=30).filter(|&t| t != 23));
}

/// The hint a run ends with is a command: the errors file fixed in place and that
/// command run as printed creates the fixed tickets, and only those.
#[test]
fn the_errors_file_hint_runs_as_printed() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    tickets_csv(&work, "tickets-20.csv", 1..=20);
    let broken = break_emails(&work.read("tickets-20.csv"), &[4, 11]);
    work.write("tickets-20.csv", &broken);
    let first = work.import_as_typed("tickets-20.csv", &sim).run();
    first.assert_code(2);
    let stderr = first.stderr();
    let hint = stderr
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("next: 2 invalid rows: fix them in ")
        })
        .unwrap_or_else(|| panic!("no hint for the invalid rows: {stderr}"));
    let (errors, command) = hint
        .split_once(" (each has its row number and error), then run: ")
        .unwrap_or_else(|| panic!("the hint names no command: {hint}"));
    assert!(!command.contains(['\'', '"']), "{command}");
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(words[..2], ["wolkvox-import", "import"], "{command}");
    assert_eq!(
        words[2], errors,
        "the command runs the errors file: {command}"
    );

    // Fixed in place, as in Excel, then the command exactly as printed.
    let fixed = work.read(errors).replace("ana@,", "ana@x.co,");
    assert_eq!(fixed.matches("ana@x.co,").count(), 2, "{fixed}");
    work.write(errors, &fixed);
    let again = work
        .bin()
        .env("WOLKVOX_TOKEN", TOKEN)
        .args(&words[1..])
        .run();
    again.assert_code(0);
    let results = read_results(&work.path(errors).with_extension("results.csv"));
    assert_eq!(count(&results, "created"), 2, "{}", again.stderr());
    assert_each_once(&sim, 1..=20);
}

/// One bad row is said as one: "1 invalid row: fix it", not "1 invalid rows: fix them".
#[test]
fn one_invalid_row_is_said_in_the_singular() {
    let work = Work::with_sample();
    tickets_csv(&work, "tickets-5.csv", 1..=5);
    let broken = break_emails(&work.read("tickets-5.csv"), &[3]);
    work.write("tickets-5.csv", &broken);
    let checked = work
        .bin()
        .args(["validate", "tickets-5.csv", "--mapping", "tickets.yaml"])
        .run();
    checked.assert_code(2);
    let stderr = checked.stderr();
    assert!(
        stderr.contains("next: 1 invalid row: fix it in tickets-5.errors.csv"),
        "{stderr}"
    );
}

/// The CSV with the e-mail of the given tickets made invalid (`ana@`).
fn break_emails(csv_text: &str, tickets: &[usize]) -> String {
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(reader.headers().unwrap()).unwrap();
    for record in reader.records() {
        let mut cells: Vec<String> = record.unwrap().iter().map(str::to_string).collect();
        if tickets.iter().any(|t| cells[0] == ticket(*t)) {
            cells[CORREO] = "ana@".into();
        }
        writer.write_record(&cells).unwrap();
    }
    String::from_utf8(writer.into_inner().unwrap()).unwrap()
}

#[test]
fn a_second_run_into_the_same_target_is_refused_whatever_file_or_ledger_it_names() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    tickets_csv(&work, "monday.csv", 1..=300);
    let mut first = work
        .import("monday.csv", &sim, "first")
        .args(["--rate", "50"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(20), || !sim
        .cases()
        .is_empty()));
    tickets_csv(&work, "tuesday.csv", 1..=300);
    let another_file = work.import("tuesday.csv", &sim, "second").run();
    let another_ledger = work
        .import("tuesday.csv", &sim, "third")
        .args(["--ledger", "elsewhere.sqlite"])
        .run();
    first.kill().unwrap();
    first.wait().unwrap();
    for out in [&another_file, &another_ledger] {
        assert_eq!(code(out), 1);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("another run") && stderr.contains("wait for it to finish"),
            "{stderr}"
        );
        assert!(stderr.contains("wait for it to finish"), "{stderr}");
        assert!(
            !stderr.contains("another file"),
            "never advise another ledger: {stderr}"
        );
    }
    // The killed run is picked up by the next one: still no duplicate.
    let rest = work.import("tuesday.csv", &sim, "rest").run();
    assert!(
        [0, 2].contains(&rest.code()),
        "{}",
        String::from_utf8_lossy(&rest.stderr)
    );
    let stored = sim.stored_per_ticket();
    assert!(stored.values().all(|n| *n == 1), "a duplicate: {stored:?}");
}

#[test]
fn a_mapping_without_a_key_is_refused_before_anything_is_sent() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    let mapping = work.read("tickets.yaml");
    work.write("tickets.yaml", &mapping.replace("key: [Ticket]", ""));
    let out = work.import("tickets.csv", &sim, "nokey").run();
    assert_eq!(out.code(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has no `key:`"), "{stderr}");
    assert!(
        stderr.contains("add `key: [Ticket]`"),
        "names the column: {stderr}"
    );
    assert!(stderr.contains("key: payload"), "{stderr}");
    assert!(
        sim.state().calls_per_token().is_empty(),
        "not even the preflight call"
    );
    assert!(sim.cases().is_empty());

    let validate = work.run(["validate", "tickets.csv", "--mapping", "tickets.yaml"]);
    assert_eq!(validate.code(), 2, "the sample's bad rows");
    assert!(String::from_utf8_lossy(&validate.stderr).contains("import will refuse this mapping"));

    // `key: payload` is the explicit choice of a payload hash.
    work.write(
        "tickets.yaml",
        &mapping.replace("key: [Ticket]", "key: payload"),
    );
    let out = work.import("tickets.csv", &sim, "payload").run();
    assert_eq!(out.code(), 2);
    // The sample's one repeated ticket number has other content: with a payload hash it is
    // a ticket of its own (what "any change makes a new ticket" means).
    assert_eq!(sim.cases().len(), 233);
}

#[test]
fn init_mapping_finds_the_key_and_the_contact_in_real_export_headers() {
    let work = Work::new();
    // (ticket-number header, contact header): each a style real exports use.
    let styles = [
        ("Nro Ticket", "Correo del cliente"),
        ("No. Ticket", "E-mail"),
        ("N° Radicado", "Correo electrónico del cliente"),
        ("Número de caso", "Email cliente"),
        ("ID Ticket", "Contact email"),
        ("Consecutivo", "Correo"),
        ("Ticket #", "Datos de contacto"),
    ];
    for (i, (key, contact)) in styles.iter().enumerate() {
        let name = format!("export-{i}.csv");
        // The agent's e-mail is never the contact; `Datos de contacto` is found by its values.
        work.write(
            &name,
            &format!(
                "{key},Asunto,Correo del asesor,{contact},Estado\n\
                 A-1,No llega la factura,asesor1@empresa.co,ana@cliente.co,Abierto\n\
                 A-2,Cambio de plan,asesor2@empresa.co,luis@cliente.co,Cerrado\n"
            ),
        );
        let out = work.run(["init-mapping", &name]);
        out.assert_code(0);
        let yaml = String::from_utf8(out.0.stdout).unwrap();
        let mapping: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(mapping["key"], serde_json::json!([key]), "{key}:\n{yaml}");
        let chosen = &mapping["fields"]["contact"];
        let chosen = chosen.get("column").unwrap_or(chosen);
        assert_eq!(chosen, contact, "{contact}:\n{yaml}");
    }
}

#[test]
fn resolve_then_a_rerun_sends_only_the_rows_marked_missing() {
    let sim = Sim::start(Scenario {
        tokens: vec![TOKEN.into()],
        faults: Faults {
            error_500_before_store: 0.1,
            error_500_after_store: 0.1,
            ..Faults::default()
        },
        ..Scenario::default()
    });
    let work = Work::with_sample();
    tickets_csv(&work, "tickets-80.csv", 1..=80);
    let first = work
        .bin()
        .env("WOLKVOX_TOKEN", TOKEN)
        .args([
            "import",
            "tickets-80.csv",
            "--mapping",
            "tickets.yaml",
            "--server",
        ])
        .arg(sim.url())
        .args(["--rate", "0", "--max-retries", "0"])
        .run();
    first.assert_code(2);
    let uncertain = count(
        &read_results(&work.path("tickets-80.results.csv")),
        "uncertain",
    );
    assert!(uncertain > 0, "the faults made no uncertain row");

    // Follow the hint literally: it names the resolve command with this import's target.
    let stderr = String::from_utf8_lossy(&first.stderr);
    let hint = stderr
        .split("`wolkvox-import resolve ")
        .nth(1)
        .and_then(|rest| rest.split(" --list").next())
        .unwrap_or_else(|| panic!("no resolve hint: {stderr}"));
    let target: Vec<&str> = hint.split_whitespace().collect();
    let list = work.bin().arg("resolve").args(&target).arg("--list").run();
    list.assert_code(0);

    // The person looks each key up in the CRM and writes what they found.
    let stored: BTreeMap<String, String> = sim
        .cases()
        .iter()
        .map(|c| (ticket_of(c), c.id.clone()))
        .collect();
    let mut reader = csv::Reader::from_reader(list.stdout.as_slice());
    let mut filled = csv::Writer::from_path(work.path("uncertain.csv")).unwrap();
    filled.write_record(reader.headers().unwrap()).unwrap();
    let mut missing = 0;
    for record in reader.records() {
        let mut cells: Vec<String> = record.unwrap().iter().map(str::to_string).collect();
        match stored.get(&cells[0]) {
            Some(id) => {
                cells[1] = "created".into();
                cells[2] = id.clone();
            }
            None => {
                cells[1] = "missing".into();
                missing += 1;
            }
        }
        filled.write_record(&cells).unwrap();
    }
    filled.flush().unwrap();
    let recorded = work
        .bin()
        .arg("resolve")
        .args(&target)
        .args(["--file", "uncertain.csv"])
        .run();
    recorded.assert_code(0);

    sim.state().heal();
    let again = work
        .bin()
        .env("WOLKVOX_TOKEN", TOKEN)
        .args([
            "import",
            "tickets-80.csv",
            "--mapping",
            "tickets.yaml",
            "--server",
        ])
        .arg(sim.url())
        .args(["--rate", "0", "--json"])
        .run();
    let summary = json_of(&again);
    assert_eq!(summary["uncertain"], 0, "{summary}");
    assert_eq!(
        summary["created"], missing,
        "only the missing ones are sent: {summary}"
    );
    assert_each_once(&sim, 1..=80);
    // The case ids found by hand are the ones the results carry now.
    let results = read_results(&work.path(summary["report"].as_str().unwrap()));
    for row in results.iter().filter(|r| r.status == "skipped") {
        assert_eq!(Some(&row.case_id), stored.get(&row.key), "{row:?}");
    }
}

#[test]
fn a_finding_that_could_duplicate_is_refused_and_nothing_is_recorded() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    tickets_csv(&work, "few.csv", 1..=3);
    assert_eq!(code(&work.import("few.csv", &sim, "one").run()), 0);
    let out = work
        .bin()
        .args([
            "resolve",
            "--server",
            &sim.url(),
            "--mapping",
            "tickets.yaml",
        ])
        .args(["--missing", &ticket(2)])
        .run();
    assert_eq!(out.code(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not marked missing"), "{stderr}");
    let again = work.import("few.csv", &sim, "two").run();
    assert_eq!(again.code(), 0);
    assert_eq!(count(&work.results("two"), "skipped"), 3);
    assert_each_once(&sim, 1..=3);
}

/// The input and mapping that made the 0.1.0 ledger, and the ledger as `ledger` with its
/// target rewritten to `sim`'s address. The mapping gets the one change the sample mapping
/// got since: phone numbers no plan has are sent as typed, not refused.
fn copy_fixture_0_1_0(work: &Work, sim: &Sim, ledger: &str) -> std::path::PathBuf {
    let path = work.path(ledger);
    std::fs::copy(repo("tests/fixtures/ledger-0.1.0/ledger.sqlite"), &path).unwrap();
    let address = sim.url().trim_start_matches("http://").to_string();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE meta SET value = ?1 WHERE name = 'target'",
            [format!("{address}|modulotest01")],
        )
        .unwrap();
    work.copy("tests/fixtures/ledger-0.1.0/tickets.csv", "tickets.csv");
    let mapping = std::fs::read_to_string(repo("tests/fixtures/ledger-0.1.0/tickets.yaml"))
        .unwrap()
        .replace(
            r#"- phone: { country_code: "+57" }"#,
            r#"- phone: { country_code: "+57", on_invalid: keep }"#,
        );
    work.write("tickets.yaml", &mapping);
    path
}

#[test]
fn a_ledger_of_release_0_1_0_beside_the_input_is_merged_and_its_tickets_skipped() {
    let sim = Sim::strict();
    let work = Work::new();
    // Where 0.1.0 kept it: beside the input, as <input>.ledger.sqlite, for this server.
    let legacy = copy_fixture_0_1_0(&work, &sim, "tickets.ledger.sqlite");

    let out = work
        .import("tickets.csv", &sim, "upgraded")
        .arg("--json")
        .run();
    assert_eq!(out.code(), 2, "its uncertain rows stay uncertain");
    let summary = json_of(&out);
    assert!(
        summary["warnings"].to_string().contains("moved the ledger"),
        "{summary}"
    );
    assert_eq!(summary["ledger_created"], false, "{summary}");
    let results = work.results("upgraded");
    assert_eq!(count(&results, "skipped"), 24);
    assert_eq!(count(&results, "uncertain"), 3);
    assert!(
        sim.cases().is_empty(),
        "nothing the old ledger knows is sent again"
    );
    assert!(!legacy.exists() && work.path("tickets.ledger.sqlite.migrated").exists());

    // Its history is the target's history now.
    let runs = work.run(["runs", "--server", &sim.url(), "--mapping", "tickets.yaml"]);
    let text = String::from_utf8_lossy(&runs.stdout);
    assert!(text.contains("{\"created\":14}"), "run 1 of 0.1.0: {text}");
    assert!(text.contains("\"uncertain\":3"), "run 2 of 0.1.0: {text}");
    let run_lines = text
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.parse::<u32>().is_ok())
        })
        .count();
    assert_eq!(run_lines, 3, "the two runs of 0.1.0 and this one: {text}");
    let shown = work.run([
        "runs",
        "--server",
        &sim.url(),
        "--mapping",
        "tickets.yaml",
        "--show",
        "1",
    ]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("first.csv"));
}

#[test]
fn an_explicit_ledger_from_release_0_1_0_opens_and_keeps_its_history() {
    let sim = Sim::strict();
    let work = Work::new();
    let path = copy_fixture_0_1_0(&work, &sim, "kept.sqlite");
    // Warnings shown despite -q: the fingerprint note is one.
    let out = work
        .import("tickets.csv", &sim, "kept")
        .args(["--ledger", "kept.sqlite"])
        .env("RUST_LOG", "warn")
        .run();
    assert_eq!(out.code(), 2);
    assert_eq!(count(&work.results("kept"), "skipped"), 24);
    assert!(sim.cases().is_empty());
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5, "the ledger was upgraded in place");
    // Its created keys have no field fingerprints: unchanged, said once.
    let said = out
        .stderr()
        .matches("kept no fingerprint of what it sent")
        .count();
    assert_eq!(said, 1, "{}", out.stderr());
    let runs: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(runs, 3, "the two runs of 0.1.0 and this one");
}

#[test]
fn expect_ledger_refuses_to_start_from_nothing() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    for out in [
        work.import("tickets.csv", &sim, "a")
            .arg("--expect-ledger")
            .run(),
        work.import("tickets.csv", &sim, "b")
            .env("WOLKVOX_EXPECT_LEDGER", "true")
            .run(),
    ] {
        assert_eq!(out.code(), 1);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("no ledger for") && stderr.contains("mounted"),
            "{stderr}"
        );
    }
    assert!(sim.state().calls_per_token().is_empty() && sim.cases().is_empty());
    assert_eq!(code(&work.import("tickets.csv", &sim, "c").run()), 2);
    let out = work
        .import("tickets.csv", &sim, "d")
        .arg("--expect-ledger")
        .run();
    assert_eq!(out.code(), 2);
    assert_eq!(count(&work.results("d"), "skipped"), 232);
}

#[test]
fn an_explicit_ledger_beside_the_targets_own_is_a_warning_naming_it() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    assert_eq!(code(&work.import("tickets.csv", &sim, "a").run()), 2);
    let out = work
        .import("tickets.csv", &sim, "b")
        .args(["--ledger", "other.sqlite", "--json"])
        .run();
    let summary = json_of(&out);
    let warnings = summary["warnings"].to_string();
    let own = work.ledger();
    assert!(warnings.contains(&*own.display().to_string()), "{warnings}");
    assert!(warnings.contains("would be created again"), "{warnings}");
    assert_eq!(summary["ledger_created"], true);
}

#[test]
fn simulate_runs_share_the_simulators_ledger_also_when_given_one() {
    let work = Work::with_sample();
    let simulate = |extra: &[&str]| {
        let out = work
            .bin()
            .args([
                "import",
                "tickets.csv",
                "--mapping",
                "tickets.yaml",
                "--simulate",
            ])
            .args(["--rate", "0", "--json"])
            .args(extra)
            .run();
        out.assert_code(2);
        json_of(&out)
    };
    assert_eq!(simulate(&[])["created"], 232);
    let second = simulate(&[]);
    assert_eq!(
        (second["created"].as_u64(), second["skipped"].as_u64()),
        (Some(0), Some(232))
    );
    assert_eq!(simulate(&["--ledger", "rehearsal.sqlite"])["created"], 232);
    assert_eq!(simulate(&["--ledger", "rehearsal.sqlite"])["skipped"], 232);
}

#[test]
fn a_changed_key_is_refused_once_tickets_were_created_under_the_old_one() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    tickets_csv(&work, "few.csv", 1..=5);
    assert_eq!(code(&work.import("few.csv", &sim, "one").run()), 0);
    let mapping = work.read("tickets.yaml");
    work.write(
        "tickets.yaml",
        &mapping.replace("key: [Ticket]", "key: [Ticket, Ciudad]"),
    );
    let out = work.import("few.csv", &sim, "two").run();
    assert_eq!(out.code(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("key changed from `key: [Ticket]` to `key: [Ticket, Ciudad]`"),
        "{stderr}"
    );
    assert_each_once(&sim, 1..=5);
}

#[test]
fn one_crm_is_one_target_however_its_address_is_spelt_and_whoever_runs_it() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    tickets_csv(&work, "many.csv", 1..=300);
    let localhost = sim.url().replace("127.0.0.1", "localhost");
    let mut first = work
        .import("many.csv", &sim, "first")
        .args(["--rate", "50"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(20), || !sim
        .cases()
        .is_empty()));
    // Another user's data directory, another spelling of the same server.
    let elsewhere = work
        .bin()
        .env("XDG_DATA_HOME", work.path("other-user"))
        .env("WOLKVOX_TOKEN", TOKEN)
        .args([
            "import",
            "many.csv",
            "--mapping",
            "tickets.yaml",
            "--server",
            &localhost,
        ])
        .args(["--rate", "0", "--report", "x.csv", "--errors", "y.csv"])
        .run();
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(elsewhere.code(), 1);
    let stderr = String::from_utf8_lossy(&elsewhere.stderr);
    assert!(
        stderr.contains("another run on this machine is importing"),
        "{stderr}"
    );

    // Once the first is done, `localhost` meets the ledger `127.0.0.1` made.
    let again = work
        .bin()
        .env("WOLKVOX_TOKEN", TOKEN)
        .args([
            "import",
            "many.csv",
            "--mapping",
            "tickets.yaml",
            "--server",
            &localhost,
        ])
        .args([
            "--rate", "0", "--json", "--report", "z.csv", "--errors", "w.csv",
        ])
        .run();
    let summary = json_of(&again);
    assert_eq!(summary["ledger_created"], false, "{summary}");
    assert_eq!(work.ledgers().len(), 1);
    let stored = sim.stored_per_ticket();
    assert!(stored.values().all(|n| *n == 1), "a duplicate");
}

#[test]
fn runs_started_in_the_same_second_keep_their_own_results_files() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    tickets_csv(&work, "few.csv", 1..=3);
    let run = || {
        let out = work
            .bin()
            .env("WOLKVOX_TOKEN", TOKEN)
            .args([
                "import",
                "few.csv",
                "--mapping",
                "tickets.yaml",
                "--server",
                &sim.url(),
            ])
            .args(["--rate", "0", "--json"])
            .run();
        json_of(&out)["report"].as_str().unwrap().to_string()
    };
    let reports: std::collections::BTreeSet<String> = (0..4).map(|_| run()).collect();
    assert_eq!(reports.len(), 4, "{reports:?}");
}

#[test]
fn another_export_with_its_own_key_goes_into_the_same_crm() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    tickets_csv(&work, "helpdesk-a.csv", 1..=5);
    assert_eq!(code(&work.import("helpdesk-a.csv", &sim, "a").run()), 0);
    // A second system's export: its ticket column has another name, its numbers others.
    let a = work.read("helpdesk-a.csv");
    let b = a
        .replacen("Ticket,", "Nro Ticket,", 1)
        .replace("T-0000", "B-0000");
    work.write("helpdesk-b.csv", &b);
    let mapping = work.read("tickets.yaml");
    work.write(
        "helpdesk-b.yaml",
        &mapping
            .replace("key: [Ticket]", "key: [Nro Ticket]")
            .replace("Número de ticket: Ticket", "Número de ticket: Nro Ticket"),
    );
    let out = work
        .import("helpdesk-b.csv", &sim, "b")
        .args(["--mapping", "helpdesk-b.yaml", "--json"])
        .run();
    out.assert_code(0);
    let summary = json_of(&out);
    assert_eq!(summary["created"], 5);
    assert!(
        summary["warnings"]
            .to_string()
            .contains("a new key for this CRM target")
    );
    // Both keys are known now: each export's re-run skips its own tickets.
    for (file, mapping, tag) in [
        ("helpdesk-a.csv", "tickets.yaml", "a2"),
        ("helpdesk-b.csv", "helpdesk-b.yaml", "b2"),
    ] {
        let out = work
            .import(file, &sim, tag)
            .args(["--mapping", mapping])
            .run();
        out.assert_code(0);
        assert_eq!(count(&work.results(tag), "skipped"), 5);
    }
    assert_eq!(sim.cases().len(), 10);
}

#[test]
fn a_duplicate_key_row_fed_back_stays_a_duplicate_and_never_updates_the_other_ticket() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    // The sample's row 167 carries row 165's ticket number with other data.
    let first = work.import("tickets.csv", &sim, "first").run();
    assert_eq!(first.code(), 2);
    let errors = work.read("first.errors.csv");
    assert!(errors.contains("duplicate of row 165"), "{errors}");
    let before = sim.cases();
    // Fed back as is, even with --update: it stays a duplicate, and nothing is sent for it.
    work.write("fixed.csv", &errors);
    let fed = work.import("fixed.csv", &sim, "fed").arg("--update").run();
    assert_eq!(fed.code(), 2);
    let rows = work.results("fed");
    let dup = rows.iter().find(|r| r.row == 167).unwrap();
    assert_eq!(dup.status, "invalid", "{dup:?}");
    assert!(dup.message.starts_with("duplicate of"), "{dup:?}");
    assert_eq!(count(&rows, "updated"), 0);
    assert_eq!(sim.cases(), before, "no case was created or changed");
}
