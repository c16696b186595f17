//! Folding text for forgiving matches: case, accents and spaces.

/// Lower-case, strip Latin accents, trim and collapse inner white space.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for ch in text.trim().chars() {
        if ch.is_whitespace() {
            pending_space = true;
            continue;
        }
        if pending_space && !out.is_empty() {
            out.push(' ');
        }
        pending_space = false;
        for lower in ch.to_lowercase() {
            out.push(strip_accent(lower));
        }
    }
    out
}

/// Which of `names` `typed` most likely meant, compared folded: the one nearest to it, if
/// near enough (for "did you mean").
pub fn nearest<S: AsRef<str>>(typed: &str, names: &[S]) -> Option<usize> {
    let typed = fold(typed);
    names
        .iter()
        .enumerate()
        .map(|(i, name)| (strsim::jaro_winkler(&typed, &fold(name.as_ref())), i))
        .filter(|(score, _)| *score > 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, i)| i)
}

fn strip_accent(ch: char) -> char {
    match ch {
        'á' | 'à' | 'ä' | 'â' | 'ã' | 'å' => 'a',
        'é' | 'è' | 'ë' | 'ê' => 'e',
        'í' | 'ì' | 'ï' | 'î' => 'i',
        'ó' | 'ò' | 'ö' | 'ô' | 'õ' => 'o',
        'ú' | 'ù' | 'ü' | 'û' => 'u',
        'ñ' => 'n',
        'ç' => 'c',
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::fold;

    #[test]
    fn folds_case_accents_and_spaces() {
        assert_eq!(fold("  Petición   Urgente "), "peticion urgente");
        assert_eq!(fold("DESCRIPCIÓN"), "descripcion");
        assert_eq!(fold("Año"), "ano");
    }
}
