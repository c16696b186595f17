//! Templates (`"{Sistema}-{Ticket}"`): parsed once against the header row, rendered per row.

use std::collections::BTreeSet;

use super::columns::Columns;
use crate::source::Row;

/// A piece of a template: literal text, or a column's trimmed value.
#[derive(Debug, Clone)]
pub(super) enum Part {
    Text(String),
    Column(usize),
}

pub(super) fn render(parts: &[Part], row: &Row) -> String {
    let mut out = String::new();
    for part in parts {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Column(index) => out.push_str(row.cells.get(*index).map_or("", |c| c.trim())),
        }
    }
    out
}

pub(super) fn parse_template(
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
