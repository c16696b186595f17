//! A real network that drops and partitions (#18 §5). The simulator and the importer run in
//! a network namespace of their own and talk over its loopback, where iptables drops 5 % of
//! the packets at random and, in the middle of the run, every packet for 45 s (nine request
//! timeouts), then lets them through again. The run survives: the rows whose requests were
//! out when the network went are `uncertain` (no more than the requests in flight), those
//! that could not connect are `failed` (provably not sent), nothing is stored twice, and a
//! person's `resolve` and a re-run end with every ticket stored exactly once.
//!
//! It needs Linux, root, `ip` (iproute2) and `iptables` (`.ci/run` installs them); without
//! them it says why and passes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// Tickets in the file; the partition starts once `PARTITION_AT` of them are stored.
const TICKETS: usize = 300;
const PARTITION_AT: usize = 80;
/// `--timeout` of the imports: the partition outlasts it nine times over.
const TIMEOUT_SECS: u64 = 5;
const PARTITION: Duration = Duration::from_secs(45);
/// `--concurrency` (the default) × one token: the most requests out at once.
const IN_FLIGHT: usize = 2;

/// The first of `candidates` that runs with `probe`, or `None`.
fn tool(candidates: &[&'static str], probe: &str) -> Option<&'static str> {
    candidates.iter().copied().find(|c| {
        Command::new(c)
            .arg(probe)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// A network namespace of this test run, with its loopback up; deleted on drop, panic or not
/// (which also takes its iptables rules and the sockets left in it).
struct Netns {
    name: String,
    ip: &'static str,
    iptables: &'static str,
}

impl Netns {
    /// A new namespace whose loopback drops 5 % of packets; `Err` says why it cannot be.
    fn with_lossy_loopback() -> Result<Netns, String> {
        let ip = tool(&["ip", "/usr/sbin/ip", "/sbin/ip"], "-V")
            .ok_or("`ip` (iproute2) is not installed")?;
        let candidates = [
            "iptables",
            "/usr/sbin/iptables",
            "iptables-legacy",
            "/usr/sbin/iptables-legacy",
        ];
        if tool(&candidates, "--version").is_none() {
            return Err("`iptables` is not installed".into());
        }
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("wolkvox-it-{}-{seq}", std::process::id());
        let out = Command::new(ip)
            .args(["netns", "add", &name])
            .output()
            .map_err(|e| format!("{ip} netns add: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cannot make a network namespace (root is needed): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let mut netns = Netns {
            name,
            ip,
            iptables: "",
        };
        netns.run(&[ip, "link", "set", "lo", "up"])?;
        // The nft flavour where the kernel has nf_tables, else the legacy one.
        let lossy = [
            "-A",
            "INPUT",
            "-i",
            "lo",
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            "0.05",
            "-j",
            "DROP",
        ];
        let mut refusals = Vec::new();
        for candidate in candidates {
            let mut args = vec![candidate];
            args.extend(lossy);
            match netns.run(&args) {
                Ok(()) => {
                    netns.iptables = candidate;
                    return Ok(netns);
                }
                Err(e) => refusals.push(e),
            }
        }
        Err(format!(
            "iptables cannot filter in a namespace here: {}",
            refusals.join("; ")
        ))
    }

    /// `cmd` (its program, arguments, environment and directory) run inside the namespace.
    fn exec(&self, cmd: &Command) -> Command {
        let mut inside = Command::new(self.ip);
        inside
            .args(["netns", "exec", &self.name])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (name, value) in cmd.get_envs() {
            match value {
                Some(value) => inside.env(name, value),
                None => inside.env_remove(name),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            inside.current_dir(dir);
        }
        inside
    }

    /// Run `argv` in the namespace; `Err` with its stderr when it fails.
    fn run(&self, argv: &[&str]) -> Result<(), String> {
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..]);
        let out = self
            .exec(&cmd)
            .output()
            .map_err(|e| format!("{}: {e}", argv.join(" ")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}: {}",
                argv.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn partition(&self) {
        self.run(&[self.iptables, "-I", "INPUT", "1", "-j", "DROP"])
            .unwrap();
    }

    fn heal(&self) {
        self.run(&[self.iptables, "-D", "INPUT", "-j", "DROP"])
            .unwrap();
    }

    /// TCP sockets in the namespace that still hold request bytes on their way to `port`
    /// (not yet acknowledged by the simulator's end): a connection the importer gave up on
    /// during the partition is closed, but its kernel keeps sending what it had queued.
    fn bytes_on_their_way_to(&self, port: u16) -> usize {
        let mut cmd = Command::new("cat");
        cmd.args(["/proc/net/tcp", "/proc/net/tcp6"]);
        let out = self.exec(&cmd).run();
        let table = String::from_utf8_lossy(&out.stdout);
        let port = format!(":{port:04X}");
        table
            .lines()
            .filter_map(|line| {
                let cols: Vec<&str> = line.split_whitespace().collect();
                // sl local_address rem_address st tx_queue:rx_queue …
                let (remote, queues) = (cols.get(2)?, cols.get(4)?);
                let unacked = usize::from_str_radix(queues.split(':').next()?, 16).ok()?;
                (remote.ends_with(&port) && unacked > 0).then_some(())
            })
            .count()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new(self.ip)
            .args(["netns", "delete", &self.name])
            .status();
    }
}

/// A child process killed (and reaped) on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Cases the simulator stored, from its `--cases-file`: (ticket, case id), in order.
fn stored(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            let case: serde_json::Value = serde_json::from_str(line).unwrap();
            let form: serde_json::Value =
                serde_json::from_str(case["fields"]["form"].as_str().unwrap()).unwrap();
            (
                form["Número de ticket"].as_str().unwrap().to_string(),
                case["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn per_ticket(cases: &[(String, String)]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (ticket, _) in cases {
        *counts.entry(ticket.clone()).or_insert(0) += 1;
    }
    counts
}

fn stored_count(path: &Path) -> usize {
    std::fs::read(path)
        .map(|bytes| bytes.iter().filter(|b| **b == b'\n').count())
        .unwrap_or(0)
}

/// The import every run of this test makes, as a user types it.
fn import(work: &Work, url: &str, tag: &str) -> Command {
    let mut cmd = work.bin();
    cmd.args(["import", "tickets-net.csv", "--mapping", "tickets.yaml"])
        .args(["--server", url, "--token-file", "token"])
        .args(["--timeout", &TIMEOUT_SECS.to_string(), "--rate", "15"])
        .args(["--report", &format!("{tag}.results.csv")])
        .args(["--errors", &format!("{tag}.errors.csv")]);
    cmd
}

fn read(path: &PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn a_lossy_network_and_a_long_partition_leave_only_the_requests_in_flight_uncertain() {
    let started = Instant::now();
    let netns = match Netns::with_lossy_loopback() {
        Ok(netns) => netns,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    let work = Work::with_sample();
    tickets_csv(&work, "tickets-net.csv", 1..=TICKETS);
    work.write("token", &format!("{TOKEN}\n"));
    let cases_file = work.path("cases.jsonl");

    // The CRM: some latency of its own, since the namespace's loopback has none.
    let mut simulate = work.bin();
    simulate
        .args(["simulate", "--listen", "127.0.0.1:0", "--token", TOKEN])
        .args([
            "--daily-limit",
            "0",
            "--latency-ms",
            "40",
            "--jitter-ms",
            "40",
        ])
        .arg("--cases-file")
        .arg(&cases_file);
    let mut sim = Reaped(
        netns
            .exec(&simulate)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(work.path("simulate.stderr")).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut url = String::new();
    BufReader::new(sim.0.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let url = url.trim().to_string();
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the simulator did not say where it listens: {url:?}"));

    let first_log = work.path("first.stderr");
    let mut first = Reaped(
        netns
            .exec(&import(&work, &url, "first"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&first_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let running = |child: &mut Reaped| child.0.try_wait().unwrap().is_none();

    // The network goes once the run is well under way, and comes back 45 s later.
    let under_way = wait_until(Duration::from_secs(60), || {
        stored_count(&cases_file) >= PARTITION_AT || !running(&mut first)
    });
    assert!(
        under_way && running(&mut first),
        "the run should still be sending when the network goes: {}",
        read(&first_log)
    );
    netns.partition();
    // (A request that arrived just before may still be stored within its latency.)
    std::thread::sleep(Duration::from_secs(1));
    let before = stored_count(&cases_file);
    std::thread::sleep(PARTITION - Duration::from_secs(1));
    let during = stored_count(&cases_file) - before;
    netns.heal();
    assert_eq!(during, 0, "nothing reaches the CRM through the partition");
    assert!(
        running(&mut first),
        "the run should outlive the partition: {}",
        read(&first_log)
    );
    let finished = wait_until(Duration::from_secs(90), || !running(&mut first));
    assert!(finished, "the run did not end: {}", read(&first_log));
    let exit = first.0.wait().unwrap().code();
    let log = read(&first_log);

    // Exit 2: the run finished, with rows to look at (fewer than ten failed in a row, since
    // a row fails only after six connects of 2.5 s each, so the server never "looked down").
    assert_eq!(exit, Some(2), "{log}");
    let results = work.results("first");
    assert_eq!(results.len(), TICKETS);
    let (uncertain, failed) = (count(&results, "uncertain"), count(&results, "failed"));
    assert_eq!(
        count(&results, "created") + uncertain + failed,
        TICKETS,
        "{results:?}"
    );
    assert!(uncertain + failed > 0, "the partition was not felt");
    // Only a request that left can be in doubt: one per request in flight at most. A
    // connection that could not be made during the partition proves nothing left.
    assert!(
        uncertain <= IN_FLIGHT,
        "{uncertain} rows uncertain, more than the {IN_FLIGHT} requests in flight: {:?}",
        results
            .iter()
            .filter(|r| r.status == "uncertain")
            .collect::<Vec<_>>()
    );

    // A request the importer gave up on may still arrive after the heal (its kernel
    // retransmits it): the person looks in the CRM once nothing is on its way, and the
    // simulator, whose latency is under 0.1 s, has answered what arrived.
    let quiet = wait_until(Duration::from_secs(60), || {
        netns.bytes_on_their_way_to(port) == 0 && {
            std::thread::sleep(Duration::from_millis(500));
            netns.bytes_on_their_way_to(port) == 0
        }
    });
    assert!(quiet, "requests still on their way after a minute");
    let cases = stored(&cases_file);
    let counts = per_ticket(&cases);
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored twice: {twice:?}");
    let ids: BTreeMap<&str, &str> = cases
        .iter()
        .map(|(t, id)| (t.as_str(), id.as_str()))
        .collect();
    for row in results.iter().filter(|r| r.status == "created") {
        assert_eq!(
            ids.get(row.key.as_str()).copied(),
            Some(row.case_id.as_str()),
            "{row:?}"
        );
    }
    for row in results.iter().filter(|r| r.status == "failed") {
        assert!(
            !ids.contains_key(row.key.as_str()),
            "failed but stored: {row:?}"
        );
    }

    // What README.md tells the user: list the uncertain rows, look each up in the CRM,
    // record what was found, import again.
    let target = ["--server", url.as_str(), "--mapping", "tickets.yaml"];
    let list = work.bin().args(["resolve", "--list"]).args(target).run();
    list.assert_code(0);
    let mut reader = csv::Reader::from_reader(list.stdout.as_slice());
    let mut filled = csv::Writer::from_path(work.path("uncertain.csv")).unwrap();
    filled.write_record(reader.headers().unwrap()).unwrap();
    let mut listed = BTreeSet::new();
    let mut missing = 0;
    for record in reader.records() {
        let mut cells: Vec<String> = record.unwrap().iter().map(str::to_string).collect();
        listed.insert(cells[0].clone());
        match ids.get(cells[0].as_str()) {
            Some(id) => {
                cells[1] = "created".into();
                cells[2] = id.to_string();
            }
            None => {
                cells[1] = "missing".into();
                missing += 1;
            }
        }
        filled.write_record(&cells).unwrap();
    }
    filled.flush().unwrap();
    let expected: BTreeSet<String> = results
        .iter()
        .filter(|r| r.status == "uncertain")
        .map(|r| r.key.clone())
        .collect();
    assert_eq!(listed, expected, "resolve --list names the uncertain rows");
    if !listed.is_empty() {
        let recorded = work
            .bin()
            .args(["resolve", "--file", "uncertain.csv"])
            .args(target)
            .run();
        recorded.assert_code(0);
    }

    // The same command again, on the same lossy network: the failed and the missing rows
    // go, nothing else.
    let again = netns.exec(import(&work, &url, "again").arg("--json")).run();
    let summary: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap_or_else(|e| {
        panic!(
            "no summary ({e}): {}",
            String::from_utf8_lossy(&again.stderr)
        )
    });
    assert_eq!(again.code(), 0, "{summary}");
    assert_eq!(summary["created"], failed + missing, "{summary}");
    let wanted: BTreeMap<String, usize> = (1..=TICKETS).map(|i| (ticket(i), 1)).collect();
    assert_eq!(
        per_ticket(&stored(&cases_file)),
        wanted,
        "the CRM must hold every ticket exactly once"
    );
    eprintln!(
        "network: {TICKETS} tickets, 5 % loss, a {} s partition with --timeout {TIMEOUT_SECS}: \
         {uncertain} uncertain ({} of them stored), {failed} failed, 0 duplicates; {} s",
        PARTITION.as_secs(),
        uncertain - missing,
        started.elapsed().as_secs()
    );
    drop(sim);
}
