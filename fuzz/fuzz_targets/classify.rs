//! The answer classifier: any status and body give a verdict without a panic, and only a
//! 2xx answer is ever taken as a created case.
//!
//! Input: the status (two bytes, little-endian), a byte for the Retry-After header (0:
//! none, else that many seconds), then the body (read as reqwest's `text()` reads it:
//! invalid UTF-8 replaced).
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use wolkvox_import::sender::{Attempt, Verdict, classify};

fuzz_target!(|data: &[u8]| {
    let [low, high, retry, body @ ..] = data else {
        return;
    };
    let status = u16::from_le_bytes([*low, *high]);
    let retry_after = (*retry != 0).then(|| Duration::from_secs(u64::from(*retry)));
    let attempt = Attempt::Answer {
        status,
        body: String::from_utf8_lossy(body).into_owned(),
        retry_after,
    };
    let verdict = classify(&attempt);
    if matches!(verdict, Verdict::Created { .. }) {
        assert!(
            (200..300).contains(&status),
            "HTTP {status} taken as created"
        );
    }
});
