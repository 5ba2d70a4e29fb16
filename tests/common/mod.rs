//! Shared test helpers: fixtures, the tiny and full-size test models, comparisons.
#![allow(dead_code)]

use bit50::config::{bit50_defaults, BitConfig, PreprocessorConfig};
use bit50::model::{Model, TensorMap};
use bit50::weights::{convert, random, Dtype, Manifest};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const PHOTOS: [&str; 5] = ["cat.png", "coffee.jpg", "rocket-exif.jpg", "astronaut-alpha.png", "camera-gray.png"];

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fresh scratch folder under the target directory.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What transformers computed for one test model (`tiny` or `full`).
pub fn expected(model: &str) -> &'static Value {
    static TINY: OnceLock<Value> = OnceLock::new();
    static FULL: OnceLock<Value> = OnceLock::new();
    let cell = if model == "tiny" { &TINY } else { &FULL };
    cell.get_or_init(|| {
        let text = std::fs::read_to_string(fixtures().join(model).join("expected.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    })
}

pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

pub fn expected_logits(model: &str, input: &str) -> Vec<f32> {
    floats(&expected(model)["inputs"][input]["logits"])
}

pub fn expected_top5(model: &str, input: &str) -> Vec<usize> {
    expected(model)["inputs"][input]["top5"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
}

/// The config and preprocessing of a test model, as published JSON.
pub fn configs(model: &str) -> (Value, Value) {
    if model == "tiny" {
        let read = |f: &str| serde_json::from_str(&std::fs::read_to_string(fixtures().join("tiny").join(f)).unwrap()).unwrap();
        (read("config.json"), read("preprocessor_config.json"))
    } else {
        bit50_defaults()
    }
}

pub fn bit_config(model: &str) -> BitConfig {
    BitConfig::from_json(&configs(model).0, model).unwrap()
}

pub fn preprocessor(model: &str) -> PreprocessorConfig {
    PreprocessorConfig::from_json(&configs(model).1, model).unwrap()
}

/// Seeded torch-layout weights of a test model, exactly as tools/make_fixtures.py drew them.
pub fn torch_weights(model: &str) -> TensorMap {
    let seed = expected(model)["seed"].as_u64().unwrap();
    random::weights(&bit_config(model), seed)
}

/// The test model taken through the web format (conversion, shards, manifest) and loaded back.
pub fn load(model: &str, dtype: Dtype) -> Model {
    let (config, preprocessor) = configs(model);
    through_web_format(convert::Source { name: model.into(), origin: model.into(), config, preprocessor, tensors: torch_weights(model) }, dtype)
}

/// Weights converted to the web format in memory, every shard verified, and loaded back.
pub fn through_web_format(source: convert::Source, dtype: Dtype) -> Model {
    let name = source.name.clone();
    let (manifest, files) = convert::convert(source, dtype, 32 << 20).unwrap();
    let shards: Vec<Vec<u8>> = files.into_iter().map(|(_, b)| b).collect();
    for (s, b) in manifest.shards.iter().zip(&shards) {
        Manifest::verify_shard(s, b, None, &s.file).unwrap();
    }
    manifest.into_model(&shards, &name).unwrap()
}

/// A JSON file of a fixture folder, if the folder has it.
pub fn fixture_json(folder: &str, file: &str) -> Option<Value> {
    let text = std::fs::read_to_string(fixtures().join(folder).join(file)).ok()?;
    Some(serde_json::from_str(&text).unwrap())
}

/// A fixture folder's seeded model (tiny, full, full224, full200) with transformers' numbers:
/// the folder's own config and preprocessing where it has them, else its family's (tiny's or
/// google/bit-50's).
pub fn fixture_model(folder: &str) -> (Value, Model) {
    let expected = fixture_json(folder, "expected.json").unwrap();
    let (config, preprocessor) = configs(if folder == "tiny" { "tiny" } else { "full" });
    let config = fixture_json(folder, "config.json").unwrap_or(config);
    let preprocessor = fixture_json(folder, "preprocessor_config.json").unwrap_or(preprocessor);
    let bit = BitConfig::from_json(&config, folder).unwrap();
    let tensors = random::weights(&bit, expected["seed"].as_u64().unwrap());
    let model = through_web_format(convert::Source { name: folder.into(), origin: folder.into(), config, preprocessor, tensors }, Dtype::F32);
    (expected, model)
}

/// An input of a fixture folder: its seeded uniform one, or the PIL processor's crop of a photo
/// (stored as PNG in `crops`/pil), normalized.
pub fn fixture_input(expected: &Value, crops: &str, preprocessor: &PreprocessorConfig, input: &str) -> Vec<f32> {
    if input == "uniform" {
        random::input(expected["input_seed"].as_u64().unwrap(), expected["image_size"].as_u64().unwrap() as usize)
    } else {
        bit50::preprocess::normalize(&image::open(pil_png(crops, input)).unwrap().to_rgb8(), preprocessor)
    }
}

/// The seeded uniform input of a test model.
pub fn uniform_input(model: &str) -> Vec<f32> {
    let e = expected(model);
    random::input(e["input_seed"].as_u64().unwrap(), e["image_size"].as_u64().unwrap() as usize)
}

/// The PIL processor's output for a photo, from its stored uint8 crop.
pub fn pil_input(model: &str, photo: &str) -> Vec<f32> {
    let crop = image::open(pil_png(model, photo)).unwrap().to_rgb8();
    bit50::preprocess::normalize(&crop, &preprocessor(model))
}

pub fn pil_png(model: &str, photo: &str) -> PathBuf {
    let stem = photo.rsplit_once('.').unwrap().0;
    fixtures().join(model).join("pil").join(format!("{stem}.png"))
}

pub fn input(model: &str, name: &str) -> Vec<f32> {
    if name == "uniform" {
        uniform_input(model)
    } else {
        pil_input(model, name)
    }
}

pub fn inputs() -> Vec<&'static str> {
    std::iter::once("uniform").chain(PHOTOS).collect()
}

/// One run of the `bit50` command.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// `bit50 ARGS`, its stderr without the lines the headless Vulkan loader adds.
pub fn bit50(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_bit50")).args(args).env("NODEVICE_SELECT", "1").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).lines().filter(|l| !l.contains("XDG_RUNTIME_DIR")).collect::<Vec<_>>().join("\n");
    Run { ok: out.status.success(), stdout: String::from_utf8_lossy(&out.stdout).into(), stderr }
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The tiny fixture model converted by the command itself, once per test binary.
pub fn converted_tiny() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = scratch("converted-tiny").join("model");
        let run = bit50(&["convert", path(&fixtures().join("tiny")), "--out", path(&out)]);
        assert!(run.ok, "{}", run.stderr);
        out
    })
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

pub fn top5(logits: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    order.truncate(5);
    order
}

/// Compares an `[h][w][c]` map with transformers' statistics of the same NCHW tensor.
/// Returns a description of the first disagreement.
pub fn compare_map(name: &str, nhwc: &[f32], want: &Value) -> Result<(), String> {
    let shape: Vec<usize> = want["shape"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
    let (c, pixels) = (shape[1], shape[2] * shape[3]);
    if nhwc.len() != c * pixels {
        return Err(format!("{name}: {} values, transformers has shape {shape:?}", nhwc.len()));
    }
    let n = nhwc.len() as f64;
    let mean = nhwc.iter().map(|&x| x as f64).sum::<f64>() / n;
    let std = (nhwc.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    let absmax = nhwc.iter().fold(0.0f64, |m, &x| m.max(x.abs() as f64));
    let scale = want["absmax"].as_f64().unwrap().max(1.0);
    let tol = 1e-4 * scale;
    for (what, got, exp) in
        [("mean", mean, want["mean"].as_f64().unwrap()), ("std", std, want["std"].as_f64().unwrap()), ("absmax", absmax, want["absmax"].as_f64().unwrap())]
    {
        if (got - exp).abs() > tol {
            return Err(format!("{name}: {what} {got} vs transformers {exp} (tolerance {tol:.1e})"));
        }
    }
    // The first values in NCHW order.
    for (i, exp) in floats(&want["sample"]).into_iter().enumerate() {
        let (channel, pixel) = (i / pixels, i % pixels);
        let got = nhwc[pixel * c + channel];
        if (got - exp).abs() as f64 > tol {
            return Err(format!("{name}: value {i} (NCHW order) is {got}, transformers {exp}"));
        }
    }
    Ok(())
}
