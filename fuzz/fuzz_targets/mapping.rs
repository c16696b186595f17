//! The mapping compiler: any YAML text is parsed, compiled against a header row and
//! applied to rows without a panic; errors are fine.
//!
//! Input: the mapping file. A first line `# headers: A,B,C` (a YAML comment) names the
//! columns; otherwise they are those of samples/tickets.csv. The rows are the sample's
//! first rows, cut or padded to the header's width.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wolkvox_import::mapping::{self, CompiledMapping};
use wolkvox_import::source::{Cells, Cuts, Limits, Row, read_rows};

const SAMPLE: &[u8] = include_bytes!("../../samples/tickets.csv");

/// The sample's header and first rows.
fn sample() -> &'static (Vec<String>, Vec<Row>) {
    static SAMPLE_ROWS: OnceLock<(Vec<String>, Vec<Row>)> = OnceLock::new();
    SAMPLE_ROWS.get_or_init(|| {
        let text = String::from_utf8_lossy(SAMPLE);
        let header = text.lines().next().unwrap_or_default();
        let headers = header.split(',').map(str::to_string).collect();
        let whole = Cuts {
            chunk_bytes: usize::MAX,
            forced_bytes: usize::MAX,
        };
        let rows = read_rows(SAMPLE, b',', usize::MAX, whole, Limits::default())
            .into_iter()
            .filter_map(Result::ok)
            .take(8)
            .collect();
        (headers, rows)
    })
}

fuzz_target!(|data: &[u8]| {
    // `mapping::load` refuses a file that is not UTF-8 before parsing it.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (sample_headers, sample_rows) = sample();
    let headers: Vec<String> = match text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# headers:"))
    {
        Some(list) => list.split(',').map(str::to_string).collect(),
        None => sample_headers.clone(),
    };
    let rows: Vec<Row> = sample_rows
        .iter()
        .map(|row| {
            let cells: Cells = (0..headers.len())
                .map(|i| row.cells.get(i).unwrap_or_default().to_string())
                .collect();
            Row {
                number: row.number,
                cells,
                cell_errors: Vec::new(),
            }
        })
        .collect();

    let path = Path::new("fuzz.yaml");
    let Ok(spec) = mapping::parse(text, path) else {
        return;
    };
    let Ok(mut compiled) =
        CompiledMapping::compile(&spec, &headers, None, path, Path::new("fuzz.csv"))
    else {
        return;
    };
    // As `validate` and `import` do: a first pass for the dates, then every row.
    if compiled.wants_column_scan() {
        let mut evidence = Vec::new();
        for row in &rows {
            compiled.observe(row, &mut evidence);
        }
        let _ = compiled.settle_dates(&evidence);
    }
    for row in &rows {
        let _ = compiled.key_hint(row);
        if let Ok(payload) = compiled.apply(row) {
            let _ = payload.to_json();
            let _ = payload.fields().count();
        }
    }
});
