//! What operators script against: `runs --json`, `runs --find`, the environment, metrics.

use crate::support::*;

#[test]
fn runs_json_lists_and_shows_runs_with_their_counts() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    let first = work.import("tickets.csv", &sim, "one").run();
    first.assert_code(2);
    let target = ["--server", &sim.url(), "--mapping", "tickets.yaml"];
    let out = work.bin().arg("runs").args(target).arg("--json").run();
    out.assert_code(0);
    let list = out.json();
    assert_eq!(list["ledger"], work.ledger().display().to_string());
    let runs = list["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{list}");
    assert_eq!(runs[0]["run"], 1);
    assert_eq!(runs[0]["command"], "import");
    assert_eq!(runs[0]["exit_code"], 2);
    // The counts are an object, not a string of JSON.
    assert_eq!(runs[0]["counts"]["created"], 232);
    assert_eq!(runs[0]["counts"]["invalid"], 8);
    assert!(runs[0]["ended_at"].is_string());
    // Which file the run read: hashed beside the run, recorded when it ends.
    assert_eq!(
        runs[0]["input_sha256"],
        sha256_of(&work.path("tickets.csv")),
        "{list}"
    );

    let out = work
        .bin()
        .arg("runs")
        .args(target)
        .args(["--show", "1", "--json"])
        .run();
    out.assert_code(0);
    let shown = out.json();
    assert_eq!(shown["run"]["counts"]["created"], 232);
    assert_eq!(shown["open_rows"], serde_json::json!([]));

    // A run that cannot be shown still answers in JSON, with its exit code.
    let out = work.run(["runs", "--ledger", "missing.sqlite", "--json"]);
    assert_eq!(out.code(), 1);
    let failed = out.json();
    assert_eq!(failed["exit_code"], 1);
    assert!(
        failed["error"].as_str().unwrap().contains("missing.sqlite"),
        "{failed}"
    );
}

#[test]
fn runs_find_says_where_a_ticket_went_by_key_or_case_id() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    let first = work.import("tickets.csv", &sim, "one").run();
    first.assert_code(2);
    let results = work.results("one");
    let created = results.iter().find(|r| r.status == "created").unwrap();
    assert!(!created.case_id.is_empty());
    // The case the simulator stored under that ticket.
    assert_eq!(sim.stored_per_ticket()[&created.key], 1);
    let invalid = results.iter().find(|r| r.status == "invalid").unwrap();

    // No target named: the data directory's ledgers are searched.
    let out = work
        .bin()
        .args(["runs", "--json", "--find", &created.key])
        .args(["--find", &created.case_id, "--find", "PQR-1999-999999"])
        .run();
    // One of the three is in no ledger: a script reads that from the exit code.
    out.assert_code(2);
    let answer = out.json();
    assert_eq!(answer["exit_code"], 2);
    let results_json = answer["results"].as_array().unwrap();
    assert_eq!(results_json.len(), 3);
    for by in &results_json[..2] {
        let found = by["found"].as_array().unwrap();
        assert_eq!(found.len(), 1, "{by}");
        assert_eq!(found[0]["key"], created.key.as_str());
        assert_eq!(found[0]["status"], "created");
        assert_eq!(found[0]["case_id"], created.case_id.as_str());
        assert_eq!(found[0]["run"], 1);
        assert_eq!(found[0]["row"], created.row);
        assert_eq!(found[0]["input"], "tickets.csv");
        assert_eq!(found[0]["ledger"], work.ledger().display().to_string());
    }
    assert_eq!(results_json[2]["query"], "PQR-1999-999999");
    assert_eq!(results_json[2]["found"], serde_json::json!([]));

    // The same for a person, with the target named.
    let out = work
        .bin()
        .args(["runs", "--server", &sim.url(), "--mapping", "tickets.yaml"])
        .args(["--find", &created.key, "--find", &invalid.key])
        .run();
    out.assert_code(2);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "{}: created by run 1, row {} of tickets.csv",
            created.key, created.row
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("case id   {}", created.case_id)),
        "{text}"
    );
    // An invalid row never reached the ledger: it is said to be absent, not made up.
    assert!(!invalid.key.is_empty());
    assert!(
        text.contains(&format!("{}: not in the ledger", invalid.key)),
        "{text}"
    );

    // Every ticket asked about is found: exit 0.
    let out = work
        .bin()
        .args([
            "runs",
            "--json",
            "--find",
            &created.key,
            "--find",
            &created.case_id,
        ])
        .run();
    out.assert_code(0);
    assert_eq!(out.json()["exit_code"], 0);
}

#[test]
fn an_import_configured_by_the_environment_alone() {
    let sim = Sim::start(wolkvox_import::simulator::Scenario {
        tokens: vec![TOKEN.into()],
        latency: std::time::Duration::from_millis(20),
        ..Default::default()
    });
    let work = Work::with_sample();
    work.write("token", &format!("{TOKEN}\n"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(work.path("token"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    // As a Kubernetes job is configured: every setting in the environment, no flags.
    let out = work
        .bin()
        .env("WOLKVOX_SERVER", sim.url())
        .env("WOLKVOX_TOKEN_FILE", work.path("token"))
        .env("WOLKVOX_RATE", "0")
        .env("WOLKVOX_CONCURRENCY", "1")
        .env("WOLKVOX_LIMIT", "5")
        .env("WOLKVOX_NO_PREFLIGHT", "true")
        .env("WOLKVOX_TIMEOUT", "10")
        .env("WOLKVOX_LOG_FORMAT", "json")
        .args([
            "import",
            "tickets.csv",
            "--mapping",
            "tickets.yaml",
            "--force",
        ])
        .run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Five sent (--limit), the rest pending: exit 2.
    assert_eq!(out.code(), 2, "{stderr}");
    assert_eq!(sim.state().stored(), 5);
    // No preflight: the token made the five inserts and nothing else.
    assert_eq!(sim.state().calls_per_token().get(TOKEN), Some(&5));
    assert_eq!(sim.state().peak_in_flight(), 1);
    // JSON logs: every stderr line is one JSON object.
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let _: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
    }
    let results = read_results(&work.path("tickets.results.csv"));
    assert_eq!(count(&results, "created"), 5);

    // A flag still wins over the environment.
    let out = work
        .bin()
        .env("WOLKVOX_SERVER", sim.url())
        .env("WOLKVOX_TOKEN", TOKEN)
        .env("WOLKVOX_LIMIT", "5")
        .env("WOLKVOX_NO_PREFLIGHT", "1")
        .args([
            "import",
            "tickets.csv",
            "--mapping",
            "tickets.yaml",
            "--force",
        ])
        .args(["--rate", "0", "--limit", "2", "-q"])
        .run();
    out.assert_code(2);
    assert_eq!(sim.state().stored(), 7);
}

#[test]
fn help_names_the_environment_variables_and_never_shows_the_token() {
    let secret = "s3cr3t-token-value-9d2e";
    for sub in [
        "import",
        "token-info",
        "runs",
        "resolve",
        "simulate",
        "validate",
    ] {
        let out = bin()
            .env("WOLKVOX_TOKEN", secret)
            .env("WOLKVOX_SERVER", "crm0042.example.com")
            .args([sub, "--help"])
            .run();
        assert_eq!(out.code(), 0, "{sub}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains(secret), "{sub} --help shows the token");
    }
    let out = bin()
        .env("WOLKVOX_SERVER", "crm0042.example.com")
        .args(["import", "--help"])
        .run();
    // Words joined by one space: clap wraps the help to the width of its longest values.
    let text = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for var in [
        "WOLKVOX_SERVER=crm0042.example.com",
        "env: WOLKVOX_TOKEN_FILE",
        "env: WOLKVOX_RATE",
        "env: WOLKVOX_CONCURRENCY",
        "env: WOLKVOX_OPERATION",
        "env: WOLKVOX_TIMEOUT",
        "env: WOLKVOX_LEDGER",
        "env: WOLKVOX_QUOTA_RESERVE",
        "WOLKVOX_TOKEN",
    ] {
        assert!(text.contains(var), "import --help lacks {var}:\n{text}");
    }
}

#[test]
fn simulate_wins_over_a_server_in_the_environment() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    let out = work
        .bin()
        .env("WOLKVOX_SERVER", sim.url())
        .args([
            "import",
            "tickets.csv",
            "--mapping",
            "tickets.yaml",
            "--simulate",
        ])
        .args(["--force", "--json"])
        .run();
    out.assert_code(2);
    assert_eq!(out.json()["created"], 232);
    // Nothing went to the server the environment names.
    assert_eq!(sim.state().calls_per_token().values().sum::<u64>(), 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WOLKVOX_SERVER) is not used"), "{stderr}");
}

/// One sample of a metrics file: name, labels (unescaped), value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: std::collections::BTreeMap<String, String>,
    value: f64,
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// The text exposition format, read strictly: every line a HELP, a TYPE or a sample;
/// HELP and TYPE at most once per family and before its samples; valid names; label
/// values in double quotes with only \\, \" and \n escaped; no series twice.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    use std::collections::{BTreeMap, HashSet};
    assert!(
        text.ends_with('\n'),
        "the last line must end with a line feed"
    );
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut helped: HashSet<String> = HashSet::new();
    let mut sampled: HashSet<String> = HashSet::new();
    let mut series: HashSet<String> = HashSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap(), parts.next().unwrap_or(""));
            assert!(valid_metric_name(name), "bad metric name in {line:?}");
            assert!(!sampled.contains(name), "{kind} after samples: {line:?}");
            match kind {
                "HELP" => assert!(helped.insert(name.into()), "HELP twice: {line:?}"),
                "TYPE" => {
                    let kind = parts.next().unwrap_or("");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "{line:?}"
                    );
                    assert!(
                        typed.insert(name.into(), kind.into()).is_none(),
                        "TYPE twice: {line:?}"
                    );
                }
                _ => panic!("a comment line the collector would not expect: {line:?}"),
            }
            continue;
        }
        assert!(!line.trim().is_empty(), "an empty line");
        let name_end = line.find(['{', ' ']).expect(line);
        let name = &line[..name_end];
        assert!(valid_metric_name(name), "bad metric name in {line:?}");
        assert!(
            typed.contains_key(name),
            "a sample before its TYPE: {line:?}"
        );
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices().peekable();
            let end = loop {
                let (start, c) = chars.next().expect(line);
                if c == '}' {
                    break start;
                }
                let eq = inner[start..].find('=').expect(line) + start;
                let label = inner[start..eq].trim_start_matches(',');
                assert!(valid_label_name(label), "bad label name in {line:?}");
                while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                    chars.next();
                }
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line:?}");
                let mut value = String::new();
                loop {
                    match chars.next().expect(line).1 {
                        '\\' => match chars.next().expect(line).1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            other => panic!("escape \\{other} in {line:?}"),
                        },
                        '"' => break,
                        '\n' => panic!("a raw line feed in {line:?}"),
                        c => value.push(c),
                    }
                }
                assert!(
                    labels.insert(label.to_string(), value).is_none(),
                    "{line:?}"
                );
                match chars.peek() {
                    Some((_, ',')) => {
                        chars.next();
                    }
                    Some((_, '}')) => {}
                    other => panic!("{other:?} after a label value in {line:?}"),
                }
            };
            rest = &inner[end + 1..];
        }
        let mut fields = rest.split_whitespace();
        let value = fields.next().expect(line);
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        if let Some(timestamp) = fields.next() {
            timestamp.parse::<i64>().expect(line);
        }
        assert!(fields.next().is_none(), "{line:?}");
        assert!(
            series.insert(format!("{name}{labels:?}")),
            "series twice: {line:?}"
        );
        sampled.insert(name.to_string());
        samples.push(Sample {
            name: name.into(),
            labels,
            value,
        });
    }
    samples
}

fn metric(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert_eq!(found.len(), 1, "{name}{labels:?} in {samples:#?}");
    found[0].value
}

#[test]
fn the_metrics_file_says_how_the_run_went_in_the_text_format() {
    let sim = sim_with_quota();
    let work = Work::with_sample();
    // A name with a quote and a backslash, to be escaped in its label.
    let input = "night \"7\" \\ tickets.csv";
    work.copy("samples/tickets.csv", input);
    std::fs::create_dir(work.path("textfile")).unwrap();
    let prom = work.path("textfile/wolkvox.prom");
    let out = work
        .import(input, &sim, "one")
        .arg("--metrics-file")
        .arg(&prom)
        .run();
    out.assert_code(2);
    let text = std::fs::read_to_string(&prom).unwrap();
    let samples = parse_prometheus(&text);
    let m = |name: &str, labels: &[(&str, &str)]| metric(&samples, name, labels);
    assert_eq!(m("wolkvox_import_last_run_exit_code", &[]), 2.0);
    assert_eq!(
        m("wolkvox_import_last_run_rows", &[("status", "created")]),
        232.0
    );
    assert_eq!(
        m("wolkvox_import_last_run_rows", &[("status", "invalid")]),
        8.0
    );
    assert_eq!(
        m("wolkvox_import_last_run_rows", &[("status", "pending")]),
        0.0
    );
    assert_eq!(m("wolkvox_import_last_run_rows_sent", &[]), 232.0);
    assert_eq!(m("wolkvox_import_last_run_info", &[("input", input)]), 1.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let end = m("wolkvox_import_last_run_end_timestamp_seconds", &[]);
    assert!(end > 1.7e9 && end <= now + 1.0, "{end}");
    assert!(m("wolkvox_import_last_run_duration_seconds", &[]) >= 0.0);
    // The calls are the CRM's own count: 232 inserts and the preflight.
    let calls = sim.state().calls_per_token()[TOKEN];
    assert_eq!(calls, 233);
    let token_calls: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == "wolkvox_import_last_run_token_calls")
        .collect();
    assert_eq!(token_calls.len(), 1);
    assert_eq!(token_calls[0].value, calls as f64);
    assert!(!token_calls[0].labels["token"].contains(TOKEN));
    assert_eq!(
        m("wolkvox_import_token_quota_left_calls", &[]),
        (4800 - calls) as f64
    );
    // Every sample names the target; the token itself is nowhere.
    let target = format!("{}|modulotest01", sim.url().trim_start_matches("http://"));
    assert!(
        samples
            .iter()
            .all(|s| s.labels.get("target") == Some(&target)),
        "{text}"
    );
    assert!(!text.contains(TOKEN));
    // Atomic: nothing but the file is left in the collector's directory.
    let left: Vec<_> = std::fs::read_dir(work.path("textfile"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [std::ffi::OsString::from("wolkvox.prom")]);

    // A night when nothing was done (exit 1) replaces it with its exit code.
    let out = work
        .bin()
        .env("WOLKVOX_TOKEN", TOKEN)
        .env("WOLKVOX_METRICS_FILE", &prom)
        .args([
            "import",
            input,
            "--mapping",
            "missing.yaml",
            "--server",
            &sim.url(),
        ])
        .run();
    assert_eq!(out.code(), 1);
    let samples = parse_prometheus(&std::fs::read_to_string(&prom).unwrap());
    assert_eq!(
        metric(&samples, "wolkvox_import_last_run_exit_code", &[]),
        1.0
    );
    assert!(
        metric(
            &samples,
            "wolkvox_import_last_run_end_timestamp_seconds",
            &[]
        ) >= end
    );
    assert!(
        !samples
            .iter()
            .any(|s| s.name == "wolkvox_import_last_run_rows")
    );
}

#[test]
fn a_header_only_file_says_so_and_spends_no_call() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    let header = work.read("tickets.csv").lines().next().unwrap().to_string();
    work.write("empty.csv", &format!("{header}\n"));
    let out = work.import("empty.csv", &sim, "empty").arg("--json").run();
    out.assert_code(0);
    let summary = out.json();
    assert_eq!(summary["rows"], 0);
    let warnings = summary["warnings"].to_string();
    assert!(warnings.contains("no data rows"), "{warnings}");
    // Not even the token-information call.
    assert_eq!(sim.state().calls_per_token().values().sum::<u64>(), 0);
}

/// A simulator whose one token has a daily quota, so that the preflight can plan.
fn sim_with_quota() -> Sim {
    Sim::start(wolkvox_import::simulator::Scenario {
        tokens: vec![TOKEN.into()],
        daily_limit: 4800,
        ..Default::default()
    })
}

/// `input` imported (tagged "two") with the quota plan logged; it exits 2. Its stderr and
/// its JSON summary.
fn import_with_plan(work: &Work, input: &str, sim: &Sim) -> (String, serde_json::Value) {
    let out = work
        .import(input, sim, "two")
        .arg("--json")
        .env("RUST_LOG", "wolkvox_import=info")
        .run();
    out.assert_code(2);
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.json(),
    )
}

#[test]
fn the_quota_plan_of_a_fed_back_errors_file_counts_its_duplicate_row_as_invalid() {
    let sim = sim_with_quota();
    let work = Work::with_sample();
    work.import("tickets.csv", &sim, "one").run().assert_code(2);
    // The errors file fed back unfixed: 7 rows with bad cells, and row 167, a duplicate of
    // row 165's ticket (which the first run created). The run keeps all 8 invalid, and
    // so does the plan it announces first.
    let (stderr, summary) = import_with_plan(&work, "one.errors.csv", &sim);
    assert!(
        stderr.contains("Quota plan: 0 rows to send (8 invalid and 0 created"),
        "{stderr}"
    );
    assert_eq!(summary["invalid"], 8);
    assert_eq!(summary["skipped"], 0);
}

#[test]
fn the_figures_count_what_was_sent_and_what_will_be() {
    let sim = sim_with_quota();
    let work = Work::with_sample();
    let first = work
        .import("tickets.csv", &sim, "one")
        .args(["--limit", "100"])
        .run();
    assert_eq!(first.code(), 2);
    // The second run: 8 invalid, 100 created before, so 132 to send, and 132 sent.
    let (stderr, summary) = import_with_plan(&work, "tickets.csv", &sim);
    assert!(
        stderr.contains("Quota plan: 132 rows to send (8 invalid and 100 created"),
        "{stderr}"
    );
    assert_eq!(summary["sent"], 132);
    assert_eq!(summary["skipped"], 100);
    // Calls per token: the preflight and the 132 inserts, as the CRM counted them.
    let tokens = summary["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0]["calls"], 133);
    assert_eq!(sim.state().calls_per_token()[TOKEN], 101 + 133);
    assert_eq!(tokens[0]["quota_left"], 4800 - 101 - 133);
}

#[test]
fn connections_never_made_cost_no_call() {
    // Nothing listens on the port of a simulator that was stopped.
    let url = {
        let sim = Sim::strict();
        sim.url()
    };
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
            &url,
        ])
        .args([
            "--no-preflight",
            "--max-retries",
            "0",
            "--rate",
            "0",
            "--json",
            "-q",
        ])
        .run();
    out.assert_code(3);
    let summary = out.json();
    assert!(summary["failed"].as_u64().unwrap() >= 10, "{summary}");
    assert_eq!(summary["tokens"][0]["calls"], 0, "{summary}");
}

#[test]
fn validate_lists_the_first_20_bad_cells_compiler_style() {
    let work = Work::with_sample();
    tickets_csv(&work, "bad.csv", 1..=30);
    // Every row gets a bad e-mail; rows 1 and 2 also lose their ticket type.
    let mut reader = csv::Reader::from_path(work.path("bad.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let mut writer = csv::Writer::from_path(work.path("tickets.csv")).unwrap();
    writer.write_record(&headers).unwrap();
    for (i, record) in reader.records().enumerate() {
        let mut cells: Vec<String> = record.unwrap().iter().map(str::to_string).collect();
        cells[CORREO] = "ana@".into();
        if i < 2 {
            cells[2] = "Felicitación".into();
        }
        writer.write_record(&cells).unwrap();
    }
    writer.flush().unwrap();
    let out = work.run(["validate", "tickets.csv", "--mapping", "tickets.yaml"]);
    assert_eq!(out.code(), 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let results = read_results(&work.path("tickets.results.csv"));
    assert_eq!(count(&results, "invalid"), 30);
    // 32 bad cells: the first 20 named, file:row: column: why.
    let listed: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("tickets.csv:"))
        .collect();
    assert_eq!(listed.len(), 20, "{stderr}");
    let row = |i: usize| results[i].row;
    assert!(
        listed[0].starts_with(&format!("tickets.csv:{}: Tipo: \"Felicitación\"", row(0))),
        "{stderr}"
    );
    assert_eq!(
        listed[1],
        format!(
            "tickets.csv:{}: Correo: not a valid e-mail address: \"ana@\"",
            row(0)
        )
    );
    assert_eq!(
        listed[19],
        format!(
            "tickets.csv:{}: Correo: not a valid e-mail address: \"ana@\"",
            row(17)
        )
    );
    assert!(
        stderr.contains("and 12 more in tickets.errors.csv"),
        "{stderr}"
    );
}

/// The sample with `extra` columns appended to every line (header first), as `name.csv`.
fn with_extra_columns(
    work: &Work,
    name: &str,
    header: &[&str],
    value: impl Fn(&csv::StringRecord) -> Vec<String>,
) {
    let mut reader = csv::Reader::from_path(work.path("tickets.csv")).unwrap();
    let mut headers: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    headers.extend(header.iter().map(|h| h.to_string()));
    let mut writer = csv::Writer::from_path(work.path(name)).unwrap();
    writer.write_record(&headers).unwrap();
    for record in reader.records() {
        let record = record.unwrap();
        let mut cells: Vec<String> = record.iter().map(str::to_string).collect();
        cells.extend(value(&record));
        writer.write_record(&cells).unwrap();
    }
    writer.flush().unwrap();
}

#[test]
fn a_repeated_header_matters_only_where_the_mapping_names_it() {
    let work = Work::with_sample();
    let validate = |input: &str, mapping: &str| {
        work.run(["validate", input, "--mapping", mapping, "--json", "--force"])
    };
    // A column the mapping never uses, twice: the file is read as before.
    with_extra_columns(&work, "notes.csv", &["Notas", "Notas"], |_| {
        vec!["a".into(), "b".into()]
    });
    let out = validate("notes.csv", "tickets.yaml");
    out.assert_code(2);
    assert_eq!(out.json()["valid"], 232);

    // `Correo` again as column O: the mapping's `column: Correo` is ambiguous.
    with_extra_columns(&work, "twice.csv", &["Correo"], |r| {
        vec![r[CORREO].to_string()]
    });
    let out = validate("twice.csv", "tickets.yaml");
    assert_eq!(out.code(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the header \"Correo\" appears twice (columns G and O)"),
        "{stderr}"
    );
    // Named by its letter, the column is unambiguous.
    let by_letter = work
        .read("tickets.yaml")
        .replace("column: Correo", "column: G");
    assert_ne!(by_letter, work.read("tickets.yaml"));
    work.write("by-letter.yaml", &by_letter);
    let out = validate("twice.csv", "by-letter.yaml");
    out.assert_code(2);
    assert_eq!(out.json()["valid"], 232);
}

/// The binary importing `input` into `sim` with `token`, with the human summary on stderr.
fn import_loud(work: &Work, input: &str, sim: &Sim, token: &str) -> std::process::Command {
    let mut cmd = work.bin();
    cmd.env("WOLKVOX_TOKEN", token)
        .args([
            "import",
            input,
            "--mapping",
            "tickets.yaml",
            "--server",
            &sim.url(),
        ])
        .args(["--rate", "0", "--force"]);
    cmd
}

#[test]
fn the_hints_match_what_stopped_the_run() {
    let sim = Sim::start(wolkvox_import::simulator::Scenario {
        tokens: vec![TOKEN.into()],
        daily_limit: 60,
        ..Default::default()
    });
    let work = Work::with_sample();
    // A wrong token: fix it, not "run the same command again" as if it were a hiccup.
    let out = import_loud(&work, "tickets.csv", &sim, "not-the-token").run();
    assert_eq!(out.code(), 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("next: 232 rows pending: fix the token first (WOLKVOX_TOKEN or --token-file"),
        "{stderr}"
    );
    assert!(!stderr.contains("once what stopped the run"), "{stderr}");

    // The quota: when to run again.
    let out = import_loud(&work, "tickets.csv", &sim, TOKEN).run();
    assert_eq!(out.code(), 4);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let next = stderr
        .lines()
        .find(|l| l.contains("rows pending"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        next.contains("after the quota resets (the CRM said it resets in 24 h, around 20"),
        "{next}"
    );
    assert!(next.contains(" UTC), run the same command again"), "{next}");
}

#[test]
fn sigterm_is_called_sigterm() {
    use std::process::Stdio;
    let sim = Sim::start(wolkvox_import::simulator::Scenario {
        tokens: vec![TOKEN.into()],
        latency: std::time::Duration::from_millis(20),
        ..Default::default()
    });
    let work = Work::with_sample();
    tickets_csv(&work, "many.csv", 1..=400);
    let child = import_loud(&work, "many.csv", &sim, TOKEN)
        .args(["--rate", "100", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(std::time::Duration::from_secs(20), || {
        sim.state().stored() >= 10
    }));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = Run(child.wait_with_output().unwrap());
    out.assert_code(130);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Interrupted by SIGTERM"), "{stderr}");
    assert!(!stderr.contains("Ctrl-C"), "{stderr}");
    assert_eq!(out.json()["stopped"], "interrupted (SIGTERM)");
}

#[test]
fn an_xlsx_report_that_exists_gets_a_timestamped_name_like_the_csv() {
    let work = Work::with_sample();
    let validate = || {
        work.bin()
            .args(["validate", "tickets.csv", "--mapping", "tickets.yaml"])
            .args(["--report", "night.xlsx", "--json"])
            .run()
    };
    let first = validate();
    first.assert_code(2);
    assert_eq!(first.json()["workbook"], "night.xlsx");
    let before = std::fs::read(work.path("night.xlsx")).unwrap();
    let second = validate();
    second.assert_code(2);
    let named = second.json()["workbook"].as_str().unwrap().to_string();
    assert!(
        named.starts_with("night.") && named.ends_with(".xlsx") && named != "night.xlsx",
        "{named}"
    );
    // A real workbook (a ZIP), and the first night's left as it was.
    let bytes = std::fs::read(work.path(&named)).unwrap();
    assert!(bytes.starts_with(b"PK\x03\x04"), "{named} is no workbook");
    assert_eq!(std::fs::read(work.path("night.xlsx")).unwrap(), before);

    let out = work.run(["import", "--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("--report <FILE.csv|FILE.xlsx>"));
}

#[test]
fn concurrency_above_two_per_token_is_warned_about() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    let out = work
        .import("tickets.csv", &sim, "run")
        .args(["--concurrency", "3", "--limit", "10", "--json"])
        .run();
    out.assert_code(2);
    let warnings = out.json()["warnings"].to_string();
    assert!(
        warnings.contains("--concurrency 3: Wolkvox refuses a third simultaneous request"),
        "{warnings}"
    );
    assert!(warnings.contains("costs quota"), "{warnings}");
    // Two per token: no word about it.
    let out = work
        .import("tickets.csv", &sim, "two")
        .args(["--limit", "10", "--json"])
        .run();
    assert!(!out.json()["warnings"].to_string().contains("--concurrency"));
}

#[cfg(unix)]
#[test]
fn a_kubernetes_secret_mode_is_not_nagged_about_a_world_readable_file_is() {
    use std::os::unix::fs::PermissionsExt;
    let sim = Sim::strict();
    let work = Work::with_sample();
    work.write("token", &format!("{TOKEN}\n"));
    let run = |mode: u32| {
        std::fs::set_permissions(work.path("token"), std::fs::Permissions::from_mode(mode))
            .unwrap();
        let out = work
            .bin()
            .args([
                "import",
                "tickets.csv",
                "--mapping",
                "tickets.yaml",
                "--server",
                &sim.url(),
            ])
            .args([
                "--token-file",
                "token",
                "--rate",
                "0",
                "--force",
                "--limit",
                "2",
            ])
            .run();
        out.assert_code(2);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // 0440: a Secret volume's file, group-readable for the pod's fsGroup.
    let stderr = run(0o440);
    assert!(!stderr.contains("The token file"), "{stderr}");
    let stderr = run(0o644);
    assert!(
        stderr.contains("The token file can be read by every user of this machine"),
        "{stderr}"
    );
    assert!(stderr.contains("defaultMode: 0400"), "{stderr}");
}

#[test]
fn simulate_listens_on_localhost_by_name_and_stops_on_sigterm() {
    use std::io::BufRead;
    let mut child = bin()
        .args([
            "simulate",
            "--listen",
            "localhost:0",
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
    assert!(url.starts_with("http://127.0.0.1:"), "{url:?}");
    let work = Work::with_sample();
    let out = work
        .bin()
        .env("WOLKVOX_TOKEN", "demo")
        .args([
            "import",
            "tickets.csv",
            "--mapping",
            "tickets.yaml",
            "--server",
            &url,
        ])
        .args(["--rate", "0", "--limit", "3", "-q", "--json"])
        .run();
    assert_eq!(out.json()["created"], 3);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Bounded: SIGTERM stops it, or the test kills it and fails.
    let stopped = wait_until(std::time::Duration::from_secs(10), || {
        child.try_wait().unwrap().is_some()
    });
    if !stopped {
        let _ = child.kill();
    }
    assert!(stopped, "the simulator did not stop on SIGTERM");
    assert_eq!(child.wait().unwrap().code(), Some(0));

    let out = bin().args(["simulate", "--listen", "no-port-here"]).run();
    assert_eq!(out.code(), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("write HOST:PORT"));
}
