//! Reading the CRM: `cases/queryCases.php`, `custom/query.php` and `custom/queryDates.php`
//! (docs/wolkvox-api.md §8). A look-up stores nothing, so it is retried on any failure but
//! a refusal; an answer that is not a readable list of records is a failure, never "none
//! found" (a row taken for missing on a misread answer would be sent twice).

use serde_json::{Value, json};

use super::classify::{Attempt, StopKind, Verdict, classify};
use super::{Backoff, Client, Token};

/// Tries of one look-up.
pub const TRIES: u32 = 4;

/// One record as the CRM returns it: field name → value.
pub type Record = serde_json::Map<String, Value>;

/// What is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `cases/queryCases.php`: the cases whose `field` (one of the API's listed names,
    /// `description`, `email contact`, …) is `value`.
    Cases { field: String, value: String },
    /// `custom/query.php`: the records of `module` whose `field` is `value`.
    Module {
        module: String,
        field: String,
        value: String,
    },
    /// `custom/queryDates.php`: the records of `module` created in `[from, to)`
    /// (`YYYY-MM-DD HH:MM`, the CRM's clock), at most `limit`, oldest first.
    Dates {
        module: String,
        from: String,
        to: String,
        limit: usize,
    },
}

impl Query {
    pub fn endpoint(&self) -> &'static str {
        match self {
            Query::Cases { .. } => "cases/queryCases.php",
            Query::Module { .. } => "custom/query.php",
            Query::Dates { .. } => "custom/queryDates.php",
        }
    }

    fn body(&self, operation: &str) -> Value {
        match self {
            Query::Cases { field, value } => {
                json!({ "operation": operation, "field": field, "value": value })
            }
            Query::Module {
                module,
                field,
                value,
            } => {
                json!({ "operation": operation, "module": module, "field": field, "value": value })
            }
            Query::Dates {
                module,
                from,
                to,
                limit,
            } => json!({
                "operation": operation, "module": module, "date": true,
                "from": from, "to": to, "limit": limit,
            }),
        }
    }

    /// What was asked, as the ledger and the messages say it (no token, no operation).
    pub fn describe(&self) -> String {
        match self {
            Query::Cases { field, value } => format!("cases where {field} = {value:?}"),
            Query::Module {
                module,
                field,
                value,
            } => format!("{module} where {field} = {value:?}"),
            Query::Dates {
                module,
                from,
                to,
                limit,
            } => format!("{module} created from {from} to {to} (up to {limit})"),
        }
    }
}

/// Why a look-up has no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failed {
    /// The CRM refused the question (a 4xx): asking it again will not help.
    Refused(String),
    /// The run must stop: the token is refused or its quota spent.
    Stop(StopKind, String),
    /// It answered, but not with a list of records.
    Unreadable(String),
    /// No answer after every try.
    NoAnswer(String),
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Refused(m) | Failed::Stop(_, m) | Failed::NoAnswer(m) => f.write_str(m),
            Failed::Unreadable(m) => write!(f, "an answer that is not a list of records: {m}"),
        }
    }
}

impl Looked {
    /// What came back, as the ledger keeps it: the count and ids of the records, or why
    /// there were none.
    pub fn found(&self) -> String {
        match &self.records {
            Ok(records) => {
                let ids: Vec<&str> = records
                    .iter()
                    .filter_map(|r| r.get("wolkvox_id").and_then(Value::as_str))
                    .collect();
                format!("{} records: {}", records.len(), ids.join(" "))
            }
            Err(why) => format!("no answer: {why}"),
        }
    }
}

/// A look-up's answer and the calls it cost (each one a use of the token's quota).
#[derive(Debug)]
pub struct Looked {
    pub records: Result<Vec<Record>, Failed>,
    pub calls: u32,
}

/// Ask `query`, retrying on any failure but a refusal or a stop.
pub async fn ask(client: &Client, token: &Token, operation: &str, query: &Query) -> Looked {
    ask_within(client, token, operation, query, TRIES).await
}

/// `ask`, in at most `tries` tries (each one a call: a caller with a call budget).
pub async fn ask_within(
    client: &Client,
    token: &Token,
    operation: &str,
    query: &Query,
    tries: u32,
) -> Looked {
    let tries = tries.max(1);
    let body = query.body(operation);
    let backoff = Backoff::default();
    let mut calls = 0;
    let mut last = String::new();
    for attempt in 1..=tries {
        let answer = client.post_json(query.endpoint(), token, &body).await;
        if !matches!(answer, Attempt::NotSent(_)) {
            calls += 1;
        }
        let mut after = None;
        match classify(&answer) {
            Verdict::Created { .. } => {
                let body = match &answer {
                    Attempt::Answer { body, .. } => body.as_str(),
                    _ => "",
                };
                match records(body) {
                    Ok(records) => {
                        return Looked {
                            records: Ok(records),
                            calls,
                        };
                    }
                    // A garbled answer may be a passing fault: ask again, then give up.
                    Err(why) => last = format!("unreadable answer: {why}"),
                }
            }
            Verdict::Rejected(m) => {
                return Looked {
                    records: Err(Failed::Refused(m)),
                    calls,
                };
            }
            Verdict::Stop(kind, m) => {
                return Looked {
                    records: Err(Failed::Stop(kind, m)),
                    calls,
                };
            }
            Verdict::Retry { after: a, reason } => {
                after = a;
                last = reason;
            }
            Verdict::Uncertain(m) => last = m,
        }
        if attempt < tries {
            tokio::time::sleep(backoff.delay(attempt, after)).await;
        }
    }
    let records = if last.starts_with("unreadable answer: ") {
        Err(Failed::Unreadable(last))
    } else {
        Err(Failed::NoAnswer(format!(
            "no answer after {tries} tries: {last}"
        )))
    };
    Looked { records, calls }
}

/// The records of a 2xx answer: `data` a list of objects (`[]` or absent when none, as
/// "0 records were are found" says), or one object. Anything else is unreadable.
pub fn records(body: &str) -> Result<Vec<Record>, String> {
    let envelope: Value = serde_json::from_str(body).map_err(|_| clip(body))?;
    let Value::Object(envelope) = envelope else {
        return Err(clip(body));
    };
    match envelope.get("data") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::Object(record) => Ok(record.clone()),
                other => Err(format!(
                    "a record that is not an object: {}",
                    clip(&other.to_string())
                )),
            })
            .collect(),
        Some(Value::Object(record)) if record.contains_key("wolkvox_id") => {
            Ok(vec![record.clone()])
        }
        None | Some(Value::Null) => {
            let msg = envelope
                .get("msg")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if msg.trim_start().starts_with("0 ") {
                Ok(Vec::new())
            } else {
                Err(format!(
                    "no records and no \"0 records\" message: {}",
                    clip(body)
                ))
            }
        }
        Some(other) => Err(format!("data is {}", clip(&other.to_string()))),
    }
}

/// A record's field as text: a string, a number, or a related field's `{value}`.
pub fn text<'a>(record: &'a Record, field: &str) -> Option<std::borrow::Cow<'a, str>> {
    match record.get(field)? {
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s.as_str())),
        Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        Value::Object(related) => match related.get("value")? {
            Value::String(s) => Some(std::borrow::Cow::Borrowed(s.as_str())),
            _ => None,
        },
        _ => None,
    }
}

fn clip(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() > 120 {
        format!("{}…", text.chars().take(119).collect::<String>())
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_read_strictly() {
        let two = r#"{"code":"200","error":"null","msg":"2 records were are found",
            "data":[{"wolkvox_id":"a"},{"wolkvox_id":"b"}]}"#;
        assert_eq!(records(two).unwrap().len(), 2);
        let none = r#"{"code":"200","error":null,"msg":"0 records were are found","data":[]}"#;
        assert!(records(none).unwrap().is_empty());
        let none_null = r#"{"code":"200","msg":"0 records were are found","data":null}"#;
        assert!(records(none_null).unwrap().is_empty());
        // Not "none found": a page of HTML, a list of strings, an empty envelope.
        for bad in [
            "<html>oops</html>",
            r#"{"code":"200","data":["a"]}"#,
            r#"{"code":"200","msg":"ok"}"#,
            r#"{"code":"200","data":"x"}"#,
        ] {
            assert!(records(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn related_fields_read_as_their_value() {
        let record: Record =
            serde_json::from_str(r#"{"a":"x","n":7,"r":{"value":"v","value_id":"1"}}"#).unwrap();
        assert_eq!(text(&record, "a").unwrap(), "x");
        assert_eq!(text(&record, "n").unwrap(), "7");
        assert_eq!(text(&record, "r").unwrap(), "v");
        assert!(text(&record, "missing").is_none());
    }
}
