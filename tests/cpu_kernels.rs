//! Each CPU micro-kernel that this processor has (src/cpu/gemm.rs: portable, AVX2+FMA,
//! AVX-512, NEON), forced one at a time, against transformers' logits: the tiny model, the
//! full-size one at 448, and at 224 and 200, whose last stages (7x7; 13x13, 25x25) leave
//! partial tiles and Winograd edge tiles; and the top-1 class's activation map. Also: a kernel
//! the processor lacks is refused.

mod common;

use bit50::cpu::{CpuNetwork, Kernel, KERNELS};
use bit50::model::Model;
use common::*;
use serde_json::Value;

/// A fixture folder's model: tiny, full (448), full224, full200 (the full weights, another size).
struct Fixture {
    name: &'static str,
    expected: Value,
    model: Model,
}

fn fixture(name: &'static str) -> Fixture {
    let (expected, model) = fixture_model(name);
    Fixture { name, expected, model }
}

impl Fixture {
    fn input(&self, input: &str) -> Vec<f32> {
        fixture_input(&self.expected, self.name, &self.model.preprocessor, input)
    }

    /// Max |logit - transformers| of `kernel` over `inputs`; asserts 1e-4 and the top-5.
    fn check(&self, kernel: Kernel, inputs: &[&str]) -> f32 {
        let net = CpuNetwork::with_kernel(self.model.network.clone(), kernel).unwrap();
        assert_eq!(net.kernel(), kernel);
        let mut worst = 0.0f32;
        for &input in inputs {
            let want = &self.expected["inputs"][input];
            let forward = net.forward(&self.input(input));
            let logits = &forward.logits;
            let err = max_abs_diff(logits, &floats(&want["logits"]));
            let top: Vec<usize> = want["top5"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
            assert!(err <= 1e-4, "{} kernel, {} {input}: max logit error {err:.2e} > 1e-4", kernel.name(), self.name);
            assert_eq!(top5(logits), top, "{} kernel, {} {input}: top-5", kernel.name(), self.name);
            // The top-1 class's activation map, from transformers' final features and classifier
            // (tests/heatmap.rs has the bound: 5e-6 of the map's largest value).
            let cam = floats(&want["cam"]["data"]);
            let map = net.class_map(&forward, top[0]);
            let err = max_abs_diff(&map, &cam) / cam.iter().fold(1.0f32, |s, x| s.max(x.abs()));
            assert!(map.len() == cam.len() && err <= 5e-6, "{} kernel, {} {input}: class map error {err:.2e}", kernel.name(), self.name);
            worst = worst.max(err);
        }
        println!("{} kernel, {}: max |logit - transformers| = {worst:.2e} over {inputs:?}", kernel.name(), self.name);
        worst
    }
}

fn supported() -> Vec<Kernel> {
    KERNELS.into_iter().filter(|k| k.supported()).collect()
}

#[test]
fn every_kernel_matches_transformers_tiny() {
    let f = fixture("tiny");
    for kernel in supported() {
        f.check(kernel, &inputs());
    }
}

#[test]
fn every_kernel_matches_transformers_full() {
    let f = fixture("full");
    for kernel in supported() {
        f.check(kernel, &["uniform", "cat.png", "rocket-exif.jpg"]);
    }
}

#[test]
fn every_kernel_matches_transformers_at_odd_sizes() {
    for name in ["full224", "full200"] {
        let f = fixture(name);
        assert_eq!(f.model.network.image_size, f.expected["image_size"].as_u64().unwrap() as usize);
        for kernel in supported() {
            f.check(kernel, &["uniform", "coffee.jpg"]);
        }
    }
}

#[test]
fn the_portable_kernel_runs_everywhere_and_the_widest_is_chosen() {
    assert!(Kernel::Portable.supported());
    let best = Kernel::detect();
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        best,
        if std::is_x86_feature_detected!("avx512f") {
            Kernel::Avx512
        } else if Kernel::Avx2.supported() {
            Kernel::Avx2
        } else {
            Kernel::Portable
        }
    );
    #[cfg(target_arch = "aarch64")]
    assert_eq!(best, Kernel::Neon);
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(Kernel::Avx512.supported(), std::is_x86_feature_detected!("avx512f"));
        assert_eq!(Kernel::Avx2.supported(), std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"));
        assert!(!Kernel::Neon.supported());
    }
}

#[test]
fn a_kernel_the_processor_lacks_is_refused_by_name() {
    let lacking = KERNELS.into_iter().find(|k| !k.supported()).expect("no processor has every kernel (NEON and AVX are exclusive)");
    let err = CpuNetwork::with_kernel(fixture("tiny").model.network, lacking).err().expect("refused");
    let msg = err.to_string();
    assert!(msg.contains(lacking.name()) && msg.contains("portable"), "{msg}");
    let err = Kernel::parse("sse9").unwrap_err().to_string();
    assert!(err.contains("sse9") && err.contains("avx512"), "{err}");
    for k in KERNELS {
        assert_eq!(Kernel::parse(k.name()).unwrap(), k);
    }
}

/// The thread count changes nothing: the same logits, bit for bit, on 1, 2 and 3 threads (the
/// work is split by pixels, and GroupNorm's statistics are folded from fixed parts). At 200,
/// where Winograd's last row of tiles is a half one.
#[test]
fn every_thread_count_gives_the_same_logits() {
    let f = fixture("full200");
    let net = CpuNetwork::new(f.model.network.clone());
    let input = f.input("coffee.jpg");
    let logits: Vec<Vec<f32>> = [1, 2, 3]
        .into_iter()
        .map(|threads| {
            bit50::parallel::set_threads(threads);
            net.forward(&input).logits
        })
        .collect();
    bit50::parallel::set_threads(0);
    assert_eq!(logits[0], logits[1], "1 vs 2 threads");
    assert_eq!(logits[0], logits[2], "1 vs 3 threads");
}
