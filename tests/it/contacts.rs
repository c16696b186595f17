//! Contacts exist before their cases (#17): the real binary against a simulated CRM that
//! holds a contacts list, so an insert naming another contact gets 412.

use std::collections::BTreeMap;

use wolkvox_import::simulator::{Contact, Endpoint, Faults, Scenario};

use crate::support::*;

/// Rows and distinct contacts of the test file: row `i` names contact `i % CONTACTS`.
const ROWS: usize = 100;
const CONTACTS: usize = 50;
/// The CRM knows the first 40 (80 %).
const KNOWN: usize = 40;

fn email(n: usize) -> String {
    format!("cliente{n:02}@ejemplo.co")
}

/// `name`: tickets 1..=ROWS in the sample's columns, row `i` naming `contact(i)`, its
/// Cliente `Cliente <n>`.
fn file(work: &Work, name: &str, contact: impl Fn(usize) -> String) {
    tickets_csv(work, "base.csv", 1..=ROWS);
    let mut reader = csv::Reader::from_path(work.path("base.csv")).unwrap();
    let mut writer = csv::Writer::from_path(work.path(name)).unwrap();
    writer.write_record(reader.headers().unwrap()).unwrap();
    for (i, record) in reader.records().enumerate() {
        let mut cells: Vec<String> = record.unwrap().iter().map(str::to_string).collect();
        cells[CORREO] = contact(i);
        cells[5] = format!("Cliente {}", i % CONTACTS);
        writer.write_record(&cells).unwrap();
    }
    writer.flush().unwrap();
}

/// The sample mapping with a `contacts:` section.
fn mapping(work: &Work, section: &str) {
    let text = work.read("tickets.yaml");
    work.write("tickets.yaml", &format!("{text}\ncontacts:\n{section}"));
}

const CREATE: &str = "  create:\n    namecontact: Cliente\n    telephonecontact: { column: \
                      Teléfono, transforms: [{ phone: { country_code: \"+57\", on_invalid: \
                      keep } }] }\n";

fn crm(faults: Faults) -> Sim {
    Sim::start(Scenario {
        tokens: vec![TOKEN.into()],
        contacts: Some((0..KNOWN).map(|n| Contact::email(&email(n))).collect()),
        faults,
        ..Scenario::default()
    })
}

fn calls(sim: &Sim, endpoint: Endpoint) -> usize {
    sim.state()
        .arrivals()
        .iter()
        .filter(|a| a.endpoint == endpoint)
        .count()
}

fn refused_412(sim: &Sim) -> usize {
    sim.state()
        .arrivals()
        .iter()
        .filter(|a| a.endpoint == Endpoint::Insert && a.status == 412)
        .count()
}

/// Live contacts per e-mail.
fn contacts_per_email(sim: &Sim) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for c in sim.state().contacts().into_iter().filter(|c| !c.deleted) {
        *counts.entry(c.contact.emailcontact.clone()).or_insert(0) += 1;
    }
    counts
}

#[test]
fn with_check_the_rows_of_unknown_contacts_are_invalid_and_no_insert_is_refused() {
    let work = Work::with_sample();
    file(&work, "t.csv", |i| email(i % CONTACTS));
    mapping(&work, "  check: true\n");
    let sim = crm(Faults::default());
    let run = work.import("t.csv", &sim, "one").arg("--json").run();
    run.assert_code(2);
    let rows = work.results("one");
    assert_eq!(count(&rows, "created"), 80, "{}", run.stderr());
    assert_eq!(count(&rows, "invalid"), 20);
    let invalid = rows.iter().find(|r| r.status == "invalid").unwrap();
    assert_eq!(
        invalid.message,
        format!(
            "contact {} does not exist in the CRM (create it there, or add contacts.create)",
            email(40)
        )
    );
    assert_eq!(refused_412(&sim), 0);
    assert_eq!(sim.cases().len(), 80);
    assert_eq!(calls(&sim, Endpoint::InsertMany), 0);
    // 50 contacts to look up, never scanned: one page of queryDates, not 50 queries.
    assert_eq!(calls(&sim, Endpoint::QueryDates), 1);
    assert_eq!(calls(&sim, Endpoint::Query), 0);
    let warnings = run.json()["warnings"].to_string();
    assert!(
        warnings.contains("20 rows name 10 contacts the CRM does not have"),
        "{warnings}"
    );

    // A re-run: the 40 found are in the ledger; only the 10 missing are asked again (one
    // page), and their rows are invalid again.
    let again = work.import("t.csv", &sim, "two").run();
    again.assert_code(2);
    let rows = work.results("two");
    assert_eq!(count(&rows, "skipped"), 80);
    assert_eq!(count(&rows, "invalid"), 20);
    assert_eq!(calls(&sim, Endpoint::QueryDates), 2);
    assert_eq!(refused_412(&sim), 0);
    // The ledger kept the look-up: `runs --show` lists it under its run.
    let shown = work.runs_show(&sim, 2);
    shown.assert_code(0);
    assert!(
        shown
            .stdout()
            .contains("custom/queryDates.php  contacts created from"),
        "{}",
        shown.stdout()
    );
}

#[test]
fn validate_against_the_crm_says_how_many_rows_name_missing_contacts_and_writes_nothing() {
    let work = Work::with_sample();
    file(&work, "t.csv", |i| email(i % CONTACTS));
    mapping(&work, "  check: true\n");
    let sim = crm(Faults::default());
    let mut cmd = work.bin();
    cmd.env("WOLKVOX_TOKEN", TOKEN)
        .args(["validate", "t.csv", "--mapping", "tickets.yaml", "--server"])
        .arg(sim.url());
    let run = cmd.run();
    run.assert_code(2);
    assert!(
        run.stderr()
            .contains("20 rows name 10 contacts the CRM does not have"),
        "{}",
        run.stderr()
    );
    // The fix is in the CRM, not in the errors file: the next step says so.
    assert!(
        run.stderr().contains(
            "next: 20 invalid rows name contacts the CRM does not have: create those contacts \
             in the CRM"
        ),
        "{}",
        run.stderr()
    );
    assert!(!run.stderr().contains("fix them in"), "{}", run.stderr());
    let rows = read_results(&work.path("t.results.csv"));
    assert_eq!(count(&rows, "valid"), 80);
    assert_eq!(count(&rows, "invalid"), 20);
    assert_eq!(calls(&sim, Endpoint::Insert), 0);
    assert_eq!(calls(&sim, Endpoint::InsertMany), 0);
    assert_eq!(sim.state().contacts().len(), KNOWN);
    assert!(work.ledgers().is_empty(), "validate starts no ledger");
}

#[test]
fn with_create_the_missing_contacts_are_created_in_the_fewest_batches_and_a_rerun_creates_nothing()
{
    let work = Work::with_sample();
    file(&work, "t.csv", |i| email(i % CONTACTS));
    mapping(&work, CREATE);
    let sim = crm(Faults::default());
    let run = work
        .import("t.csv", &sim, "one")
        .args(["--contacts-batch", "4"])
        .run();
    run.assert_code(0);
    assert_eq!(
        count(&work.results("one"), "created"),
        ROWS,
        "{}",
        run.stderr()
    );
    // 10 missing, 4 a call: 3 calls.
    assert_eq!(calls(&sim, Endpoint::InsertMany), 3);
    let per_email = contacts_per_email(&sim);
    assert_eq!(per_email.len(), CONTACTS);
    assert!(per_email.values().all(|n| *n == 1), "{per_email:?}");
    let created = sim
        .state()
        .contacts()
        .into_iter()
        .find(|c| c.contact.emailcontact == email(45))
        .unwrap();
    assert_eq!(created.contact.namecontact, "Cliente 45");
    assert!(created.contact.telephonecontact.starts_with("+57"));
    assert_eq!(refused_412(&sim), 0);
    assert!(sim.stored_per_ticket().values().all(|n| *n == 1));
    assert_eq!(sim.cases().len(), ROWS);

    // A re-run sends nothing: every row created, so no contact to look up or create.
    let before = sim.requests();
    let again = work.import("t.csv", &sim, "two").run();
    again.assert_code(0);
    assert_eq!(count(&work.results("two"), "skipped"), ROWS);
    assert_eq!(sim.requests(), before);
    assert_eq!(sim.state().contacts().len(), CONTACTS);
}

#[test]
fn a_contact_the_crm_refuses_makes_its_rows_rejected_with_its_message() {
    let work = Work::with_sample();
    // Row 0's contact is no e-mail address; the mapping does not check it, the CRM does.
    file(&work, "t.csv", |i| {
        if i == 0 {
            "sin-correo".into()
        } else {
            email(i % CONTACTS)
        }
    });
    let text = work.read("tickets.yaml").replace("    email: true\n", "");
    work.write("tickets.yaml", &text);
    mapping(&work, CREATE);
    let sim = crm(Faults::default());
    let run = work.import("t.csv", &sim, "one").run();
    run.assert_code(2);
    let rows = work.results("one");
    let rejected: Vec<&ResultRow> = rows.iter().filter(|r| r.status == "rejected").collect();
    assert_eq!(rejected.len(), 1, "{}", run.stderr());
    assert!(
        rejected[0]
            .message
            .starts_with("the CRM refused to create contact sin-correo: HTTP 400"),
        "{}",
        rejected[0].message
    );
    assert!(rejected[0].message.contains("IS NOT A VALID E-MAIL"));
    assert_eq!(count(&rows, "created"), ROWS - 1);
    // The other missing contacts were created all the same (row 0's took cliente00's
    // place, so 10 are missing), each once, and no insert was refused.
    assert_eq!(contacts_per_email(&sim).len(), CONTACTS);
    assert_eq!(refused_412(&sim), 0);
}

#[test]
fn faults_on_the_contact_calls_create_no_duplicate_contact() {
    let work = Work::with_sample();
    file(&work, "t.csv", |i| email(i % CONTACTS));
    mapping(&work, CREATE);
    let sim = crm(Faults {
        error_500_after_store: 0.25,
        drop_after_store: 0.25,
        ..Faults::default()
    });
    // Bounded: a few runs, each to its end.
    for n in 0..4 {
        let tag = format!("run{n}");
        let run = work
            .import("t.csv", &sim, &tag)
            .args(["--contacts-batch", "3", "--timeout", "5"])
            .run();
        assert!([0, 2].contains(&run.code()), "{}", run.stderr());
        let per_email = contacts_per_email(&sim);
        assert!(per_email.values().all(|n| *n == 1), "{per_email:?}");
        if n == 1 {
            sim.state().heal();
        }
    }
    // Healed: every missing contact created once, no insert refused for its contact.
    let per_email = contacts_per_email(&sim);
    assert_eq!(per_email.len(), CONTACTS, "{per_email:?}");
    assert!(per_email.values().all(|n| *n == 1));
    assert_eq!(refused_412(&sim), 0);
    // Never sent again blindly: a batch resent after its answer was lost would name
    // e-mails the CRM already had, and be refused (400).
    let resent = sim
        .state()
        .arrivals()
        .iter()
        .filter(|a| a.endpoint == Endpoint::InsertMany && a.status == 400)
        .count();
    assert_eq!(resent, 0);
}

#[test]
fn kill_9_while_contacts_are_created_then_a_rerun_creates_each_contact_and_case_once() {
    use std::process::Stdio;
    use std::time::Duration;
    let work = Work::with_sample();
    file(&work, "t.csv", |i| email(i % CONTACTS));
    mapping(&work, CREATE);
    // Every call takes 300 ms: the kill lands while batches are on their way.
    let sim = Sim::start(Scenario {
        tokens: vec![TOKEN.into()],
        contacts: Some((0..KNOWN).map(|n| Contact::email(&email(n))).collect()),
        latency: Duration::from_millis(300),
        ..Scenario::default()
    });
    let mut child = work
        .import("t.csv", &sim, "killed")
        .args(["--contacts-batch", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let made = |sim: &Sim| sim.state().contacts().len().saturating_sub(KNOWN);
    assert!(wait_until(Duration::from_secs(30), || made(&sim) >= 3));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        made(&sim) < CONTACTS - KNOWN,
        "the stage finished before the kill"
    );
    assert!(
        sim.cases().is_empty(),
        "no case before every contact exists"
    );

    let rerun = work.import("t.csv", &sim, "rerun").run();
    rerun.assert_code(0);
    let per_email = contacts_per_email(&sim);
    assert_eq!(per_email.len(), CONTACTS);
    assert!(per_email.values().all(|n| *n == 1), "{per_email:?}");
    assert_eq!(refused_412(&sim), 0);
    assert_eq!(sim.cases().len(), ROWS);
    assert!(sim.stored_per_ticket().values().all(|n| *n == 1));
}
