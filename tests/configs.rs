//! BiT configurations other than google/bit-50's, as transformers builds them
//! (tools/make_arch_fixtures.py): narrow (widths that are not multiples of 32, bottlenecks
//! that make_div rounds up, 8 groups), odd (a 12-channel stem, 5 stages, output_stride 8),
//! r101 (depths 3, 4, 23, 3) and wide (R50x3's widths).
//! Each converts and classifies on the CPU path and on both GPU convolution kernels within
//! 1e-4 of transformers' logits. And a narrow model damaged in any of the ways the full-size
//! one is refused for is refused too, naming the tensor or the problem.

mod common;

use bit50::config::BitConfig;
use bit50::cpu::CpuNetwork;
use bit50::gpu::{ConvKernel, Features, Gpu, GpuNetwork, Precision, Variant, Want};
use bit50::model::{parameters, Model};
use bit50::weights::{self, convert, random, sha256_hex, Dtype, Manifest};
use common::{compare_map, fixtures, floats, max_abs_diff, scratch, top5, PHOTOS};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const LOGIT_TOLERANCE: f32 = 1e-4;

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `bit50 ARGS`: (success, stderr).
fn bit50(args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_bit50")).args(args).output().unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stderr).to_string())
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A fixture folder: transformers' numbers, and the model converted and loaded back.
struct Fixture {
    name: &'static str,
    expected: Value,
    model: Model,
}

/// narrow and odd have transformers' own model.safetensors, converted by the CLI; r101 and wide are drawn
/// from their seed (checked tensor by tensor against the fixture script's hashes) and converted
/// in memory (the same conversion, without writing a GB of weights to disk first).
fn fixture(name: &'static str) -> Fixture {
    let dir = fixtures().join(name);
    let expected = read_json(&dir.join("expected.json"));
    let config = read_json(&dir.join("config.json"));
    let preprocessor = read_json(&dir.join("preprocessor_config.json"));
    let bit = BitConfig::from_json(&config, name).unwrap();
    // The parameters this engine expects are those of the model transformers built.
    let want: Vec<(String, Vec<usize>)> = expected["parameters"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(n, s)| (n.clone(), s.as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect()))
        .collect();
    let mut got: Vec<(String, Vec<usize>)> = parameters(&bit).into_iter().map(|p| (p.name, p.torch_shape)).collect();
    got.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got, want_sorted, "{name}: parameters differ from transformers'");
    let model = if dir.join("model.safetensors").exists() {
        let out = scratch(&format!("configs-{name}")).join("model");
        let (ok, err) = bit50(&["convert", path(&dir), "--out", path(&out)]);
        assert!(ok, "{name}: {err}");
        weights::load_dir(&out).unwrap()
    } else {
        let tensors = random::weights(&bit, expected["seed"].as_u64().unwrap());
        for (tensor, t) in &tensors {
            let want = expected["tensor_sha256"][tensor].as_str().unwrap();
            assert_eq!(sha256_hex(bytemuck::cast_slice(&t.data)), want, "{name}: generated {tensor} differs from the fixture script's");
        }
        let source = convert::Source { name: name.into(), origin: name.into(), config, preprocessor, tensors };
        let (manifest, files) = convert::convert(source, Dtype::F32, 32 << 20).unwrap();
        let shards: Vec<Vec<u8>> = files.into_iter().map(|(_, b)| b).collect();
        for (s, b) in manifest.shards.iter().zip(&shards) {
            Manifest::verify_shard(s, b, None, &s.file).unwrap();
        }
        manifest.into_model(&shards, name).unwrap()
    };
    Fixture { name, expected, model }
}

impl Fixture {
    /// The seeded uniform input, or a photo as the PIL processor made it (tiny's crops: the
    /// same processing), checked against the input transformers ran.
    fn input(&self, input: &str) -> Vec<f32> {
        let pixels = if input == "uniform" {
            random::input(self.expected["input_seed"].as_u64().unwrap(), self.expected["image_size"].as_u64().unwrap() as usize)
        } else {
            let stem = input.rsplit_once('.').unwrap().0;
            let crop = image::open(fixtures().join("tiny/pil").join(format!("{stem}.png"))).unwrap().to_rgb8();
            bit50::preprocess::normalize(&crop, &self.model.preprocessor)
        };
        let want = self.expected["inputs"][input]["input_sha256"].as_str().unwrap();
        assert_eq!(sha256_hex(bytemuck::cast_slice(&pixels)), want, "{}: input {input} is not the one transformers ran", self.name);
        pixels
    }

    /// Asserts 1e-4 on every logit and the same top-5; returns the error.
    fn check_logits(&self, what: &str, input: &str, logits: &[f32]) -> f32 {
        let want = &self.expected["inputs"][input];
        let err = max_abs_diff(logits, &floats(&want["logits"]));
        assert!(err <= LOGIT_TOLERANCE, "{what} {} {input}: max logit error {err} > {LOGIT_TOLERANCE}", self.name);
        let top: Vec<usize> = want["top5"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
        assert_eq!(top5(logits), top, "{what} {} {input}: top-5", self.name);
        err
    }

    fn stats(&self, input: &str, map: &str) -> &Value {
        &self.expected["inputs"][input]["stats"][map]
    }

    /// The CPU path on every input: each stage's statistics, the pooled features and the logits.
    fn check_cpu(&self) -> f32 {
        let net = CpuNetwork::new(self.model.network.clone());
        let mut worst = 0.0f32;
        for input in inputs() {
            let out = net.forward(&self.input(input));
            let what = format!("cpu path {} {input}", self.name);
            compare_map(&format!("{what} stem"), &out.stem.data, self.stats(input, "stem")).unwrap();
            for (i, stage) in out.stages.iter().enumerate() {
                let map = format!("stage{}", i + 1);
                compare_map(&format!("{what} {map}"), &stage.data, self.stats(input, &map)).unwrap();
            }
            compare_map(&format!("{what} norm"), &out.norm.data, self.stats(input, "norm")).unwrap();
            compare_map(&format!("{what} pooled"), &out.pooled, self.stats(input, "pooled")).unwrap();
            worst = worst.max(self.check_logits("cpu path", input, &out.logits));
        }
        eprintln!("{}: cpu path ({}), max |logit - transformers| = {worst:.2e}", self.name, bit50::cpu::kernel_name());
        worst
    }

    /// One GPU convolution kernel, f32, on `inputs`: the stem's and each stage's statistics,
    /// the pooled features and the logits.
    fn check_gpu(&self, conv: ConvKernel, inputs: &[&str]) -> f32 {
        let variant = Variant { conv, precision: Precision::F32, subgroups: false };
        let gpu = pollster::block_on(Gpu::new(Features::ALL)).expect("a GPU adapter (install mesa-vulkan-drivers for lavapipe)");
        let mut net = pollster::block_on(GpuNetwork::new(gpu, &self.model.network, variant, 1)).unwrap();
        assert_eq!(net.variant(), variant);
        let mut worst = 0.0f32;
        for &input in inputs {
            let what = format!("gpu {} {} {input}", variant.describe(), self.name);
            let out = pollster::block_on(net.run(&[&self.input(input)], Want { pooled: true, taps: true, ..Want::default() })).unwrap().remove(0);
            let taps = out.taps.as_ref().unwrap();
            compare_map(&format!("{what} stem"), &taps[0], self.stats(input, "stem")).unwrap();
            for (i, stage) in taps[1..].iter().enumerate() {
                let map = format!("stage{}", i + 1);
                compare_map(&format!("{what} {map}"), stage, self.stats(input, &map)).unwrap();
            }
            compare_map(&format!("{what} pooled"), out.pooled.as_ref().unwrap(), self.stats(input, "pooled")).unwrap();
            worst = worst.max(self.check_logits(&format!("gpu {}", variant.describe()), input, &out.logits));
        }
        eprintln!("{}: gpu {}, max |logit - transformers| = {worst:.2e} ({} inputs)", self.name, variant.describe(), inputs.len());
        worst
    }
}

fn inputs() -> Vec<&'static str> {
    std::iter::once("uniform").chain(PHOTOS).collect()
}

fn check_paths(name: &'static str, tiled_inputs: &[&str]) {
    let f = fixture(name);
    f.check_cpu();
    f.check_gpu(ConvKernel::Registers, &inputs());
    f.check_gpu(ConvKernel::Tiled, tiled_inputs);
}

#[test]
fn narrow_converts_and_matches_transformers_on_cpu_and_gpu() {
    check_paths("narrow", &inputs());
}

/// A stem width that is not a multiple of 8 (12: the GPU pads it), 3 channels per group in the
/// stem, 5 stages, output_stride 8 (the last three stages keep stride 1).
#[test]
fn odd_converts_and_matches_transformers_on_cpu_and_gpu() {
    check_paths("odd", &inputs());
}

#[test]
fn r101_matches_transformers_on_cpu_and_gpu() {
    check_paths("r101", &inputs());
}

/// The tiled kernels are slow on lavapipe (barriers), and R50x3 is 9 times R50's work: two inputs.
#[test]
fn wide_matches_transformers_on_cpu_and_gpu() {
    check_paths("wide", &["uniform", "cat.png"]);
}

/// The configs transformers builds but cannot run, or refuses to build (recorded in
/// narrow/expected.json with their exceptions), are refused here too, naming the field.
#[test]
fn what_transformers_refuses_is_refused() {
    let narrow = read_json(&fixtures().join("narrow/config.json"));
    let recorded = read_json(&fixtures().join("narrow/expected.json"))["transformers_rejects"].clone();
    let with = |fields: Value| {
        let mut c = narrow.clone();
        for key in ["embedding_size", "hidden_sizes", "depths", "num_groups", "width_factor"] {
            c.as_object_mut().unwrap().remove(key); // transformers' defaults unless given
        }
        for (k, v) in fields.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let cases = [
        ("width_factor 3, default hidden_sizes", with(serde_json::json!({"width_factor": 3})), "hidden_sizes"),
        (
            "width_factor 2, embedding_size 24",
            with(serde_json::json!({"width_factor": 2, "embedding_size": 24, "hidden_sizes": [40, 72, 136, 264], "depths": [1, 1, 1, 1], "num_groups": 8})),
            "hidden_sizes",
        ),
        (
            "hidden_sizes[-1] 260",
            with(serde_json::json!({"embedding_size": 24, "hidden_sizes": [40, 72, 136, 260], "depths": [1, 1, 1, 1], "num_groups": 4})),
            "hidden_sizes",
        ),
        (
            "num_groups 32 with embedding_size 24",
            with(serde_json::json!({"embedding_size": 24, "hidden_sizes": [64, 128, 256, 512], "depths": [1, 1, 1, 1], "num_groups": 32})),
            "embedding_size",
        ),
        (
            "num_groups 8 with embedding_size 20",
            with(serde_json::json!({"embedding_size": 20, "hidden_sizes": [40, 72, 136, 264], "depths": [1, 1, 1, 1], "num_groups": 8})),
            "embedding_size",
        ),
    ];
    assert_eq!(recorded.as_array().unwrap().len(), cases.len());
    for ((what, config, field), rejected) in cases.iter().zip(recorded.as_array().unwrap()) {
        assert!(rejected["config"].as_str().unwrap().starts_with(what), "{what}: the fixture records {}", rejected["config"]);
        let err = BitConfig::from_json(config, "config.json").unwrap_err().message;
        eprintln!("{what}: {err}\n  (transformers: {} at {})", rejected["message"], rejected["stage"]);
        assert!(err.starts_with(&format!("config.json: unsupported {field} = ")), "{what}: {err}");
    }
    // A width that make_div rounds (44 -> 48) is not refused: transformers builds it.
    let mut c = narrow.clone();
    c["hidden_sizes"] = serde_json::json!([44, 72, 136, 264]);
    assert!(BitConfig::from_json(&c, "config.json").is_ok());
}
