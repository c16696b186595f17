//! The static binary (scripts/build-static) runs from an empty root, as in a `scratch`
//! container: no libc, no NSS modules, no CA store, no /etc, no HOME.
//!
//! It makes a release build (minutes), so `cargo test` lists it as ignored and `.ci/run`
//! runs it on its own: `cargo test --locked --test static_binary -- --ignored --nocapture`.
//! Without root, or where chroot is refused (a container without CAP_SYS_CHROOT), it says
//! why and passes without checking anything.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

/// The user and group the Dockerfile runs as: the run inside the root is not root's.
const USER: u32 = 65532;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A program found on PATH or in the sbin directories (chroot lives in /usr/sbin, which a
/// non-login root shell may not have on its PATH).
fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Why this machine cannot run the test, if it cannot.
fn cannot_chroot() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    // "Uid:\treal\teffective\tsaved\tfs": chroot needs the effective one to be root.
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .map(str::to_string);
    if euid.as_deref() != Some("0") {
        return Some(format!(
            "chroot needs root; this test runs as uid {}",
            euid.unwrap_or_else(|| "unknown".into())
        ));
    }
    let Some(chroot) = program("chroot") else {
        return Some("no chroot program (coreutils) on this machine".into());
    };
    match Command::new(&chroot).args(["/", "true"]).output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "chroot is refused here ({}): a container without CAP_SYS_CHROOT?",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run {}: {e}", chroot.display())),
    }
}

/// `ARGS` run in `root` as `USER`, with only HOME in the environment (there is no home
/// in the root: HOME=/tmp gives the ledger's default location one that is writable).
fn in_root(root: &Path, args: &[&str]) -> Output {
    let chroot = program("chroot").unwrap();
    Command::new(chroot)
        .arg(format!("--userspec={USER}:{USER}"))
        .arg(root)
        .args(args)
        .env_clear()
        .env("HOME", "/tmp")
        .output()
        .unwrap()
}

fn copy_into(root: &Path, from: &Path, to: &str) {
    let dest = root.join(to);
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(from, &dest).unwrap();
}

#[test]
#[ignore = "makes a release build and needs root; .ci/run runs it with --ignored"]
fn the_static_binary_runs_from_an_empty_root() {
    if let Some(why) = cannot_chroot() {
        eprintln!("SKIPPED the_static_binary_runs_from_an_empty_root: {why}");
        return;
    }

    let started = Instant::now();
    let build = Command::new(repo("scripts/build-static"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(build.status.success(), "scripts/build-static failed");
    let stdout = String::from_utf8(build.stdout).unwrap();
    let bin = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    assert!(
        bin.is_file(),
        "the last line of stdout is not a file: {stdout:?}"
    );
    eprintln!(
        "scripts/build-static: {} in {:.1} s",
        bin.display(),
        started.elapsed().as_secs_f64()
    );

    // The root holds the binary, the two sample files and an empty /tmp: nothing else.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    copy_into(root, &bin, "wolkvox-import");
    copy_into(root, &repo("samples/tickets.csv"), "samples/tickets.csv");
    copy_into(
        root,
        &repo("mappings/tickets.yaml"),
        "mappings/tickets.yaml",
    );
    std::fs::create_dir(root.join("tmp")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        // A temporary directory is made 0700: the unprivileged user could not enter it.
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let sticky = std::fs::Permissions::from_mode(0o1777);
        std::fs::set_permissions(root.join("tmp"), sticky).unwrap();
        // The results are written beside the input, as the unprivileged user.
        std::os::unix::fs::chown(root.join("samples"), Some(USER), Some(USER)).unwrap();
    }

    let ran = Instant::now();
    let version = in_root(root, &["/wolkvox-import", "--version"]);
    assert!(
        version.status.success(),
        "--version in the empty root: {version:?}"
    );
    let said = String::from_utf8_lossy(&version.stdout);
    assert!(said.contains(env!("CARGO_PKG_VERSION")), "{said}");

    let import = in_root(
        root,
        &[
            "/wolkvox-import",
            "import",
            "samples/tickets.csv",
            "--mapping",
            "mappings/tickets.yaml",
            "--simulate",
        ],
    );
    let stderr = String::from_utf8_lossy(&import.stderr);
    // 2: the run finished and the sample's 8 deliberately bad rows are invalid.
    assert_eq!(import.status.code(), Some(2), "{stderr}");

    let results = root.join("samples/tickets.results.csv");
    assert!(results.is_file(), "no results file; stderr: {stderr}");
    let mut reader = csv::Reader::from_path(&results).unwrap();
    let status = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "status")
        .unwrap();
    let mut created = 0;
    let mut invalid = 0;
    for record in reader.records() {
        match &record.unwrap()[status] {
            "created" => created += 1,
            "invalid" => invalid += 1,
            other => panic!("a row is {other}; stderr: {stderr}"),
        }
    }
    assert_eq!((created, invalid), (232, 8), "{stderr}");
    assert!(root.join("samples/tickets.errors.csv").is_file());

    // `simulate --listen localhost:PORT`: the name is read without the C library's
    // resolver, which has no NSS modules here.
    let mut simulator = Command::new(program("chroot").unwrap())
        .arg(format!("--userspec={USER}:{USER}"))
        .arg(root)
        .args([
            "/wolkvox-import",
            "simulate",
            "--listen",
            "localhost:0",
            "-q",
        ])
        .env_clear()
        .env("HOME", "/tmp")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    {
        use std::io::BufRead;
        // Ends at the first line, or at EOF if the simulator exits.
        std::io::BufReader::new(simulator.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
    }
    let _ = simulator.kill();
    let _ = simulator.wait();
    assert!(
        line.trim().starts_with("http://127.0.0.1:"),
        "simulate --listen localhost:0 in the empty root said {line:?}"
    );
    eprintln!(
        "the two runs in the empty root: {:.2} s",
        ran.elapsed().as_secs_f64()
    );
}
