//! Answers the simulator does not give, scripted with wiremock: how the importer reads them.

use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

const INSERT: &str = "/server/API/v2/cases/insert.php";

/// A work directory with `three.csv`: the sample's header and first 3 rows.
fn first_three_rows() -> Work {
    let work = Work::with_sample();
    let text = work.read("tickets.csv");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut writer = csv::Writer::from_path(work.path("three.csv")).unwrap();
    writer.write_record(reader.headers().unwrap()).unwrap();
    for record in reader.records().take(3) {
        writer.write_record(&record.unwrap()).unwrap();
    }
    writer.flush().unwrap();
    work
}

/// Run an import of the first 3 sample rows against `server`, off the async runtime.
async fn import_three(server: &MockServer) -> (i32, Vec<ResultRow>, String) {
    let url = server.uri();
    tokio::task::spawn_blocking(move || {
        let work = first_three_rows();
        let out = work
            .import("three.csv", &Sim::strict(), "run")
            .args(["--server", &url, "--no-preflight", "--max-retries", "1"])
            .run();
        (
            out.code(),
            work.results("run"),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_2xx_without_json_counts_as_created_with_a_warning() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(INSERT))
        .and(header("wolkvox-token", TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>OK</html>"))
        .expect(3)
        .mount(&server)
        .await;
    let (code, results, stderr) = import_three(&server).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        results
            .iter()
            .all(|r| r.status == "created" && r.case_id.is_empty())
    );
    assert!(results[0].message.contains("not JSON"), "{:?}", results[0]);
}

#[tokio::test]
async fn a_200_carrying_a_token_error_stops_the_run() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(INSERT))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(
                r#"{"code":"403","error":"FORBIDDEN","msg":"PLEASE VALIDATE TOKEN"}"#,
            ),
        )
        .expect(1..=2)
        .mount(&server)
        .await;
    let (code, results, _) = import_three(&server).await;
    assert_eq!(code, 3);
    assert_eq!(count(&results, "created"), 0);
}

#[tokio::test]
async fn a_502_is_uncertain_and_never_resent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(INSERT))
        .respond_with(ResponseTemplate::new(502).set_body_string("Bad Gateway"))
        .expect(3) // one request per row: a 502 may have stored the case
        .mount(&server)
        .await;
    let (code, results, _) = import_three(&server).await;
    assert_eq!(code, 2);
    assert_eq!(count(&results, "uncertain"), 3);
    assert!(
        results
            .iter()
            .all(|r| r.http_status == "502" && r.attempts == "1")
    );
}

#[tokio::test]
async fn a_503_is_retried_and_the_row_created() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(INSERT))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(INSERT))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"{"code":"200","error":null,"msg":"ok","data":{"wolkvox_id":"647f6ff1660dff48d803ffe6"}}"#,
        ))
        .expect(3)
        .mount(&server)
        .await;
    let (code, results, stderr) = import_three(&server).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count(&results, "created"), 3);
    assert_eq!(results.iter().filter(|r| r.attempts == "2").count(), 1);
    assert!(
        results
            .iter()
            .all(|r| r.case_id == "647f6ff1660dff48d803ffe6")
    );
}

#[tokio::test]
async fn a_412_is_rejected_with_the_crm_message() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(INSERT))
        .respond_with(ResponseTemplate::new(412).set_body_string(
            r#"{"code":412,"error":"PRECONDITION FAILED","msg":"=THE USER DOES NOT EXIST"}"#,
        ))
        .expect(3)
        .mount(&server)
        .await;
    let (code, results, _) = import_three(&server).await;
    assert_eq!(code, 2);
    assert_eq!(count(&results, "rejected"), 3);
    assert_eq!(results[0].message, "HTTP 412: =THE USER DOES NOT EXIST");
}

/// An answer is in the ledger at once, even when no mark follows to carry it to the disk:
/// here the last row's request hangs, and the rows answered before it are recorded
/// `created` meanwhile, so a crash now leaves only the hanging row uncertain.
#[tokio::test]
async fn answers_reach_the_ledger_while_a_later_request_hangs() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(INSERT))
        .and(wiremock::matchers::body_string_contains("PQR-2024-000003"))
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(60)))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(INSERT))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"{"code":"200","error":null,"msg":"ok","data":{"wolkvox_id":"647f6ff1660dff48d803ffe6"}}"#,
        ))
        .mount(&server)
        .await;
    let url = server.uri();
    let statuses = tokio::task::spawn_blocking(move || {
        let work = first_three_rows();
        let mut child = work
            .import("three.csv", &Sim::strict(), "run")
            .args(["--server", &url, "--no-preflight", "--timeout", "120"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let statuses = || -> Vec<(String, String)> {
            let Some(ledger) = work.ledgers().into_iter().next() else {
                return Vec::new();
            };
            let Ok(conn) = rusqlite::Connection::open(ledger) else {
                return Vec::new();
            };
            let Ok(mut select) = conn.prepare("SELECT key, status FROM cases ORDER BY key") else {
                return Vec::new();
            };
            select
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map(|rows| rows.filter_map(Result::ok).collect())
                .unwrap_or_default()
        };
        let created =
            |rows: &[(String, String)]| rows.iter().filter(|(_, s)| s == "created").count();
        wait_until(std::time::Duration::from_secs(20), || {
            created(&statuses()) == 2
        });
        let seen = statuses();
        child.kill().unwrap(); // SIGKILL, while the third request hangs
        child.wait().unwrap();
        seen
    })
    .await
    .unwrap();
    let status_of = |key: &str| {
        statuses
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, s)| s.as_str())
    };
    assert_eq!(
        status_of("PQR-2024-000001"),
        Some("created"),
        "{statuses:?}"
    );
    assert_eq!(
        status_of("PQR-2024-000002"),
        Some("created"),
        "{statuses:?}"
    );
    assert_eq!(
        status_of("PQR-2024-000003"),
        Some("sending"),
        "{statuses:?}"
    );
}
