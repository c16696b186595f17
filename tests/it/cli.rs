//! The command line as a new user meets it: help, validate, the README command, runs.

use crate::support::*;

#[test]
fn help_teaches_with_examples_and_exits_0() {
    for sub in [
        "validate",
        "import",
        "preview",
        "simulate",
        "runs",
        "init-mapping",
    ] {
        let out = bin().args([sub, "--help"]).run();
        assert_eq!(out.code(), 0, "{sub}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Example"), "{sub} --help has no example");
    }
    let out = bin().arg("--help").run();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Exit codes"));
}

#[test]
fn reconcile_help_lists_only_what_reconcile_uses() {
    let out = bin().args(["reconcile", "--help"]).run();
    assert_eq!(out.code(), 0);
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in ["--server", "--mapping", "--ids", "--max-calls"] {
        assert!(text.contains(flag), "reconcile --help lacks {flag}");
    }
    for flag in ["--simulate", "--update", "--limit", "--reconcile"] {
        assert!(
            // A flag's own line is indented by six spaces; its description by more.
            !text.lines().any(|l| l
                .strip_prefix("      ")
                .and_then(|l| l.strip_prefix(flag))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))),
            "reconcile --help lists {flag}, which it does not use:\n{text}"
        );
    }
    // Still taken, so an import's command line can be reused: the simulator is refused
    // with a reason.
    let work = Work::with_sample();
    let out = work.run([
        "reconcile",
        "tickets.csv",
        "--mapping",
        "tickets.yaml",
        "--simulate",
    ]);
    assert_eq!(out.code(), 1);
    assert!(
        out.stderr().contains("keeps no case between runs"),
        "{}",
        out.stderr()
    );
}

#[test]
fn bad_arguments_exit_1() {
    let out = bin().args(["import", "x.csv"]).run();
    assert_eq!(out.code(), 1);
    let out = bin().args(["frobnicate"]).run();
    assert_eq!(out.code(), 1);
}

/// A nightly job sets its options as `WOLKVOX_*` variables: a bad one is named as such,
/// not only as the flag the job never passed.
#[test]
fn a_bad_value_from_the_environment_names_its_variable() {
    let work = Work::with_sample();
    let out = work
        .bin()
        .env("WOLKVOX_RATE", "fast")
        .args("import tickets.csv --mapping tickets.yaml --simulate".split(' '))
        .run();
    assert_eq!(out.code(), 1);
    let stderr = out.stderr();
    assert!(
        stderr.contains("invalid value 'fast' for '--rate"),
        "{stderr}"
    );
    assert!(
        stderr.contains("note: that value of --rate came from the environment variable WOLKVOX_RATE; fix or unset it"),
        "{stderr}"
    );
    // Given on the command line too, the flag is what to fix: no note.
    let out = work
        .bin()
        .env("WOLKVOX_RATE", "fast")
        .args("import tickets.csv --mapping tickets.yaml --simulate --rate fast".split(' '))
        .run();
    assert_eq!(out.code(), 1);
    assert!(
        out.stderr().contains("invalid value 'fast' for '--rate"),
        "{}",
        out.stderr()
    );
    assert!(
        !out.stderr().contains("environment variable"),
        "{}",
        out.stderr()
    );
}

/// A slip in `lookup:` gets the field that was meant, as a column's slip does.
#[test]
fn a_lookup_slip_is_answered_with_the_field_meant() {
    let work = Work::with_sample();
    let mapping = work.read("tickets.yaml");
    for (lookup, meant) in [
        ("[descripton, contact]", "did you mean \"description\"?"),
        (
            "[description, Número de ticket]",
            "did you mean \"form.Número de ticket\"?",
        ),
    ] {
        work.write("slip.yaml", &format!("{mapping}\nlookup: {lookup}\n"));
        let out = work.run(["validate", "tickets.csv", "--mapping", "slip.yaml"]);
        assert_eq!(out.code(), 1, "{lookup}");
        let stderr = out.stderr();
        assert!(
            stderr.contains("is not a field of this mapping"),
            "{stderr}"
        );
        assert!(stderr.contains(meant), "{lookup}: {stderr}");
    }
}

#[test]
fn a_key_given_twice_in_the_mapping_names_the_file_and_both_lines() {
    let work = Work::with_sample();
    let mapping = work.read("tickets.yaml");
    let line = |prefix: &str| mapping.lines().position(|l| l.starts_with(prefix)).unwrap() + 1;
    let (first, solution) = (line("  priority: "), line("  solution: "));
    // A second `priority` where `solution` is: a slip a user makes when copying lines.
    work.write(
        "twice.yaml",
        &mapping.replace("  solution: Solución", "  priority: Urgencia"),
    );
    let out = bin()
        .current_dir(work.dir.path())
        .args(["validate", "tickets.csv", "--mapping", "twice.yaml"])
        .run();
    assert_eq!(out.code(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "twice.yaml: `priority` is given twice: lines {first} and {solution}; keep one"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("DuplicateKeyPolicy"), "{stderr}");
}

#[test]
fn validate_reports_every_bad_row_and_sends_nothing() {
    let work = Work::with_sample();
    let out = work.run([
        "validate",
        "tickets.csv",
        "--mapping",
        "tickets.yaml",
        "--json",
    ]);
    assert_eq!(out.code(), 2);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["rows"], 240);
    assert_eq!(summary["valid"], 232);
    assert_eq!(summary["invalid"], 8);
    assert_eq!(summary["encoding"], "UTF-8");
    assert_eq!(summary["delimiter"], ",");
    // Default report paths sit beside the input.
    let results = read_results(&work.path("tickets.results.csv"));
    assert_eq!(count(&results, "valid"), 232);
    assert!(work.path("tickets.errors.csv").exists());
    // A second run does not overwrite the first run's files.
    work.run(["validate", "tickets.csv", "--mapping", "tickets.yaml", "-q"]);
    let files = std::fs::read_dir(work.dir.path()).unwrap().count();
    assert!(
        files >= 7,
        "the second run wrote timestamped files beside the first"
    );
}

#[test]
fn the_errors_file_validates_again_with_the_same_mapping_and_keeps_row_numbers() {
    let work = Work::with_sample();
    let run = |input: &str, tag: &str| {
        work.bin()
            .args([
                "validate",
                input,
                "--mapping",
                "tickets.yaml",
                "-q",
                "--force",
            ])
            .args([
                "--report",
                &format!("{tag}.results.csv"),
                "--errors",
                &format!("{tag}.errors.csv"),
            ])
            .run()
    };
    assert_eq!(code(&run("tickets.csv", "first")), 2);
    // The user fixes one row (ticket 60's e-mail) in the errors file and feeds it back.
    let errors = work.read("first.errors.csv");
    let fixed = errors.replace(
        "cliente.sin.dominio@,0057 323",
        "cliente@ejemplo.com,0057 323",
    );
    assert_ne!(fixed, errors);
    work.write("fixed.csv", &fixed);
    assert_eq!(code(&run("fixed.csv", "second")), 2);
    let first = work.results("first");
    let second = work.results("second");
    assert_eq!(
        second.len(),
        first.iter().filter(|r| r.status == "invalid").count()
    );
    // Rows keep their numbers in the original file.
    let original_rows: Vec<u64> = first
        .iter()
        .filter(|r| r.status == "invalid")
        .map(|r| r.row)
        .collect();
    let second_errors = work.read("second.errors.csv");
    let text = work.read("tickets.csv");
    let fixed_row = line_of(&text, "PQR-2024-000060,");
    assert!(original_rows.contains(&fixed_row));
    // Valid now: the fixed row, and the duplicate whose first row is not in the errors file.
    let valid: Vec<u64> = second
        .iter()
        .filter(|r| r.status == "valid")
        .map(|r| r.row)
        .collect();
    assert!(valid.contains(&fixed_row), "{valid:?}");
    assert_eq!(valid.len(), 2, "{valid:?}");
    // The results of the fed-back file use the original row numbers.
    assert!(second.iter().all(|r| original_rows.contains(&r.row)));
    assert!(!second_errors.contains("PQR-2024-000060"));
    for other in original_rows.iter().filter(|r| !valid.contains(r)) {
        assert!(
            second_errors.contains(&format!(",{other},")),
            "row {other} lost its number"
        );
    }
}

#[test]
fn the_readme_simulate_command_runs_without_network_or_token() {
    let work = Work::with_sample();
    let out = work.run([
        "import",
        "tickets.csv",
        "--mapping",
        "tickets.yaml",
        "--simulate",
        "--rate",
        "0",
        "--json",
    ]);
    out.assert_code(2);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["created"], 232);
    assert_eq!(summary["invalid"], 8);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("created") && stderr.contains("232"),
        "{stderr}"
    );
}

#[test]
fn plain_http_to_a_remote_host_and_retired_hosts_are_refused() {
    let work = Work::with_sample();
    for (server, says) in [
        ("http://crm0001.wolkvox.com", "unencrypted"),
        ("sv0001.crmvox.com", "crm0001.wolkvox.com"),
        ("https://https://crm0001.wolkvox.com", "twice"),
    ] {
        let out = work
            .bin()
            .env("WOLKVOX_TOKEN", TOKEN)
            .args([
                "import",
                "tickets.csv",
                "--mapping",
                "tickets.yaml",
                "--server",
                server,
            ])
            .run();
        assert_eq!(out.code(), 1, "{server}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{server}: {stderr}");
    }
}

#[test]
fn runs_lists_the_ledger_history() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    work.import("tickets.csv", &sim, "one").run();
    // The target's ledger, found from the import's own --server and --mapping.
    let out = work.run(["runs", "--mapping", "tickets.yaml", "--server", &sim.url()]);
    out.assert_code(0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"created\":232"), "{text}");
    // Each run says what it was: an import, a reconcile, an undo.
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("1  import ")),
        "{text}"
    );
    // With one ledger in the data directory, `runs` alone shows it.
    let out = work.bin().arg("runs").run();
    assert_eq!(out.code(), 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"created\":232"));
    let out = work.run(["runs", "--ledger", "missing.sqlite"]);
    assert_eq!(out.code(), 1);
}

#[test]
fn the_simulate_command_prints_its_address_and_serves() {
    use std::io::BufRead;
    let mut child = bin()
        .args([
            "simulate",
            "--listen",
            "127.0.0.1:0",
            "--token",
            "demo",
            "-q",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let work = Work::with_sample();
    let out = work
        .bin()
        .env("WOLKVOX_TOKEN", "demo")
        .args([
            "import",
            "tickets.csv",
            "--mapping",
            "tickets.yaml",
            "--rate",
            "0",
            "-q",
            "--server",
            &url,
        ])
        .run();
    child.kill().unwrap();
    child.wait().unwrap();
    out.assert_code(2);
    let results = read_results(&work.path("tickets.results.csv"));
    assert_eq!(count(&results, "created"), 232);
}

#[test]
fn init_mapping_then_validate_says_what_is_left_and_then_works() {
    let work = Work::with_sample();
    let out = work.run(["init-mapping", "tickets.csv"]);
    assert_eq!(out.code(), 0);
    let starter = String::from_utf8(out.0.stdout).unwrap();
    assert!(starter.contains("key: [Ticket]"), "{starter}");
    assert!(starter.contains("Petición: Request") && starter.contains("Reclamo: Claims"));
    assert!(
        starter.contains("%d/%m/%Y"),
        "the day-first date column is recognised"
    );
    work.write("starter.yaml", &starter);

    let validate = |mapping: &str| {
        work.bin()
            .args([
                "validate",
                "tickets.csv",
                "--mapping",
                mapping,
                "--force",
                "--json",
            ])
            .args(["--report", "r.csv", "--errors", "e.csv"])
            .run()
    };
    let out = validate("starter.yaml");
    assert_eq!(out.code(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no operation") && stderr.contains("fields.owner: missing"),
        "{stderr}"
    );

    // The two things left to fill, filled as a user would.
    let filled = starter
        .replace("operation: \"\"", "operation: modulotest01")
        .replace(
            "fields:\n",
            "fields:\n  owner: { value: \"ADMIN_@modulotest01\" }\n",
        );
    work.write("filled.yaml", &filled);
    let out = validate("filled.yaml");
    out.assert_code(2);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["valid"], 232);
}

#[test]
fn mapping_errors_name_the_line_and_column_of_the_yaml() {
    let work = Work::with_sample();
    let broken = work
        .read("tickets.yaml")
        .replace("transforms: [trim, lower]", "transforms: [trim, lowr]");
    work.write("tickets.yaml", &broken);
    let out = work.run(["validate", "tickets.csv", "--mapping", "tickets.yaml"]);
    assert_eq!(out.code(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = broken.lines().position(|l| l.contains("lowr")).unwrap() + 1;
    assert!(stderr.contains(&format!("line {line}")), "{stderr}");
    assert!(
        stderr.contains("unknown variant `lowr`") && stderr.contains("lower"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_server_is_named_before_anything_is_sent() {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let work = Work::with_sample();
    let out = work
        .bin()
        .env("WOLKVOX_TOKEN", TOKEN)
        .args([
            "import",
            "tickets.csv",
            "--mapping",
            "tickets.yaml",
            "--server",
            "http://127.0.0.1:1",
        ])
        .run();
    assert_eq!(out.code(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach 127.0.0.1") && stderr.contains("nothing was sent"),
        "{stderr}"
    );
}

#[test]
fn json_summary_and_json_logs_are_there_when_nothing_was_done() {
    let work = Work::with_sample();
    let out = work
        .bin()
        .args([
            "--log-format",
            "json",
            "import",
            "tickets.csv",
            "--mapping",
            "missing.yaml",
        ])
        .args(["--simulate", "--json"])
        .run();
    assert_eq!(out.code(), 1);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["exit_code"], 1);
    assert!(
        summary["error"].as_str().unwrap().contains("missing.yaml"),
        "{summary}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "ERROR"
            && l["fields"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("missing.yaml"))),
        "{stderr}"
    );
}

#[test]
fn a_reader_that_closes_stdout_early_ends_the_run_quietly() {
    // `preview … | head -1`: far more JSON than a pipe holds, and the reader gone.
    let work = Work::with_sample();
    let mut child = work
        .bin()
        .args([
            "preview",
            "tickets.csv",
            "--mapping",
            "tickets.yaml",
            "--rows",
            "0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = Run(child.wait_with_output().unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.code(), 0, "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
}
