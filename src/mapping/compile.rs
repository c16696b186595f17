//! Compile a `MappingSpec` against the header row once; apply it to each row.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::Path;

use regex::Regex;

use super::fold::fold;
use super::keys::payload_hash;
use super::spec::{DuplicatePolicy, FieldSpec, KeySpec, MappingSpec};
use super::transform::{Step, clip, is_email, trimmed};
use super::{API_FIELDS, FieldError, MappingError, Payload};
use crate::source::Row;

/// Where a value comes from.
#[cfg(test)]
mod tests {
    #[test]
    fn json_strings_round_trip_through_serde_json() {
        for text in [
            "plain",
            "comillas \"dobles\" y \\ barra",
            "línea\nnueva\ttab\r",
            "\u{1}\u{1f}ñ—…",
            "",
            "ocho byt\"es y más, \\ luego\u{7f}\u{0}",
            "exactly8",
            "áéíóúñÁÉÍÓÚÑ¿¡ sin nada que escapar en bastantes bytes",
        ] {
            let mut out = String::new();
            super::json_string(text, &mut out);
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), text);
        }
    }
}

#[derive(Debug, Clone)]
enum Origin {
    Column(usize),
    Constant(String),
    Template(Vec<Part>),
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Column(usize),
}

#[derive(Debug, Clone)]
struct CompiledField {
    /// How messages name this value: the column, or the field for constants and templates.
    label: String,
    origin: Origin,
    default: Option<String>,
    steps: Vec<Step>,
    required: bool,
    email: bool,
    max_length: Option<usize>,
    one_of: Option<Vec<String>>,
    pattern: Option<Regex>,
    kind: Option<(String, Vec<(String, String)>)>,
}

#[derive(Debug, Clone)]
enum CompiledKey {
    PayloadHash,
    Columns(Vec<(usize, String)>),
    Template(Vec<Part>),
}

/// A mapping checked against one file's headers, ready to apply to every row.
#[derive(Debug, Clone)]
pub struct CompiledMapping {
    pub operation: String,
    fields: Vec<(&'static str, CompiledField)>,
    form: Vec<(String, CompiledField)>,
    key: CompiledKey,
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
            .filter(|(i, h)| !used.contains(i) && !h.is_empty() && !is_feedback_column(h))
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
            feedback_column: headers.iter().position(|h| h == "_row"),
        })
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
                Ok(payload)
            }
            _ => Err(errors),
        }
    }

    /// Whether some `date` step lists formats that the whole column should decide between
    /// (a first pass over the file is then worth its cost).
    pub fn wants_column_scan(&self) -> bool {
        self.all_fields().any(|f| {
            matches!(f.origin, Origin::Column(_)) && f.steps.iter().any(Step::decides_by_column)
        })
    }

    /// The first pass: feed every row, then `settle_dates`.
    pub fn observe(&self, row: &Row, evidence: &mut Vec<super::transform::DateEvidence>) {
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
    pub fn settle_dates(&mut self, evidence: &[super::transform::DateEvidence]) -> Vec<String> {
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

/// Columns the errors file adds; fed back with the same mapping they are ignored.
fn is_feedback_column(header: &str) -> bool {
    header == "_row" || header == "_error"
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

/// Bytes that need an escape in a JSON string: controls, `"` and `\`.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Where the first byte that needs an escape is: eight bytes at a time while none does
/// (most values have none), then byte by byte.
fn first_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Non-zero when some byte of `word` is below `n` (n ≤ 128) or equal to `byte`.
    let below = |word: u64, n: u64| word.wrapping_sub(ONES * n) & !word & HIGH;
    let equal = |word: u64, byte: u8| below(word ^ (ONES * u64::from(byte)), 1);
    let mut chunks = bytes.chunks_exact(8);
    let mut skipped = 0;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        if below(word, 0x20) | equal(word, b'"') | equal(word, b'\\') != 0 {
            break;
        }
        skipped += 8;
    }
    bytes[skipped..]
        .iter()
        .position(|b| NEEDS_ESCAPE[usize::from(*b)])
        .map(|i| i + skipped)
}

/// Append `text` as a JSON string literal (RFC 8259 escaping).
fn json_string(text: &str, out: &mut String) {
    out.reserve(text.len() + 2);
    out.push('"');
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(offset) = first_escape(&bytes[start..]) {
        let i = start + offset;
        out.push_str(&text[start..i]);
        match bytes[i] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            other => out.push_str(&format!("\\u{other:04x}")),
        }
        start = i + 1;
    }
    out.push_str(&text[start..]);
    out.push('"');
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

fn render(parts: &[Part], row: &Row) -> String {
    let mut out = String::new();
    for part in parts {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Column(index) => out.push_str(row.cells.get(*index).map_or("", |c| c.trim())),
        }
    }
    out
}

fn parse_template(
    template: &str,
    columns: &Columns,
    used: &mut BTreeSet<usize>,
) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut chars = template.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed {
                    return Err(format!(
                        "template {template:?}: `{{{name}` is not closed (write `{{{{` for a literal brace)"
                    ));
                }
                let index = columns
                    .resolve(&name)
                    .map_err(|e| format!("template {template:?}: {e}"))?;
                used.insert(index);
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                parts.push(Part::Column(index));
            }
            other => text.push(other),
        }
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

/// A column by its letter (`C`, `AB`) or 1-based number (`3`), for files without headers
/// (or a header that names no column).
fn by_position(name: &str, width: usize) -> Option<usize> {
    let name = name.trim();
    let index = if let Ok(number) = name.parse::<usize>() {
        number.checked_sub(1)?
    } else if !name.is_empty() && name.len() <= 3 && name.bytes().all(|b| b.is_ascii_uppercase()) {
        name.bytes()
            .fold(0usize, |acc, b| acc * 26 + usize::from(b - b'A') + 1)
            .checked_sub(1)?
    } else {
        return None;
    };
    (index < width).then_some(index)
}

/// Header lookup: exact, then forgiving case/accents/spaces when that is unambiguous.
struct Columns<'a> {
    headers: &'a [String],
    folded: Vec<String>,
}

impl<'a> Columns<'a> {
    /// A header the file repeats is a problem only for a mapping that names that column
    /// by it (`resolve` says so); a column the mapping leaves out, or names by letter, is
    /// unambiguous.
    fn new(headers: &'a [String]) -> Self {
        Columns {
            headers,
            folded: headers.iter().map(|h| fold(h)).collect(),
        }
    }

    fn resolve(&self, name: &str) -> Result<usize, String> {
        let exact: Vec<usize> = (0..self.headers.len())
            .filter(|&i| self.headers[i] == name)
            .collect();
        match exact.as_slice() {
            [one] => return Ok(*one),
            [first, second, ..] => {
                return Err(format!(
                    "the header {name:?} appears twice (columns {} and {}): rename one in the \
                     file so the mapping can tell them apart, or name the column by its letter",
                    crate::source::column_letter(*first),
                    crate::source::column_letter(*second)
                ));
            }
            [] => {}
        }
        let wanted = fold(name);
        let matches: Vec<usize> = (0..self.folded.len())
            .filter(|&i| self.folded[i] == wanted)
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] if by_position(name, self.headers.len()).is_some() => {
                by_position(name, self.headers.len()).ok_or_else(String::new)
            }
            [] => {
                let suggestion = self
                    .folded
                    .iter()
                    .enumerate()
                    .map(|(i, h)| (strsim::jaro_winkler(&wanted, h), i))
                    .filter(|(score, _)| *score > 0.75)
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, i)| format!("; did you mean {:?}?", self.headers[i]))
                    .unwrap_or_else(|| format!("; the columns are: {}", self.headers.join(", ")));
                Err(format!("no column {name:?} in the file{suggestion}"))
            }
            several => Err(format!(
                "{name:?} matches several columns ({}) once case and accents are ignored: \
                 write it exactly as in the file",
                several
                    .iter()
                    .map(|&i| format!("{:?}", self.headers[i]))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}
