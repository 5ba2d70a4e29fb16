//! How the CPU paths split work across threads: contiguous blocks of whole units (a row,
//! a pixel's channels, a row of Winograd tiles), one block per thread. Natively the threads
//! are the machine's cores. In WebAssembly they are the threaded build's pool (`pool` below:
//! Web Workers sharing the module's memory, on cross-origin-isolated pages), else one.

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

/// Uses `n` threads from now on (at least 1; in WebAssembly at most the pool's).
pub fn set_threads(n: usize) {
    CHOSEN.store(n.max(1), Ordering::Relaxed);
}

/// Calls `f(first_unit, block)` on contiguous blocks of `data`, each a whole number of
/// `unit`-long units and (but the last) a multiple of `align` units, one block per thread.
pub fn for_each_block(data: &mut [f32], unit: usize, align: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let threads = if cfg!(target_arch = "wasm32") { threads().min(1 + pool::helpers()) } else { threads() };
    let units = data.len() / unit;
    let per_thread = units.div_ceil(threads).div_ceil(align) * align;
    if threads <= 1 || per_thread >= units {
        return f(0, data);
    }
    #[cfg(target_arch = "wasm32")]
    {
        // Each block is a disjoint part of `data`, so handing out `&mut` slices of it from
        // several threads at once is sound.
        let (base, len) = (data.as_mut_ptr() as usize, data.len());
        pool::run(units.div_ceil(per_thread), &|b| {
            let start = b * per_thread * unit;
            let end = ((b + 1) * per_thread * unit).min(len);
            // SAFETY: blocks `b` cover disjoint ranges of `data`, which outlives `run`.
            let block = unsafe { std::slice::from_raw_parts_mut((base as *mut f32).add(start), end - start) };
            f(b * per_thread, block)
        });
    }
    #[cfg(not(target_arch = "wasm32"))]
    std::thread::scope(|s| {
        for (t, block) in data.chunks_mut(per_thread * unit).enumerate() {
            let f = &f;
            s.spawn(move || f(t * per_thread, block));
        }
    });
}

/// The WebAssembly thread pool of the threaded build (atomics, shared memory): helper Web
/// Workers each run `pool_helper`, waiting for jobs; `run` publishes a job, takes part in it,
/// and returns once every block is done. Blocking waits are allowed in workers, and the
/// engine itself runs in one (bit50-worker.js), never on a page's main thread.
#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
pub mod pool {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::{Condvar, Mutex};
    use wasm_bindgen::prelude::*;

    /// One parallel call: blocks are taken by number until none is left.
    struct Job<'a> {
        f: &'a (dyn Fn(usize) + Sync),
        blocks: usize,
        next: AtomicUsize,
        done: AtomicUsize,
    }

    /// The published job (a pointer into `run`'s frame), its generation, and the helpers
    /// inside it: `run` withdraws the job and waits for them before its frame ends.
    struct State {
        job: usize,
        generation: u64,
        active: usize,
    }

    static STATE: Mutex<State> = Mutex::new(State { job: 0, generation: 0, active: 0 });
    static CHANGED: Condvar = Condvar::new();
    static HELPERS: AtomicUsize = AtomicUsize::new(0);

    pub fn helpers() -> usize {
        HELPERS.load(SeqCst)
    }

    fn work(job: &Job) {
        loop {
            let b = job.next.fetch_add(1, SeqCst);
            if b >= job.blocks {
                return;
            }
            (job.f)(b);
            if job.done.fetch_add(1, SeqCst) + 1 == job.blocks {
                let _state = STATE.lock().unwrap();
                CHANGED.notify_all();
            }
        }
    }

    /// Runs `f(0..blocks)` on the pool and this thread; returns when all are done.
    pub fn run(blocks: usize, f: &(dyn Fn(usize) + Sync)) {
        let job = Job { f, blocks, next: AtomicUsize::new(0), done: AtomicUsize::new(0) };
        {
            let mut state = STATE.lock().unwrap();
            state.job = &job as *const Job as usize;
            state.generation += 1;
            CHANGED.notify_all();
        }
        work(&job);
        let mut state = STATE.lock().unwrap();
        while job.done.load(SeqCst) < blocks {
            state = CHANGED.wait(state).unwrap();
        }
        state.job = 0;
        while state.active > 0 {
            state = CHANGED.wait(state).unwrap();
        }
    }

    /// A helper's life: wait for a job, take part, wait again. Called by each pool worker
    /// (lib/threads.js) once its instance is up; never returns.
    #[wasm_bindgen]
    pub fn pool_helper() {
        HELPERS.fetch_add(1, SeqCst);
        let mut seen = STATE.lock().unwrap().generation;
        loop {
            let job = {
                let mut state = STATE.lock().unwrap();
                while state.generation == seen {
                    state = CHANGED.wait(state).unwrap();
                }
                seen = state.generation;
                if state.job == 0 {
                    continue;
                }
                state.active += 1;
                state.job
            };
            // SAFETY: `run` keeps the job alive until `active` is back to zero.
            work(unsafe { &*(job as *const Job) });
            let mut state = STATE.lock().unwrap();
            state.active -= 1;
            CHANGED.notify_all();
        }
    }

    /// The compiled module and the shared memory, for the pool workers to instantiate.
    #[wasm_bindgen]
    pub fn pool_parts() -> js_sys::Array {
        js_sys::Array::of2(&wasm_bindgen::module(), &wasm_bindgen::memory())
    }
}

/// Without threads in WebAssembly: no pool.
#[cfg(not(all(target_arch = "wasm32", target_feature = "atomics")))]
mod pool {
    pub fn helpers() -> usize {
        0
    }

    #[allow(dead_code)]
    pub fn run(blocks: usize, f: &(dyn Fn(usize) + Sync)) {
        (0..blocks).for_each(f);
    }
}
