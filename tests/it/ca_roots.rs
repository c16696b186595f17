//! The HTTP client works on a machine with no CA store (a `scratch` container): the
//! Mozilla roots compiled into the binary stand in for the system's.

use crate::support::*;

#[test]
fn an_import_runs_where_the_system_has_no_ca_certificates() {
    let work = Work::with_sample();
    // SSL_CERT_FILE alone names the system store for rustls; a file that does not exist
    // is a store with nothing in it, as in an empty container. Without the bundled roots
    // the client refuses to build ("No CA certificates were loaded from the system") and
    // nothing is sent, even to the plain-http simulator.
    let out = bin()
        .current_dir(work.dir.path())
        .env("SSL_CERT_FILE", work.path("no-such-ca-file.pem"))
        .env_remove("SSL_CERT_DIR")
        .args([
            "import",
            "tickets.csv",
            "--mapping",
            "tickets.yaml",
            "--simulate",
            "--rate",
            "0",
            "--json",
        ])
        .run();
    out.assert_code(2);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["created"], 232);
}
