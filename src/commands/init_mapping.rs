//! `init-mapping`: a starter YAML from the file's headers and a sample of its rows
//! (`mapping::starter` writes it).

use std::io::Write as _;

use crate::cli::InitMappingArgs;
use crate::exit::Verdict;
use crate::mapping::starter::starter;
use crate::source;

/// Rows sampled to guess each column's kind.
const SAMPLE_ROWS: usize = 500;

pub fn run(args: &InitMappingArgs) -> anyhow::Result<Verdict> {
    let input = &args.input;
    let options = super::input::source_options(input)?;
    let source = source::open(&input.input, &options)?;
    let headers = source.headers.clone();
    let columns: Vec<Vec<String>> = {
        let mut columns = vec![Vec::new(); headers.len()];
        for row in source.rows.take(SAMPLE_ROWS).flatten() {
            for (i, cell) in row.cells.iter().enumerate().take(headers.len()) {
                columns[i].push(cell.to_string());
            }
        }
        columns
    };
    let yaml = starter(&input.input.display().to_string(), &headers, &columns);
    std::io::stdout().write_all(yaml.as_bytes())?;
    Ok(Verdict::Clean)
}
