//! Quota-aware imports: preflight, the reserve, several tokens.

use std::collections::HashMap;
use std::time::Duration;

use wolkvox_import::simulator::Scenario;

use crate::support::*;

#[test]
fn the_reserve_stops_the_run_cleanly_and_the_next_night_continues() {
    let sim = Sim::start(Scenario {
        tokens: vec![TOKEN.into()],
        daily_limit: 100,
        ..Scenario::default()
    });
    let work = Work::with_sample();
    let out = work
        .import("tickets.csv", &sim, "night1")
        .args(["--quota-reserve", "30", "--json"])
        .run();
    out.assert_code(4);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // One call for the preflight, then inserts until 30 calls are left.
    assert_eq!(summary["created"], 69);
    assert_eq!(sim.state().calls_per_token()[TOKEN], 70);
    assert!(
        summary["stopped"]
            .as_str()
            .unwrap()
            .contains("reserve of 30")
    );
    // The CRM's count: the preflight is a call too.
    assert_eq!(summary["tokens"][0]["calls"], 70);

    let night = |name: &str| {
        sim.state().reset_quota();
        work.import("tickets.csv", &sim, name)
            .args(["--quota-reserve", "30"])
            .run()
    };
    // Nights 2 and 3 stop at the reserve again; night 4 finishes.
    assert_eq!(code(&night("night2")), 4);
    assert_eq!(code(&night("night3")), 4);
    let out = night("night4");
    assert_eq!(
        out.code(),
        2,
        "the last night finishes; only the invalid rows remain"
    );
    assert_eq!(sim.cases().len(), 232);
    assert!(sim.stored_per_ticket().values().all(|&n| n == 1));
}

#[test]
fn a_token_with_no_calls_left_sends_nothing_and_exits_4() {
    let sim = Sim::start(Scenario {
        tokens: vec![TOKEN.into()],
        daily_limit: 10,
        ..Scenario::default()
    });
    let work = Work::with_sample();
    let out = work.import("tickets.csv", &sim, "run").run();
    assert_eq!(out.code(), 4);
    assert_eq!(sim.requests(), 0, "no insert is wasted below the reserve");
    let results = work.results("run");
    assert_eq!(count(&results, "pending"), 232);
}

fn token_file(work: &Work, tokens: &[&str]) {
    work.write(
        "tokens.txt",
        &format!("# one token per line\n{}\n", tokens.join("\n")),
    );
}

#[test]
fn two_tokens_double_the_requests_in_flight_and_share_the_calls() {
    let sim = Sim::start(Scenario {
        tokens: vec!["token-a".into(), "token-b".into()],
        latency: Duration::from_millis(100),
        ..Scenario::default()
    });
    let work = Work::with_sample();
    token_file(&work, &["token-a", "token-b"]);
    let out = work
        .import("tickets.csv", &sim, "run")
        .env_remove("WOLKVOX_TOKEN")
        .args(["--token-file", "tokens.txt", "--limit", "80", "--json"])
        .run();
    out.assert_code(2);
    assert_eq!(sim.cases().len(), 80);
    // Each token keeps its own limit of 2; together they keep 4 requests going.
    assert_eq!(sim.state().peak_in_flight(), 4);
    let calls: HashMap<String, u64> = sim.state().calls_per_token();
    assert!(
        calls["token-a"] >= 30 && calls["token-b"] >= 30,
        "{calls:?}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reported: u64 = summary["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["calls"].as_u64().unwrap())
        .sum();
    // The 80 inserts and each token's preflight call, as the CRM counted them.
    assert_eq!(reported, 82);
    assert_eq!(calls.values().sum::<u64>(), 82);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("token-a"),
        "the summary shows fingerprints, never tokens"
    );
}

#[test]
fn a_rejected_token_among_three_leaves_the_run_going_on_two() {
    let sim = Sim::start(Scenario {
        tokens: vec!["token-a".into(), "token-b".into()],
        ..Scenario::default()
    });
    let work = Work::with_sample();
    token_file(&work, &["token-a", "token-x", "token-b"]);
    let out = work
        .import("tickets.csv", &sim, "run")
        .env_remove("WOLKVOX_TOKEN")
        .args(["--token-file", "tokens.txt", "--json"])
        .run();
    out.assert_code(2);
    assert_eq!(sim.cases().len(), 232);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let states: Vec<&str> = summary["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["ok", "rejected", "ok"]);
}

#[test]
fn a_token_refused_mid_run_hands_its_rows_to_the_others() {
    // token-a may make 20 calls today, token-b is unlimited; no preflight, so token-a is
    // found out by a 403 TOKEN LIMIT EXCEEDED in the middle of the run.
    let sim = Sim::start(Scenario {
        tokens: vec!["token-a".into(), "token-b".into()],
        daily_limit: 60,
        ..Scenario::default()
    });
    let work = Work::with_sample();
    token_file(&work, &["token-a", "token-b"]);
    let out = work
        .import("tickets.csv", &sim, "run")
        .env_remove("WOLKVOX_TOKEN")
        .args([
            "--token-file",
            "tokens.txt",
            "--no-preflight",
            "--limit",
            "110",
        ])
        .run();
    // 60 calls each: 120 calls carry the 110 rows even though both tokens run out.
    out.assert_code(2);
    assert_eq!(sim.cases().len(), 110);
    assert!(sim.stored_per_ticket().values().all(|&n| n == 1));
}

/// `token-info` for `TOKEN` at a simulator whose tokens may make `daily_limit` calls.
fn token_info(daily_limit: u64, extra: &[&str]) -> Run {
    let sim = Sim::start(Scenario {
        tokens: vec![TOKEN.into()],
        daily_limit,
        ..Scenario::default()
    });
    bin()
        .env("WOLKVOX_TOKEN", TOKEN)
        .args([
            "token-info",
            "--operation",
            "modulotest01",
            "--server",
            &sim.url(),
        ])
        .args(extra)
        .run()
}

#[test]
fn token_info_prints_the_quota_of_each_token() {
    let out = token_info(4800, &["--json"]);
    out.assert_code(0);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["limit"], 4800);
    assert_eq!(info["used"], 1, "the call counts itself");
    assert_eq!(info["left"], 4799);
}

/// A token the CRM sets no limit for is not shown as one with nothing left.
#[test]
fn token_info_says_when_a_token_has_no_daily_limit() {
    let out = token_info(0, &[]);
    out.assert_code(0);
    let text = out.stdout();
    assert!(text.contains("no daily limit, used 1 today"), "{text}");
    assert!(!text.contains("left 0"), "{text}");
}
