//! Converters from the forms BiT-50 is distributed in to the web weight format.
//!
//! Every reader produces the same thing, a [`Source`]: the published config,
//! the preprocessing, and the tensors under transformers' names in torch layout.
//! [`kernel_layout`] then standardizes and transposes them once, offline.

use super::{to_shards, Dtype, Manifest, WebModel};
use crate::config::{bit50_defaults, parse_json, BitConfig};
use crate::model::{check_names, parameters, Role, Tensor, TensorMap};
use crate::{bail, Context, Result};
use serde_json::Value;
use std::path::Path;

/// Epsilon of every weight-standardized convolution in BiT (spec §1: not the class default 1e-6).
pub const WS_EPS: f64 = 1e-8;

/// A model as published: config, preprocessing and torch-layout tensors.
pub struct Source {
    pub name: String,
    /// The path it was read from, for error messages.
    pub origin: String,
    pub config: Value,
    pub preprocessor: Value,
    pub tensors: TensorMap,
}

/// The file formats weights come in, told apart by their first bytes.
#[derive(Debug, PartialEq)]
pub enum Format {
    Safetensors,
    Zip,
    Pickle,
    Unknown,
}

pub fn detect(head: &[u8]) -> Format {
    if head.len() >= 9 && head[8] == b'{' {
        Format::Safetensors
    } else if head.starts_with(b"PK\x03\x04") {
        Format::Zip
    } else if head.first() == Some(&0x80) {
        Format::Pickle
    } else {
        Format::Unknown
    }
}

/// Reads a Hugging Face model folder, or a lone weights file (config and
/// preprocessing then default to google/bit-50's).
#[cfg(not(target_arch = "wasm32"))]
pub fn read_source(path: &Path) -> Result<Source> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).context(|| format!("{shown}: cannot read"))?;
    let (defaults_config, defaults_pre) = bit50_defaults();
    let (weights_path, config, preprocessor) = if meta.is_dir() {
        let read_json = |file: &str, default: Option<Value>| -> Result<Value> {
            let p = path.join(file);
            match (std::fs::read_to_string(&p), default) {
                (Ok(text), _) => parse_json(&text, &p.display().to_string()),
                (Err(e), Some(default)) if e.kind() == std::io::ErrorKind::NotFound => Ok(default),
                (Err(e), _) => bail!("{}: cannot read: {e}", p.display()),
            }
        };
        let weights = ["model.safetensors"].iter().map(|f| path.join(f)).find(|p| p.exists());
        let Some(weights) = weights else {
            bail!("{shown}: no weights file found (expected model.safetensors)");
        };
        (weights, read_json("config.json", None)?, read_json("preprocessor_config.json", Some(defaults_pre))?)
    } else {
        (path.to_path_buf(), defaults_config, defaults_pre)
    };
    let wshown = weights_path.display().to_string();
    let bytes = std::fs::read(&weights_path).context(|| format!("{wshown}: cannot read"))?;
    let mut tensors = TensorMap::new();
    match detect(&bytes) {
        Format::Safetensors => super::read_safetensors(&bytes, &wshown, &mut tensors)?,
        Format::Zip => bail!("{wshown}: PyTorch zip checkpoints are not supported yet; convert from model.safetensors"),
        Format::Pickle => bail!("{wshown}: pickle checkpoints are not supported yet; convert from model.safetensors"),
        Format::Unknown => bail!("{wshown}: not a weights file (expected safetensors)"),
    }
    let name = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "bit".into());
    Ok(Source { name, origin: wshown, config, preprocessor, tensors })
}

/// Checks a torch-layout tensor set against the config and converts it to kernel layout:
/// convolutions standardized (spec §2) and stored `[k][k][cin][cout]`, the classifier `[in][out]`.
pub fn kernel_layout(config: &BitConfig, mut tensors: TensorMap, source: &str) -> Result<TensorMap> {
    let params = parameters(config);
    check_names(&params, &tensors, source)?;
    let mut out = TensorMap::new();
    for p in &params {
        let t = tensors.remove(&p.name).expect("names checked");
        if t.shape != p.torch_shape {
            bail!("{source}: tensor {} has shape {:?}, expected {:?}", p.name, t.shape, p.torch_shape);
        }
        if let Some(i) = t.data.iter().position(|x| !x.is_finite()) {
            bail!("{source}: tensor {} holds a non-finite value ({}) at element {i}", p.name, t.data[i]);
        }
        let data = match p.role {
            Role::Conv { .. } => standardize_to_hwio(&t),
            Role::ClassifierWeight => transpose(&t.data, t.shape[0], t.shape[1]),
            _ => t.data,
        };
        out.insert(p.name.clone(), Tensor::new(p.kernel_shape(), data));
    }
    Ok(out)
}

/// Weight standardization per output channel (biased variance, eps 1e-8), then OIHW -> HWIO.
fn standardize_to_hwio(t: &Tensor) -> Vec<f32> {
    let [o, i, kh, kw] = [t.shape[0], t.shape[1], t.shape[2], t.shape[3]];
    let fan_in = i * kh * kw;
    let mut out = vec![0.0f32; t.data.len()];
    for oc in 0..o {
        let w = &t.data[oc * fan_in..(oc + 1) * fan_in];
        let mean = w.iter().map(|&x| x as f64).sum::<f64>() / fan_in as f64;
        let var = w.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / fan_in as f64;
        let inv = 1.0 / (var + WS_EPS).sqrt();
        for ic in 0..i {
            for y in 0..kh {
                for x in 0..kw {
                    let v = w[(ic * kh + y) * kw + x] as f64;
                    out[((y * kw + x) * i + ic) * o + oc] = ((v - mean) * inv) as f32;
                }
            }
        }
    }
    out
}

fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

/// Converts a published model into web-format shards and manifest, in memory.
pub fn convert(source: Source, dtype: Dtype, max_shard_bytes: usize) -> Result<(Manifest, Vec<(String, Vec<u8>)>)> {
    let config = BitConfig::from_json(&source.config, &format!("{} (config)", source.origin))?;
    crate::config::PreprocessorConfig::from_json(&source.preprocessor, &format!("{} (preprocessor)", source.origin))?;
    let tensors = kernel_layout(&config, source.tensors, &source.origin)?;
    let model = WebModel {
        name: &source.name,
        config: &source.config,
        preprocessor: &source.preprocessor,
        labels: config.labels(),
        tensors: &tensors,
    };
    to_shards(&model, dtype, max_shard_bytes)
}
