//! What changed in a ticket since it was sent, without keeping the ticket: a fingerprint
//! per field (each API field, and each key of `form`), kept by the ledger and compared
//! with the same row of a later export.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::Payload;

/// The fields `cases/update.php` takes (besides `operation` and `wolkvox-id`). A change
/// to any other field (`description`, `owner`, `contact`) cannot reach the CRM.
const UPDATABLE: [&str; 5] = ["case-type", "responsible", "status", "priority", "solution"];

/// Field name → fingerprint (16 hex digits of SHA-256: a collision between two values of
/// one field of one ticket is not a practical worry, and the ledger stays small).
pub type Fingerprints = BTreeMap<String, String>;

fn fingerprint(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(value.as_bytes());
    let mut text = String::with_capacity(16);
    for b in digest.iter().take(8) {
        text.push(char::from(HEX[usize::from(b >> 4)]));
        text.push(char::from(HEX[usize::from(b & 15)]));
    }
    text
}

/// The name under which a `form` key is fingerprinted.
fn form_field(key: &str) -> String {
    format!("form.{key}")
}

/// Whether `field` (as `Fingerprints` names it) can be changed through `update.php`.
pub fn updatable(field: &str) -> bool {
    field.starts_with("form.") || UPDATABLE.contains(&field)
}

impl Payload {
    /// The fingerprint of every field this payload sends, `form` key by key: computed
    /// when the row was mapped, if the mapping asked for it, else now.
    pub fn fingerprints(&self) -> Fingerprints {
        self.prints
            .as_deref()
            .and_then(from_text)
            .unwrap_or_else(|| self.compute_fingerprints())
    }

    /// The fingerprints as the ledger stores them.
    pub fn fingerprint_text(&self) -> String {
        match &self.prints {
            Some(text) => text.clone(),
            None => to_text(&self.compute_fingerprints()),
        }
    }

    /// Compute the fingerprints once and keep them (in the mapping threads).
    pub(super) fn keep_fingerprints(&mut self) {
        self.prints = Some(to_text(&self.compute_fingerprints()));
    }

    fn compute_fingerprints(&self) -> Fingerprints {
        let mut prints: Fingerprints = self
            .fields()
            .filter(|(name, _)| *name != "operation")
            .map(|(name, value)| (name.to_string(), fingerprint(value)))
            .collect();
        if let Ok(serde_json::Value::Object(form)) = serde_json::from_str(self.form()) {
            for (key, value) in form {
                let text = match value {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                prints.insert(form_field(&key), fingerprint(&text));
            }
        }
        prints
    }
}

impl Payload {
    /// The `cases/update.php` request that brings case `case_id` to this payload's values
    /// for the updatable fields in `changed`: `operation`, `wolkvox-id`, those fields, and
    /// the whole `form` when one of its keys changed (the CRM merges form keys). Empty
    /// when none of `changed` can be updated.
    pub fn for_update(&self, case_id: &str, changed: &[String]) -> Option<Payload> {
        let wanted = |name: &str| changed.iter().any(|c| c == name) && updatable(name);
        let form_changed = changed.iter().any(|c| c.starts_with("form."));
        if !form_changed && !self.fields().any(|(name, _)| wanted(name)) {
            return None;
        }
        let mut update = Payload::start();
        update.key = self.key.clone();
        for (name, value) in self.fields() {
            if name == "operation" {
                update.push(name, value);
                update.push("wolkvox-id", case_id);
            } else if wanted(name) {
                update.push(name, value);
            }
        }
        update
            .text
            .push_str(if form_changed { self.form() } else { "{}" });
        Some(update)
    }
}

/// The fields that differ between what was sent and what the file says now, in name
/// order: changed, added, or no longer given.
pub fn changed(sent: &Fingerprints, now: &Fingerprints) -> Vec<String> {
    let mut fields: Vec<String> = now
        .iter()
        .filter(|(field, print)| sent.get(*field) != Some(*print))
        .map(|(field, _)| field.clone())
        .collect();
    fields.extend(sent.keys().filter(|f| !now.contains_key(*f)).cloned());
    fields.sort();
    fields
}

/// Fingerprints as the ledger stores them (a JSON object), and back.
pub fn to_text(prints: &Fingerprints) -> String {
    serde_json::to_string(prints).unwrap_or_default()
}

pub fn from_text(text: &str) -> Option<Fingerprints> {
    serde_json::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(status: &str, description: &str, form: &str) -> Payload {
        let mut p = Payload::start();
        p.push("operation", "acme");
        p.push("status", status);
        p.push("description", description);
        p.text.push_str(form);
        p
    }

    #[test]
    fn a_changed_field_and_a_changed_form_key_are_named_and_nothing_else() {
        let sent = payload("Abierto", "Printer jam", r#"{"Ticket":"T-1","Area":"IT"}"#);
        let same = payload("Abierto", "Printer jam", r#"{"Area":"IT","Ticket":"T-1"}"#);
        assert_eq!(
            changed(&sent.fingerprints(), &same.fingerprints()),
            Vec::<String>::new()
        );
        let now = payload("Cerrado", "Printer jam", r#"{"Ticket":"T-1","Area":"Ops"}"#);
        assert_eq!(
            changed(&sent.fingerprints(), &now.fingerprints()),
            ["form.Area", "status"]
        );
        assert!(!sent.fingerprints().contains_key("operation"));
    }

    #[test]
    fn a_field_no_longer_given_is_a_change_and_description_cannot_be_updated() {
        let sent = payload("Abierto", "Printer jam", r#"{"Area":"IT"}"#);
        let now = payload("Abierto", "Printer on fire", "{}");
        let fields = changed(&sent.fingerprints(), &now.fingerprints());
        assert_eq!(fields, ["description", "form.Area"]);
        assert!(!updatable("description"));
        assert!(updatable("form.Area") && updatable("status"));
    }

    #[test]
    fn an_update_sends_the_case_id_and_only_the_changed_fields_it_can() {
        let now = payload("Cerrado", "Printer on fire", r#"{"Area":"Ops"}"#);
        let changed = vec!["description".to_string(), "status".to_string()];
        let update = now.for_update("abc123", &changed).unwrap();
        let fields: Vec<_> = update.fields().collect();
        assert_eq!(
            fields,
            [
                ("operation", "acme"),
                ("wolkvox-id", "abc123"),
                ("status", "Cerrado")
            ]
        );
        assert_eq!(update.form(), "{}");
        let form = now
            .for_update("abc123", &["form.Area".to_string()])
            .unwrap();
        assert_eq!(form.form(), r#"{"Area":"Ops"}"#);
        assert!(
            now.for_update("abc123", &["description".to_string()])
                .is_none()
        );
    }

    #[test]
    fn a_fingerprint_is_the_first_8_bytes_of_sha256_in_hex() {
        // sha256("abc") = ba7816bf8f01cfea…
        assert_eq!(fingerprint("abc"), "ba7816bf8f01cfea");
    }

    #[test]
    fn fingerprints_kept_by_the_mapping_threads_are_those_computed_later() {
        let mut kept = payload("Abierto", "x", r#"{"Area":"IT"}"#);
        let computed = kept.fingerprints();
        kept.keep_fingerprints();
        assert!(kept.prints.is_some());
        assert_eq!(kept.fingerprints(), computed);
        assert_eq!(kept.fingerprint_text(), to_text(&computed));
    }

    #[test]
    fn fingerprints_survive_the_ledger() {
        let prints = payload("Abierto", "x", "{}").fingerprints();
        assert_eq!(from_text(&to_text(&prints)), Some(prints));
        assert_eq!(from_text("not json"), None);
    }
}
