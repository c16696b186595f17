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

/// Remembers each key's first row as a 64-bit hash and the row, so a million rows take
/// some 25 MB. Two different keys share a hash with odds of about 3 in 100 million per
/// million-row file; the cost of that is one row wrongly reported as a duplicate (and so
/// not sent), never a lost or doubled ticket.
///
/// The table is split in 256 shards that grow one at a time: one table of a million keys
/// doubles all at once, holding the old and the new table together (some 50 MB for a
/// moment, more than the rest of a million-row run); a shard's growth costs a 256th.
#[derive(Debug)]
pub struct DuplicateKeys {
    shards: Vec<HashMap<u64, u32, std::hash::BuildHasherDefault<AlreadyHashed>>>,
}

impl Default for DuplicateKeys {
    fn default() -> Self {
        DuplicateKeys {
            shards: (0..SHARDS).map(|_| HashMap::default()).collect(),
        }
    }
}

const SHARDS: usize = 256;

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
    /// Make room for about `keys` keys at once, so the tables need not grow (and leave
    /// their smaller selves behind as fragmented free memory) as they fill.
    pub fn expect(&mut self, keys: usize) {
        let per_shard = keys / SHARDS + keys / SHARDS / 8 + 1;
        for shard in &mut self.shards {
            shard.reserve(per_shard.saturating_sub(shard.len()));
        }
    }

    /// The row that first carried `key`, if this is not the first time.
    pub fn first_row(&mut self, key: &str, row: u64) -> Option<u64> {
        let id = xxhash_rust::xxh3::xxh3_64(key.as_bytes());
        // Bits the table does not use itself (it takes the lowest and the top seven).
        let shard = (id >> 40) as usize % SHARDS;
        let seen = self.shards.get_mut(shard)?;
        match seen.entry(id) {
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
