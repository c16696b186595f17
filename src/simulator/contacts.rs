//! The contacts module: the configured list (`Scenario::contacts`, `simulate
//! --contacts-file`), `custom/insertMany.php`, and the record a look-up shows.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::gate::{self, Done, Endpoint};
use super::query::{Module, json_body, module, text};
use super::{Book, SimState, error, lock, new_id, now, ok, required};

/// A contact as the CRM's contacts module holds it (its four documented fields).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Contact {
    pub namecontact: String,
    pub emailcontact: String,
    pub telephonecontact: String,
    pub idcontact: String,
}

impl Contact {
    /// A contact known by its e-mail only.
    pub fn email(email: &str) -> Contact {
        Contact {
            emailcontact: email.trim().to_string(),
            ..Contact::default()
        }
    }
}

/// A contact the simulator holds.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StoredContact {
    pub id: String,
    #[serde(flatten)]
    pub contact: Contact,
    /// Server time of creation (for the configured list: when the simulator started).
    pub created: String,
    pub deleted: bool,
}

impl Book {
    /// Hold `contact` (its e-mail trimmed); its new id.
    pub(super) fn add_contact(&mut self, mut contact: Contact) -> String {
        contact.emailcontact = contact.emailcontact.trim().to_string();
        let id = new_id();
        let at = self.contacts.len();
        self.contact_at.insert(id.clone(), at);
        self.contact_by_email
            .insert(contact.emailcontact.clone(), at);
        self.contacts.push(StoredContact {
            id: id.clone(),
            contact,
            created: now(),
            deleted: false,
        });
        id
    }

    /// Mark contact `id` deleted; false if no live contact has it.
    pub(super) fn delete_contact(&mut self, id: &str) -> bool {
        let Some(&at) = self.contact_at.get(id) else {
            return false;
        };
        let Some(stored) = self.contacts.get_mut(at).filter(|c| !c.deleted) else {
            return false;
        };
        stored.deleted = true;
        self.contact_by_email.remove(&stored.contact.emailcontact);
        true
    }
}

/// The record `custom/query.php` and `custom/queryDates.php` show for a contact.
pub(super) fn record(stored: &StoredContact) -> Map<String, Value> {
    let c = &stored.contact;
    let mut record = Map::new();
    record.insert("wolkvox_id".into(), stored.id.clone().into());
    record.insert("namecontact".into(), c.namecontact.clone().into());
    record.insert("emailcontact".into(), c.emailcontact.clone().into());
    record.insert("telephonecontact".into(), c.telephonecontact.clone().into());
    record.insert("idcontact".into(), c.idcontact.clone().into());
    record.insert("date creation".into(), stored.created.clone().into());
    record
}

pub(super) async fn insert_many(
    State(state): State<Arc<SimState>>,
    method: Method,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    gate::call(
        &state,
        Endpoint::InsertMany,
        method,
        &headers,
        async move { body },
        create,
    )
    .await
}

/// `insertMany.php` for contacts. Atomic: when any entry is refused (no `emailcontact`,
/// one that is not an e-mail address, or an e-mail the CRM already has or the batch
/// repeats) none of the batch is stored,
/// and the 400's message names the first refused entry. Keys other than the four
/// contact fields are ignored.
fn create(state: &Arc<SimState>, body: Result<Bytes, BytesRejection>) -> Done {
    let request = match json_body(body) {
        Ok(request) => request,
        Err(bad) => return bad.refused(),
    };
    if text(&request, "operation").is_none() {
        return Done::Refused(required());
    }
    match module(&request) {
        Ok(Module::Contacts) => {}
        Ok(Module::Cases) => {
            return Done::Refused(error(
                400,
                "BAD REQUEST",
                "THE SIMULATOR CREATES CASES THROUGH cases/insert.php ONLY",
            ));
        }
        Err(bad) => return bad.refused(),
    }
    let Some(Value::Array(entries)) = request.get("fields") else {
        return Done::Refused(required());
    };
    if entries.is_empty() {
        return Done::Refused(required());
    }
    let mut contacts = Vec::with_capacity(entries.len());
    let mut book = lock(&state.book);
    let mut in_batch: HashMap<String, usize> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let Value::Object(entry) = entry else {
            return Done::Refused(refuse(&format!("ENTRY {} IS NOT AN OBJECT", i + 1)));
        };
        let field = |name: &str| text(entry, name).unwrap_or_default();
        let email = field("emailcontact");
        if email.is_empty() {
            return Done::Refused(refuse(&format!(
                "ENTRY {}: THE FIELD emailcontact IS REQUIRED",
                i + 1
            )));
        }
        if !email.contains('@') || email.contains(char::is_whitespace) {
            return Done::Refused(refuse(&format!(
                "ENTRY {}: {email} IS NOT A VALID E-MAIL",
                i + 1
            )));
        }
        if book.contact_by_email.contains_key(&email) {
            return Done::Refused(refuse(&format!(
                "ENTRY {}: THE CONTACT {email} ALREADY EXISTS",
                i + 1
            )));
        }
        if let Some(first) = in_batch.insert(email.clone(), i + 1) {
            return Done::Refused(refuse(&format!(
                "ENTRY {}: THE CONTACT {email} IS ALSO ENTRY {first}",
                i + 1
            )));
        }
        contacts.push(Contact {
            namecontact: field("namecontact"),
            emailcontact: email,
            telephonecontact: field("telephonecontact"),
            idcontact: field("idcontact"),
        });
    }
    let ids: Vec<Value> = contacts
        .into_iter()
        .map(|contact| json!({"wolkvox_id": book.add_contact(contact)}))
        .collect();
    drop(book);
    Done::Worked(ok(json!({
        "code": "200", "error": null,
        "msg": format!("{} records were are created", ids.len()),
        "data": ids,
    })))
}

fn refuse(msg: &str) -> Response {
    error(
        400,
        "BAD REQUEST",
        &format!("NO CONTACT WAS CREATED: {msg}"),
    )
}

/// The contacts of a `--contacts-file` named `name`: one e-mail per line (blank lines and
/// lines starting with `#` skipped), or a CSV whose first line is a header naming
/// `emailcontact` and any of `namecontact`, `telephonecontact`, `idcontact`. An error
/// names the file and line: a column it does not know, a missing or malformed e-mail, an
/// e-mail given twice.
pub fn parse_contacts(name: &str, text: &str) -> Result<Vec<Contact>, String> {
    let header = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let is_csv = header
        .split(',')
        .any(|cell| cell.trim().trim_matches('"') == "emailcontact");
    let mut rows: Vec<(u64, Contact)> = Vec::new();
    if is_csv {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(false)
            .from_reader(text.as_bytes());
        let columns: Vec<String> = reader
            .headers()
            .map_err(|e| format!("{name}: {e}"))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        if let Some(unknown) = columns.iter().find(|c| {
            ![
                "namecontact",
                "emailcontact",
                "telephonecontact",
                "idcontact",
            ]
            .contains(&c.as_str())
        }) {
            return Err(format!(
                "{name}:1: unknown column {unknown:?} (the columns are emailcontact, \
                 namecontact, telephonecontact, idcontact)"
            ));
        }
        for record in reader.records() {
            let record = record.map_err(|e| format!("{name}: {e}"))?;
            let line = record.position().map_or(0, |p| p.line());
            let mut contact = Contact::default();
            for (column, value) in columns.iter().zip(record.iter()) {
                let value = value.trim().to_string();
                match column.as_str() {
                    "namecontact" => contact.namecontact = value,
                    "emailcontact" => contact.emailcontact = value,
                    "telephonecontact" => contact.telephonecontact = value,
                    _ => contact.idcontact = value,
                }
            }
            rows.push((line, contact));
        }
    } else {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                rows.push((i as u64 + 1, Contact::email(line)));
            }
        }
    }
    let mut seen: HashMap<String, u64> = HashMap::new();
    for (line, contact) in &rows {
        let email = &contact.emailcontact;
        if email.is_empty() {
            return Err(format!("{name}:{line}: emailcontact is empty"));
        }
        if !email.contains('@') || email.contains(char::is_whitespace) {
            // A CSV whose header lacks `emailcontact` was read as a list of e-mails.
            let hint = if *line == 1 {
                " (a list has one e-mail a line; a CSV names its columns namecontact, \
                 emailcontact, telephonecontact, idcontact)"
            } else {
                ""
            };
            return Err(format!(
                "{name}:{line}: {email:?} is not an e-mail address{hint}"
            ));
        }
        if let Some(first) = seen.insert(email.clone(), *line) {
            return Err(format!("{name}:{line}: {email} is also on line {first}"));
        }
    }
    Ok(rows.into_iter().map(|(_, contact)| contact).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_one_email_per_line_and_a_csv_names_its_columns() {
        let list = parse_contacts("c.txt", "# known\nana@x.co\n\n  luis@y.co \n").unwrap();
        let emails: Vec<&str> = list.iter().map(|c| c.emailcontact.as_str()).collect();
        assert_eq!(emails, ["ana@x.co", "luis@y.co"]);

        let csv =
            "namecontact,emailcontact,idcontact\nAna,ana@x.co,1\n\"Ruiz, Luis\",luis@y.co,2\n";
        let list = parse_contacts("c.csv", csv).unwrap();
        assert_eq!(list[1].namecontact, "Ruiz, Luis");
        assert_eq!(list[1].emailcontact, "luis@y.co");
        assert_eq!(list[1].idcontact, "2");
    }

    #[test]
    fn bad_lines_are_named() {
        assert_eq!(
            parse_contacts("c.txt", "ana@x.co\nnot an address\n").unwrap_err(),
            "c.txt:2: \"not an address\" is not an e-mail address"
        );
        assert_eq!(
            parse_contacts("c.txt", "ana@x.co\nluis@y.co\nana@x.co\n").unwrap_err(),
            "c.txt:3: ana@x.co is also on line 1"
        );
        assert_eq!(
            parse_contacts("c.csv", "emailcontact,phone\na@x.co,1\n").unwrap_err(),
            "c.csv:1: unknown column \"phone\" (the columns are emailcontact, namecontact, \
             telephonecontact, idcontact)"
        );
        assert_eq!(
            parse_contacts("c.csv", "namecontact,emailcontact\nAna,\n").unwrap_err(),
            "c.csv:2: emailcontact is empty"
        );
    }
}
