//! `preview`: the payloads the first rows become, one JSON object per line on stdout.

use std::io::Write;

use serde_json::json;

use crate::cli::PreviewArgs;
use crate::exit::Verdict;
use crate::ledger::Effect;
use crate::mapping::DuplicateKeys;
use crate::source::Cells;

use super::input::{self, Checked};

pub fn run(args: &PreviewArgs) -> anyhow::Result<Verdict> {
    let mut opened = input::open(&args.input, &args.mapping, args.operation.as_deref())?;
    opened.warn_if_no_key(&args.mapping);
    let ledger =
        super::target::read_ledger(&args.against, &args.mapping, args.operation.as_deref())?;
    let mut keys = DuplicateKeys::default();
    let mut out = std::io::stdout().lock();
    let mut any_invalid = false;
    let headers = opened.source.headers.clone();
    let limit = if args.rows == 0 {
        usize::MAX
    } else {
        args.rows
    };
    for item in opened.source.rows.take(limit) {
        let line = match input::check(item, &opened.mapping, &mut keys) {
            Checked::Ready {
                row,
                cells,
                payload,
            } => {
                let mut line = json!({
                    "row": row,
                    "cells": decoded(&headers, &cells),
                    "payload": payload.to_json(),
                });
                if let Some(ledger) = &ledger {
                    line["import"] = Effect::of(ledger, &payload)?.to_json();
                }
                // Only when there are some: most rows have none.
                if !payload.warnings().is_empty() {
                    line["warnings"] = payload.warnings().iter().map(ToString::to_string).collect();
                }
                line
            }
            Checked::Invalid {
                row,
                cells,
                message,
                ..
            } => {
                any_invalid = true;
                json!({"row": row, "cells": decoded(&headers, &cells), "invalid": message})
            }
        };
        writeln!(out, "{line}")?;
    }
    Ok(if any_invalid {
        Verdict::RowsNeedAttention
    } else {
        Verdict::Clean
    })
}

/// The cells as read (after decoding), so a user can check them by eye.
fn decoded(headers: &[String], cells: &Cells) -> serde_json::Value {
    let object: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .zip(cells.iter())
        .map(|(h, c)| (h.clone(), c.into()))
        .collect();
    serde_json::Value::Object(object)
}
