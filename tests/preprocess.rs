//! Preprocessing against PIL, pixel by pixel: decode + EXIF orientation + RGB
//! conversion + PIL bilinear resize + floor centre crop, for every test photo at
//! the tiny model's 64x64 and google/bit-50's 448x448; then normalization exactly
//! as transformers' processor computes it. Every pixel of every photo is identical to PIL's.

mod common;

use bit50::preprocess;
use common::*;

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
