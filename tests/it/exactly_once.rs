//! Exactly once under faults: re-runs, the ledger, kill -9, Ctrl-C, quota, a down server.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use wolkvox_import::simulator::{Faults, Scenario};

use crate::support::*;

/// A CSV of `n` valid tickets T-000001…, in the sample's columns.
fn valid_tickets(work: &Work, name: &str, n: usize) {
    tickets_csv(work, name, 1..=n);
}

fn keys_with(results: &[ResultRow], status: &str) -> BTreeSet<String> {
    results
        .iter()
        .filter(|r| r.status == status)
        .map(|r| r.key.clone())
        .collect()
}

#[test]
fn a_rerun_with_the_same_ledger_skips_what_was_created() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    assert_eq!(code(&work.import("tickets.csv", &sim, "first").run()), 2);
    let out = work.import("tickets.csv", &sim, "second").run();
    assert_eq!(out.code(), 2, "the invalid rows are still invalid");
    let second = work.results("second");
    assert_eq!(count(&second, "skipped"), 232);
    assert_eq!(count(&second, "created"), 0);
    assert_eq!(sim.cases().len(), 232, "the second run sent nothing");
    // Skipped rows carry the case id the first run got.
    let first = work.results("first");
    let id_of =
        |rows: &[ResultRow], key: &str| rows.iter().find(|r| r.key == key).unwrap().case_id.clone();
    assert_eq!(
        id_of(&second, "PQR-2024-000001"),
        id_of(&first, "PQR-2024-000001")
    );
}

#[test]
fn under_every_fault_nothing_is_lost_and_nothing_duplicated() {
    let sim = Sim::start(Scenario {
        tokens: vec![TOKEN.into()],
        maintenance: Some((100, 110)),
        faults: Faults {
            error_500_before_store: 0.02,
            error_500_after_store: 0.02,
            error_503: 0.02,
            too_many_429: 0.02,
            retry_after_secs: 0,
            drop_before_store: 0.02,
            drop_after_store: 0.02,
            hang_after_store: 0.003,
            hang_for: Duration::from_millis(2500),
        },
        ..Scenario::default()
    });
    let work = Work::with_sample();
    valid_tickets(&work, "many.csv", 2000);
    let out = work
        .import("many.csv", &sim, "run")
        .args(["--timeout", "1", "--max-retries", "8"])
        .run();
    out.assert_code(2);

    let results = work.results("run");
    assert_eq!(results.len(), 2000);
    assert!(
        results
            .iter()
            .all(|r| ["created", "uncertain", "failed"].contains(&r.status.as_str()))
    );
    let created = keys_with(&results, "created");
    let uncertain = keys_with(&results, "uncertain");
    let stored = sim.stored_per_ticket();
    assert!(
        stored.values().all(|&n| n == 1),
        "a ticket was stored twice"
    );
    let stored_keys: BTreeSet<String> = stored.keys().cloned().collect();
    assert!(
        created.is_subset(&stored_keys),
        "a row reported created is not in the CRM"
    );
    let unexplained: Vec<_> = stored_keys
        .difference(&created)
        .filter(|k| !uncertain.contains(*k))
        .collect();
    assert!(
        unexplained.is_empty(),
        "stored but neither created nor uncertain: {unexplained:?}"
    );
    assert!(
        !uncertain.is_empty(),
        "the faults should have made some rows uncertain"
    );

    // A re-run creates only what was not created, and resends no uncertain row.
    let before = sim.cases().len();
    let out = work.import("many.csv", &sim, "again").run();
    let again = work.results("again");
    assert_eq!(keys_with(&again, "skipped"), created);
    assert_eq!(keys_with(&again, "uncertain"), uncertain);
    let failed_before = keys_with(&results, "failed");
    assert_eq!(
        sim.cases().len() - before,
        keys_with(&again, "created").len()
    );
    assert!(keys_with(&again, "created").is_subset(&failed_before));
    assert!(sim.stored_per_ticket().values().all(|&n| n == 1));
    assert!([0, 2].contains(&out.code()));
}

#[test]
fn kill_9_mid_run_then_rerun_loses_and_duplicates_nothing() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    valid_tickets(&work, "many.csv", 400);
    let mut child = work
        .import("many.csv", &sim, "killed")
        .args(["--rate", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(20), || sim.cases().len() >= 50));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let after_kill = sim.cases().len();
    assert!(after_kill < 400, "the run finished before it was killed");

    // The killed run's results file is a truthful prefix: everything it says created is
    // stored in the CRM and recorded created in the ledger.
    let partial = work.results("killed");
    let stored: BTreeSet<String> = sim.stored_per_ticket().keys().cloned().collect();
    assert!(keys_with(&partial, "created").is_subset(&stored));
    let ledger = rusqlite::Connection::open(work.ledger()).unwrap();
    let in_ledger: BTreeSet<String> = ledger
        .prepare("SELECT key FROM cases WHERE status = 'created'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(keys_with(&partial, "created").is_subset(&in_ledger));
    assert!(
        in_ledger.is_subset(&stored),
        "the ledger says created only what the CRM has"
    );

    let out = work.import("many.csv", &sim, "rerun").run();
    let rerun = work.results("rerun");
    let stored = sim.stored_per_ticket();
    assert!(
        stored.values().all(|&n| n == 1),
        "a ticket was stored twice"
    );
    let uncertain = keys_with(&rerun, "uncertain");
    // The bound the README gives: the 2 requests in flight, and the next row of each slot,
    // marked (and on disk) while its request was out; plus, when the disk syncs slower
    // than the CRM answers (a loaded machine: this CRM answers at once), up to 64 rows
    // marked ahead so that one sync covers several requests; and the rows answered since
    // the last batch, whose answers wait for the next (64 at most, while the writer keeps
    // up with this CRM).
    assert!(
        uncertain.len() <= 4 + 64 + 64,
        "more uncertain rows than requests in flight and marked ahead: {uncertain:?}"
    );
    // Every ticket is in the CRM, or flagged uncertain for the user to check.
    let accounted: BTreeSet<String> = stored
        .keys()
        .cloned()
        .chain(uncertain.iter().cloned())
        .collect();
    assert_eq!(accounted.len(), 400);
    assert_eq!(out.code(), if uncertain.is_empty() { 0 } else { 2 });
}

#[test]
fn ctrl_c_stops_cleanly_with_exit_130_and_the_report_matches_the_crm() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    valid_tickets(&work, "many.csv", 400);
    let child = work
        .import("many.csv", &sim, "run")
        .args(["--rate", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(20), || sim.cases().len() >= 30));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = Run(child.wait_with_output().unwrap());
    out.assert_code(130);
    let results = work.results("run");
    assert_eq!(results.len(), 400, "every row is in the results file");
    let created = keys_with(&results, "created");
    let stored: BTreeSet<String> = sim.stored_per_ticket().keys().cloned().collect();
    assert_eq!(created, stored, "the report and the CRM agree");
    assert!(count(&results, "pending") > 0);
    assert_eq!(created.len() + count(&results, "pending"), 400);
}

#[test]
fn a_second_run_on_the_same_ledger_refuses_to_start() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    valid_tickets(&work, "many.csv", 300);
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
    let out = work.import("many.csv", &sim, "second").run();
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(out.code(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("another run") && stderr.contains("wait for it to finish"),
        "{stderr}"
    );
}

#[test]
fn the_daily_quota_stops_the_run_with_exit_4_and_the_next_run_continues() {
    let sim = Sim::start(Scenario {
        tokens: vec![TOKEN.into()],
        daily_limit: 150,
        ..Scenario::default()
    });
    let work = Work::with_sample();
    // Without the preflight, the run meets the quota as a 403 TOKEN LIMIT EXCEEDED mid-run.
    let out = work
        .import("tickets.csv", &sim, "night1")
        .arg("--no-preflight")
        .run();
    out.assert_code(4);
    let night1 = work.results("night1");
    assert_eq!(count(&night1, "created"), 150);
    assert_eq!(sim.cases().len(), 150);
    let odd: Vec<_> = night1
        .iter()
        .filter(|r| !["created", "pending", "invalid"].contains(&r.status.as_str()))
        .collect();
    assert!(odd.is_empty(), "{odd:?}");
    assert_eq!(night1.len(), 240);

    sim.state().reset_quota();
    let out = work.import("tickets.csv", &sim, "night2").run();
    out.assert_code(2);
    let night2 = work.results("night2");
    assert_eq!(count(&night2, "skipped"), 150);
    assert_eq!(count(&night2, "created"), 82);
    assert_eq!(sim.cases().len(), 232);
    assert!(sim.stored_per_ticket().values().all(|&n| n == 1));
}

#[test]
fn a_server_that_keeps_failing_stops_the_run_instead_of_marking_every_row() {
    let sim = Sim::start(Scenario {
        tokens: vec![TOKEN.into()],
        faults: Faults {
            error_500_before_store: 1.0,
            ..Faults::default()
        },
        ..Scenario::default()
    });
    let work = Work::with_sample();
    let out = work.import("tickets.csv", &sim, "run").run();
    assert_eq!(out.code(), 3);
    assert!(sim.requests() <= 12, "{} requests", sim.requests());
    let results = work.results("run");
    assert!(count(&results, "uncertain") <= 12);
    assert!(count(&results, "pending") > 200);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("looks down"), "{stderr}");
}

#[test]
fn uncertain_rows_are_not_resent_unless_asked() {
    let sim = Sim::start(Scenario {
        tokens: vec![TOKEN.into()],
        faults: Faults {
            error_500_after_store: 0.2,
            ..Faults::default()
        },
        ..Scenario::default()
    });
    let work = Work::with_sample();
    work.import("tickets.csv", &sim, "first").run();
    let first = work.results("first");
    let uncertain = keys_with(&first, "uncertain");
    assert!(!uncertain.is_empty());
    let stored_before = sim.cases().len();
    work.import("tickets.csv", &sim, "second").run();
    assert_eq!(
        sim.cases().len(),
        stored_before,
        "nothing resent without --resend-uncertain"
    );
    let out = work
        .import("tickets.csv", &sim, "third")
        .arg("--resend-uncertain")
        .run();
    assert!([0, 2].contains(&out.code()));
    let third = work.results("third");
    // Each uncertain row was sent again (the simulator stored them before failing, so the
    // user was right to be asked first: they now exist twice).
    let resent: BTreeSet<String> = third
        .iter()
        .filter(|r| uncertain.contains(&r.key) && r.attempts != "0")
        .map(|r| r.key.clone())
        .collect();
    assert_eq!(resent, uncertain);
}

#[test]
fn retry_ambiguous_trades_uncertain_rows_for_possible_duplicates() {
    let sim = Sim::start(Scenario {
        tokens: vec![TOKEN.into()],
        faults: Faults {
            error_500_after_store: 0.3,
            ..Faults::default()
        },
        ..Scenario::default()
    });
    let work = Work::with_sample();
    let out = work
        .import("tickets.csv", &sim, "run")
        .args(["--retry-ambiguous", "--max-retries", "20"])
        .run();
    assert_eq!(out.code(), 2, "only the invalid rows are left");
    let results = work.results("run");
    assert_eq!(count(&results, "uncertain"), 0);
    assert_eq!(count(&results, "created"), 232);
    // The price the flag names: a 500 after storing, retried, stores the ticket again.
    assert!(sim.cases().len() > 232);
    assert_eq!(sim.stored_per_ticket().len(), 232);
}

/// With `on_duplicate_key: send` a repeated key is not refused by the file check, so the
/// ledger must catch it: the second row is skipped as created by this very run, and the
/// CRM holds the ticket once (a first run over an empty ledger still looks it up).
#[test]
fn a_repeated_key_sent_on_purpose_is_still_created_once() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    valid_tickets(&work, "six.csv", 6);
    let mut reader = csv::Reader::from_path(work.path("six.csv")).unwrap();
    let mut writer = csv::Writer::from_path(work.path("twice.csv")).unwrap();
    writer.write_record(reader.headers().unwrap()).unwrap();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    for record in records.iter().chain([&records[2]]) {
        writer.write_record(record).unwrap();
    }
    writer.flush().unwrap();
    let mapping = work
        .read("tickets.yaml")
        .replace("key: [Ticket]", "key: [Ticket]\non_duplicate_key: send");
    work.write("tickets.yaml", &mapping);

    let out = work.import("twice.csv", &sim, "run").run();
    let results = work.results("run");
    assert_eq!(out.code(), 0, "{results:?}");
    assert_eq!(results.len(), 7);
    assert_eq!(count(&results, "created"), 6);
    let repeated = results.iter().max_by_key(|r| r.row).unwrap();
    assert_eq!(repeated.status, "skipped", "{repeated:?}");
    assert_eq!(repeated.key, "T-000003");
    assert!(sim.stored_per_ticket().values().all(|&n| n == 1));
    assert_eq!(sim.cases().len(), 6);
}
