//! Snapshots of what people read: mapping errors, the summary, `--help`.

use crate::support::*;

fn stderr_of(work: &Work, args: &[&str]) -> String {
    let out = work.bin().args(args).run();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn mapping_mistakes_are_all_listed_with_how_to_fix_them() {
    let work = Work::with_sample();
    work.write(
        "bad.yaml",
        r#"
operation: modulotest01
fields:
  case-type: Tipo de caso
  responsible: asesor
  contact: { column: Correo, value: "x@y.co" }
  description: { template: "{Asunto} — {Descripcion} {Detalle}" }
  status: Estado
  priority: Prioridad
  categoria: Tipo
form:
  Teléfono: Telefono
"#,
    );
    let stderr = stderr_of(&work, &["validate", "tickets.csv", "--mapping", "bad.yaml"]);
    insta::assert_snapshot!(stderr);
}

#[test]
fn the_validate_summary_tells_what_to_do_next() {
    let work = Work::with_sample();
    let stderr = stderr_of(
        &work,
        &[
            "validate",
            "tickets.csv",
            "--mapping",
            "tickets.yaml",
            "--report",
            "r.csv",
            "--errors",
            "e.csv",
        ],
    );
    // The timing varies from run to run; everything else is fixed.
    let timing = regex::Regex::new(r"in \d+\.\d s \(\d+ rows/s\)").unwrap();
    insta::assert_snapshot!(timing.replace(&stderr, "in [time]"));
}

#[test]
fn import_help_is_stable() {
    let out = bin().args(["import", "--help"]).env("COLUMNS", "100").run();
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}
