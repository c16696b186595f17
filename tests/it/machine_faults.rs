//! When the machine fails, not the CRM: a disk that fills mid-run.

use std::path::{Path, PathBuf};

use crate::support::*;

fn keys_of(rows: &[ResultRow], status: &str) -> Vec<String> {
    rows.iter()
        .filter(|r| r.status == status)
        .map(|r| r.key.clone())
        .collect()
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` (with the reason printed) where this process may not mount (not root, or
    /// a container without the right).
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs(at.to_path_buf())),
            Ok(out) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs here (needs root): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: no mount command: {e}");
                None
            }
        }
    }

    fn grow(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_disk_that_fills_mid_run_stops_it_with_exit_3_and_the_same_command_continues() {
    let sim = Sim::strict();
    let work = Work::with_sample();
    tickets_csv(&work, "tickets-3000.csv", 1..=3000);
    // The ledger lives in the data directory: put that on a disk of 1 MB.
    let Some(disk) = Tmpfs::mount(&work.data_home(), "1m") else {
        return;
    };
    let full = work
        .import("tickets-3000.csv", &sim, "full")
        .arg("--json")
        .run();
    let summary: serde_json::Value = serde_json::from_slice(&full.stdout).unwrap();
    assert_eq!(full.code(), 3, "{summary}");
    let stopped = summary["stopped"].as_str().unwrap();
    assert!(
        stopped.contains(".sqlite: database or disk is full;"),
        "{stopped}"
    );
    assert_eq!(
        stopped.matches("disk is full").count(),
        1,
        "the OS error once: {stopped}"
    );
    let created = summary["created"].as_u64().unwrap();
    assert!(created > 0 && created < 3000, "{summary}");
    // No request left without its mark: the CRM has no more than the ledger accounts for.
    let in_doubt = summary["uncertain"].as_u64().unwrap();
    assert!(sim.cases().len() as u64 <= created + in_doubt, "{summary}");
    // The rows in flight, and the answers of the batch whose commit failed: the CRM has
    // them, the ledger could not say so.
    assert!(
        in_doubt <= 2 + 64,
        "more than the rows in flight and one batch: {summary}"
    );

    // Space is freed; the same command goes on where it stopped.
    disk.grow("64m");
    let again = work.import("tickets-3000.csv", &sim, "again").run();
    assert!(
        [0, 2].contains(&again.code()),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let stored = sim.stored_per_ticket();
    assert!(
        stored.values().all(|n| *n == 1),
        "a duplicate after the disk filled"
    );
    // Every ticket is in the CRM once, or uncertain: the rows in flight when the disk
    // filled, and those marked that had not left yet (the first run's results say so).
    let uncertain = keys_of(&work.results("again"), "uncertain");
    assert!(
        uncertain.len() as u64 <= in_doubt + 2 + 64,
        "more than those, the rows in flight and one batch marked: {uncertain:?}"
    );
    let accounted: std::collections::BTreeSet<String> =
        stored.keys().cloned().chain(uncertain).collect();
    assert_eq!(accounted.len(), 3000);
    drop(disk);
}
