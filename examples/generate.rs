//! Realistic PQRS ticket exports for samples, tests and benchmarks: seeded, deterministic.
//!
//! cargo run --release --example generate -- --rows 250 --seed 7 --out samples/tickets [--xlsx] [--bad-every 30] [--wide]
//!
//! `--wide` makes descriptions about three times longer (rows of ~500 bytes, as in real
//! helpdesk exports), for the benchmarks.
//!
//! Writes `<out>.csv` (UTF-8, `,`) and with `--xlsx` also `<out>.xlsx` of the same data:
//! accents and ñ, commas, quotes and newlines inside descriptions, phones with leading
//! zeros and +57 (text cells in the workbook), real date cells in the workbook. Every
//! `--bad-every`-th row is deliberately wrong in one way (0 = no bad rows).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

const HEADERS: [&str; 14] = [
    "Ticket",
    "Fecha de radicación",
    "Tipo",
    "Asunto",
    "Descripción",
    "Cliente",
    "Correo",
    "Teléfono",
    "Ciudad",
    "Canal",
    "Prioridad",
    "Estado",
    "Asesor",
    "Solución",
];

const NAMES: [&str; 16] = [
    "María José Peña",
    "Juan Sebastián Muñoz",
    "Ana Lucía Gómez",
    "Andrés Felipe Ríos",
    "Lucía Fernández",
    "José Ángel Núñez",
    "Camila Ordóñez",
    "Sofía Castaño",
    "Óscar Iván Zúñiga",
    "Valentina Ibáñez",
    "Martín Sáenz",
    "Daniela Cañas",
    "Luis Eduardo Peñalosa",
    "Natalia Muñetón",
    "Esteban Acuña",
    "Paula Andrea Vélez",
];
const CITIES: [&str; 8] = [
    "Bogotá",
    "Medellín",
    "Cali",
    "Barranquilla",
    "Cúcuta",
    "Bucaramanga",
    "Ibagué",
    "Popayán",
];
const TYPES: [&str; 4] = ["Petición", "Queja", "Reclamo", "Sugerencia"];
const CHANNELS: [&str; 4] = ["Web", "Teléfono", "Correo", "Presencial"];
const PRIORITIES: [&str; 3] = ["Alta", "Media", "Baja"];
const STATES: [&str; 3] = ["Abierto", "En espera", "Cerrado"];
const AGENTS: [&str; 4] = [
    "ADMIN_@modulotest01",
    "laura.diaz@modulotest01",
    "carlos.pena@modulotest01",
    "soporte@modulotest01",
];
const SUBJECTS: [&str; 8] = [
    "Cobro doble en la factura",
    "Demora en la entrega",
    "Cambio de dirección",
    "Solicitud de certificado",
    "Atención en oficina",
    "Falla del servicio de internet",
    "Devolución de dinero",
    "Actualización de datos",
];
const DETAILS: [&str; 8] = [
    "El cliente indica que se le cobró dos veces, \"sin explicación\", en el mes de marzo.",
    "Pide que la entrega se haga en la portería; el pedido lleva 8 días de retraso.",
    "Solicita cambiar la dirección de facturación a Calle 45 # 12-30, apto 501.",
    "Requiere el certificado de paz y salvo para un trámite bancario.",
    "Reporta mala atención en la oficina del centro:\nesperó 2 horas y no fue atendido.",
    "El servicio se cae todas las noches, entre las 8 y las 11 p.m.; ya reinició el módem.",
    "Solicita la devolución de $150.000 por un cargo no reconocido.",
    "Quiere actualizar su número de celular y correo; adjunta cédula.",
];

struct Ticket {
    cells: Vec<String>,
    date: (u16, u8, u8),
}

fn ticket(rng: &mut StdRng, n: usize, bad: Option<usize>, wide: bool) -> Ticket {
    let pick = |rng: &mut StdRng, list: &[&str]| list[rng.random_range(0..list.len())].to_string();
    let name = pick(rng, &NAMES);
    let email = format!(
        "{}{}@ejemplo.com.co",
        name.split_whitespace()
            .next()
            .unwrap_or("cliente")
            .to_lowercase()
            .replace(['á', 'à'], "a")
            .replace('é', "e")
            .replace('í', "i")
            .replace('ó', "o")
            .replace('ú', "u")
            .replace('ñ', "n"),
        n
    );
    let phone = match n % 4 {
        0 => format!("0057 3{:02} 555 {:04}", rng.random_range(0..30), n % 10_000),
        1 => format!("+57 3{:02} 555 {:04}", rng.random_range(0..30), n % 10_000),
        2 => format!("3{:02}555{:04}", rng.random_range(0..30), n % 10_000),
        // A landline as Colombia has dialled them since 2021 (60 + area + 7 digits).
        _ => format!("(60{}) {:03} {:04}", 1 + n % 8, 200 + n % 700, n % 10_000),
    };
    let date = (2024, rng.random_range(1..=12), rng.random_range(1..=28));
    let state = pick(rng, &STATES);
    let solution = if state == "Cerrado" {
        "Se verificó el caso y se dio respuesta al cliente por correo.".to_string()
    } else {
        String::new()
    };
    let mut cells = vec![
        format!("PQR-2024-{n:06}"),
        format!("{:02}/{:02}/{}", date.2, date.1, date.0),
        pick(rng, &TYPES),
        pick(rng, &SUBJECTS),
        if wide {
            format!(
                "{} {} {}",
                pick(rng, &DETAILS),
                pick(rng, &DETAILS),
                pick(rng, &DETAILS)
            )
        } else {
            pick(rng, &DETAILS)
        },
        name,
        email,
        phone,
        pick(rng, &CITIES),
        pick(rng, &CHANNELS),
        pick(rng, &PRIORITIES),
        state,
        pick(rng, &AGENTS),
        solution,
    ];
    match bad {
        Some(0) => cells[6] = String::new(), // no contact
        Some(1) => cells[6] = "cliente.sin.dominio@".into(), // not an e-mail
        Some(2) => cells[2] = "Felicitación".into(), // not a PQRS type
        Some(3) => cells[4] = String::new(), // no description
        Some(4) => cells[0] = format!("PQR-2024-{:06}", n - 1), // same ticket as the row above
        _ => {}
    }
    Ticket { cells, date }
}

const USAGE: &str = "\
Realistic PQRS ticket exports, seeded and deterministic: <out>.csv, and <out>.xlsx with --xlsx.

usage: cargo run --release --example generate -- [options]
  --rows N        data rows (default 250)
  --seed N        random seed (default 7): the same seed gives the same file
  --out PREFIX    where to write: PREFIX.csv, PREFIX.xlsx (default tickets)
  --xlsx          also write the workbook (real date cells, phones as text)
  --bad-every N   every N-th row deliberately wrong in one way (default 30; 0 = none)
  --wide          descriptions about three times longer (~500-byte rows, as real exports)";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rows = 250usize;
    let mut seed = 7u64;
    let mut out = String::from("tickets");
    let mut xlsx = false;
    let mut bad_every = 30usize;
    let mut wide = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rows" => rows = args.next().ok_or("--rows N")?.parse()?,
            "--seed" => seed = args.next().ok_or("--seed N")?.parse()?,
            "--out" => out = args.next().ok_or("--out PREFIX")?,
            "--xlsx" => xlsx = true,
            "--wide" => wide = true,
            "--bad-every" => bad_every = args.next().ok_or("--bad-every N")?.parse()?,
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => {
                eprintln!("unknown argument {other}\n\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut csv = csv::Writer::from_path(format!("{out}.csv"))?;
    csv.write_record(HEADERS)?;
    let mut workbook = Workbook::new();
    // Constant memory: a 100k-row workbook is written without holding it all.
    let sheet = workbook
        .add_worksheet_with_constant_memory()?
        .set_name("Tickets")?;
    let date_format = Format::new().set_num_format("dd/mm/yyyy");
    if xlsx {
        for (c, h) in HEADERS.iter().enumerate() {
            sheet.write_string(0, c as u16, *h)?;
        }
    }
    let mut bad_kind = 0;
    for n in 1..=rows {
        let bad = (bad_every > 0 && n % bad_every == 0).then(|| {
            bad_kind += 1;
            (bad_kind - 1) % 5
        });
        let t = ticket(&mut rng, n, bad, wide);
        csv.write_record(&t.cells)?;
        if xlsx {
            let r = n as u32;
            for (c, cell) in t.cells.iter().enumerate() {
                if c == 1 {
                    let (y, m, d) = t.date;
                    sheet.write_datetime_with_format(
                        r,
                        1,
                        ExcelDateTime::from_ymd(y, m, d)?,
                        &date_format,
                    )?;
                } else if !cell.is_empty() {
                    sheet.write_string(r, c as u16, cell)?;
                }
            }
        }
    }
    csv.flush()?;
    if xlsx {
        workbook.save(format!("{out}.xlsx"))?;
    }
    Ok(())
}
