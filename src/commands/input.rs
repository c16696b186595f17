//! Shared by validate, preview and import: open the source, compile the mapping against
//! its header (settling its dates from the file), and the results and errors files. The
//! row check itself (a row through the mapping, then the duplicate-key policy) is
//! `mapping::check`; the source's threads run it (`Rows::map_parallel`).
//!
//! The input is opened once (`source::open`: its encoding, delimiter, header, a
//! workbook's archive checked); a pass that reads ahead before the real one (the date
//! scan here, an earlier key's check in `keys.rs`) reads its rows again with
//! `Source::reread`. The quota plan (`plan.rs`) still opens it by name: see there.

mod keys;

use std::path::Path;

use anyhow::Context;

use crate::cli::InputArgs;
use crate::mapping::{self, CompiledMapping};
use crate::source::{self, Encoding, Source, SourceOptions};

pub use crate::mapping::check::{Checked, CheckedRows, check};
pub use keys::{check_key_definition, no_key_message};

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
    let options = source_options(args)?;
    let (spec, mapping_text) = mapping::load(mapping_path)?;
    let source = source::open(&args.input, &options)?;
    let mut mapping =
        CompiledMapping::compile(&spec, &source.headers, operation, mapping_path, &args.input)?;
    let mut warnings = source.info.warnings.clone();
    if mapping.wants_column_scan() {
        // A date that could be day-first or month-first is settled by its whole column
        // (one 26/06 decides), so the rows are read once before the real pass.
        let mut evidence = Vec::new();
        for row in source.reread()?.flatten() {
            mapping.observe(&row, &mut evidence);
        }
        for note in mapping.settle_dates(&evidence) {
            tracing::info!("{note}");
            warnings.push(note);
        }
    }
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

impl Opened {
    /// `import` refuses a mapping without `key:`; the dry runs say so before anyone tries.
    pub fn warn_if_no_key(&mut self, mapping_path: &Path) {
        if self.mapping.key_missing() {
            let warning = format!(
                "import will refuse this mapping: {}",
                no_key_message(mapping_path, &self.source.headers)
            );
            tracing::warn!("{warning}");
            self.warnings.push(warning);
        }
    }
}

/// How to read the input, from the flags every reading command shares.
pub fn source_options(args: &InputArgs) -> anyhow::Result<SourceOptions> {
    let encoding = match &args.encoding {
        Some(label) => Some(Encoding::for_label(label).with_context(|| {
            format!(
                "--encoding {label:?} is not an encoding name; try utf-8, windows-1252, utf-16le"
            )
        })?),
        None => None,
    };
    Ok(SourceOptions {
        sheet: args.sheet.clone(),
        header_row: args.header_row,
        delimiter: args.delimiter,
        encoding,
        no_header: args.no_header,
        limits: source::Limits {
            cell_bytes: args.max_cell_bytes,
        },
    })
}

/// The results and errors files of a run, created before any work so a bad path fails
/// at once. Lines are buffered: call `flush` (import does before every wait).
pub fn reporter(
    input: &InputArgs,
    output: &crate::cli::OutputArgs,
    source: &Source,
) -> anyhow::Result<crate::report::Reporter> {
    let paths = crate::report::ReportPaths::resolve(
        &input.input,
        output.report.as_deref(),
        output.errors.as_deref(),
        output.force,
    )?;
    Ok(crate::report::Reporter::create(
        paths,
        &source.headers,
        errors_delimiter(source),
    )?)
}

/// The delimiter of the errors file: the source's, so it opens like the original.
pub fn errors_delimiter(source: &Source) -> u8 {
    source.info.delimiter.unwrap_or(b',')
}
