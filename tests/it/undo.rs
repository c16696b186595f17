//! `undo --run N`: the pilot workflow (send 50, look, undo, import everything) with the
//! defaults a user has, checked against what the simulated CRM holds.

use std::collections::BTreeMap;

use wolkvox_import::simulator::Endpoint;

use crate::support::*;

fn undo(work: &Work, sim: &Sim, extra: &[&str]) -> Run {
    let mut cmd = work.bin();
    cmd.env("WOLKVOX_TOKEN", TOKEN)
        .args([
            "undo",
            "--run",
            "1",
            "--mapping",
            "tickets.yaml",
            "--rate",
            "0",
            "--server",
        ])
        .arg(sim.url())
        .args(extra);
    cmd.run()
}

/// Delete calls the CRM received.
fn deletes(sim: &Sim) -> usize {
    sim.state()
        .arrivals()
        .iter()
        .filter(|a| a.endpoint == Endpoint::Delete)
        .count()
}

/// Live (not deleted) cases per ticket.
fn live_per_ticket(sim: &Sim) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for case in sim.cases().into_iter().filter(|c| !c.deleted) {
        *counts.entry(ticket_of(&case)).or_insert(0) += 1;
    }
    counts
}

#[test]
fn a_pilot_run_undone_leaves_none_of_its_cases_and_the_full_import_creates_each_once() {
    let work = Work::with_sample();
    let sim = Sim::strict();
    let pilot = work
        .import("tickets.csv", &sim, "pilot")
        .args(["--limit", "50"])
        .run();
    assert_eq!(sim.cases().len(), 50, "{}", pilot.stderr());

    // The dry run lists the 50 and deletes nothing.
    let dry = undo(&work, &sim, &["--dry-run"]);
    dry.assert_code(0);
    assert_eq!(dry.stdout().lines().count(), 51, "{}", dry.stdout());
    assert!(
        dry.stderr().contains("would delete 50 cases of run 1"),
        "{}",
        dry.stderr()
    );
    assert_eq!(deletes(&sim), 0);
    // Off a terminal it needs --yes, and says so.
    let unconfirmed = undo(&work, &sim, &[]);
    unconfirmed.assert_code(1);
    assert!(
        unconfirmed.stderr().contains("pass --yes"),
        "{}",
        unconfirmed.stderr()
    );
    assert!(sim.cases().iter().all(|c| !c.deleted));

    let done = undo(&work, &sim, &["--yes", "--batch", "20"]);
    done.assert_code(0);
    assert!(sim.cases().iter().all(|c| c.deleted), "{}", done.stderr());
    // 50 ids in batches of 20: three calls, one quota use each.
    assert_eq!(deletes(&sim), 3);
    // A second undo of the same run sends nothing.
    let again = undo(&work, &sim, &["--yes"]);
    again.assert_code(0);
    assert!(
        again.stderr().contains("no case left to delete"),
        "{}",
        again.stderr()
    );
    assert_eq!(deletes(&sim), 3);

    // The mapping fixed, everything imported: each ticket once among the live cases,
    // the 50 of the pilot included.
    let full = work.import("tickets.csv", &sim, "full").arg("--json").run();
    let created = full.json()["created"].as_u64().unwrap();
    let live = live_per_ticket(&sim);
    assert_eq!(live.len() as u64, created, "{}", full.stderr());
    assert!(live.values().all(|n| *n == 1), "{live:?}");
    let runs = work.run(["runs", "--server", &sim.url(), "--mapping", "tickets.yaml"]);
    assert!(
        runs.stdout().contains("{\"deleted\":50}"),
        "{}",
        runs.stdout()
    );
}

#[test]
fn a_case_already_gone_from_the_crm_is_reported_not_fatal() {
    let work = Work::with_sample();
    let sim = Sim::strict();
    work.import("tickets.csv", &sim, "pilot")
        .args(["--limit", "3"])
        .run();
    let first = sim.cases()[0].id.clone();
    // Someone deleted one of them in the CRM already.
    let one = undo_one(&sim, &first);
    assert!(one.contains("200"), "{one}");
    let done = undo(&work, &sim, &["--yes"]);
    done.assert_code(0);
    assert!(
        done.stderr()
            .contains(&format!("case {first} was no longer in the CRM")),
        "{}",
        done.stderr()
    );
    assert!(
        done.stderr().contains("2 deleted, 1 no longer in the CRM"),
        "{}",
        done.stderr()
    );
}

/// Delete one case behind the importer's back, as a person in the CRM would.
fn undo_one(sim: &Sim, id: &str) -> String {
    let body = serde_json::json!({
        "operation": "modulotest01", "module": "cases", "multiple": true, "wolkvox-id": [id]
    });
    let url = format!("{}/server/API/v2/custom/delete.php", sim.url());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(url)
            .header("Wolkvox-Token", TOKEN)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        format!(
            "{} {}",
            response.status().as_u16(),
            response.text().await.unwrap()
        )
    })
}
