//! The command line as typed (clap), with help that teaches by example.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "wolkvox-import",
    version,
    // A flag given twice takes the last value, so wrappers and scripts can override.
    args_override_self = true,
    about = "Import support tickets from spreadsheets into the Wolkvox CRM, exactly once.",
    long_about = "Import support tickets from spreadsheets (CSV, XLSX, XLS, XLSB, ODS) into the \
Wolkvox CRM through its Cases Insert API, one request per row.\n\n\
A SQLite ledger remembers every ticket sent, so a re-run (after a crash, a Ctrl-C or the \
daily quota) never creates a ticket twice.",
    after_help = "Start here:\n  \
wolkvox-import init-mapping tickets.xlsx > tickets.yaml        # a starter mapping\n  \
wolkvox-import validate tickets.xlsx --mapping tickets.yaml    # dry run, nothing sent\n  \
wolkvox-import import tickets.xlsx --mapping tickets.yaml --simulate\n  \
WOLKVOX_TOKEN=... wolkvox-import import tickets.xlsx --mapping tickets.yaml --server crm0001.wolkvox.com\n\n\
Exit codes: 0 all rows done · 1 nothing done (bad input or arguments) · 2 some rows need \
attention · 3 aborted (token rejected, server down) · 4 stopped at the daily quota · 130 interrupted"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log format on stderr.
    // Explicit display orders keep the global flags in one place in every --help.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "WOLKVOX_LOG_FORMAT", display_order = 900)]
    pub log_format: LogFormat,

    /// More logs (-v: debug, -vv: trace). RUST_LOG, if set, wins.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, display_order = 901)]
    pub verbose: u8,

    /// Only errors on stderr; no progress.
    #[arg(short, long, global = true, display_order = 902)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Durability {
    Full,
    Fast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Dry run: check every row against the mapping; nothing is sent (no network, unless
    /// --server asks the CRM what an import would do: read-only look-ups).
    #[command(
        after_help = "Example:\n  wolkvox-import validate samples/tickets.csv --mapping mappings/tickets.yaml\n\n\
Each bad cell is named by row number and column in the results file; the rows to fix are \
copied, with _row and _error columns, to the errors file, which can be fixed in Excel and \
validated again with the same mapping."
    )]
    Validate(ValidateArgs),

    /// Send every valid row to the Cases Insert API, skipping what earlier runs created.
    #[command(after_help = "Examples:\n  \
wolkvox-import import samples/tickets.csv --mapping mappings/tickets.yaml --simulate\n  \
WOLKVOX_TOKEN=... wolkvox-import import tickets.xlsx --mapping tickets.yaml --server crm0001.wolkvox.com --rate 5\n\n\
The token comes from --token-file or the WOLKVOX_TOKEN environment variable, never from a \
flag value (it would show in the process list).\n\
Answers that prove nothing was stored (connection refused, 429, 503, the 403 gate answers) \
are retried; answers that may have stored the case (500, 502, 504, timeouts) make the row \
\"uncertain\": it is not resent until `resolve` records that the CRM lacks it.\n\n\
The ledger belongs to the CRM target (server + operation), not to the input file: tonight's \
export under a new name, or a fixed errors file, skips every ticket an earlier run created.")]
    Import(ImportArgs),

    /// Print the payloads the first rows would become, as JSON lines on stdout.
    #[command(
        after_help = "Example:\n  wolkvox-import preview samples/tickets.xlsx --mapping mappings/tickets.yaml --rows 3"
    )]
    Preview(PreviewArgs),

    /// Write a starter mapping (YAML) from the file's headers to stdout.
    #[command(after_help = "Example:\n  wolkvox-import init-mapping tickets.xlsx > tickets.yaml")]
    InitMapping(InitMappingArgs),

    /// Run a local Wolkvox-compatible CRM server (cases, look-ups, contacts), for rehearsals and tests.
    #[command(
        after_help = "Example:\n  wolkvox-import simulate --listen 127.0.0.1:8080 --token demo --daily-limit 4800\n  \
WOLKVOX_TOKEN=demo wolkvox-import import samples/tickets.csv --mapping mappings/tickets.yaml --server http://127.0.0.1:8080\n\n\
The first line on stdout is the address it listens on. GET /__cases lists the cases it holds \
(deleted ones marked), GET /__contacts its contacts."
    )]
    Simulate(SimulateArgs),

    /// Show each token's daily quota: limit, used, left, hours to the reset.
    #[command(
        after_help = "Example:\n  WOLKVOX_TOKEN=... wolkvox-import token-info --server crm0001.wolkvox.com --operation modulotest01\n\n\
Each call uses one unit of the token's quota."
    )]
    TokenInfo(TokenInfoArgs),

    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  wolkvox-import completions bash > /etc/bash_completion.d/wolkvox-import"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Ask the CRM about the rows earlier imports left uncertain, and settle them.
    ///
    /// Uncertain rows were sent, but no answer proved whether the case was stored. Found
    /// once → created, with its case id; found nowhere → the next import sends it; anything
    /// else stays uncertain, with the reason. Sends no case.
    #[command(
        after_help = "Takes the arguments of the import it follows (the same input, \
mapping and server; the import-only flags are ignored):\n  \
wolkvox-import reconcile tickets.xlsx --mapping tickets.yaml --server crm0001.wolkvox.com\n  \
wolkvox-import import tickets.xlsx --mapping tickets.yaml --server crm0001.wolkvox.com\n\n\
Or both in one: import --reconcile. A case matches a row when every field of the mapping's \
`lookup:` (default: description, contact, case type and the custom fields the CRM returns) \
is equal after trimming; nothing else counts. It says how many calls it will spend before the \
first: one date window (custom/queryDates.php) answers for every row sent in it, and rows are \
asked one by one (cases/queryCases.php) only where that costs less. --ids also finds the case \
ids of rows the CRM created without giving one.",
        // Import's own flags are taken (so the import's line can be reused) but not
        // listed: reconcile sends no case, and refuses the simulator.
        mut_arg("simulate", |a| a.hide(true)),
        mut_arg("update", |a| a.hide(true)),
        mut_arg("reconcile", |a| a.hide(true)),
        mut_arg("limit", |a| a.hide(true))
    )]
    Reconcile(ImportArgs),

    /// Record what you checked by hand in the CRM about uncertain rows, so the next
    /// import sends only the ones that are missing.
    #[command(
        after_help = "Example (the same --server and --mapping as the import):\n  \
wolkvox-import resolve --server crm0001.wolkvox.com --mapping tickets.yaml --list > uncertain.csv\n  \
# look each key up in the CRM; write created (and its case id) or missing in the status column\n  \
wolkvox-import resolve --server crm0001.wolkvox.com --mapping tickets.yaml --file uncertain.csv\n  \
wolkvox-import import tickets.xlsx --mapping tickets.yaml --server crm0001.wolkvox.com\n\n\
Or one key at a time: --created PQR-000123=647f6ff1660dff48d803ffe6 --missing PQR-000124.\n\
Every finding is recorded, or none: a key the ledger saw created is never marked missing."
    )]
    Resolve(ResolveArgs),

    /// Show the history of imports recorded in a CRM target's ledger.
    #[command(after_help = "Examples:\n  \
wolkvox-import runs                                   # every ledger in the data directory\n  \
wolkvox-import runs --server crm0001.wolkvox.com --mapping tickets.yaml\n  \
wolkvox-import runs --simulate --mapping mappings/tickets.yaml --show 1\n  \
wolkvox-import runs --find TK-000123                  # which run sent it, and what came of it\n  \
wolkvox-import runs --server crm0001.wolkvox.com --mapping tickets.yaml --json")]
    Runs(RunsArgs),

    /// Delete the cases one import run created (a pilot run), by the case ids its ledger
    /// recorded, and nothing else; a later import creates those tickets again.
    #[command(after_help = "The pilot workflow:\n  \
wolkvox-import import tickets.xlsx --mapping tickets.yaml --server crm0001.wolkvox.com --limit 50\n  \
# look at the 50 cases in the CRM; then\n  \
wolkvox-import undo --run 1 --server crm0001.wolkvox.com --mapping tickets.yaml --dry-run\n  \
wolkvox-import undo --run 1 --server crm0001.wolkvox.com --mapping tickets.yaml\n  \
# fix the mapping, and import everything")]
    Undo(UndoArgs),
}

/// Flags shared by every command that reads a spreadsheet.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// The spreadsheet: .csv, .xlsx, .xlsm, .xls, .xlsb or .ods.
    pub input: PathBuf,

    /// Sheet name, or 1-based position, for workbooks (default: the first visible sheet).
    #[arg(long)]
    pub sheet: Option<String>,

    /// Row (CSV: line) of the headers, 1-based, when title lines come first.
    #[arg(long, value_name = "N")]
    pub header_row: Option<u64>,

    /// CSV delimiter: , ; tab | or any single character (default: detected).
    #[arg(long, value_parser = parse_delimiter)]
    pub delimiter: Option<u8>,

    /// CSV encoding, e.g. utf-8, windows-1252, utf-16le (default: detected).
    #[arg(long)]
    pub encoding: Option<String>,

    /// The file has no header row: the mapping names columns by letter (A, B, …) or
    /// 1-based number ("3"), and the first row is data.
    #[arg(long)]
    pub no_header: bool,

    /// The most text one cell may hold, e.g. 16MiB, 500KB, 1000000: a row with a bigger
    /// cell is a row error (a quote that never closes, or a crafted file), read past
    /// without being held in memory. A row holds at most four such cells.
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_size,
          env = "WOLKVOX_MAX_CELL_BYTES")]
    pub max_cell_bytes: usize,
}

/// A size in bytes: a number with an optional unit (KB/MB/GB are 1000s, KiB/MiB/GiB 1024s).
fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit {other:?}: use KB, MB, GB, KiB, MiB or GiB"
            ));
        }
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size: write it like 16MiB or 1000000"))?;
    number
        .checked_mul(scale)
        .and_then(|bytes| usize::try_from(bytes).ok())
        .filter(|bytes| *bytes > 0)
        .ok_or_else(|| format!("{text:?} is not a size this machine can hold"))
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Results file, one line per row (default: <input>.results.csv beside the input,
    /// <input>.results.<time>.csv when that exists). A name ending in .xlsx writes an Excel
    /// workbook at the end (Summary sheet, every row), besides the default CSV; when it
    /// exists, <name>.<time>.xlsx.
    #[arg(long, value_name = "FILE.csv|FILE.xlsx")]
    pub report: Option<PathBuf>,

    /// Errors file: the rows to fix, original columns plus _row and _error
    /// (default: <input>.errors.csv beside the input).
    #[arg(long, value_name = "FILE")]
    pub errors: Option<PathBuf>,

    /// Overwrite existing --report/--errors files.
    #[arg(long)]
    pub force: bool,

    /// Print one JSON summary object on stdout (logs and progress stay on stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub input: InputArgs,

    /// The YAML mapping (see mappings/README.md).
    #[arg(long, short)]
    pub mapping: PathBuf,

    /// CRM operation, overriding the mapping's.
    #[arg(long, env = "WOLKVOX_OPERATION")]
    pub operation: Option<String>,

    #[command(flatten)]
    pub against: AgainstArgs,

    /// With --server and a mapping whose `contacts:` checks them: the token file the
    /// contact look-ups use (else WOLKVOX_TOKEN). Nothing is written or created.
    #[arg(long, value_name = "FILE", env = "WOLKVOX_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    #[command(flatten)]
    pub contacts: ContactArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// The CRM target whose ledger `validate` and `preview` read, to say what an import would
/// do (read only: nothing is sent, no network).
#[derive(Debug, Args)]
pub struct AgainstArgs {
    /// Also say what an import into this CRM would do, by its target's ledger: rows new,
    /// changed since created (by field), unchanged (`preview`: per row, as "import").
    #[arg(long, value_name = "HOST|URL", env = "WOLKVOX_SERVER")]
    pub server: Option<String>,

    /// The same, for the ledger of `import --simulate`.
    #[arg(long)]
    pub simulate: bool,

    /// The same, for this ledger file.
    #[arg(long, value_name = "FILE", env = "WOLKVOX_LEDGER")]
    pub ledger: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub input: InputArgs,

    /// The YAML mapping (see mappings/README.md).
    #[arg(long, short)]
    pub mapping: PathBuf,

    /// CRM server: a host (crm0001.wolkvox.com, https assumed) or a base URL. Not used
    /// with --simulate.
    #[arg(
        long,
        value_name = "HOST|URL",
        env = "WOLKVOX_SERVER",
        required_unless_present = "simulate"
    )]
    pub server: Option<String>,

    /// Send to a built-in simulator on 127.0.0.1 instead: no account, no token, no network.
    #[arg(long)]
    pub simulate: bool,

    /// File with the token, or several tokens one per line (or a directory, one token per
    /// file): requests are spread over them. Else WOLKVOX_TOKEN is used.
    #[arg(long, value_name = "FILE", env = "WOLKVOX_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// CRM operation, overriding the mapping's.
    #[arg(long, env = "WOLKVOX_OPERATION")]
    pub operation: Option<String>,

    /// Requests per second, retries included; never burst over. 0 = no limit.
    /// Default: 5, or 50 with --simulate (the simulator has no rate to respect).
    #[arg(long, env = "WOLKVOX_RATE")]
    pub rate: Option<f64>,

    /// Requests in flight at once per token (Wolkvox refuses more than 2 per token).
    #[arg(long, default_value_t = 2, env = "WOLKVOX_CONCURRENCY", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,

    /// Retries of an answer that proves nothing was stored.
    #[arg(long, default_value_t = 5, env = "WOLKVOX_MAX_RETRIES")]
    pub max_retries: u32,

    /// Seconds to wait for one answer.
    #[arg(long, default_value_t = 30.0, env = "WOLKVOX_TIMEOUT")]
    pub timeout: f64,

    #[command(flatten)]
    pub ledger: LedgerArgs,

    /// When a row's `sending` mark must be on disk: `full` syncs it before the request
    /// leaves, so not even a power cut can make a re-run send a ticket twice; `fast` leaves
    /// the writing to the OS (safe when the importer dies, not when the machine does).
    /// Default: full, or fast with --simulate.
    #[arg(long, value_enum, env = "WOLKVOX_DURABILITY")]
    pub durability: Option<Durability>,

    /// Send again every row an earlier run left uncertain, without asking anyone: those the
    /// CRM already has are duplicated. To send only the missing ones, use --reconcile (or
    /// record what you found in the CRM with `resolve` first).
    #[arg(long)]
    pub resend_uncertain: bool,

    /// Retry answers that may have stored the case (500, 502, 504, timeouts): faster,
    /// may duplicate.
    #[arg(long)]
    pub retry_ambiguous: bool,

    /// Send the changes of rows an earlier run created (a nightly export that carries
    /// yesterday's tickets again, closed or reassigned since) to their cases through
    /// cases/update.php: status, priority, case type, responsible, solution and form. Without
    /// it, changed rows are reported (`changed since run N: …`) and nothing is sent for them.
    #[arg(long, env = "WOLKVOX_UPDATE", value_parser = clap::builder::BoolishValueParser::new())]
    pub update: bool,

    /// Before sending, ask the CRM about the rows earlier runs left uncertain (see
    /// `reconcile`): the ones it has are not sent again, the missing ones are sent.
    #[arg(long, env = "WOLKVOX_RECONCILE", value_parser = clap::builder::BoolishValueParser::new())]
    pub reconcile: bool,

    #[command(flatten)]
    pub lookups: LookupArgs,

    /// Send at most N rows in this run (the rest are pending).
    #[arg(long, value_name = "N", env = "WOLKVOX_LIMIT")]
    pub limit: Option<u64>,

    /// Calls to leave unused on each token's daily quota, for the team's other
    /// integrations: the run stops cleanly (exit 4) when only this many are left.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 20,
        env = "WOLKVOX_QUOTA_RESERVE"
    )]
    pub quota_reserve: u64,

    /// Write the run's figures in Prometheus' text format to FILE on every exit (end time,
    /// exit code, rows per status, duration, calls and quota left per token), for
    /// node_exporter's textfile collector: e.g. /var/lib/node_exporter/wolkvox.prom.
    #[arg(long, value_name = "FILE", env = "WOLKVOX_METRICS_FILE")]
    pub metrics_file: Option<PathBuf>,

    /// Skip the token-information call made before sending (it costs one call per token).
    #[arg(long, env = "WOLKVOX_NO_PREFLIGHT", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_preflight: bool,

    #[command(flatten)]
    pub contacts: ContactArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// How `reconcile` (and `import --reconcile`) asks the CRM.
#[derive(Debug, Args)]
pub struct LookupArgs {
    /// Also look up the rows the CRM created without giving a case id (so they can be
    /// updated and undone).
    #[arg(long)]
    pub ids: bool,

    /// Spend at most N look-up calls (each one a use of the token's daily quota); the rows
    /// not asked about stay uncertain for the next reconcile.
    #[arg(long, value_name = "N", env = "WOLKVOX_MAX_CALLS")]
    pub max_calls: Option<u64>,
}

/// The mapping's `contacts:` section at work (look-ups before any case, creations).
#[derive(Debug, Args)]
pub struct ContactArgs {
    /// A contact the ledger found in the CRM (or created) this long ago is not looked up
    /// again: 0, 90s, 30m, 12h, 1d, 7d.
    #[arg(long, value_name = "AGE", default_value = "1d", value_parser = parse_age)]
    pub contacts_max_age: u64,

    /// Contacts per custom/insertMany.php call (contacts.create): one quota use each.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub contacts_batch: u16,
}

impl ContactArgs {
    pub fn settings(&self, resend_uncertain: bool) -> crate::contacts::ContactSettings {
        crate::contacts::ContactSettings {
            max_age_secs: self.contacts_max_age,
            batch: usize::from(self.contacts_batch),
            resend_uncertain,
        }
    }
}

/// An age as seconds: a number with `s`, `m`, `h` or `d` (`0` alone is allowed).
fn parse_age(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(0);
    }
    let bad = || format!("{text:?} is not an age: write 0, 90s, 30m, 12h or 1d");
    let unit = match text.chars().last() {
        Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3_600,
        Some('d') => 86_400,
        _ => return Err(bad()),
    };
    let number: u64 = text[..text.len() - 1].parse().map_err(|_| bad())?;
    number.checked_mul(unit).ok_or_else(bad)
}

/// Where the ledger is: one per CRM target (server + operation), whatever the input is called.
#[derive(Debug, Args)]
pub struct LedgerArgs {
    /// Ledger file, instead of the CRM target's own in the data directory
    /// ($XDG_DATA_HOME/wolkvox-import/, else ~/.local/share/wolkvox-import/).
    #[arg(long, value_name = "FILE", env = "WOLKVOX_LEDGER")]
    pub ledger: Option<PathBuf>,

    /// Refuse to start (exit 1, nothing sent) when the ledger does not exist yet: for
    /// scheduled jobs whose ledger lives on a mounted volume, where a missing mount would
    /// otherwise start from nothing and create every ticket again.
    #[arg(long, env = "WOLKVOX_EXPECT_LEDGER", value_parser = clap::builder::BoolishValueParser::new())]
    pub expect_ledger: bool,
}

/// Which CRM target's ledger to read: `--server` (or `--simulate`) and the operation, or
/// `--ledger FILE`.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The CRM server the imports went to: a host or a base URL, as given to `import`.
    /// Not used with --simulate.
    #[arg(long, value_name = "HOST|URL", env = "WOLKVOX_SERVER")]
    pub server: Option<String>,

    /// The ledger of `import --simulate`.
    #[arg(long)]
    pub simulate: bool,

    /// The mapping the imports used (its `operation:` names the target).
    #[arg(long, short)]
    pub mapping: Option<PathBuf>,

    /// CRM operation, overriding the mapping's.
    #[arg(long, env = "WOLKVOX_OPERATION")]
    pub operation: Option<String>,

    /// The ledger file, instead of the target's own in the data directory.
    #[arg(long, value_name = "FILE", env = "WOLKVOX_LEDGER")]
    pub ledger: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Print the uncertain rows as a CSV to fill in (key, status, case_id, …): write
    /// `created` (and the case id) or `missing` in the status column of each.
    #[arg(long, conflicts_with_all = ["file", "created", "missing"])]
    pub list: bool,

    /// A CSV with the columns key, status (created or missing) and optionally case_id:
    /// the --list output filled in, or a results file edited. Other statuses are left as
    /// they are.
    #[arg(long, value_name = "CSV")]
    pub file: Option<PathBuf>,

    /// A key the CRM has, optionally with its case id (KEY or KEY=CASE_ID); repeatable.
    #[arg(long, value_name = "KEY[=CASE_ID]")]
    pub created: Vec<String>,

    /// A key the CRM does not have: the next import sends it; repeatable.
    #[arg(long, value_name = "KEY")]
    pub missing: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    #[command(flatten)]
    pub input: InputArgs,

    /// The YAML mapping.
    #[arg(long, short)]
    pub mapping: PathBuf,

    /// CRM operation, overriding the mapping's.
    #[arg(long, env = "WOLKVOX_OPERATION")]
    pub operation: Option<String>,

    /// How many rows to show; 0 shows every row.
    #[arg(long, default_value_t = 5)]
    pub rows: usize,

    #[command(flatten)]
    pub against: AgainstArgs,
}

#[derive(Debug, Args)]
pub struct InitMappingArgs {
    #[command(flatten)]
    pub input: InputArgs,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Address to listen on; port 0 picks a free one (printed on the first stdout line).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Accepted token (repeatable); none given: any non-empty token is accepted.
    #[arg(long = "token", value_name = "TOKEN")]
    pub tokens: Vec<String>,

    /// Calls per token before 403 TOKEN LIMIT EXCEEDED; 0 = unlimited.
    #[arg(long, default_value_t = 4800)]
    pub daily_limit: u64,

    /// Revoke every token after N calls (403 PLEASE VALIDATE TOKEN).
    #[arg(long, value_name = "N")]
    pub revoke_after: Option<u64>,

    /// Simultaneous requests per token before the 403 "simultaneous requests" answer.
    #[arg(long, default_value_t = 2)]
    pub max_concurrent: usize,

    /// Fixed latency per request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,

    /// Extra random latency, 0..N milliseconds.
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,

    /// Probability of a 500 before storing.
    #[arg(long, default_value_t = 0.0)]
    pub p500_before: f64,

    /// Probability of a 500 after storing (the case exists).
    #[arg(long, default_value_t = 0.0)]
    pub p500_after: f64,

    /// Probability of a 503.
    #[arg(long, default_value_t = 0.0)]
    pub p503: f64,

    /// Probability of a 429 with Retry-After.
    #[arg(long, default_value_t = 0.0)]
    pub p429: f64,

    /// Retry-After seconds sent with 429.
    #[arg(long, default_value_t = 1)]
    pub retry_after: u64,

    /// Probability of a dropped connection before storing.
    #[arg(long, default_value_t = 0.0)]
    pub pdrop_before: f64,

    /// Probability of a dropped connection after storing.
    #[arg(long, default_value_t = 0.0)]
    pub pdrop_after: f64,

    /// Probability of storing, then answering only after --hang-ms (a client timeout).
    #[arg(long, default_value_t = 0.0)]
    pub phang_after: f64,

    #[arg(long, default_value_t = 60_000)]
    pub hang_ms: u64,

    /// Requests FROM-TO (1-based) get the maintenance 403.
    #[arg(long, value_name = "FROM-TO")]
    pub maintenance: Option<String>,

    /// Accepted case types (repeatable); default: Request, Complaints, Claims, Suggestions.
    #[arg(long = "case-type")]
    pub case_types: Vec<String>,

    /// Also write each case to FILE (created or emptied first) every time it is stored,
    /// updated or deleted, one JSON object per line as GET /__cases lists them, each line
    /// written before the answer: an id's last line is what the CRM holds.
    #[arg(long, value_name = "FILE")]
    pub cases_file: Option<PathBuf>,

    /// The CRM's contacts: one e-mail per line, or a CSV with a header naming emailcontact
    /// (and any of namecontact, telephonecontact, idcontact). With it, an insert whose
    /// contact is not one of them (or one created since) gets 412 THE CONTACT DOES NOT EXIST.
    #[arg(long, value_name = "FILE")]
    pub contacts_file: Option<PathBuf>,

    /// Answer every N-th accepted insert without a case id (the case is stored).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub no_id_every: Option<u64>,

    /// Store every N-th accepted insert twice (a duplicate case; the answer names the first).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub duplicate_every: Option<u64>,
}

#[derive(Debug, Args)]
pub struct TokenInfoArgs {
    /// CRM server: a host (crm0001.wolkvox.com) or a base URL.
    #[arg(long, value_name = "HOST|URL", env = "WOLKVOX_SERVER")]
    pub server: String,

    /// The CRM operation the tokens belong to.
    #[arg(long, env = "WOLKVOX_OPERATION")]
    pub operation: String,

    /// File with one token per line (or a directory); else WOLKVOX_TOKEN.
    #[arg(long, value_name = "FILE", env = "WOLKVOX_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// Print one JSON object per token on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UndoArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// The import run whose cases to delete: its number in `runs`.
    #[arg(long, value_name = "N")]
    pub run: i64,

    /// File with the token (or several, one per line). Else WOLKVOX_TOKEN is used.
    #[arg(long, value_name = "FILE", env = "WOLKVOX_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// Cases per delete call: each call costs one use of the token's daily quota.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch: u32,

    /// List the cases that would be deleted, and delete nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Delete without asking first (needed when not run from a terminal).
    #[arg(long)]
    pub yes: bool,

    /// Delete calls per second. 0 = no limit.
    #[arg(long, default_value_t = 5.0, env = "WOLKVOX_RATE")]
    pub rate: f64,

    /// Seconds to wait for one answer.
    #[arg(long, default_value_t = 30.0, env = "WOLKVOX_TIMEOUT")]
    pub timeout: f64,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Show one run's counts and its rows still uncertain, failed or rejected.
    #[arg(long, value_name = "RUN")]
    pub show: Option<i64>,

    /// Where did a ticket go? The run, status, case id and message the ledger holds for
    /// a key or a CRM case id; repeatable. With no target named, every ledger in the data
    /// directory is searched. Exits 2 when one of them is in no ledger searched.
    #[arg(long, value_name = "KEY|CASE_ID", conflicts_with = "show")]
    pub find: Vec<String>,

    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

impl Command {
    /// The command's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Validate(_) => "validate",
            Command::Import(_) => "import",
            Command::Preview(_) => "preview",
            Command::InitMapping(_) => "init-mapping",
            Command::Simulate(_) => "simulate",
            Command::TokenInfo(_) => "token-info",
            Command::Completions { .. } => "completions",
            Command::Resolve(_) => "resolve",
            Command::Runs(_) => "runs",
            Command::Undo(_) => "undo",
            Command::Reconcile(_) => "reconcile",
        }
    }

    /// Whether `--json` asked for one summary object on stdout, whatever the exit.
    pub fn wants_json(&self) -> bool {
        match self {
            Command::Validate(args) => args.output.json,
            Command::Import(args) | Command::Reconcile(args) => args.output.json,
            Command::TokenInfo(args) => args.json,
            Command::Runs(args) => args.json,
            _ => false,
        }
    }
}

fn parse_delimiter(text: &str) -> Result<u8, String> {
    match text {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        "comma" => Ok(b','),
        "semicolon" => Ok(b';'),
        "pipe" => Ok(b'|'),
        other if other.len() == 1 && other.is_ascii() => Ok(other.as_bytes()[0]),
        other => Err(format!(
            "{other:?} is not one ASCII character; use , ; | tab or another single character"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn delimiters_by_name_or_character() {
        assert_eq!(parse_delimiter("tab"), Ok(b'\t'));
        assert_eq!(parse_delimiter(";"), Ok(b';'));
        assert!(parse_delimiter(";;").is_err());
    }
}
