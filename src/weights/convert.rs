//! Converters from the forms BiT-50 is distributed in to the web weight format.
//!
//! Every reader produces the same thing, a [`Source`]: the published config,
//! the preprocessing, and the tensors under transformers' names in torch layout.
//! [`kernel_layout`] then standardizes and transposes them once, offline.

use super::{to_shards, Dtype, Manifest, ShardFiles, WebModel};
use crate::config::{bit50_defaults, parse_json, BitConfig};
use crate::model::{check_names, parameters, Param, Role, Tensor, TensorMap};
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

/// How a source names and lays out its tensors (spec §4, §5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scheme {
    /// transformers: `bit.*`, `classifier.1.*`, torch layout.
    HuggingFace,
    /// PaddleNLP: transformers' names, but `classifier.1.weight` is `[in, out]`.
    Paddle,
    /// timm: `stem.conv`, `stages.{i}.blocks.{j}`, `norm`, `head.fc` (a 1x1 conv).
    Timm,
    /// The original Big Transfer `.npz`: TensorFlow names under `resnet/`, HWIO kernels.
    BitNpz,
}

/// Reads the tensors of one weights file, whatever its format, under the file's own names.
pub fn read_weights(bytes: &[u8], source: &str) -> Result<(Scheme, TensorMap)> {
    let mut tensors = TensorMap::new();
    let paddle = match detect(bytes) {
        Format::Safetensors => {
            super::read_safetensors(bytes, source, &mut tensors)?;
            false
        }
        Format::Zip => {
            let zip = super::zip::Zip::parse(bytes, source)?;
            let pkl = zip.entries.iter().find(|e| e.name == "data.pkl" || e.name.ends_with("/data.pkl"));
            if let Some(pkl) = pkl {
                // torch.save: {prefix}/data.pkl and raw storages at {prefix}/data/{key}.
                let prefix = pkl.name.strip_suffix("data.pkl").expect("matched").to_string();
                if let Some(order) = zip.find(&format!("{prefix}byteorder")) {
                    let order = zip.read(order)?;
                    if &order[..] != b"little" {
                        bail!("{source}: byte order {:?} is not supported", String::from_utf8_lossy(&order));
                    }
                }
                let data = zip.read(pkl)?;
                let pickle = super::pickle::load(&data, &format!("{source}: {}", pkl.name), true)?;
                let storage = |key: &str| {
                    let name = format!("{prefix}data/{key}");
                    match zip.find(&name) {
                        Some(e) => zip.read(e),
                        None => bail!("{source}: storage {name} is missing from the archive"),
                    }
                };
                // Every element takes at least 2 bytes of the file unless tensors share storage: bound the total.
                tensors = pickle.torch_dict(storage, false, bytes.len() as u64)?;
            } else if !zip.entries.is_empty() && zip.entries.iter().all(|e| e.name.ends_with(".npy")) {
                tensors = super::npz::read_npz(&zip, source)?;
            } else {
                bail!("{source}: a zip archive that is neither a torch checkpoint (data.pkl) nor a numpy .npz");
            }
            false
        }
        Format::Pickle => {
            let pickle = super::pickle::load(bytes, source, false)?;
            tensors = pickle.numpy_dict(&["StructuredToParameterName@@"], bytes.len() as u64)?;
            true
        }
        Format::Unknown => {
            bail!("{source}: not a weights file (expected safetensors, a torch .bin, a PaddlePaddle .pdparams or a numpy .npz)")
        }
    };
    let scheme = if tensors.keys().any(|k| k.starts_with("resnet/")) {
        Scheme::BitNpz
    } else if tensors.contains_key("stem.conv.weight") {
        Scheme::Timm
    } else if paddle {
        Scheme::Paddle
    } else {
        Scheme::HuggingFace
    };
    Ok((scheme, tensors))
}

/// How one parameter is stored in a scheme: its name there, its shape there, and
/// how to bring it to transformers' torch layout.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Layout {
    Same,
    /// `[in, out]` -> `[out, in]`.
    Transposed,
    /// `[out, in, 1, 1]` -> `[out, in]`.
    Squeezed,
    /// TensorFlow HWIO -> OIHW.
    Hwio,
    /// `[1, 1, in, out]` -> `[out, in]`.
    HwioDense,
}

fn stored_as(scheme: Scheme, p: &Param) -> (String, Vec<usize>, Layout) {
    let s = &p.torch_shape;
    let name = p.name.as_str();
    match scheme {
        Scheme::HuggingFace => (p.name.clone(), s.clone(), Layout::Same),
        Scheme::Paddle => match p.role {
            Role::ClassifierWeight => (p.name.clone(), vec![s[1], s[0]], Layout::Transposed),
            _ => (p.name.clone(), s.clone(), Layout::Same),
        },
        Scheme::Timm => {
            let n = if name == "bit.embedder.convolution.weight" {
                "stem.conv.weight".to_string()
            } else if let Some(rest) = name.strip_prefix("bit.encoder.stages.") {
                format!("stages.{}", rest.replacen(".layers.", ".blocks.", 1))
            } else if let Some(rest) = name.strip_prefix("bit.") {
                rest.to_string()
            } else {
                name.replace("classifier.1.", "head.fc.")
            };
            match p.role {
                Role::ClassifierWeight => (n, vec![s[0], s[1], 1, 1], Layout::Squeezed),
                _ => (n, s.clone(), Layout::Same),
            }
        }
        Scheme::BitNpz => {
            let n = if name == "bit.embedder.convolution.weight" {
                "resnet/root_block/standardized_conv2d/kernel".to_string()
            } else if let Some(rest) = name.strip_prefix("bit.encoder.stages.") {
                let mut parts = rest.splitn(4, '.');
                let i: usize = parts.next().and_then(|x| x.parse().ok()).unwrap_or(0);
                parts.next(); // "layers"
                let j: usize = parts.next().and_then(|x| x.parse().ok()).unwrap_or(0);
                let leaf = match parts.next().unwrap_or("") {
                    "downsample.conv.weight" => "a/proj/standardized_conv2d/kernel",
                    "conv1.weight" => "a/standardized_conv2d/kernel",
                    "conv2.weight" => "b/standardized_conv2d/kernel",
                    "conv3.weight" => "c/standardized_conv2d/kernel",
                    "norm1.weight" => "a/group_norm/gamma",
                    "norm1.bias" => "a/group_norm/beta",
                    "norm2.weight" => "b/group_norm/gamma",
                    "norm2.bias" => "b/group_norm/beta",
                    "norm3.weight" => "c/group_norm/gamma",
                    "norm3.bias" => "c/group_norm/beta",
                    other => other,
                };
                format!("resnet/block{}/unit{:02}/{leaf}", i + 1, j + 1)
            } else {
                match name {
                    "bit.norm.weight" => "resnet/group_norm/gamma",
                    "bit.norm.bias" => "resnet/group_norm/beta",
                    "classifier.1.weight" => "resnet/head/conv2d/kernel",
                    "classifier.1.bias" => "resnet/head/conv2d/bias",
                    other => other,
                }
                .to_string()
            };
            match p.role {
                Role::Conv { .. } => (n, vec![s[2], s[3], s[1], s[0]], Layout::Hwio),
                Role::ClassifierWeight => (n, vec![1, 1, s[1], s[0]], Layout::HwioDense),
                _ => (n, s.clone(), Layout::Same),
            }
        }
    }
}

/// Renames and relayouts a source's tensors to transformers' names in torch layout,
/// after checking names (missing / unexpected, in the source's own names) and shapes.
pub fn normalize(config: &BitConfig, scheme: Scheme, mut tensors: TensorMap, source: &str) -> Result<TensorMap> {
    let params = parameters(config);
    let stored: Vec<(String, Vec<usize>, Layout)> = params.iter().map(|p| stored_as(scheme, p)).collect();
    let as_params: Vec<Param> = params
        .iter()
        .zip(&stored)
        .map(|(p, (name, shape, _))| Param { name: name.clone(), role: p.role, torch_shape: shape.clone() })
        .collect();
    check_names(&as_params, &tensors, source)?;
    let mut out = TensorMap::new();
    for (p, (name, shape, layout)) in params.iter().zip(stored) {
        let t = tensors.remove(&name).expect("names checked");
        if t.shape != shape {
            bail!("{source}: tensor {name} has shape {:?}, expected {shape:?}", t.shape);
        }
        let data = match layout {
            Layout::Same | Layout::Squeezed => t.data,
            Layout::Transposed => transpose(&t.data, shape[0], shape[1]),
            Layout::HwioDense => transpose(&t.data, shape[2], shape[3]),
            Layout::Hwio => {
                let [kh, kw, ci, co] = [shape[0], shape[1], shape[2], shape[3]];
                let mut d = vec![0.0f32; t.data.len()];
                for y in 0..kh {
                    for x in 0..kw {
                        for i in 0..ci {
                            for o in 0..co {
                                d[((o * ci + i) * kh + y) * kw + x] = t.data[((y * kw + x) * ci + i) * co + o];
                            }
                        }
                    }
                }
                d
            }
        };
        out.insert(p.name.clone(), Tensor::new(p.torch_shape.clone(), data));
    }
    Ok(out)
}

/// Weight file names tried first in a folder, in order; otherwise the one file whose content is weights.
const WEIGHT_FILES: [&str; 3] = ["model.safetensors", "pytorch_model.bin", "model_state.pdparams"];

fn find_weights(dir: &Path) -> Result<std::path::PathBuf> {
    use std::io::Read;
    let shown = dir.display();
    for f in WEIGHT_FILES {
        if dir.join(f).is_file() {
            return Ok(dir.join(f));
        }
    }
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).context(|| format!("{shown}: cannot list"))?;
    for entry in entries.take(10_000).flatten() {
        let p = entry.path();
        if !p.is_file() || p.extension().is_some_and(|e| e == "json") {
            continue;
        }
        let mut head = [0u8; 16];
        let n = std::fs::File::open(&p).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
        if detect(&head[..n]) != Format::Unknown {
            found.push(p);
        }
    }
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!("{shown}: no weights file found (expected model.safetensors, pytorch_model.bin, model_state.pdparams or a .npz)"),
        _ => {
            let names: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
            bail!("{shown}: several weights files ({}); convert one of them", names.join(", "))
        }
    }
}

/// Reads a model folder (Hugging Face, PaddleNLP or timm) or a lone weights file
/// (safetensors, torch .bin, .pdparams, BiT .npz), detected by content. The config
/// and preprocessing are `config.json` and `preprocessor_config.json` beside the
/// weights when they are BiT configs, else google/bit-50's.
pub fn read_source(path: &Path) -> Result<Source> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).context(|| format!("{shown}: cannot read"))?;
    let (weights_path, dir) = if meta.is_dir() {
        (find_weights(path)?, path.to_path_buf())
    } else {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        (path.to_path_buf(), dir.to_path_buf())
    };
    let (defaults_config, defaults_pre) = bit50_defaults();
    let read_json = |file: &str| -> Result<Option<Value>> {
        let p = dir.join(file);
        match std::fs::read_to_string(&p) {
            Ok(text) => parse_json(&text, &p.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => bail!("{}: cannot read: {e}", p.display()),
        }
    };
    // timm's folders carry their own config.json ({"architecture": ...}): not a BiT config.
    let config = match read_json("config.json")? {
        Some(c) if c.get("architecture").is_some() && c.get("model_type").is_none() => {
            let arch = c["architecture"].as_str().unwrap_or("");
            if !arch.starts_with("resnetv2_50x1_bit") {
                bail!("{}: timm architecture {arch:?} is not BiT-50 (resnetv2_50x1_bit)", dir.join("config.json").display());
            }
            defaults_config
        }
        Some(c) => c,
        None => defaults_config,
    };
    let preprocessor = read_json("preprocessor_config.json")?.unwrap_or(defaults_pre);
    let wshown = weights_path.display().to_string();
    let bytes = std::fs::read(&weights_path).context(|| format!("{wshown}: cannot read"))?;
    let (scheme, raw) = read_weights(&bytes, &wshown)?;
    drop(bytes);
    let bit = BitConfig::from_json(&config, &format!("{} (config)", dir.join("config.json").display()))?;
    let tensors = normalize(&bit, scheme, raw, &wshown)?;
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
pub fn convert(source: Source, dtype: Dtype, max_shard_bytes: usize) -> Result<(Manifest, ShardFiles)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder under the temporary directory holding `files` (a name ending in `/` is a folder).
    fn folder(tag: &str, files: &[(&str, &[u8])]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("bit50-convert-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in files {
            match name.strip_suffix('/') {
                Some(sub) => std::fs::create_dir_all(dir.join(sub)).unwrap(),
                None => std::fs::write(dir.join(name), bytes).unwrap(),
            }
        }
        dir
    }

    /// An empty safetensors file: an 8-byte header length, then `{}` and padding.
    const EMPTY_SAFETENSORS: &[u8] = b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ";

    #[test]
    fn weight_standardization_keeps_its_epsilon_where_the_variance_is_as_small() {
        // Two output channels of 1x2 taps: [d, -d] with d² = WS_EPS, so (±d - 0) / sqrt(d² + eps)
        // = ±1/√2; and [3, 5], whose variance 1 leaves ±1. Stored [kh][kw][cin][cout].
        let d = WS_EPS.sqrt() as f32;
        let out = standardize_to_hwio(&Tensor::new(vec![2, 1, 1, 2], vec![d, -d, 3.0, 5.0]));
        let half = std::f32::consts::FRAC_1_SQRT_2;
        for (got, want) in out.iter().zip([half, -1.0, -half, 1.0]) {
            assert!((got - want).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn a_folder_s_one_weights_file_is_found_by_its_content() {
        // JSON whose ninth byte is '{' looks like safetensors by content: JSON files are never weights.
        let dir = folder("find", &[("bit.weights", EMPTY_SAFETENSORS), ("meta.json", b"{\"bit\": {}}"), ("photos/", b""), ("notes.txt", b"hello")]);
        let found = find_weights(&dir);
        std::fs::write(dir.join("other.weights"), EMPTY_SAFETENSORS).unwrap();
        let two = find_weights(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found.unwrap(), dir.join("bit.weights"));
        assert!(two.unwrap_err().message.contains("several weights files"));
        let dir = folder("none", &[("meta.json", b"{}")]);
        let none = find_weights(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(none.unwrap_err().message.ends_with("no weights file found (expected model.safetensors, pytorch_model.bin, model_state.pdparams or a .npz)"));
    }

    #[test]
    fn configs_beside_the_weights_are_read_or_refused_by_name() {
        // A config.json that cannot be read is an error, not a missing file.
        let dir = folder("unreadable", &[("model.safetensors", EMPTY_SAFETENSORS), ("config.json/", b"")]);
        let err = read_source(&dir).err().unwrap().message;
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("config.json: cannot read"), "{err}");
        // timm's own config.json names its architecture: anything but BiT-50 is refused.
        let dir = folder("timm", &[("model.safetensors", EMPTY_SAFETENSORS), ("config.json", b"{\"architecture\": \"resnet50\", \"num_classes\": 1000}")]);
        let err = read_source(&dir).err().unwrap().message;
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("timm architecture \"resnet50\" is not BiT-50 (resnetv2_50x1_bit)"), "{err}");
        // A BiT config without model_type (transformers reads it the same) is not timm's.
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny");
        let mut config: Value = serde_json::from_slice(&std::fs::read(fixture.join("config.json")).unwrap()).unwrap();
        config.as_object_mut().unwrap().remove("model_type").expect("the fixture names its model_type");
        let weights = std::fs::read(fixture.join("model.safetensors")).unwrap();
        let dir = folder("untyped", &[("model.safetensors", &weights), ("config.json", &serde_json::to_vec(&config).unwrap())]);
        let source = read_source(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        let source = source.unwrap();
        assert_eq!(source.config, config);
        assert_eq!(source.tensors.len(), parameters(&BitConfig::from_json(&config, "config.json").unwrap()).len());
    }
}
