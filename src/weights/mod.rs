//! The web weight format: a folder holding `manifest.json` and safetensors shards.
//!
//! ```text
//! manifest.json            {"format": "bit50-web", "version": 1, "name", "dtype": "f32"|"f16"|"int8",
//!                           "config": <config.json>, "preprocessor": <preprocessor_config.json>,
//!                           "labels": [...], "shards": [{"file", "bytes", "sha256"}]}
//! weights-00000.safetensors  tensors in kernel layout (see `model`), each shard <= 32 MiB
//! ```
//! With `int8`, each convolution and the classifier weight is stored as I8 with one F32 scale
//! per output channel (`NAME.scale`, `[cout]`, in the same shard): `w = q * scale`,
//! symmetric, `scale = max|w| / 127` over that channel. Norms and biases stay F32.
//! Nothing read from a manifest or shard is trusted: sizes and hashes are checked
//! before a byte is parsed, and every tensor name and shape is checked against the config.

pub mod convert;
pub mod npz;
pub mod npy;
pub mod pickle;
pub mod random;
pub mod zip;

use crate::config::{BitConfig, PreprocessorConfig};
use crate::model::{parameters, Model, Network, Tensor, TensorMap};
use crate::{bail, Context, ErrorKind, Result, WithKind};
use safetensors::{Dtype as StDtype, SafeTensors};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;

pub const FORMAT: &str = "bit50-web";
pub const VERSION: u32 = 1;
/// Many static hosts cap a file at 25-100 MiB; 32 MiB keeps every shard well inside.
pub const DEFAULT_MAX_SHARD_BYTES: usize = 32 << 20;
/// Upper bound on one shard we will read, whatever a manifest claims.
const MAX_SHARD_BYTES: u64 = 1 << 30;

pub use crate::model::Dtype;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub name: String,
    pub dtype: Dtype,
    pub config: Value,
    pub preprocessor: Value,
    pub labels: Vec<String>,
    pub shards: Vec<Shard>,
    /// Seeded random weights (`bit50 random-model`), not a trained network: pages say so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub untrained: bool,
}

/// The config key `bit50 random-model` writes (the seed), which marks a model as untrained.
pub const RANDOM_SEED_KEY: &str = "bit50_random_seed";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shard {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

impl Manifest {
    /// Parses and sanity-checks `manifest.json` (`source` names it in errors).
    pub fn parse(bytes: &[u8], source: &str) -> Result<Self> {
        let m: Manifest = serde_json::from_slice(bytes).context(|| format!("{source}: not a bit50 manifest"))?;
        if m.format != FORMAT || m.version != VERSION {
            bail!("{source}: format {:?} version {} is not {FORMAT} version {VERSION}", m.format, m.version);
        }
        if m.shards.is_empty() || m.shards.len() > 10_000 {
            bail!("{source}: {} shards listed", m.shards.len());
        }
        for s in &m.shards {
            let plain = !s.file.is_empty()
                && s.file.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && !s.file.starts_with('.');
            if !plain {
                bail!("{source}: shard file name {:?} is not a plain file name", s.file);
            }
            if s.bytes > MAX_SHARD_BYTES {
                bail!("{source}: shard {} claims {} bytes (limit {MAX_SHARD_BYTES})", s.file, s.bytes);
            }
            if s.sha256.len() != 64 || !s.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
                bail!("{source}: shard {} has no valid sha256", s.file);
            }
        }
        Ok(m)
    }

    pub fn bit_config(&self, source: &str) -> Result<BitConfig> {
        BitConfig::from_json(&self.config, &format!("{source} (config)"))
    }

    pub fn preprocessor_config(&self, source: &str) -> Result<PreprocessorConfig> {
        PreprocessorConfig::from_json(&self.preprocessor, &format!("{source} (preprocessor)"))
    }

    /// Checks a downloaded or read shard against its manifest entry. `sha256`: the digest
    /// when the platform has already computed it (the browser's WebCrypto, 10x faster than
    /// hashing in WebAssembly), else it is computed here.
    pub fn verify_shard(shard: &Shard, bytes: &[u8], sha256: Option<String>, source: &str) -> Result<()> {
        if bytes.len() as u64 != shard.bytes {
            bail!(Checksum, "{source}: {} bytes, manifest says {}", bytes.len(), shard.bytes);
        }
        let hash = sha256.unwrap_or_else(|| sha256_hex(bytes));
        if !hash.eq_ignore_ascii_case(&shard.sha256) {
            bail!(Checksum, "{source}: sha256 {hash} does not match the manifest's {}", shard.sha256);
        }
        Ok(())
    }

    /// The model's identity, which a head trained on it records: the sha256 of its shards'
    /// sha256 values, each as 64 lowercase hex digits and a newline, in the manifest's order.
    /// Any change to a weight byte (or to how weights are stored: f32, f16, int8) changes it;
    /// file names, hosting and the manifest's other fields do not.
    pub fn model_sha256(&self) -> String {
        let listing: String = self.shards.iter().map(|s| format!("{}\n", s.sha256.to_ascii_lowercase())).collect();
        sha256_hex(listing.as_bytes())
    }

    /// Builds the model from this manifest and its verified shards' bytes.
    pub fn into_model(self, shards: &[Vec<u8>], source: &str) -> Result<Model> {
        let config = self.bit_config(source)?;
        let preprocessor = self.preprocessor_config(source)?;
        if self.labels.len() != config.num_classes() {
            bail!("{source}: {} labels for {} classes", self.labels.len(), config.num_classes());
        }
        let mut tensors = TensorMap::new();
        for (shard, bytes) in self.shards.iter().zip(shards) {
            read_safetensors(bytes, &shard.file, &mut tensors)?;
        }
        let network = Network::from_tensors(&config, preprocessor.crop, tensors, source)?;
        let sha256 = self.model_sha256();
        Ok(Model { name: self.name, labels: self.labels, preprocessor, network, stored: self.dtype, sha256 })
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads every tensor of a safetensors file as f32 (from F32, F16, BF16, or I8 with its
/// per-output-channel `NAME.scale` from the same file) into `into`.
pub fn read_safetensors(bytes: &[u8], source: &str, into: &mut TensorMap) -> Result<()> {
    for_each_tensor(bytes, source, |name, tensor| {
        if into.insert(name.clone(), tensor).is_some() {
            bail!("{source}: tensor {name} appears twice");
        }
        Ok(())
    })
}

/// Calls `f(name, tensor)` for every tensor of a safetensors file, as f32, one at a time (so
/// that a shard streams to the GPU without a second copy of it in memory). An int8 tensor's
/// scale is part of it, not a tensor of its own.
pub fn for_each_tensor(bytes: &[u8], source: &str, mut f: impl FnMut(String, Tensor) -> Result<()>) -> Result<()> {
    let st = SafeTensors::deserialize(bytes).context(|| format!("{source}: not a valid safetensors file"))?;
    let is_scale = |name: &str| name.strip_suffix(".scale").is_some_and(|base| st.tensor(base).is_ok_and(|t| t.dtype() == StDtype::I8));
    for (name, view) in st.tensors() {
        if is_scale(&name) {
            continue;
        }
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            StDtype::F32 => raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            StDtype::F16 => raw.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            StDtype::BF16 => raw.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            StDtype::I8 => {
                let scale_name = format!("{name}.scale");
                let scale = st.tensor(&scale_name).ok().filter(|t| t.dtype() == StDtype::F32);
                let scale = scale.context(|| format!("{source}: int8 tensor {name} has no F32 {scale_name} beside it"))?;
                let scale: Vec<f32> = scale.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                let channels = view.shape().last().copied().unwrap_or(0);
                if channels == 0 || scale.len() != channels {
                    bail!("{source}: {scale_name} has {} values for {channels} output channels of {name}", scale.len());
                }
                raw.iter().zip(scale.iter().cycle()).map(|(&q, &s)| q as i8 as f32 * s).collect()
            }
            other => bail!("{source}: tensor {name} has dtype {other:?}; expected F32, F16, BF16 or I8"),
        };
        f(name, Tensor::new(view.shape().to_vec(), data))?;
    }
    Ok(())
}

/// Loads a converted model folder (`manifest.json` + shards) from disk.
pub fn load_dir(dir: &Path) -> Result<Model> {
    let manifest_path = dir.join("manifest.json");
    let source = manifest_path.display().to_string();
    let bytes = std::fs::read(&manifest_path).context(|| format!("{source}: cannot read"))?;
    let manifest = Manifest::parse(&bytes, &source).kind(ErrorKind::BadModel)?;
    let mut shards = Vec::with_capacity(manifest.shards.len());
    for shard in &manifest.shards {
        let path = dir.join(&shard.file);
        let name = path.display().to_string();
        let len = std::fs::metadata(&path).context(|| format!("{name}: cannot read"))?.len();
        if len != shard.bytes {
            bail!(Checksum, "{name}: {len} bytes, manifest says {}", shard.bytes);
        }
        let data = std::fs::read(&path).context(|| format!("{name}: cannot read"))?;
        Manifest::verify_shard(shard, &data, None, &name)?;
        shards.push(data);
    }
    manifest.into_model(&shards, &source).kind(ErrorKind::BadModel)
}

/// Everything needed to write a web weight folder.
pub struct WebModel<'a> {
    pub name: &'a str,
    pub config: &'a Value,
    pub preprocessor: &'a Value,
    pub labels: Vec<String>,
    /// Kernel-layout tensors, checked against the config.
    pub tensors: &'a TensorMap,
}

/// Shard files as (file name, bytes).
pub type ShardFiles = Vec<(String, Vec<u8>)>;

/// Serializes `model` into shard files and the manifest that lists them.
pub fn to_shards(model: &WebModel, dtype: Dtype, max_shard_bytes: usize) -> Result<(Manifest, ShardFiles)> {
    let config = BitConfig::from_json(model.config, model.name)?;
    let elem = |large: bool| match dtype {
        Dtype::F32 => 4,
        Dtype::F16 => 2,
        Dtype::Int8 if large => 1,
        Dtype::Int8 => 4,
    };
    // Header overhead is well under 64 KiB for any shard.
    let budget = max_shard_bytes.saturating_sub(64 << 10).max(1);
    let params = parameters(&config);
    let quantized: Vec<&str> = params.iter().filter(|p| p.role.is_large_weight()).map(|p| p.name.as_str()).collect();
    let mut groups: Vec<Vec<&str>> = vec![vec![]];
    let mut used = 0;
    for p in &params {
        let t = model.tensors.get(&p.name).context(|| format!("{}: missing tensor {}", model.name, p.name))?;
        let size = t.data.len() * elem(p.role.is_large_weight());
        if used + size > budget && !groups.last().unwrap().is_empty() {
            groups.push(vec![]);
            used = 0;
        }
        used += size;
        groups.last_mut().unwrap().push(&p.name);
    }
    let mut files = Vec::new();
    let mut shards = Vec::new();
    for (i, names) in groups.iter().enumerate() {
        let f32_bytes = |data: &[f32]| bytemuck::cast_slice::<f32, u8>(data).to_vec();
        let mut encoded: Vec<(String, StDtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for n in names {
            let t = &model.tensors[*n];
            match dtype {
                Dtype::F32 => encoded.push((n.to_string(), StDtype::F32, t.shape.clone(), f32_bytes(&t.data))),
                Dtype::F16 => {
                    let bytes = t.data.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect();
                    encoded.push((n.to_string(), StDtype::F16, t.shape.clone(), bytes));
                }
                Dtype::Int8 if quantized.contains(n) => {
                    let (q, scale) = quantize_per_channel(&t.data, *t.shape.last().unwrap_or(&1));
                    encoded.push((n.to_string(), StDtype::I8, t.shape.clone(), q));
                    encoded.push((format!("{n}.scale"), StDtype::F32, vec![scale.len()], f32_bytes(&scale)));
                }
                Dtype::Int8 => encoded.push((n.to_string(), StDtype::F32, t.shape.clone(), f32_bytes(&t.data))),
            }
        }
        let views = encoded
            .iter()
            .map(|(n, st_dtype, shape, bytes)| {
                safetensors::tensor::TensorView::new(*st_dtype, shape.clone(), bytes).map(|v| (n.clone(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .context(|| format!("{}: cannot encode shard {i}", model.name))?;
        let bytes = safetensors::tensor::serialize(views, None).context(|| format!("{}: cannot encode shard {i}", model.name))?;
        let file = format!("weights-{i:05}.safetensors");
        shards.push(Shard { file: file.clone(), bytes: bytes.len() as u64, sha256: sha256_hex(&bytes) });
        files.push((file, bytes));
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        name: model.name.into(),
        dtype,
        config: model.config.clone(),
        preprocessor: model.preprocessor.clone(),
        labels: model.labels.clone(),
        shards,
        untrained: model.config.get(RANDOM_SEED_KEY).is_some(),
    };
    Ok((manifest, files))
}

/// Symmetric int8 per output channel (the last axis, innermost in the kernel layout):
/// the bytes of `round(w / scale)` and the scales, `scale = max|w| / 127` (0 for an all-zero
/// channel). (Choosing each scale for the least squared error instead was measured: no better.)
fn quantize_per_channel(data: &[f32], channels: usize) -> (Vec<u8>, Vec<f32>) {
    let mut max = vec![0.0f32; channels];
    for row in data.chunks_exact(channels) {
        for (m, &w) in max.iter_mut().zip(row) {
            *m = m.max(w.abs());
        }
    }
    let scale: Vec<f32> = max.iter().map(|m| m / 127.0).collect();
    let q = data
        .iter()
        .zip(scale.iter().cycle())
        .map(|(&w, &s)| if s > 0.0 { (w / s).round().clamp(-127.0, 127.0) as i8 as u8 } else { 0 })
        .collect();
    (q, scale)
}

/// Writes a web weight folder atomically: everything goes to a temporary sibling
/// folder that replaces `out` only once complete, so a failure leaves nothing behind.
pub fn write_dir(out: &Path, manifest: &Manifest, files: &[(String, Vec<u8>)]) -> Result<()> {
    let name = out.display().to_string();
    // "" for a bare name: the current folder, which create_dir_all accepts and join keeps relative.
    let parent = out.parent().unwrap_or(Path::new(""));
    std::fs::create_dir_all(parent).context(|| format!("{}: cannot create", parent.display()))?;
    let leaf = out.file_name().context(|| format!("{name}: not a folder name"))?.to_string_lossy().to_string();
    let tmp = parent.join(format!(".{leaf}.tmp-{}", std::process::id()));
    let write = || -> Result<()> {
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).context(|| format!("{}: cannot create", tmp.display()))?;
        for (file, bytes) in files {
            std::fs::write(tmp.join(file), bytes).context(|| format!("{name}/{file}: cannot write"))?;
        }
        let json = serde_json::to_vec_pretty(manifest).expect("manifest serializes");
        std::fs::write(tmp.join("manifest.json"), json).context(|| format!("{name}/manifest.json: cannot write"))?;
        if out.exists() {
            if !out.join("manifest.json").exists() && std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(true) {
                bail!("{name}: exists and is not a converted model folder; refusing to replace it");
            }
            std::fs::remove_dir_all(out).context(|| format!("{name}: cannot replace"))?;
        }
        std::fs::rename(&tmp, out).context(|| format!("{name}: cannot move the converted model into place"))
    };
    let result = write();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_json;
    use serde_json::json;
    use std::collections::HashMap;

    /// A manifest's JSON with nothing but `shards` (and the name, format and version) set.
    fn manifest_json(name: &str, format: &str, version: u32, shards: Value) -> Value {
        json!({"format": format, "version": version, "name": name, "dtype": "f32", "config": {}, "preprocessor": {}, "labels": [], "shards": shards})
    }

    #[test]
    fn manifests_are_refused_past_their_limits() {
        let parse = |shards: Value| {
            let m = manifest_json("m", FORMAT, VERSION, json!(shards));
            Manifest::parse(&serde_json::to_vec(&m).unwrap(), "m.json").map(|_| ()).map_err(|e| e.message)
        };
        let shard = |file: &str, bytes: u64, sha256: &str| json!({"file": file, "bytes": bytes, "sha256": sha256});
        let hash = "0123456789abcdefABCDEF".repeat(3)[..64].to_string();
        assert_eq!(parse(json!([shard("weights-00000.safetensors", MAX_SHARD_BYTES, &hash)])), Ok(()));
        assert_eq!(parse(json!(vec![shard("w", 1, &hash); 10_000])), Ok(()));
        let refused = |shards: Value, why: &str| {
            let err = parse(shards).unwrap_err();
            assert!(err.starts_with("m.json: ") && err.contains(why), "{err}");
        };
        refused(json!([shard("w", MAX_SHARD_BYTES + 1, &hash)]), "claims 1073741825 bytes");
        refused(json!([]), "0 shards listed");
        refused(json!(vec![shard("w", 1, &hash); 10_001]), "10001 shards listed");
        for file in ["", "../w", ".w", "a/w", "w\\x", "w x"] {
            refused(json!([shard(file, 1, &hash)]), "is not a plain file name");
        }
        refused(json!([shard("w", 1, &hash[1..])]), "has no valid sha256");
        // Another format, or this format's next version, is refused even where the other matches.
        for (format, version) in [("other", VERSION), (FORMAT, VERSION + 1)] {
            let m = manifest_json("m", format, version, json!([shard("w", 1, &hash)]));
            let err = Manifest::parse(&serde_json::to_vec(&m).unwrap(), "m.json").err().unwrap().message;
            assert!(err.ends_with(&format!("is not {FORMAT} version {VERSION}")), "{err}");
        }
        refused(json!([shard("w", 1, &format!("{}g", &hash[1..]))]), "has no valid sha256");
    }

    #[test]
    fn the_model_identity_is_the_hash_of_its_shard_hashes_in_order() {
        let identity = |hashes: &[String]| {
            let shards: Vec<Value> = hashes.iter().map(|h| json!({"file": "w", "bytes": 1, "sha256": h})).collect();
            let m = manifest_json("m", FORMAT, VERSION, json!(shards));
            Manifest::parse(&serde_json::to_vec(&m).unwrap(), "m.json").unwrap().model_sha256()
        };
        let (a, b) = ("ab".repeat(32), "cd".repeat(32));
        // Python: hashlib.sha256(("ab" * 32 + "\n" + "cd" * 32 + "\n").encode()).hexdigest(), and the other order.
        assert_eq!(identity(&[a.clone(), b.clone()]), "a84bba32fbb42c701494490a5328ad248737e9e8f63027f6311e20c6b8b958f2");
        assert_eq!(identity(&[a.to_uppercase(), b.clone()]), "a84bba32fbb42c701494490a5328ad248737e9e8f63027f6311e20c6b8b958f2");
        assert_eq!(identity(&[b, a]), "21938adfe3c04143c77cfef6c4f4e5349ce10ff632f2ebda53497d07858e9b69");
    }

    #[test]
    fn shards_fill_in_parameter_order_up_to_the_limit() {
        let config = parse_json(include_str!("../../tests/fixtures/tiny/config.json"), "config.json").unwrap();
        let preprocessor = parse_json(include_str!("../../tests/fixtures/tiny/preprocessor_config.json"), "p.json").unwrap();
        let bit = BitConfig::from_json(&config, "config.json").unwrap();
        let tensors = convert::kernel_layout(&bit, random::weights(&bit, 1), "tiny").unwrap();
        let model = WebModel { name: "tiny", config: &config, preprocessor: &preprocessor, labels: bit.labels(), tensors: &tensors };
        let params = parameters(&bit);
        let large: HashMap<&str, bool> = params.iter().map(|p| (p.name.as_str(), p.role.is_large_weight())).collect();
        for dtype in [Dtype::F32, Dtype::F16, Dtype::Int8] {
            // What each tensor's values take in a shard: int8 quantizes only the large weights.
            let bytes = |name: &str| {
                let elem = match dtype {
                    Dtype::F32 => 4,
                    Dtype::F16 => 2,
                    Dtype::Int8 if large[name] => 1,
                    Dtype::Int8 => 4,
                };
                tensors[name].data.len() * elem
            };
            let total: usize = tensors.keys().map(|n| bytes(n)).sum();
            // Each shard's budget is the limit less 64 KiB for its header: a fifth of the model,
            // and exactly the first three parameters (which must then fill the first shard).
            let exact: usize = params[..3].iter().map(|p| bytes(&p.name)).sum();
            for budget in [total / 5, exact] {
                let limit = (64 << 10) + budget;
                let (manifest, files) = to_shards(&model, dtype, limit).unwrap();
                let mut read_back = TensorMap::new();
                let mut shard_bytes: Vec<usize> = Vec::new();
                let mut order: Vec<String> = Vec::new();
                for ((file, data), shard) in files.iter().zip(&manifest.shards) {
                    let mut these = TensorMap::new();
                    read_safetensors(data, file, &mut these).unwrap();
                    // A tensor bigger than the budget has a shard of its own, whatever its size.
                    assert!(data.len() <= limit || these.len() == 1, "{dtype:?} {file}: {} bytes", data.len());
                    assert!(shard.bytes == data.len() as u64 && shard.sha256 == sha256_hex(data), "{dtype:?} {file}");
                    let first = params.iter().map(|p| p.name.clone()).find(|n| these.contains_key(n)).expect("no empty shard");
                    if let Some(&previous) = shard_bytes.last() {
                        assert!(previous + bytes(&first) > budget, "{dtype:?}: {first} would have fit in the shard before {file}");
                    }
                    shard_bytes.push(these.keys().map(|n| bytes(n)).sum());
                    assert!(shard_bytes.last() <= Some(&budget) || these.len() == 1, "{dtype:?} {file}: {shard_bytes:?} over {budget}");
                    order.push(first);
                    read_back.extend(these);
                }
                assert_eq!(read_back.keys().collect::<Vec<_>>(), tensors.keys().collect::<Vec<_>>(), "{dtype:?}");
                // Values: f32 exact, f16 rounded once, int8 only for the large weights (within half a
                // step of 1/127 of the tensor's largest value), everything else exact.
                for (name, got) in &read_back {
                    let want = &tensors[name.as_str()].data;
                    let step = want.iter().fold(0.0f32, |m, w| m.max(w.abs())) / 127.0;
                    let ok = |(g, w): (&f32, &f32)| match dtype {
                        Dtype::F16 => *g == half::f16::from_f32(*w).to_f32(),
                        Dtype::Int8 if large[name.as_str()] => (g - w).abs() <= 0.5001 * step,
                        _ => g == w,
                    };
                    assert!(got.data.iter().zip(want).all(ok), "{dtype:?} {name}");
                    assert!(!(dtype == Dtype::Int8 && large[name.as_str()]) || got.data != *want, "{name}: int8 stored it exactly");
                }
                let by_parameter: Vec<String> = params.iter().map(|p| p.name.clone()).filter(|n| order.contains(n)).collect();
                assert_eq!(order, by_parameter, "{dtype:?}");
                if budget == exact {
                    assert_eq!(shard_bytes[0], exact, "{dtype:?}: the first three parameters fill the first shard exactly");
                } else {
                    assert!((5..=8).contains(&files.len()), "{dtype:?}: {} shards", files.len());
                }
            }
        }
    }

    #[test]
    fn a_converted_folder_is_replaced_whole_and_nothing_else_is() {
        let root = std::env::temp_dir().join(format!("bit50-write-dir-{}", std::process::id()));
        let manifest = |name: &str| {
            let m = manifest_json(name, FORMAT, VERSION, json!([{"file": "w", "bytes": 1, "sha256": "ab".repeat(32)}]));
            Manifest::parse(&serde_json::to_vec(&m).unwrap(), "m.json").unwrap()
        };
        let out = root.join("model");
        write_dir(&out, &manifest("first"), &[("w".into(), vec![1]), ("extra".into(), vec![2])]).unwrap();
        // Converting again replaces the folder: the old files go with it.
        write_dir(&out, &manifest("second"), &[("w".into(), vec![3])]).unwrap();
        let mut files: Vec<String> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        files.sort();
        assert_eq!(files, ["manifest.json", "w"]);
        assert_eq!(std::fs::read(out.join("w")).unwrap(), [3]);
        assert!(std::fs::read_to_string(out.join("manifest.json")).unwrap().contains("\"second\""));
        // An empty folder may be filled; a folder of something else is left as it was.
        let empty = root.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        write_dir(&empty, &manifest("m"), &[("w".into(), vec![1])]).unwrap();
        let other = root.join("photos");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("cat.jpg"), b"cat").unwrap();
        let err = write_dir(&other, &manifest("m"), &[("w".into(), vec![1])]).unwrap_err().message;
        assert!(err.ends_with("photos: exists and is not a converted model folder; refusing to replace it"), "{err}");
        assert_eq!(std::fs::read(other.join("cat.jpg")).unwrap(), b"cat");
        // Nothing temporary is left beside them.
        let mut left: Vec<String> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        left.sort();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(left, ["empty", "model", "photos"]);
    }
}
