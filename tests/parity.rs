//! Parity with transformers' BitForImageClassification: the reference (CPU), the fast
//! CPU path (the browser's fallback) and the WGSL kernels (GPU, on lavapipe here and in CI) against logits and layer statistics
//! that tools/make_fixtures.py recorded, for the tiny model and the full-size google/bit-50
//! architecture with seeded weights. Every logit within 1e-4 (f32).

mod common;

use bit50::cpu::CpuNetwork;
use bit50::gpu::{ConvKernel, Features, Gpu, GpuNetwork, Precision, Variant, Want};
use bit50::layers::{self, Forward};
use bit50::model::Model;
use bit50::reference;
use bit50::weights::{sha256_hex, Dtype};
use common::*;
use std::sync::OnceLock;

const LOGIT_TOLERANCE: f32 = 1e-4;

fn model(name: &str) -> &'static Model {
    static TINY: OnceLock<Model> = OnceLock::new();
    static FULL: OnceLock<Model> = OnceLock::new();
    let cell = if name == "tiny" { &TINY } else { &FULL };
    cell.get_or_init(|| load(name, Dtype::F32))
}

const F32_REGISTERS: Variant = Variant { conv: ConvKernel::Registers, precision: Precision::F32, subgroups: false };

fn gpu_network(model: &Model) -> GpuNetwork {
    gpu_network_with(model, F32_REGISTERS, 1)
}

fn gpu_network_with(model: &Model, variant: Variant, batch: usize) -> GpuNetwork {
    let gpu = pollster::block_on(Gpu::new(Features::ALL)).expect("a GPU adapter (install mesa-vulkan-drivers for lavapipe)");
    pollster::block_on(GpuNetwork::new(gpu, &model.network, variant, batch)).unwrap()
}

fn check_generator(name: &str) {
    let want = &expected(name)["tensor_sha256"];
    let tensors = torch_weights(name);
    // The fixture also hashes the seeded input under "input".
    assert_eq!(tensors.len() + 1, want.as_object().unwrap().len());
    for (tensor, t) in &tensors {
        let got = sha256_hex(bytemuck::cast_slice(&t.data));
        assert_eq!(got, want[tensor].as_str().unwrap(), "{name}: generated {tensor} differs from the fixture script's");
    }
    let input = uniform_input(name);
    assert_eq!(sha256_hex(bytemuck::cast_slice(&input)), want["input"].as_str().unwrap());
}

#[test]
fn generator_draws_the_fixture_scripts_weights_tiny() {
    check_generator("tiny");
}

#[test]
fn generator_draws_the_fixture_scripts_weights_full() {
    check_generator("full");
}

fn check_logits(what: &str, got: &[f32], model: &str, input: &str) {
    let want = expected_logits(model, input);
    let err = max_abs_diff(got, &want);
    println!("{what} {model} {input}: max |logit - transformers| = {err:.2e}");
    assert!(err <= LOGIT_TOLERANCE, "{what} {model} {input}: max logit error {err} > {LOGIT_TOLERANCE}");
    assert_eq!(top5(got), expected_top5(model, input), "{what} {model} {input}: top-5");
}

fn check_cpu(name: &str, what: &str, forward: impl Fn(&[f32]) -> Forward) {
    for input in inputs() {
        let out = forward(&input_of(name, input));
        let stats = &expected(name)["inputs"][input]["stats"];
        let maps = [("stem", &out.stem), ("stage1", &out.stages[0]), ("stage2", &out.stages[1]), ("stage3", &out.stages[2]), ("stage4", &out.stages[3]), ("norm", &out.norm)];
        for (map, act) in maps {
            compare_map(&format!("{what} {name} {input} {map}"), &act.data, &stats[map]).unwrap();
        }
        compare_map(&format!("{what} {name} {input} pooled"), &out.pooled, &stats["pooled"]).unwrap();
        check_logits(what, &out.logits, name, input);
    }
}

fn input_of(name: &str, input: &str) -> Vec<f32> {
    common::input(name, input)
}

#[test]
fn cpu_reference_matches_transformers_tiny() {
    check_cpu("tiny", "reference", |x| reference::forward(&model("tiny").network, x));
}

#[test]
fn cpu_reference_matches_transformers_full() {
    check_cpu("full", "reference", |x| reference::forward(&model("full").network, x));
}

/// The fast CPU path: transformers' numbers, and the reference's class activation map.
fn check_cpu_path(name: &str) {
    let m = model(name);
    let net = CpuNetwork::new(m.network.clone());
    check_cpu(name, "cpu path", |x| net.forward(x));
    let pixels = input_of(name, "cat.png");
    let (out, want) = (net.forward(&pixels), reference::forward(&m.network, &pixels));
    let class = top5(&out.logits)[0];
    let (map, want) = (net.class_map(&out, class), layers::class_map(&m.network, &want, class));
    let scale = want.iter().fold(1.0f32, |s, x| s.max(x.abs()));
    assert!(max_abs_diff(&map, &want) < 1e-4 * scale, "cpu path: class map differs from the reference");
}

#[test]
fn cpu_path_matches_transformers_tiny() {
    check_cpu_path("tiny");
}

#[test]
fn cpu_path_matches_transformers_full() {
    check_cpu_path("full");
}

fn check_gpu(name: &str, variant: Variant, inputs: &[&str]) {
    let m = model(name);
    let mut net = gpu_network_with(m, variant, 1);
    assert_eq!(net.variant(), variant);
    let want = Want { pooled: true, taps: true, ..Want::default() };
    for &input in inputs {
        let out = pollster::block_on(net.run(&[&input_of(name, input)], want)).unwrap().remove(0);
        let stats = &expected(name)["inputs"][input]["stats"];
        let taps = out.taps.as_ref().unwrap();
        compare_map(&format!("gpu {name} {input} stem"), &taps[0], &stats["stem"]).unwrap();
        for (i, stage) in taps[1..].iter().enumerate() {
            compare_map(&format!("gpu {name} {input} stage{}", i + 1), stage, &stats[format!("stage{}", i + 1).as_str()]).unwrap();
        }
        compare_map(&format!("gpu {name} {input} pooled"), out.pooled.as_ref().unwrap(), &stats["pooled"]).unwrap();
        check_logits(&format!("gpu {}", variant.describe()), &out.logits, name, input);
        // The plain path (no taps) gives the very same logits.
        assert_eq!(pollster::block_on(net.logits(&input_of(name, input))).unwrap(), out.logits);
    }
}

#[test]
fn gpu_kernels_match_transformers_tiny() {
    check_gpu("tiny", F32_REGISTERS, &inputs());
}

#[test]
fn gpu_kernels_match_transformers_full() {
    check_gpu("full", F32_REGISTERS, &inputs());
}

/// The workgroup-memory kernels that GPUs get (lavapipe runs them too, slowly: barriers).
#[test]
fn tiled_gpu_kernels_match_transformers_tiny() {
    check_gpu("tiny", Variant { conv: ConvKernel::Tiled, ..F32_REGISTERS }, &inputs());
}

#[test]
fn tiled_gpu_kernels_match_transformers_full() {
    check_gpu("full", Variant { conv: ConvKernel::Tiled, ..F32_REGISTERS }, &["cat.png"]);
}

/// Subgroup reductions (lavapipe has subgroups of 8): transformers' numbers, and the plain
/// kernels' within 1e-5 (relative to the largest logit: the sums run in another order).
#[test]
fn subgroup_gpu_kernels_match_transformers_and_the_plain_kernels() {
    for name in ["tiny", "full"] {
        let inputs: &[&str] = if name == "tiny" { &inputs() } else { &["cat.png"] };
        let subgroups = Variant { subgroups: true, ..F32_REGISTERS };
        check_gpu(name, subgroups, inputs);
        let (mut plain, mut with) = (gpu_network_with(model(name), F32_REGISTERS, 1), gpu_network_with(model(name), subgroups, 1));
        let want = Want { pooled: true, ..Want::default() };
        for input in inputs {
            let x = input_of(name, input);
            let (a, b) = (pollster::block_on(plain.run(&[&x], want)).unwrap().remove(0), pollster::block_on(with.run(&[&x], want)).unwrap().remove(0));
            let scale = |v: &[f32]| v.iter().fold(1.0f32, |m, x| m.max(x.abs()));
            let dl = max_abs_diff(&a.logits, &b.logits) / scale(&a.logits);
            let dp = max_abs_diff(a.pooled.as_ref().unwrap(), b.pooled.as_ref().unwrap()) / scale(a.pooled.as_ref().unwrap());
            println!("subgroups vs plain {name} {input}: logits {dl:.1e}, pooled {dp:.1e}");
            assert!(dl <= 1e-5 && dp <= 1e-5, "{name} {input}: subgroup kernels differ from the plain ones by {dl} (logits), {dp} (pooled)");
        }
    }
}

/// f16 on the GPU: f16 weights (as stored) and activations, with f32 or f16 arithmetic. Its
/// error is measured here and bounded per model size at about twice what was measured; the
/// top-5 must hold on every input, the uniform one included (its closest neighbours in the
/// top 6 are 0.18 apart (tiny) and 0.021 (full), more than twice the f16 error).
fn check_f16(name: &str, precision: Precision, bound: f32) {
    let m = load(name, Dtype::F16);
    let mut net = gpu_network_with(&m, Variant { precision, ..F32_REGISTERS }, 1);
    let mut worst: f32 = 0.0;
    for input in inputs() {
        let logits = pollster::block_on(net.logits(&input_of(name, input))).unwrap();
        let err = max_abs_diff(&logits, &expected_logits(name, input));
        worst = worst.max(err);
        println!("{} {name} {input}: max |logit - transformers| = {err:.2e}", precision.name());
        assert_eq!(top5(&logits), expected_top5(name, input), "{} {name} {input}: top-5", precision.name());
    }
    println!("{} {name}: worst {worst:.2e}", precision.name());
    assert!(worst < bound, "{} {name}: max logit error {worst} over {bound}", precision.name());
}

/// int8 storage (per-output-channel scales) quarters the download; its error is measured
/// here on the CPU path against transformers' f32 logits, on every input (the uniform one
/// too), and bounded per model size. With seeded random weights the top classes are close
/// (astronaut: 0.03 between the first two), so the top-1 must hold only where transformers'
/// margin is clear.
fn check_int8(name: &str, bound: f32) {
    let m = load(name, Dtype::Int8);
    let net = CpuNetwork::new(m.network.clone());
    let (mut worst, mut top1_same, mut top5_overlap, mut count) = (0.0f32, 0, 0, 0);
    for input in inputs() {
        let logits = net.forward(&input_of(name, input)).logits;
        let want_logits = expected_logits(name, input);
        let err = max_abs_diff(&logits, &want_logits);
        let (got, want) = (top5(&logits), expected_top5(name, input));
        let margin = want_logits[want[0]] - want_logits[want[1]];
        worst = worst.max(err);
        count += 1;
        top1_same += (got[0] == want[0]) as usize;
        let overlap = got.iter().filter(|c| want.contains(c)).count();
        top5_overlap += overlap;
        println!("int8 {name} {input}: max |logit - transformers| = {err:.2e}, top-5 {got:?} vs {want:?} (top-1 margin {margin:.3})");
        if margin > 0.1 {
            assert_eq!(got[0], want[0], "int8 {name} {input}: top-1 changed despite a margin of {margin}");
        }
        assert!(overlap >= 4, "int8 {name} {input}: top-5 shares only {overlap} classes");
    }
    println!("int8 {name}: worst {worst:.2e}; top-1 same on {top1_same}/{count} inputs; top-5 overlap {top5_overlap}/{}", 5 * count);
    assert!(worst < bound, "int8 {name}: max logit error {worst} over {bound}");
}

#[test]
fn int8_weights_error_is_bounded_tiny() {
    // Measured: 1.39e-1 (cat.png).
    check_int8("tiny", 0.28);
}

#[test]
fn int8_weights_error_is_bounded_full() {
    // Measured: 3.85e-1 (rocket-exif.jpg). Twice that (0.77) would loosen the bound of 0.5 this
    // test had before, so it stays: 1.3x.
    check_int8("full", 0.5);
}

#[test]
fn f16_gpu_keeps_the_top5_tiny() {
    // Measured: 3.5e-3 (f16), 5.9e-3 (f16 arithmetic).
    check_f16("tiny", Precision::F16, 7e-3);
    check_f16("tiny", Precision::F16Arithmetic, 1.2e-2);
}

#[test]
fn f16_gpu_keeps_the_top5_full() {
    // Measured: 1.43e-2 (f16), 1.61e-2 (f16 arithmetic).
    check_f16("full", Precision::F16, 3e-2);
    check_f16("full", Precision::F16Arithmetic, 3.2e-2);
}

/// `embed` returns the pooled features and `explain` a class activation map whose
/// mean plus the class bias is the logit; both agree with the reference.
fn check_embed_explain(name: &str) {
    let m = model(name);
    let mut net = gpu_network(m);
    let pixels = input_of(name, "cat.png");
    let out = reference::forward(&m.network, &pixels);
    let first = pollster::block_on(net.run(&[&pixels], Want { pooled: true, class_map: Some(None), ..Want::default() })).unwrap().remove(0);
    let (logits, pooled) = (first.logits, first.pooled.unwrap());
    assert!(max_abs_diff(&pooled, &out.pooled) < 1e-5, "pooled features differ from the reference");
    assert!(max_abs_diff(&logits, &out.logits) < 1e-4);
    let class = top5(&logits)[0];
    assert_eq!(first.class_map.as_ref().unwrap().0, class, "the map of the most probable class");
    let map = pollster::block_on(net.run(&[&pixels], Want { class_map: Some(Some(class)), ..Want::default() })).unwrap().remove(0).class_map.unwrap().1;
    assert_eq!(map, first.class_map.unwrap().1);
    let want = layers::class_map(&m.network, &out, class);
    assert_eq!(map.len(), out.norm.h * out.norm.w);
    let scale = want.iter().fold(1.0f32, |s, x| s.max(x.abs()));
    assert!(max_abs_diff(&map, &want) < 1e-4 * scale, "class map differs from the reference");
    let mean = map.iter().map(|&x| x as f64).sum::<f64>() / map.len() as f64;
    let logit = mean + m.network.classifier_bias[class] as f64;
    assert!((logit - logits[class] as f64).abs() < 1e-4, "mean of the class map + bias = {logit}, logit {}", logits[class]);
    assert!(pollster::block_on(net.run(&[&pixels], Want { class_map: Some(Some(m.network.classes())), ..Want::default() })).is_err());
}

#[test]
fn embed_and_explain_match_the_reference_tiny() {
    check_embed_explain("tiny");
}

#[test]
fn embed_and_explain_match_the_reference_full() {
    check_embed_explain("full");
}

/// Several images in one submission: each gets exactly what it gets alone, in every precision,
/// also when the batch is larger than one submission holds.
#[test]
fn a_batch_gives_each_image_what_it_gets_alone() {
    let m = model("tiny");
    let all: Vec<Vec<f32>> = inputs().iter().map(|i| input_of("tiny", i)).collect();
    let images: Vec<&[f32]> = all.iter().map(|x| x.as_slice()).collect();
    for precision in [Precision::F32, Precision::F16, Precision::F16Arithmetic] {
        let variant = Variant { precision, ..F32_REGISTERS };
        let mut alone = gpu_network_with(m, variant, 1);
        let mut batched = gpu_network_with(m, variant, 4);
        assert_eq!(batched.capacity(), 4);
        let want = Want { pooled: true, class_map: Some(None), ..Want::default() };
        let together = pollster::block_on(batched.run(&images, want)).unwrap();
        assert_eq!(together.len(), images.len(), "6 images in submissions of 4 and 2");
        for (i, (x, out)) in images.iter().zip(&together).enumerate() {
            let one = pollster::block_on(alone.run(&[x], want)).unwrap().remove(0);
            assert_eq!(out.logits, one.logits, "{} image {i}: logits", precision.name());
            assert_eq!(out.pooled, one.pooled, "{} image {i}: pooled", precision.name());
            assert_eq!(out.class_map, one.class_map, "{} image {i}: class map", precision.name());
        }
    }
}

/// Where the adapter lacks shader-f16 and subgroups, the engine runs the f32 plain kernels,
/// chosen by feature detection, even for f16 weights: and they are within 1e-4.
#[test]
fn without_f16_and_subgroups_the_f32_plain_kernels_run() {
    use bit50::engine::{Backend, Engine, Options};
    let m = load("tiny", Dtype::F16);
    let options = Options { backend: Backend::Gpu, features: Features::NONE, ..Options::default() };
    let clock = std::time::Instant::now();
    let mut engine = pollster::block_on(Engine::open(m.network.clone(), m.stored, &options, |_| {}, || clock.elapsed().as_secs_f64() * 1e3, |_| {})).unwrap();
    let variant = engine.gpu().expect("the GPU runs").variant();
    assert_eq!((variant.precision, variant.subgroups), (Precision::F32, false));
    // With every feature allowed, lavapipe runs f16 with subgroups instead.
    let options = Options { features: Features::ALL, ..options };
    let full = pollster::block_on(Engine::open(m.network.clone(), m.stored, &options, |_| {}, || clock.elapsed().as_secs_f64() * 1e3, |_| {})).unwrap();
    let variant = full.gpu().unwrap().variant();
    assert!(variant.precision != Precision::F32 && variant.subgroups, "{}", variant.describe());
    let x = input_of("tiny", "cat.png");
    let out = pollster::block_on(engine.run(&[&x], Want::default())).unwrap().remove(0);
    // f16-stored weights: their rounding is all that differs from transformers.
    let err = max_abs_diff(&out.logits, &expected_logits("tiny", "cat.png"));
    assert!(err < 1e-2, "f16 weights on the f32 kernels: {err}");
    assert_eq!(top5(&out.logits), expected_top5("tiny", "cat.png"));
}

/// The weights can reach the GPU one tensor at a time (as shards arrive in the browser): a
/// network recorded from the skeleton and then filled computes what a loaded one does, and
/// names what is missing or misshapen.
#[test]
fn a_skeleton_filled_tensor_by_tensor_is_the_loaded_network() {
    use bit50::model::{parameters, Network};
    let cfg = bit_config("tiny");
    let m = model("tiny");
    let gpu = pollster::block_on(Gpu::new(Features::ALL)).unwrap();
    let mut net = pollster::block_on(GpuNetwork::new(gpu, &Network::skeleton(&cfg, m.network.image_size), F32_REGISTERS, 1)).unwrap();
    let params = parameters(&cfg);
    assert_eq!(net.missing().len(), params.len());
    let tensors = {
        let (config, preprocessor) = configs("tiny");
        let source = bit50::weights::convert::Source { name: "tiny".into(), origin: "tiny".into(), config, preprocessor, tensors: torch_weights("tiny") };
        let (manifest, files) = bit50::weights::convert::convert(source, Dtype::F32, 32 << 20).unwrap();
        let mut map = bit50::model::TensorMap::new();
        for ((_, bytes), shard) in files.iter().zip(&manifest.shards) {
            bit50::weights::read_safetensors(bytes, &shard.file, &mut map).unwrap();
        }
        map
    };
    let wrong = net.upload("classifier.1.bias", &[0.0; 3]).unwrap_err();
    assert!(wrong.message.contains("classifier.1.bias") && wrong.message.contains("expected 10"), "{wrong}");
    assert!(net.upload("bit.no.such.weight", &[0.0]).unwrap_err().message.contains("bit.no.such.weight"));
    for (name, t) in &tensors {
        net.upload(name, &t.data).unwrap();
    }
    assert!(net.missing().is_empty());
    let x = input_of("tiny", "cat.png");
    let mut loaded = gpu_network(m);
    assert_eq!(pollster::block_on(net.logits(&x)).unwrap(), pollster::block_on(loaded.logits(&x)).unwrap());
}
