//! What operators script against: `runs --json`, `runs --find`, the environment, metrics.

use crate::support::*;

fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn runs_json_lists_and_shows_runs_with_their_counts() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    let first = work.import("tickets.csv", &sim, "one").output().unwrap();
    assert_eq!(
        code(&first),
        2,
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let target = ["--server", &sim.url(), "--mapping", "tickets.yaml"];
    let out = work
        .bin()
        .arg("runs")
        .args(target)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let list = json_of(&out);
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

    let out = work
        .bin()
        .arg("runs")
        .args(target)
        .args(["--show", "1", "--json"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let shown = json_of(&out);
    assert_eq!(shown["run"]["counts"]["created"], 232);
    assert_eq!(shown["open_rows"], serde_json::json!([]));

    // A run that cannot be shown still answers in JSON, with its exit code.
    let out = work
        .bin()
        .args(["runs", "--ledger", "missing.sqlite", "--json"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    let failed = json_of(&out);
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
    let first = work.import("tickets.csv", &sim, "one").output().unwrap();
    assert_eq!(
        code(&first),
        2,
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
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
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let answer = json_of(&out);
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
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
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
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Five sent (--limit), the rest pending: exit 2.
    assert_eq!(code(&out), 2, "{stderr}");
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
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", String::from_utf8_lossy(&out.stderr));
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
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{sub}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains(secret), "{sub} --help shows the token");
    }
    let out = bin()
        .env("WOLKVOX_SERVER", "crm0042.example.com")
        .args(["import", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
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
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json_of(&out)["created"], 232);
    // Nothing went to the server the environment names.
    assert_eq!(sim.state().calls_per_token().values().sum::<u64>(), 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WOLKVOX_SERVER) is not used"), "{stderr}");
}
