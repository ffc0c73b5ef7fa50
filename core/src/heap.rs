//! How many bytes of heap a thread holds, so the engine can bound a script's memory.
//!
//! Rhai's own size limits count the elements of a value and re-count the whole value after
//! every change to it: a list of 10,000 small rows either passes a count that also lets a few
//! huge strings through, or is refused, and filling it with `push` costs time quadratic in its
//! length. kip switches those off and bounds what actually runs out: heap bytes. A binary that
//! runs scripts installs [`Counting`] as its global allocator; an engine then stops a script
//! whose run has grown its thread's heap past the limit (see [`crate::Limits`]).
//!
//! The count is per thread because a script runs on one thread from start to end (builtins
//! block on their async work there), and scripts on other threads (tests, server hooks) must
//! not use up each other's allowance. Bytes allocated on one thread and freed on another move
//! the counts a little: a response body read by a runtime worker and dropped by the script
//! makes the script's count lower than the truth, a request body the worker drops makes it
//! higher. Both are small beside what a runaway script builds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting the bytes each thread holds.
///
/// `#[global_allocator] static HEAP: kip_core::heap::Counting = kip_core::heap::Counting;`
pub struct Counting;

thread_local! {
    /// Bytes this thread allocated minus bytes it freed.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// The highest [`LIVE`] since the script now running on this thread started.
    static PEAK: Cell<isize> = const { Cell::new(0) };
    /// [`LIVE`] when the script now running on this thread started.
    static BASE: Cell<Option<isize>> = const { Cell::new(None) };
    /// The least [`grown`] reports for the rest of the run (see [`report_over`]).
    static FLOOR: Cell<isize> = const { Cell::new(0) };
}

#[inline]
fn count(delta: isize) {
    // No destructor, so the slot outlives thread teardown; `try_with` only guards the rule.
    let _ = LIVE.try_with(|live| {
        let now = live.get().wrapping_add(delta);
        live.set(now);
        if delta > 0 {
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
        }
    });
}

// SAFETY: every call is passed on to `System` unchanged; only a counter is updated around it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `System.alloc`'s.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as `dealloc`, and `new_size` is the caller's to vouch for.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        new
    }
}

/// Heap bytes this thread holds, as far as [`Counting`] saw (0 when it is not installed).
pub fn live() -> isize {
    LIVE.try_with(Cell::get).unwrap_or(0)
}

/// Whether [`Counting`] is this process's allocator.
pub fn installed() -> bool {
    let before = live();
    let probe = std::hint::black_box(Box::new(0u64));
    let counted = live() != before;
    drop(probe);
    counted
}

/// A script starts running on this thread: [`grown`] counts from here, and so does the run's
/// time ([`crate::engine::clock`]), since every run starts here.
pub fn start_run() {
    BASE.set(Some(live()));
    PEAK.set(live());
    FLOOR.set(0);
    crate::engine::clock::start_run();
}

/// Bytes this thread's heap grew by since its script started (since the first call, when no
/// [`start_run`] marked the start).
pub fn grown() -> isize {
    let now = live();
    let base = BASE.get().unwrap_or_else(|| {
        BASE.set(Some(now));
        now
    });
    (now - base).max(FLOOR.get())
}

/// A call found the run past its limit at `grown` bytes, gave back what it had made, and could
/// not fail (Rhai prints a value whose `to_string` fails another way, without bound): from now
/// until the next run, [`grown`] reports at least `grown`, so the watch stops the script at its
/// next operation.
pub fn report_over(grown: isize) {
    FLOOR.set(FLOOR.get().max(grown));
}

/// The most bytes this thread's heap had grown by at once since its script started: how near
/// a stopped script came to its limit, for tests and benchmarks.
pub fn peak_grown() -> isize {
    let base = BASE.get().unwrap_or_else(live);
    PEAK.get().max(live()) - base
}
