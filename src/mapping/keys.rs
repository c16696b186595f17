//! Ticket keys: the default key (a hash of the payload) and duplicate detection in one file.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// A stable key from the payload's content, for mappings that name no key columns.
pub fn payload_hash<'n, 'v>(
    fields: impl Iterator<Item = (&'n str, &'v str)>,
    form: &str,
) -> String {
    let mut hasher = Sha256::new();
    for (name, value) in fields {
        hasher.update(name.as_bytes());
        hasher.update([0x1f]);
        hasher.update(value.as_bytes());
        hasher.update([0x1e]);
    }
    hasher.update(form.as_bytes());
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(34);
    hex.push_str("h:");
    for byte in &digest[..16] {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Remembers each key's first row in 12 bytes a key (a 64-bit hash and the row), so a
/// million rows take some 25 MB. Two different keys share a hash with odds of about 3 in
/// 100 million per million-row file; the cost of that is one row wrongly reported as a
/// duplicate (and so not sent), never a lost or doubled ticket.
#[derive(Debug, Default)]
pub struct DuplicateKeys {
    seen: HashMap<u64, u32, std::hash::BuildHasherDefault<AlreadyHashed>>,
}

/// The table's keys are xxh3 hashes already: hashing them again (SipHash) was a tenth
/// of the time spent checking duplicates.
#[derive(Debug, Default)]
struct AlreadyHashed(u64);

impl std::hash::Hasher for AlreadyHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl DuplicateKeys {
    /// The row that first carried `key`, if this is not the first time.
    pub fn first_row(&mut self, key: &str, row: u64) -> Option<u64> {
        let id = xxhash_rust::xxh3::xxh3_64(key.as_bytes());
        match self.seen.entry(id) {
            std::collections::hash_map::Entry::Occupied(first) => Some(u64::from(*first.get())),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(u32::try_from(row).unwrap_or(u32::MAX));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_name_the_first_row() {
        let mut keys = DuplicateKeys::default();
        assert_eq!(keys.first_row("T-1", 2), None);
        assert_eq!(keys.first_row("T-2", 3), None);
        assert_eq!(keys.first_row("T-1", 9), Some(2));
    }

    #[test]
    fn payload_hash_depends_on_every_field() {
        let a = payload_hash([("contact", "a@x.co")].into_iter(), "{}");
        let b = payload_hash([("contact", "b@x.co")].into_iter(), "{}");
        let c = payload_hash([("contact", "a@x.co")].into_iter(), "{\"x\":\"1\"}");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, payload_hash([("contact", "a@x.co")].into_iter(), "{}"));
    }
}
