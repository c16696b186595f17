//! Cases: `cases/insert.php` and `cases/update.php` (multipart), what a stored case holds,
//! and the record a look-up shows for it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::gate::{self, Done, Endpoint};
use super::{Book, SimState, SuccessStyle, error, every, lock, new_id, now, ok, required};

const REQUIRED: [&str; 8] = [
    "operation",
    "case-type",
    "responsible",
    "owner",
    "contact",
    "description",
    "status",
    "priority",
];

/// The parts `update.php` takes besides `operation` and `wolkvox-id` (Wolkvox's list).
const UPDATABLE: [&str; 7] = [
    "case-type",
    "responsible",
    "status",
    "priority",
    "solution",
    "form",
    "file",
];

/// Of those, the ones a case must never hold empty (insert requires them).
const NOT_EMPTY: [&str; 4] = ["case-type", "responsible", "status", "priority"];

/// A case the simulator stored.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StoredCase {
    pub id: String,
    /// The CRM's case number (`idCase` in look-ups): 1, 2, … in the order stored.
    pub number: u64,
    /// The parts as sent, `form` the JSON object's text; updates replace them.
    pub fields: BTreeMap<String, String>,
    /// Server time of creation, `YYYY-MM-DD HH:MM:SS`.
    pub created: String,
    /// How many times `update.php` changed it.
    pub updates: u64,
    /// Deleted through `custom/delete.php`: kept, but no endpoint finds it any more.
    pub deleted: bool,
}

impl Book {
    pub(super) fn add_case(&mut self, case: StoredCase) {
        self.case_at.insert(case.id.clone(), self.cases.len());
        self.cases.push(case);
    }

    pub(super) fn live_case_mut(&mut self, id: &str) -> Option<&mut StoredCase> {
        let at = *self.case_at.get(id)?;
        self.cases.get_mut(at).filter(|case| !case.deleted)
    }
}

pub(super) async fn insert(
    State(state): State<Arc<SimState>>,
    method: Method,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    gate::call(
        &state,
        Endpoint::Insert,
        method,
        &headers,
        read_fields(multipart),
        store,
    )
    .await
}

pub(super) async fn update(
    State(state): State<Arc<SimState>>,
    method: Method,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    gate::call(
        &state,
        Endpoint::Update,
        method,
        &headers,
        read_fields(multipart),
        change,
    )
    .await
}

/// Every text part of a multipart body; `None` if the body is not multipart.
async fn read_fields(
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Option<BTreeMap<String, String>> {
    let mut multipart = multipart.ok()?;
    let mut fields = BTreeMap::new();
    while let Ok(Some(field)) = multipart.next_field().await {
        let name = field.name().unwrap_or_default().to_string();
        let text = field.text().await.ok()?;
        fields.insert(name, text);
    }
    Some(fields)
}

fn given<'a>(fields: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    fields.get(name).map(String::as_str)
}

/// A refusal of the parts both insert and update check: `form` and `case-type`.
fn check_form_and_type(state: &SimState, fields: &BTreeMap<String, String>) -> Option<Response> {
    if let Some(form) = given(fields, "form")
        && !matches!(serde_json::from_str::<Value>(form), Ok(Value::Object(_)))
    {
        return Some(error(
            400,
            "BAD REQUEST",
            "THE FORM FIELD MUST BE A JSON OBJECT",
        ));
    }
    let types = &state.scenario.case_types;
    if let Some(case_type) = given(fields, "case-type")
        && !types.is_empty()
        && !types.iter().any(|t| t == case_type)
    {
        return Some(error(
            412,
            "PRECONDITION FAILED",
            "THE CASE TYPE DOES NOT EXIST",
        ));
    }
    None
}

fn store(state: &Arc<SimState>, fields: Option<BTreeMap<String, String>>) -> Done {
    let s = &state.scenario;
    let Some(fields) = fields else {
        return Done::Refused(required());
    };
    if REQUIRED
        .iter()
        .any(|name| given(&fields, name).is_none_or(|v| v.trim().is_empty()))
    {
        return Done::Refused(required());
    }
    if let Some(refusal) = check_form_and_type(state, &fields) {
        return Done::Refused(refusal);
    }
    let mut book = lock(&state.book);
    let contact = given(&fields, "contact").unwrap_or_default().trim();
    if s.contacts.is_some() && !book.contact_by_email.contains_key(contact) {
        return Done::Refused(error(
            412,
            "PRECONDITION FAILED",
            "THE CONTACT DOES NOT EXIST",
        ));
    }
    let n = state.inserts.fetch_add(1, Ordering::SeqCst) + 1;
    let copies = if every(s.duplicate_every, n) { 2 } else { 1 };
    let mut first = None;
    for _ in 0..copies {
        let case = StoredCase {
            id: new_id(),
            number: state.stored.fetch_add(1, Ordering::SeqCst) + 1,
            fields: fields.clone(),
            created: now(),
            updates: 0,
            deleted: false,
        };
        state.journal(&case);
        first.get_or_insert_with(|| case.id.clone());
        if s.keep_cases {
            book.add_case(case);
        }
    }
    drop(book);
    let id = first.unwrap_or_default();
    let style = if every(s.no_id_every, n) {
        SuccessStyle::NoId
    } else {
        s.success
    };
    Done::Worked(ok(match style {
        SuccessStyle::Documented => json!({
            "code": "200", "error": null, "msg": "THE CASE WAS CREATED SUCCESSFULLY",
            "data": {"wolkvox_id": id}
        }),
        SuccessStyle::IntCodeNullString => json!({
            "code": 200, "error": "null", "msg": "THE CASE WAS CREATED SUCCESSFULLY",
            "data": {"wolkvox_id": id}
        }),
        SuccessStyle::NoId => json!({
            "code": "200", "error": null, "msg": "1 records were are created"
        }),
    }))
}

/// `update.php`: the given updatable parts replace the stored ones, `form` keys merge.
///
/// `description`, `owner` and `contact` are not in update.php's documented list, so the
/// simulator ignores them (the case keeps what it was created with), as it ignores any
/// other part it does not know: a client that sends them reads "record updated" and has
/// changed none of them, which is what the importer must expect of the real CRM.
fn change(state: &Arc<SimState>, fields: Option<BTreeMap<String, String>>) -> Done {
    let Some(fields) = fields else {
        return Done::Refused(required());
    };
    let blank = |name: &str| given(&fields, name).is_none_or(|v| v.trim().is_empty());
    if blank("operation") || blank("wolkvox-id") {
        return Done::Refused(required());
    }
    if NOT_EMPTY
        .iter()
        .any(|name| given(&fields, name).is_some_and(|v| v.trim().is_empty()))
    {
        return Done::Refused(required());
    }
    if let Some(refusal) = check_form_and_type(state, &fields) {
        return Done::Refused(refusal);
    }
    let id = given(&fields, "wolkvox-id").unwrap_or_default().trim();
    let mut book = lock(&state.book);
    let Some(case) = book.live_case_mut(id) else {
        return Done::Refused(error(404, "NOT FOUND", "THE RECORD DOES NOT EXIST"));
    };
    for name in UPDATABLE {
        let Some(value) = given(&fields, name) else {
            continue;
        };
        let value = if name == "form" {
            merge_form(case.fields.get("form").map(String::as_str), value)
        } else {
            value.to_string()
        };
        case.fields.insert(name.to_string(), value);
    }
    case.updates += 1;
    state.journal(case);
    Done::Worked(ok(json!({
        "code": "200", "error": null, "msg": "record updated",
        "data": {"wolkvox_id": id}
    })))
}

/// The stored `form` with `update`'s keys put in (given keys replace, others stay). Both
/// are JSON objects' text (checked before); a stored form that is not one is replaced.
fn merge_form(stored: Option<&str>, update: &str) -> String {
    let mut form = match stored.map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Object(form))) => form,
        _ => Map::new(),
    };
    if let Ok(Value::Object(update)) = serde_json::from_str::<Value>(update) {
        form.extend(update);
    }
    Value::Object(form).to_string()
}

/// The record `queryCases.php`, `custom/query.php` and `custom/queryDates.php` show for a
/// case: each custom (`form`) field as a top-level key by its label, then the CRM's own
/// keys (which win if a label has the same name).
pub(super) fn record(case: &StoredCase) -> Map<String, Value> {
    let field = |name: &str| Value::from(case.fields.get(name).cloned().unwrap_or_default());
    let mut record = match case.fields.get("form").map(|f| serde_json::from_str(f)) {
        Some(Ok(Value::Object(form))) => form,
        _ => Map::new(),
    };
    record.insert("wolkvox_id".into(), case.id.clone().into());
    record.insert("idCase".into(), case.number.to_string().into());
    record.insert("description".into(), field("description"));
    record.insert("status".into(), field("status"));
    record.insert("priority".into(), field("priority"));
    record.insert("solution".into(), field("solution"));
    record.insert("type case".into(), field("case-type"));
    record.insert("email contact".into(), field("contact"));
    record.insert("responsible user".into(), field("responsible"));
    record.insert("owner user".into(), field("owner"));
    record.insert("date creation".into(), case.created.clone().into());
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_keys_merge_given_ones_replace_others_stay() {
        let merged = merge_form(
            Some(r#"{"Número de ticket":"T-1","Canal":"Correo"}"#),
            r#"{"Canal":"Teléfono","Área":"Ventas"}"#,
        );
        let merged: Value = serde_json::from_str(&merged).unwrap();
        assert_eq!(
            merged,
            json!({"Número de ticket":"T-1","Canal":"Teléfono","Área":"Ventas"})
        );
        assert_eq!(merge_form(None, r#"{"a":1}"#), r#"{"a":1}"#);
    }

    #[test]
    fn a_record_shows_custom_fields_by_label_and_the_crm_keys_win() {
        let case = StoredCase {
            id: "647f6ff1660dff48d803ffe6".into(),
            number: 7,
            fields: [
                ("case-type", "Request"),
                ("contact", "ana@x.co"),
                ("status", "Abierto"),
                ("form", r#"{"Número de ticket":"T-1","status":"shadow"}"#),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            created: "2025-01-02 03:04:05".into(),
            updates: 0,
            deleted: false,
        };
        let record = record(&case);
        assert_eq!(record["Número de ticket"], "T-1");
        assert_eq!(record["status"], "Abierto");
        assert_eq!(record["idCase"], "7");
        assert_eq!(record["type case"], "Request");
        assert_eq!(record["email contact"], "ana@x.co");
        assert_eq!(record["date creation"], "2025-01-02 03:04:05");
        assert_eq!(record["description"], "");
    }
}
