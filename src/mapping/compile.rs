//! Compile a `MappingSpec` against the header row once (`apply.rs` applies it to each
//! row): every column resolved, every transform and pattern built, every problem listed.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::Path;

use regex::Regex;

use super::columns::Columns;
use super::spec::{DuplicatePolicy, FieldSpec, KeySpec, MappingSpec};
use super::template::{Part, parse_template};
use super::transform::Step;
use super::{API_FIELDS, MappingError};
use crate::source::Row;

/// Where a value comes from.
#[derive(Debug, Clone)]
pub(super) enum Origin {
    Column(usize),
    Constant(String),
    Template(Vec<Part>),
}

#[derive(Debug, Clone)]
pub(super) struct CompiledField {
    /// How messages name this value: the column, or the field for constants and templates.
    pub(super) label: String,
    pub(super) origin: Origin,
    pub(super) default: Option<String>,
    pub(super) steps: Vec<Step>,
    pub(super) required: bool,
    pub(super) email: bool,
    pub(super) max_length: Option<usize>,
    pub(super) one_of: Option<Vec<String>>,
    pub(super) pattern: Option<Regex>,
    pub(super) kind: Option<(String, Vec<(String, String)>)>,
}

#[derive(Debug, Clone)]
pub(super) enum CompiledKey {
    PayloadHash,
    Columns(Vec<(usize, String)>),
    Template(Vec<Part>),
}

/// A mapping checked against one file's headers, ready to apply to every row.
#[derive(Debug, Clone)]
pub struct CompiledMapping {
    pub operation: String,
    pub(super) fields: Vec<(&'static str, CompiledField)>,
    pub(super) form: Vec<(String, CompiledField)>,
    pub(super) key: CompiledKey,
    /// The mapping says nothing about keys: `import` refuses it (a payload hash is only
    /// used when asked for with `key: payload`).
    key_missing: bool,
    /// The `key:` as written, so the ledger can tell when it changes between runs.
    key_definition: KeySpec,
    pub on_duplicate_key: DuplicatePolicy,
    /// Source columns that nothing maps: a renamed column must never vanish silently.
    pub unused_columns: Vec<String>,
    headers: Vec<String>,
    feedback_column: Option<usize>,
    /// Payloads carry their field fingerprints (`import`: the ledger keeps them), computed
    /// by the threads that map the rows, not by the one that sends them.
    pub fingerprints: bool,
    /// The `lookup:` fields as written (empty: `reconcile`'s default).
    pub lookup: Vec<String>,
    /// The `contacts:` section: whether the cases' contacts are checked, and the fields a
    /// missing one is created with.
    pub(super) contacts: Option<CompiledContacts>,
}

/// The contact fields `contacts.create` may give (`emailcontact` is the case's contact).
pub const CONTACT_FIELDS: [&str; 3] = ["namecontact", "telephonecontact", "idcontact"];

#[derive(Debug, Clone)]
pub(super) struct CompiledContacts {
    /// `None`: check only; `Some`: create the missing ones with these fields.
    pub(super) create: Option<Vec<(&'static str, CompiledField)>>,
}

impl CompiledMapping {
    /// Check `spec` against `headers`; every problem is listed at once.
    pub fn compile(
        spec: &MappingSpec,
        headers: &[String],
        operation_override: Option<&str>,
        mapping_path: &Path,
        input_path: &Path,
    ) -> Result<CompiledMapping, MappingError> {
        let mut problems = Vec::new();
        let mut used = BTreeSet::new();
        let columns = Columns::new(headers);

        let operation = operation_override
            .map(str::to_string)
            .or_else(|| spec.operation.clone())
            .unwrap_or_default();
        if operation.trim().is_empty() {
            problems.push(
                "no operation: add `operation: <your CRM operation>` to the mapping or pass \
                 --operation"
                    .into(),
            );
        }

        for name in spec.fields.keys() {
            if !API_FIELDS.iter().any(|(api, _)| api == name) {
                let known: Vec<&str> = API_FIELDS.iter().map(|(n, _)| *n).collect();
                problems.push(format!(
                    "fields.{name}: not a Cases Insert field; the fields are {} (custom fields \
                     go under `form:`)",
                    known.join(", ")
                ));
            }
        }

        let mut fields = Vec::new();
        for (api, api_required) in API_FIELDS {
            match spec.fields.get(api) {
                Some(field) => {
                    let context = format!("fields.{api}");
                    if let Some(compiled) = compile_field(
                        &field.0,
                        &context,
                        api,
                        api_required,
                        &columns,
                        &mut used,
                        &mut problems,
                    ) {
                        fields.push((api, compiled));
                    }
                }
                None if api_required => problems.push(format!(
                    "fields.{api}: missing; the API requires it (give a `column`, a `value` or a \
                     `template`)"
                )),
                None => {}
            }
        }

        let mut form = Vec::new();
        for (label, field) in &spec.form {
            let context = format!("form.{label}");
            if let Some(compiled) = compile_field(
                &field.0,
                &context,
                label,
                false,
                &columns,
                &mut used,
                &mut problems,
            ) {
                // Kept as its JSON text: the form object is written per row without a map.
                form.push((
                    serde_json::Value::from(label.as_str()).to_string(),
                    compiled,
                ));
            }
        }

        let contacts = compile_contacts(spec, &columns, &mut used, &mut problems);

        let key = match &spec.key {
            None => CompiledKey::PayloadHash,
            Some(KeySpec::Columns(names)) => {
                let mut resolved = Vec::new();
                for name in names {
                    match columns.resolve(name) {
                        Ok(index) => {
                            used.insert(index);
                            resolved.push((index, headers[index].clone()));
                        }
                        Err(e) => problems.push(format!("key: {e}")),
                    }
                }
                if resolved.is_empty() && problems.is_empty() {
                    problems.push("key: name at least one column".into());
                }
                CompiledKey::Columns(resolved)
            }
            Some(KeySpec::Template(template)) if template.trim() == "payload" => {
                CompiledKey::PayloadHash
            }
            Some(KeySpec::Template(template)) => {
                match parse_template(template, &columns, &mut used) {
                    Ok(parts) if !parts.iter().any(|p| matches!(p, Part::Column(_))) => {
                        problems.push(format!(
                            "key: {template:?} names no column in braces, so every row would \
                             get the same key; write key: [Ticket], key: \"{{Sistema}}-{{Ticket}}\" \
                             or key: payload"
                        ));
                        CompiledKey::PayloadHash
                    }
                    Ok(parts) => CompiledKey::Template(parts),
                    Err(e) => {
                        problems.push(format!("key: {e}"));
                        CompiledKey::PayloadHash
                    }
                }
            }
        };

        let lookup = match &spec.lookup {
            None => Vec::new(),
            Some(names) => {
                for (i, name) in names.iter().enumerate() {
                    let known = match name.strip_prefix("form.") {
                        Some(label) => spec.form.contains_key(label),
                        None => spec.fields.contains_key(name),
                    };
                    if !known {
                        let names: Vec<String> = spec
                            .fields
                            .keys()
                            .cloned()
                            .chain(spec.form.keys().map(|label| format!("form.{label}")))
                            .collect();
                        // A form label written without its `form.`, or a slip.
                        let near = if spec.form.contains_key(name.as_str()) {
                            Some(format!("form.{name}"))
                        } else {
                            super::fold::nearest(name, &names).map(|i| names[i].clone())
                        };
                        let hint = match near {
                            Some(near) => format!("; did you mean {near:?}?"),
                            None => " (name API fields as under `fields:`, custom ones as \
                                     form.<label>)"
                                .to_string(),
                        };
                        problems.push(format!(
                            "lookup: {name:?} is not a field of this mapping{hint}"
                        ));
                    } else if i == 0 && !crate::reconcile::SEARCHABLE.contains(&name.as_str()) {
                        problems.push(format!(
                            "lookup: the first field is the one the CRM is searched by, and it \
                             cannot search by {name:?}; start with one of {}",
                            crate::reconcile::SEARCHABLE.join(", ")
                        ));
                    }
                }
                if names.is_empty() {
                    problems.push("lookup: name at least one field, or leave it out".into());
                }
                names.clone()
            }
        };

        if !problems.is_empty() {
            return Err(MappingError::Compile {
                path: mapping_path.to_path_buf(),
                input: input_path.to_path_buf(),
                problems,
            });
        }

        let unused_columns = headers
            .iter()
            .enumerate()
            .filter(|(i, h)| {
                !used.contains(i) && !h.is_empty() && !crate::feedback::is_feedback_column(h)
            })
            .map(|(_, h)| h.clone())
            .collect();
        Ok(CompiledMapping {
            operation,
            fields,
            form,
            key,
            key_missing: spec.key.is_none(),
            key_definition: spec
                .key
                .clone()
                .unwrap_or_else(|| KeySpec::Template("payload".into())),
            on_duplicate_key: spec.on_duplicate_key,
            unused_columns,
            headers: headers.to_vec(),
            feedback_column: crate::feedback::row_column(headers),
            fingerprints: false,
            lookup,
            contacts,
        })
    }

    /// Whether the cases' contacts are looked up before any case is sent.
    pub fn checks_contacts(&self) -> bool {
        self.contacts.is_some()
    }

    /// Whether the contacts the CRM lacks are created first (`contacts.create`).
    pub fn creates_contacts(&self) -> bool {
        self.contacts.as_ref().is_some_and(|c| c.create.is_some())
    }

    /// The `key:` as written (`[Ticket]`, `{Sistema}-{Ticket}`, `payload`).
    pub fn key_definition(&self) -> &KeySpec {
        &self.key_definition
    }

    /// Whether the mapping has no `key:` at all (not even `key: payload`).
    pub fn key_missing(&self) -> bool {
        self.key_missing
    }

    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// The `_row` column of an errors file fed back, if this file is one.
    pub fn feedback_column(&self) -> Option<usize> {
        self.feedback_column
    }

    /// Whether some `date` step lists formats that the whole column should decide between
    /// (a first pass over the file is then worth its cost).
    pub fn wants_column_scan(&self) -> bool {
        self.all_fields().any(|f| {
            matches!(f.origin, Origin::Column(_)) && f.steps.iter().any(Step::decides_by_column)
        })
    }

    /// The first pass: feed every row, then `settle_dates`.
    pub fn observe(&self, row: &Row, evidence: &mut Vec<super::dates::DateEvidence>) {
        let mut slot = 0;
        for field in self.all_fields() {
            let Origin::Column(index) = field.origin else {
                continue;
            };
            let mut value = Cow::Borrowed(row.cells.get(index).unwrap_or_default());
            for step in &field.steps {
                if step.decides_by_column() {
                    if evidence.len() <= slot {
                        evidence.push(Default::default());
                    }
                    step.observe(&value, &mut evidence[slot]);
                    slot += 1;
                }
                match step.apply(value) {
                    Ok(next) => value = next,
                    Err(_) => break,
                }
            }
        }
    }

    /// Narrow each column-decided `date` step to the formats its column allows.
    pub fn settle_dates(&mut self, evidence: &[super::dates::DateEvidence]) -> Vec<String> {
        let mut notes = Vec::new();
        let mut slot = 0;
        let fields = self
            .fields
            .iter_mut()
            .map(|(_, f)| f)
            .chain(self.form.iter_mut().map(|(_, f)| f));
        for field in fields {
            if !matches!(field.origin, Origin::Column(_)) {
                continue;
            }
            for step in &mut field.steps {
                if step.decides_by_column() {
                    if let Some(seen) = evidence.get(slot) {
                        for dropped in step.settle(seen) {
                            notes.push(format!(
                                "column \"{}\": its values rule out the date format {dropped}",
                                field.label
                            ));
                        }
                    }
                    slot += 1;
                }
            }
        }
        notes
    }

    fn all_fields(&self) -> impl Iterator<Item = &CompiledField> {
        self.fields
            .iter()
            .map(|(_, f)| f)
            .chain(self.form.iter().map(|(_, f)| f))
    }
}

/// The `contacts:` section, `None` when it asks for nothing.
fn compile_contacts(
    spec: &MappingSpec,
    columns: &Columns,
    used: &mut BTreeSet<usize>,
    problems: &mut Vec<String>,
) -> Option<CompiledContacts> {
    let section = spec.contacts.as_ref()?;
    let Some(create) = &section.create else {
        return section.check.then_some(CompiledContacts { create: None });
    };
    let mut fields = Vec::new();
    for (name, field) in create {
        let context = format!("contacts.create.{name}");
        let Some(known) = CONTACT_FIELDS.into_iter().find(|f| f == name) else {
            problems.push(if name == "emailcontact" {
                format!(
                    "{context}: not needed: a contact's e-mail is always the case's `contact` \
                     value (fields.contact)"
                )
            } else {
                format!(
                    "{context}: not a contact field; the fields are {}",
                    CONTACT_FIELDS.join(", ")
                )
            });
            continue;
        };
        if let Some(compiled) =
            compile_field(&field.0, &context, known, false, columns, used, problems)
        {
            fields.push((known, compiled));
        }
    }
    Some(CompiledContacts {
        create: Some(fields),
    })
}

fn compile_field(
    spec: &FieldSpec,
    context: &str,
    name: &str,
    api_required: bool,
    columns: &Columns,
    used: &mut BTreeSet<usize>,
    problems: &mut Vec<String>,
) -> Option<CompiledField> {
    let sources = [
        spec.column.is_some(),
        spec.value.is_some(),
        spec.template.is_some(),
    ];
    let count = sources.iter().filter(|s| **s).count();
    if count != 1 {
        problems.push(format!(
            "{context}: give exactly one of `column`, `value` or `template` (found {count})"
        ));
        return None;
    }
    let (origin, label) = if let Some(column) = &spec.column {
        match columns.resolve(column) {
            Ok(index) => {
                used.insert(index);
                (Origin::Column(index), columns.headers[index].clone())
            }
            Err(e) => {
                problems.push(format!("{context}: {e}"));
                return None;
            }
        }
    } else if let Some(value) = &spec.value {
        (Origin::Constant(value.clone()), name.to_string())
    } else {
        let template = spec.template.as_deref().unwrap_or_default();
        match parse_template(template, columns, used) {
            Ok(parts) => (Origin::Template(parts), name.to_string()),
            Err(e) => {
                problems.push(format!("{context}: {e}"));
                return None;
            }
        }
    };
    let mut steps = Vec::new();
    for transform in &spec.transforms {
        match Step::compile(transform) {
            Ok(step) => steps.push(step),
            Err(e) => problems.push(format!("{context}: {e}")),
        }
    }
    let pattern = match &spec.pattern {
        Some(p) => match Regex::new(p) {
            Ok(re) => Some(re),
            Err(e) => {
                problems.push(format!("{context}: bad pattern {p:?}: {e}"));
                None
            }
        },
        None => None,
    };
    Some(CompiledField {
        label,
        origin,
        default: spec.default.clone(),
        steps,
        // The API refuses a case without its required fields: never let a mapping send one.
        required: api_required || spec.required.unwrap_or(false),
        email: spec.email,
        max_length: spec.max_length,
        one_of: spec.one_of.clone(),
        pattern,
        kind: spec.kind.clone().map(|k| {
            (
                k,
                spec.attributes
                    .iter()
                    .map(|(a, b)| (a.clone(), b.clone()))
                    .collect(),
            )
        }),
    })
}
