//! `custom/delete.php`: cases and contacts are marked deleted, never forgotten.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::gate::Done;
use super::query::{Module, module, text};
use super::{SimState, error, lock, ok, required};

/// `custom/delete.php`: mark the listed live records of `module` deleted (a list with
/// `multiple: true`, one id otherwise). Some unknown: the others are deleted, 200, and
/// `msg` names the unknown ones; all unknown: 404 naming them, nothing changed.
pub(super) fn remove(state: &Arc<SimState>, request: &Map<String, Value>) -> Done {
    let module = match module(request) {
        Ok(module) => module,
        Err(bad) => return bad.refused(),
    };
    let multiple = request.get("multiple") == Some(&Value::Bool(true));
    let ids: Vec<String> = match (multiple, request.get("wolkvox-id")) {
        (true, Some(Value::Array(ids))) => {
            let ids: Option<Vec<String>> = ids
                .iter()
                .map(|id| id.as_str().map(str::trim).map(str::to_string))
                .collect();
            match ids {
                Some(ids) if !ids.is_empty() && ids.iter().all(|id| !id.is_empty()) => ids,
                _ => return Done::Refused(required()),
            }
        }
        (false, Some(_)) if text(request, "wolkvox-id").is_some() => {
            vec![text(request, "wolkvox-id").unwrap_or_default()]
        }
        _ => return Done::Refused(required()),
    };
    let mut deleted = Vec::new();
    let mut unknown = Vec::new();
    let mut book = lock(&state.book);
    for id in ids {
        let done = match module {
            Module::Cases => match book.live_case_mut(&id) {
                Some(case) => {
                    case.deleted = true;
                    state.journal(case);
                    true
                }
                None => false,
            },
            Module::Contacts => book.delete_contact(&id),
        };
        if done {
            deleted.push(id);
        } else {
            unknown.push(id);
        }
    }
    drop(book);
    if deleted.is_empty() {
        return Done::Refused(error(
            404,
            "NOT FOUND",
            &format!("THE RECORD DOES NOT EXIST: {}", unknown.join(", ")),
        ));
    }
    let mut msg = format!("{} records were are deleted", deleted.len());
    if !unknown.is_empty() {
        msg.push_str(&format!(
            "; THE RECORD DOES NOT EXIST: {}",
            unknown.join(", ")
        ));
    }
    Done::Worked(ok(json!({
        "code": "200", "error": null, "msg": msg,
        "data": {"deleted": deleted, "not_found": unknown},
    })))
}
