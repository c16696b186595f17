//! Phone numbers as `preview` shows them: the first number of a cell in E.164, extensions
//! apart, and a cell with no number refused or kept as the mapping says.

use crate::support::*;

const MAPPING: &str = r#"
operation: op
key: [Ticket]
fields:
  case-type: { value: Request }
  responsible: { value: "a@op" }
  owner: { value: "a@op" }
  contact: { value: "c@ejemplo.co" }
  description: { value: "x" }
  status: { value: Abierto }
  priority: { value: Alta }
form:
  Teléfono:
    column: Teléfono
    transforms: [{ phone: PHONE }]
"#;

const CSV: &str = "Ticket,Teléfono
1,300-123-4567 ext 12
2,301 555 0101 / 310 222 3333
3,0300123456
4,0057 301 555 0101
5,abc
6,
";

fn work(phone: &str) -> Work {
    let work = Work::new();
    work.write("tickets.yaml", &MAPPING.replace("PHONE", phone));
    work.write("t.csv", CSV);
    work
}

/// The `Teléfono` the CRM would get for each row (`None` when the form leaves it out),
/// or "invalid".
fn phones(payloads: &[serde_json::Value]) -> Vec<Option<String>> {
    payloads
        .iter()
        .map(|payload| match payload["form"].as_str() {
            Some(form) => {
                let form: serde_json::Value = serde_json::from_str(form).unwrap();
                form["Teléfono"].as_str().map(str::to_string)
            }
            None => Some(payload.as_str().unwrap().to_string()),
        })
        .collect()
}

/// `preview` of every row: its exit code and the JSON lines.
fn preview_lines(work: &Work) -> (i32, Vec<serde_json::Value>) {
    let out = bin()
        .current_dir(work.dir.path())
        .args([
            "preview",
            "t.csv",
            "--mapping",
            "tickets.yaml",
            "--rows",
            "0",
        ])
        .run();
    let lines = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out.code(), lines)
}

#[test]
fn phones_are_read_with_the_regions_numbering_plan() {
    let work = work(r#"{ country_code: "+57" }"#);
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        phones(&payloads(&work, "t.csv")),
        [
            some("+573001234567"),
            some("+573015550101"),
            some("invalid"),
            some("+573015550101"),
            some("invalid"),
            None,
        ]
    );
    let (exit, lines) = preview_lines(&work);
    assert_eq!(exit, 2);
    assert_eq!(
        lines[2]["invalid"],
        "column \"Teléfono\": not a phone number for CO: \"0300123456\""
    );
    assert_eq!(
        lines[4]["invalid"],
        "column \"Teléfono\": not a phone number for CO: \"abc\""
    );
}

#[test]
fn extensions_and_values_that_are_no_number_can_be_kept() {
    let work = work(r#"{ region: CO, extension: keep, on_invalid: keep }"#);
    let (exit, lines) = preview_lines(&work);
    assert_eq!(exit, 0, "{lines:?}");
    let payloads: Vec<serde_json::Value> = lines.iter().map(|l| l["payload"].clone()).collect();
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        phones(&payloads),
        [
            some("+573001234567;ext=12"),
            some("+573015550101"),
            some("0300123456"),
            some("+573015550101"),
            some("abc"),
            None,
        ]
    );
    assert_eq!(
        lines[4]["warnings"],
        serde_json::json!([
            "column \"Teléfono\": not a phone number for CO: \"abc\"; kept as typed"
        ])
    );
    assert!(lines[0].get("warnings").is_none());
}

#[test]
fn a_number_kept_as_typed_is_said_in_the_import_results() {
    let sim = Sim::strict();
    let work = work(r#"{ region: CO, extension: keep, on_invalid: keep }"#);
    let out = work.import("t.csv", &sim, "run").run();
    out.assert_code(0);
    let results = work.results("run");
    assert_eq!(count(&results, "created"), 6);
    let abc = results.iter().find(|r| r.key == "5").unwrap();
    assert_eq!(
        abc.message,
        "column \"Teléfono\": not a phone number for CO: \"abc\"; kept as typed"
    );
    let fine = results.iter().find(|r| r.key == "2").unwrap();
    assert_eq!(fine.message, "");
}
