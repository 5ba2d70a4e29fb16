//! The class activation map (`explain`, the page's heatmap) against transformers': the map that
//! tools/make_fixtures.py computed with torch from BitModel's own last_hidden_state and the
//! classifier's weights (expected.json, "cam": the top-1 class, row-major h*w). Compared element
//! by element for the reference, the fast CPU path and the GPU kernels, tiny and full size; a
//! transposed or mirrored map is far outside the bound, so the comparison sees orientation.

mod common;

use bit50::cpu::CpuNetwork;
use bit50::gpu::{ConvKernel, Features, Gpu, GpuNetwork, Precision, Variant, Want};
use bit50::layers;
use bit50::model::Model;
use bit50::reference;
use bit50::weights::Dtype;
use common::*;

/// Relative to the map's largest magnitude (at least 1). transformers' own float32 map is up to
/// 5.1e-5 from a float64 run of the model (`data_max_abs_err_vs_f64`, full size, absmax about 20):
/// 2.6e-6 relative, the noise floor. Measured here, worst over the six inputs (reference, cpu
/// path, gpu): tiny 1.05e-6, 1.87e-6, 2.05e-6; full 1.93e-6, 1.78e-6, 1.97e-6.
const BOUND: f32 = 5e-6;

struct Cam {
    class: usize,
    h: usize,
    w: usize,
    data: Vec<f32>,
}

fn cam(model: &str, input: &str) -> Cam {
    let c = &expected(model)["inputs"][input]["cam"];
    let n = |k: &str| c[k].as_u64().unwrap() as usize;
    let cam = Cam { class: n("class"), h: n("height"), w: n("width"), data: floats(&c["data"]) };
    assert_eq!(cam.data.len(), cam.h * cam.w);
    assert_eq!(cam.class, expected_top5(model, input)[0], "{model} {input}: the map of the top-1 class");
    cam
}

fn scale(map: &[f32]) -> f32 {
    map.iter().fold(1.0f32, |s, x| s.max(x.abs()))
}

/// Max |got - transformers| relative to the map's scale; asserts the bound.
fn check(what: &str, model: &str, input: &str, got: &[f32], want: &Cam) -> f32 {
    assert_eq!(got.len(), want.data.len(), "{what} {model} {input}: {} values, transformers' map is {}x{}", got.len(), want.h, want.w);
    let err = max_abs_diff(got, &want.data) / scale(&want.data);
    println!("{what} {model} {input}: max |map - transformers| / scale = {err:.2e}");
    assert!(err <= BOUND, "{what} {model} {input}: class map error {err:.2e} > {BOUND:.0e} (relative)");
    err
}

fn transposed(c: &Cam) -> Vec<f32> {
    (0..c.h * c.w).map(|i| c.data[(i % c.w) * c.w + i / c.w]).collect()
}

fn mirrored(c: &Cam) -> Vec<f32> {
    (0..c.h * c.w).map(|i| c.data[(i / c.w) * c.w + c.w - 1 - i % c.w]).collect()
}

fn flipped(c: &Cam) -> Vec<f32> {
    (0..c.h * c.w).map(|i| c.data[(c.h - 1 - i / c.w) * c.w + i % c.w]).collect()
}

/// The bound discriminates: the fixture's map transposed, mirrored or upside down misses it by
/// orders of magnitude (on every input, so no input is symmetric enough to hide a bug).
fn orientation_matters(model: &str) {
    for input in inputs() {
        let c = cam(model, input);
        assert_eq!(c.h, c.w, "square maps");
        for (how, other) in [("transposed", transposed(&c)), ("mirrored", mirrored(&c)), ("upside down", flipped(&c))] {
            let err = max_abs_diff(&other, &c.data) / scale(&c.data);
            println!("{model} {input}: transformers' map {how}: {err:.2e} from itself");
            assert!(err > 1000.0 * BOUND, "{model} {input}: the map {how} is within {err:.2e} of itself");
        }
    }
}

fn check_model(model: &str, m: &Model, inputs: &[&str]) {
    let cpu = CpuNetwork::new(m.network.clone());
    let gpu = pollster::block_on(Gpu::new(Features::ALL)).expect("a GPU adapter (install mesa-vulkan-drivers for lavapipe)");
    let variant = Variant { conv: ConvKernel::Registers, precision: Precision::F32, subgroups: false };
    let mut net = pollster::block_on(GpuNetwork::new(gpu, &m.network, variant, 1)).unwrap();
    let mut worst = [0.0f32; 3];
    for &input in inputs {
        let want = cam(model, input);
        let pixels = common::input(model, input);
        let reference = reference::forward(&m.network, &pixels);
        worst[0] = worst[0].max(check("reference", model, input, &layers::class_map(&m.network, &reference, want.class), &want));
        let fast = cpu.forward(&pixels);
        worst[1] = worst[1].max(check("cpu path", model, input, &cpu.class_map(&fast, want.class), &want));
        // The GPU's map of its own top class (what `explain` shows), and of the class asked for.
        let out = pollster::block_on(net.run(&[&pixels], Want { class_map: Some(None), ..Want::default() })).unwrap().remove(0);
        let (class, map) = out.class_map.unwrap();
        assert_eq!(class, want.class, "gpu {model} {input}: the map of the top-1 class");
        worst[2] = worst[2].max(check("gpu", model, input, &map, &want));
        let out = pollster::block_on(net.run(&[&pixels], Want { class_map: Some(Some(want.class)), ..Want::default() })).unwrap().remove(0);
        assert_eq!(out.class_map.unwrap().1, map);
    }
    println!("{model}: worst relative error: reference {:.2e}, cpu path {:.2e}, gpu {:.2e}", worst[0], worst[1], worst[2]);
}

#[test]
fn a_transposed_or_mirrored_map_fails_the_bound() {
    orientation_matters("tiny");
    orientation_matters("full");
}

#[test]
fn class_map_matches_transformers_tiny() {
    check_model("tiny", &load("tiny", Dtype::F32), &inputs());
}

#[test]
fn class_map_matches_transformers_full() {
    check_model("full", &load("full", Dtype::F32), &inputs());
}
