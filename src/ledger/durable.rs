//! Durable before it leaves: a row's `sending` mark must be on disk (not only in the OS
//! cache) before its request's first byte goes out, or a power cut could lose the mark
//! of a request the CRM acted on, and the re-run would send it again.
//!
//! Commits are cheap (WAL, `synchronous = NORMAL`: SQLite writes, the OS caches); the
//! fsync is the cost (0.3 to 3 ms on this project's machines, and CPU time too on a
//! virtual machine). So the ledger's writer thread (`writer`) commits a batch of marks and
//! then has the WAL file synced: one `fdatasync` covers every commit made before it
//! started, however many rows that is (group commit), while the rows of the previous
//! batch are already on their way. SQLite itself syncs the WAL before a checkpoint copies
//! it into the database file, and that file after.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Ledger, LedgerError};

/// A handle that syncs the ledger's WAL to disk. `fdatasync` on any descriptor of a file
/// flushes that file's cached writes, so this one needs no access to SQLite's.
#[derive(Debug, Clone)]
pub struct Syncer {
    wal: Arc<File>,
    path: PathBuf,
}

impl Syncer {
    /// Put every write the ledger made before this call on disk. Blocking: run it on a
    /// thread of its own.
    pub fn sync(&self) -> Result<(), LedgerError> {
        self.wal.sync_data().map_err(|source| LedgerError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

impl Ledger {
    /// A syncer for this ledger's WAL, whose directory entry is synced here once, so a
    /// power cut cannot lose the file itself.
    pub fn syncer(&self) -> Result<Syncer, LedgerError> {
        // A write, so that SQLite has made the WAL file whatever this run did so far.
        self.conn
            .execute(
                "INSERT INTO meta(name, value) VALUES ('last_opened', ?1)
                 ON CONFLICT(name) DO UPDATE SET value = ?1",
                [super::now()],
            )
            .map_err(|e| self.sql(e))?;
        let mut wal = self.path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LedgerError::Io { path, source }
        };
        let file = File::open(&wal).map_err(io(&wal))?;
        file.sync_data().map_err(io(&wal))?;
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
        Ok(Syncer {
            wal: Arc::new(file),
            path: wal,
        })
    }
}
