//! Text encodings of CSV files: detection from the bytes, and a streaming transcoder.
//!
//! Helpdesk exports from Spanish-language Windows are often Windows-1252; Excel's
//! "Unicode text" is UTF-16. Everything is turned into UTF-8 before the CSV parser,
//! and bytes that are invalid in the chosen encoding are an error, never U+FFFD.

use std::io::{self, Read};

/// An encoding chosen by the user (`--encoding`) or detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding(&'static encoding_rs::Encoding);

impl Encoding {
    pub const UTF_8: Encoding = Encoding(encoding_rs::UTF_8);

    /// Parse a WHATWG label: `utf-8`, `windows-1252`, `latin1`, `cp1252`, `utf-16le`, ….
    pub fn for_label(label: &str) -> Option<Encoding> {
        let label = label.trim();
        let normalized = match label.to_ascii_lowercase().as_str() {
            "cp1252" | "win1252" | "ansi" => "windows-1252".to_string(),
            "utf8" => "utf-8".to_string(),
            other => other.to_string(),
        };
        encoding_rs::Encoding::for_label(normalized.as_bytes()).map(Encoding)
    }

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    pub fn is_utf8(self) -> bool {
        self.0 == encoding_rs::UTF_8
    }

    fn inner(self) -> &'static encoding_rs::Encoding {
        self.0
    }
}

/// The decision and the reason for it, shown in the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub encoding: Encoding,
    pub bom_len: usize,
    pub reason: String,
}

/// Decide the encoding from the first bytes of the file.
pub fn detect(sample: &[u8], complete: bool) -> Detected {
    if sample.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Detected {
            encoding: Encoding::UTF_8,
            bom_len: 3,
            reason: "UTF-8 byte-order mark".into(),
        };
    }
    if sample.starts_with(&[0xFF, 0xFE]) {
        return Detected {
            encoding: Encoding(encoding_rs::UTF_16LE),
            bom_len: 2,
            reason: "UTF-16 little-endian byte-order mark".into(),
        };
    }
    if sample.starts_with(&[0xFE, 0xFF]) {
        return Detected {
            encoding: Encoding(encoding_rs::UTF_16BE),
            bom_len: 2,
            reason: "UTF-16 big-endian byte-order mark".into(),
        };
    }
    match std::str::from_utf8(sample) {
        Ok(_) => Detected {
            encoding: Encoding::UTF_8,
            bom_len: 0,
            reason: "the bytes are valid UTF-8".into(),
        },
        // A multi-byte character cut by the end of the sample is still UTF-8.
        Err(e) if e.error_len().is_none() && !complete => Detected {
            encoding: Encoding::UTF_8,
            bom_len: 0,
            reason: "the bytes are valid UTF-8".into(),
        },
        Err(e) => {
            let mut detector =
                chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
            detector.feed(sample, complete);
            let guess = detector.guess(Some(b"co"), chardetng::Utf8Detection::Allow);
            // Latin-script exports that are not UTF-8 are Windows-1252 in practice; only
            // trust the detector when it is sure of something else (e.g. UTF-16 without BOM).
            let encoding = if guess == encoding_rs::UTF_8 || guess.is_single_byte() {
                encoding_rs::WINDOWS_1252
            } else {
                guess
            };
            Detected {
                encoding: Encoding(encoding),
                bom_len: 0,
                reason: format!(
                    "not UTF-8 (byte 0x{:02X} at offset {}); looks like {}",
                    sample.get(e.valid_up_to()).copied().unwrap_or(0),
                    e.valid_up_to(),
                    encoding.name()
                ),
            }
        }
    }
}

/// A reader that turns bytes in `encoding` into UTF-8, failing on malformed input.
pub struct Transcoder<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    input: Vec<u8>,
    in_start: usize,
    in_end: usize,
    output: Vec<u8>,
    out_start: usize,
    out_end: usize,
    consumed: u64,
    eof: bool,
    done: bool,
}

impl<R: Read> Transcoder<R> {
    pub fn new(inner: R, encoding: Encoding) -> Self {
        Transcoder {
            inner,
            decoder: encoding.inner().new_decoder_with_bom_removal(),
            input: vec![0; 64 * 1024],
            in_start: 0,
            in_end: 0,
            output: vec![0; 3 * 64 * 1024 + 16],
            out_start: 0,
            out_end: 0,
            consumed: 0,
            eof: false,
            done: false,
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        while self.out_start == self.out_end && !self.done {
            if self.in_start == self.in_end && !self.eof {
                let n = self.inner.read(&mut self.input)?;
                self.in_start = 0;
                self.in_end = n;
                self.eof = n == 0;
            }
            let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
                &self.input[self.in_start..self.in_end],
                &mut self.output,
                self.eof,
            );
            self.in_start += read;
            self.consumed += read as u64;
            self.out_start = 0;
            self.out_end = written;
            match result {
                encoding_rs::DecoderResult::InputEmpty => {
                    if self.eof {
                        self.done = true;
                    }
                }
                encoding_rs::DecoderResult::OutputFull => {}
                encoding_rs::DecoderResult::Malformed(bad, _) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "bytes invalid in the file's encoding at byte offset {}; \
                             pass --encoding with the right one",
                            self.consumed.saturating_sub(u64::from(bad))
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Transcoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.fill()?;
        let n = (self.out_end - self.out_start).min(buf.len());
        buf[..n].copy_from_slice(&self.output[self.out_start..self.out_start + n]);
        self.out_start += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcode(bytes: &[u8], encoding: Encoding) -> io::Result<String> {
        let mut out = String::new();
        Transcoder::new(bytes, encoding).read_to_string(&mut out)?;
        Ok(out)
    }

    #[test]
    fn cp1252_ellipsis_is_an_ellipsis_not_a_control_character() {
        let enc = Encoding::for_label("cp1252").unwrap();
        assert_eq!(
            transcode(b"Peticion\x85 a\xf1o", enc).unwrap(),
            "Peticion… año"
        );
    }

    #[test]
    fn non_utf8_bytes_are_detected_as_windows_1252() {
        let d = detect(b"Descripci\xf3n;Tel\xe9fono\n", true);
        assert_eq!(d.encoding.name(), "windows-1252");
    }

    #[test]
    fn boms_decide_the_encoding() {
        assert_eq!(detect(b"\xEF\xBB\xBFa,b", true).bom_len, 3);
        assert_eq!(detect(b"\xFF\xFEa\0", true).encoding.name(), "UTF-16LE");
        assert_eq!(detect(b"\xFE\xFF\0a", true).encoding.name(), "UTF-16BE");
    }

    #[test]
    fn utf16_is_transcoded_and_its_bom_removed() {
        let bytes: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("año,ñ".encode_utf16().flat_map(|u| u.to_le_bytes()))
            .collect();
        let enc = detect(&bytes, true).encoding;
        assert_eq!(transcode(&bytes, enc).unwrap(), "año,ñ");
    }

    #[test]
    fn a_cut_multibyte_character_at_the_sample_end_is_still_utf8() {
        let d = detect("añ".as_bytes().split_at(2).0, false);
        assert!(d.encoding.is_utf8());
    }
}
