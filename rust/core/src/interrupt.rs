//! Ctrl-C for the core: long computations stop at their next tile when asked to.
//!
//! **Checkpoints.** Every pass over tiles calls [`checkpoint`] once per tile (or a captured
//! [`Watch`] in the innermost loops, such as a sort comparison). A checkpoint is one
//! thread-local read and one relaxed atomic load; when the flag it watches is set, it stops the
//! computation by unwinding with [`CoreError::Interrupted`] as the payload (no panic message,
//! no partial result), through Rayon's joins, which wait for the sibling tasks (they stop at
//! their own next checkpoint) and re-raise it. [`guard`] turns such a payload, and the
//! `CoreError::Memory` of [`crate::memory::vec`], back into an `Err`; any other panic keeps
//! unwinding (a bug, reported as such by the caller).
//!
//! **Whose flag: one pool per interruptible caller, not a global flag.** A checkpoint only
//! watches a flag on the worker threads of a [`Watched`] pool (set by the pool's start
//! handler); everywhere else it is a no-op. The binding runs the calls of Python's main thread
//! (the only thread that receives signals, and which runs one call at a time) in the one shared
//! [`Watched`] pool ([`shared`]), and the calls of every other thread directly, in Rayon's
//! global pool, where nothing can cancel them. Rayon never moves a job between pools, so a
//! cancellation reaches exactly the computation of the interrupted call: concurrent calls from
//! other threads are never cancelled by it, and nothing needs to be passed through the
//! numerical code. A global flag would stop every thread's computation at once; a token passed
//! per call would have to be threaded through every kernel signature. A second call that
//! arrives while the pool is busy (re-entrantly, from a Python signal handler) runs directly,
//! uninterruptible but correct.
//!
//! Determinism is unaffected: the watched pool has the size of the global pool, and every
//! kernel's results are independent of the thread count anyway.

use crate::error::{CoreError, Result};
use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::OnceLock;
use std::time::Duration;

#[cfg(panic = "abort")]
compile_error!("congruence-core stops cancelled or oversized computations by unwinding; build with panic = \"unwind\"");

thread_local! {
    /// The cancellation flag the current thread watches (set on the workers of a [`Watched`]).
    static WATCH: Cell<Option<&'static AtomicBool>> = const { Cell::new(None) };
}

/// The cancellation flag of the current thread, captured once for a hot loop.
#[derive(Clone, Copy, Debug)]
pub struct Watch(Option<&'static AtomicBool>);

impl Watch {
    /// The flag watched by the current thread (none outside a [`Watched`] pool).
    #[inline]
    pub fn current() -> Self {
        Watch(WATCH.with(Cell::get))
    }

    /// Whether cancellation was requested.
    #[inline(always)]
    pub fn cancelled(self) -> bool {
        match self.0 {
            Some(flag) => flag.load(Ordering::Relaxed),
            None => false,
        }
    }

    /// Stop (unwind with [`CoreError::Interrupted`]) if cancellation was requested.
    #[inline(always)]
    pub fn checkpoint(self) {
        if self.cancelled() {
            stop()
        }
    }
}

/// Stop the current computation if it was cancelled: call once per tile.
#[inline]
pub fn checkpoint() {
    Watch::current().checkpoint()
}

/// Whether the current computation was cancelled.
#[inline]
pub fn cancelled() -> bool {
    Watch::current().cancelled()
}

#[cold]
#[inline(never)]
fn stop() -> ! {
    crate::memory::raise(CoreError::Interrupted)
}

/// Run `f`; a computation that stopped by unwinding with a [`CoreError`] payload (a
/// cancellation, or an allocation that failed where no `Result` could carry it) returns that
/// error. Any other panic continues to unwind.
pub fn guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => match payload.downcast::<CoreError>() {
            Ok(e) => Err(*e),
            Err(other) => resume_unwind(other),
        },
    }
}

/// A Rayon thread pool whose computations can be cancelled from the thread that started them.
pub struct Watched {
    pool: rayon::ThreadPool,
    flag: &'static AtomicBool,
    busy: AtomicBool,
}

impl Watched {
    /// A pool of `threads` workers (0: Rayon's default, `RAYON_NUM_THREADS` or the CPU count).
    pub fn new(threads: usize) -> std::result::Result<Self, rayon::ThreadPoolBuildError> {
        // One flag per pool for the life of the process (pools are not dropped in practice;
        // leaking one bool keeps the workers' reference valid whatever happens).
        let flag: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("congruence-{i}"))
            .start_handler(move |_| WATCH.with(|w| w.set(Some(flag))))
            .build()?;
        Ok(Watched {
            pool,
            flag,
            busy: AtomicBool::new(false),
        })
    }

    /// Run `work` in the pool while the calling thread waits, calling `poll` every `interval`
    /// until the work finishes. When `poll` returns true, the work is cancelled: it stops at
    /// its next checkpoint, its result is discarded and `Err(CoreError::Interrupted)` is
    /// returned. If the pool is already running a call (re-entrance), `work` runs directly on
    /// the calling thread, uninterruptible. A panic of `work` that is not a [`CoreError`]
    /// resumes on the calling thread.
    pub fn run<T: Send>(
        &self,
        work: impl FnOnce() -> Result<T> + Send,
        interval: Duration,
        mut poll: impl FnMut() -> bool,
    ) -> Result<T> {
        if self.busy.swap(true, Ordering::Acquire) {
            return guard(work);
        }
        struct Release<'a>(&'a AtomicBool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _release = Release(&self.busy);
        self.flag.store(false, Ordering::Relaxed);
        let (tx, rx) = channel();
        let mut cancelled = false;
        let out = self.pool.in_place_scope(|s| {
            s.spawn(move |_| {
                let _ = tx.send(catch_unwind(AssertUnwindSafe(|| guard(work))));
            });
            loop {
                match rx.recv_timeout(interval) {
                    Ok(r) => break r,
                    Err(RecvTimeoutError::Timeout) => {
                        if !cancelled && poll() {
                            cancelled = true;
                            self.flag.store(true, Ordering::Relaxed);
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        unreachable!("the job sends its result before it ends")
                    }
                }
            }
        });
        self.flag.store(false, Ordering::Relaxed);
        match out {
            Ok(_) if cancelled => Err(CoreError::Interrupted),
            Ok(r) => r,
            Err(panic) => resume_unwind(panic),
        }
    }
}

/// The process's one watched pool, sized like Rayon's global pool (`None` if no thread could
/// be started; callers then run uninterruptibly).
pub fn shared() -> Option<&'static Watched> {
    static POOL: OnceLock<Option<Watched>> = OnceLock::new();
    POOL.get_or_init(|| {
        // Outside any pool, this is the size of the global pool (RAYON_NUM_THREADS or CPUs).
        Watched::new(rayon::current_num_threads()).ok()
    })
    .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::Input;
    use std::time::Instant;

    use crate::testutil::pseudo;

    #[test]
    fn checkpoints_are_no_ops_outside_a_watched_pool() {
        assert!(!cancelled());
        checkpoint();
        assert_eq!(guard(|| Ok(3)), Ok(3));
        assert_eq!(
            guard::<()>(|| crate::memory::raise(CoreError::Interrupted)),
            Err(CoreError::Interrupted)
        );
    }

    #[test]
    fn other_panics_keep_unwinding_through_guard() {
        let r = catch_unwind(|| guard::<()>(|| panic!("a bug")));
        assert!(r.is_err());
    }

    #[test]
    fn a_cancelled_computation_stops_at_its_next_tile() {
        let pool = Watched::new(2).unwrap();
        // About 1e10 flops of distances: many seconds if it were not cancelled.
        let x = pseudo(20000, 64, 1);
        let y = pseudo(20000, 64, 2);
        let start = Instant::now();
        let mut asked = None;
        let r = pool.run(
            || crate::distance::distance_correlation(Input::F64(x.view()), Input::F64(y.view())),
            Duration::from_millis(10),
            || {
                let go = start.elapsed() > Duration::from_millis(200);
                if go {
                    asked = Some(Instant::now());
                }
                go
            },
        );
        assert_eq!(r, Err(CoreError::Interrupted));
        let waited = asked.expect("cancelled").elapsed();
        assert!(
            waited < Duration::from_millis(500),
            "stopped {waited:?} after the request"
        );
        // The pool is usable again and computes correct values.
        let (a, b) = (pseudo(50, 3, 3), pseudo(50, 2, 4));
        let direct =
            crate::distance::distance_correlation(Input::F64(a.view()), Input::F64(b.view()));
        let again = pool.run(
            || crate::distance::distance_correlation(Input::F64(a.view()), Input::F64(b.view())),
            Duration::from_millis(10),
            || false,
        );
        assert_eq!(again.unwrap().to_bits(), direct.unwrap().to_bits());
    }

    #[test]
    fn cancelling_one_pool_leaves_other_computations_alone() {
        let pool = Watched::new(1).unwrap();
        let x = pseudo(3000, 8, 5);
        let y = pseudo(3000, 8, 6);
        let want =
            crate::distance::distance_correlation(Input::F64(x.view()), Input::F64(y.view()))
                .unwrap();
        std::thread::scope(|s| {
            let other = s.spawn(|| {
                // Runs in the global pool while the watched pool's computation is cancelled.
                (0..3)
                    .map(|_| {
                        crate::distance::distance_correlation(
                            Input::F64(x.view()),
                            Input::F64(y.view()),
                        )
                    })
                    .collect::<Vec<_>>()
            });
            let big = pseudo(20000, 32, 7);
            let r = pool.run(
                || {
                    crate::distance::distance_correlation(
                        Input::F64(big.view()),
                        Input::F64(big.view()),
                    )
                },
                Duration::from_millis(5),
                || true,
            );
            assert_eq!(r, Err(CoreError::Interrupted));
            for v in other.join().unwrap() {
                assert_eq!(v.unwrap().to_bits(), want.to_bits());
            }
        });
    }

    #[test]
    fn a_busy_pool_runs_a_nested_call_directly() {
        let pool = Watched::new(1).unwrap();
        let r = pool.run(
            || pool.run(|| Ok(7), Duration::from_millis(5), || true),
            Duration::from_millis(5),
            || false,
        );
        assert_eq!(r, Ok(7));
    }
}
