//! Which sheet of a workbook to read, for both workbook readers (calamine's whole-sheet
//! reader in `excel`, the streamed XLSX reader in `xlsx_stream`).

use std::path::Path;

use calamine::{SheetType, SheetVisible};

use super::SourceError;

/// The sheet to read: the one `--sheet` names (by name or 1-based position), else the
/// first visible worksheet.
pub fn choose_sheet(
    path: &Path,
    sheets: &[calamine::Sheet],
    wanted: Option<&str>,
) -> Result<String, SourceError> {
    let names: Vec<String> = sheets.iter().map(|s| s.name.clone()).collect();
    match wanted {
        Some(wanted) => pick_sheet(&names, wanted).ok_or_else(|| SourceError::NoSuchSheet {
            path: path.to_path_buf(),
            wanted: wanted.to_string(),
            available: names,
        }),
        None => sheets
            .iter()
            .find(|s| s.visible == SheetVisible::Visible && s.typ == SheetType::WorkSheet)
            .or_else(|| sheets.first())
            .map(|s| s.name.clone())
            .ok_or_else(|| SourceError::Empty {
                path: path.to_path_buf(),
            }),
    }
}

fn pick_sheet(names: &[String], wanted: &str) -> Option<String> {
    if let Some(name) = names.iter().find(|n| n.as_str() == wanted) {
        return Some(name.clone());
    }
    if let Some(name) = names
        .iter()
        .find(|n| n.trim().to_lowercase() == wanted.trim().to_lowercase())
    {
        return Some(name.clone());
    }
    // A number is a 1-based position, as a user counts the tabs.
    let index: usize = wanted.trim().parse().ok()?;
    names.get(index.checked_sub(1)?).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sheet_is_found_by_its_name_then_loosely_then_by_its_position() {
        let names: Vec<String> = ["Casos", " resumen ", "3"].map(String::from).into();
        assert_eq!(pick_sheet(&names, "Casos").as_deref(), Some("Casos"));
        assert_eq!(pick_sheet(&names, "RESUMEN").as_deref(), Some(" resumen "));
        // A sheet named "3" is taken by its name before position 3 is.
        assert_eq!(pick_sheet(&names, "3").as_deref(), Some("3"));
        assert_eq!(pick_sheet(&names, "2").as_deref(), Some(" resumen "));
        assert_eq!(pick_sheet(&names, "0"), None);
        assert_eq!(pick_sheet(&names, "4"), None);
        assert_eq!(pick_sheet(&names, "Otra"), None);
    }
}
