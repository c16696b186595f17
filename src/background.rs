//! The helper threads of a run (the reader, the mapping workers, the input's hash, the
//! ledger's writer) run at a lower CPU priority than the thread that sends the requests.
//!
//! Their work has slack: they run ahead of the requests behind bounded queues (rows
//! mapped ahead, marks synced ahead), so a few milliseconds later costs nothing. The
//! requests have none: each one waits for the thread that sends it, and on a machine
//! whose cores are busy (two cores shared with a fast CRM), a helper that had just woken
//! up for a burst of work used to hold that thread back. At a 0 ms server the import is
//! ~15 % faster with the helpers niced (benches/README.md, "Row 4 met"). When the machine
//! is idle a nice value changes nothing: the helpers get a core whenever no one else
//! wants it, and the sender waits for them only when they are behind, which then leaves
//! them the CPU.
//!
//! The price: on a machine whose cores other jobs keep busy, the helpers also give way
//! to those jobs, so an import at full speed (`--rate 0` against a fast CRM) runs slower
//! there than it would un-niced. At a real CRM's pace (5 requests a second by default)
//! the helpers need a few milliseconds of CPU a second, which even a busy machine gives.
//!
//! Only the commands that send requests ask for it (`yield_to_the_sender`): `validate`
//! has no such thread, and a person waiting for it on a busy laptop wants it at full
//! speed.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set once by a command that sends requests: its helper threads yield to the sender.
static YIELD_TO_THE_SENDER: AtomicBool = AtomicBool::new(false);

/// From now on, the helper threads started by this process yield to the thread that
/// sends the requests (call before the input is opened).
pub fn yield_to_the_sender() {
    YIELD_TO_THE_SENDER.store(true, Ordering::Relaxed);
}

/// The nice value of the reader, the mapping workers and the input's hash: throughput
/// work, far ahead of the requests.
pub const HELPER_NICE: i32 = 19;

/// The nice value of the ledger's writer. Lower than the other helpers': a request
/// waits for its mark when the marks ahead run out. (Linux derives a thread's I/O
/// priority from its nice value where the disk's scheduler uses one, BFQ: level 6 of
/// 0–7 for its syncs, rather than the last.)
pub const LEDGER_NICE: i32 = 10;

/// Lower the calling helper thread's CPU priority to `nice`, if the command asked for it
/// (`yield_to_the_sender`); never raise it (a process started niced keeps its value for
/// every thread, the sender's included). A thread's own, on Linux: threads it starts
/// inherit it. Best effort: where it cannot be done, the thread runs as is.
pub fn lower_priority(nice: i32) {
    if !YIELD_TO_THE_SENDER.load(Ordering::Relaxed) {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let thread = Some(rustix::thread::gettid());
        let target = match rustix::process::getpriority_process(thread) {
            Ok(current) if current >= nice => return,
            _ => nice,
        };
        if let Err(e) = rustix::process::setpriority_process(thread, target) {
            tracing::debug!(%e, nice, "Could not lower a helper thread's priority.");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// The nice value a helper started by the calling thread gets when it asks for `nice`
/// (tests): never below the caller's own.
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn nice_a_helper_gets(nice: i32) -> i32 {
    nice_of_this_thread().max(nice)
}

/// The calling thread's nice value (tests).
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn nice_of_this_thread() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(i32::MIN)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_helper_lowers_its_own_priority_and_no_one_else_s() {
        yield_to_the_sender();
        let before = nice_of_this_thread();
        let expected = nice_a_helper_gets(HELPER_NICE);
        let helper = std::thread::spawn(|| {
            lower_priority(HELPER_NICE);
            // A thread the helper starts inherits its priority.
            let child = std::thread::spawn(nice_of_this_thread).join().unwrap();
            (nice_of_this_thread(), child)
        });
        assert_eq!(helper.join().unwrap(), (expected, expected));
        assert_eq!(nice_of_this_thread(), before, "the caller keeps its own");
    }

    #[test]
    fn a_helper_of_a_process_niced_further_keeps_its_value() {
        yield_to_the_sender();
        let helper = std::thread::spawn(|| {
            // As if the whole process had been started with `nice -n 15`.
            let start = nice_of_this_thread().max(15);
            rustix::process::setpriority_process(Some(rustix::thread::gettid()), start).unwrap();
            lower_priority(LEDGER_NICE);
            (start, nice_of_this_thread())
        });
        let (start, now) = helper.join().unwrap();
        assert_eq!(now, start, "never raised back to {LEDGER_NICE}");
    }
}
