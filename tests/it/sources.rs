//! Reading what users really have: encodings, dialects, workbooks, row numbers.

use rust_xlsxwriter::{ExcelDateTime, Format, Formula, Workbook};

use crate::support::*;

const MAPPING: &str = r#"
operation: op
fields:
  case-type: { value: Request }
  responsible: { value: "a@op" }
  owner: { value: "a@op" }
  contact: { value: "c@ejemplo.co" }
  description: Descripción
  status: { value: Abierto }
  priority: { value: Alta }
form:
  Teléfono: Teléfono
"#;

/// `preview` output: one JSON value per row.
fn preview(work: &Work, input: &str, extra: &[&str]) -> (i32, Vec<serde_json::Value>, String) {
    work.write("m.yaml", MAPPING);
    let out = work
        .bin()
        .args(["preview", input, "--mapping", "m.yaml", "--rows", "100"])
        .args(extra)
        .run();
    let rows = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        out.code(),
        rows,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn windows_1252_with_semicolons_is_detected_and_decoded() {
    let work = Work::new();
    let bytes = b"Descripci\xf3n;Tel\xe9fono\r\nPetici\xf3n\x85 del a\xf1o;0057 301 555 0101\r\n";
    std::fs::write(work.path("t.csv"), bytes).unwrap();
    let (code, rows, stderr) = preview(&work, "t.csv", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(rows[0]["cells"]["Descripción"], "Petición… del año");
    assert_eq!(rows[0]["cells"]["Teléfono"], "0057 301 555 0101");
    assert_eq!(rows[0]["row"], 2);
}

#[test]
fn utf16_with_bom_and_tabs_is_decoded() {
    let work = Work::new();
    let text = "Descripción\tTeléfono\nQueja por el señor Núñez\t+573015550101\n";
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
    std::fs::write(work.path("t.csv"), bytes).unwrap();
    let (code, rows, stderr) = preview(&work, "t.csv", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(rows[0]["cells"]["Descripción"], "Queja por el señor Núñez");
    assert_eq!(rows[0]["cells"]["Teléfono"], "+573015550101");
}

#[test]
fn a_ragged_row_is_a_row_error_and_shifts_nothing() {
    let work = Work::new();
    work.write(
        "t.csv",
        "Descripción,Teléfono\n\"una\nlínea partida\",1\nsobra,2,3\n\nbien,4\n",
    );
    let (code, rows, _) = preview(&work, "t.csv", &[]);
    assert_eq!(code, 2);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["row"], 2);
    assert_eq!(rows[1]["row"], 4);
    assert!(rows[1]["invalid"].as_str().unwrap().contains("3 fields"));
    // A blank line is skipped without shifting the next row's number.
    assert_eq!(rows[2]["row"], 6);
    assert_eq!(rows[2]["cells"]["Descripción"], "bien");
}

#[test]
fn title_lines_above_the_header_are_explained_and_header_row_fixes_it() {
    let work = Work::new();
    work.write(
        "t.csv",
        "Reporte PQRS\nGenerado 2024-03-01\nDescripción,Teléfono,Ciudad\nx,1,Cali\n",
    );
    let (code, _, stderr) = preview(&work, "t.csv", &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--header-row"), "{stderr}");
    let (code, rows, stderr) = preview(&work, "t.csv", &["--header-row", "3"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(rows[0]["row"], 4);
    assert_eq!(rows[0]["cells"]["Ciudad"], "Cali");
}

#[test]
fn xlsx_numbers_with_a_zero_padded_format_read_as_excel_shows_them() {
    let work = Work::new();
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    let padded = Format::new().set_num_format("0000000000");
    let decimals = Format::new().set_num_format("0.00");
    sheet.write_string(0, 0, "Descripción").unwrap();
    sheet.write_string(0, 1, "Teléfono").unwrap();
    for (row, (description, number, format)) in [
        ("padded", 300123456.0, &padded),
        ("already ten digits", 3015550101.0, &padded),
        ("other formats keep the number", 300123456.0, &decimals),
    ]
    .into_iter()
    .enumerate()
    {
        let row = row as u32 + 1;
        sheet.write_string(row, 0, description).unwrap();
        sheet
            .write_number_with_format(row, 1, number, format)
            .unwrap();
    }
    workbook.save(work.path("t.xlsx")).unwrap();

    let (code, rows, stderr) = preview(&work, "t.xlsx", &[]);
    assert_eq!(code, 0, "{stderr}");
    let phones: Vec<&str> = rows
        .iter()
        .map(|r| r["cells"]["Teléfono"].as_str().unwrap())
        .collect();
    assert_eq!(phones, ["0300123456", "3015550101", "300123456"]);
}

#[test]
fn workbook_cells_are_read_faithfully() {
    let work = Work::new();
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet().set_name("Casos").unwrap();
    let date = Format::new().set_num_format("dd/mm/yyyy");
    let datetime = Format::new().set_num_format("dd/mm/yyyy hh:mm");
    let time = Format::new().set_num_format("hh:mm:ss");
    for (c, h) in [
        "Descripción",
        "Teléfono",
        "Fecha",
        "Hora",
        "Momento",
        "Valor",
        "Total",
        "Activo",
    ]
    .iter()
    .enumerate()
    {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    sheet.write_string(1, 0, "texto ñ").unwrap();
    sheet.write_number(1, 1, 3015550101.0).unwrap(); // a phone typed as a number
    sheet
        .write_datetime_with_format(1, 2, ExcelDateTime::from_ymd(2024, 3, 7).unwrap(), &date)
        .unwrap();
    sheet
        .write_datetime_with_format(1, 3, ExcelDateTime::from_hms(14, 5, 0).unwrap(), &time)
        .unwrap();
    let moment = ExcelDateTime::from_ymd(2024, 3, 7)
        .unwrap()
        .and_hms(14, 5, 0)
        .unwrap();
    sheet
        .write_datetime_with_format(1, 4, moment, &datetime)
        .unwrap();
    sheet.write_number(1, 5, 0.3).unwrap();
    sheet
        .write_formula(1, 6, Formula::new("=2+3").set_result("5"))
        .unwrap();
    sheet.write_boolean(1, 7, true).unwrap();
    sheet.write_string(2, 0, "segunda").unwrap();
    sheet.write_string(2, 1, "0057 301 555 0101").unwrap(); // text keeps its zeros
    workbook.add_worksheet().set_name("Otra").unwrap();
    workbook.save(work.path("t.xlsx")).unwrap();

    let (code, rows, stderr) = preview(&work, "t.xlsx", &[]);
    assert_eq!(code, 0, "{stderr}");
    let cells = &rows[0]["cells"];
    assert_eq!(cells["Descripción"], "texto ñ");
    assert_eq!(cells["Teléfono"], "3015550101");
    assert_eq!(cells["Fecha"], "2024-03-07");
    assert_eq!(cells["Hora"], "14:05:00");
    assert_eq!(cells["Momento"], "2024-03-07T14:05:00");
    assert_eq!(cells["Valor"], "0.3");
    assert_eq!(cells["Total"], "5");
    assert_eq!(cells["Activo"], "true");
    assert_eq!(rows[1]["cells"]["Teléfono"], "0057 301 555 0101");
    assert_eq!(rows[1]["row"], 3);

    let (code, _, stderr) = preview(&work, "t.xlsx", &["--sheet", "Nope"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("Casos") && stderr.contains("Otra"),
        "{stderr}"
    );
}

#[test]
fn the_same_tickets_from_csv_cp1252_xlsx_xls_and_ods_give_identical_payloads() {
    let work = Work::with_sample();
    work.copy("tests/fixtures/tickets-cp1252.csv", "cp1252.csv");
    work.copy("tests/fixtures/tickets.xls", "tickets.xls");
    work.copy("tests/fixtures/tickets.ods", "tickets.ods");
    let reference = payloads(&work, "tickets.csv");
    assert_eq!(reference.len(), 240);
    for input in ["cp1252.csv", "tickets.xlsx", "tickets.xls", "tickets.ods"] {
        let other = payloads(&work, input);
        assert_eq!(other.len(), reference.len(), "{input}");
        for (i, (a, b)) in reference.iter().zip(&other).enumerate() {
            assert_eq!(a, b, "{input}, data row {}", i + 1);
        }
    }
}

#[test]
fn cp1252_semicolon_crlf_rows_keep_their_line_numbers() {
    let work = Work::with_sample();
    work.copy("tests/fixtures/tickets-cp1252.csv", "cp1252.csv");
    let out = work.run([
        "validate",
        "cp1252.csv",
        "--mapping",
        "tickets.yaml",
        "--json",
        "-q",
    ]);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["encoding"], "windows-1252");
    assert_eq!(summary["delimiter"], ";");
    let utf8 = read_results(&{
        work.run(["validate", "tickets.csv", "--mapping", "tickets.yaml", "-q"]);
        work.path("tickets.results.csv")
    });
    let cp1252 = read_results(&work.path("cp1252.results.csv"));
    let rows = |r: &[ResultRow]| {
        r.iter()
            .map(|x| (x.row, x.status.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(rows(&utf8), rows(&cp1252));
}

#[test]
fn error_cells_fail_the_row_naming_the_cell_only_when_mapped() {
    let work = Work::new();
    work.copy("tests/fixtures/formula-errors.xlsx", "e.xlsx");
    // MAPPING uses Descripción and Teléfono, not Valor: the errors in Valor do not matter.
    let (code_unused, rows, _) = preview(&work, "e.xlsx", &[]);
    assert_eq!(code_unused, 0);
    assert_eq!(
        rows[0]["cells"]["Total"], "5",
        "a formula gives its cached value"
    );
    let mapping = MAPPING.replace("Teléfono: Teléfono", "Valor: Valor");
    work.write("m2.yaml", &mapping);
    let out = work.run(["preview", "e.xlsx", "--mapping", "m2.yaml"]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0]["invalid"],
        "column \"Valor\": cell C2 holds the error #DIV/0!"
    );
    assert_eq!(
        lines[1]["invalid"],
        "column \"Valor\": cell C3 holds the error #N/A"
    );
}

#[test]
fn the_1904_date_system_reads_the_same_dates() {
    let work = Work::new();
    work.copy("tests/fixtures/date1904.xlsx", "d.xlsx");
    let mapping = MAPPING.replace("Teléfono: Teléfono", "Fecha: Fecha");
    work.write("m.yaml", &mapping);
    let out = work.run(["preview", "d.xlsx", "--mapping", "m.yaml"]);
    let row: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(row["cells"]["Fecha"], "2024-03-07");
}

#[test]
fn a_ragged_row_keeps_all_its_cells_in_the_errors_file() {
    let work = Work::new();
    work.write("m.yaml", MAPPING);
    work.write("t.csv", "Descripción,Teléfono\nuno,1\nsobra,2,3\ndos,4\n");
    let out = work.run(["validate", "t.csv", "--mapping", "m.yaml", "-q"]);
    out.assert_code(2);
    let errors = work.read("t.errors.csv");
    let lines: Vec<&str> = errors.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(lines[0], "Descripción,Teléfono,_row,_error");
    assert!(lines[1].starts_with("sobra,2,3,3,"), "{errors}");
    assert_eq!(lines.len(), 2);
}

#[test]
fn a_file_without_headers_maps_columns_by_letter_or_number() {
    let work = Work::new();
    work.write(
        "m.yaml",
        r#"
operation: op
fields:
  case-type: { value: Request }
  responsible: { value: "a@op" }
  owner: { value: "a@op" }
  contact: { column: C, email: true }
  description: "1"
  status: { value: Abierto }
  priority: { value: Alta }
form:
  Ciudad: { column: B, transforms: [{ split: { separator: " - ", index: 0 } }] }
  Departamento: { column: B, transforms: [{ split: { separator: " - ", index: 1 } }] }
"#,
    );
    work.write(
        "t.csv",
        "Cobro doble,Cali - Valle,ana@ejemplo.co\nDemora,Bogotá - Cundinamarca,no-es-correo\n",
    );
    let out = work.run(["preview", "t.csv", "--mapping", "m.yaml", "--no-header"]);
    out.assert_code(2);
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[0]["row"], 1, "the first line is data");
    assert_eq!(rows[0]["payload"]["description"], "Cobro doble");
    let form: serde_json::Value =
        serde_json::from_str(rows[0]["payload"]["form"].as_str().unwrap()).unwrap();
    assert_eq!(form["Ciudad"], "Cali");
    assert_eq!(form["Departamento"], "Valle");
    assert_eq!(rows[1]["row"], 2);
    assert!(
        rows[1]["invalid"]
            .as_str()
            .unwrap()
            .contains("column \"C\"")
    );
}

#[test]
fn one_unambiguous_date_settles_the_whole_column() {
    let work = Work::new();
    let mapping = MAPPING.replace(
        "Teléfono: Teléfono",
        "Fecha:\n    column: Fecha\n    transforms: [{ date: { from: [\"%d/%m/%Y\", \"%m/%d/%Y\"] } }]",
    );
    work.write("m.yaml", &mapping);
    let preview = |csv: &str| -> Vec<serde_json::Value> {
        work.write("t.csv", csv);
        let out = work.run(["preview", "t.csv", "--mapping", "m.yaml", "--rows", "0"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let form = |row: &serde_json::Value| -> serde_json::Value {
        serde_json::from_str(row["payload"]["form"].as_str().unwrap()).unwrap()
    };
    // 26/06 can only be day-first: the whole column is, so 03/04 is the 3rd of April.
    let rows = preview("Descripción,Fecha\nuno,03/04/2024\ndos,26/06/2024\n");
    assert_eq!(form(&rows[0])["Fecha"], "2024-04-03");
    assert_eq!(form(&rows[1])["Fecha"], "2024-06-26");
    // A column with both day-first and month-first values decides nothing: 03/04 is refused.
    let rows = preview("Descripción,Fecha\nuno,03/04/2024\ndos,26/06/2024\ntres,06/27/2024\n");
    assert!(
        rows[0]["invalid"].as_str().unwrap().contains("ambiguous"),
        "{:?}",
        rows[0]
    );
    assert_eq!(form(&rows[1])["Fecha"], "2024-06-26");
    assert_eq!(form(&rows[2])["Fecha"], "2024-06-27");
}

/// A file of many chunks, whose stray quotes (`5" TV` in an unquoted field) make some cuts
/// land inside quoted two-line descriptions: the rows that `validate` reads on several
/// threads are exactly the ones `preview` reads in one pass, at the lines an editor shows.
#[test]
fn a_large_csv_read_in_parallel_gives_the_rows_of_one_pass() {
    let work = Work::with_sample();
    let header = "Ticket,Fecha de radicación,Tipo,Asunto,Descripción,Cliente,Correo,Teléfono,\
                  Ciudad,Canal,Prioridad,Estado,Asesor,Solución";
    let mut text = format!("{header}\r\n");
    let rows = 8000u64;
    for i in 1..=rows {
        let email = if i.is_multiple_of(97) {
            "sin-correo"
        } else {
            "ana@ejemplo.com.co"
        };
        text.push_str(&format!(
            "T-{i:05},09/02/2024,Queja,Pantalla de 5\" rota,\"Llegó rota, dice: \"\"no enciende\"\".\r\n\
             Pide cambio; ticket {i}.\",Ana Ríos,{email},3005550101,Cali,Web,Alta,Abierto,\
             soporte@modulotest01,\r\n"
        ));
        if i.is_multiple_of(500) {
            text.push_str("\r\n");
        }
    }
    assert!(text.len() > 10 * 128 * 1024, "several chunks");
    work.write("big.csv", &text);

    let out = work
        .bin()
        .args(["validate", "big.csv", "--mapping", "tickets.yaml", "-q"])
        .args(["--report", "big.results.csv", "--errors", "big.errors.csv"])
        .run();
    out.assert_code(2);
    let results = work.results("big");
    assert_eq!(results.len() as u64, rows);

    let preview = work.run([
        "preview",
        "big.csv",
        "--mapping",
        "tickets.yaml",
        "--rows",
        "0",
    ]);
    let one_pass: Vec<(u64, bool)> = String::from_utf8_lossy(&preview.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["row"].as_u64().unwrap(), v.get("payload").is_some())
        })
        .collect();
    let parallel: Vec<(u64, bool)> = results
        .iter()
        .map(|r| (r.row, r.status == "valid"))
        .collect();
    assert_eq!(parallel, one_pass);

    // Each record takes two lines, and a blank line follows every 500th.
    for (n, result) in results.iter().enumerate() {
        let i = n as u64 + 1;
        assert_eq!(result.key, format!("T-{i:05}"));
        assert_eq!(result.row, 2 * i + (i - 1) / 500, "{result:?}");
        assert_eq!(
            result.status == "invalid",
            i.is_multiple_of(97),
            "{result:?}"
        );
    }
}

/// The date scan reads the workbook's rows a second time before the real pass: it reads
/// the sheet and header row the first open chose, so a date column on a later sheet
/// under a title line is settled by its own values (the first sheet's would leave 03/04
/// ambiguous), for `preview` and for `validate` alike.
#[test]
fn the_date_scan_reads_the_sheet_and_header_row_the_run_reads() {
    let work = Work::new();
    let mapping = MAPPING.replace(
        "Teléfono: Teléfono",
        "Fecha:\n    column: Fecha\n    transforms: [{ date: { from: [\"%d/%m/%Y\", \"%m/%d/%Y\"] } }]",
    );
    work.write("m.yaml", &mapping);
    let mut workbook = Workbook::new();
    let first = workbook.add_worksheet().set_name("Resumen").unwrap();
    first.write_string(0, 0, "Descripción").unwrap();
    first.write_string(0, 1, "Fecha").unwrap();
    first.write_string(1, 0, "mes primero").unwrap();
    first.write_string(1, 1, "06/27/2024").unwrap();
    let cases = workbook.add_worksheet().set_name("Casos").unwrap();
    cases.write_string(0, 0, "Reporte PQRS").unwrap();
    for (row, (description, date)) in [
        ("Descripción", "Fecha"),
        ("uno", "03/04/2024"),
        ("dos", "26/06/2024"),
    ]
    .into_iter()
    .enumerate()
    {
        cases.write_string(row as u32 + 1, 0, description).unwrap();
        cases.write_string(row as u32 + 1, 1, date).unwrap();
    }
    workbook.save(work.path("t.xlsx")).unwrap();
    let args = ["--sheet", "Casos", "--header-row", "2"];

    let out = work
        .bin()
        .args(["preview", "t.xlsx", "--mapping", "m.yaml"])
        .args(args)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let dates: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(r["payload"]["form"].as_str().unwrap())
                .unwrap()["Fecha"]
                .clone()
        })
        .collect();
    assert_eq!(dates, ["2024-04-03", "2024-06-26"]);
    assert_eq!(rows[0]["row"], 3);

    let out = work
        .bin()
        .args(["validate", "t.xlsx", "--mapping", "m.yaml", "--json"])
        .args(args)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["valid"], 2, "{summary}");
}
