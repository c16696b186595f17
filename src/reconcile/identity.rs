//! When a case in the CRM is a row's ticket. Exact, never "close enough": the fields that
//! identify a ticket (the mapping's `lookup:`, or description, contact, case type and the
//! custom fields the CRM returns) must be equal after trimming, which is all the CRM does
//! to a value. A case equal in the first field but not in another is a near match: the
//! row stays uncertain for a person to look at (a CRM that rewrites a value must not turn
//! into a resent ticket).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::mapping::Payload;
use crate::mapping::delta::{self, Fingerprints};
use crate::sender::lookup::{self, Record};

/// The payload fields `cases/queryCases.php` can search by, and the record key each is
/// returned under (docs/wolkvox-api.md §8).
const CASE_FIELDS: [(&str, &str); 8] = [
    ("description", "description"),
    ("contact", "email contact"),
    ("case-type", "type case"),
    ("status", "status"),
    ("priority", "priority"),
    ("solution", "solution"),
    ("responsible", "responsible user"),
    ("owner", "owner user"),
];

/// The fields a `lookup:` may start with: those the CRM can be searched by.
pub const SEARCHABLE: [&str; 8] = [
    "description",
    "contact",
    "case-type",
    "status",
    "priority",
    "solution",
    "responsible",
    "owner",
];

/// The keys a case record carries for the CRM's own fields: a custom field labelled so
/// (`status`) comes back as the CRM's value, not the form's, and is not compared.
const RECORD_KEYS: [&str; 13] = [
    "wolkvox_id",
    "idCase",
    "idPrefijo",
    "description",
    "status",
    "priority",
    "solution",
    "type case",
    "email contact",
    "responsible user",
    "owner user",
    "date creation",
    "reason",
];

fn own_key(label: &str) -> bool {
    RECORD_KEYS.iter().any(|k| k.eq_ignore_ascii_case(label))
}

/// The default identity, first the field searched by.
const DEFAULT: [&str; 3] = ["description", "contact", "case-type"];

/// What identifies one row's ticket: (payload field, record key, value), first the one
/// searched by. Custom fields (`form.X`) are compared when the record carries `X`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    fields: Vec<(String, String, String)>,
    /// With the default identity, every `form` label is compared when returned.
    all_form: bool,
    form: BTreeMap<String, String>,
    /// The `form` labels that hold the row's key (a ticket number): a case that differs
    /// there is another ticket, however alike the rest.
    key_labels: Vec<String>,
}

/// How a record compares with a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compared {
    Same,
    /// Equal in the searched field and all but one of the others (named).
    Near(Vec<String>),
    /// Another ticket: a different searched field, or two fields or more.
    Other,
}

impl Identity {
    /// The identity of `payload` under the mapping's `lookup` (empty: the default).
    pub fn of(payload: &Payload, lookup: &[String]) -> Identity {
        let form = form_values(payload.form());
        let values: BTreeMap<&str, &str> = payload.fields().collect();
        let names: Vec<&str> = if lookup.is_empty() {
            DEFAULT.to_vec()
        } else {
            lookup.iter().map(String::as_str).collect()
        };
        let fields = names
            .into_iter()
            .filter_map(|name| match name.strip_prefix("form.") {
                Some(label) => Some((
                    name.to_string(),
                    label.to_string(),
                    form.get(label).cloned().unwrap_or_default(),
                )),
                None => CASE_FIELDS.iter().find(|(f, _)| *f == name).map(|(f, r)| {
                    (
                        f.to_string(),
                        r.to_string(),
                        values.get(f).copied().unwrap_or_default().to_string(),
                    )
                }),
            })
            .map(|(f, r, v)| (f, r, v.trim().to_string()))
            .collect();
        let key_labels = form
            .iter()
            .filter(|(label, value)| {
                !own_key(label) && !value.trim().is_empty() && value.trim() == payload.key.trim()
            })
            .map(|(label, _)| label.clone())
            .collect();
        Identity {
            fields,
            all_form: lookup.is_empty(),
            form,
            key_labels,
        }
    }

    /// The field searched by and its value, as `queryCases.php` takes them; `None` when
    /// the value is empty (nothing to search by).
    pub fn search(&self) -> Option<(&str, &str)> {
        let (_, record, value) = self.fields.first()?;
        (!value.is_empty()).then_some((record.as_str(), value.as_str()))
    }

    /// The identifying fields whose fingerprint differs from what was sent (`sent`): the
    /// file's row is not the one the CRM got, so it cannot be looked up by it.
    pub fn changed_since_sent(&self, payload: &Payload, sent: Option<&str>) -> Vec<String> {
        let Some(sent) = sent.and_then(delta::from_text) else {
            return Vec::new();
        };
        let now: Fingerprints = payload.fingerprints();
        let mut names: Vec<&str> = self.fields.iter().map(|(f, _, _)| f.as_str()).collect();
        if self.all_form {
            names.extend(
                now.keys()
                    .filter(|k| k.starts_with("form."))
                    .map(String::as_str),
            );
        }
        names
            .into_iter()
            .filter(|name| sent.get(*name) != now.get(*name))
            .map(str::to_string)
            .collect()
    }

    pub fn compare(&self, record: &Record) -> Compared {
        let value = |key: &str| lookup::text(record, key).map(|v| v.trim().to_string());
        let Some((_, first, wanted)) = self.fields.first() else {
            return Compared::Other;
        };
        if value(first).as_deref() != Some(wanted.as_str()) {
            return Compared::Other;
        }
        let another_key = self.key_labels.iter().any(|label| {
            value(label)
                .is_some_and(|found| Some(found.as_str()) != self.form.get(label).map(|v| v.trim()))
        });
        if another_key {
            return Compared::Other;
        }
        let mut differ = Vec::new();
        for (name, key, wanted) in self.fields.iter().skip(1) {
            match value(key) {
                Some(found) if found == *wanted => {}
                // A custom field the CRM does not return cannot be compared.
                None if name.starts_with("form.") => {}
                _ => differ.push(name.clone()),
            }
        }
        if self.all_form {
            for (label, wanted) in self.form.iter().filter(|(label, _)| !own_key(label)) {
                if let Some(found) = value(label)
                    && found != wanted.trim()
                {
                    differ.push(format!("form.{label}"));
                }
            }
        }
        match differ.len() {
            0 => Compared::Same,
            // One field off: this ticket with a value the CRM rewrote, or another so like
            // it that a person must say.
            1 => Compared::Near(differ),
            // Another ticket with the same text.
            _ => Compared::Other,
        }
    }
}

/// The `form` object's values as text (a typed value by its `value`).
fn form_values(form: &str) -> BTreeMap<String, String> {
    let Ok(Value::Object(form)) = serde_json::from_str::<Value>(form) else {
        return BTreeMap::new();
    };
    form.into_iter()
        .map(|(label, value)| {
            let text = match value {
                Value::String(s) => s,
                Value::Object(typed) => match typed.get("value") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => Value::Object(typed).to_string(),
                },
                other => other.to_string(),
            };
            (label, text)
        })
        .collect()
}
