//! How the CPU paths split work across threads: contiguous blocks of whole units (a row,
//! a pixel's channels, a row of Winograd tiles), one block per thread, run by a pool of
//! threads that wait for work (`pool` below; a forward pass splits about 120 times, too
//! often to start threads for each). Natively the pool's threads are the machine's cores.
//! In WebAssembly they are the threaded build's Web Workers sharing the module's memory
//! (on cross-origin-isolated pages), else there is no pool and one thread.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Threads chosen by `set_threads` (0: not chosen).
static CHOSEN: AtomicUsize = AtomicUsize::new(0);

/// Threads a split uses: as chosen, else every core (natively) or the pool (WebAssembly).
pub fn threads() -> usize {
    match CHOSEN.load(Ordering::Relaxed) {
        0 if cfg!(target_arch = "wasm32") => 1 + pool::helpers(),
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    }
}

/// Uses `n` threads from now on (in WebAssembly at most the pool's); 0: the default again.
pub fn set_threads(n: usize) {
    CHOSEN.store(n, Ordering::Relaxed);
}

/// Calls `f(first_unit, block)` on contiguous blocks of `data`, each a whole number of
/// `unit`-long units and (but the last) a multiple of `align` units, one block per thread.
pub fn for_each_block<T: Send>(data: &mut [T], unit: usize, align: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let threads = if cfg!(target_arch = "wasm32") { threads().min(1 + pool::helpers()) } else { threads() };
    let units = data.len() / unit;
    let per_thread = units.div_ceil(threads).div_ceil(align) * align;
    if threads <= 1 || per_thread >= units {
        return f(0, data);
    }
    // Each block is a disjoint part of `data`, so handing out `&mut` slices of it from
    // several threads at once is sound.
    let (base, len) = (data.as_mut_ptr() as usize, data.len());
    // The last block also takes what is left after the last whole unit (a half row of tiles).
    pool::run(len.div_ceil(per_thread * unit), threads, &|b| {
        let start = b * per_thread * unit;
        let end = ((b + 1) * per_thread * unit).min(len);
        // SAFETY: blocks `b` cover disjoint ranges of `data`, which outlives `run`.
        let block = unsafe { std::slice::from_raw_parts_mut((base as *mut T).add(start), end - start) };
        f(b * per_thread, block)
    });
}

/// `f(range)` for `n` units split into `parts` contiguous ranges (or fewer, if `n` is smaller),
/// spread over the threads; the results in order. The ranges do not depend on the thread count,
/// so neither does a result folded from them in order.
pub fn map_ranges<R: Send + Default>(n: usize, parts: usize, f: impl Fn(std::ops::Range<usize>) -> R + Sync) -> Vec<R> {
    let mut results: Vec<R> = std::iter::repeat_with(R::default).take(parts.clamp(1, n.max(1))).collect();
    let per_range = n.div_ceil(results.len());
    for_each_block(&mut results, 1, 1, |first, slots| {
        for (i, slot) in slots.iter_mut().enumerate() {
            let b = first + i;
            *slot = f((b * per_range).min(n)..((b + 1) * per_range).min(n));
        }
    });
    results
}

/// The thread pool: helper threads each run `helper`, waiting for jobs; `run` publishes a job,
/// takes part in it, and returns once every block is done. Natively the helpers are started
/// as needed; in WebAssembly they are Web Workers (lib/threads.js) that call `pool_helper`,
/// where blocking waits are allowed, and the engine itself runs in one (bit50-worker.js),
/// never on a page's main thread.
#[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
pub mod pool {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::sync::{Condvar, Mutex, MutexGuard, TryLockError};

    /// One parallel call: blocks are taken by number until none is left.
    struct Job<'a> {
        f: &'a (dyn Fn(usize) + Sync),
        blocks: usize,
        next: AtomicUsize,
        done: AtomicUsize,
        panicked: AtomicBool,
    }

    /// The published job (a pointer into `run`'s frame), its generation, how many helpers may
    /// join it (the threads asked for, less the caller), and the helpers inside it: `run`
    /// withdraws the job and waits for them before its frame ends.
    struct State {
        job: usize,
        generation: u64,
        joining: usize,
        active: usize,
    }

    static STATE: Mutex<State> = Mutex::new(State { job: 0, generation: 0, joining: 0, active: 0 });
    static CHANGED: Condvar = Condvar::new();
    static HELPERS: AtomicUsize = AtomicUsize::new(0);
    /// One job at a time: natively several threads may split work at once (tests, two engines).
    static RUNNING: Mutex<()> = Mutex::new(());

    pub fn helpers() -> usize {
        HELPERS.load(SeqCst)
    }

    /// The pool's state; a panic elsewhere (reported by `run`) leaves it consistent.
    fn state() -> MutexGuard<'static, State> {
        STATE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn work(job: &Job) {
        loop {
            let b = job.next.fetch_add(1, SeqCst);
            if b >= job.blocks {
                return;
            }
            // Caught: a block's panic must not end a thread that `run` waits for.
            if catch_unwind(AssertUnwindSafe(|| (job.f)(b))).is_err() {
                job.panicked.store(true, SeqCst);
            }
            if job.done.fetch_add(1, SeqCst) + 1 == job.blocks {
                let _state = state();
                CHANGED.notify_all();
            }
        }
    }

    /// Runs `f(0..blocks)` on up to `threads` threads, this one included; returns when all are
    /// done. While another thread's job runs, this one runs its blocks alone.
    pub fn run(blocks: usize, threads: usize, f: &(dyn Fn(usize) + Sync)) {
        let _running = match RUNNING.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return (0..blocks).for_each(f),
        };
        // Natively, start the helpers wanted and not there yet (where the system refuses one, fewer do the work).
        #[cfg(not(target_arch = "wasm32"))]
        while helpers() < threads - 1 {
            HELPERS.fetch_add(1, SeqCst);
            if std::thread::Builder::new().name("bit50-pool".into()).spawn(helper).is_err() {
                HELPERS.fetch_sub(1, SeqCst);
                break;
            }
        }
        let job = Job { f, blocks, next: AtomicUsize::new(0), done: AtomicUsize::new(0), panicked: AtomicBool::new(false) };
        {
            let mut state = state();
            state.job = &job as *const Job as usize;
            state.generation += 1;
            state.joining = threads - 1;
            CHANGED.notify_all();
        }
        work(&job);
        let mut state = state();
        while job.done.load(SeqCst) < blocks {
            state = CHANGED.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state.job = 0;
        while state.active > 0 {
            state = CHANGED.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        drop(state);
        assert!(!job.panicked.load(SeqCst), "a block of a parallel job panicked");
    }

    /// A helper's life: wait for a job, take part if it wants more threads, wait again.
    fn helper() {
        let mut seen = state().generation;
        loop {
            let job = {
                let mut state = state();
                while state.generation == seen {
                    state = CHANGED.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
                }
                seen = state.generation;
                if state.job == 0 || state.active >= state.joining {
                    continue;
                }
                state.active += 1;
                state.job
            };
            // SAFETY: `run` keeps the job alive until `active` is back to zero.
            work(unsafe { &*(job as *const Job) });
            let mut state = state();
            state.active -= 1;
            CHANGED.notify_all();
        }
    }

    /// A pool Web Worker's life (lib/pool-worker.js), once its instance is up: never returns.
    #[cfg(target_arch = "wasm32")]
    #[wasm_bindgen::prelude::wasm_bindgen]
    pub fn pool_helper() {
        HELPERS.fetch_add(1, SeqCst);
        helper()
    }

    /// The compiled module and the shared memory, for the pool workers to instantiate.
    #[cfg(target_arch = "wasm32")]
    #[wasm_bindgen::prelude::wasm_bindgen]
    pub fn pool_parts() -> js_sys::Array {
        js_sys::Array::of2(&wasm_bindgen::module(), &wasm_bindgen::memory())
    }
}

/// In WebAssembly without threads: no pool.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
mod pool {
    pub fn helpers() -> usize {
        0
    }

    pub fn run(blocks: usize, _threads: usize, f: &(dyn Fn(usize) + Sync)) {
        (0..blocks).for_each(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value is handed to exactly one block, with its right unit index, whatever the
    /// threads: a trailing part unit included (Winograd's last half row of tiles at odd sizes,
    /// which a split by whole units once dropped).
    #[test]
    fn blocks_cover_every_value_once() {
        for threads in [1, 2, 3, 8] {
            set_threads(threads);
            for (len, unit, align) in [(13, 2, 1), (49, 1, 4), (7, 7, 1), (1, 4, 1), (100, 3, 12)] {
                let mut data = vec![0u32; len];
                for_each_block(&mut data, unit, align, |first, block| {
                    for (i, v) in block.iter_mut().enumerate() {
                        *v += 1 + (first * unit + i) as u32;
                    }
                });
                assert!(data.iter().enumerate().all(|(i, &v)| v == 1 + i as u32), "{threads} threads, {len}/{unit}/{align}: {data:?}");
                let sums = map_ranges(len, 5, |range| range.len());
                assert_eq!(sums.iter().sum::<usize>(), len, "{threads} threads: ranges of {len}");
            }
        }
        // A block that panics is reported to the caller, and the pool still works afterwards.
        // (In this test: the thread count is global, so one test sets it.)
        set_threads(2);
        let caught = std::panic::catch_unwind(|| for_each_block(&mut [0.0f32; 64], 1, 1, |first, _| assert!(first == 0, "block at {first}")));
        assert!(caught.is_err());
        let mut data = vec![1.0f32; 64];
        for_each_block(&mut data, 1, 1, |_, block| block.iter_mut().for_each(|v| *v *= 2.0));
        assert!(data.iter().all(|&v| v == 2.0));
        set_threads(0);
    }
}
