//! The rows of a source put through a function on several threads, handed out in file
//! order (`Rows::map_parallel`).
//!
//! One thread reads: a CSV file in chunks of whole lines, any other source in batches of
//! rows. Workers take the pieces in order; a chunk is parsed by its worker, which then
//! waits for its turn (the chunk before it settled) to learn whether its own parse stands
//! or the record the chunk before ended inside goes on through it (see `chunks.rs`). Only
//! then are the rows given to the function: every row that comes out went through it
//! once, and no row that does not come out went through it at all. The receiving side
//! puts the mapped pieces back in order. Bounded channels keep memory flat.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::task::Poll;
use std::thread::JoinHandle;

use super::chunks::{Chunk, Chunks, Reassembler};
use super::records::read_error;
use super::{RowError, RowResult, Rows};

/// Rows per piece for sources read row by row (CSV goes in chunks of whole lines): large
/// enough that the channels cost nothing per row, small enough that memory stays flat.
const BATCH: usize = 256;

/// Pieces waiting for a worker, and mapped pieces waiting for the receiver.
const QUEUED: usize = 4;

/// A thread that read or mapped rows panicked (a bug): the rows it held are lost.
#[derive(Debug, thiserror::Error)]
#[error("a reader thread panicked; the results file lists the rows read so far")]
pub struct ReaderPanicked;

/// Work for the workers, numbered in file order.
enum Work {
    /// Rows read one by one (a workbook; the first row of a CSV file without a header).
    Rows(Vec<RowResult>),
    /// Whole lines of a CSV file, parsed by the worker itself.
    Chunk(Chunk),
    /// The input cannot be read on: this row says why.
    Stop(RowError),
}

/// A piece of work mapped: its values in file order.
struct Mapped<T> {
    values: Vec<T>,
    /// With the first chunk of a CSV file: about how many rows the file holds.
    expected_rows: Option<u64>,
}

/// The turns in which chunk parses are settled, one piece after another in file order.
struct Turns {
    state: Mutex<Turn>,
    changed: Condvar,
}

struct Turn {
    /// The piece whose turn it is.
    next: u64,
    /// What the chunks settled so far left open (made with the first chunk).
    reassembler: Option<Reassembler>,
    /// The file's size, until the first chunk foresees the number of rows from it.
    file_size: Option<u64>,
    /// A worker panicked before its turn: no turn after it will come.
    abandoned: bool,
}

impl Turns {
    /// Wait for piece `number`'s turn and settle it with `settle`; `None` if the turn
    /// cannot come (a worker panicked).
    fn take<R>(&self, number: u64, settle: impl FnOnce(&mut Turn) -> R) -> Option<R> {
        let mut turn = self.state.lock().ok()?;
        while turn.next != number {
            if turn.abandoned {
                return None;
            }
            turn = self.changed.wait(turn).ok()?;
        }
        let settled = settle(&mut turn);
        turn.next += 1;
        drop(turn);
        self.changed.notify_all();
        Some(settled)
    }
}

/// Held by a worker while it works: if it panics, the workers waiting for a turn after
/// its own are told it will not come, instead of waiting for ever.
struct Abandon<'a>(&'a Turns);

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut turn = self
                .0
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            turn.abandoned = true;
            drop(turn);
            self.0.changed.notify_all();
        }
    }
}

/// Values arriving in file order from `Rows::map_parallel`.
pub struct Ordered<T> {
    rx: tokio::sync::mpsc::Receiver<(u64, Mapped<T>)>,
    /// Pieces that arrived before their turn.
    early: BTreeMap<u64, Mapped<T>>,
    next_piece: u64,
    /// The piece being handed out, value by value.
    current: std::vec::IntoIter<T>,
    expected_rows: Option<u64>,
    threads: Vec<JoinHandle<()>>,
}

impl Rows {
    /// Put every row through `f` on `workers` threads (and one more that reads), and
    /// hand the results out in file order. `f` is called exactly once for each row the
    /// sequential read gives, and for nothing else: a CSV chunk's rows are given to `f`
    /// only once its parse is known to stand.
    pub fn map_parallel<T, F>(self, workers: usize, f: F) -> std::io::Result<Ordered<T>>
    where
        T: Send + 'static,
        F: Fn(RowResult) -> T + Send + Clone + 'static,
    {
        let (work_tx, work_rx) = mpsc::sync_channel::<(u64, Work)>(QUEUED);
        let work_rx = Arc::new(Mutex::new(work_rx));
        let (tx, rx) = tokio::sync::mpsc::channel::<(u64, Mapped<T>)>(QUEUED);
        let mut turn = Turn {
            next: 0,
            reassembler: None,
            file_size: None,
            abandoned: false,
        };
        let reader = match self.into_chunks() {
            Ok((first, chunks)) => {
                turn.file_size = Some(chunks.size);
                spawn_named("read", move || read_chunks(first, chunks, &work_tx))?
            }
            Err(rows) => spawn_named("read", move || read_rows(rows, &work_tx))?,
        };
        let turns = Arc::new(Turns {
            state: Mutex::new(turn),
            changed: Condvar::new(),
        });
        let mut threads = vec![reader];
        for _ in 0..workers.max(1) {
            let (work_rx, tx, turns, f) = (work_rx.clone(), tx.clone(), turns.clone(), f.clone());
            threads.push(spawn_named("map", move || work(&work_rx, &tx, &turns, &f))?);
        }
        Ok(Ordered {
            rx,
            early: BTreeMap::new(),
            next_piece: 0,
            current: Vec::new().into_iter(),
            expected_rows: None,
            threads,
        })
    }
}

/// A worker: take the next piece, settle its rows in their turn, map them, send them.
fn work<T, F: Fn(RowResult) -> T>(
    work_rx: &Mutex<mpsc::Receiver<(u64, Work)>>,
    tx: &tokio::sync::mpsc::Sender<(u64, Mapped<T>)>,
    turns: &Turns,
    f: &F,
) {
    loop {
        let next = match work_rx.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok((number, work)) = next else {
            return;
        };
        let Some((rows, expected_rows)) = settle(number, work, turns) else {
            return;
        };
        let values = rows.into_iter().map(f).collect();
        let mapped = Mapped {
            values,
            expected_rows,
        };
        if tx.blocking_send((number, mapped)).is_err() {
            return;
        }
    }
}

/// The rows of piece `number` as a sequential read gives them: a chunk is parsed here, in
/// parallel with the others, and its parse kept or continued from the chunk before in
/// its turn. `None`: a worker panicked, and this piece's turn will not come.
fn settle(number: u64, work: Work, turns: &Turns) -> Option<(Vec<RowResult>, Option<u64>)> {
    let _abandon = Abandon(turns);
    match work {
        Work::Rows(rows) => turns.take(number, |_| (rows, None)),
        Work::Chunk(chunk) => {
            let parsed = chunk.parse();
            turns.take(number, |turn| {
                let rows = turn
                    .reassembler
                    .get_or_insert_with(|| Reassembler::new(chunk.shape()))
                    .settle(&chunk, parsed.open)
                    .unwrap_or(parsed.rows);
                let expected = match turn.file_size.take() {
                    // The first chunk's rows per byte foresee the file's.
                    Some(size) if !chunk.bytes.is_empty() => {
                        let per_byte = rows.len() as f64 / chunk.bytes.len() as f64;
                        Some((size as f64 * per_byte) as u64)
                    }
                    _ => None,
                };
                (rows, expected)
            })
        }
        Work::Stop(error) => turns.take(number, |turn| {
            // What an earlier chunk left open ends as it is, before the error.
            let mut rows = turn
                .reassembler
                .as_mut()
                .map(Reassembler::finish)
                .unwrap_or_default();
            rows.push(Err(error));
            (rows, None)
        }),
    }
}

impl<T> Ordered<T> {
    /// The next value of the piece in hand, or of the next piece in file order if it has
    /// arrived; `None` if it has not.
    fn take_in_order(&mut self) -> Option<T> {
        loop {
            if let Some(value) = self.current.next() {
                return Some(value);
            }
            let mapped = self.early.remove(&self.next_piece)?;
            self.next_piece += 1;
            if self.expected_rows.is_none() {
                self.expected_rows = mapped.expected_rows;
            }
            self.current = mapped.values.into_iter();
        }
    }

    /// The next value if one is ready now, without waiting: `Pending` if none has arrived.
    pub fn try_next(&mut self) -> Poll<Option<T>> {
        loop {
            if let Some(value) = self.take_in_order() {
                return Poll::Ready(Some(value));
            }
            match self.rx.try_recv() {
                Ok((number, mapped)) => {
                    self.early.insert(number, mapped);
                }
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => return Poll::Pending,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                    return Poll::Ready(None);
                }
            }
        }
    }

    /// The next value, from async code (cancel-safe: nothing is awaited after a receive).
    pub async fn next(&mut self) -> Option<T> {
        loop {
            if let Some(value) = self.take_in_order() {
                return Some(value);
            }
            let (number, mapped) = self.rx.recv().await?;
            self.early.insert(number, mapped);
        }
    }

    /// The next value, from a plain thread.
    pub fn next_blocking(&mut self) -> Option<T> {
        loop {
            if let Some(value) = self.take_in_order() {
                return Some(value);
            }
            let (number, mapped) = self.rx.blocking_recv()?;
            self.early.insert(number, mapped);
        }
    }

    /// About how many rows the file holds (CSV, once its first chunk has been handed
    /// out): for sizing a table once instead of letting it grow.
    pub fn expected_rows(&self) -> Option<u64> {
        self.expected_rows
    }

    /// Stop the threads (whatever was not taken yet is dropped) and wait for them.
    pub fn join(mut self) -> Result<(), ReaderPanicked> {
        self.rx.close();
        while self.rx.try_recv().is_ok() {}
        let mut panicked = false;
        for thread in self.threads {
            panicked |= thread.join().is_err();
        }
        if panicked {
            Err(ReaderPanicked)
        } else {
            Ok(())
        }
    }
}

/// The reading thread of a CSV file: chunks of whole lines, in order.
fn read_chunks(first: Option<RowResult>, mut chunks: Chunks, work: &mpsc::SyncSender<(u64, Work)>) {
    let mut number = 0u64;
    if let Some(first) = first {
        if work.send((number, Work::Rows(vec![first]))).is_err() {
            return;
        }
        number += 1;
    }
    while let Some(next) = chunks.next_chunk() {
        let item = match next {
            Ok(chunk) => Work::Chunk(chunk),
            Err((error, line)) => Work::Stop(read_error(&error, line)),
        };
        if work.send((number, item)).is_err() {
            return;
        }
        number += 1;
    }
}

/// The reading thread of a source read row by row: batches of rows, in order.
fn read_rows(rows: Rows, work: &mpsc::SyncSender<(u64, Work)>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut number = 0u64;
    for row in rows {
        batch.push(row);
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if work.send((number, Work::Rows(full))).is_err() {
                return;
            }
            number += 1;
        }
    }
    if !batch.is_empty() {
        let _ = work.send((number, Work::Rows(batch)));
    }
}

fn spawn_named(
    name: &str,
    work: impl FnOnce() + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            crate::background::lower_priority(crate::background::HELPER_NICE);
            work()
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use super::super::chunks::{Cuts, chunks_of, read_rows};
    use super::super::{Cells, Limits, Row, RowResult, Rows};

    fn number(row: &RowResult) -> u64 {
        row.as_ref().map_or_else(|e| e.number, |r| r.number)
    }

    /// Rows whose stray quotes (`5" TV`) make the cuts land inside quoted line breaks, so
    /// many chunks end inside a record and the next is parsed on from there.
    fn stray_quotes() -> Vec<u8> {
        let mut file = b"id,item,note\n".to_vec();
        for i in 0..300 {
            file.extend(format!("{i},5\" TV,\"line one\nline two\"\n").as_bytes());
            if i % 7 == 0 {
                file.extend(format!("{i}b,plain,\"{}\"\n", "x".repeat(i % 50)).as_bytes());
            }
        }
        file
    }

    /// Every row through `f` once: the calls per row number, and the rows handed out.
    fn map_counting(rows: Rows, workers: usize) -> (BTreeMap<u64, usize>, Vec<RowResult>) {
        let calls = Arc::new(Mutex::new(BTreeMap::<u64, usize>::new()));
        let counted = calls.clone();
        let mut ordered = rows
            .map_parallel(workers, move |row: RowResult| {
                *counted.lock().unwrap().entry(number(&row)).or_default() += 1;
                row
            })
            .unwrap();
        let mut out = Vec::new();
        while let Some(row) = ordered.next_blocking() {
            out.push(row);
        }
        ordered.join().unwrap();
        let calls = calls.lock().unwrap().clone();
        (calls, out)
    }

    #[test]
    fn each_row_of_re_joined_chunks_is_mapped_once_and_comes_out_in_order() {
        let file = stray_quotes();
        let whole = Cuts {
            chunk_bytes: usize::MAX,
            forced_bytes: usize::MAX,
        };
        let expected = read_rows(&file, b',', usize::MAX, whole, Limits::default());
        assert_eq!(expected.len(), 343);
        for (chunk_bytes, forced_bytes, workers) in
            [(7, 40, 2), (16, 16, 2), (33, 200, 3), (5, 9, 1)]
        {
            let cuts = Cuts {
                chunk_bytes,
                forced_bytes,
            };
            // The cuts re-join chunks: some chunk's own parse ends inside a record.
            let mut chunks = chunks_of(&file, b',', 64, cuts, Limits::default()).unwrap();
            let mut open = 0;
            while let Some(chunk) = chunks.next_chunk() {
                open += usize::from(chunk.unwrap().parse().open.is_some());
            }
            assert!(
                open > 10,
                "chunks of {chunk_bytes}: {open} left a record open"
            );

            let chunks = chunks_of(&file, b',', 64, cuts, Limits::default()).unwrap();
            let (calls, out) = map_counting(Rows::chunked(chunks), workers);
            assert_eq!(out, expected, "chunks of {chunk_bytes}");
            let twice: Vec<_> = calls.iter().filter(|(_, n)| **n != 1).collect();
            assert!(
                twice.is_empty(),
                "chunks of {chunk_bytes}: mapped {twice:?} times"
            );
            // No call for a row that does not come out (a chunk's own parse set aside).
            assert_eq!(calls.len(), expected.len(), "chunks of {chunk_bytes}");
        }
    }

    #[test]
    fn rows_read_one_by_one_go_through_the_same_way() {
        let rows: Vec<RowResult> = (1..=1000u64)
            .map(|number| {
                Ok(Row {
                    number,
                    cells: ["a", "b"].into_iter().collect::<Cells>(),
                    cell_errors: Vec::new(),
                })
            })
            .collect();
        let (calls, out) = map_counting(Rows::each(rows.clone().into_iter()), 2);
        assert_eq!(out, rows);
        assert!(calls.values().all(|n| *n == 1));
        assert_eq!(calls.len(), 1000);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn rows_are_mapped_at_the_helpers_priority_for_a_command_that_sends() {
        crate::background::yield_to_the_sender();
        let expected = crate::background::nice_a_helper_gets(crate::background::HELPER_NICE);
        let rows: Vec<RowResult> = (2..50u64)
            .map(|number| {
                Ok(Row {
                    number,
                    cells: ["a"].into_iter().collect::<Cells>(),
                    cell_errors: Vec::new(),
                })
            })
            .collect();
        let mut ordered = Rows::each(rows.into_iter())
            .map_parallel(2, |_row: RowResult| {
                crate::background::nice_of_this_thread()
            })
            .unwrap();
        let mut nice = Vec::new();
        while let Some(n) = ordered.next_blocking() {
            nice.push(n);
        }
        ordered.join().unwrap();
        assert_eq!(nice.len(), 48);
        assert!(nice.iter().all(|n| *n == expected), "{nice:?}");
    }

    #[test]
    fn try_next_and_next_give_the_rows_in_order_too() {
        let file = stray_quotes();
        let cuts = Cuts {
            chunk_bytes: 11,
            forced_bytes: 30,
        };
        let expected = read_rows(&file, b',', usize::MAX, cuts, Limits::default());
        let chunks = chunks_of(&file, b',', 64, cuts, Limits::default()).unwrap();
        let mut ordered = Rows::chunked(chunks).map_parallel(2, |row| row).unwrap();
        let mut out = Vec::new();
        // Bounded: far more polls than rows, each after a short sleep when none is ready.
        for _ in 0..100_000 {
            match ordered.try_next() {
                std::task::Poll::Ready(Some(row)) => out.push(row),
                std::task::Poll::Ready(None) => break,
                std::task::Poll::Pending => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        assert_eq!(out, expected);
        ordered.join().unwrap();

        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let chunks = chunks_of(&file, b',', 64, cuts, Limits::default()).unwrap();
        let mut ordered = Rows::chunked(chunks).map_parallel(2, |row| row).unwrap();
        let out = runtime.block_on(async {
            let mut out = Vec::new();
            while let Some(row) = ordered.next().await {
                out.push(row);
            }
            out
        });
        assert_eq!(out, expected);
        ordered.join().unwrap();
    }

    #[test]
    fn taking_fewer_rows_than_there_are_then_joining_stops_the_threads() {
        let file = stray_quotes();
        let cuts = Cuts {
            chunk_bytes: 9,
            forced_bytes: 20,
        };
        let chunks = chunks_of(&file, b',', 64, cuts, Limits::default()).unwrap();
        let mut ordered = Rows::chunked(chunks).map_parallel(2, |row| row).unwrap();
        assert_eq!(ordered.next_blocking().map(|r| number(&r)), Some(2));
        ordered.join().unwrap();
    }
}
