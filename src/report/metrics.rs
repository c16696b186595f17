//! `--metrics-file`: the last run in Prometheus' text format, for node_exporter's textfile
//! collector, written atomically (a temporary file in the same directory, then a rename)
//! so the collector never reads half a file.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::outcome::{Status, Tally, TokenUse};

/// What the metrics say about one run; whatever was known when it ended.
#[derive(Debug, Clone, Default)]
pub struct RunMetrics {
    /// The CRM target (server + operation), once known.
    pub target: Option<String>,
    pub input: String,
    pub exit_code: u8,
    pub duration: Duration,
    /// Rows per status, once the run got as far as reading them.
    pub tally: Option<Tally>,
    /// Rows a request was made for.
    pub sent: u64,
    pub tokens: Vec<TokenUse>,
}

/// A label value as the text format wants it: backslash, double quote and line feed
/// escaped.
fn label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// `{target="…",extra="…"}`, or nothing when there are no labels.
fn labels(target: Option<&str>, extra: &[(&str, &str)]) -> String {
    let mut pairs: Vec<String> = Vec::new();
    if let Some(target) = target {
        pairs.push(format!("target=\"{}\"", label_value(target)));
    }
    for (name, value) in extra {
        pairs.push(format!("{name}=\"{}\"", label_value(value)));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

/// A float as the text format reads it.
fn number(value: f64) -> String {
    if value.is_finite() {
        format!("{value}")
    } else if value.is_nan() {
        "NaN".into()
    } else if value > 0.0 {
        "+Inf".into()
    } else {
        "-Inf".into()
    }
}

/// The metrics file's text.
pub fn render(run: &RunMetrics, ended: SystemTime) -> String {
    let target = run.target.as_deref();
    let mut text = String::new();
    let mut family = |name: &str, help: &str, samples: &[(String, f64)]| {
        if samples.is_empty() {
            return;
        }
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(text, "{name}{labels} {}", number(*value));
        }
    };
    let end = ended
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    family(
        "wolkvox_import_last_run_end_timestamp_seconds",
        "When the last import run ended, in seconds since the Unix epoch.",
        &[(labels(target, &[]), (end * 1000.0).round() / 1000.0)],
    );
    family(
        "wolkvox_import_last_run_exit_code",
        "The last import run's exit code (0 done, 1 nothing done, 2 rows need attention, 3 aborted, 4 quota stop, 130 interrupted).",
        &[(labels(target, &[]), f64::from(run.exit_code))],
    );
    family(
        "wolkvox_import_last_run_duration_seconds",
        "How long the last import run took.",
        &[(labels(target, &[]), run.duration.as_secs_f64())],
    );
    family(
        "wolkvox_import_last_run_info",
        "The input file the last import run read (always 1).",
        &[(labels(target, &[("input", &run.input)]), 1.0)],
    );
    let rows: Vec<(String, f64)> = match &run.tally {
        Some(tally) => Status::ALL
            .into_iter()
            .filter(|s| *s != Status::Valid)
            .map(|s| {
                (
                    labels(target, &[("status", s.as_str())]),
                    tally.get(s) as f64,
                )
            })
            .collect(),
        None => Vec::new(),
    };
    family(
        "wolkvox_import_last_run_rows",
        "Rows of the last import run, per status.",
        &rows,
    );
    family(
        "wolkvox_import_last_run_rows_sent",
        "Rows the last import run made a request for.",
        &[(labels(target, &[]), run.sent as f64)],
    );
    let calls: Vec<(String, f64)> = run
        .tokens
        .iter()
        .map(|t| {
            (
                labels(target, &[("token", &t.fingerprint), ("state", t.state)]),
                t.calls as f64,
            )
        })
        .collect();
    family(
        "wolkvox_import_last_run_token_calls",
        "Calls the last import run made with each token that reached the CRM (the preflight included), by token fingerprint.",
        &calls,
    );
    let left: Vec<(String, f64)> = run
        .tokens
        .iter()
        .filter_map(|t| {
            t.quota_left
                .map(|left| (labels(target, &[("token", &t.fingerprint)]), left as f64))
        })
        .collect();
    family(
        "wolkvox_import_token_quota_left_calls",
        "Calls left on each token's daily quota when the last import run ended (the CRM's figure at the start, less the run's calls).",
        &left,
    );
    text
}

/// Write `text` to `path` atomically: a temporary file beside it (not ending in .prom,
/// which the collector would read), synced, then renamed over it.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "metrics".into());
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(text.as_bytes())?;
        // Readable by node_exporter, which may run as another user.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        }
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(
            labels(Some("x|y"), &[("input", "q\"")]),
            "{target=\"x|y\",input=\"q\\\"\"}"
        );
        assert_eq!(labels(None, &[]), "");
    }

    #[test]
    fn a_run_that_did_nothing_still_has_its_end_and_exit_code() {
        let text = render(
            &RunMetrics {
                exit_code: 1,
                input: "t.csv".into(),
                ..RunMetrics::default()
            },
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        );
        assert!(
            text.contains("wolkvox_import_last_run_exit_code 1\n"),
            "{text}"
        );
        assert!(
            text.contains("wolkvox_import_last_run_end_timestamp_seconds 1700000000\n"),
            "{text}"
        );
        assert!(!text.contains("wolkvox_import_last_run_rows{"), "{text}");
    }
}
