//! How long the script running on this thread has taken, for the time limit of
//! [`super::Limits`].
//!
//! A run starts at [`start_run`] (called with [`crate::heap::start_run`], at the start of every
//! run `Kip` makes). The watch asks [`spent`] between two operations.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Which time a run's time limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Every second since the run started, waits inside builtins included: a server hook must
    /// give its worker back whatever it waits on.
    Wall,
    /// The seconds the script's thread spent computing. Waiting on the network or on a remote
    /// command costs none, so `kip install` (its k3s installer alone may take 30 minutes on a
    /// slow link) and `kip app logs --follow` are not cut off, while a script that computes
    /// without end is. Where the thread's CPU time cannot be read (not Linux), wall time
    /// stands in, which is stricter.
    Busy,
}

thread_local! {
    /// When the run on this thread started, and the thread's CPU time then.
    static STARTED: Cell<Option<(Instant, Option<Duration>)>> = const { Cell::new(None) };
    /// When the CPU time was last read during the run, and how much of it the run had used.
    static LAST_READ: Cell<Option<(Instant, Duration)>> = const { Cell::new(None) };
}

/// A script starts running on this thread: its time counts from here.
pub fn start_run() {
    let now = Instant::now();
    STARTED.set(Some((now, thread_cpu_time())));
    LAST_READ.set(Some((now, Duration::ZERO)));
}

/// The time the run on this thread has taken by `clock`, exact once it reaches `limit`
/// (below that, possibly an overestimate still under `limit`).
///
/// Reading CPU time costs a system call, too much for every operation. A thread computes at
/// most as long as the wall time that passes, so the CPU time last read plus the wall time
/// since is an upper bound; the CPU time is read again only when that bound reaches `limit`.
pub fn spent(clock: Clock, limit: Duration) -> Duration {
    let (started, cpu_at_start) = STARTED.get().unwrap_or_else(|| {
        // A run nobody marked (a verb declaration read at load): it starts at its first look.
        start_run();
        (Instant::now(), thread_cpu_time())
    });
    if clock == Clock::Wall {
        return started.elapsed();
    }
    let (read_at, used) = LAST_READ.get().unwrap_or((started, Duration::ZERO));
    let bound = used + read_at.elapsed();
    if bound < limit {
        return bound;
    }
    let Some((at_start, now)) = cpu_at_start.zip(thread_cpu_time()) else {
        return started.elapsed();
    };
    let used = now.saturating_sub(at_start);
    LAST_READ.set(Some((Instant::now(), used)));
    used
}

/// CPU time this thread has used, user and system, from `/proc/thread-self/stat` (in clock
/// ticks, which are 10 ms on Linux).
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // The command name, in parentheses, may hold spaces: the fields are counted after it.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    const TICKS_PER_SECOND: u64 = 100;
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_time_leaves_out_sleep_and_counts_work() {
        start_run();
        std::thread::sleep(Duration::from_millis(300));
        let asleep = spent(Clock::Busy, Duration::ZERO);
        let wall = spent(Clock::Wall, Duration::ZERO);
        assert!(wall >= Duration::from_millis(300), "{wall:?}");
        if thread_cpu_time().is_none() {
            return; // no CPU time here: wall time stands in, as documented
        }
        assert!(asleep < Duration::from_millis(100), "{asleep:?}");
        // Compute until the thread has used 300 ms more (on a busy machine that takes longer).
        let before = thread_cpu_time().unwrap_or_default();
        let give_up = Instant::now() + Duration::from_secs(20);
        let mut n = 0u64;
        while thread_cpu_time().unwrap_or_default() < before + Duration::from_millis(300)
            && Instant::now() < give_up
        {
            for _ in 0..100_000 {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        let working = spent(Clock::Busy, Duration::ZERO);
        assert!(working >= Duration::from_millis(300), "{working:?}");
        assert!(
            working < spent(Clock::Wall, Duration::ZERO),
            "the nap is left out"
        );
    }

    #[test]
    fn below_the_limit_the_bound_is_wall_time() {
        start_run();
        std::thread::sleep(Duration::from_millis(50));
        // The CPU time is not read: the bound is at least the 50 ms slept.
        assert!(spent(Clock::Busy, Duration::from_secs(60)) >= Duration::from_millis(50));
    }
}
