//! `undo --run N`: delete the cases one import run created, by the ids its ledger
//! recorded (never anything else), in batches of `custom/delete.php`; the ledger marks
//! them deleted, so a later import creates those tickets again.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::Context;

use crate::cli::UndoArgs;
use crate::exit::Verdict;
use crate::ledger::{CreatedCase, Ledger};
use crate::sender::{self, Client, delete};

pub async fn run(args: &UndoArgs) -> anyhow::Result<Verdict> {
    anyhow::ensure!(
        !args.target.simulate,
        "undo needs the CRM the import went to (--server): the simulator of `import \
         --simulate` keeps no case between runs, so there is nothing to delete"
    );
    let server = args
        .target
        .server
        .as_deref()
        .context("--server is required: the CRM the import went to")?;
    let path = super::target::existing_ledger(&args.target)?;
    let target = Ledger::open_read_only(&path)
        .and_then(|l| l.target())
        .with_context(|| format!("could not read the ledger {}", path.display()))?
        .with_context(|| format!("{} names no CRM target: not a ledger", path.display()))?;
    let mut ledger = Ledger::open(&path, &target)
        .with_context(|| format!("could not open the ledger {}", path.display()))?;
    let run = args.run;
    let Some(record) = ledger.runs()?.into_iter().find(|r| r.id == run) else {
        anyhow::bail!(
            "no run {run} in {}: `wolkvox-import runs` with the same --server and --mapping \
             lists them",
            path.display()
        );
    };
    anyhow::ensure!(
        record.command == "import",
        "run {run} was a `{}`, not an import: only the cases an import created can be undone",
        record.command
    );
    let (cases, no_id): (Vec<CreatedCase>, Vec<CreatedCase>) = ledger
        .created_by(run)?
        .into_iter()
        .partition(|c| c.case_id.is_some());
    for case in &no_id {
        eprintln!(
            "row {} ({}): the CRM gave no case id when it created it: undo cannot delete it; \
             find it in the CRM and delete it there",
            case.source_row, case.key
        );
    }
    let attention = if no_id.is_empty() {
        Verdict::Clean
    } else {
        Verdict::RowsNeedAttention
    };
    let batch = args.batch as usize;
    let calls = cases.len().div_ceil(batch);
    if cases.is_empty() {
        eprintln!("run {run} has no case left to delete (none created, or already undone)");
        return Ok(attention);
    }
    if args.dry_run {
        let mut out = std::io::stdout().lock();
        writeln!(out, "row,key,case_id")?;
        for case in &cases {
            let id = case.case_id.as_deref().unwrap_or_default();
            writeln!(out, "{},{},{id}", case.source_row, case.key)?;
        }
        eprintln!(
            "would delete {} cases of run {run} from {server} in {calls} call(s) of up to \
             {batch} (--batch); nothing was deleted",
            cases.len()
        );
        return Ok(attention);
    }
    if !args.yes {
        confirm(cases.len(), run, server)?;
    }
    let token = sender::token::load(
        args.token_file.as_deref(),
        std::env::var("WOLKVOX_TOKEN").ok(),
    )?
    .into_iter()
    .next()
    .context("no token")?;
    let operation = target
        .rsplit_once('|')
        .map(|(_, op)| op)
        .unwrap_or_default();
    anyhow::ensure!(
        args.timeout > 0.0
            && args.timeout.is_finite()
            && (args.rate == 0.0 || (args.rate >= crate::run::MIN_RATE && args.rate.is_finite())),
        "--timeout must be a positive number of seconds and --rate a number of calls a second"
    );
    let client = Client::new(
        sender::client::insert_url(server)?,
        Duration::from_secs_f64(args.timeout),
    )
    .context("could not build the HTTP client")?;
    ledger.begin_run("undo", &format!("run {run}"), None, None)?;
    let spacing = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
    let (mut deleted, mut gone, mut left) = (0u64, 0u64, 0u64);
    let mut stop = None;
    for (n, chunk) in cases.chunks(batch).enumerate() {
        if n > 0
            && let Some(spacing) = spacing
        {
            tokio::time::sleep(spacing).await;
        }
        let ids: Vec<String> = chunk.iter().filter_map(|c| c.case_id.clone()).collect();
        match delete::cases(&client, &token, operation, &ids).await {
            Ok(not_found) => {
                let marks: Vec<(String, String)> = chunk
                    .iter()
                    .map(|c| {
                        let id = c.case_id.as_deref().unwrap_or_default();
                        if not_found.iter().any(|n| n == id) {
                            gone += 1;
                            let m =
                                format!("undo of run {run}: case {id} was no longer in the CRM");
                            eprintln!(
                                "row {} ({}): case {id} was no longer in the CRM",
                                c.source_row, c.key
                            );
                            (c.key.clone(), m)
                        } else {
                            deleted += 1;
                            (c.key.clone(), format!("deleted by the undo of run {run}"))
                        }
                    })
                    .collect();
                ledger.mark_deleted(&marks)?;
            }
            Err(why) => {
                left += chunk.len() as u64;
                eprintln!(
                    "could not delete {} cases ({}): {why}",
                    chunk.len(),
                    ids.join(", ")
                );
                if let Some(verdict) = why.stops() {
                    stop = Some(verdict);
                    left += cases.len().saturating_sub((n + 1) * batch) as u64;
                    break;
                }
            }
        }
    }
    let verdict = stop.unwrap_or(if left > 0 {
        Verdict::RowsNeedAttention
    } else {
        attention
    });
    let counts = [
        ("deleted", deleted),
        ("not_found", gone),
        ("left", left),
        ("no_case_id", no_id.len() as u64),
    ];
    ledger.finish_run(&counts, verdict.code())?;
    eprintln!(
        "undo of run {run}: {deleted} deleted, {gone} no longer in the CRM, {left} left (run the \
         same command again for them), {} without a case id",
        no_id.len()
    );
    Ok(verdict)
}

/// Ask on the terminal before deleting; off a terminal, `--yes` must say it.
fn confirm(cases: usize, run: i64, server: &str) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    anyhow::ensure!(
        stdin.is_terminal(),
        "undo deletes {cases} cases of run {run} from {server}: pass --yes to confirm (not asked: \
         the input is not a terminal); --dry-run lists them"
    );
    eprint!("Delete {cases} cases of run {run} from {server}? [y/N] ");
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    anyhow::ensure!(
        matches!(answer.trim(), "y" | "Y" | "yes"),
        "nothing deleted"
    );
    Ok(())
}
