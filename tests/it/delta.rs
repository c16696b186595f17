//! Nightly deltas (`import --update`): a re-run of a changed export, with the defaults a
//! user has (the target's own ledger, a new file name each night), checked against what
//! the simulated CRM holds.

use std::collections::BTreeMap;

use wolkvox_import::simulator::{Endpoint, Faults, Scenario};

use crate::support::*;

/// The sample with some of its rows changed, written as `name`. `changes` maps a ticket
/// to (column, new value) pairs.
fn changed_copy(work: &Work, name: &str, changes: &[(&str, &str, &str)]) {
    changed_from(work, "tickets.csv", name, changes);
}

/// `from` with `changes` applied (ticket "*" for every row), written as `name`.
fn changed_from(work: &Work, from: &str, name: &str, changes: &[(&str, &str, &str)]) {
    let mut reader = csv::Reader::from_path(work.path(from)).unwrap();
    let headers = reader.headers().unwrap().clone();
    let mut writer = csv::Writer::from_path(work.path(name)).unwrap();
    writer.write_record(&headers).unwrap();
    for record in reader.records() {
        let mut cells: Vec<String> = record.unwrap().iter().map(str::to_string).collect();
        for (ticket, column, value) in changes {
            if cells[0] == *ticket || *ticket == "*" {
                let at = headers.iter().position(|h| h == *column).unwrap();
                cells[at] = value.to_string();
            }
        }
        writer.write_record(&cells).unwrap();
    }
    writer.flush().unwrap();
}

fn import(work: &Work, sim: &Sim, input: &str, tag: &str, update: bool) -> Run {
    let mut cmd = work.import(input, sim, tag);
    cmd.arg("--json");
    if update {
        cmd.arg("--update");
    }
    cmd.run()
}

fn by_ticket(sim: &Sim) -> BTreeMap<String, wolkvox_import::simulator::StoredCase> {
    sim.cases()
        .into_iter()
        .map(|c| (ticket_of(&c), c))
        .collect()
}

fn form_value(case: &wolkvox_import::simulator::StoredCase, key: &str) -> String {
    let form: serde_json::Value = serde_json::from_str(&case.fields["form"]).unwrap();
    form[key].as_str().unwrap_or_default().to_string()
}

fn calls(sim: &Sim, endpoint: Endpoint) -> usize {
    sim.state()
        .arrivals()
        .iter()
        .filter(|a| a.endpoint == endpoint)
        .count()
}

fn message_of<'a>(rows: &'a [ResultRow], ticket: &str) -> &'a ResultRow {
    rows.iter()
        .find(|r| r.key == ticket)
        .unwrap_or_else(|| panic!("no results row for {ticket}"))
}

#[test]
fn a_changed_nightly_export_is_reported_then_updated_and_never_inserted_again() {
    let work = Work::with_sample();
    let sim = Sim::strict();
    let first = import(&work, &sim, "tickets.csv", "night1", false);
    let created = first.json()["created"].as_u64().unwrap();
    assert!(created > 200, "{}", first.stderr());
    let before = by_ticket(&sim);
    let t1 = "PQR-2024-000001";
    let t2 = "PQR-2024-000002";
    let t3 = "PQR-2024-000003";
    assert_eq!(before[t1].fields["status"], "Abierto");

    // The next night's export, under another name: one ticket closed, one re-described,
    // one moved to another city and re-prioritised.
    changed_copy(
        &work,
        "tickets-night2.csv",
        &[
            (t1, "Estado", "Cerrado"),
            (t1, "Solución", "Se cambió el módem"),
            (t2, "Descripción", "Texto nuevo de la descripción"),
            (t3, "Ciudad", "Pasto"),
            (t3, "Prioridad", "Alta"),
        ],
    );
    let inserts = calls(&sim, Endpoint::Insert);
    // The dry run, told the target, says what an import would do: no call at all.
    let requests = sim.requests();
    let dry = work.run([
        "validate",
        "tickets-night2.csv",
        "--mapping",
        "tickets.yaml",
        "--json",
        "--server",
        &sim.url(),
    ]);
    let impact = &dry.json()["impact"];
    assert_eq!(impact["changed"], 3, "{}", dry.stderr());
    assert_eq!(impact["new"], 0);
    assert_eq!(impact["unchanged"].as_u64(), Some(created - 3));
    assert_eq!(impact["changed_fields"]["status"], 1);
    assert_eq!(impact["changed_fields"]["form.Ciudad"], 1);
    // preview says it per row.
    let shown = work.run([
        "preview",
        "tickets-night2.csv",
        "--mapping",
        "tickets.yaml",
        "--rows",
        "4",
        "--server",
        &sim.url(),
    ]);
    let lines: Vec<serde_json::Value> = shown
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0]["import"]["changed"],
        serde_json::json!(["solution", "status"])
    );
    assert_eq!(
        lines[1]["import"]["changed"],
        serde_json::json!(["description"])
    );
    assert_eq!(lines[3]["import"], "unchanged", "{}", shown.stdout());
    assert_eq!(sim.requests(), requests);
    let reported = import(&work, &sim, "tickets-night2.csv", "night2", false);
    let json = reported.json();
    assert_eq!(json["created"], 0, "{}", reported.stderr());
    assert_eq!(json["changed"], 3);
    assert_eq!(json["updated"], 0);
    let rows = work.results("night2");
    let m1 = &message_of(&rows, t1).message;
    assert_eq!(message_of(&rows, t1).status, "skipped");
    assert!(
        m1.contains("changed since run 1: solution, status — pass --update to send"),
        "{m1}"
    );
    let m2 = &message_of(&rows, t2).message;
    assert!(
        m2.contains("description changed: cannot be updated through the API"),
        "{m2}"
    );
    assert!(
        message_of(&rows, t3)
            .message
            .contains("form.Ciudad, priority")
    );
    // Without --update nothing was sent, and the CRM is as it was.
    assert_eq!(calls(&sim, Endpoint::Insert), inserts);
    assert_eq!(calls(&sim, Endpoint::Update), 0);
    assert_eq!(by_ticket(&sim)[t1].fields["status"], "Abierto");

    let updating = import(&work, &sim, "tickets-night2.csv", "night3", true);
    let json = updating.json();
    assert_eq!(json["updated"], 2, "{}", updating.stderr());
    assert_eq!(json["created"], 0);
    // The sample's invalid rows still are: the exit code is the first night's.
    assert_eq!(updating.code(), first.code(), "{}", updating.stderr());
    // Two updates, no insert: what the CRM holds is the new file's, field by field.
    assert_eq!(calls(&sim, Endpoint::Insert), inserts);
    assert_eq!(calls(&sim, Endpoint::Update), 2);
    let after = by_ticket(&sim);
    assert_eq!(after.len(), before.len());
    assert_eq!(after[t1].fields["status"], "Cerrado");
    assert_eq!(after[t1].fields["solution"], "Se cambió el módem");
    assert_eq!(after[t1].id, before[t1].id);
    assert_eq!(after[t1].updates, 1);
    assert_eq!(form_value(&after[t3], "Ciudad"), "Pasto");
    assert_eq!(after[t3].fields["priority"], "Alta");
    // The description cannot go through update.php: reported, not sent.
    assert_eq!(after[t2].updates, 0);
    assert_eq!(
        after[t2].fields["description"],
        before[t2].fields["description"]
    );
    let rows = work.results("night3");
    assert_eq!(message_of(&rows, t1).status, "updated");
    assert_eq!(message_of(&rows, t1).message, "updated: solution, status");
    assert_eq!(message_of(&rows, t2).status, "skipped");

    // The same file again: nothing changed since the updates, nothing is sent.
    let again = import(&work, &sim, "tickets-night2.csv", "night4", true);
    assert_eq!(again.json()["updated"], 0, "{}", again.stderr());
    assert_eq!(calls(&sim, Endpoint::Update), 2);
    assert_eq!(calls(&sim, Endpoint::Insert), inserts);
}

#[test]
fn an_update_the_crm_does_not_answer_is_sent_again_by_the_next_run() {
    let work = Work::with_sample();
    // A CRM that stores each request, then answers 500: healthy for the first night.
    let sim = Sim::start(Scenario {
        tokens: vec![TOKEN.into()],
        faults: Faults {
            error_500_after_store: 1.0,
            ..Faults::default()
        },
        ..Scenario::default()
    });
    sim.state().heal();
    import(&work, &sim, "tickets.csv", "night1", false);
    let t1 = "PQR-2024-000001";
    changed_copy(&work, "tickets-night2.csv", &[(t1, "Estado", "Cerrado")]);
    sim.state().fail_again();
    let run = import(&work, &sim, "tickets-night2.csv", "night2", true);
    sim.state().heal();
    let rows = work.results("night2");
    let row = message_of(&rows, t1);
    assert_ne!(row.status, "updated", "{}", run.stderr());
    assert!(
        row.message
            .contains("the next import --update sends it again"),
        "{}",
        row.message
    );
    // An update is the same when repeated: the next run sends it again, and it is
    // still one case.
    let next = import(&work, &sim, "tickets-night2.csv", "night3", true);
    assert_eq!(next.json()["updated"], 1, "{}", next.stderr());
    let cases = by_ticket(&sim);
    assert_eq!(cases[t1].fields["status"], "Cerrado");
    assert_eq!(sim.stored_per_ticket()[t1], 1);
}

#[test]
fn kill_9_during_an_update_run_then_a_rerun_applies_every_change_and_inserts_nothing() {
    use std::process::Stdio;
    use std::time::Duration;
    let work = Work::with_sample();
    let sim = Sim::strict();
    tickets_csv(&work, "many.csv", 1..=300);
    import(&work, &sim, "many.csv", "night1", false).assert_code(0);
    assert_eq!(sim.cases().len(), 300);
    let inserts = calls(&sim, Endpoint::Insert);
    changed_from(
        &work,
        "many.csv",
        "many-night2.csv",
        &[("*", "Estado", "Cerrado")],
    );
    let mut child = work
        .import("many-night2.csv", &sim, "killed")
        .args(["--update", "--rate", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let updated = |sim: &Sim| sim.cases().iter().filter(|c| c.updates > 0).count();
    assert!(wait_until(Duration::from_secs(20), || updated(&sim) >= 40));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(updated(&sim) < 300, "the run finished before it was killed");

    let rerun = import(&work, &sim, "many-night2.csv", "rerun", true);
    rerun.assert_code(0);
    // Every change applied, each case still one, and not one insert.
    assert_eq!(calls(&sim, Endpoint::Insert), inserts);
    let cases = sim.cases();
    assert_eq!(cases.len(), 300);
    assert!(cases.iter().all(|c| c.fields["status"] == "Cerrado"));
    assert!(sim.stored_per_ticket().values().all(|n| *n == 1));
    // The killed run's in-flight updates are sent again (harmless): at most those.
    let sent_again = cases.iter().filter(|c| c.updates > 1).count();
    assert!(sent_again <= 4 + 64, "{sent_again} updates sent twice");
}
