//! Shared by validate, preview and import: open the source, compile the mapping, and
//! turn each source row into either a payload ready to send or an invalid row.

use std::path::Path;

use anyhow::Context;

use crate::cli::InputArgs;
use crate::mapping::{self, CompiledMapping, DuplicateKeys, Payload, spec::DuplicatePolicy};
use crate::source::{self, Encoding, RowResult, Source, SourceOptions};

/// A source row after the mapping: ready to send, or invalid with every reason.
#[derive(Debug)]
pub enum Checked {
    Ready {
        row: u64,
        cells: Vec<String>,
        payload: Payload,
    },
    Invalid {
        row: u64,
        cells: Vec<String>,
        key: String,
        message: String,
    },
}

pub struct Opened {
    pub source: Source,
    pub mapping: CompiledMapping,
    pub mapping_text: String,
    pub warnings: Vec<String>,
}

pub fn open(
    args: &InputArgs,
    mapping_path: &Path,
    operation: Option<&str>,
) -> anyhow::Result<Opened> {
    let encoding = match &args.encoding {
        Some(label) => Some(Encoding::for_label(label).with_context(|| {
            format!(
                "--encoding {label:?} is not an encoding name; try utf-8, windows-1252, utf-16le"
            )
        })?),
        None => None,
    };
    let options = SourceOptions {
        sheet: args.sheet.clone(),
        header_row: args.header_row,
        delimiter: args.delimiter,
        encoding,
    };
    let (spec, mapping_text) = mapping::load(mapping_path)?;
    let source = source::open(&args.input, &options)?;
    let mapping =
        CompiledMapping::compile(&spec, &source.headers, operation, mapping_path, &args.input)?;
    let mut warnings = source.info.warnings.clone();
    if !mapping.unused_columns.is_empty() {
        let warning = format!(
            "columns not used by the mapping (renamed? add them to `form:` if they matter): {}",
            mapping.unused_columns.join(", ")
        );
        tracing::warn!("{warning}");
        warnings.push(warning);
    }
    Ok(Opened {
        source,
        mapping,
        mapping_text,
        warnings,
    })
}

/// Apply the mapping and the in-file duplicate check to one source row.
pub fn check(item: RowResult, mapping: &CompiledMapping, keys: &mut DuplicateKeys) -> Checked {
    let feedback = mapping.headers().iter().position(|h| h == "_row");
    let mut row = match item {
        Ok(row) => row,
        Err(e) => {
            return Checked::Invalid {
                row: original_row(feedback, &e.cells).unwrap_or(e.number),
                cells: e.cells,
                key: String::new(),
                message: e.message,
            };
        }
    };
    // An errors file fed back keeps reporting the rows of the original file.
    if let Some(original) = original_row(feedback, &row.cells) {
        row.number = original;
    }
    match mapping.apply(&row) {
        Ok(payload) => {
            if mapping.on_duplicate_key == DuplicatePolicy::Reject
                && let Some(first) = keys.first_row(&payload.key, row.number)
            {
                return Checked::Invalid {
                    row: row.number,
                    key: payload.key,
                    cells: row.cells,
                    message: format!(
                        "duplicate of row {first}: same key (set on_duplicate_key: send to send both)"
                    ),
                };
            }
            Checked::Ready {
                row: row.number,
                cells: row.cells,
                payload,
            }
        }
        Err(errors) => Checked::Invalid {
            row: row.number,
            key: mapping.key_hint(&row),
            message: mapping::describe(&errors),
            cells: row.cells,
        },
    }
}

/// How many data rows the input has (a second, quick pass), for the quota plan.
pub fn count_rows(args: &InputArgs, _input: &Path) -> anyhow::Result<u64> {
    let encoding = args.encoding.as_deref().and_then(Encoding::for_label);
    let options = SourceOptions {
        sheet: args.sheet.clone(),
        header_row: args.header_row,
        delimiter: args.delimiter,
        encoding,
    };
    Ok(source::open(&args.input, &options)?.rows.count() as u64)
}

fn original_row(column: Option<usize>, cells: &[String]) -> Option<u64> {
    cells.get(column?)?.trim().parse().ok()
}

/// The delimiter of the errors file: the source's, so it opens like the original.
pub fn errors_delimiter(source: &Source) -> u8 {
    source.info.delimiter.unwrap_or(b',')
}
