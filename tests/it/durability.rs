//! Durable before it leaves: the system calls of a real import, traced with strace, show
//! every insert request written to its socket only after an fdatasync of the ledger's WAL
//! that finished after that row's `sending` mark was written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::support::*;

/// The keys (`T-000001`…) quoted in one strace line.
fn keys_in(line: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let bytes = line.as_bytes();
    let mut at = 0;
    while let Some(found) = line[at..].find("T-") {
        let start = at + found;
        let digits = &bytes[start + 2..(start + 8).min(bytes.len())];
        if digits.len() == 6 && digits.iter().all(u8::is_ascii_digit) {
            keys.insert(line[start..start + 8].to_string());
        }
        at = start + 2;
    }
    keys
}

/// The keys whose request left before a WAL sync that started after their mark had
/// finished; and how many requests the trace holds.
fn requests_before_their_sync(trace: &str) -> (Vec<String>, usize) {
    let mut marked: BTreeMap<String, usize> = BTreeMap::new();
    let mut sent: BTreeMap<String, usize> = BTreeMap::new();
    let mut synced: Vec<usize> = Vec::new();
    let mut syncing: BTreeSet<String> = BTreeSet::new();
    for (i, line) in trace.lines().enumerate() {
        let pid = line.split_whitespace().next().unwrap_or("").to_string();
        let wal = line.contains("-wal>");
        if line.contains("fdatasync(") && wal {
            if line.contains("<unfinished ...>") {
                syncing.insert(pid);
            } else if line.trim_end().ends_with("= 0") {
                synced.push(i);
            }
        } else if line.contains("<... fdatasync resumed>") && syncing.remove(&pid) {
            if line.trim_end().ends_with("= 0") {
                synced.push(i);
            }
        } else if line.contains("pwrite64(") && wal {
            for key in keys_in(line) {
                marked.entry(key).or_insert(i);
            }
        } else if line.contains("<TCP:[") && line.contains("POST /server/API/v2/cases/insert.php") {
            for key in keys_in(line) {
                sent.entry(key).or_insert(i);
            }
        }
    }
    let early = sent
        .iter()
        .filter(|(key, at)| {
            let mark = marked.get(*key).copied().unwrap_or(usize::MAX);
            !synced.iter().any(|s| *s > mark && s < at)
        })
        .map(|(key, _)| key.clone())
        .collect();
    (early, sent.len())
}

/// Trace one import of 60 tickets; `None` (with the reason printed) where strace cannot
/// run here.
fn traced_import(work: &Work, sim: &Sim, tag: &str, extra: &[&str]) -> Option<String> {
    let strace = ["/usr/bin/strace", "/bin/strace"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(strace) = strace else {
        eprintln!("skipped: strace is not installed (.ci/run installs it)");
        return None;
    };
    let trace = work.path(&format!("{tag}.trace"));
    let import = work.import("tickets-60.csv", sim, tag);
    let mut cmd = std::process::Command::new(strace);
    cmd.current_dir(work.dir.path())
        .args(["-f", "-yy", "-s", "9000", "-o"])
        .arg(&trace)
        .args([
            "-e",
            "trace=fdatasync,fsync,write,writev,sendto,sendmsg,pwrite64",
        ])
        .arg(import.get_program())
        .args(import.get_args())
        .args(extra);
    for (name, value) in import.get_envs() {
        match value {
            Some(value) => cmd.env(name, value),
            None => cmd.env_remove(name),
        };
    }
    let out = cmd.run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("PTRACE") || stderr.contains("ptrace") {
        eprintln!("skipped: this machine does not allow ptrace: {stderr}");
        return None;
    }
    assert_eq!(out.code(), 0, "{stderr}");
    Some(std::fs::read_to_string(trace).unwrap())
}

#[test]
fn every_insert_leaves_after_the_fsync_that_covers_its_mark() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    tickets_csv(&work, "tickets-60.csv", 1..=60);
    let Some(trace) = traced_import(&work, &sim, "full", &[]) else {
        return;
    };
    let (early, requests) = requests_before_their_sync(&trace);
    assert_eq!(requests, 60, "every request is in the trace");
    assert!(
        early.is_empty(),
        "left before their mark was on disk: {early:?}"
    );
    assert_each_stored_once(&sim, 60);

    // The check can fail: with the marks left to the OS, requests leave unsynced.
    let sim = Sim::strict();
    let Some(trace) = traced_import(&work, &sim, "fast", &["--durability", "fast"]) else {
        return;
    };
    let (early, requests) = requests_before_their_sync(&trace);
    assert_eq!(requests, 60);
    assert_eq!(early.len(), 60, "--durability fast syncs nothing");
    // Yet each mark was written to the OS (committed) before its request left: a killed
    // importer loses nothing.
    let unwritten = requests_before_their_mark(&trace);
    assert!(
        unwritten.is_empty(),
        "left before their mark was committed: {unwritten:?}"
    );
    assert_each_stored_once(&sim, 60);
}

/// The keys whose request was written to its socket before their mark to the WAL.
fn requests_before_their_mark(trace: &str) -> Vec<String> {
    let mut marked: BTreeSet<String> = BTreeSet::new();
    let mut early = Vec::new();
    for line in trace.lines() {
        if line.contains("pwrite64(") && line.contains("-wal>") {
            marked.extend(keys_in(line));
        } else if line.contains("<TCP:[") && line.contains("POST /server/API/v2/cases/insert.php") {
            early.extend(keys_in(line).into_iter().filter(|k| !marked.contains(k)));
        }
    }
    early
}

fn assert_each_stored_once(sim: &Sim, n: usize) {
    let stored = sim.stored_per_ticket();
    assert_eq!(stored.len(), n);
    assert!(stored.values().all(|c| *c == 1));
}
