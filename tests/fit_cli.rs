//! `bit50 fit` and `bit50 classify --head` as a person would use them, with the tiny model:
//! classes any network's features separate (colours, stripes against dots, each photo against
//! the others), fit, then held-out images classified into the right class; and every kind of
//! bad input refused with one clear line, nothing written and nothing lost.

mod common;

use common::*;
use image::{Rgb, RgbImage};
use serde_json::Value;
use std::path::Path;

/// The tiny fixture model, converted by the command itself.
fn tiny() -> &'static str {
    path(converted_tiny())
}

/// xorshift64*: seeded pixels.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545F4914F6CDD1D) >> 33) as u32 % n
    }
}

/// Noisy images of one colour.
fn colour(base: [u8; 3], rng: &mut Rng) -> RgbImage {
    RgbImage::from_fn(80, 72, |_, _| Rgb(base.map(|c| (c as i32 + rng.below(101) as i32 - 50).clamp(0, 255) as u8)))
}

/// Vertical stripes (period 6 to 16, any phase) or a grid of dots, black on white.
fn pattern(stripes: bool, i: u32) -> RgbImage {
    let period = 6 + 2 * (i % 6);
    RgbImage::from_fn(80, 72, |x, y| {
        let ink = if stripes {
            (x + i) % period < period / 2
        } else {
            let (dx, dy) = ((x + i) % 12, (y + 3 * i) % 12);
            dx * dx + dy * dy < 2 + i % 3 * 3
        };
        Rgb(if ink { [0; 3] } else { [255; 3] })
    })
}

/// Writes images into `dir/name/0.png, 1.png...`; their paths.
fn write(dir: &Path, name: &str, images: Vec<RgbImage>) -> Vec<String> {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    images
        .into_iter()
        .enumerate()
        .map(|(i, img)| {
            let p = folder.join(format!("{i}.png"));
            img.save(&p).unwrap();
            p.to_str().unwrap().to_string()
        })
        .collect()
}

/// `classify --head --json` on files: each file's most probable custom class and its probability.
fn custom_top(head: &str, files: &[String]) -> Vec<(String, f64)> {
    let mut args = vec!["classify", "--model", tiny(), "--head", head, "--json"];
    args.extend(files.iter().map(String::as_str));
    let run = bit50(&args);
    assert!(run.ok, "{}", run.stderr);
    run.stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let custom = v["custom"].as_array().unwrap();
            let probs: f64 = custom.iter().map(|c| c["prob"].as_f64().unwrap()).sum();
            assert!((probs - 1.0).abs() < 1e-5 && v["top"].as_array().unwrap().len() == 5, "{l}");
            (custom[0]["label"].as_str().unwrap().to_string(), custom[0]["prob"].as_f64().unwrap())
        })
        .collect()
}

fn fit(args: &[&str]) -> Run {
    let mut all = vec!["fit", "--model", tiny()];
    all.extend(args);
    bit50(&all)
}

#[test]
fn colours_fit_then_held_out_images_land_in_their_class() {
    let dir = scratch("fit-colours");
    let mut rng = Rng(1);
    let red = write(&dir, "red", (0..5).map(|_| colour([200, 40, 40], &mut rng)).collect());
    let blue = write(&dir, "blue", (0..5).map(|_| colour([40, 60, 200], &mut rng)).collect());
    let head = dir.join("colours.json");
    // Three examples each, as a comma-separated list; the last two of each are held out.
    let run = fit(&["--class", &format!("red={}", red[..3].join(",")), "--class", &format!("blue={}", blue[..3].join(",")), "--out", path(&head)]);
    assert!(run.ok, "{}", run.stderr);
    println!("{}", run.stdout);
    for line in ["examples   red 3, blue 3 (6 photos)", "training   100.0% (6/6) right", "leave-one-out 100.0% (6/6) right", "wrote      "] {
        assert!(run.stdout.contains(line), "no {line:?} in:\n{}", run.stdout);
    }
    let file: Value = serde_json::from_slice(&std::fs::read(&head).unwrap()).unwrap();
    assert_eq!(
        (file["format"].as_str(), file["features"].as_u64(), file["classes"].clone()),
        (Some("bit50-head"), Some(256), serde_json::json!(["red", "blue"]))
    );
    let manifest: Value = serde_json::from_slice(&std::fs::read(Path::new(tiny()).join("manifest.json")).unwrap()).unwrap();
    let listing: String = manifest["shards"].as_array().unwrap().iter().map(|s| format!("{}\n", s["sha256"].as_str().unwrap())).collect();
    assert_eq!(file["model"]["sha256"], bit50::weights::sha256_hex(listing.as_bytes()), "the model's sha256: of its shards' sha256 lines");
    let held: Vec<String> = red[3..].iter().chain(&blue[3..]).cloned().collect();
    let got = custom_top(path(&head), &held);
    assert_eq!(got.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(), ["red", "red", "blue", "blue"], "{got:?}");
    assert!(got.iter().all(|(_, p)| *p > 0.9), "{got:?}");
    // The text output lists them too.
    let run = bit50(&["classify", "--model", tiny(), "--head", path(&head), &held[0]]);
    assert!(run.stdout.contains("  your classes:\n") && run.stdout.contains("%  red\n"), "{}", run.stdout);
}

#[test]
fn stripes_against_dots_from_folders_with_flips() {
    let dir = scratch("fit-patterns");
    let stripes = write(&dir, "stripes", (0..6).map(|i| pattern(true, i)).collect());
    let dots = write(&dir, "dots", (0..6).map(|i| pattern(false, i)).collect());
    // Train on images 0-3 of each, moved into their own folders; 4 and 5 are held out.
    for (name, files) in [("stripes", &stripes), ("dots", &dots)] {
        std::fs::create_dir_all(dir.join("train").join(name)).unwrap();
        for f in &files[..4] {
            std::fs::copy(f, dir.join("train").join(name).join(Path::new(f).file_name().unwrap())).unwrap();
        }
        // Not an image file name: a folder's other files are left out.
        std::fs::write(dir.join("train").join(name).join("notes.txt"), "four examples").unwrap();
    }
    let head = dir.join("patterns.json");
    let train = dir.join("train");
    let run = fit(&[
        "--class",
        &format!("stripes={}", path(&train.join("stripes"))),
        "--class",
        &format!("dots={}", path(&train.join("dots"))),
        "--flips",
        "--out",
        path(&head),
    ]);
    assert!(run.ok, "{}", run.stderr);
    println!("{}", run.stdout);
    assert!(run.stdout.contains("examples   stripes 4, dots 4 (8 photos, 16 views with their mirror images)"), "{}", run.stdout);
    let t: Value = serde_json::from_slice::<Value>(&std::fs::read(&head).unwrap()).unwrap()["training"].clone();
    assert_eq!((t["flips"].as_bool(), t["examples"].clone(), t["l2"].as_f64()), (Some(true), serde_json::json!([4, 4]), Some(1.0 / 16.0)));
    let held = vec![stripes[4].clone(), stripes[5].clone(), dots[4].clone(), dots[5].clone()];
    let got = custom_top(path(&head), &held);
    assert_eq!(got.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(), ["stripes", "stripes", "dots", "dots"], "{got:?}");
}

#[test]
fn one_photo_per_class_recognises_each_photo_mirrored() {
    // Five classes of one photo each (the scikit-image photos); their mirror images, never
    // seen, land in the class of their photo.
    let dir = scratch("fit-photos");
    let names = ["cat", "coffee", "rocket", "astronaut", "camera"];
    let classes: Vec<String> = names.iter().zip(PHOTOS).map(|(n, p)| format!("{n}={}", fixtures().join("photos").join(p).display())).collect();
    let flipped: Vec<String> = PHOTOS
        .iter()
        .map(|p| {
            let img = bit50::preprocess::open(&fixtures().join("photos").join(p)).unwrap();
            let out = dir.join(format!("mirrored-{p}.png"));
            image::imageops::flip_horizontal(&img).save(&out).unwrap();
            out.to_str().unwrap().to_string()
        })
        .collect();
    let head = dir.join("photos.json");
    let mut args: Vec<&str> = classes.iter().flat_map(|c| ["--class", c.as_str()]).collect();
    args.extend(["--out", path(&head)]);
    let run = fit(&args);
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains("leave-one-out not estimated: every class has a single photo"), "{}", run.stdout);
    let got = custom_top(path(&head), &flipped);
    assert_eq!(got.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(), names, "{got:?}");
}

/// A failure: non-zero exit, one "error: ..." line naming what is wrong, no panic.
fn assert_refused(run: &Run, problem: &str) {
    assert!(!run.ok, "accepted: {}", run.stdout);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {}", run.stderr);
    assert!(lines[0].starts_with("error: ") && lines[0].contains(problem), "want {problem:?} in {:?}", lines[0]);
}

#[test]
fn bad_examples_are_refused_and_the_old_head_is_kept() {
    let dir = scratch("fit-bad");
    let mut rng = Rng(2);
    let red = write(&dir, "red", (0..2).map(|_| colour([200, 40, 40], &mut rng)).collect());
    let blue = write(&dir, "blue", (0..2).map(|_| colour([40, 60, 200], &mut rng)).collect());
    let out = dir.join("head.json");
    let (r, b) = (format!("red={}", red.join(",")), format!("blue={}", blue.join(",")));
    assert!(fit(&["--class", &r, "--class", &b, "--out", path(&out)]).ok);
    let before = std::fs::read(&out).unwrap();
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, "not a photo").unwrap();
    let jpeg = std::fs::read(fixtures().join("photos/coffee.jpg")).unwrap();
    let cut = dir.join("cut.jpg");
    std::fs::write(&cut, &jpeg[..jpeg.len() / 2]).unwrap();
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    let cases: Vec<(Vec<String>, String)> = vec![
        (vec![r.clone()], "a head needs at least two classes to tell apart: give --class LABEL=FILES twice or more (got 1)".into()),
        (vec![r.clone(), "blue=".into()], "the class \"blue\" has no examples: give image files or a folder after blue=".into()),
        (vec![r.clone(), format!("blue={}", dir.join("empty").display())], "the folder".into()),
        (vec![r.clone(), format!("blue={},{}", blue[0], notes.display())], format!("{}: not an image", notes.display())),
        (vec![r.clone(), format!("blue={},{}", blue[0], cut.display())], format!("{}: truncated JPEG", cut.display())),
        (vec![r.clone(), format!("blue={}", dir.join("missing.png").display())], "missing.png: cannot read".into()),
        (vec![r.clone(), format!("Red={}", blue[0])], "--class: the label \"Red\" is given twice (as \"red\")".into()),
        (vec![r.clone(), format!("={}", blue[0])], "--class: class 2 has an empty label".into()),
        (vec![r.clone(), blue[0].clone()], "expected LABEL=FILES".into()),
    ];
    for (classes, problem) in cases {
        let mut args: Vec<&str> = classes.iter().flat_map(|c| ["--class", c.as_str()]).collect();
        args.extend(["--out", path(&out)]);
        assert_refused(&fit(&args), &problem);
        assert_eq!(std::fs::read(&out).unwrap(), before, "{problem}: the head file was touched");
    }
    assert_refused(&fit(&["--class", &r, "--class", &b, "--l2", "0", "--out", path(&out)]), "l2 0: expected a number from 1e-8 to 1e4");
    assert_refused(&fit(&["--class", &r, "--class", &b, "--l2", "much", "--out", path(&out)]), "--l2 \"much\": expected a number");
    assert_eq!(std::fs::read(&out).unwrap(), before);
    // No temporary file left beside it.
    assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains(".tmp-")));
}

#[test]
fn bad_head_files_and_heads_of_another_model_are_refused() {
    let dir = scratch("fit-heads");
    let mut rng = Rng(3);
    let red = write(&dir, "red", vec![colour([200, 40, 40], &mut rng)]);
    let blue = write(&dir, "blue", vec![colour([40, 60, 200], &mut rng)]);
    let head = dir.join("head.json");
    assert!(fit(&["--class", &format!("red={}", red[0]), "--class", &format!("blue={}", blue[0]), "--out", path(&head)]).ok);
    let good = std::fs::read_to_string(&head).unwrap();
    let classify = |file: &Path, model: &str| bit50(&["classify", "--model", model, "--head", path(file), &red[0]]);
    let write_head = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let truncated = write_head("truncated.json", &good[..good.len() - 40]);
    assert_refused(&classify(&truncated, tiny()), "truncated.json: the head file is truncated");
    let corrupt = write_head("corrupt.json", &good.replacen("\"weights\":[[", "\"weights\":[[\"x\",", 1));
    assert_refused(&classify(&corrupt, tiny()), "corrupt.json: a damaged head file");
    let wrong_size = write_head("wrong-size.json", &good.replace("\"features\":256", "\"features\":255"));
    assert_refused(&classify(&wrong_size, tiny()), "wrong-size.json: the weights of \"red\" have 256 values; the head takes 255 features");
    // The same network stored in int8 is another model: its features differ.
    let int8 = scratch("fit-int8").join("model");
    assert!(bit50(&["convert", path(&fixtures().join("tiny")), "--out", path(&int8), "--dtype", "int8"]).ok);
    assert_refused(&classify(&head, path(&int8)), "head.json: this head was trained on another model, \"tiny\" (sha256 ");
    assert!(classify(&head, tiny()).ok);
}

#[test]
fn the_gpu_and_the_cpu_path_give_the_same_head() {
    let dir = scratch("fit-engines");
    let mut rng = Rng(4);
    let red = write(&dir, "red", (0..4).map(|_| colour([200, 40, 40], &mut rng)).collect());
    let blue = write(&dir, "blue", (0..4).map(|_| colour([40, 60, 200], &mut rng)).collect());
    let (r, b) = (format!("red={}", red[..3].join(",")), format!("blue={}", blue[..3].join(",")));
    let mut heads = Vec::new();
    for engine in ["--gpu", "--cpu"] {
        let out = dir.join(format!("head{engine}.json"));
        let run = fit(&["--class", &r, "--class", &b, "--flips", engine, "--out", path(&out)]);
        assert!(run.ok, "{}", run.stderr);
        assert!(run.stdout.contains(if engine == "--gpu" { "(gpu, 256 features each)" } else { "(cpu path, 256 features each)" }), "{}", run.stdout);
        heads.push(bit50::head::Head::parse(&std::fs::read(&out).unwrap(), "head").unwrap());
    }
    // The same held-out features through both heads: the features of the two paths agree to
    // about 1e-5, and so do the heads.
    let run = bit50(&["classify", "--model", tiny(), "--json", "--embed", "--cpu", &red[3], &blue[3]]);
    for line in run.stdout.lines() {
        let features = floats(&serde_json::from_str::<Value>(line).unwrap()["embedding"]);
        let (g, c) = (heads[0].probabilities(&features), heads[1].probabilities(&features));
        let diff = g.iter().zip(&c).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff < 1e-4, "gpu head {g:?} vs cpu head {c:?}");
    }
}
