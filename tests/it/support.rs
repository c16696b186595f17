//! Test helpers: a simulator on port 0, a temp dir per test, the binary, result files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wolkvox_import::simulator::{Running, Scenario, SimState, StoredCase};

pub const TOKEN: &str = "test-token-4f1c9a";

/// The binary, in a clean environment: no token, no ledger settings, and a data directory
/// of its own (so no test reads another's ledger, or the ledgers of whoever runs them).
pub fn bin() -> Command {
    static HOMES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = HOMES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let home = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("data-homes")
        .join(format!("{}-{n}", std::process::id()));
    bin_with_data_home(&home)
}

fn bin_with_data_home(home: &Path) -> Command {
    clean(Command::new(env!("CARGO_BIN_EXE_wolkvox-import")), home)
}

fn clean(mut cmd: Command, home: &Path) -> Command {
    cmd.env_remove("WOLKVOX_TOKEN")
        .env_remove("RUST_LOG")
        .env_remove("WOLKVOX_LEDGER")
        .env_remove("WOLKVOX_EXPECT_LEDGER")
        .env_remove("WOLKVOX_DURABILITY")
        .env_remove("WOLKVOX_LOG_FORMAT")
        .env_remove("WOLKVOX_SERVER")
        .env_remove("WOLKVOX_OPERATION")
        .env_remove("WOLKVOX_TOKEN_FILE")
        .env_remove("WOLKVOX_RATE")
        .env_remove("WOLKVOX_CONCURRENCY")
        .env_remove("WOLKVOX_MAX_RETRIES")
        .env_remove("WOLKVOX_TIMEOUT")
        .env_remove("WOLKVOX_LIMIT")
        .env_remove("WOLKVOX_QUOTA_RESERVE")
        .env_remove("WOLKVOX_NO_PREFLIGHT")
        .env_remove("WOLKVOX_METRICS_FILE")
        .env("XDG_DATA_HOME", home)
        .env("TMPDIR", machine_tmp(home));
    cmd
}

/// The `$TMPDIR` of one test's runs, beside its data directory. It holds the machine-wide
/// locks (one run at a time per CRM target), so each test is a machine of its own: the
/// simulators of tests run side by side get ports that an earlier test's run, still
/// stopping, may have locked as its target.
fn machine_tmp(home: &Path) -> PathBuf {
    let tmp = home.with_extension("tmp");
    let _ = std::fs::create_dir_all(&tmp);
    tmp
}

/// A child process (a `simulate` server) killed when the test ends, pass or fail.
pub struct Server(pub std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A simulator on its own runtime, serving while the test runs the binary.
pub struct Sim {
    runtime: tokio::runtime::Runtime,
    running: Option<Running>,
}

impl Sim {
    pub fn start(scenario: Scenario) -> Sim {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let running = runtime.block_on(Running::start(scenario)).unwrap();
        Sim {
            runtime,
            running: Some(running),
        }
    }

    /// A well-behaved CRM that accepts only `TOKEN`.
    pub fn strict() -> Sim {
        Sim::start(Scenario {
            tokens: vec![TOKEN.into()],
            ..Scenario::default()
        })
    }

    pub fn url(&self) -> String {
        self.running.as_ref().unwrap().url()
    }

    pub fn state(&self) -> Arc<SimState> {
        self.running.as_ref().unwrap().state.clone()
    }

    pub fn cases(&self) -> Vec<StoredCase> {
        self.state().cases()
    }

    /// Stored cases per ticket number (the `Número de ticket` form field).
    pub fn stored_per_ticket(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for case in self.cases() {
            *counts.entry(ticket_of(&case)).or_insert(0) += 1;
        }
        counts
    }

    pub fn requests(&self) -> usize {
        self.state().arrivals().len()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let running = self.running.take();
        self.runtime.block_on(async move { drop(running) });
    }
}

pub fn ticket_of(case: &StoredCase) -> String {
    let form: serde_json::Value = serde_json::from_str(&case.fields["form"]).unwrap();
    form["Número de ticket"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A temp dir holding copies of the sample and its mapping.
pub struct Work {
    pub dir: tempfile::TempDir,
}

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

impl Work {
    pub fn new() -> Work {
        Work {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn with_sample() -> Work {
        let work = Work::new();
        work.copy("samples/tickets.csv", "tickets.csv");
        work.copy("samples/tickets.xlsx", "tickets.xlsx");
        work.copy("mappings/tickets.yaml", "tickets.yaml");
        work
    }

    pub fn copy(&self, from: &str, to: &str) {
        std::fs::copy(repo(from), self.path(to)).unwrap();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The binary run in this directory, with this directory's own data directory: every
    /// run of one test meets the same default ledgers, as one user's runs do.
    pub fn bin(&self) -> Command {
        let mut cmd = bin_with_data_home(&self.data_home());
        cmd.current_dir(self.dir.path());
        cmd
    }

    /// `args` run by the binary in this directory (as `bin()`), to the end.
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.bin().args(args).run()
    }

    /// `bin()` with its data memory capped (RLIMIT_DATA, as `ulimit -d` sets it): a run
    /// that would hold more fails instead of passing quietly.
    pub fn capped_bin(&self, megabytes: u64) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!(
                "ulimit -d {} && exec \"$0\" \"$@\"",
                megabytes * 1024
            ))
            .arg(env!("CARGO_BIN_EXE_wolkvox-import"))
            .current_dir(self.dir.path());
        clean(cmd, &self.data_home())
    }

    /// `$XDG_DATA_HOME` of this directory's runs.
    pub fn data_home(&self) -> PathBuf {
        self.path("data-home")
    }

    /// The default ledgers the runs made, one per CRM target.
    pub fn ledgers(&self) -> Vec<PathBuf> {
        let dir = self.data_home().join("wolkvox-import");
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "sqlite"))
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    }

    /// The one default ledger the runs made.
    pub fn ledger(&self) -> PathBuf {
        let ledgers = self.ledgers();
        assert_eq!(ledgers.len(), 1, "one ledger expected: {ledgers:?}");
        ledgers[0].clone()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    /// `import <input> --mapping tickets.yaml --server <sim>` with the test token and
    /// nothing else: as a person types it (the default rate, report paths and output).
    pub fn import_as_typed(&self, input: &str, sim: &Sim) -> Command {
        let mut cmd = self.bin();
        cmd.env("WOLKVOX_TOKEN", TOKEN)
            .args(["import", input, "--mapping", "tickets.yaml", "--server"])
            .arg(sim.url());
        cmd
    }

    /// `import <input> --mapping tickets.yaml --server <sim>` with the test token, fresh
    /// report paths each call.
    /// The default ledger is used: the target's, in this directory's data directory.
    pub fn import(&self, input: &str, sim: &Sim, tag: &str) -> Command {
        let mut cmd = self.bin();
        cmd.env("WOLKVOX_TOKEN", TOKEN)
            .args(["import", input, "--mapping", "tickets.yaml", "--server"])
            .arg(sim.url())
            .args(["--rate", "0", "--force", "-q"])
            .args(["--report", &format!("{tag}.results.csv")])
            .args(["--errors", &format!("{tag}.errors.csv")]);
        cmd
    }

    /// `runs --show RUN` of the target's ledger (`--mapping tickets.yaml --server <sim>`).
    pub fn runs_show(&self, sim: &Sim, run: u32) -> Run {
        let mut cmd = self.bin();
        cmd.args([
            "runs",
            "--mapping",
            "tickets.yaml",
            "--show",
            &run.to_string(),
        ])
        .args(["--server", &sim.url()]);
        cmd.run()
    }

    pub fn results(&self, tag: &str) -> Vec<ResultRow> {
        read_results(&self.path(&format!("{tag}.results.csv")))
    }
}

/// What one run of the binary gave: its exit code, stdout and stderr (`Output` too).
pub struct Run(pub std::process::Output);

impl Run {
    pub fn code(&self) -> i32 {
        code(&self.0)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    /// The one JSON object on stdout (`--json`); if there is none, both streams are shown.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.stdout).unwrap_or_else(|e| {
            panic!(
                "not one JSON object ({e}): {}\n{}",
                self.stdout(),
                self.stderr()
            )
        })
    }

    /// Fails, showing what the run printed, unless it exited with `expected`.
    pub fn assert_code(&self, expected: i32) -> &Run {
        assert_cmd::assert::Assert::new(self.0.clone()).code(expected);
        self
    }
}

impl std::ops::Deref for Run {
    type Target = std::process::Output;

    fn deref(&self) -> &std::process::Output {
        &self.0
    }
}

/// `.run()` for a command built by hand (with its own environment): its `Run`.
pub trait RunExt {
    fn run(&mut self) -> Run;
}

impl RunExt for Command {
    fn run(&mut self) -> Run {
        let program = self.get_program().to_string_lossy().into_owned();
        Run(self
            .output()
            .unwrap_or_else(|e| panic!("could not run {program}: {e}")))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRow {
    pub row: u64,
    pub key: String,
    pub status: String,
    pub case_id: String,
    pub http_status: String,
    pub attempts: String,
    pub message: String,
}

pub fn read_results(path: &Path) -> Vec<ResultRow> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    assert_eq!(
        headers.iter().collect::<Vec<_>>(),
        [
            "row",
            "key",
            "status",
            "case_id",
            "http_status",
            "attempts",
            "message"
        ]
    );
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            ResultRow {
                row: r[0].parse().unwrap(),
                key: r[1].to_string(),
                status: r[2].to_string(),
                case_id: r[3].to_string(),
                http_status: r[4].to_string(),
                attempts: r[5].to_string(),
                message: r[6].to_string(),
            }
        })
        .collect()
}

pub fn count(rows: &[ResultRow], status: &str) -> usize {
    rows.iter().filter(|r| r.status == status).count()
}

pub fn code(output: &std::process::Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

/// Poll `check` every 20 ms for at most `limit`; the loop is bounded in count and time.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

/// The line where a CSV record starting with `prefix` begins, counted as a text editor does.
pub fn line_of(text: &str, prefix: &str) -> u64 {
    text.lines()
        .position(|l| l.starts_with(prefix))
        .map(|i| i as u64 + 1)
        .unwrap()
}

/// The payloads `preview` gives for every row of `input` with `tickets.yaml` (invalid rows
/// as "invalid": their messages name row numbers, which are lines in CSV and rows in
/// workbooks).
pub fn payloads(work: &Work, input: &str) -> Vec<serde_json::Value> {
    let out = work
        .bin()
        .args(["preview", input, "--mapping", "tickets.yaml", "--rows", "0"])
        .output()
        .unwrap();
    assert!(
        [0, 2].contains(&code(&out)),
        "{input}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.get("payload")
                .cloned()
                .unwrap_or_else(|| "invalid".into())
        })
        .collect()
}

/// The ticket number `tickets_csv` gives row `i`.
pub fn ticket(i: usize) -> String {
    format!("T-{i:06}")
}

/// The column of the contact's e-mail (`Correo`) in the sample's layout.
pub const CORREO: usize = 6;

/// A CSV of valid tickets numbered `range` (T-000001…), in the sample's columns: the
/// first sample row with its ticket number changed.
pub fn tickets_csv(work: &Work, name: &str, range: std::ops::RangeInclusive<usize>) {
    let mut sample = csv::Reader::from_path(repo("samples/tickets.csv")).unwrap();
    let headers = sample.headers().unwrap().clone();
    assert_eq!(&headers[CORREO], "Correo");
    let first = sample.records().next().unwrap().unwrap();
    let mut writer = csv::Writer::from_path(work.path(name)).unwrap();
    writer.write_record(&headers).unwrap();
    for i in range {
        let mut cells: Vec<String> = first.iter().map(str::to_string).collect();
        cells[0] = ticket(i);
        writer.write_record(&cells).unwrap();
    }
    writer.flush().unwrap();
}

/// A file's SHA-256 in hex, as `runs` shows it.
pub fn sha256_of(path: &Path) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
