//! Shared by validate, preview and import: open the source, compile the mapping, and
//! turn each source row into either a payload ready to send or an invalid row.

use std::path::Path;

use anyhow::Context;

use crate::cli::InputArgs;
use crate::mapping::{self, CompiledMapping, DuplicateKeys, Payload, spec::DuplicatePolicy};
use crate::source::{
    self, Cells, Chunk, Chunks, Encoding, OpenTail, Reassembler, RowError, RowResult, Rows, Source,
    SourceOptions, read_error,
};

/// A source row after the mapping: ready to send, or invalid with every reason.
#[derive(Debug)]
pub enum Checked {
    Ready {
        row: u64,
        cells: Cells,
        payload: Payload,
    },
    Invalid {
        row: u64,
        cells: Cells,
        key: String,
        message: String,
        /// The bad cells one by one, when the mapping found them (`message` joins them);
        /// empty when the row itself is the problem (unreadable, a duplicate).
        errors: Vec<mapping::FieldError>,
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
    let options = source_options(args)?;
    let (spec, mapping_text) = mapping::load(mapping_path)?;
    let source = source::open(&args.input, &options)?;
    let mut mapping =
        CompiledMapping::compile(&spec, &source.headers, operation, mapping_path, &args.input)?;
    let mut warnings = source.info.warnings.clone();
    if mapping.wants_column_scan() {
        // A date that could be day-first or month-first is settled by its whole column
        // (one 26/06 decides), so the file is read once before the real pass.
        let mut evidence = Vec::new();
        for row in source::open(&args.input, &options)?.rows.flatten() {
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

/// Why a mapping without `key:` is refused, and what to write instead.
pub fn no_key_message(mapping: &Path, headers: &[String]) -> String {
    let candidates = crate::mapping::guess::ticket_number_columns(headers);
    let suggestion = match candidates.as_slice() {
        [] => format!(
            "add `key: [<the column with the ticket number>]` (no header looks like one; the \
             columns are: {})",
            headers.join(", ")
        ),
        [one] => format!("add `key: [{one}]` (it looks like the ticket number)"),
        many => format!(
            "add `key: [<one of them>]`; these columns look like ticket numbers: {}",
            many.join(", ")
        ),
    };
    format!(
        "the mapping {} has no `key:`, so a ticket could not be recognised on a later run, \
         and any change to a row would create it again: {suggestion}. As a last resort, \
         `key: payload` keys each row by its whole content. Nothing was sent.",
        mapping.display()
    )
}

/// A mapping whose `key:` differs from every one the ledger's tickets were created under
/// is either another export (its own tickets, its own key) or the same tickets under a new
/// key, which would create every one of them again. Tell them apart by the file itself:
/// if an earlier key, applied to this file's rows, finds a ticket the ledger created, the
/// key changed, and the run is refused before anything is sent.
pub fn check_key_definition(
    input: &crate::cli::InputArgs,
    mapping_path: &Path,
    opened: &Opened,
    ledger: &crate::ledger::Ledger,
    warnings: &mut Vec<String>,
) -> anyhow::Result<()> {
    use crate::mapping::spec::KeySpec;
    let current = opened.mapping.key_definition();
    let current_text = serde_json::to_string(current)?;
    let known = ledger.key_definitions()?;
    if known.contains(&current_text) {
        return Ok(());
    }
    if !ledger.has_no_cases()? {
        let (spec, _) = mapping::load(mapping_path)?;
        let options = source_options(input)?;
        for old in known
            .iter()
            .filter_map(|k| serde_json::from_str::<KeySpec>(k).ok())
        {
            let mut old_spec = spec.clone();
            old_spec.key = Some(old.clone());
            let source = source::open(&input.input, &options)?;
            // The old key's columns are not in this file: another export, not this one.
            let Ok(old_mapping) = CompiledMapping::compile(
                &old_spec,
                &source.headers,
                Some(&opened.mapping.operation),
                mapping_path,
                &input.input,
            ) else {
                continue;
            };
            for row in source.rows.flatten() {
                let key = old_mapping
                    .apply(&row)
                    .map(|p| p.key)
                    .unwrap_or_else(|_| old_mapping.key_hint(&row));
                if key.is_empty() {
                    continue;
                }
                if let Some(crate::ledger::Prior::Created { run, .. }) = ledger.prior(&key)? {
                    anyhow::bail!(
                        "the mapping's key changed from `key: {old}` to `key: {current}`, and \
                         under the old key row {} is {key:?}, which run {run} created: under the \
                         new key every such ticket would be created again in the CRM. Put `key: \
                         {old}` back in {} (rows a key cannot tell apart can be fixed in the file \
                         instead). Nothing was sent.",
                        row.number,
                        mapping_path.display()
                    );
                }
            }
        }
        if let Some(last) = known
            .last()
            .and_then(|k| serde_json::from_str::<KeySpec>(k).ok())
        {
            let note = format!(
                "a new key for this CRM target: `key: {current}` (earlier runs used `key: \
                 {last}`, and none of this file's rows is a ticket they created under it)"
            );
            tracing::info!("{note}");
            warnings.push(note);
        }
    }
    ledger.add_key_definition(&current_text)?;
    Ok(())
}

/// Apply the mapping and the in-file duplicate check to one source row.
pub fn check(item: RowResult, mapping: &CompiledMapping, keys: &mut DuplicateKeys) -> Checked {
    dedupe(map_row(item, mapping), mapping.on_duplicate_key, keys)
}

/// The mapping alone: safe to run for many rows at once, on several threads.
fn map_row(item: RowResult, mapping: &CompiledMapping) -> Checked {
    let feedback = mapping.feedback_column();
    let mut row = match item {
        Ok(row) => row,
        Err(e) => {
            return Checked::Invalid {
                row: original_row(feedback, &e.cells).unwrap_or(e.number),
                cells: e.cells,
                key: String::new(),
                message: e.message,
                errors: Vec::new(),
            };
        }
    };
    // An errors file fed back keeps reporting the rows of the original file.
    if let Some(original) = original_row(feedback, &row.cells) {
        row.number = original;
    }
    match mapping.apply(&row) {
        Ok(payload) => Checked::Ready {
            row: row.number,
            cells: row.cells,
            payload,
        },
        Err(errors) => Checked::Invalid {
            row: row.number,
            key: mapping.key_hint(&row),
            message: mapping::describe(&errors),
            cells: row.cells,
            errors,
        },
    }
}

/// The in-file duplicate check: needs the rows in file order.
fn dedupe(checked: Checked, policy: DuplicatePolicy, keys: &mut DuplicateKeys) -> Checked {
    match checked {
        Checked::Ready {
            row,
            cells,
            payload,
        } if policy == DuplicatePolicy::Reject => match keys.first_row(&payload.key, row) {
            Some(first) => Checked::Invalid {
                row,
                key: payload.key,
                cells,
                message: format!(
                    "duplicate of row {first}: same key; if they are different tickets, give \
                     this one its own number in the file (before a first import you may instead \
                     add a column to `key:` that tells them apart)"
                ),
                errors: Vec::new(),
            },
            None => Checked::Ready {
                row,
                cells,
                payload,
            },
        },
        other => other,
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

/// What a run would do with the input's rows, for the quota plan (a second pass, before
/// any call is made).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowPlan {
    /// Data rows in the file.
    pub rows: u64,
    /// Rows that would be sent: valid, and neither created nor left uncertain by an
    /// earlier run (uncertain ones count with --resend-uncertain), at most --limit.
    pub to_send: u64,
    pub invalid: u64,
    /// Rows an earlier run created (skipped) or left uncertain (not resent).
    pub done_before: u64,
}

pub fn plan_rows(
    args: &InputArgs,
    mapping: &CompiledMapping,
    ledger: &crate::ledger::Ledger,
    resend_uncertain: bool,
    limit: Option<u64>,
) -> anyhow::Result<RowPlan> {
    use crate::ledger::Prior;
    let mut plan = RowPlan::default();
    let mut keys = DuplicateKeys::default();
    for item in source::open(&args.input, &source_options(args)?)?.rows {
        plan.rows += 1;
        match check(item, mapping, &mut keys) {
            Checked::Invalid { .. } => plan.invalid += 1,
            Checked::Ready { payload, .. } => match ledger.prior(&payload.key)? {
                Some(Prior::Created { .. }) => plan.done_before += 1,
                Some(Prior::InDoubt { .. }) if !resend_uncertain => plan.done_before += 1,
                _ => plan.to_send += 1,
            },
        }
    }
    if let Some(limit) = limit {
        plan.to_send = plan.to_send.min(limit);
    }
    Ok(plan)
}

fn original_row(column: Option<usize>, cells: &Cells) -> Option<u64> {
    cells.get(column?)?.trim().parse().ok()
}

/// Rows per batch between the pipeline's threads, for sources read row by row (CSV
/// goes in chunks of whole lines): large enough that the channels cost nothing per row,
/// small enough that memory stays flat.
const BATCH: usize = 256;

/// Work for the mapping threads.
enum Work {
    /// Rows read one by one (workbooks).
    Rows(Vec<RowResult>),
    /// Whole lines of a CSV file, parsed by the mapping thread itself.
    Chunk(Chunk),
    /// The input cannot be read on: this row says why.
    Stop(RowError),
}

/// A mapping thread's answer for one piece of work.
struct Done {
    checked: Vec<Checked>,
    /// For a chunk: the chunk and where its parse ended, for the `Reassembler`.
    chunk: Option<(Chunk, Option<OpenTail>)>,
    /// The input stopped here: what an earlier chunk left open ends as it is.
    stops: bool,
}

/// Checked rows arriving in file order from a pipeline of threads: one reads the file
/// (a CSV file in chunks of whole lines, a workbook row by row), two parse the chunks
/// and apply the mapping, and the receiving side puts the work back in order and checks
/// duplicate keys. Bounded channels keep memory flat whatever the file size.
pub struct CheckedRows {
    rx: tokio::sync::mpsc::Receiver<(u64, Done)>,
    /// Work that arrived before its turn.
    early: std::collections::BTreeMap<u64, Done>,
    next_batch: u64,
    /// The batch being handed out, row by row.
    current: std::vec::IntoIter<Checked>,
    keys: DuplicateKeys,
    policy: DuplicatePolicy,
    mapping: std::sync::Arc<CompiledMapping>,
    /// CSV: puts chunk parses back together (a chunk cut inside a record).
    reassembler: Option<Reassembler>,
    /// CSV: the file's size, until the first chunk tells how many rows to expect.
    file_size: Option<u64>,
    /// Rows with a value kept as typed (a phone that is none): the first few are
    /// logged, then only counted, so a file full of them does not flood the log.
    warned_rows: u64,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// How many rows with warnings are logged one by one before they are only counted.
const LOGGED_WARNINGS: u64 = 5;

const MAP_WORKERS: usize = 2;

impl CheckedRows {
    pub fn spawn(rows: Rows, mapping: CompiledMapping) -> std::io::Result<CheckedRows> {
        let (work_tx, work_rx) = std::sync::mpsc::sync_channel::<(u64, Work)>(4);
        let work_rx = std::sync::Arc::new(std::sync::Mutex::new(work_rx));
        let (tx, rx) = tokio::sync::mpsc::channel::<(u64, Done)>(4);
        let policy = mapping.on_duplicate_key;
        let (reader, shape, file_size) = match rows.into_chunks() {
            Ok((first, chunks)) => {
                let (shape, size) = (chunks.shape, chunks.size);
                let reader = spawn_named("read", move || read_chunks(first, chunks, &work_tx))?;
                (reader, Some(shape), Some(size))
            }
            Err(rows) => (
                spawn_named("read", move || read_rows(rows, &work_tx))?,
                None,
                None,
            ),
        };
        let mut threads = vec![reader];
        let mapping = std::sync::Arc::new(mapping);
        for _ in 0..MAP_WORKERS {
            let (work_rx, tx, mapping) = (work_rx.clone(), tx.clone(), mapping.clone());
            threads.push(spawn_named("map", move || {
                loop {
                    let next = match work_rx.lock() {
                        Ok(receiver) => receiver.recv(),
                        Err(_) => return,
                    };
                    let Ok((number, work)) = next else {
                        return;
                    };
                    let done = match work {
                        Work::Rows(batch) => Done {
                            checked: batch.into_iter().map(|r| map_row(r, &mapping)).collect(),
                            chunk: None,
                            stops: false,
                        },
                        Work::Chunk(chunk) => {
                            let parsed = chunk.parse();
                            Done {
                                checked: parsed
                                    .rows
                                    .into_iter()
                                    .map(|r| map_row(r, &mapping))
                                    .collect(),
                                chunk: Some((chunk, parsed.open)),
                                stops: false,
                            }
                        }
                        Work::Stop(error) => Done {
                            checked: vec![map_row(Err(error), &mapping)],
                            chunk: None,
                            stops: true,
                        },
                    };
                    if tx.blocking_send((number, done)).is_err() {
                        return;
                    }
                }
            })?);
        }
        Ok(CheckedRows {
            rx,
            early: std::collections::BTreeMap::new(),
            next_batch: 0,
            current: Vec::new().into_iter(),
            keys: DuplicateKeys::default(),
            policy,
            mapping,
            reassembler: shape.map(Reassembler::new),
            file_size,
            warned_rows: 0,
            threads,
        })
    }

    /// The next row of the batch in hand, or of the next batch in file order if it has
    /// arrived; `None` if it has not.
    fn take_in_order(&mut self) -> Option<Checked> {
        loop {
            if let Some(checked) = self.current.next() {
                let checked = dedupe(checked, self.policy, &mut self.keys);
                self.log_warnings(&checked);
                return Some(checked);
            }
            let done = self.early.remove(&self.next_batch)?;
            self.next_batch += 1;
            self.current = self.settle(done).into_iter();
        }
    }

    /// The rows of one piece of work, once the chunk before it is known to have ended
    /// between records (or it is parsed again here, with what that chunk left open).
    fn settle(&mut self, done: Done) -> Vec<Checked> {
        let Some(reassembler) = self.reassembler.as_mut() else {
            return done.checked;
        };
        let mapping = &self.mapping;
        let map_all = |rows: Vec<RowResult>| -> Vec<Checked> {
            rows.into_iter().map(|r| map_row(r, mapping)).collect()
        };
        if done.stops {
            let mut checked = map_all(reassembler.finish());
            checked.extend(done.checked);
            return checked;
        }
        if let (Some(size), Some((chunk, _))) = (self.file_size.take(), &done.chunk)
            && !chunk.bytes.is_empty()
        {
            // The first chunk's rows per byte foresee the file's: the duplicate-key table
            // is sized once instead of growing.
            let expected = size as f64 / chunk.bytes.len() as f64 * done.checked.len() as f64;
            self.keys.expect(expected.min(1e8) as usize);
        }
        match done.chunk {
            Some((chunk, open)) => match reassembler.settle(&chunk, open) {
                Some(rows) => map_all(rows),
                None => done.checked,
            },
            None => done.checked,
        }
    }

    /// The next row, from async code (cancel-safe: nothing is awaited after a receive).
    pub async fn next(&mut self) -> Option<Checked> {
        loop {
            if let Some(checked) = self.take_in_order() {
                return Some(checked);
            }
            let (number, batch) = self.rx.recv().await?;
            self.early.insert(number, batch);
        }
    }

    /// The next row if one is ready now, without waiting: `Pending` if none has arrived.
    pub fn try_next(&mut self) -> std::task::Poll<Option<Checked>> {
        loop {
            if let Some(checked) = self.take_in_order() {
                return std::task::Poll::Ready(Some(checked));
            }
            match self.rx.try_recv() {
                Ok((number, batch)) => {
                    self.early.insert(number, batch);
                }
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                    return std::task::Poll::Pending;
                }
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                    return std::task::Poll::Ready(None);
                }
            }
        }
    }

    /// The next row, from a plain thread.
    pub fn next_blocking(&mut self) -> Option<Checked> {
        loop {
            if let Some(checked) = self.take_in_order() {
                return Some(checked);
            }
            let (number, batch) = self.rx.blocking_recv()?;
            self.early.insert(number, batch);
        }
    }

    fn log_warnings(&mut self, checked: &Checked) {
        let Checked::Ready { row, payload, .. } = checked else {
            return;
        };
        if payload.warnings().is_empty() {
            return;
        }
        self.warned_rows += 1;
        if self.warned_rows <= LOGGED_WARNINGS {
            tracing::warn!("row {row}: {}", mapping::describe(payload.warnings()));
        }
    }

    /// Wait for the threads; a panic in them is a bug worth reporting.
    pub fn join(mut self) -> anyhow::Result<()> {
        if self.warned_rows > LOGGED_WARNINGS {
            tracing::warn!(
                "{} rows in all have a value kept as typed (the results file lists each one, \
                 in its message column)",
                self.warned_rows
            );
        }
        self.rx.close();
        while self.rx.try_recv().is_ok() {}
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

/// The reading thread of a CSV file: chunks of whole lines, in order.
fn read_chunks(
    first: Option<RowResult>,
    mut chunks: Chunks,
    work: &std::sync::mpsc::SyncSender<(u64, Work)>,
) {
    let mut number = 0u64;
    if let Some(first) = first {
        if work.send((number, Work::Rows(vec![first]))).is_err() {
            return;
        }
        number += 1;
    }
    while let Some(next) = chunks.next_chunk() {
        let item = match next {
            Ok(chunk) => Work::Chunk(chunk),
            Err((error, line)) => Work::Stop(read_error(&error, line)),
        };
        if work.send((number, item)).is_err() {
            return;
        }
        number += 1;
    }
}

/// The reading thread of a source read row by row: batches of rows, in order.
fn read_rows(rows: Rows, work: &std::sync::mpsc::SyncSender<(u64, Work)>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut number = 0u64;
    for row in rows {
        batch.push(row);
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if work.send((number, Work::Rows(full))).is_err() {
                return;
            }
            number += 1;
        }
    }
    if !batch.is_empty() {
        let _ = work.send((number, Work::Rows(batch)));
    }
}

fn spawn_named(
    name: &str,
    work: impl FnOnce() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name(name.into()).spawn(work)
}

/// The delimiter of the errors file: the source's, so it opens like the original.
pub fn errors_delimiter(source: &Source) -> u8 {
    source.info.delimiter.unwrap_or(b',')
}
