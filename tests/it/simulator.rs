//! The simulator keeps the contract of docs/wolkvox-api.md §7, checked over real HTTP.

use wolkvox_import::simulator::{Running, Scenario};

async fn post(url: &str, token: Option<&str>, fields: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut form = reqwest::multipart::Form::new();
    for (name, value) in fields {
        form = form.text(name.to_string(), value.to_string());
    }
    let mut request = reqwest::Client::new()
        .post(format!("{url}/server/API/v2/cases/insert.php"))
        .multipart(form);
    if let Some(token) = token {
        request = request.header("wolkvox-token", token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_str(&response.text().await.unwrap()).unwrap_or(serde_json::Value::Null),
    )
}

const CASE: [(&str, &str); 9] = [
    ("operation", "modulotest01"),
    ("case-type", "Request"),
    ("responsible", "ADMIN_@modulotest01"),
    ("owner", "ADMIN_@modulotest01"),
    ("contact", "ana@ejemplo.com"),
    ("description", "Prueba"),
    ("status", "Abierto"),
    ("priority", "Alta"),
    ("form", "{}"),
];

fn scenario() -> Scenario {
    Scenario {
        tokens: vec!["good".into()],
        daily_limit: 3,
        ..Scenario::default()
    }
}

#[tokio::test]
async fn answers_as_the_documented_api_does() {
    let sim = Running::start(scenario()).await.unwrap();
    let url = sim.url();

    let (status, body) = post(&url, None, &CASE).await;
    assert_eq!(
        (status, body["msg"].as_str()),
        (401, Some("PLEASE ENTER THE WOLKVOX-TOKEN"))
    );
    let (status, body) = post(&url, Some("bad"), &CASE).await;
    assert_eq!(
        (status, body["msg"].as_str()),
        (403, Some("PLEASE VALIDATE TOKEN"))
    );

    let (status, body) = post(&url, Some("good"), &CASE).await;
    assert_eq!(status, 200);
    assert_eq!(body["code"], "200");
    assert!(body["error"].is_null());
    let id = body["data"]["wolkvox_id"].as_str().unwrap();
    assert_eq!(id.len(), 24);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));

    let mut missing = CASE.to_vec();
    missing[4] = ("contact", "  ");
    let (status, body) = post(&url, Some("good"), &missing).await;
    assert_eq!(
        (status, body["msg"].as_str()),
        (400, Some("SOME PARAMETERS ARE REQUIRED"))
    );

    // Every call counts against the daily limit of 3, the refused one above too.
    assert_eq!(post(&url, Some("good"), &CASE).await.0, 200);
    let (status, body) = post(&url, Some("good"), &CASE).await;
    assert_eq!(
        (status, body["msg"].as_str()),
        (403, Some("TOKEN LIMIT EXCEEDED"))
    );
    assert_eq!(sim.state.cases().len(), 2);
}

#[tokio::test]
async fn wrong_paths_methods_and_forms_are_refused() {
    let sim = Running::start(Scenario::default()).await.unwrap();
    let url = sim.url();
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{url}/server/API/v2/cases/nope.php"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["msg"], "THE API YOU WANT TO CONSULT DOES NOT EXIST");
    let r = client
        .get(format!("{url}/server/API/v2/cases/insert.php"))
        .header("wolkvox-token", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);

    let mut bad_form = CASE.to_vec();
    bad_form[8] = ("form", "[1,2]");
    assert_eq!(post(&url, Some("x"), &bad_form).await.0, 400);
    let mut bad_type = CASE.to_vec();
    bad_type[1] = ("case-type", "Felicitaciones");
    assert_eq!(post(&url, Some("x"), &bad_type).await.0, 412);
    assert!(sim.state.cases().is_empty());
}

#[tokio::test]
async fn a_third_simultaneous_request_on_a_token_is_refused() {
    let sim = Running::start(Scenario {
        latency: std::time::Duration::from_millis(300),
        ..Scenario::default()
    })
    .await
    .unwrap();
    let url = sim.url();
    let (a, b, c) = tokio::join!(
        post(&url, Some("t"), &CASE),
        post(&url, Some("t"), &CASE),
        post(&url, Some("t"), &CASE)
    );
    let mut statuses = [a.0, b.0, c.0];
    statuses.sort();
    assert_eq!(statuses, [200, 200, 403]);
    let refused = [a, b, c].into_iter().find(|r| r.0 == 403).unwrap().1;
    assert_eq!(
        refused["msg"],
        "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)"
    );
    // Another token is not affected.
    assert_eq!(post(&url, Some("u"), &CASE).await.0, 200);
}

#[tokio::test]
async fn token_information_counts_its_own_call() {
    let sim = Running::start(scenario()).await.unwrap();
    let url = sim.url();
    post(&sim.url(), Some("good"), &CASE).await;
    let text = reqwest::Client::new()
        .get(format!(
            "{url}/server/API/v2/token/tokenInformation.php?operation=modulotest01"
        ))
        .header("Wolkvox-Token", "good")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["data"]["token_limit"], 3);
    assert_eq!(body["data"]["token_use_today"], 2);
    assert_eq!(body["data"]["available_consumition_options"], 1);
}
