//! A mapping's `key:` before an import: refused when missing, and when it changed in a way
//! that would create the file's tickets again.

use std::path::Path;

use crate::cli::InputArgs;
use crate::ledger::{Ledger, Prior};
use crate::mapping::{self, CompiledMapping, spec::KeySpec};

use super::Opened;

/// Why a mapping without `key:` is refused, and what to write instead.
pub fn no_key_message(mapping: &Path, headers: &[String]) -> String {
    let candidates = mapping::guess::ticket_number_columns(headers);
    let suggestion = match candidates.as_slice() {
        [] => format!(
            "add `key: [<the column with the ticket number>]` (no header looks like one; the \
             columns are: {})",
            headers.join(", ")
        ),
        [one] => format!("add `key: [{one}]` (it looks like the ticket number)"),
        many => format!(
            "add `key: [<one of them>]`; these columns look like ticket numbers: {}",
            many.join(", ")
        ),
    };
    format!(
        "the mapping {} has no `key:`, so a ticket could not be recognised on a later run, \
         and any change to a row would create it again: {suggestion}. As a last resort, \
         `key: payload` keys each row by its whole content. Nothing was sent.",
        mapping.display()
    )
}

/// A mapping whose `key:` differs from every one the ledger's tickets were created under
/// is either another export (its own tickets, its own key) or the same tickets under a new
/// key, which would create every one of them again. Tell them apart by the file itself:
/// if an earlier key, applied to this file's rows, finds a ticket the ledger created, the
/// key changed, and the run is refused before anything is sent. The file is read once for
/// all the earlier keys.
pub fn check_key_definition(
    input: &InputArgs,
    mapping_path: &Path,
    opened: &Opened,
    ledger: &Ledger,
    warnings: &mut Vec<String>,
) -> anyhow::Result<()> {
    let current = opened.mapping.key_definition();
    let current_text = serde_json::to_string(current)?;
    let known = ledger.key_definitions()?;
    if known.contains(&current_text) {
        return Ok(());
    }
    if !ledger.has_no_cases()? {
        // The mapping as this run read it, under each earlier key whose columns this file
        // has (one whose columns it lacks is another export's, not this one's).
        let spec = mapping::parse(&opened.mapping_text, mapping_path)?;
        let olds: Vec<(KeySpec, CompiledMapping)> = known
            .iter()
            .filter_map(|k| serde_json::from_str::<KeySpec>(k).ok())
            .filter_map(|old| {
                let mut old_spec = spec.clone();
                old_spec.key = Some(old.clone());
                let compiled = CompiledMapping::compile(
                    &old_spec,
                    &opened.source.headers,
                    Some(&opened.mapping.operation),
                    mapping_path,
                    &input.input,
                )
                .ok()?;
                Some((old, compiled))
            })
            .collect();
        // For each earlier key, in the ledger's order, the first row it finds created.
        let mut found: Vec<Option<(u64, String, i64)>> = vec![None; olds.len()];
        if !olds.is_empty() {
            for row in opened.source.reread()?.flatten() {
                for ((_, old), found) in olds.iter().zip(found.iter_mut()) {
                    if found.is_some() {
                        continue;
                    }
                    let key = old
                        .apply(&row)
                        .map(|p| p.key)
                        .unwrap_or_else(|_| old.key_hint(&row));
                    if key.is_empty() {
                        continue;
                    }
                    if let Some(Prior::Created { run, .. }) = ledger.prior(&key)? {
                        *found = Some((row.number, key, run));
                    }
                }
                // The first earlier key is the one named if it finds one: no need to read on.
                if found.first().is_some_and(Option::is_some) || found.iter().all(Option::is_some) {
                    break;
                }
            }
        }
        if let Some(((old, _), (row, key, run))) = olds
            .iter()
            .zip(&found)
            .find_map(|(old, found)| Some((old, found.as_ref()?)))
        {
            anyhow::bail!(
                "the mapping's key changed from `key: {old}` to `key: {current}`, and under the \
                 old key row {row} is {key:?}, which run {run} created: under the new key every \
                 such ticket would be created again in the CRM. Put `key: {old}` back in {} \
                 (rows a key cannot tell apart can be fixed in the file instead). Nothing was \
                 sent.",
                mapping_path.display()
            );
        }
        if let Some(last) = known
            .last()
            .and_then(|k| serde_json::from_str::<KeySpec>(k).ok())
        {
            let note = format!(
                "a new key for this CRM target: `key: {current}` (earlier runs used `key: \
                 {last}`, and none of this file's rows is a ticket they created under it)"
            );
            tracing::info!("{note}");
            warnings.push(note);
        }
    }
    ledger.add_key_definition(&current_text)?;
    Ok(())
}
