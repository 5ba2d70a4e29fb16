//! Preprocessing against PIL, pixel by pixel: decode + EXIF orientation + RGB
//! conversion + PIL bilinear resize + floor centre crop, for every test photo at
//! the tiny model's 64x64 and google/bit-50's 448x448; then normalization exactly
//! as transformers' processor computes it. Every pixel of every photo is identical to PIL's.
//! Then tests/fixtures/images (tools/make_image_fixtures.py): every format, EXIF orientation, tiny
//! and thin image against PIL's crop and the processor's float32 input, and damaged JPEGs refused
//! exactly when PIL refuses them.

mod common;

use bit50::preprocess;
use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// (pixels differing, largest difference in uint8 levels) between our crop and PIL's.
fn compare_with_pil(model: &str, photo: &str) -> (usize, u8) {
    let img = preprocess::open(&fixtures().join("photos").join(photo)).unwrap();
    let ours = preprocess::resize_and_crop(&img, &preprocessor(model));
    let pil = image::open(pil_png(model, photo)).unwrap().to_rgb8();
    assert_eq!(ours.dimensions(), pil.dimensions(), "{model} {photo}: crop size");
    let mut differing = 0;
    let mut worst = 0;
    for (a, b) in ours.pixels().zip(pil.pixels()) {
        let d = a.0.iter().zip(b.0).map(|(x, y)| x.abs_diff(y)).max().unwrap();
        differing += (d > 0) as usize;
        worst = worst.max(d);
    }
    println!("{model} {photo}: {differing} of {} pixels differ from PIL, by at most {worst}", ours.width() * ours.height());
    (differing, worst)
}

#[test]
fn every_photo_matches_pil_exactly() {
    // JPEGs decode through libjpeg-turbo as in PIL, and the resize is Pillow's fixed-point
    // arithmetic, so not a single uint8 level differs.
    for model in ["tiny", "full"] {
        for photo in PHOTOS {
            assert_eq!(compare_with_pil(model, photo), (0, 0), "{model} {photo}: (pixels differing, max levels)");
        }
    }
}

#[test]
fn resized_sizes_match_transformers() {
    for model in ["tiny", "full"] {
        for photo in PHOTOS {
            let img = preprocess::open(&fixtures().join("photos").join(photo)).unwrap();
            let want = &expected(model)["inputs"][photo]["resized"];
            let (w, h) = preprocess::resized_size(img.width(), img.height(), preprocessor(model).shortest_edge);
            assert_eq!((w as u64, h as u64), (want[0].as_u64().unwrap(), want[1].as_u64().unwrap()), "{model} {photo}");
        }
    }
}

#[test]
fn normalization_is_bit_identical_to_the_processor() {
    for photo in PHOTOS {
        let stem = photo.rsplit_once('.').unwrap().0;
        let bytes = std::fs::read(fixtures().join("tiny/pil").join(format!("{stem}.npy"))).unwrap();
        let (shape, want) = bit50::weights::npy::read(&bytes, stem).unwrap();
        assert_eq!(shape, [1, 3, 64, 64]);
        let ours = pil_input("tiny", photo);
        assert!(ours.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{photo}: normalized values differ");
    }
}

#[test]
fn exif_orientation_is_applied() {
    // The file stores the rocket on its side (427x640) with Orientation 6.
    let img = preprocess::open(&fixtures().join("photos/rocket-exif.jpg")).unwrap();
    assert_eq!(img.dimensions(), (640, 427));
}

/// tests/fixtures/images/manifest.json (tools/make_image_fixtures.py): what PIL and transformers'
/// processor made of each file, in one group.
fn image_cases(group: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join("images/manifest.json")).unwrap();
    let manifest: Value = serde_json::from_str(&text).unwrap();
    let cases: Vec<Value> = manifest["cases"].as_array().unwrap().iter().filter(|c| c["group"] == group).cloned().collect();
    assert!(!cases.is_empty(), "no {group} cases");
    cases
}

/// A case the processor accepted, through our preprocessing: (pixels differing from the processor's
/// crop, largest difference in uint8 levels), after checking the resized size and that the float32
/// input hashes to the processor's `pixel_values` when the crops agree.
fn compare_case(case: &Value, img: &image::RgbImage) -> (usize, u8) {
    let name = case["name"].as_str().unwrap();
    let model = if case["group"] == "full448" { "full" } else { "tiny" };
    let config = preprocessor(model);
    let (w, h) = preprocess::resized_size(img.width(), img.height(), config.shortest_edge);
    assert_eq!([w, h], [case["resized"][0].as_u64().unwrap(), case["resized"][1].as_u64().unwrap()], "{name}: resized size");
    let ours = preprocess::resize_and_crop(img, &config);
    let want = image::open(fixtures().join("images").join(case["crop"].as_str().unwrap())).unwrap().to_rgb8();
    assert_eq!(ours.dimensions(), want.dimensions(), "{name}: crop size");
    let (mut differing, mut worst) = (0, 0);
    for (a, b) in ours.pixels().zip(want.pixels()) {
        let d = a.0.iter().zip(b.0).map(|(x, y)| x.abs_diff(y)).max().unwrap();
        differing += (d > 0) as usize;
        worst = worst.max(d);
    }
    println!("{name}: {differing} of {} pixels differ from PIL, by at most {worst}", ours.width() * ours.height());
    if differing == 0 {
        let input = preprocess::normalize(&ours, &config);
        let hash = Sha256::digest(input.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>());
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, case["input_sha256"].as_str().unwrap(), "{name}: float32 input differs from the processor's");
    }
    (differing, worst)
}

fn open_case(case: &Value) -> bit50::Result<image::RgbImage> {
    preprocess::open(&fixtures().join("images").join(case["file"].as_str().unwrap()))
}

#[test]
fn thin_and_one_pixel_images_match_the_processor() {
    // 1x1, 2x2, 3x100, 100x3, 15x40 and 1000x3 at the tiny model's 64; 3x1000, 1000x3 (448 x 149,333
    // before the crop), 1x1 and 2x2 at google/bit-50's 448. Every pixel equal, every float bit-identical.
    for case in image_cases("thin").iter().chain(&image_cases("full448")) {
        assert_eq!(case["verdict"], "ok");
        let img = open_case(case).unwrap();
        assert_eq!(compare_case(case, &img), (0, 0), "{}: (pixels differing, max levels)", case["name"]);
    }
}

/// Bytes allocated and not yet freed by this thread, and their high-water mark since `reset_peak`
/// (per thread, so that tests running alongside do not count).
struct CountingAlloc;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = LIVE.try_with(|live| {
        live.set(live.get() + delta);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
    });
}

fn reset_peak() -> isize {
    let live = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(live));
    live
}

// SAFETY: forwards to the system allocator unchanged, only counting.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as isize));
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[test]
fn a_long_strip_is_resized_only_where_the_crop_keeps_it() {
    // 3x60,000 (180,000 pixels, well within the budget) resizes to 448 x 8,960,000: 12 GB as RGB.
    // Only the 448x448 window that survives the crop is computed.
    let img = image::RgbImage::from_fn(3, 60_000, |x, y| image::Rgb([(x * 80) as u8, (y % 256) as u8, (y / 256 % 256) as u8]));
    let config = preprocessor("full");
    assert_eq!(preprocess::resized_size(3, 60_000, config.shortest_edge), (448, 8_960_000));
    let before = reset_peak();
    let start = std::time::Instant::now();
    let input = preprocess::preprocess(&img, &config);
    let seconds = start.elapsed().as_secs_f64();
    let peak = PEAK.with(Cell::get) - before;
    println!("3x60000: preprocessed in {seconds:.3} s, peak allocation {peak} bytes");
    assert_eq!(input.len(), 3 * 448 * 448);
    // The crop (602,112 bytes), its float32 copy (2,408,448) and a few input rows; nowhere near 12 GB.
    assert!(peak < 4 << 20, "peak allocation {peak} bytes");
    // The window is rows 4,479,776..4,480,223 of the resized strip, which read input rows 29,998..=30,001
    // (y % 256 = 46..=49 in green), rising from top to bottom.
    let plane = 448 * 448;
    let level = |v: f32| ((v * 0.5 + 0.5) * 255.0).round() as u32;
    let green: Vec<u32> = input[plane..2 * plane].iter().map(|&v| level(v)).collect();
    assert!(green.iter().all(|l| (46..=49).contains(l)), "green levels {:?}..{:?}", green.iter().min(), green.iter().max());
    assert!(green[0] < green[plane - 1], "rows {} .. {}", green[0], green[plane - 1]);
}

/// Invalid Huffman codes (64 one-bits) decode into noise that differs between libjpeg-turbo
/// versions: mozjpeg-sys vendors libjpeg-turbo 2.x code, Pillow 13's wheel bundles libjpeg-turbo
/// 3.2.0, whose Huffman decoder was rewritten. Every other damaged file (flipped bits and bytes,
/// stray and wrong restart markers, a stray EOI) decodes to PIL's pixels exactly. This one is
/// accepted by both, as the test requires, and its crop differs in 505 of 4096 pixels.
const NOISE_DEPENDS_ON_THE_LIBJPEG_VERSION: [&str; 1] = ["jpeg-bad-huffman.jpg"];

#[test]
fn damaged_jpegs_are_refused_exactly_when_pil_refuses() {
    // PIL refuses libjpeg's fatal errors ("broken data stream") and data that ends early ("image file
    // is truncated"), but decodes corrupt entropy-coded data into noise: so must we, with its pixels.
    let mut refused = 0;
    let mut wrong = Vec::new();
    for case in image_cases("damaged") {
        let name = case["name"].as_str().unwrap();
        match (open_case(&case), case["verdict"].as_str().unwrap()) {
            (Ok(img), "ok") => {
                let d = compare_case(&case, &img);
                if d != (0, 0) && !NOISE_DEPENDS_ON_THE_LIBJPEG_VERSION.contains(&name) {
                    wrong.push((name.to_string(), d));
                }
            }
            (Err(e), "error") => {
                println!("{name}: refused ({e}); PIL: {}", case["error"]["message"]);
                assert_eq!(e.kind, bit50::ErrorKind::DamagedImage, "{name}: {e}");
                assert!(e.message.contains(name), "{name}: the error does not name the file: {e}");
                assert!(!e.message.ends_with("()"), "{name}: libjpeg's reason is missing: {e}");
                refused += 1;
            }
            (Ok(_), _) => panic!("{name}: decoded, but PIL refuses it: {}", case["error"]["message"]),
            (Err(e), _) => panic!("{name}: refused ({e}), but PIL decodes it"),
        }
    }
    assert!(refused >= 10, "{refused} refusals");
    assert!(wrong.is_empty(), "(pixels differing, max levels): {wrong:?}");
}

#[test]
fn every_format_and_exif_orientation_matches_pil() {
    // 16-bit RGB and grey PNG, palette PNG with and without tRNS, LA, RGBA, CMYK and grey JPEG, lossy
    // and lossless WebP, GIF (first frame), BMP; a JPEG in each of the 8 EXIF orientations.
    let mut worst = Vec::new();
    for case in image_cases("format").iter().chain(&image_cases("exif")) {
        let img = open_case(case).unwrap_or_else(|e| panic!("{}: {e}", case["name"]));
        worst.push((case["name"].as_str().unwrap().to_string(), compare_case(case, &img)));
    }
    let wrong: Vec<_> = worst.iter().filter(|(_, d)| *d != (0, 0)).collect();
    assert!(wrong.is_empty(), "(pixels differing, max levels): {wrong:?}");
}

#[test]
fn a_huge_jpeg_is_refused_from_its_header() {
    // The intact fixture with its frame header claiming 20000x20000 and its scan data cut off:
    // refused for its size before anything is decoded (not for being cut short).
    let mut bytes = std::fs::read(fixtures().join("images/src/jpeg-ok.jpg")).unwrap();
    let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    bytes[sof + 5..sof + 9].copy_from_slice(&[0x4E, 0x20, 0x4E, 0x20]);
    let sos = bytes.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    bytes.truncate(sos + 2 + u16::from_be_bytes([bytes[sos + 2], bytes[sos + 3]]) as usize);
    let e = preprocess::decode(&bytes, "huge.jpg").unwrap_err();
    assert_eq!(e.kind, bit50::ErrorKind::TooLarge, "{e}");
    assert!(e.message.starts_with("huge.jpg: image is 20000x20000, over the limit"), "{e}");
}
