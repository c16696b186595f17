//! A compiled mapping applied to one row: the values evaluated, transformed and checked,
//! the payload written, the key computed.

use std::borrow::Cow;

use super::compile::{CompiledField, CompiledKey, CompiledMapping, Origin};
use super::json::json_string;
use super::keys::payload_hash;
use super::template::render;
use super::transform::{clip, is_email, trimmed};
use super::{FieldError, Payload};
use crate::source::Row;

impl CompiledMapping {
    /// Turn one row into a payload, or report every failing check of the row at once.
    pub fn apply(&self, row: &Row) -> Result<Payload, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut payload = Payload::start();
        payload.push("operation", &self.operation);
        let mut warnings = Vec::new();
        for (api, field) in &self.fields {
            if let Some(value) = field.evaluate(row, &mut errors, &mut warnings)
                && !value.is_empty()
            {
                payload.push(api, &value);
            }
        }
        // Written straight to text: labels were escaped once at compile time.
        let form_start = payload.text.len();
        payload.text.push('{');
        for (label, field) in &self.form {
            if let Some(value) = field.evaluate(row, &mut errors, &mut warnings)
                && !value.is_empty()
            {
                if payload.text.len() > form_start + 1 {
                    payload.text.push(',');
                }
                payload.text.push_str(label);
                payload.text.push(':');
                field.write_form_value(&value, &mut payload.text);
            }
        }
        payload.text.push('}');
        // The fields a missing contact is created with: a bad one fails the row, as a
        // case field does.
        if let Some(create) = self.contacts.as_ref().and_then(|c| c.create.as_ref()) {
            for (name, field) in create {
                if let Some(value) = field.evaluate(row, &mut errors, &mut warnings)
                    && !value.trim().is_empty()
                {
                    payload
                        .contact_fields
                        .push((name, value.trim().to_string()));
                }
            }
        }

        let key = match &self.key {
            CompiledKey::PayloadHash => Some(payload_hash(payload.fields(), payload.form())),
            CompiledKey::Columns(columns) => {
                let mut key = String::new();
                let mut empty = None;
                for (n, (index, name)) in columns.iter().enumerate() {
                    let part = row.cells.get(*index).map_or("", trimmed);
                    if part.is_empty() && empty.is_none() {
                        empty = Some(name);
                    }
                    if n > 0 {
                        key.push('|');
                    }
                    key.push_str(part);
                }
                if let Some(name) = empty {
                    errors.push(FieldError {
                        column: name.clone(),
                        message:
                            "the key column is empty: the ticket cannot be tracked across runs"
                                .into(),
                    });
                    None
                } else {
                    Some(key)
                }
            }
            CompiledKey::Template(parts) => {
                let key = render(parts, row);
                if key.trim().is_empty() {
                    errors.push(FieldError {
                        column: "key".into(),
                        message: "the key template gives an empty key".into(),
                    });
                }
                Some(key)
            }
        };

        match key {
            Some(key) if errors.is_empty() => {
                payload.key = key;
                payload.warnings = warnings;
                if self.fingerprints {
                    payload.keep_fingerprints();
                }
                Ok(payload)
            }
            _ => Err(errors),
        }
    }

    /// The key of a row when it can be computed, even if the row is invalid (for reports).
    pub fn key_hint(&self, row: &Row) -> String {
        match &self.key {
            CompiledKey::Columns(columns) => columns
                .iter()
                .map(|(i, _)| row.cells.get(*i).map_or("", trimmed))
                .collect::<Vec<_>>()
                .join("|"),
            CompiledKey::Template(parts) => render(parts, row),
            CompiledKey::PayloadHash => String::new(),
        }
    }
}

impl CompiledField {
    fn evaluate<'a>(
        &'a self,
        row: &'a Row,
        errors: &mut Vec<FieldError>,
        warnings: &mut Vec<FieldError>,
    ) -> Option<Cow<'a, str>> {
        let mut value = match &self.origin {
            Origin::Column(index) => {
                if let Some((_, message)) = row.cell_errors.iter().find(|(c, _)| c == index) {
                    errors.push(self.error(message.clone()));
                    return None;
                }
                Cow::Borrowed(row.cells.get(*index).unwrap_or_default())
            }
            Origin::Constant(text) => Cow::Borrowed(text.as_str()),
            Origin::Template(parts) => Cow::Owned(render(parts, row)),
        };
        // A NUL byte ends a string in the CRM's PHP back end: never send one.
        if memchr::memchr(0, value.as_bytes()).is_some() {
            errors.push(
                self.error(
                    "holds a NUL byte (\\0), which the CRM cannot store: remove it from the cell"
                        .into(),
                ),
            );
            return None;
        }
        let mut notes = Vec::new();
        for step in &self.steps {
            match step.apply_noting(value, &mut notes) {
                Ok(next) => value = next,
                Err(message) => {
                    errors.push(self.error(message));
                    return None;
                }
            }
        }
        warnings.extend(notes.into_iter().map(|note| self.error(note)));
        if trimmed(&value).is_empty()
            && let Some(default) = &self.default
        {
            value = Cow::Borrowed(default.as_str());
        }
        let before = errors.len();
        if trimmed(&value).is_empty() {
            if self.required {
                errors.push(self.error("required but empty".into()));
            }
            return (errors.len() == before).then_some(value);
        }
        if self.email && !is_email(trimmed(&value)) {
            errors.push(self.error(format!("not a valid e-mail address: {:?}", clip(&value))));
        }
        // No more bytes than `max` means no more characters either.
        if let Some(max) = self.max_length
            && value.len() > max
        {
            let length = value.chars().count();
            if length > max {
                errors.push(self.error(format!("{length} characters, more than max_length {max}")));
            }
        }
        if let Some(allowed) = &self.one_of
            && !allowed.iter().any(|a| *a == value)
        {
            errors.push(self.error(format!(
                "{:?} is not one of: {}",
                clip(&value),
                allowed.join(", ")
            )));
        }
        if let Some(pattern) = &self.pattern
            && !pattern.is_match(&value)
        {
            errors.push(self.error(format!(
                "{:?} does not match the pattern {}",
                clip(&value),
                pattern.as_str()
            )));
        }
        (errors.len() == before).then_some(value)
    }

    fn error(&self, message: String) -> FieldError {
        FieldError {
            column: self.label.clone(),
            message,
        }
    }

    /// Append this field's JSON value: a string, or a typed object wrapping it.
    fn write_form_value(&self, value: &str, out: &mut String) {
        match &self.kind {
            None => json_string(value, out),
            Some((kind, attributes)) => {
                out.push_str("{\"type\":");
                json_string(kind, out);
                out.push_str(",\"value\":");
                json_string(value, out);
                for (name, attr) in attributes {
                    out.push(',');
                    json_string(name, out);
                    out.push(':');
                    json_string(attr, out);
                }
                out.push('}');
            }
        }
    }
}
