//! The simulator's endpoints beyond insert (docs/wolkvox-api.md §8): update, look-ups,
//! date windows, contacts, delete, and the switches for reconcile tests, checked over real
//! HTTP on 127.0.0.1, the way a client meets them.

use std::io::BufRead;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use wolkvox_import::simulator::{Contact, Faults, Running, Scenario};

use crate::support::*;

const OP: &str = "modulotest01";
const UNKNOWN_ID: &str = "ffffffffffffffffffffffff";

struct Crm {
    sim: Running,
    client: reqwest::Client,
    token: &'static str,
}

impl Crm {
    async fn start(scenario: Scenario) -> Crm {
        Crm {
            sim: Running::start(scenario).await.unwrap(),
            client: reqwest::Client::new(),
            token: TOKEN,
        }
    }

    async fn multipart<K: AsRef<str>, V: AsRef<str>>(
        &self,
        api: &str,
        fields: &[(K, V)],
    ) -> (u16, Value) {
        let mut form = reqwest::multipart::Form::new();
        for (name, value) in fields {
            form = form.text(name.as_ref().to_string(), value.as_ref().to_string());
        }
        let request = self
            .client
            .post(format!("{}/server/API/v2/{api}", self.sim.url()))
            .multipart(form);
        answer(request.header("wolkvox-token", self.token)).await
    }

    async fn json(&self, api: &str, body: Value) -> (u16, Value) {
        let request = self
            .client
            .post(format!("{}/server/API/v2/{api}", self.sim.url()))
            .body(body.to_string());
        answer(request.header("wolkvox-token", self.token)).await
    }

    /// Insert a case; its id.
    async fn insert(&self, ticket: &str, description: &str, contact: &str) -> String {
        let (status, body) = self
            .multipart("cases/insert.php", &case(ticket, description, contact))
            .await;
        assert_eq!(status, 200, "{body}");
        body["data"]["wolkvox_id"].as_str().unwrap().to_string()
    }

    async fn query_cases(&self, field: &str, value: &str) -> (u16, Value) {
        self.json(
            "cases/queryCases.php",
            json!({"operation": OP, "field": field, "value": value}),
        )
        .await
    }
}

async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn case<'a>(ticket: &'a str, description: &'a str, contact: &'a str) -> Vec<(&'a str, String)> {
    vec![
        ("operation", OP.into()),
        ("case-type", "Request".into()),
        ("responsible", "ADMIN_@modulotest01".into()),
        ("owner", "ADMIN_@modulotest01".into()),
        ("contact", contact.into()),
        ("description", description.into()),
        ("status", "Abierto".into()),
        ("priority", "Alta".into()),
        (
            "form",
            json!({"Número de ticket": ticket, "Canal": "Correo"}).to_string(),
        ),
    ]
}

/// The ids of a look-up's records, in the order given.
fn ids(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("data is not a list: {body}"))
        .iter()
        .map(|r| r["wolkvox_id"].as_str().unwrap().to_string())
        .collect()
}

fn strict() -> Scenario {
    Scenario {
        tokens: vec![TOKEN.into()],
        ..Scenario::default()
    }
}

#[tokio::test]
async fn update_replaces_the_given_fields_merges_form_and_refuses_unknown_ids() {
    let crm = Crm::start(strict()).await;
    let id = crm
        .insert("T-1", "La impresora no imprime", "ana@x.co")
        .await;

    let (status, body) = crm
        .multipart(
            "cases/update.php",
            &[
                ("operation", OP),
                ("wolkvox-id", &id),
                ("status", "Cerrado"),
                ("priority", "Baja"),
                ("solution", "Cambio de tóner"),
                ("form", r#"{"Canal":"Teléfono","Área":"Soporte"}"#),
                // Not in update.php's list: ignored, the case keeps what it had.
                ("description", "otra cosa"),
                ("owner", "OTRO_@modulotest01"),
                ("contact", "luis@y.co"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"code":"200","error":null,"msg":"record updated","data":{"wolkvox_id": id}})
    );
    let held = &crm.sim.state.cases()[0];
    assert_eq!(held.fields["status"], "Cerrado");
    assert_eq!(held.fields["priority"], "Baja");
    assert_eq!(held.fields["solution"], "Cambio de tóner");
    assert_eq!(held.fields["description"], "La impresora no imprime");
    assert_eq!(held.fields["owner"], "ADMIN_@modulotest01");
    assert_eq!(held.fields["contact"], "ana@x.co");
    let form: Value = serde_json::from_str(&held.fields["form"]).unwrap();
    assert_eq!(
        form,
        json!({"Número de ticket":"T-1","Canal":"Teléfono","Área":"Soporte"})
    );
    assert_eq!(held.updates, 1);

    // The same update again changes nothing more (and counts as an update).
    let again = crm
        .multipart(
            "cases/update.php",
            &[
                ("operation", OP),
                ("wolkvox-id", &id),
                ("status", "Cerrado"),
            ],
        )
        .await;
    assert_eq!(again.0, 200);
    assert_eq!(crm.sim.state.cases()[0].fields, held.fields);

    let (status, body) = crm
        .multipart(
            "cases/update.php",
            &[
                ("operation", OP),
                ("wolkvox-id", UNKNOWN_ID),
                ("status", "Cerrado"),
            ],
        )
        .await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"code":404,"error":"NOT FOUND","msg":"THE RECORD DOES NOT EXIST"})
        )
    );
    let (status, body) = crm
        .multipart(
            "cases/update.php",
            &[("operation", OP), ("status", "Cerrado")],
        )
        .await;
    assert_eq!(
        (status, body["msg"].as_str()),
        (400, Some("SOME PARAMETERS ARE REQUIRED"))
    );
    let (status, body) = crm
        .multipart(
            "cases/update.php",
            &[
                ("operation", OP),
                ("wolkvox-id", &id),
                ("case-type", "Felicitaciones"),
            ],
        )
        .await;
    assert_eq!(
        (status, body["msg"].as_str()),
        (412, Some("THE CASE TYPE DOES NOT EXIST"))
    );
    let (status, _) = crm
        .multipart(
            "cases/update.php",
            &[("operation", OP), ("wolkvox-id", &id), ("form", "[1]")],
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        crm.sim.state.cases()[0].updates,
        2,
        "refused updates change nothing"
    );
}

#[tokio::test]
async fn a_look_up_finds_exactly_the_matching_cases() {
    let crm = Crm::start(strict()).await;
    let a = crm.insert("T-1", "Falla de red", "ana@x.co").await;
    let _b = crm
        .insert("T-2", "Falla de red en la sede", "ana@x.co")
        .await;
    let c = crm.insert("T-3", "  Falla de red ", "luis@y.co").await;

    let (status, body) = crm.query_cases("description", " Falla de red").await;
    assert_eq!(status, 200);
    assert_eq!(ids(&body), [a.clone(), c.clone()]);
    assert_eq!(body["msg"], "2 records were are found");
    let record = &body["data"][0];
    for (key, want) in [
        ("idCase", "1"),
        ("description", "Falla de red"),
        ("status", "Abierto"),
        ("priority", "Alta"),
        ("type case", "Request"),
        ("email contact", "ana@x.co"),
        ("responsible user", "ADMIN_@modulotest01"),
        ("owner user", "ADMIN_@modulotest01"),
        ("Número de ticket", "T-1"),
        ("Canal", "Correo"),
    ] {
        assert_eq!(record[key], want, "{key} in {record}");
    }
    let created = record["date creation"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(created, "%Y-%m-%d %H:%M:%S").is_ok(),
        "{created}"
    );

    assert_eq!(
        ids(&crm.query_cases("email contact", "luis@y.co").await.1),
        [c.as_str()]
    );
    assert_eq!(
        ids(&crm.query_cases("wolkvox-id", &a).await.1),
        [a.as_str()]
    );
    // Exact: another case, or the same word in another case, is not a match.
    let (_, none) = crm.query_cases("status", "abierto").await;
    assert_eq!(
        none,
        json!({"code":"200","error":"null","msg":"0 records were are found","data":[]})
    );
    // queryCases cannot filter on a custom field; custom/query.php on cases can.
    let (status, body) = crm.query_cases("Número de ticket", "T-3").await;
    assert_eq!(
        (status, body["msg"].as_str()),
        (400, Some("THE FIELD Número de ticket CANNOT BE QUERIED"))
    );
    let (status, body) = crm
        .json(
            "custom/query.php",
            json!({"operation": OP, "module": "cases", "field": "Número de ticket", "value": "T-3"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(ids(&body), [c]);
    let (status, _) = crm
        .json(
            "custom/query.php",
            json!({"operation": OP, "module": "tickets", "field": "x", "value": "y"}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = crm
        .json(
            "cases/queryCases.php",
            json!({"operation": OP, "field": "status"}),
        )
        .await;
    assert_eq!(status, 400, "a look-up without a value is refused");
}

#[tokio::test]
async fn query_dates_pages_a_window_oldest_first() {
    let crm = Crm::start(strict()).await;
    let mut made = Vec::new();
    for (i, created) in [
        "2024-05-01 09:59:59",
        "2024-05-01 10:00:30",
        "2024-05-01 10:01:50",
        "2024-05-01 10:01:10",
        "2024-05-01 10:02:00",
        "2024-05-01 10:03:00",
    ]
    .into_iter()
    .enumerate()
    {
        let id = crm.insert(&format!("T-{i}"), "x", "ana@x.co").await;
        assert!(crm.sim.state.set_created(&id, created));
        made.push(id);
    }
    let dates = |from: &str, limit: Option<u64>| {
        let mut body = json!({"operation": OP, "module": "cases", "date": true,
            "from": from, "to": "2024-05-01 10:03"});
        if let Some(limit) = limit {
            body["limit"] = limit.into();
        }
        crm.json("custom/queryDates.php", body)
    };
    // Everything in [10:00, 10:03), oldest first: the default limit holds it all.
    let (status, body) = dates("2024-05-01 10:00", None).await;
    assert_eq!(status, 200);
    let window = [
        made[1].clone(),
        made[3].clone(),
        made[2].clone(),
        made[4].clone(),
    ];
    assert_eq!(ids(&body), window);
    assert_eq!(body["data"][0]["date creation"], "2024-05-01 10:00:30");

    // Paged by 3, each page asked from the last record's minute, until one is not full:
    // a bounded loop (at most 10 pages).
    let mut seen: Vec<String> = Vec::new();
    let mut from = "2024-05-01 10:00".to_string();
    for _ in 0..10 {
        let (status, page) = dates(&from, Some(3)).await;
        assert_eq!(status, 200);
        let records = page["data"].as_array().unwrap().clone();
        for id in ids(&page) {
            if !seen.contains(&id) {
                seen.push(id);
            }
        }
        if records.len() < 3 {
            break;
        }
        from = records[2]["date creation"].as_str().unwrap()[..16].to_string();
    }
    assert_eq!(seen, window);

    let (status, body) = crm
        .json(
            "custom/queryDates.php",
            json!({"operation": OP, "module": "cases", "date": true,
                "from": "2024-05-01 10:00:00", "to": "2024-05-01 10:03"}),
        )
        .await;
    assert_eq!(
        (status, body["msg"].as_str()),
        (400, Some("THE DATES MUST BE WRITTEN YYYY-MM-DD HH:MM"))
    );
    let (status, _) = dates("2024-05-01 10:00", Some(0)).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn insert_many_creates_contacts_in_order_and_refuses_a_batch_with_an_existing_email() {
    let crm = Crm::start(Scenario {
        contacts: Some(vec![Contact::email("ana@x.co")]),
        ..strict()
    })
    .await;
    let (status, body) = crm
        .json(
            "custom/insertMany.php",
            json!({"operation": OP, "module": "contacts", "fields": [
                {"namecontact": "Luis", "emailcontact": "luis@y.co", "telephonecontact": "+573001112233", "idcontact": "79"},
                {"namecontact": "María", "emailcontact": "maria@z.co"},
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let new = ids(&body);
    assert_eq!(new.len(), 2);
    let (_, luis) = crm
        .json(
            "custom/query.php",
            json!({"operation": OP, "module": "contacts", "field": "emailcontact", "value": "luis@y.co"}),
        )
        .await;
    assert_eq!(ids(&luis), [new[0].clone()]);
    assert_eq!(luis["data"][0]["namecontact"], "Luis");
    assert_eq!(luis["data"][0]["telephonecontact"], "+573001112233");
    assert_eq!(luis["data"][0]["idcontact"], "79");

    let (status, body) = crm
        .json(
            "custom/insertMany.php",
            json!({"operation": OP, "module": "contacts", "fields": [
                {"emailcontact": "pedro@w.co"}, {"emailcontact": " ana@x.co "},
            ]}),
        )
        .await;
    assert_eq!(status, 400);
    let msg = body["msg"].as_str().unwrap();
    assert!(
        msg.contains("ana@x.co") && msg.contains("ALREADY EXISTS"),
        "{msg}"
    );
    // Atomic: pedro, the good entry of the refused batch, was not stored.
    let emails: Vec<String> = crm
        .sim
        .state
        .contacts()
        .iter()
        .map(|c| c.contact.emailcontact.clone())
        .collect();
    assert_eq!(emails, ["ana@x.co", "luis@y.co", "maria@z.co"]);

    let (status, body) = crm
        .json(
            "custom/insertMany.php",
            json!({"operation": OP, "module": "contacts", "fields": [{"namecontact": "Sin correo"}]}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["msg"].as_str().unwrap().contains("emailcontact"),
        "{body}"
    );
}

#[tokio::test]
async fn with_a_contacts_list_an_insert_naming_an_unknown_contact_is_412() {
    let crm = Crm::start(Scenario {
        contacts: Some(vec![Contact::email("ana@x.co")]),
        ..strict()
    })
    .await;
    let refused =
        json!({"code":412,"error":"PRECONDITION FAILED","msg":"THE CONTACT DOES NOT EXIST"});
    crm.insert("T-1", "x", " ana@x.co").await;
    let (status, body) = crm
        .multipart("cases/insert.php", &case("T-2", "x", "luis@y.co"))
        .await;
    assert_eq!((status, body), (412, refused.clone()));

    // Created through insertMany: known from then on.
    let (status, _) = crm
        .json(
            "custom/insertMany.php",
            json!({"operation": OP, "module": "contacts", "fields": [{"emailcontact": "luis@y.co"}]}),
        )
        .await;
    assert_eq!(status, 200);
    crm.insert("T-2", "x", "luis@y.co").await;

    // Deleted: unknown again.
    let ana = crm.sim.state.contacts()[0].id.clone();
    let (status, _) = crm
        .json(
            "custom/delete.php",
            json!({"operation": OP, "module": "contacts", "multiple": false, "wolkvox-id": ana}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = crm
        .multipart("cases/insert.php", &case("T-3", "x", "ana@x.co"))
        .await;
    assert_eq!((status, body), (412, refused));
    assert_eq!(crm.sim.state.cases().len(), 2);
}

#[tokio::test]
async fn delete_marks_cases_deleted_and_they_can_no_longer_be_updated_or_found() {
    let crm = Crm::start(strict()).await;
    let a = crm.insert("T-1", "uno", "ana@x.co").await;
    let b = crm.insert("T-2", "dos", "ana@x.co").await;
    let c = crm.insert("T-3", "tres", "ana@x.co").await;
    let (status, body) = crm
        .json(
            "custom/delete.php",
            json!({"operation": OP, "module": "cases", "multiple": true, "wolkvox-id": [a, b, UNKNOWN_ID]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["deleted"], json!([a, b]));
    assert!(body["msg"].as_str().unwrap().contains(UNKNOWN_ID), "{body}");
    let held: Vec<(String, bool)> = crm
        .sim
        .state
        .cases()
        .into_iter()
        .map(|case| (case.id, case.deleted))
        .collect();
    assert_eq!(
        held,
        [(a.clone(), true), (b.clone(), true), (c.clone(), false)]
    );

    let (status, body) = crm
        .multipart(
            "cases/update.php",
            &[("operation", OP), ("wolkvox-id", &a), ("status", "Cerrado")],
        )
        .await;
    assert_eq!(
        (status, body["msg"].as_str()),
        (404, Some("THE RECORD DOES NOT EXIST"))
    );
    assert_eq!(
        ids(&crm.query_cases("wolkvox-id", &a).await.1),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&crm.query_cases("status", "Abierto").await.1),
        [c.as_str()]
    );

    // A second delete of the same case: nothing to delete, named.
    let (status, body) = crm
        .json(
            "custom/delete.php",
            json!({"operation": OP, "module": "cases", "multiple": false, "wolkvox-id": a}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["msg"], format!("THE RECORD DOES NOT EXIST: {a}"));
    // multiple: true takes a list, and only a list.
    let (status, _) = crm
        .json(
            "custom/delete.php",
            json!({"operation": OP, "module": "cases", "multiple": true, "wolkvox-id": c}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(!crm.sim.state.cases()[2].deleted);
}

/// One call to each endpoint beyond insert, with bodies that would succeed.
async fn one_of_each(crm: &Crm, id: &str) -> Vec<u16> {
    vec![
        crm.multipart("cases/update.php", &[("operation", OP), ("wolkvox-id", id), ("status", "Cerrado")])
            .await
            .0,
        crm.query_cases("status", "Cerrado").await.0,
        crm.json("custom/query.php", json!({"operation": OP, "module": "cases", "field": "status", "value": "x"}))
            .await
            .0,
        crm.json("custom/queryDates.php", json!({"operation": OP, "module": "cases", "date": true, "from": "2024-01-01 00:00", "to": "2024-01-02 00:00"}))
            .await
            .0,
        crm.json("custom/insertMany.php", json!({"operation": OP, "module": "contacts", "fields": [{"emailcontact": format!("{id}@x.co")}]}))
            .await
            .0,
        crm.json("custom/delete.php", json!({"operation": OP, "module": "cases", "multiple": true, "wolkvox-id": [id]}))
            .await
            .0,
    ]
}

#[tokio::test]
async fn every_call_counts_one_use_of_the_daily_quota_refused_ones_too() {
    let crm = Crm::start(Scenario {
        daily_limit: 9,
        ..strict()
    })
    .await;
    let id = crm.insert("T-1", "x", "ana@x.co").await;
    assert_eq!(one_of_each(&crm, &id).await, [200; 6]);
    // A refused look-up (no value) is a call too: the 8th.
    assert_eq!(
        crm.json(
            "cases/queryCases.php",
            json!({"operation": OP, "field": "status"})
        )
        .await
        .0,
        400
    );
    assert_eq!(crm.query_cases("status", "x").await.0, 200);
    assert_eq!(crm.sim.state.calls_per_token()[TOKEN], 9);
    // The quota is spent: every endpoint now gets the quota's 403, and nothing changes.
    let spent = one_of_each(&crm, &id).await;
    assert_eq!(spent, [403; 6]);
    let (_, body) = crm.query_cases("status", "x").await;
    assert_eq!(body["msg"], "TOKEN LIMIT EXCEEDED");
    assert_eq!(crm.sim.state.contacts().len(), 1);
}

#[tokio::test]
async fn tokens_slots_maintenance_and_faults_apply_to_every_endpoint() {
    let crm = Crm::start(Scenario {
        latency: Duration::from_millis(300),
        maintenance: Some((5, 5)),
        ..strict()
    })
    .await;
    let id = crm.insert("T-1", "x", "ana@x.co").await; // call 1
    // Calls 2-4: three look-ups at once on one token; the third gets the slot 403.
    let update = [("operation", OP), ("wolkvox-id", &id), ("priority", "Baja")];
    let dates = json!({"operation": OP, "module": "cases", "date": true,
        "from": "2024-01-01 00:00", "to": "2024-01-02 00:00"});
    let (x, y, z) = tokio::join!(
        crm.query_cases("status", "Abierto"),
        crm.json("custom/queryDates.php", dates),
        crm.multipart("cases/update.php", &update),
    );
    let mut statuses = [x.0, y.0, z.0];
    statuses.sort();
    assert_eq!(statuses, [200, 200, 403]);
    let refused = [x.1, y.1, z.1]
        .into_iter()
        .find(|b| b["code"] == 403)
        .unwrap();
    assert_eq!(
        refused["msg"],
        "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)"
    );
    // Call 5 is in the maintenance window, whatever the endpoint.
    let (status, body) = crm.query_cases("status", "Abierto").await;
    assert_eq!(
        (status, body["msg"].as_str()),
        (
            403,
            Some("THE SERVICE IS UNDER MAINTENANCE, TRY AGAIN LATER")
        )
    );

    let other = Crm {
        token: "not-the-token",
        ..Crm::start(strict()).await
    };
    let (status, body) = other.query_cases("status", "Abierto").await;
    assert_eq!(
        (status, body["msg"].as_str()),
        (403, Some("PLEASE VALIDATE TOKEN"))
    );
    let (status, body) = answer(
        reqwest::Client::new()
            .post(format!("{}/server/API/v2/custom/delete.php", crm.sim.url()))
            .body("{}"),
    )
    .await;
    assert_eq!(
        (status, body["msg"].as_str()),
        (401, Some("PLEASE ENTER THE WOLKVOX-TOKEN"))
    );

    // A 500 after the work: the update is applied and its answer lost, as an insert's.
    let faulty = Crm::start(Scenario {
        faults: Faults {
            error_500_after_store: 1.0,
            ..Faults::default()
        },
        ..strict()
    })
    .await;
    let (status, _) = faulty
        .multipart("cases/insert.php", &case("T-1", "x", "ana@x.co"))
        .await;
    assert_eq!(status, 500);
    let stored = faulty.sim.state.cases()[0].id.clone();
    let (status, _) = faulty
        .multipart(
            "cases/update.php",
            &[
                ("operation", OP),
                ("wolkvox-id", &stored),
                ("status", "Cerrado"),
            ],
        )
        .await;
    assert_eq!(status, 500);
    assert_eq!(faulty.sim.state.cases()[0].fields["status"], "Cerrado");
    assert_eq!(faulty.query_cases("status", "Cerrado").await.0, 500);
}

#[tokio::test]
async fn switches_answer_inserts_without_ids_and_plant_duplicates() {
    let crm = Crm::start(Scenario {
        no_id_every: Some(2),
        duplicate_every: Some(3),
        ..strict()
    })
    .await;
    let mut answered = Vec::new();
    for i in 1..=6 {
        let (status, body) = crm
            .multipart(
                "cases/insert.php",
                &case(&format!("T-{i}"), &format!("caso {i}"), "ana@x.co"),
            )
            .await;
        assert_eq!(status, 200);
        answered.push(body["data"]["wolkvox_id"].as_str().map(str::to_string));
    }
    let without: Vec<usize> = (1..=6).filter(|i| answered[i - 1].is_none()).collect();
    assert_eq!(without, [2, 4, 6]);
    assert_eq!(
        crm.sim.state.cases().len(),
        8,
        "inserts 3 and 6 stored twice"
    );
    let (_, body) = crm.query_cases("description", "caso 3").await;
    let twice = ids(&body);
    assert_eq!(twice.len(), 2);
    assert_eq!(
        Some(twice[0].clone()),
        answered[2],
        "the answer names the first copy"
    );
    assert_ne!(twice[0], twice[1]);
}

/// `simulate --contacts-file FILE` run to its end: a bad file stops it before it listens.
fn simulate_refusing(work: &Work, file: &str) -> std::process::Output {
    work.bin()
        .args([
            "simulate",
            "--listen",
            "127.0.0.1:0",
            "--contacts-file",
            file,
        ])
        .output()
        .unwrap()
}

/// `simulate` killed (and reaped) when the test ends.
#[tokio::test]
async fn simulate_takes_a_contacts_file_and_writes_changes_to_its_cases_file() {
    let work = Work::new();
    work.write(
        "contacts.txt",
        "# known contacts\nana@x.co\nnot an address\n",
    );
    let out = simulate_refusing(&work, "contacts.txt");
    assert_eq!(code(&out), 1, "a bad contacts file: nothing was done");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("contacts.txt:3: \"not an address\" is not an e-mail address"),
        "{stderr}"
    );

    // A CSV header that names no `emailcontact` column: said on its first line.
    work.write("contacts.csv", "Correo\nana@x.co\n");
    let out = simulate_refusing(&work, "contacts.csv");
    assert_eq!(code(&out), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("contacts.csv:1: \"Correo\""), "{stderr}");
    assert!(stderr.contains("emailcontact"), "{stderr}");

    work.write("contacts.txt", "# known contacts\nana@x.co\n");
    let mut server = Server(
        work.bin()
            .args([
                "simulate",
                "--listen",
                "127.0.0.1:0",
                "--token",
                TOKEN,
                "-q",
            ])
            .args([
                "--contacts-file",
                "contacts.txt",
                "--cases-file",
                "cases.jsonl",
            ])
            .args(["--duplicate-every", "2"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_string();
    let client = reqwest::Client::new();
    let insert = |contact: &'static str| {
        let mut form = reqwest::multipart::Form::new();
        for (name, value) in case("T-1", "x", contact) {
            form = form.text(name, value);
        }
        answer(
            client
                .post(format!("{url}/server/API/v2/cases/insert.php"))
                .header("wolkvox-token", TOKEN)
                .multipart(form),
        )
    };
    assert_eq!(insert("luis@y.co").await.0, 412);
    let (_, first) = insert("ana@x.co").await;
    let first = first["data"]["wolkvox_id"].as_str().unwrap().to_string();
    assert_eq!(insert("ana@x.co").await.0, 200, "stored twice");
    let (status, _) = answer(
        client
            .post(format!("{url}/server/API/v2/custom/delete.php"))
            .header("wolkvox-token", TOKEN)
            .body(
                json!({"operation": OP, "module": "cases", "multiple": false, "wolkvox-id": first})
                    .to_string(),
            ),
    )
    .await;
    assert_eq!(status, 200);

    let lines: Vec<Value> = work
        .read("cases.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "three cases stored, one deleted: {lines:?}");
    let last = &lines[3];
    assert_eq!(
        (last["id"].as_str(), last["deleted"].as_bool()),
        (Some(first.as_str()), Some(true))
    );
    assert_eq!(lines[0]["id"], last["id"]);
    assert_eq!(lines[0]["deleted"], false);
    assert_eq!(
        lines[1]["fields"], lines[2]["fields"],
        "the planted duplicate"
    );
    let created = lines[0]["created"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(created, "%Y-%m-%d %H:%M:%S").is_ok(),
        "{created}"
    );
}
