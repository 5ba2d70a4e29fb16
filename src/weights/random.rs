//! Seeded random weights in the exact google/bit-50 layout, for tests and the demo
//! when the real weights can't be fetched. The generator is defined bit for bit
//! (integer hashing, then float64 arithmetic rounded once to f32) so that
//! `tools/make_fixtures.py` draws the very same tensors with numpy, and the
//! expected logits it records with transformers hold for the model made here.
//!
//! Initialisation follows spec §8, which makes a random net behave like a trained one.

use crate::config::BitConfig;
use crate::model::{parameters, Role, Tensor, TensorMap};

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// A counter-based stream of numbers named by a seed and a tensor name.
pub struct Stream(u64);

impl Stream {
    pub fn new(seed: u64, name: &str) -> Self {
        Stream(seed ^ fnv1a64(name.as_bytes()))
    }

    /// Uniform in [0, 1), exact in 24 bits.
    pub fn uniform(&self, i: u64) -> f64 {
        (mix(self.0.wrapping_add((i + 1).wrapping_mul(GAMMA))) >> 40) as f64 * (1.0 / (1u64 << 24) as f64)
    }

    /// Approximately standard normal (Irwin-Hall: sum of 12 uniforms minus 6).
    pub fn normal(&self, i: u64) -> f64 {
        let mut s = 0.0;
        for k in 0..12 {
            s += self.uniform(12 * i + k);
        }
        s - 6.0
    }
}

/// All parameters of a network with this config, in torch layout (transformers' names).
pub fn weights(config: &BitConfig, seed: u64) -> TensorMap {
    let mut out = TensorMap::new();
    for p in parameters(config) {
        let stream = Stream::new(seed, &p.name);
        let n = p.torch_shape.iter().product::<usize>();
        let normal: Vec<f64> = (0..n as u64).map(|i| stream.normal(i)).collect();
        let data: Vec<f32> = match p.role {
            Role::Conv { .. } => {
                let fan_in: usize = p.torch_shape[1..].iter().product();
                let std = (2.0 / fan_in as f64).sqrt();
                normal.iter().map(|&z| (std * z) as f32).collect()
            }
            Role::NormWeight => normal.iter().map(|&z| (1.0 + 0.1 * z) as f32).collect(),
            Role::NormBias => normal.iter().map(|&z| (0.1 * z) as f32).collect(),
            Role::LastNormWeight => normal.iter().map(|&z| (0.1 * (1.0 + 0.1 * z)) as f32).collect(),
            Role::LastNormBias => normal.iter().map(|&z| (0.01 * z) as f32).collect(),
            Role::ClassifierWeight => {
                // Centring each class row cancels the image-independent part of the pooled features.
                let cols = p.torch_shape[1];
                normal
                    .chunks(cols)
                    .flat_map(|row| {
                        let mean = row.iter().fold(0.0, |s, &z| s + z) / cols as f64;
                        row.iter().map(move |&z| (0.2 * (z - mean)) as f32)
                    })
                    .collect()
            }
            Role::ClassifierBias => normal.iter().map(|&z| (0.01 * z) as f32).collect(),
        };
        out.insert(p.name, Tensor::new(p.torch_shape, data));
    }
    out
}

/// A seeded input image tensor, `[3][size][size]` in [-1, 1).
pub fn input(seed: u64, size: usize) -> Vec<f32> {
    let stream = Stream::new(seed, "input");
    (0..(3 * size * size) as u64).map(|i| (2.0 * stream.uniform(i) - 1.0) as f32).collect()
}

/// Writes a Hugging Face model folder (config.json, preprocessor_config.json,
/// model.safetensors) holding torch-layout tensors, as `save_pretrained` would.
pub fn write_hf_folder(out: &std::path::Path, config: &serde_json::Value, preprocessor: &serde_json::Value, tensors: &TensorMap) -> crate::Result<()> {
    use crate::Context;
    let shown = out.display().to_string();
    std::fs::create_dir_all(out).context(|| format!("{shown}: cannot create"))?;
    let encoded: Vec<(String, Vec<usize>, &[u8])> =
        tensors.iter().map(|(n, t)| (n.clone(), t.shape.clone(), bytemuck::cast_slice(&t.data))).collect();
    let views = encoded
        .iter()
        .map(|(n, shape, bytes)| safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes).map(|v| (n.clone(), v)))
        .collect::<Result<Vec<_>, _>>()
        .context(|| format!("{shown}: cannot encode tensors"))?;
    let metadata = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    let bytes = safetensors::tensor::serialize(views, Some(metadata)).context(|| format!("{shown}: cannot encode tensors"))?;
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).expect("JSON value serializes");
    for (file, data) in [
        ("config.json", pretty(config).into_bytes()),
        ("preprocessor_config.json", pretty(preprocessor).into_bytes()),
        ("model.safetensors", bytes),
    ] {
        std::fs::write(out.join(file), data).context(|| format!("{shown}/{file}: cannot write"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let a = Stream::new(0, "a");
        assert_eq!(a.uniform(5), Stream::new(0, "a").uniform(5));
        assert_ne!(a.uniform(5), Stream::new(0, "b").uniform(5));
        let mean: f64 = (0..10_000).map(|i| a.normal(i)).sum::<f64>() / 10_000.0;
        assert!(mean.abs() < 0.05, "{mean}");
    }

    #[test]
    fn streams_draw_what_the_fixture_script_draws() {
        // tools/make_fixtures.py's generator, computed in plain Python integers: seed 0, tensor "conv".
        let s = Stream::new(0, "conv");
        let uniforms: Vec<f64> = (0..4).map(|i| s.uniform(i)).collect();
        assert_eq!(uniforms, [0.8868028521537781, 0.2074592113494873, 0.14289981126785278, 0.7043728232383728]);
        assert_eq!([s.normal(0), s.normal(1)], [-0.4415518641471863, -0.02468585968017578]);
    }

    #[test]
    fn a_hugging_face_folder_reads_back_as_written() {
        use crate::config::{parse_json, BitConfig};
        let config = parse_json(include_str!("../../tests/fixtures/tiny/config.json"), "config.json").unwrap();
        let preprocessor = parse_json(include_str!("../../tests/fixtures/tiny/preprocessor_config.json"), "p.json").unwrap();
        let tensors = weights(&BitConfig::from_json(&config, "config.json").unwrap(), 3);
        let dir = std::env::temp_dir().join(format!("bit50-hf-folder-{}", std::process::id()));
        write_hf_folder(&dir, &config, &preprocessor, &tensors).unwrap();
        let source = crate::weights::convert::read_source(&dir).unwrap();
        assert_eq!((&source.config, &source.preprocessor), (&config, &preprocessor));
        let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
        let (_, read) = crate::weights::convert::read_weights(&bytes, "model.safetensors").unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(read.len(), tensors.len());
        for (name, t) in &tensors {
            assert_eq!((&read[name].shape, &read[name].data), (&t.shape, &t.data), "{name}");
        }
    }
}
