//! `runs` with no target named: the one ledger in the data directory, or the list.

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;

use crate::ledger::{Ledger, location};

/// With no target named: the one ledger in the data directory, or a list of them all
/// (`None`: the list was printed).
pub fn only_ledger(must_pick: bool, json: bool) -> anyhow::Result<Option<PathBuf>> {
    let dir = location::data_dir()?;
    let found = location::known_ledgers()?;
    match found.as_slice() {
        [] => anyhow::bail!(
            "no ledgers in {} yet: an import creates its target's ledger there (or pass --ledger \
             FILE)",
            dir.display()
        ),
        [one] => Ok(Some(one.clone())),
        many => {
            anyhow::ensure!(
                !must_pick,
                "{} ledgers in {}: pass the --server (or --simulate) and --mapping of the import, \
                 or --ledger FILE",
                many.len(),
                dir.display()
            );
            let mut out = std::io::stdout().lock();
            let mut listed = Vec::new();
            if !json {
                writeln!(out, "ledgers in {}:", dir.display())?;
            }
            for path in many {
                let about = Ledger::open_read_only(path).and_then(|l| {
                    let runs = l.runs()?;
                    Ok((
                        l.target()?,
                        runs.len(),
                        runs.last().map(|r| r.started_at.clone()),
                    ))
                });
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match about {
                    Ok((target, runs, last)) if json => listed.push(json!({
                        "ledger": path.display().to_string(),
                        "target": target,
                        "runs": runs,
                        "last_started_at": last,
                    })),
                    Err(e) if json => listed.push(json!({
                        "ledger": path.display().to_string(),
                        "error": e.to_string(),
                    })),
                    Ok((target, runs, last)) => writeln!(
                        out,
                        "  {name:<48}  target {}  {runs} runs, last {}",
                        target.as_deref().unwrap_or("?"),
                        last.as_deref().unwrap_or("-")
                    )?,
                    Err(e) => writeln!(out, "  {name:<48}  unreadable: {e}")?,
                }
            }
            if json {
                writeln!(
                    out,
                    "{}",
                    json!({"data_dir": dir.display().to_string(), "ledgers": listed})
                )?;
            } else {
                writeln!(
                    out,
                    "pick one with --server (or --simulate) and --mapping, or --ledger FILE"
                )?;
            }
            Ok(None)
        }
    }
}
