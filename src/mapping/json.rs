//! JSON string literals written straight into a payload's text (the `form` values):
//! escaped eight bytes at a time while nothing needs it.

/// Bytes that need an escape in a JSON string: controls, `"` and `\`.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Where the first byte that needs an escape is: eight bytes at a time while none does
/// (most values have none), then byte by byte.
fn first_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Non-zero when some byte of `word` is below `n` (n ≤ 128) or equal to `byte`.
    let below = |word: u64, n: u64| word.wrapping_sub(ONES * n) & !word & HIGH;
    let equal = |word: u64, byte: u8| below(word ^ (ONES * u64::from(byte)), 1);
    let mut chunks = bytes.chunks_exact(8);
    let mut skipped = 0;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        if below(word, 0x20) | equal(word, b'"') | equal(word, b'\\') != 0 {
            break;
        }
        skipped += 8;
    }
    bytes[skipped..]
        .iter()
        .position(|b| NEEDS_ESCAPE[usize::from(*b)])
        .map(|i| i + skipped)
}

/// Append `text` as a JSON string literal (RFC 8259 escaping).
pub(super) fn json_string(text: &str, out: &mut String) {
    out.reserve(text.len() + 2);
    out.push('"');
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(offset) = first_escape(&bytes[start..]) {
        let i = start + offset;
        out.push_str(&text[start..i]);
        match bytes[i] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            other => out.push_str(&format!("\\u{other:04x}")),
        }
        start = i + 1;
    }
    out.push_str(&text[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_strings_round_trip_through_serde_json() {
        for text in [
            "plain",
            "comillas \"dobles\" y \\ barra",
            "línea\nnueva\ttab\r",
            "\u{1}\u{1f}ñ—…",
            "",
            "ocho byt\"es y más, \\ luego\u{7f}\u{0}",
            "exactly8",
            "áéíóúñÁÉÍÓÚÑ¿¡ sin nada que escapar en bastantes bytes",
        ] {
            let mut out = String::new();
            super::json_string(text, &mut out);
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), text);
        }
    }
}
