//! The mapping stage: a YAML column map, compiled once against the header row, then
//! applied to each row to give a `Payload` (or every field error of that row at once).
//!
//! `validate`, `preview` and `import` all go through `CompiledMapping::apply`.

mod apply;
pub mod check;
mod columns;
mod compile;
mod dates;
pub mod delta;
mod fold;
pub mod guess;
mod json;
mod keys;
mod phone;
pub mod spec;
pub mod starter;
mod template;
mod transform;

use std::path::{Path, PathBuf};

pub use check::{Checked, CheckedRows};
pub use compile::CompiledMapping;
pub use fold::fold;
pub use keys::DuplicateKeys;
pub use spec::MappingSpec;
pub use transform::is_email;

/// The API fields of Cases Insert, in the order they are sent, and whether the API requires them.
pub const API_FIELDS: [(&str, bool); 8] = [
    ("case-type", true),
    ("responsible", true),
    ("owner", true),
    ("contact", true),
    ("description", true),
    ("status", true),
    ("priority", true),
    ("solution", false),
];

/// What one row becomes: the multipart fields of one Cases Insert request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// Identifies the ticket across runs (ledger key).
    pub key: String,
    /// The fields' values and then the `form` JSON, in one buffer (a row's payload is
    /// three allocations, not one per field).
    text: String,
    /// `operation` first, then the API fields that have a value: each name and where its
    /// value ends in `text`.
    fields: Vec<(&'static str, usize)>,
    /// Values sent with a doubt (a phone kept as typed): the row is valid, but a user
    /// should hear of them.
    warnings: Vec<FieldError>,
    /// The ledger's text of each field's fingerprint, when the mapping computes them
    /// (`delta`): text only, so a row waiting in the channels holds one string more.
    prints: Option<String>,
    /// With `contacts.create`: the fields its contact is created with if the CRM lacks it
    /// (`namecontact`, …; empty ones left out).
    contact_fields: Vec<(&'static str, String)>,
}

impl Payload {
    /// An empty payload to `push` fields into, then `finish` with the form.
    fn start() -> Payload {
        Payload {
            key: String::new(),
            text: String::with_capacity(1024),
            fields: Vec::with_capacity(API_FIELDS.len() + 1),
            warnings: Vec::new(),
            prints: None,
            contact_fields: Vec::new(),
        }
    }

    /// The case's `contact` (the contact's e-mail), trimmed; `None` when empty.
    pub fn contact(&self) -> Option<&str> {
        self.fields()
            .find(|(name, _)| *name == "contact")
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty())
    }

    /// The fields its contact is created with (`contacts.create`), besides the e-mail.
    pub fn contact_fields(&self) -> &[(&'static str, String)] {
        &self.contact_fields
    }

    /// What was sent with a doubt, one entry per value (empty for most rows).
    pub fn warnings(&self) -> &[FieldError] {
        &self.warnings
    }

    fn push(&mut self, name: &'static str, value: &str) {
        self.text.push_str(value);
        self.fields.push((name, self.text.len()));
    }

    fn form_start(&self) -> usize {
        self.fields.last().map_or(0, |(_, end)| *end)
    }

    /// The multipart fields other than `form`, in order.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        let mut start = 0;
        self.fields.iter().map(move |&(name, end)| {
            let value = self.text.get(start..end).unwrap_or_default();
            start = end;
            (name, value)
        })
    }

    /// The `form` part: a JSON object serialised to a string (`{}` if none).
    pub fn form(&self) -> &str {
        self.text.get(self.form_start()..).unwrap_or_default()
    }

    /// The payload as one JSON object, for `preview`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        for (name, value) in self.fields() {
            object.insert(name.to_string(), serde_json::Value::String(value.into()));
        }
        object.insert("form".into(), serde_json::Value::String(self.form().into()));
        object.insert("_key".into(), serde_json::Value::String(self.key.clone()));
        serde_json::Value::Object(object)
    }
}

/// One failed check of one value in a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The source column (or the API field when the value is not from one column).
    pub column: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "column \"{}\": {}", self.column, self.message)
    }
}

/// Joins a row's field errors into the one message the results file carries.
pub fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A mapping that cannot be used: nothing is read further, nothing is sent (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("cannot read the mapping {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the mapping {} is not valid: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{}: `{key}` is given twice: {}; keep one", path.display(), lines(*first, *second))]
    DuplicateKey {
        path: PathBuf,
        key: String,
        first: u64,
        second: u64,
    },
    #[error("the mapping {} does not fit {}:\n  - {}", path.display(), input.display(), problems.join("\n  - "))]
    Compile {
        path: PathBuf,
        input: PathBuf,
        problems: Vec<String>,
    },
}

/// Where a key given twice is: two lines, or one (`{default: a, default: b}`).
fn lines(first: u64, second: u64) -> String {
    if first == second {
        format!("both on line {first}")
    } else {
        format!("lines {first} and {second}")
    }
}

/// Read and parse a mapping file; YAML and schema errors name its line and column.
pub fn load(path: &Path) -> Result<(MappingSpec, String), MappingError> {
    let text = std::fs::read_to_string(path).map_err(|source| MappingError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let spec = parse(&text, path)?;
    Ok((spec, text))
}

/// Parse the text of the mapping file `path` (named in the errors), as `load` does after
/// reading it; public for fuzzing and tests.
pub fn parse(text: &str, path: &Path) -> Result<MappingSpec, MappingError> {
    // serde-saphyr's message already names the line and column and quotes the lines.
    serde_saphyr::from_str::<MappingSpec>(text).map_err(|e| {
        // Except for a key given twice: it shows only the second line, with advice about
        // its own options and `<input>` for the file. Ours names the file and both lines.
        if let serde_saphyr::Error::DuplicateMappingKey { key, location } = e.without_snippet()
            && let Some((key, first, second)) =
                first_duplicate_key(text, key.as_deref(), location.line())
        {
            return MappingError::DuplicateKey {
                path: path.to_path_buf(),
                key,
                first,
                second,
            };
        }
        if let Some(breach) = budget_breach(&e) {
            // Aliases that expand exponentially ("billion laughs"), or a file far larger
            // than any mapping: the YAML reader's budget stops it before memory runs out.
            return MappingError::Syntax {
                path: path.to_path_buf(),
                message: format!(
                    "it is far larger than any mapping once its YAML anchors and aliases \
                     are expanded ({breach:?}): a mapping needs a few hundred values; \
                     write them out instead of nesting aliases"
                ),
            };
        }
        // serde-saphyr calls the file `<input>`; ours has a name.
        let named = format!(" --> {}:", path.display());
        MappingError::Syntax {
            path: path.to_path_buf(),
            message: e
                .to_string()
                .trim_start_matches("error: ")
                .replace(" --> <input>:", &named),
        }
    })
}

/// The YAML reader's budget that `e` reports breached, through the errors that wrap it.
fn budget_breach(mut e: &serde_saphyr::Error) -> Option<&serde_saphyr::budget::BudgetBreach> {
    loop {
        match e {
            serde_saphyr::Error::Budget { breach, .. } => return Some(breach),
            serde_saphyr::Error::WithSnippet { error, .. }
            | serde_saphyr::Error::AliasError { error, .. } => e = error,
            _ => return None,
        }
    }
}

/// A key that one mapping of `text` gives twice, with the lines of both: the one the YAML
/// reader stopped at (`line`, `key`), found again by walking the document's events.
fn first_duplicate_key(text: &str, key: Option<&str>, line: u64) -> Option<(String, u64, u64)> {
    use serde_saphyr::granit_parser::{Event, Parser};
    /// An open collection: for a mapping, the keys seen (text → line) and whether the next
    /// node is a key.
    enum Open {
        Mapping {
            keys: std::collections::HashMap<String, u64>,
            at_key: bool,
        },
        Sequence,
    }
    // A node is over: in a mapping, a key is followed by its value and the value by a key.
    fn done(stack: &mut [Open]) {
        if let Some(Open::Mapping { at_key, .. }) = stack.last_mut() {
            *at_key = !*at_key;
        }
    }
    let mut stack: Vec<Open> = Vec::new();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.ok()?;
        let here = span.start.line() as u64;
        match event {
            Event::Scalar(value, ..) => {
                if let Some(Open::Mapping { keys, at_key: true }) = stack.last_mut()
                    && let Some(&first) = keys.get(value.as_ref())
                    && here == line
                    && key.is_none_or(|k| k == value)
                {
                    return Some((value.into_owned(), first, here));
                }
                if let Some(Open::Mapping { keys, at_key: true }) = stack.last_mut() {
                    keys.entry(value.into_owned()).or_insert(here);
                }
                done(&mut stack);
            }
            Event::Alias(_) => done(&mut stack),
            Event::MappingStart(..) => stack.push(Open::Mapping {
                keys: Default::default(),
                at_key: true,
            }),
            Event::SequenceStart(..) => stack.push(Open::Sequence),
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                done(&mut stack);
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod load_tests {
    fn load(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tickets.yaml");
        std::fs::write(&path, text).unwrap();
        let error = super::load(&path).unwrap_err().to_string();
        error.replace(&format!("{}", dir.path().display()), "<dir>")
    }

    #[test]
    fn a_key_given_twice_names_the_file_and_both_lines() {
        let text = "operation: op\nfields:\n  priority: Prioridad\n  status: Estado\n  \
                    priority: Urgencia\n";
        assert_eq!(
            load(text),
            "<dir>/tickets.yaml: `priority` is given twice: lines 3 and 5; keep one"
        );
    }

    #[test]
    fn the_same_key_in_two_mappings_is_no_duplicate_but_a_second_one_is() {
        let text = "operation: op\n\
                    fields:\n  \
                      status: { column: Estado, default: Abierto }\n  \
                      priority: { column: Prioridad, default: Media, default: Alta }\n";
        assert_eq!(
            load(text),
            "<dir>/tickets.yaml: `default` is given twice: both on line 4; keep one"
        );
        let top = "operation: op\nfields: {}\noperation: other\n";
        assert_eq!(
            load(top),
            "<dir>/tickets.yaml: `operation` is given twice: lines 1 and 3; keep one"
        );
    }
}

#[cfg(test)]
mod schema_tests {
    /// `mappings/schema.json` is what editors check mappings against: it must match the
    /// types. Regenerate with `WOLKVOX_WRITE_SCHEMA=1 cargo test schema`.
    #[test]
    fn the_shipped_schema_matches_the_mapping_types() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/schema.json");
        let generated = super::spec::json_schema();
        if std::env::var_os("WOLKVOX_WRITE_SCHEMA").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let shipped = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            shipped, generated,
            "run WOLKVOX_WRITE_SCHEMA=1 cargo test schema"
        );
    }
}
