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

/// Rows per batch between the pipeline's threads: large enough that the channels cost
/// nothing per row, small enough that memory stays flat.
const BATCH: usize = 256;

/// Checked rows arriving in file order from two threads: one parses the file, the
/// other applies the mapping. Bounded channels keep memory flat whatever the file size.
pub struct CheckedRows {
    rx: tokio::sync::mpsc::Receiver<Vec<Checked>>,
    buffer: std::collections::VecDeque<Checked>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CheckedRows {
    pub fn spawn(
        rows: Box<dyn Iterator<Item = RowResult> + Send>,
        mapping: CompiledMapping,
    ) -> CheckedRows {
        let (raw_tx, raw_rx) = std::sync::mpsc::sync_channel::<Vec<RowResult>>(4);
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Checked>>(4);
        let parse = std::thread::spawn(move || {
            let mut batch = Vec::with_capacity(BATCH);
            for row in rows {
                batch.push(row);
                if batch.len() == BATCH
                    && raw_tx
                        .send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                        .is_err()
                {
                    return;
                }
            }
            if !batch.is_empty() {
                let _ = raw_tx.send(batch);
            }
        });
        let check_rows = std::thread::spawn(move || {
            let mut keys = DuplicateKeys::default();
            for batch in raw_rx {
                let checked: Vec<Checked> = batch
                    .into_iter()
                    .map(|r| check(r, &mapping, &mut keys))
                    .collect();
                if tx.blocking_send(checked).is_err() {
                    return;
                }
            }
        });
        CheckedRows {
            rx,
            buffer: std::collections::VecDeque::new(),
            threads: vec![parse, check_rows],
        }
    }

    /// The next row, from async code (cancel-safe: nothing is awaited after a receive).
    pub async fn next(&mut self) -> Option<Checked> {
        if self.buffer.is_empty() {
            self.buffer.extend(self.rx.recv().await?);
        }
        self.buffer.pop_front()
    }

    /// The next row, from a plain thread.
    pub fn next_blocking(&mut self) -> Option<Checked> {
        if self.buffer.is_empty() {
            self.buffer.extend(self.rx.blocking_recv()?);
        }
        self.buffer.pop_front()
    }

    /// Wait for the threads; a panic in them is a bug worth reporting.
    pub fn join(mut self) -> anyhow::Result<()> {
        self.rx.close();
        for thread in self.threads {
            if thread.join().is_err() {
                anyhow::bail!(
                    "a reader thread panicked; the results file lists the rows read so far"
                );
            }
        }
        Ok(())
    }
}

/// The delimiter of the errors file: the source's, so it opens like the original.
pub fn errors_delimiter(source: &Source) -> u8 {
    source.info.delimiter.unwrap_or(b',')
}
