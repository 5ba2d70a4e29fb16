//! The BiT network's structure: which parameters exist for a config (spec §4),
//! and the in-memory network with its weights in the layout the kernels read.
//!
//! Kernel layout (the web weight format stores exactly this):
//! - convolutions: weight-standardized once at conversion, `[kh][kw][cin][cout]`
//!   (output channels innermost, so 4 of them load as one vec4);
//! - the classifier: `[in][out]`;
//! - GroupNorm weight and bias: `[C]`.

use crate::config::BitConfig;
use crate::{bail, Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A dense float tensor with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor { shape, data }
    }
}

/// Tensors by parameter name.
pub type TensorMap = BTreeMap<String, Tensor>;

/// What a parameter is, which decides how it is initialised, converted and used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Role {
    /// Weight-standardized convolution `[out, in, k, k]` (torch layout).
    Conv { k: usize, stride: usize },
    NormWeight,
    NormBias,
    /// `norm3`, the GroupNorm before each block's last convolution (initialised near zero).
    LastNormWeight,
    LastNormBias,
    ClassifierWeight,
    ClassifierBias,
}

impl Role {
    /// The convolutions and the classifier weight: 99% of the bytes, what int8 storage quantizes.
    pub fn is_large_weight(self) -> bool {
        matches!(self, Role::Conv { .. } | Role::ClassifierWeight)
    }
}

/// One parameter of the network, named and shaped as transformers saves it.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub role: Role,
    pub torch_shape: Vec<usize>,
}

impl Param {
    /// Shape in the kernel layout (see module docs).
    pub fn kernel_shape(&self) -> Vec<usize> {
        let s = &self.torch_shape;
        match self.role {
            Role::Conv { .. } => vec![s[2], s[3], s[1], s[0]],
            Role::ClassifierWeight => vec![s[1], s[0]],
            _ => s.clone(),
        }
    }
}

/// Every parameter of `BitForImageClassification` for this config, in a fixed order (spec §4).
pub fn parameters(config: &BitConfig) -> Vec<Param> {
    let mut params = Vec::new();
    let mut push = |name: String, role: Role, shape: Vec<usize>| params.push(Param { name, role, torch_shape: shape });
    push("bit.embedder.convolution.weight".into(), Role::Conv { k: 7, stride: 2 }, vec![config.embedding_size, 3, 7, 7]);
    for i in 0..config.num_stages() {
        let s = config.stage(i);
        for j in 0..s.depth {
            let p = format!("bit.encoder.stages.{i}.layers.{j}");
            let (cin, stride) = if j == 0 { (s.cin, s.stride) } else { (s.out, 1) };
            if j == 0 {
                push(format!("{p}.downsample.conv.weight"), Role::Conv { k: 1, stride }, vec![s.out, cin, 1, 1]);
            }
            push(format!("{p}.norm1.weight"), Role::NormWeight, vec![cin]);
            push(format!("{p}.norm1.bias"), Role::NormBias, vec![cin]);
            push(format!("{p}.conv1.weight"), Role::Conv { k: 1, stride: 1 }, vec![s.mid, cin, 1, 1]);
            push(format!("{p}.norm2.weight"), Role::NormWeight, vec![s.mid]);
            push(format!("{p}.norm2.bias"), Role::NormBias, vec![s.mid]);
            push(format!("{p}.conv2.weight"), Role::Conv { k: 3, stride }, vec![s.mid, s.mid, 3, 3]);
            push(format!("{p}.norm3.weight"), Role::LastNormWeight, vec![s.mid]);
            push(format!("{p}.norm3.bias"), Role::LastNormBias, vec![s.mid]);
            push(format!("{p}.conv3.weight"), Role::Conv { k: 1, stride: 1 }, vec![s.out, s.mid, 1, 1]);
        }
    }
    let width = *config.hidden_sizes.last().expect("validated config has stages");
    push("bit.norm.weight".into(), Role::NormWeight, vec![width]);
    push("bit.norm.bias".into(), Role::NormBias, vec![width]);
    push("classifier.1.weight".into(), Role::ClassifierWeight, vec![config.num_classes(), width]);
    push("classifier.1.bias".into(), Role::ClassifierBias, vec![config.num_classes()]);
    params
}

/// A weight-standardized convolution, weights `[k][k][cin][cout]`, no bias.
#[derive(Debug, Clone)]
pub struct Conv {
    pub k: usize,
    pub stride: usize,
    /// Symmetric zero padding: `((stride - 1) + (k - 1)) / 2` (spec §2).
    pub pad: usize,
    pub cin: usize,
    pub cout: usize,
    pub weight: Vec<f32>,
}

impl Conv {
    pub fn out_size(&self, size: usize) -> usize {
        (size + 2 * self.pad - self.k) / self.stride + 1
    }
}

/// GroupNorm's affine parameters (the group count is the network's).
#[derive(Debug, Clone)]
pub struct GroupNorm {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// A pre-activation bottleneck (ResNet v2), spec §3.2.
#[derive(Debug, Clone)]
pub struct Block {
    pub norm1: GroupNorm,
    /// Projection shortcut, only in the first block of a stage; it reads the pre-activated input.
    pub downsample: Option<Conv>,
    pub conv1: Conv,
    pub norm2: GroupNorm,
    pub conv2: Conv,
    pub norm3: GroupNorm,
    pub conv3: Conv,
}

/// The whole classifier with its weights in kernel layout.
#[derive(Debug, Clone)]
pub struct Network {
    pub groups: usize,
    pub image_size: usize,
    pub stem: Conv,
    pub stages: Vec<Vec<Block>>,
    pub norm: GroupNorm,
    /// `[features][classes]`.
    pub classifier_weight: Vec<f32>,
    pub classifier_bias: Vec<f32>,
    classes: usize,
}

impl Network {
    pub fn features(&self) -> usize {
        self.stages.iter().flatten().last().map_or(self.stem.cout, |b| b.conv3.cout)
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Every convolution in execution order.
    pub fn convs(&self) -> impl Iterator<Item = &Conv> {
        std::iter::once(&self.stem).chain(self.stages.iter().flatten().flat_map(|b| {
            b.downsample.iter().chain([&b.conv1, &b.conv2, &b.conv3])
        }))
    }

    /// Multiply-adds x 2 for one image, convolutions and classifier.
    pub fn flops(&self) -> f64 {
        let mut size = self.image_size;
        let mut flops = 0.0;
        let mut count = |conv: &Conv, size: usize| {
            let out = conv.out_size(size);
            flops += 2.0 * (out * out * conv.k * conv.k * conv.cin * conv.cout) as f64;
            out
        };
        size = count(&self.stem, size);
        size = (size + 2 - 3) / 2 + 1; // zero pad 1, max pool 3x3/2
        for block in self.stages.iter().flatten() {
            if let Some(d) = &block.downsample {
                count(d, size);
            }
            count(&block.conv1, size);
            size = count(&block.conv2, size);
            count(&block.conv3, size);
        }
        flops + 2.0 * (self.features() * self.classes()) as f64
    }

    /// Builds the network from tensors in kernel layout, checking every name and shape.
    pub fn from_tensors(config: &BitConfig, image_size: usize, mut tensors: TensorMap, source: &str) -> Result<Self> {
        let params = parameters(config);
        check_names(&params, &tensors, source)?;
        for p in &params {
            let t = &tensors[&p.name];
            let want = p.kernel_shape();
            if t.shape != want {
                bail!("{source}: tensor {} has shape {:?}, expected {:?}", p.name, t.shape, want);
            }
        }
        Ok(Self::build(config, image_size, &mut |name| tensors.remove(name).expect("checked above").data))
    }

    /// The network's structure without its weights (every weight vector empty): what the GPU
    /// records its graph from before the weights arrive.
    pub fn skeleton(config: &BitConfig, image_size: usize) -> Self {
        Self::build(config, image_size, &mut |_| Vec::new())
    }

    /// The network for `config`, each parameter's data from `take(name)`.
    fn build(config: &BitConfig, image_size: usize, take: &mut dyn FnMut(&str) -> Vec<f32>) -> Self {
        let conv = |take: &mut dyn FnMut(&str) -> Vec<f32>, name: &str, k: usize, stride: usize, cin: usize, cout: usize| Conv {
            k,
            stride,
            pad: ((stride - 1) + (k - 1)) / 2,
            cin,
            cout,
            weight: take(name),
        };
        let norm = |take: &mut dyn FnMut(&str) -> Vec<f32>, name: &str| GroupNorm { weight: take(&format!("{name}.weight")), bias: take(&format!("{name}.bias")) };
        let stem = conv(take, "bit.embedder.convolution.weight", 7, 2, 3, config.embedding_size);
        let mut stages = Vec::new();
        for i in 0..config.num_stages() {
            let s = config.stage(i);
            let mut blocks = Vec::new();
            for j in 0..s.depth {
                let p = format!("bit.encoder.stages.{i}.layers.{j}");
                let (cin, stride) = if j == 0 { (s.cin, s.stride) } else { (s.out, 1) };
                blocks.push(Block {
                    downsample: (j == 0).then(|| conv(take, &format!("{p}.downsample.conv.weight"), 1, stride, cin, s.out)),
                    norm1: norm(take, &format!("{p}.norm1")),
                    conv1: conv(take, &format!("{p}.conv1.weight"), 1, 1, cin, s.mid),
                    norm2: norm(take, &format!("{p}.norm2")),
                    conv2: conv(take, &format!("{p}.conv2.weight"), 3, stride, s.mid, s.mid),
                    norm3: norm(take, &format!("{p}.norm3")),
                    conv3: conv(take, &format!("{p}.conv3.weight"), 1, 1, s.mid, s.out),
                });
            }
            stages.push(blocks);
        }
        Network {
            groups: config.num_groups,
            image_size,
            stem,
            stages,
            norm: norm(take, "bit.norm"),
            classifier_weight: take("classifier.1.weight"),
            classifier_bias: take("classifier.1.bias"),
            classes: config.num_classes(),
        }
    }
}

/// Refuses a tensor set with missing or unexpected names, listing them.
pub fn check_names(params: &[Param], tensors: &TensorMap, source: &str) -> Result<()> {
    let missing: Vec<&str> = params.iter().filter(|p| !tensors.contains_key(&p.name)).map(|p| p.name.as_str()).collect();
    let unexpected: Vec<&str> =
        tensors.keys().filter(|k| !params.iter().any(|p| &p.name == *k)).map(|k| k.as_str()).collect();
    let list = |names: &[&str]| {
        let shown: Vec<&str> = names.iter().take(8).copied().collect();
        let more = if names.len() > 8 { format!(" and {} more", names.len() - 8) } else { String::new() };
        format!("{}{more}", shown.join(", "))
    };
    match (missing.is_empty(), unexpected.is_empty()) {
        (true, true) => Ok(()),
        (false, true) => bail!("{source}: missing tensors: {}", list(&missing)),
        (true, false) => bail!("{source}: unexpected tensors: {}", list(&unexpected)),
        (false, false) => bail!("{source}: missing tensors: {}; unexpected tensors: {}", list(&missing), list(&unexpected)),
    }
}

/// A loaded classifier: the network, its labels and its preprocessing.
#[derive(Debug, Clone)]
pub struct Model {
    pub name: String,
    pub labels: Vec<String>,
    pub preprocessor: crate::config::PreprocessorConfig,
    pub network: Network,
    /// How its weights were stored (f16 and int8 models run in f16 on GPUs that have it).
    pub stored: Dtype,
    /// Its identity, which heads record (`Manifest::model_sha256`).
    pub sha256: String,
}

/// How weights are stored on disk (they are always f32 in memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    F32,
    F16,
    /// Per-output-channel symmetric int8 for the large weights (see the module docs).
    Int8,
}

impl std::str::FromStr for Dtype {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Dtype::F32),
            "f16" => Ok(Dtype::F16),
            "int8" => Ok(Dtype::Int8),
            _ => bail!("--dtype {s:?}: expected f32, f16 or int8"),
        }
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_json, BIT50_CONFIG_JSON};
    use std::path::Path;

    fn bit50() -> BitConfig {
        BitConfig::from_json(&parse_json(BIT50_CONFIG_JSON, "config.json").unwrap(), "config.json").unwrap()
    }

    #[test]
    fn flops_and_convolutions_are_what_torch_counts() {
        // tools/count_flops.py: torch's FlopCounterMode and forward hooks on transformers' model.
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let facts = parse_json(&std::fs::read_to_string(fixtures.join("flops.json")).unwrap(), "flops.json").unwrap();
        for (name, want) in facts.as_object().unwrap() {
            let config = match name.starts_with("google-bit-50@") {
                true => bit50(),
                false => {
                    let text = std::fs::read_to_string(fixtures.join(name).join("config.json")).unwrap();
                    BitConfig::from_json(&parse_json(&text, name).unwrap(), name).unwrap()
                }
            };
            let network = Network::skeleton(&config, want["size"].as_u64().unwrap() as usize);
            let convs: Vec<[usize; 4]> = network.convs().map(|c| [c.k, c.stride, c.cin, c.cout]).collect();
            assert_eq!(convs, serde_json::from_value::<Vec<[usize; 4]>>(want["convs"].clone()).unwrap(), "{name}");
            assert_eq!(network.flops(), want["flops"].as_f64().unwrap(), "{name}");
        }
    }

    #[test]
    fn large_weights_are_the_convolutions_and_the_classifier_in_kernel_layout() {
        let params = parameters(&bit50());
        let large: Vec<&Param> = params.iter().filter(|p| p.role.is_large_weight()).collect();
        let convs = large.iter().filter(|p| matches!(p.role, Role::Conv { .. })).count();
        assert_eq!((large.len(), convs), (54, 53));
        let elements = |p: &Param| p.torch_shape.iter().product::<usize>();
        let share = large.iter().map(|p| elements(p)).sum::<usize>() as f64 / params.iter().map(elements).sum::<usize>() as f64;
        assert!(share > 0.99, "{share}");
        let shape = |name: &str| params.iter().find(|p| p.name == name).unwrap().kernel_shape();
        assert_eq!(shape("bit.embedder.convolution.weight"), [7, 7, 3, 64]);
        assert_eq!(shape("bit.encoder.stages.1.layers.0.conv2.weight"), [3, 3, 128, 128]);
        assert_eq!(shape("classifier.1.weight"), [2048, 1000]);
        assert_eq!(shape("bit.norm.weight"), [2048]);
    }

    #[test]
    fn check_names_lists_what_is_missing_and_unexpected() {
        let params = parameters(&bit50());
        let all: TensorMap = params.iter().map(|p| (p.name.clone(), Tensor::new(vec![0], vec![]))).collect();
        let check = |tensors: &TensorMap| check_names(&params, tensors, "m").err().map(|e| e.message);
        assert_eq!(check(&all), None);
        let without = |n: usize| {
            let mut t = all.clone();
            params.iter().take(n).for_each(|p| drop(t.remove(&p.name)));
            t
        };
        let first8 = params.iter().take(8).map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ");
        assert_eq!(check(&without(8)).unwrap(), format!("m: missing tensors: {first8}"));
        assert_eq!(check(&without(10)).unwrap(), format!("m: missing tensors: {first8} and 2 more"));
        let mut extra = all.clone();
        extra.insert("head.weight".into(), Tensor::new(vec![0], vec![]));
        assert_eq!(check(&extra).unwrap(), "m: unexpected tensors: head.weight");
        extra.remove("classifier.1.bias");
        assert_eq!(check(&extra).unwrap(), "m: missing tensors: classifier.1.bias; unexpected tensors: head.weight");
    }

    #[test]
    fn dtypes_parse_by_name() {
        assert_eq!(["f32", "f16", "int8"].map(|s| s.parse::<Dtype>().unwrap()), [Dtype::F32, Dtype::F16, Dtype::Int8]);
        assert_eq!("fp16".parse::<Dtype>().unwrap_err().message, "--dtype \"fp16\": expected f32, f16 or int8");
    }
}
