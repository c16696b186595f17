//! Baselines for `scripts/bench.sh`, measured in the same run as the importer:
//!
//!   baseline csv FILE          parse every record with the csv crate's ByteRecord (no decoding)
//!   baseline xlsx FILE         read every cell of the first sheet with calamine (no mapping)
//!   baseline http URL N [ROW]  POST N inserts, 2 at a time, with reqwest: one fixed
//!                              multipart body built once (as oha or wrk send it);
//!                              ROW: a file holding one `preview` line, whose payload is
//!                              the fixed body (so both sides send the same bytes)
//!
//! Each prints `rows=<n> seconds=<s>`.

use std::time::Instant;

use calamine::{Reader, open_workbook_auto};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let started = Instant::now();
    let rows = match args.first().map(String::as_str) {
        Some("csv") => {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(true)
                .from_path(&args[1])?;
            let mut record = csv::ByteRecord::new();
            let mut n = 0u64;
            while reader.read_byte_record(&mut record)? {
                n += 1;
            }
            n
        }
        Some("xlsx") => {
            let mut book = open_workbook_auto(&args[1])?;
            let range = book.worksheet_range_at(0).ok_or("no sheet")??;
            let mut n = 0u64;
            let mut bytes = 0usize;
            for row in range.rows().skip(1) {
                n += 1;
                for cell in row {
                    bytes += cell.to_string().len();
                }
            }
            std::hint::black_box(bytes);
            n
        }
        Some("http") => {
            let url = format!("{}/server/API/v2/cases/insert.php", args[1]);
            let total: u64 = args[2].parse()?;
            let fields: Vec<(String, String)> = match args.get(3) {
                Some(path) => {
                    let line: serde_json::Value =
                        serde_json::from_str(std::fs::read_to_string(path)?.trim())?;
                    let payload = line["payload"].as_object().ok_or("no payload in ROW")?;
                    payload
                        .iter()
                        .filter(|(name, _)| name.as_str() != "_key")
                        .map(|(name, value)| {
                            (name.clone(), value.as_str().unwrap_or_default().to_string())
                        })
                        .collect()
                }
                None => [
                    ("operation", "modulotest01"),
                    ("case-type", "Request"),
                    ("responsible", "ADMIN_@modulotest01"),
                    ("owner", "ADMIN_@modulotest01"),
                    ("contact", "ana@ejemplo.com.co"),
                    (
                        "description",
                        "El cliente indica que se le cobró dos veces.",
                    ),
                    ("status", "Abierto"),
                    ("priority", "Alta"),
                    ("form", "{\"Ciudad\":\"Cali\"}"),
                ]
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            const BOUNDARY: &str = "baseline-boundary-5f1d3c2b9a8e7d6c";
            const CONTENT_TYPE: &str =
                "multipart/form-data; boundary=baseline-boundary-5f1d3c2b9a8e7d6c";
            let mut text = String::new();
            for (name, value) in &fields {
                text.push_str(&format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                ));
            }
            text.push_str(&format!("--{BOUNDARY}--\r\n"));
            let body = text;
            runtime.block_on(async move {
                let client = reqwest::Client::new();
                let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
                let mut tasks = Vec::new();
                for _ in 0..2 {
                    let client = client.clone();
                    let url = url.clone();
                    let next = next.clone();
                    let body = body.clone();
                    tasks.push(tokio::spawn(async move {
                        while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < total {
                            // A fixed body built once, as oha or wrk send it.
                            let response = client
                                .post(&url)
                                .header("Wolkvox-Token", "bench")
                                .header("Content-Type", CONTENT_TYPE)
                                .body(body.clone())
                                .send()
                                .await;
                            if let Ok(r) = response {
                                let _ = r.text().await;
                            }
                        }
                    }));
                }
                for task in tasks {
                    let _ = task.await;
                }
            });
            total
        }
        _ => return Err("usage: baseline csv FILE | xlsx FILE | http URL N".into()),
    };
    println!("rows={rows} seconds={:.3}", started.elapsed().as_secs_f64());
    Ok(())
}
