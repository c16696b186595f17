//! `docs/summary.schema.json` describes what `--json` really prints: the lines of real runs
//! (clean, with invalid rows, a quota stop, a workbook, one that did nothing, and the
//! summary of a `--log-format json` line) validate against it, and a
//! line it does not describe does not.

use crate::support::*;

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo("docs/summary.schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

/// Fails, naming every mismatch, unless `line` is one the schema describes.
fn assert_valid(validator: &jsonschema::Validator, what: &str, line: &serde_json::Value) {
    let errors: Vec<String> = validator
        .iter_errors(line)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}\n{line:#}");
}

#[test]
fn real_json_summaries_validate_against_the_committed_schema() {
    let validator = validator();
    let work = Work::with_sample();

    // A clean run: every row created, exit 0.
    let sim = Sim::strict();
    tickets_csv(&work, "clean.csv", 1..=20);
    let clean = work.import("clean.csv", &sim, "clean").arg("--json").run();
    clean.assert_code(0);
    let summary = clean.json();
    assert_eq!(summary["created"], 20);
    assert_eq!(summary["tokens"][0]["state"], "ok");
    assert_valid(&validator, "clean import", &summary);

    // Invalid rows: import, and validate (whose counts are valid/invalid).
    let invalid = work
        .import("tickets.csv", &sim, "invalid")
        .arg("--json")
        .run();
    invalid.assert_code(2);
    assert_eq!(invalid.json()["invalid"], 8);
    assert_valid(&validator, "import with invalid rows", &invalid.json());
    let validated = work.run([
        "validate",
        "tickets.csv",
        "--mapping",
        "tickets.yaml",
        "--json",
        "--force",
    ]);
    validated.assert_code(2);
    assert_eq!(validated.json()["valid"], 232);
    assert_valid(&validator, "validate", &validated.json());

    // A workbook, with an .xlsx report: a sheet and a workbook path, no encoding.
    let workbook = work.run([
        "validate",
        "tickets.xlsx",
        "--mapping",
        "tickets.yaml",
        "--report",
        "night.xlsx",
        "--json",
    ]);
    workbook.assert_code(2);
    assert_eq!(workbook.json()["workbook"], "night.xlsx");
    assert!(workbook.json()["sheet"].is_string());
    assert_valid(&validator, "validate of a workbook", &workbook.json());

    // A quota stop: exit 4, and why it stopped.
    let small = Sim::start(wolkvox_import::simulator::Scenario {
        tokens: vec![TOKEN.into()],
        daily_limit: 60,
        ..Default::default()
    });
    let quota = work
        .import("tickets.csv", &small, "quota")
        .arg("--json")
        .run();
    quota.assert_code(4);
    assert!(quota.json()["stopped"].is_string());
    assert!(quota.json()["tokens"][0]["quota_left"].is_u64());
    assert_valid(&validator, "quota stop", &quota.json());

    // Nothing done (exit 1): the other shape a nightly `--json >> nightly.jsonl` gets.
    let nothing = work.run([
        "validate",
        "tickets.csv",
        "--mapping",
        "missing.yaml",
        "--json",
    ]);
    nothing.assert_code(1);
    assert!(nothing.json()["error"].is_string());
    assert_valid(&validator, "nothing done", &nothing.json());

    // The summary carried by the last line of `--log-format json`.
    let logged = work.run([
        "--log-format",
        "json",
        "validate",
        "tickets.csv",
        "--mapping",
        "tickets.yaml",
        "--force",
    ]);
    logged.assert_code(2);
    let stderr = logged.stderr();
    let last: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(last["fields"]["message"], "Run finished.", "{stderr}");
    assert_eq!(last["fields"]["summary"]["valid"], 232, "{stderr}");
    assert_valid(&validator, "log line summary", &last["fields"]["summary"]);
}

#[test]
fn the_schema_refuses_what_json_never_prints() {
    let validator = validator();
    let work = Work::with_sample();
    let out = work.run([
        "validate",
        "tickets.csv",
        "--mapping",
        "tickets.yaml",
        "--json",
    ]);
    out.assert_code(2);
    let real = out.json();
    assert_valid(&validator, "validate", &real);
    let changed = |change: &dyn Fn(&mut serde_json::Map<String, serde_json::Value>)| {
        let mut line = real.clone();
        change(line.as_object_mut().unwrap());
        line
    };
    for (what, line) in [
        ("a count missing", changed(&|o| drop(o.remove("rows")))),
        (
            "a field it never writes",
            changed(&|o| drop(o.insert("extra".into(), 1.into()))),
        ),
        (
            "a count as text",
            changed(&|o| drop(o.insert("invalid".into(), "8".into()))),
        ),
        (
            "a null count",
            changed(&|o| drop(o.insert("valid".into(), serde_json::Value::Null))),
        ),
        (
            "an unknown token state",
            changed(&|o| {
                let token = serde_json::json!({"token": "ab", "calls": 1, "quota_left": null, "state": "gone"});
                o.insert("tokens".into(), serde_json::json!([token]));
            }),
        ),
    ] {
        assert!(!validator.is_valid(&line), "{what} passed: {line}");
    }
}
