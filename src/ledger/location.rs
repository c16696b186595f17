//! Where a CRM target's ledger lives: one file per target (server + operation) in the
//! user's data directory, whatever the input file is called, so tonight's export with a
//! new name and an errors file fed back meet the ledger of every earlier run.

use std::path::{Path, PathBuf};

use etcetera::BaseStrategy;

use super::{Ledger, LedgerError, take_lock, upgrade};

/// The CRM an import writes to: what a ledger belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port`, or `simulator` for the built-in one (its port is new every run).
    server: String,
    operation: String,
}

impl Target {
    /// The target of a host and port. One server has one name here: case and a trailing
    /// dot are dropped, and every loopback name (`localhost`, `127.0.0.1`, `[::1]`) is
    /// `127.0.0.1`, so two spellings of one CRM never get two ledgers.
    pub fn server(host: &str, port: u16, operation: &str) -> Target {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let host = match host.trim_start_matches('[').trim_end_matches(']') {
            "localhost" | "::1" => "127.0.0.1".to_string(),
            _ => host,
        };
        Target {
            server: format!("{host}:{port}"),
            operation: operation.to_string(),
        }
    }

    /// The target of a CRM's API URL (its host and port; https's 443 when none is given).
    pub fn of_url(url: &reqwest::Url, operation: &str) -> Target {
        Target::server(
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or(443),
            operation,
        )
    }

    /// The in-process simulator of `--simulate`: one target whatever port it got.
    pub fn simulator(operation: &str) -> Target {
        Target {
            server: "simulator".into(),
            operation: operation.to_string(),
        }
    }

    pub fn is_simulator(&self) -> bool {
        self.server == "simulator"
    }

    /// How the ledger records its target: `host:port|operation`, as release 0.1.0 did.
    pub fn id(&self) -> String {
        format!("{}|{}", self.server, self.operation)
    }

    /// The ledger's file name, readable as its target: `crm0001.wolkvox.com-modulotest01.sqlite`
    /// (the https port left out), `127.0.0.1_8080-modulotest01.sqlite`. Characters a file
    /// name cannot hold become `_`, and then a short hash of the target keeps two targets
    /// that differ only there apart.
    pub fn file_name(&self) -> String {
        let server = self.server.strip_suffix(":443").unwrap_or(&self.server);
        let raw = format!("{server}-{}", self.operation);
        let safe: String = raw
            .chars()
            .map(|c| match c {
                ':' => '_',
                c if c.is_ascii_alphanumeric() || "._-@".contains(c) => c,
                _ => '_',
            })
            .collect();
        let changed = safe
            .chars()
            .zip(raw.chars())
            .any(|(a, b)| a != b && b != ':');
        if changed || safe.starts_with('.') {
            let hash = xxhash_rust::xxh3::xxh3_64(self.id().as_bytes());
            format!("{safe}-{:08x}.sqlite", hash as u32)
        } else {
            format!("{safe}.sqlite")
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (operation {})", self.server, self.operation)
    }
}

/// `$XDG_DATA_HOME/wolkvox-import`, else `~/.local/share/wolkvox-import`.
pub fn data_dir() -> Result<PathBuf, LedgerError> {
    let base = etcetera::choose_base_strategy().map_err(|_| LedgerError::NoDataDir)?;
    Ok(base.data_dir().join("wolkvox-import"))
}

/// The target's ledger in the data directory.
pub fn default_path(target: &Target) -> Result<PathBuf, LedgerError> {
    Ok(data_dir()?.join(target.file_name()))
}

/// The ledgers in the data directory, for `runs` without `--ledger`.
pub fn known_ledgers() -> Result<Vec<PathBuf>, LedgerError> {
    let dir = data_dir()?;
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(LedgerError::Io { path: dir, source }),
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sqlite"))
        .collect();
    found.sort();
    Ok(found)
}

/// How a run asks for its ledger.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub target: &'a Target,
    /// `--ledger` / `WOLKVOX_LEDGER`, else the target's file in the data directory.
    pub explicit: Option<&'a Path>,
    /// Where a ledger of release 0.1.0 would be for this input (beside it).
    pub legacy: Option<&'a Path>,
    /// `--expect-ledger`: a ledger that does not exist yet is an error, not a fresh start.
    pub expect_existing: bool,
}

/// A ledger opened for a run, and what the person running it must be told.
#[derive(Debug)]
pub struct Chosen {
    pub ledger: Ledger,
    /// No ledger existed for this target: this run starts its history from nothing.
    pub created: bool,
    /// Things said once on stderr and kept in the summary's warnings.
    pub notices: Vec<String>,
}

/// Open the ledger `wanted` names, taking the target's lock, merging a ledger an earlier
/// release kept beside the input, and saying so whenever the choice could surprise.
pub fn open(wanted: Wanted<'_>) -> Result<Chosen, LedgerError> {
    let Wanted {
        target,
        explicit,
        legacy,
        expect_existing,
    } = wanted;
    let default = default_path(target);
    let path = match (explicit, &default) {
        (Some(path), _) => path.to_path_buf(),
        (None, Ok(default)) => default.clone(),
        (None, Err(_)) => return Err(LedgerError::NoDataDir),
    };
    let mut notices = Vec::new();
    let mut locks = Vec::new();
    let elsewhere = default.as_ref().ok().filter(|d| !same_file(d, &path));
    if let Some(default) = elsewhere {
        // Runs into one target exclude each other whichever ledger file they were given:
        // the target's lock is its default ledger's, wherever this run's ledger is.
        if default
            .parent()
            .is_some_and(|p| std::fs::create_dir_all(p).is_ok())
        {
            match take_lock(default) {
                Ok(lock) => locks.push(lock),
                Err(e @ LedgerError::Locked { .. }) => return Err(e),
                Err(e) => tracing::debug!(%e, "No lock on the target's default ledger."),
            }
        }
        if is_ledger_file(default) {
            notices.push(format!(
                "{target} also has a ledger at {}: tickets recorded there are unknown to {} and \
                 would be created again; drop --ledger to use it",
                default.display(),
                path.display()
            ));
        }
    }
    // And across users and data directories of this machine: a lock file in the shared
    // temporary directory, open to every user (best effort: a read-only /tmp skips it).
    // Not for `--simulate`: each run has a simulator, a CRM, of its own.
    if !target.is_simulator()
        && let Some(lock) = machine_lock(target)?
    {
        locks.push(lock);
    }
    let existed = is_ledger_file(&path);
    let mut adopt = None;
    if explicit.is_none()
        && let Some(legacy) = legacy.filter(|l| is_ledger_file(l) && !same_file(l, &path))
    {
        match upgrade::target_of(legacy) {
            Ok(Some(found)) if found == target.id() => adopt = Some(legacy),
            Ok(found) => notices.push(format!(
                "{} (a ledger of an earlier version) records imports into {}, not {target}: not \
                 used",
                legacy.display(),
                found.as_deref().unwrap_or("no target")
            )),
            Err(e) => notices.push(format!("{e}: not used")),
        }
    }
    if !existed && adopt.is_none() && expect_existing {
        return Err(LedgerError::Missing {
            path,
            target: target.to_string(),
        });
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| LedgerError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let mut ledger = Ledger::open(&path, &target.id())?;
    ledger._locks.extend(locks);
    if let Some(legacy) = adopt {
        let absorbed = ledger.absorb(legacy)?;
        notices.push(format!(
            "moved the ledger {} of an earlier version ({} runs, {} tickets) into {}, the one \
             ledger of {target}; the old file is kept as {}",
            legacy.display(),
            absorbed.runs,
            absorbed.keys,
            path.display(),
            absorbed.kept_as.display()
        ));
    }
    Ok(Chosen {
        ledger,
        created: !existed && adopt.is_none(),
        notices,
    })
}

/// `$TMPDIR/wolkvox-import-locks/<target>.lock`, locked; `None` where it cannot be made.
fn machine_lock(target: &Target) -> Result<Option<std::fs::File>, LedgerError> {
    use std::io::Write;
    let dir = std::env::temp_dir().join("wolkvox-import-locks");
    if std::fs::create_dir_all(&dir).is_err() {
        return Ok(None);
    }
    set_mode(&dir, 0o1777);
    let path = dir.join(format!("{}.lock", target.file_name()));
    let writable = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path);
    let (mut file, can_write) = match writable {
        Ok(file) => {
            set_mode(&path, 0o666);
            (file, true)
        }
        // Made by another user: reading is enough to take the lock.
        Err(_) => match std::fs::File::open(&path) {
            Ok(file) => (file, false),
            Err(_) => return Ok(None),
        },
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty());
            return Err(LedgerError::TargetBusy {
                target: target.to_string(),
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(_)) => return Ok(None),
    }
    if can_write {
        let _ = file.set_len(0);
        let _ = write!(file, "pid {}", std::process::id());
    }
    Ok(Some(file))
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) {}

/// A file that holds something (SQLite creates an empty file on a failed open).
fn is_ledger_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => std::path::absolute(a).ok() == std::path::absolute(b).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_file_is_named_after_its_target() {
        assert_eq!(
            Target::server("CRM0001.wolkvox.com", 443, "modulotest01").file_name(),
            "crm0001.wolkvox.com-modulotest01.sqlite"
        );
        assert_eq!(
            Target::server("127.0.0.1", 8080, "modulotest01").file_name(),
            "127.0.0.1_8080-modulotest01.sqlite"
        );
        assert_eq!(
            Target::simulator("demo").file_name(),
            "simulator-demo.sqlite"
        );
        assert_eq!(
            Target::server("crm0001.wolkvox.com", 443, "modulotest01").id(),
            "crm0001.wolkvox.com:443|modulotest01"
        );
    }

    #[test]
    fn one_server_has_one_target_however_it_is_spelt() {
        let one = Target::server("127.0.0.1", 8080, "op");
        for spelling in ["localhost", "LOCALHOST", "[::1]", "::1", "localhost."] {
            assert_eq!(Target::server(spelling, 8080, "op"), one, "{spelling}");
        }
        assert_eq!(
            Target::server("crm0001.wolkvox.com.", 443, "op"),
            Target::server("CRM0001.wolkvox.com", 443, "op")
        );
        assert_ne!(Target::server("127.0.0.1", 8081, "op"), one);
        assert_ne!(Target::server("127.0.0.2", 8080, "op"), one);
    }

    #[test]
    fn targets_that_differ_only_in_unsafe_characters_get_different_files() {
        let a = Target::server("h", 443, "a/b").file_name();
        let b = Target::server("h", 443, "a b").file_name();
        assert!(
            a.starts_with("h-a_b-") && b.starts_with("h-a_b-"),
            "{a} {b}"
        );
        assert_ne!(a, b);
        assert!(!Target::server("h", 443, "../x").file_name().contains('/'));
    }
}
