//! The GPU kernels at input sizes whose feature maps are odd or end in partial tiles: the
//! seeded google/bit-50 at 224 (last stage 7x7) and at 200 (stages 50, 25, 13, 7), both
//! convolution kernels (registers and tiled) in f32, against transformers' logits (1e-4) and
//! class activation map (tests/fixtures/full224, full200; tools/make_fixtures.py), on every
//! input of the fixtures.

mod common;

use bit50::gpu::{ConvKernel, Features, Gpu, GpuNetwork, Precision, Variant, Want};
use common::*;
use serde_json::Value;

fn check(name: &str) {
    let (expected, m) = fixture_model(name);
    let size = expected["image_size"].as_u64().unwrap() as usize;
    assert_eq!(m.network.image_size, size);
    let mut nets: Vec<GpuNetwork> = [ConvKernel::Registers, ConvKernel::Tiled]
        .into_iter()
        .map(|conv| {
            let variant = Variant { conv, precision: Precision::F32, subgroups: false };
            let gpu = pollster::block_on(Gpu::new(Features::ALL)).expect("a GPU adapter (install mesa-vulkan-drivers for lavapipe)");
            let net = pollster::block_on(GpuNetwork::new(gpu, &m.network, variant, 1)).unwrap();
            assert_eq!(net.variant(), variant);
            net
        })
        .collect();
    for photo in inputs() {
        let pixels = fixture_input(&expected, name, &m.preprocessor, photo);
        check_input(name, photo, &pixels, &expected["inputs"][photo], &mut nets);
    }
}

fn check_input(name: &str, photo: &str, pixels: &[f32], want: &Value, nets: &mut [GpuNetwork]) {
    let (logits, top, cam) = (
        floats(&want["logits"]),
        want["top5"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect::<Vec<_>>(),
        floats(&want["cam"]["data"]),
    );
    for net in nets {
        let conv = net.variant().conv;
        let out = pollster::block_on(net.run(&[pixels], Want { class_map: Some(None), ..Want::default() })).unwrap().remove(0);
        let err = max_abs_diff(&out.logits, &logits);
        let (class, map) = out.class_map.unwrap();
        let scale = cam.iter().fold(1.0f32, |s, x| s.max(x.abs()));
        let map_err = max_abs_diff(&map, &cam) / scale;
        println!("gpu {} {name} {photo}: max |logit - transformers| = {err:.2e}, class map {map_err:.2e} (relative)", conv.name());
        assert!(err <= 1e-4, "gpu {} {name} {photo}: max logit error {err:.2e} > 1e-4", conv.name());
        assert_eq!(top5(&out.logits), top, "gpu {} {name} {photo}: top-5", conv.name());
        assert_eq!((class, map.len()), (top[0], 49), "the 7x7 map of the top class");
        assert!(map_err <= 5e-6, "gpu {} {name} {photo}: class map error {map_err:.2e}", conv.name());
    }
}

#[test]
fn gpu_kernels_match_transformers_at_224() {
    check("full224");
}

#[test]
fn gpu_kernels_match_transformers_at_200() {
    check("full200");
}
