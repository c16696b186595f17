//! Per-stage benchmarks, each next to its baseline in the same group:
//! the CSV source against the csv crate's bare ByteRecord parse, the mapping per row,
//! the workbook source, and the ledger's writes per sent row. Run: `cargo bench --bench
//! pipeline` (one group: `cargo bench --bench pipeline -- ledger`).

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wolkvox_import::mapping::{self, CompiledMapping};
use wolkvox_import::source::{self, Row, SourceOptions};

const ROWS: usize = 20_000;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A CSV of ROWS tickets: the sample's rows repeated with fresh ticket numbers.
fn tickets_csv(dir: &Path) -> PathBuf {
    let path = dir.join("bench.csv");
    let mut reader = csv::Reader::from_path(repo("samples/tickets.csv")).expect("sample");
    let headers = reader.headers().expect("headers").clone();
    let records: Vec<csv::StringRecord> = reader.records().filter_map(Result::ok).collect();
    let mut writer = csv::Writer::from_path(&path).expect("bench file");
    writer.write_record(&headers).expect("write");
    for i in 0..ROWS {
        let mut cells: Vec<String> = records[i % records.len()]
            .iter()
            .map(str::to_string)
            .collect();
        cells[0] = format!("T-{i:07}");
        writer.write_record(&cells).expect("write");
    }
    writer.flush().expect("flush");
    path
}

fn csv_source(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = tickets_csv(dir.path());
    let mut group = c.benchmark_group("csv");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(20);
    group.bench_function("baseline: csv crate ByteRecord", |b| {
        b.iter(|| {
            let mut reader = csv::Reader::from_path(&path).expect("open");
            let mut record = csv::ByteRecord::new();
            let mut n = 0;
            while reader.read_byte_record(&mut record).expect("parse") {
                n += 1;
            }
            black_box(n)
        })
    });
    group.bench_function("source: rows with line numbers", |b| {
        b.iter(|| {
            let source = source::open(&path, &SourceOptions::default()).expect("open");
            black_box(source.rows.count())
        })
    });
    group.finish();
}

fn mapping_apply(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = tickets_csv(dir.path());
    let source = source::open(&path, &SourceOptions::default()).expect("open");
    let headers = source.headers.clone();
    let rows: Vec<Row> = source.rows.filter_map(Result::ok).collect();
    let mapping_path = repo("mappings/tickets.yaml");
    let (spec, _) = mapping::load(&mapping_path).expect("mapping");
    let compiled =
        CompiledMapping::compile(&spec, &headers, None, &mapping_path, &path).expect("compile");
    let mut group = c.benchmark_group("mapping");
    group.throughput(Throughput::Elements(rows.len() as u64));
    group.sample_size(20);
    group.bench_function("apply: row to payload", |b| {
        b.iter(|| {
            let mut ok = 0;
            for row in &rows {
                ok += usize::from(compiled.apply(row).is_ok());
            }
            black_box(ok)
        })
    });
    group.finish();
}

fn workbook_source(c: &mut Criterion) {
    let path = repo("samples/tickets.xlsx");
    let mut group = c.benchmark_group("xlsx");
    group.throughput(Throughput::Elements(240));
    group.sample_size(20);
    group.bench_function("baseline: calamine cells to text", |b| {
        use calamine::Reader;
        b.iter(|| {
            let mut book = calamine::open_workbook_auto(&path).expect("open");
            let range = book.worksheet_range_at(0).expect("sheet").expect("range");
            black_box(
                range
                    .rows()
                    .map(|r| r.iter().map(|c| c.to_string().len()).sum::<usize>())
                    .sum::<usize>(),
            )
        })
    });
    group.bench_function("source: rows", |b| {
        b.iter(|| {
            let source = source::open(&path, &SourceOptions::default()).expect("open");
            black_box(source.rows.count())
        })
    });
    group.finish();
}

/// What the ledger writes for each sent row at a CRM that answers at once: its `sending`
/// mark (with the fingerprints of ~15 fields, as the sample mapping makes) and its answer,
/// committed in batches of 15 as the importer's group commit does at that pace. No sync:
/// that runs on its own thread (`scripts/bench.sh` measures one).
fn ledger_writes(c: &mut Criterion) {
    use wolkvox_import::ledger::Ledger;
    use wolkvox_import::outcome::{Outcome, Status};
    const SENT: u64 = 3_000;
    const BATCH: u64 = 15;
    let fields: String = {
        let prints: std::collections::BTreeMap<String, String> = (0..15)
            .map(|i| {
                (
                    format!("form.Field {i}"),
                    format!("{:016x}", i * 0x9e37_79b9_7f4a_7c15u64),
                )
            })
            .collect();
        serde_json::to_string(&prints).expect("fingerprints")
    };
    let mut group = c.benchmark_group("ledger");
    group.throughput(Throughput::Elements(SENT));
    group.sample_size(10);
    group.bench_function("mark and answer, 15 rows a commit", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("tempdir");
                let mut ledger =
                    Ledger::open(&dir.path().join("l.sqlite"), "bench").expect("ledger");
                ledger
                    .begin_run("import", "bench.csv", None, None)
                    .expect("run");
                (dir, ledger)
            },
            |(dir, ledger)| {
                for start in (0..SENT).step_by(BATCH as usize) {
                    let batch = start..(start + BATCH).min(SENT);
                    for row in batch.clone() {
                        let key = format!("PQR-2024-{row:06}");
                        ledger
                            .mark_sending_deferred(&key, row, &fields)
                            .expect("mark");
                    }
                    ledger.commit().expect("commit");
                    for row in batch {
                        let mut outcome =
                            Outcome::new(row, format!("PQR-2024-{row:06}"), Status::Created);
                        outcome.case_id = Some(format!("{}", 100_000 + row));
                        outcome.http_status = Some(200);
                        outcome.attempts = 1;
                        ledger.record(&outcome).expect("record");
                    }
                }
                ledger.commit().expect("commit");
                (dir, ledger)
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(
    benches,
    csv_source,
    mapping_apply,
    workbook_source,
    ledger_writes
);
criterion_main!(benches);
