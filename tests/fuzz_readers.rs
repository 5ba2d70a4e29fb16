//! Seeded mutation fuzzing of every reader of untrusted bytes, over the committed fixtures:
//! the weight readers (pickle, torch zip, npz stored, deflated and zip64, safetensors), the
//! image decoders (PNG, JPEG through libjpeg-turbo, WebP, GIF, BMP), the web format's
//! manifest and shards, and head files. Every case must return Ok or an Err, never panic,
//! finish quickly, and never allocate much more than the input (images: than the pixels
//! they may claim). Where the format has a checksum, a mutated input that is accepted must
//! still give exactly the original's contents: zip entries carry a CRC-32, shards a sha256
//! in the manifest. Each reader prints how many mutated inputs it accepted and refused.
//!
//! `FUZZ_CASES=N cargo test --release --test fuzz_readers` runs N cases per reader
//! (default 1500); the allocator below records the peak live heap of each case. A long run,
//! FUZZ_CASES=58824 (1,000,008 cases over the 17 readers, 3.5 minutes), passed: no panic,
//! nothing accepted that must be refused; the most heap one case took was 237 MB (a GIF
//! whose mutated header claims a large canvas, within MAX_PIXELS).

use bit50::config::BitConfig;
use bit50::weights::convert::{normalize, read_weights};
use bit50::weights::Manifest;
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

fn cases() -> usize {
    std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1500)
}

/// Runs `cases()` mutations of `input` through `read`, which says whether the reader accepted
/// the bytes (and asserts what an accepted input must satisfy). Each case may allocate at
/// most `heap` bytes more than it started with.
fn fuzz_with(name: &str, input: &[u8], seed: u64, heap: usize, mut read: impl FnMut(&[u8]) -> bool) {
    let cases = cases();
    let mut rng = Rng(seed);
    let (mut accepted, mut slowest, mut most) = (0, Duration::ZERO, 0);
    let started = Instant::now();
    for case in 0..cases {
        let bytes = mutate(&mut rng, input);
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let t = Instant::now();
        accepted += read(&bytes) as usize;
        slowest = slowest.max(t.elapsed());
        let grew = PEAK.load(Ordering::Relaxed).saturating_sub(before);
        most = most.max(grew);
        assert!(grew <= heap, "{name} case {case}: allocated {grew} bytes for a {}-byte input", bytes.len());
        assert!(t.elapsed() < Duration::from_secs(2), "{name} case {case}: took {:?}", t.elapsed());
    }
    eprintln!(
        "{name}: {cases} cases in {:.2?}: {accepted} accepted, {} refused; slowest {slowest:.2?}, most heap {:.1} MB",
        started.elapsed(),
        cases - accepted,
        most as f64 / 1e6
    );
}

fn tiny_config() -> BitConfig {
    let config_text = String::from_utf8(fixture("tiny/config.json")).unwrap();
    BitConfig::from_json(&serde_json::from_str(&config_text).unwrap(), "config.json").unwrap()
}

/// A weights file through the converter's reader and its checks against the config. With
/// `checksummed` (zip archives: a CRC-32 per entry), whatever is accepted holds exactly the
/// original's tensors.
fn fuzz(name: &str, rel: &str, seed: u64, checksummed: bool) {
    let input = fixture(rel);
    let config = tiny_config();
    let read = |bytes: &[u8]| read_weights(bytes, name).and_then(|(scheme, tensors)| normalize(&config, scheme, tensors, name));
    let original = checksummed.then(|| read(&input).unwrap());
    // Decoded f32 data is at most 4x the input (f16 sources 2x that); allow headroom for maps and copies.
    fuzz_with(name, &input, seed, 16 * input.len() + (4 << 20), |bytes| match read(bytes) {
        Ok(tensors) => {
            assert!(original.as_ref().is_none_or(|o| tensors == *o), "{name}: a mutated archive was accepted with different tensors");
            true
        }
        Err(_) => false,
    });
}

/// zip64 records (a two-array npz): the zip reader and the npz reader on their own; what is
/// accepted holds the original arrays.
fn fuzz_zip64(seed: u64) {
    use bit50::weights::{npz::read_npz, zip::Zip};
    let input = fixture("sources/zip64/group-norm.npz");
    let read = |bytes: &[u8]| Zip::parse(bytes, "zip64").and_then(|z| read_npz(&z, "zip64"));
    let original = read(&input).unwrap();
    fuzz_with("npz (zip64)", &input, seed, 16 * input.len() + (4 << 20), |bytes| match read(bytes) {
        Ok(tensors) => {
            // The names are not covered by the CRC-32 (the converter refuses a misnamed array); the data are.
            assert!(tensors.values().all(|t| original.values().any(|o| o == t)), "npz (zip64): a mutated archive was accepted with different arrays");
            true
        }
        Err(_) => false,
    });
}

/// An image file through `preprocess::decode` (libjpeg-turbo for JPEG, the image crate for
/// the rest): whatever is accepted is an upright RGB image within the size limits.
fn fuzz_image(name: &str, input: &[u8], seed: u64) {
    use bit50::preprocess::{decode, MAX_PIXELS};
    decode(input, name).unwrap();
    // A mutated header may claim up to MAX_PIXELS, which the decoder then allocates (up to 8
    // bytes a pixel: 16-bit RGBA) before it finds the data missing.
    fuzz_with(name, input, seed, 8 * MAX_PIXELS as usize + (16 << 20), |bytes| match decode(bytes, name) {
        Ok(img) => {
            let (w, h) = img.dimensions();
            assert!(w >= 1 && h >= 1 && w as u64 * h as u64 <= MAX_PIXELS, "{name}: accepted a {w}x{h} image");
            assert_eq!(img.as_raw().len(), w as usize * h as usize * 3);
            true
        }
        Err(e) => {
            assert!(e.message.starts_with(name), "{name}: an error that does not name the file: {}", e.message);
            false
        }
    });
}

/// Small test images in each format (small: the mutations reach headers and data alike).
fn images() -> Vec<(&'static str, Vec<u8>)> {
    use image::ImageFormat;
    let cat = image::load_from_memory(&fixture("photos/cat.png")).unwrap();
    let small = cat.resize_exact(48, 40, image::imageops::FilterType::Triangle);
    let encode = |img: &image::DynamicImage, format| {
        let mut out = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut out), format).unwrap();
        out
    };
    let rgba = image::DynamicImage::ImageRgba8(small.to_rgba8());
    vec![
        ("png", encode(&small, ImageFormat::Png)),
        ("jpeg (libjpeg-turbo)", encode(&image::DynamicImage::ImageRgb8(small.to_rgb8()), ImageFormat::Jpeg)),
        ("jpeg with exif (libjpeg-turbo)", fixture("photos/rocket-exif.jpg")),
        ("webp", encode(&rgba, ImageFormat::WebP)),
        ("gif", encode(&rgba, ImageFormat::Gif)),
        ("bmp", encode(&small, ImageFormat::Bmp)),
    ]
}

/// The tiny model in the web format: manifest.json and its shard files (name, bytes).
fn web_model() -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    use bit50::weights::convert;
    let read = |f: &str| serde_json::from_slice(&fixture(&format!("tiny/{f}"))).unwrap();
    let tensors = read_weights(&fixture("tiny/model.safetensors"), "tiny").unwrap().1;
    let source = convert::Source { name: "tiny".into(), origin: "tiny".into(), config: read("config.json"), preprocessor: read("preprocessor_config.json"), tensors };
    // Shards of 1 MiB at most: the tiny model's 0.5 MB in one.
    let (manifest, files) = convert::convert(source, bit50::weights::Dtype::F32, 1 << 20).unwrap();
    (serde_json::to_vec_pretty(&manifest).unwrap(), files)
}

/// A mutated manifest, loaded with the real shards as the page and the CLI load them (each
/// shard listed fetched by its file name and checked against its entry): accepted only if its
/// shard list is still the original.
fn fuzz_manifest(seed: u64) {
    let (input, shards) = web_model();
    let list = |m: &Manifest| m.shards.iter().map(|s| (s.file.clone(), s.bytes, s.sha256.to_ascii_lowercase())).collect::<Vec<_>>();
    let original = list(&Manifest::parse(&input, "manifest.json").unwrap());
    let load = |bytes: &[u8]| -> bit50::Result<Manifest> {
        let m = Manifest::parse(bytes, "manifest.json")?;
        let mut files = Vec::new();
        for s in &m.shards {
            let Some((_, b)) = shards.iter().find(|(name, _)| *name == s.file) else { bit50::bail!("{}: no such file", s.file) };
            Manifest::verify_shard(s, b, None, &s.file)?;
            files.push(b.clone());
        }
        m.clone().into_model(&files, "manifest.json")?;
        Ok(m)
    };
    fuzz_with("manifest", &input, seed, 16 * 1024 * 1024, |bytes| match load(bytes) {
        Ok(m) => {
            assert_eq!(list(&m), original, "manifest: accepted with another shard list");
            true
        }
        Err(_) => false,
    });
}

/// A mutated shard: the safetensors reader must not panic on it, and the manifest's sha256
/// must refuse every shard that is not byte for byte the original.
fn fuzz_shard(seed: u64) {
    let (manifest, shards) = web_model();
    let manifest = Manifest::parse(&manifest, "manifest.json").unwrap();
    let (entry, input) = (&manifest.shards[0], &shards[0].1);
    fuzz_with("shard", input, seed, 16 * input.len() + (4 << 20), |bytes| {
        let mut tensors = bit50::model::TensorMap::new();
        let _ = bit50::weights::read_safetensors(bytes, &entry.file, &mut tensors);
        let verified = Manifest::verify_shard(entry, bytes, None, &entry.file).is_ok();
        assert!(!verified || bytes == input.as_slice(), "shard: a changed shard passed its checksum");
        verified
    });
}

/// A head file (bit50 fit's output): whatever is accepted writes back as the same head.
fn fuzz_head(seed: u64) {
    use bit50::head::{self, Head, ModelRef, Options, TrainingSet};
    let mut set = TrainingSet::new(16);
    let mut rng = Rng(99);
    for i in 0..6 {
        let view: Vec<f32> = (0..16).map(|j| (rng.below(1000) as f32 / 1000.0) + if j % 2 == i % 2 { 0.5 } else { 0.0 }).collect();
        set.push(i % 2, &[&view]).unwrap();
    }
    let model = ModelRef { name: "fixture".into(), sha256: "0123456789abcdef".repeat(4) };
    let input = head::train(&["a".into(), "b".into()], &set, &Options::default(), &model).unwrap().to_json().into_bytes();
    fuzz_with("head file", &input, seed, 16 * input.len() + (4 << 20), |bytes| match Head::parse(bytes, "head.json") {
        Ok(h) => {
            // serde_json with float_roundtrip: every f64 reads back exactly as written.
            let again = Head::parse(h.to_json().as_bytes(), "again").expect("an accepted head writes a head that reads back");
            assert_eq!(again, h, "head file: reads back differently");
            true
        }
        Err(e) => {
            assert!(e.message.starts_with("head.json: "), "{}", e.message);
            false
        }
    });
}

// One test function runs the readers in turn, so the allocator's peak belongs to one case at a time.
#[test]
fn readers_survive_mutated_fixtures() {
    fuzz("pickle (PaddleNLP, protocol 4)", "sources/paddlenlp/model_state.pdparams", 1, false);
    fuzz("pickle (paddle, protocol 2)", "sources/paddle-p2/model_state.pdparams", 2, false);
    fuzz("torch zip", "sources/hf-bin/pytorch_model.bin", 3, true);
    fuzz("npz", "sources/bit-npz/BiT-M-R50x1-tiny.npz", 4, true);
    fuzz("safetensors", "sources/timm/model.safetensors", 5, false);
    fuzz("hostile pickle", "sources/hostile/unknown-global.pdparams", 6, false);
    fuzz("npz (deflated)", "sources/bit-npz-deflated/BiT-M-R50x1-tiny.npz", 7, true);
    fuzz_zip64(8);
    for (i, (name, bytes)) in images().into_iter().enumerate() {
        fuzz_image(name, &bytes, 20 + i as u64);
    }
    fuzz_manifest(30);
    fuzz_shard(31);
    fuzz_head(32);
}
