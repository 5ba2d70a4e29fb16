//! Seeded mutation fuzzing of the weight readers (pickle, torch zip, npz,
//! safetensors) over the committed fixtures: every case must return Ok or an
//! Err, never panic, finish quickly, and never allocate much more than the input.
//!
//! `FUZZ_CASES=N cargo test --test fuzz_readers` runs N cases per format
//! (default 1500); the allocator below records the peak live heap of each case.

use bit50::config::BitConfig;
use bit50::weights::convert::{normalize, read_weights};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that break length and count fields.
const INTERESTING: [u64; 10] = [0, 1, 0x7F, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF, 1 << 40, u64::MAX, 0x8000_0000_0000_0000];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    // Most structure (headers, pickle opcodes, zip directories) sits near the ends.
    let pick = |rng: &mut Rng, len: usize| -> usize {
        match rng.below(3) {
            0 => rng.below(len.min(4096)),
            1 => len.saturating_sub(1 + rng.below(len.min(8192))),
            _ => rng.below(len),
        }
    };
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            break;
        }
        let at = pick(rng, b.len());
        match rng.below(7) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b[at] = rng.next() as u8,
            2 => {
                let v = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                let n = [1, 2, 4, 8][rng.below(4)];
                for (i, x) in v[..n].iter().enumerate() {
                    if let Some(y) = b.get_mut(at + i) {
                        *y = *x;
                    }
                }
            }
            3 => b.truncate(at),
            4 => {
                let n = 1 + rng.below(64);
                b.drain(at..(at + n).min(b.len()));
            }
            5 => {
                let from = pick(rng, b.len());
                let n = 1 + rng.below(64);
                let chunk: Vec<u8> = b[from..(from + n).min(b.len())].to_vec();
                b.splice(at..at, chunk);
            }
            _ => {
                // A pickle opcode or an ASCII digit in the middle of things.
                let ops = b"().012NJKMQRXabcdehjlqrstu}]\x80\x85\x86\x87\x88\x89\x8a\x8b\x8c\x93\x94\x959";
                b[at] = ops[rng.below(ops.len())];
            }
        }
    }
    b
}

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)).unwrap()
}

fn fuzz(name: &str, rel: &str, seed: u64) {
    let cases: usize = std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1500);
    let input = fixture(rel);
    let config_text = String::from_utf8(fixture("tiny/config.json")).unwrap();
    let config = BitConfig::from_json(&serde_json::from_str(&config_text).unwrap(), "config.json").unwrap();
    let mut rng = Rng(seed);
    let (mut accepted, mut slowest) = (0, Duration::ZERO);
    let started = Instant::now();
    for case in 0..cases {
        let bytes = mutate(&mut rng, &input);
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let t = Instant::now();
        if let Ok((scheme, tensors)) = read_weights(&bytes, name) {
            if normalize(&config, scheme, tensors, name).is_ok() {
                accepted += 1;
            }
        }
        slowest = slowest.max(t.elapsed());
        let grew = PEAK.load(Ordering::Relaxed).saturating_sub(before);
        // Decoded f32 data is at most 4x the input (f16 sources 2x that); allow headroom for maps and copies.
        assert!(grew <= 16 * input.len() + (4 << 20), "{name} case {case}: allocated {grew} bytes for a {}-byte input", bytes.len());
        assert!(t.elapsed() < Duration::from_secs(2), "{name} case {case}: took {:?}", t.elapsed());
    }
    eprintln!("{name}: {cases} cases in {:.2?} ({accepted} still valid), slowest {slowest:.2?}", started.elapsed());
}

// One test function runs the formats in turn, so the allocator's peak belongs to one case at a time.
#[test]
fn readers_survive_mutated_fixtures() {
    fuzz("pickle (PaddleNLP, protocol 4)", "sources/paddlenlp/model_state.pdparams", 1);
    fuzz("pickle (paddle, protocol 2)", "sources/paddle-p2/model_state.pdparams", 2);
    fuzz("torch zip", "sources/hf-bin/pytorch_model.bin", 3);
    fuzz("npz", "sources/bit-npz/BiT-M-R50x1-tiny.npz", 4);
    fuzz("safetensors", "sources/timm/model.safetensors", 5);
    fuzz("hostile pickle", "sources/hostile/unknown-global.pdparams", 6);
}
