//! The raw-JSON endpoints that read and delete: `cases/queryCases.php`, `custom/query.php`,
//! `custom/queryDates.php` and `custom/delete.php`, with their pure parts (which field a
//! query names, when a record matches, which records a date window holds).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::gate::{self, Done, Endpoint};
use super::{SimState, cases, contacts, error, lock, ok, required};

/// `queryDates.php`'s page size when none is asked for, and the most it gives.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// The fields `queryCases.php` filters on, as the record keys they compare. Wolkvox lists
/// more (contact name, company, …; docs/wolkvox-api.md §8) that the simulator does not
/// hold, and no custom (`form`) field: those are refused, not answered "0 records".
const CASE_FIELDS: [&str; 10] = [
    "wolkvox_id",
    "idCase",
    "description",
    "status",
    "priority",
    "solution",
    "type case",
    "email contact",
    "responsible user",
    "owner user",
];

const CONTACT_FIELDS: [&str; 5] = [
    "wolkvox_id",
    "namecontact",
    "emailcontact",
    "telephonecontact",
    "idcontact",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Module {
    Cases,
    Contacts,
}

/// A request the raw-JSON endpoints refuse: 400, with this message (small, unlike the
/// `Response` it becomes).
#[derive(Debug)]
pub(super) struct Bad(String);

impl Bad {
    fn required() -> Bad {
        Bad("SOME PARAMETERS ARE REQUIRED".into())
    }

    pub(super) fn refused(self) -> Done {
        Done::Refused(error(400, "BAD REQUEST", &self.0))
    }
}

/// The request's JSON object; anything else is 400 SOME PARAMETERS ARE REQUIRED.
pub(super) fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, Bad> {
    match body.map(|bytes| serde_json::from_slice::<Value>(&bytes)) {
        Ok(Ok(Value::Object(request))) => Ok(request),
        _ => Err(Bad::required()),
    }
}

/// A text value of `object` (a string, trimmed, or a number), `None` if absent or empty.
pub(super) fn text(object: &Map<String, Value>, key: &str) -> Option<String> {
    let text = match object.get(key)? {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

pub(super) fn module(request: &Map<String, Value>) -> Result<Module, Bad> {
    match text(request, "module").as_deref() {
        None => Err(Bad::required()),
        Some("cases") => Ok(Module::Cases),
        Some("contacts") => Ok(Module::Contacts),
        Some(other) => Err(Bad(format!("THE MODULE {other} DOES NOT EXIST"))),
    }
}

/// The record key a query's `field` compares, or the 400 for a field it cannot filter.
/// `any_case_key`: `custom/query.php` on cases compares any key, custom labels too.
fn record_key(module: Module, field: &str, any_case_key: bool) -> Result<String, Bad> {
    let field = if field == "wolkvox-id" {
        "wolkvox_id"
    } else {
        field
    };
    let known = match module {
        Module::Cases => any_case_key || CASE_FIELDS.contains(&field),
        Module::Contacts => CONTACT_FIELDS.contains(&field),
    };
    if known {
        Ok(field.to_string())
    } else {
        Err(Bad(format!("THE FIELD {field} CANNOT BE QUERIED")))
    }
}

/// Does a record's value match the wanted one? Exact, case too, after trimming both; a
/// number by its digits; a typed custom value (`{"type":…,"value":…}`) by its `value`.
pub(super) fn matches(value: Option<&Value>, wanted: &str) -> bool {
    match value {
        Some(Value::String(s)) => s.trim() == wanted.trim(),
        Some(Value::Number(n)) => n.to_string() == wanted.trim(),
        Some(Value::Bool(b)) => b.to_string() == wanted.trim(),
        Some(Value::Object(typed)) => matches(typed.get("value"), wanted),
        _ => false,
    }
}

/// The records created in `from ≤ minute < to` (minutes `YYYY-MM-DD HH:MM`; a record's
/// minute is its `created` cut to the minute), oldest first (ties in stored order), at
/// most `limit`. `records` come in stored order with their `created`.
pub(super) fn window<T>(records: Vec<(String, T)>, from: &str, to: &str, limit: usize) -> Vec<T> {
    let mut inside: Vec<(String, T)> = records
        .into_iter()
        .filter(|(created, _)| {
            let minute = created.get(..16).unwrap_or(created);
            from <= minute && minute < to
        })
        .collect();
    inside.sort_by(|a, b| a.0.cmp(&b.0));
    inside.into_iter().take(limit).map(|(_, r)| r).collect()
}

/// A minute as `queryDates.php` takes it, `YYYY-MM-DD HH:MM`, written canonically.
fn minute(text: &str) -> Option<String> {
    chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M")
        .ok()
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
}

/// `limit`: absent → 100; more than 1,000 → 1,000; not a number from 1 → `None`.
fn limit(request: &Map<String, Value>) -> Option<usize> {
    let Some(value) = request.get("limit") else {
        return Some(DEFAULT_LIMIT);
    };
    let n = match value {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (n >= 1).then(|| usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT))
}

fn found(records: Vec<Map<String, Value>>) -> Done {
    Done::Worked(ok(json!({
        "code": "200", "error": "null",
        "msg": format!("{} records were are found", records.len()),
        "data": records,
    })))
}

macro_rules! json_endpoint {
    ($name:ident, $endpoint:expr, $work:expr) => {
        pub(super) async fn $name(
            State(state): State<Arc<SimState>>,
            method: Method,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> Response {
            gate::call(
                &state,
                $endpoint,
                method,
                &headers,
                async move { body },
                |state, body| match json_body(body) {
                    Ok(request) if text(&request, "operation").is_some() => $work(state, &request),
                    Ok(_) => Done::Refused(required()),
                    Err(bad) => bad.refused(),
                },
            )
            .await
        }
    };
}

json_endpoint!(query_cases, Endpoint::QueryCases, |s, r| look_up(
    s, r, None
));
json_endpoint!(query, Endpoint::Query, |s, r: &Map<String, Value>| {
    match module(r) {
        Ok(m) => look_up(s, r, Some(m)),
        Err(bad) => bad.refused(),
    }
});
json_endpoint!(query_dates, Endpoint::QueryDates, dated);
json_endpoint!(delete, Endpoint::Delete, super::delete::remove);

/// `queryCases.php` (`module` None) and `custom/query.php`: every live record whose
/// `field` matches `value`, in stored order.
fn look_up(state: &Arc<SimState>, request: &Map<String, Value>, module: Option<Module>) -> Done {
    let (Some(field), Some(wanted)) = (text(request, "field"), text(request, "value")) else {
        return Done::Refused(required());
    };
    let key = match record_key(module.unwrap_or(Module::Cases), &field, module.is_some()) {
        Ok(key) => key,
        Err(bad) => return bad.refused(),
    };
    let book = lock(&state.book);
    let records: Vec<Map<String, Value>> = match module.unwrap_or(Module::Cases) {
        Module::Cases => book
            .cases
            .iter()
            .filter(|c| !c.deleted)
            .map(cases::record)
            .filter(|r| matches(r.get(&key), &wanted))
            .collect(),
        Module::Contacts => book
            .contacts
            .iter()
            .filter(|c| !c.deleted)
            .map(contacts::record)
            .filter(|r| matches(r.get(&key), &wanted))
            .collect(),
    };
    drop(book);
    found(records)
}

/// `queryDates.php`: the live records of `module` created in `[from, to)`, oldest first,
/// at most `limit`. A full page means "there may be more: ask again from the last
/// record's minute".
fn dated(state: &Arc<SimState>, request: &Map<String, Value>) -> Done {
    let module = match module(request) {
        Ok(module) => module,
        Err(bad) => return bad.refused(),
    };
    if request.get("date") != Some(&Value::Bool(true)) {
        return Done::Refused(required());
    }
    let (Some(from), Some(to)) = (text(request, "from"), text(request, "to")) else {
        return Done::Refused(required());
    };
    let (Some(from), Some(to)) = (minute(&from), minute(&to)) else {
        return Done::Refused(error(
            400,
            "BAD REQUEST",
            "THE DATES MUST BE WRITTEN YYYY-MM-DD HH:MM",
        ));
    };
    let Some(limit) = limit(request) else {
        return Done::Refused(error(
            400,
            "BAD REQUEST",
            "THE LIMIT MUST BE A WHOLE NUMBER FROM 1",
        ));
    };
    let book = lock(&state.book);
    let records = match module {
        Module::Cases => window(
            book.cases
                .iter()
                .filter(|c| !c.deleted)
                .map(|c| (c.created.clone(), c))
                .collect(),
            &from,
            &to,
            limit,
        )
        .into_iter()
        .map(cases::record)
        .collect(),
        Module::Contacts => window(
            book.contacts
                .iter()
                .filter(|c| !c.deleted)
                .map(|c| (c.created.clone(), c))
                .collect(),
            &from,
            &to,
            limit,
        )
        .into_iter()
        .map(contacts::record)
        .collect(),
    };
    drop(book);
    found(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_is_exact_after_trimming() {
        assert!(matches(Some(&json!(" Abierto ")), "Abierto"));
        assert!(matches(Some(&json!("Abierto")), " Abierto "));
        assert!(!matches(Some(&json!("abierto")), "Abierto"));
        assert!(!matches(Some(&json!("Abierto ya")), "Abierto"));
        assert!(matches(Some(&json!(42)), "42"));
        assert!(matches(
            Some(&json!({"type": "search", "value": "T-1"})),
            "T-1"
        ));
        assert!(!matches(None, "T-1"));
        assert!(!matches(Some(&json!(null)), ""));
    }

    #[test]
    fn query_cases_filters_listed_fields_only() {
        assert_eq!(
            record_key(Module::Cases, "wolkvox-id", false).unwrap(),
            "wolkvox_id"
        );
        assert_eq!(
            record_key(Module::Cases, "type case", false).unwrap(),
            "type case"
        );
        assert_eq!(
            record_key(Module::Cases, "Número de ticket", false)
                .unwrap_err()
                .0,
            "THE FIELD Número de ticket CANNOT BE QUERIED"
        );
        assert_eq!(
            record_key(Module::Cases, "Número de ticket", true).unwrap(),
            "Número de ticket"
        );
        assert_eq!(
            record_key(Module::Contacts, "status", true).unwrap_err().0,
            "THE FIELD status CANNOT BE QUERIED"
        );
    }

    #[test]
    fn a_window_is_from_inclusive_to_exclusive_by_minute_oldest_first_and_paged() {
        let records = vec![
            ("2025-03-01 10:06:00".to_string(), "c"),
            ("2025-03-01 10:05:59".to_string(), "b"),
            ("2025-03-01 10:04:59".to_string(), "before"),
            ("2025-03-01 10:05:00".to_string(), "a"),
            ("2025-03-01 10:07:00".to_string(), "at the end"),
            ("2025-03-01 10:06:00".to_string(), "d"),
        ];
        let all = window(records.clone(), "2025-03-01 10:05", "2025-03-01 10:07", 100);
        assert_eq!(all, ["a", "b", "c", "d"]);
        // Paged by 3: the next page asks again from the last record's minute (10:06), so
        // it repeats c, which the client already has, and goes on with d.
        let first = window(records.clone(), "2025-03-01 10:05", "2025-03-01 10:07", 3);
        assert_eq!(first, ["a", "b", "c"]);
        assert_eq!(
            window(records.clone(), "2025-03-01 10:06", "2025-03-01 10:07", 3),
            ["c", "d"]
        );
        // A minute holding more than a page cannot be paged past: the same page again.
        assert_eq!(
            window(records, "2025-03-01 10:05", "2025-03-01 10:07", 2),
            ["a", "b"]
        );
    }

    #[test]
    fn dates_and_limits_are_read_strictly() {
        assert_eq!(
            minute(" 2025-03-01 10:05 ").as_deref(),
            Some("2025-03-01 10:05")
        );
        assert_eq!(minute("2025-03-01 10:05:00"), None);
        assert_eq!(minute("2025-03-01"), None);
        let req = |v: Value| json!({"limit": v}).as_object().cloned().unwrap_or_default();
        assert_eq!(limit(&Map::new()), Some(DEFAULT_LIMIT));
        assert_eq!(limit(&req(json!(5))), Some(5));
        assert_eq!(limit(&req(json!("7"))), Some(7));
        assert_eq!(limit(&req(json!(5000))), Some(MAX_LIMIT));
        assert_eq!(limit(&req(json!(0))), None);
        assert_eq!(limit(&req(json!(-1))), None);
        assert_eq!(limit(&req(json!("many"))), None);
    }
}
