//! Fingerprints the ledger keeps instead of data: which input file and which mapping a
//! run read (so `runs` shows a changed export), as SHA-256 hex.

use std::path::Path;

use sha2::{Digest, Sha256};

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a file's bytes, read in a stream.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

/// `file_sha256` on a thread of its own, for `runs` to show which file a run read: a
/// 500 MB export not yet in the page cache took seconds to hash, and the run's first
/// request (or look-up) need not wait for it. The run records it when it ends.
/// `Ledger::record_input_hash` waits for it and records it.
pub fn file_sha256_beside(path: &Path) -> std::thread::JoinHandle<Option<String>> {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        crate::background::lower_priority(crate::background::HELPER_NICE);
        file_sha256(&path).ok()
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_and_its_bytes_have_one_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, "abc").unwrap();
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_hex(b"abc"), expected);
        assert_eq!(file_sha256(&path).unwrap(), expected);
    }
}
