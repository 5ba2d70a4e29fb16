//! How the CPU paths split work across threads: contiguous blocks of whole units (a row,
//! a pixel's channels, a row of Winograd tiles), one block per thread. Natively the
//! threads are the machine's cores; in WebAssembly there is one.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Threads chosen by `set_threads` (0: not chosen).
static CHOSEN: AtomicUsize = AtomicUsize::new(0);

/// Threads a split uses: as chosen, else every core.
pub fn threads() -> usize {
    match CHOSEN.load(Ordering::Relaxed) {
        0 if cfg!(target_arch = "wasm32") => 1,
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    }
}

/// Uses `n` threads from now on (at least 1).
pub fn set_threads(n: usize) {
    CHOSEN.store(n.max(1), Ordering::Relaxed);
}

/// Calls `f(first_unit, block)` on contiguous blocks of `data`, each a whole number of
/// `unit`-long units and (but the last) a multiple of `align` units, one block per thread.
pub fn for_each_block(data: &mut [f32], unit: usize, align: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let threads = threads();
    let units = data.len() / unit;
    let per_thread = units.div_ceil(threads).div_ceil(align) * align;
    if threads <= 1 || per_thread >= units {
        return f(0, data);
    }
    std::thread::scope(|s| {
        for (t, block) in data.chunks_mut(per_thread * unit).enumerate() {
            let f = &f;
            s.spawn(move || f(t * per_thread, block));
        }
    });
}
