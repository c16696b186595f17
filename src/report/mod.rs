//! The report stage: results file (every row), errors file (rows to fix, original
//! columns kept), summaries for people and machines, and progress on stderr.
//!
//! Files are created before any work (a bad path fails at once) and each line is
//! flushed as its outcome arrives, so a killed run leaves a truthful partial file.

pub mod metrics;
mod progress;
mod summary;
pub mod workbook;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

pub use crate::outcome::TokenUse;
pub use progress::Progress;
pub use summary::{
    JsonLine, JsonNothingDone, JsonSummary, JsonToken, LedgerNote, Reconciled, Summary, TokenState,
    json_schema, print_human, print_json,
};

use crate::feedback;
use crate::outcome::{Outcome, Tally};
use crate::source::Cells;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{} already exists: pass --force to overwrite it, or choose another path", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// How the run talks to people.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ui {
    /// `-q`: no progress, no summary table.
    pub quiet: bool,
    /// `--log-format json`: stderr carries only JSON lines, the summary included.
    pub json_logs: bool,
}

/// The end of a run: the workbook if asked, the `--json` object on stdout, and the
/// summary on stderr (a table, or one JSON log line under `--log-format json`).
pub fn finish(summary: &Summary<'_>, json_stdout: bool, ui: Ui) -> Result<(), ReportError> {
    if let Some(workbook) = &summary.paths.workbook {
        workbook::write(workbook, &summary.paths.results, &summary.pairs())?;
    }
    let stdio = |source| ReportError::Io {
        path: PathBuf::from("<stdout/stderr>"),
        source,
    };
    if json_stdout {
        print_json(summary, &mut std::io::stdout().lock()).map_err(stdio)?;
    }
    if ui.json_logs {
        if tracing::enabled!(tracing::Level::INFO) {
            summary_log_line(summary, &mut std::io::stderr().lock()).map_err(stdio)?;
        }
    } else if !ui.quiet {
        print_human(summary, &mut std::io::stderr().lock()).map_err(stdio)?;
    }
    Ok(())
}

/// The summary as a log line of `--log-format json`, its figures an object a log
/// pipeline can query (`fields.summary.created`), not a string of JSON. tracing's JSON
/// lines carry only flat values, so this one line is written here, in their shape:
/// `{"timestamp", "level", "fields": {"message", "summary": {…}}}`.
fn summary_log_line(summary: &Summary<'_>, out: &mut impl Write) -> std::io::Result<()> {
    let line = SummaryLogLine {
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        level: "INFO",
        fields: SummaryLogFields {
            message: "Run finished.",
            summary: summary.to_json(),
        },
    };
    writeln!(out, "{}", serde_json::to_string(&line)?)
}

#[derive(serde::Serialize)]
struct SummaryLogLine {
    timestamp: String,
    level: &'static str,
    fields: SummaryLogFields,
}

#[derive(serde::Serialize)]
struct SummaryLogFields {
    message: &'static str,
    summary: JsonSummary,
}

/// Where the files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPaths {
    pub results: PathBuf,
    pub errors: PathBuf,
    /// `--report X.xlsx`: a workbook built from the results at the end of the run.
    pub workbook: Option<PathBuf>,
}

impl ReportPaths {
    /// Explicit paths win; else `<input stem>.results.csv` and `.errors.csv` beside the
    /// input, with a timestamp added rather than overwriting an earlier run's files.
    pub fn resolve(
        input: &Path,
        results: Option<&Path>,
        errors: Option<&Path>,
        force: bool,
    ) -> Result<ReportPaths, ReportError> {
        let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S").to_string();
        // An .xlsx report is a workbook made at the end; the CSV beside the input stays the
        // record that is written as the run goes. Tonight's run with last night's
        // `--report x.xlsx` writes x.<time>.xlsx, as the default CSV names do. (Not claimed
        // by creating it: an empty file left by a run that fails is no workbook.)
        let (results, workbook) = match results {
            Some(path)
                if path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("xlsx")) =>
            {
                let workbook = if path.exists() && !force {
                    let stem = path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "results".into());
                    let ext = path
                        .extension()
                        .map(|e| e.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "xlsx".into());
                    let named =
                        |suffix: &str| path.with_file_name(format!("{stem}.{suffix}.{ext}"));
                    std::iter::once(named(&stamp))
                        .chain((2..1000).map(|n| named(&format!("{stamp}-{n}"))))
                        .find(|candidate| !candidate.exists())
                        .ok_or_else(|| ReportError::Exists(named(&stamp)))?
                } else {
                    path.to_path_buf()
                };
                (None, Some(workbook))
            }
            other => (other, None),
        };
        let pick = |explicit: Option<&Path>, kind: &str| -> Result<PathBuf, ReportError> {
            if let Some(path) = explicit {
                if path.exists() && !force {
                    return Err(ReportError::Exists(path.to_path_buf()));
                }
                return Ok(path.to_path_buf());
            }
            let plain = beside(input, &format!("{kind}.csv"));
            if force {
                return Ok(plain);
            }
            // Each name is claimed by creating it: two runs started in the same second
            // must not both take it and overwrite each other's lines.
            let candidates = std::iter::once(plain)
                .chain(std::iter::once(beside(
                    input,
                    &format!("{kind}.{stamp}.csv"),
                )))
                .chain((2..1000).map(|n| beside(input, &format!("{kind}.{stamp}-{n}.csv"))));
            for candidate in candidates {
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&candidate)
                {
                    Ok(_) => return Ok(candidate),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(source) => {
                        return Err(ReportError::Io {
                            path: candidate,
                            source,
                        });
                    }
                }
            }
            Err(ReportError::Exists(beside(
                input,
                &format!("{kind}.{stamp}.csv"),
            )))
        };
        Ok(ReportPaths {
            results: pick(results, "results")?,
            errors: pick(errors, "errors")?,
            workbook,
        })
    }
}

/// `<input stem>.<suffix>` in the input's folder: where a run's files go by default.
pub fn beside(input: &Path, suffix: &str) -> PathBuf {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "import".into());
    input
        .parent()
        .unwrap_or_else(|| Path::new(""))
        .join(format!("{stem}.{suffix}"))
}

/// Writes both files as outcomes arrive and keeps the tally.
pub struct Reporter {
    paths: ReportPaths,
    /// Written line by line by hand (see `push_field`): the csv writer was a tenth of a
    /// validate run.
    results: BufWriter<File>,
    line: Vec<u8>,
    errors: csv::Writer<BufWriter<File>>,
    /// How the input's rows go to the errors file, from the headers it was created with.
    feedback: feedback::Layout,
    tally: Tally,
}

const RESULTS_HEADER: [&str; 7] = [
    "row",
    "key",
    "status",
    "case_id",
    "http_status",
    "attempts",
    "message",
];

impl Reporter {
    pub fn create(
        paths: ReportPaths,
        headers: &[String],
        delimiter: u8,
    ) -> Result<Reporter, ReportError> {
        let open = |path: &Path| -> Result<BufWriter<File>, ReportError> {
            let file = File::create(path).map_err(|source| ReportError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            Ok(BufWriter::new(file))
        };
        let mut results = open(&paths.results)?;
        let mut errors_out = open(&paths.errors)?;
        // A BOM so Excel opens accents right.
        errors_out
            .write_all("\u{feff}".as_bytes())
            .map_err(|source| ReportError::Io {
                path: paths.errors.clone(),
                source,
            })?;
        // Flexible: a ragged source row keeps all its cells, however many.
        let mut errors = csv::WriterBuilder::new()
            .flexible(true)
            .delimiter(delimiter)
            .from_writer(errors_out);
        let header_err = |path: &Path| {
            let path = path.to_path_buf();
            move |e: csv::Error| ReportError::Io {
                path,
                source: io::Error::other(e),
            }
        };
        let mut line = Vec::with_capacity(256);
        push_line(&mut line, RESULTS_HEADER);
        results
            .write_all(&line)
            .and_then(|()| results.flush())
            .map_err(|source| ReportError::Io {
                path: paths.results.clone(),
                source,
            })?;
        let feedback = feedback::Layout::new(headers);
        errors
            .write_record(feedback.header())
            .map_err(header_err(&paths.errors))?;
        errors.flush().map_err(|source| ReportError::Io {
            path: paths.errors.clone(),
            source,
        })?;
        Ok(Reporter {
            paths,
            results,
            line,
            errors,
            feedback,
            tally: Tally::default(),
        })
    }

    pub fn paths(&self) -> &ReportPaths {
        &self.paths
    }

    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Write one row's outcome; `cells` are the row's original cells, under the headers
    /// the reporter was created with (for the errors file).
    pub fn record(&mut self, outcome: &Outcome, cells: &Cells) -> Result<(), ReportError> {
        self.tally.add(outcome.status);
        // Numbers formatted on the stack: this runs once a row.
        let mut row_buffer = itoa::Buffer::new();
        let row = row_buffer.format(outcome.row);
        let mut http_buffer = itoa::Buffer::new();
        let http = outcome
            .http_status
            .map_or("", |status| http_buffer.format(status));
        let mut attempts_buffer = itoa::Buffer::new();
        let attempts = attempts_buffer.format(outcome.attempts);
        let case_id = outcome
            .case_id
            .as_deref()
            .map(neutralize)
            .unwrap_or_default();
        let message = neutralize(&outcome.message);
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |e: csv::Error| ReportError::Io {
                path,
                source: io::Error::other(e),
            }
        };
        push_line(
            &mut self.line,
            [
                row,
                outcome.key.as_str(),
                outcome.status.as_str(),
                &case_id,
                http,
                attempts,
                &message,
            ],
        );
        self.results
            .write_all(&self.line)
            .map_err(|source| ReportError::Io {
                path: self.paths.results.clone(),
                source,
            })?;
        if outcome.status.needs_attention() {
            let record = self.feedback.record(cells, row, &outcome.message);
            self.errors
                .write_record(&record)
                .map_err(io_err(&self.paths.errors))?;
        }
        Ok(())
    }

    /// Write out everything buffered.
    pub fn flush(&mut self) -> Result<(), ReportError> {
        self.results.flush().map_err(|source| ReportError::Io {
            path: self.paths.results.clone(),
            source,
        })?;
        self.errors.flush().map_err(|source| ReportError::Io {
            path: self.paths.errors.clone(),
            source,
        })
    }
}

/// `line` becomes one line of the results file holding `fields`.
fn push_line<'f>(line: &mut Vec<u8>, fields: impl IntoIterator<Item = &'f str>) {
    line.clear();
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        push_field(line, field);
    }
    line.push(b'\n');
}

/// One CSV field of the results file, quoted only when it must be (RFC 4180, as the
/// csv crate writes it).
fn push_field(line: &mut Vec<u8>, text: &str) {
    if text
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
        line.push(b'"');
        for (i, piece) in text.split('"').enumerate() {
            if i > 0 {
                line.extend_from_slice(b"\"\"");
            }
            line.extend_from_slice(piece.as_bytes());
        }
        line.push(b'"');
    } else {
        line.extend_from_slice(text.as_bytes());
    }
}

/// Text that came from the server must not run as a formula when the file is opened
/// in a spreadsheet: prefix a quote to anything starting like one.
pub fn neutralize(text: &str) -> std::borrow::Cow<'_, str> {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}").into(),
        _ => text.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_fields_are_quoted_as_the_csv_crate_quotes_them() {
        for text in [
            "plain",
            "",
            "a,b",
            "say \"hi\"",
            "two\nlines",
            "cr\r",
            "ñ, ü",
        ] {
            let mut ours = Vec::new();
            push_field(&mut ours, text);
            let mut theirs = csv::Writer::from_writer(Vec::new());
            theirs.write_record([text, "x"]).unwrap();
            let theirs = theirs.into_inner().unwrap();
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs[..theirs.len() - 3]),
                "{text:?}"
            );
        }
    }

    #[test]
    fn formula_like_server_text_is_neutralized() {
        assert_eq!(neutralize("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(neutralize("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(
            neutralize("HTTP 400: SOME PARAMETERS ARE REQUIRED"),
            "HTTP 400: SOME PARAMETERS ARE REQUIRED"
        );
    }

    #[test]
    fn default_paths_never_overwrite_an_earlier_run() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("tickets.csv");
        let first = ReportPaths::resolve(&input, None, None, false).unwrap();
        assert_eq!(first.results, dir.path().join("tickets.results.csv"));
        std::fs::write(&first.results, "x").unwrap();
        let second = ReportPaths::resolve(&input, None, None, false).unwrap();
        assert_ne!(second.results, first.results);
        let explicit = ReportPaths::resolve(&input, Some(&first.results), None, false);
        assert!(matches!(explicit, Err(ReportError::Exists(_))));
    }
}
