//! A starter mapping (YAML text) from a file's headers and a sample of its columns, for
//! `init-mapping`. Common Spanish and English headers are matched to API fields;
//! everything else goes to `form`. What cannot be guessed is left out, so `validate` says
//! exactly what is left.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{fold, guess};

/// Folded header names that point at each API field, most specific first. The contact
/// and the key come from `mapping::guess`, which knows the longer headers real exports use.
const GUESSES: [(&str, &[&str]); 7] = [
    (
        "responsible",
        &[
            "responsable",
            "agente",
            "asesor",
            "asignado",
            "asignado a",
            "agent",
            "assignee",
            "responsible",
        ],
    ),
    ("owner", &["propietario", "owner", "creado por", "dueno"]),
    ("status", &["estado", "status", "estatus"]),
    ("priority", &["prioridad", "priority", "urgencia"]),
    (
        "case-type",
        &[
            "tipo",
            "tipo de caso",
            "tipo de solicitud",
            "categoria",
            "clase",
            "type",
            "case type",
            "category",
        ],
    ),
    (
        "description",
        &[
            "descripcion",
            "detalle",
            "description",
            "observaciones",
            "asunto",
            "subject",
        ],
    ),
    (
        "solution",
        &["solucion", "respuesta", "solution", "resolution"],
    ),
];

/// PQRS words and what the CRM calls them.
const CASE_TYPES: [(&str, &str); 8] = [
    ("peticion", "Request"),
    ("solicitud", "Request"),
    ("request", "Request"),
    ("queja", "Complaints"),
    ("complaint", "Complaints"),
    ("reclamo", "Claims"),
    ("claim", "Claims"),
    ("sugerencia", "Suggestions"),
];

/// The starter mapping for these headers and sampled column values.
pub fn starter(input: &str, headers: &[String], columns: &[Vec<String>]) -> String {
    let folded: Vec<String> = headers.iter().map(|h| fold(h)).collect();
    let mut used = BTreeSet::new();
    let mut fields: Vec<(&str, usize)> = Vec::new();
    let key = (0..headers.len()).find(|i| guess::is_ticket_number(&headers[*i]));
    used.extend(key);
    // The customer's e-mail column by its header, else the one column whose values are all
    // e-mail addresses (and that no other field claims).
    let contact = (0..headers.len())
        .filter(|i| !used.contains(i))
        .filter_map(|i| guess::contact_rank(&headers[i]).map(|rank| (rank, i)))
        // The best rank, and the leftmost of equals.
        .max_by_key(|(rank, i)| (*rank, std::cmp::Reverse(*i)))
        .map(|(_, i)| i);
    if let Some(i) = contact {
        used.insert(i);
        fields.push(("contact", i));
    }
    for (field, names) in GUESSES {
        let found = names
            .iter()
            .find_map(|name| (0..headers.len()).find(|i| !used.contains(i) && folded[*i] == *name));
        if let Some(i) = found {
            used.insert(i);
            fields.push((field, i));
        }
    }
    if contact.is_none()
        && let Some(i) = (0..headers.len()).find(|i| {
            !used.contains(i)
                && !guess::names_staff(&headers[*i])
                && matches!(kind_note(&columns[*i]), Some(Kind::Email))
        })
    {
        used.insert(i);
        fields.push(("contact", i));
    }

    let mut y = String::new();
    let _ = writeln!(
        y,
        "# Starter mapping for {input}, written by `wolkvox-import init-mapping`."
    );
    let _ = writeln!(
        y,
        "# Check every line, then run: wolkvox-import validate {input} --mapping <this file>"
    );
    let _ = writeln!(
        y,
        "# Keys and transforms: mappings/README.md. For completion and checks in editors,"
    );
    let _ = writeln!(
        y,
        "# add a first line: # yaml-language-server: $schema=<wolkvox-import>/mappings/schema.json"
    );
    let _ = writeln!(y);
    let _ = writeln!(y, "# TODO: your CRM operation (tenant), e.g. modulotest01.");
    let _ = writeln!(y, "operation: \"\"");
    let _ = writeln!(y);
    match key {
        Some(i) => {
            let _ = writeln!(
                y,
                "# What identifies a ticket across runs (the ledger skips keys created before)."
            );
            let _ = writeln!(y, "key: [{}]", quote(&headers[i]));
        }
        None => {
            let _ = writeln!(
                y,
                "# TODO key: no column looks like a ticket number, and `import` needs to know what"
            );
            let _ = writeln!(
                y,
                "# identifies a ticket across runs. Name the column(s): key: [Ticket], or as a last"
            );
            let _ = writeln!(
                y,
                "# resort key: payload (a hash of the whole row: any change to a row then creates"
            );
            let _ = writeln!(y, "# the ticket again).");
        }
    }
    let _ = writeln!(y);
    let _ = writeln!(y, "fields:");
    for (field, _) in crate::mapping::API_FIELDS.iter().map(|(f, r)| (*f, *r)) {
        match fields.iter().find(|(f, _)| *f == field) {
            Some((_, i)) => write_field(&mut y, field, &headers[*i], &columns[*i]),
            None if field == "solution" => {}
            None => {
                let _ = writeln!(
                    y,
                    "  # TODO {field}: no column looks like it; give `column: <name>` or `value: <constant>`."
                );
            }
        }
    }
    let rest: Vec<usize> = (0..headers.len())
        .filter(|i| !fields.iter().any(|(_, j)| j == i) && !headers[*i].is_empty())
        .filter(|i| !crate::feedback::is_feedback_column(&headers[*i]))
        .collect();
    if !rest.is_empty() {
        let _ = writeln!(y);
        let _ = writeln!(
            y,
            "# Custom fields of the CRM, by label: rename the labels to the CRM's."
        );
        let _ = writeln!(y, "form:");
        for i in rest {
            let note = kind_note(&columns[i]);
            let label = quote(&headers[i]);
            match note {
                Some(Kind::Date(format)) => {
                    let _ = writeln!(y, "  {label}:  # dates like {}", sample(&columns[i]));
                    let _ = writeln!(y, "    column: {label}");
                    let _ = writeln!(
                        y,
                        "    transforms: [{{ date: {{ from: [\"{format}\"], to: \"%Y-%m-%d\" }} }}]"
                    );
                }
                Some(Kind::AmbiguousDate) => {
                    let _ = writeln!(
                        y,
                        "  # TODO {label}: dates like {} could be day-first or month-first;",
                        sample(&columns[i])
                    );
                    let _ = writeln!(y, "  # add a date transform with the format the file uses.");
                    let _ = writeln!(y, "  {label}: {label}");
                }
                Some(Kind::Email) => {
                    let _ = writeln!(
                        y,
                        "  {label}: {{ column: {label}, email: true }}  # e-mail addresses"
                    );
                }
                Some(Kind::LeadingZeros) => {
                    let _ = writeln!(
                        y,
                        "  {label}: {label}  # text with leading zeros: kept as written"
                    );
                }
                None => {
                    let _ = writeln!(y, "  {label}: {label}");
                }
            }
        }
    }
    y
}

fn write_field(y: &mut String, field: &str, header: &str, values: &[String]) {
    let column = quote(header);
    match field {
        "case-type" => {
            let _ = writeln!(y, "  {field}:");
            let _ = writeln!(y, "    column: {column}");
            let _ = writeln!(y, "    transforms:");
            let _ = writeln!(y, "      - map:");
            let mut seen = BTreeSet::new();
            for value in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
                if !seen.insert(fold(value)) {
                    continue;
                }
                let guess = CASE_TYPES
                    .iter()
                    .find(|(word, _)| fold(value).starts_with(word))
                    .map(|(_, api)| *api);
                match guess {
                    Some(api) => {
                        let _ = writeln!(y, "          {}: {api}", quote(value));
                    }
                    None => {
                        let _ = writeln!(
                            y,
                            "          # TODO {}: Request, Complaints, Claims, Suggestions or a custom case type",
                            quote(value)
                        );
                    }
                }
                if seen.len() > 30 {
                    break;
                }
            }
        }
        "contact" => {
            let _ = writeln!(
                y,
                "  {field}: {{ column: {column}, transforms: [trim, lower], email: true }}"
            );
        }
        "status" => {
            let _ = writeln!(y, "  {field}: {{ column: {column}, default: Abierto }}");
        }
        _ => {
            let _ = writeln!(y, "  {field}: {column}");
        }
    }
}

enum Kind {
    Date(&'static str),
    AmbiguousDate,
    Email,
    LeadingZeros,
}

/// What a column's sampled values look like, for a comment (and a date transform).
fn kind_note(values: &[String]) -> Option<Kind> {
    let filled: Vec<&str> = values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .collect();
    if filled.is_empty() {
        return None;
    }
    if filled.iter().all(|v| crate::mapping::is_email(v)) {
        return Some(Kind::Email);
    }
    let slashed: Vec<(u32, u32)> = filled
        .iter()
        .filter_map(|v| {
            let mut parts = v.split(['/', '-']);
            let a = parts.next()?.parse().ok()?;
            let b = parts.next()?.parse().ok()?;
            let year = parts.next()?;
            (year.len() == 4 && parts.next().is_none()).then_some((a, b))
        })
        .collect();
    if slashed.len() == filled.len() {
        let separator = if filled[0].contains('/') { '/' } else { '-' };
        // One value with a first part over 12 settles day-first for the whole column.
        if slashed.iter().any(|(a, _)| *a > 12) {
            return Some(Kind::Date(if separator == '/' {
                "%d/%m/%Y"
            } else {
                "%d-%m-%Y"
            }));
        }
        if slashed.iter().any(|(_, b)| *b > 12) {
            return Some(Kind::Date(if separator == '/' {
                "%m/%d/%Y"
            } else {
                "%m-%d-%Y"
            }));
        }
        return Some(Kind::AmbiguousDate);
    }
    if filled.iter().any(|v| {
        v.starts_with('0') && v.len() > 1 && v.chars().all(|c| c.is_ascii_digit() || c == ' ')
    }) {
        return Some(Kind::LeadingZeros);
    }
    None
}

fn sample(values: &[String]) -> String {
    values
        .iter()
        .find(|v| !v.trim().is_empty())
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

/// A YAML scalar for a header or value: quoted when plain YAML would misread it.
fn quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || " _-.".contains(c))
        && !text.starts_with(['-', ' ', '.'])
        && !text.ends_with(' ')
        && !matches!(
            fold(text).as_str(),
            "yes" | "no" | "true" | "false" | "null" | "on" | "off" | "y" | "n"
        );
    if plain {
        text.to_string()
    } else {
        serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
    }
}
