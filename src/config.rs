//! The model's `config.json` and `preprocessor_config.json`, as published
//! (Hugging Face's form and PaddleNLP's variant). Everything the engine needs to
//! know about depths, widths, groups, image size and labels comes from here, so
//! a tiny test model runs through exactly the same code as google/bit-50.

use crate::{Context, Error, Result};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// google/bit-50's published files, used when a source carries none.
pub const BIT50_CONFIG_JSON: &str = include_str!("../assets/google-bit-50/config.json");
pub const BIT50_PREPROCESSOR_JSON: &str =
    include_str!("../assets/google-bit-50/preprocessor_config.json");

/// The fields of `BitConfig` this engine reads. Defaults are transformers' `BitConfig`
/// defaults, which are google/bit-50's values.
#[derive(Debug, Clone, Deserialize)]
pub struct BitConfig {
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default = "default_layer_type")]
    pub layer_type: String,
    #[serde(default)]
    pub global_padding: Option<String>,
    #[serde(default)]
    pub embedding_dynamic_padding: bool,
    #[serde(default = "default_num_groups")]
    pub num_groups: usize,
    #[serde(default = "default_depths")]
    pub depths: Vec<usize>,
    #[serde(default = "default_hidden_sizes")]
    pub hidden_sizes: Vec<usize>,
    #[serde(default = "default_embedding_size")]
    pub embedding_size: usize,
    #[serde(default = "default_output_stride")]
    pub output_stride: usize,
    #[serde(default = "one")]
    pub width_factor: usize,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default = "three")]
    pub num_channels: usize,
    #[serde(default)]
    pub id2label: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub num_labels: Option<usize>,
}

fn default_layer_type() -> String {
    "preactivation".into()
}
fn default_num_groups() -> usize {
    32
}
fn default_depths() -> Vec<usize> {
    vec![3, 4, 6, 3]
}
fn default_hidden_sizes() -> Vec<usize> {
    vec![256, 512, 1024, 2048]
}
fn default_embedding_size() -> usize {
    64
}
fn default_output_stride() -> usize {
    32
}
fn default_hidden_act() -> String {
    "relu".into()
}
fn one() -> usize {
    1
}
fn three() -> usize {
    3
}

impl BitConfig {
    /// Parses `config.json` text and refuses what this engine cannot run.
    pub fn from_json(json: &Value, file: &str) -> Result<Self> {
        let config: BitConfig = serde_json::from_value(json.clone())
            .context(|| format!("{file}: not a BiT config"))?;
        config.validate(file)?;
        Ok(config)
    }

    fn validate(&self, file: &str) -> Result<()> {
        let refuse = |field: &str, value: &dyn std::fmt::Debug, why: &str| {
            Err(Error::from(format!("{file}: unsupported {field} = {value:?} ({why})")))
        };
        if let Some(t) = &self.model_type {
            if t != "bit" {
                return refuse("model_type", t, "only BiT models are supported");
            }
        }
        if self.layer_type != "preactivation" {
            return refuse("layer_type", &self.layer_type, "only \"preactivation\" (ResNet v2) is supported");
        }
        if let Some(p) = &self.global_padding {
            return refuse("global_padding", p, "only null (static symmetric padding) is supported");
        }
        if self.embedding_dynamic_padding {
            return refuse("embedding_dynamic_padding", &true, "only false is supported");
        }
        if self.hidden_act != "relu" {
            return refuse("hidden_act", &self.hidden_act, "only relu is supported");
        }
        if self.num_channels != 3 {
            return refuse("num_channels", &self.num_channels, "only RGB input is supported");
        }
        if self.depths.is_empty() || self.depths.len() != self.hidden_sizes.len() || self.depths.contains(&0) {
            return refuse("depths", &self.depths, "one non-zero depth per hidden size is required");
        }
        // What transformers refuses, at construction or in the forward pass: every GroupNorm
        // splits its channels evenly into num_groups, and the last stage's width (make_div of
        // hidden size x width_factor) must be hidden_sizes[-1], the width of bit.norm and the classifier.
        let g = self.num_groups;
        if g == 0 {
            return refuse("num_groups", &g, "must be positive");
        }
        let e = self.embedding_size;
        if e == 0 || e > 65536 || !e.is_multiple_of(g) {
            return refuse("embedding_size", &e, &format!("must be positive and split evenly into num_groups = {g}"));
        }
        if self.hidden_sizes.iter().any(|&h| h == 0 || h.saturating_mul(self.width_factor.max(1)) > 65536) {
            return refuse("hidden_sizes", &self.hidden_sizes, "each must be between 1 and 65536 (times width_factor)");
        }
        for i in 0..self.num_stages() {
            let s = self.stage(i);
            if !s.out.is_multiple_of(g) || !s.mid.is_multiple_of(g) {
                let why = format!("stage {} has {} channels and a {}-channel bottleneck (transformers' make_div), which do not split evenly into the groups", i + 1, s.out, s.mid);
                return refuse("num_groups", &g, &why);
            }
        }
        let last = self.stage(self.num_stages() - 1).out;
        let width = self.hidden_sizes[self.num_stages() - 1];
        if last != width {
            let why = format!("the last stage outputs make_div({width} x width_factor {}) = {last} channels, but bit.norm and the classifier take hidden_sizes[-1] = {width}: transformers' forward fails", self.width_factor);
            return refuse("hidden_sizes", &self.hidden_sizes, &why);
        }
        let labels = self.num_classes();
        if labels == 0 || labels > 100_000 {
            return refuse("id2label", &labels, "needs between 1 and 100000 labels");
        }
        Ok(())
    }

    /// Number of output classes.
    pub fn num_classes(&self) -> usize {
        match &self.id2label {
            Some(map) if !map.is_empty() => map.len(),
            _ => self.num_labels.unwrap_or(2),
        }
    }

    /// Class names in index order (`LABEL_i` where the config names none).
    pub fn labels(&self) -> Vec<String> {
        let n = self.num_classes();
        let mut labels: Vec<String> = (0..n).map(|i| format!("LABEL_{i}")).collect();
        if let Some(map) = &self.id2label {
            for (k, v) in map {
                if let Ok(i) = k.parse::<usize>() {
                    if i < n {
                        labels[i] = v.clone();
                    }
                }
            }
        }
        labels
    }

    /// (in, mid, out) channels and stride of stage `i`, as transformers builds them
    /// (`BitEncoder`, `BitPreActivationBottleneckLayer`): out = make_div(hidden size x
    /// width_factor), mid = make_div(out / 4), in = the stem's width or the previous out;
    /// stride 2 except in the first stage and once the stride so far (4 after the stem) has
    /// reached output_stride. (transformers then sets a dilation that its pre-activation layer
    /// never passes to its convolutions: the stride is all that changes.)
    pub fn stage(&self, i: usize) -> StageShape {
        let out = |i: usize| make_div((self.hidden_sizes[i] * self.width_factor) as f64);
        // Before stage i > 0 the stride so far is 4 x 2^(i-1), until it reaches output_stride.
        let stride = if i > 0 && i - 1 < 62 && 4usize << (i - 1) < self.output_stride { 2 } else { 1 };
        StageShape {
            depth: self.depths[i],
            cin: if i == 0 { self.embedding_size } else { out(i - 1) },
            mid: make_div(out(i) as f64 * 0.25),
            out: out(i),
            stride,
        }
    }

    pub fn num_stages(&self) -> usize {
        self.depths.len()
    }
}

/// transformers' `make_div` (modeling_bit.py): `value` rounded to a multiple of 8, at least 8,
/// and not below 90% of `value`.
pub fn make_div(value: f64) -> usize {
    let mut new = 8.max((value + 4.0) as usize / 8 * 8);
    if (new as f64) < 0.9 * value {
        new += 8;
    }
    new
}

#[derive(Debug, Clone, Copy)]
pub struct StageShape {
    pub depth: usize,
    pub cin: usize,
    pub mid: usize,
    pub out: usize,
    pub stride: usize,
}

/// The image processor settings (`BitImageProcessor`).
#[derive(Debug, Clone)]
pub struct PreprocessorConfig {
    /// The short side is resized to this many pixels.
    pub shortest_edge: usize,
    /// Then a centred `crop` x `crop` square is cut.
    pub crop: usize,
    pub rescale_factor: f64,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// The fields of `BitImageProcessor` this engine reads. Defaults are transformers' class
/// defaults, which are not google/bit-50's values (bicubic, CLIP's mean and std, 224): a file
/// that leaves out `resample` means bicubic to transformers, and is refused here as such. A field
/// given as null is refused, as transformers refuses it when it preprocesses.
#[derive(Deserialize)]
struct RawPreprocessor {
    #[serde(default = "yes")]
    do_resize: bool,
    #[serde(default = "shortest_edge_224")]
    size: BTreeMap<String, usize>,
    #[serde(default = "bicubic")]
    resample: u32,
    #[serde(default = "yes")]
    do_center_crop: bool,
    #[serde(default = "square_224")]
    crop_size: BTreeMap<String, usize>,
    #[serde(default = "yes")]
    do_rescale: bool,
    #[serde(default = "one_over_255")]
    rescale_factor: f64,
    #[serde(default = "yes")]
    do_normalize: bool,
    #[serde(default = "clip_mean")]
    image_mean: Vec<f32>,
    #[serde(default = "clip_std")]
    image_std: Vec<f32>,
}

fn yes() -> bool {
    true
}
fn bicubic() -> u32 {
    3
}
fn one_over_255() -> f64 {
    1.0 / 255.0
}
fn shortest_edge_224() -> BTreeMap<String, usize> {
    BTreeMap::from([("shortest_edge".into(), 224)])
}
fn square_224() -> BTreeMap<String, usize> {
    BTreeMap::from([("height".into(), 224), ("width".into(), 224)])
}
fn clip_mean() -> Vec<f32> {
    vec![0.48145466, 0.4578275, 0.40821073]
}
fn clip_std() -> Vec<f32> {
    vec![0.26862954, 0.26130258, 0.27577711]
}

impl PreprocessorConfig {
    pub fn from_json(json: &Value, file: &str) -> Result<Self> {
        let raw: RawPreprocessor = serde_json::from_value(json.clone())
            .context(|| format!("{file}: not an image processor config"))?;
        let refuse = |field: &str, value: &dyn std::fmt::Debug, why: &str| {
            Err(Error::from(format!("{file}: unsupported {field} = {value:?} ({why})")))
        };
        if !raw.do_resize {
            return refuse("do_resize", &false, "BiT resizes the short side");
        }
        if !raw.do_center_crop {
            return refuse("do_center_crop", &false, "the network runs on a square crop");
        }
        if raw.resample != 2 {
            return refuse("resample", &raw.resample, "only 2 (PIL bilinear) is implemented");
        }
        let Some(&shortest_edge) = raw.size.get("shortest_edge") else {
            return refuse("size", &raw.size, "expected {\"shortest_edge\": N}");
        };
        let crop = match (raw.crop_size.get("height"), raw.crop_size.get("width")) {
            (Some(&h), Some(&w)) if h == w => h,
            _ => return refuse("crop_size", &raw.crop_size, "expected a square {\"height\": N, \"width\": N}"),
        };
        if crop == 0 || crop > 4096 || shortest_edge < crop || shortest_edge > 8192 {
            return refuse("crop_size", &crop, "needs 1 <= crop_size <= shortest_edge <= 8192");
        }
        let triple = |field: &str, v: Vec<f32>| -> Result<[f32; 3]> {
            match v[..] {
                [a, b, c] if v.iter().all(|x| x.is_finite()) => Ok([a, b, c]),
                _ => Err(Error::from(format!("{file}: unsupported {field} = {v:?} (expected 3 finite numbers)"))),
            }
        };
        let (mean, std) = if raw.do_normalize { (triple("image_mean", raw.image_mean)?, triple("image_std", raw.image_std)?) } else { ([0.0; 3], [1.0; 3]) };
        if std.contains(&0.0) {
            return refuse("image_std", &std, "must not be zero");
        }
        let rescale_factor = if raw.do_rescale { raw.rescale_factor } else { 1.0 };
        Ok(PreprocessorConfig { shortest_edge, crop, rescale_factor, mean, std })
    }
}

/// Parses JSON text, naming the file when it is not JSON.
pub fn parse_json(text: &str, file: &str) -> Result<Value> {
    serde_json::from_str(text).context(|| format!("{file}: invalid JSON"))
}

/// The published google/bit-50 config and preprocessing, as JSON values.
pub fn bit50_defaults() -> (Value, Value) {
    let config = serde_json::from_str(BIT50_CONFIG_JSON).expect("bundled config.json is valid");
    let pre = serde_json::from_str(BIT50_PREPROCESSOR_JSON).expect("bundled preprocessor_config.json is valid");
    (config, pre)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_google_bit50_config_is_the_published_network() {
        let (c, p) = bit50_defaults();
        let c = BitConfig::from_json(&c, "config.json").unwrap();
        assert_eq!(c.depths, [3, 4, 6, 3]);
        assert_eq!(c.hidden_sizes, [256, 512, 1024, 2048]);
        assert_eq!(c.num_groups, 32);
        let labels = c.labels();
        assert_eq!(labels.len(), 1000);
        assert_eq!(labels[281], "tabby, tabby cat");
        let p = PreprocessorConfig::from_json(&p, "preprocessor_config.json").unwrap();
        assert_eq!((p.shortest_edge, p.crop), (448, 448));
    }

    #[test]
    fn unsupported_fields_are_named() {
        let (c, _) = bit50_defaults();
        for (field, value) in [
            ("layer_type", Value::from("bottleneck")),
            ("global_padding", Value::from("SAME")),
            ("hidden_act", Value::from("gelu")),
            ("model_type", Value::from("resnet")),
        ] {
            let mut bad = c.clone();
            bad[field] = value;
            let err = BitConfig::from_json(&bad, "x/config.json").unwrap_err().message;
            assert!(err.starts_with("x/config.json: unsupported ") && err.contains(field), "{err}");
        }
    }

    #[test]
    fn missing_fields_take_transformers_defaults() {
        // transformers 5.24: BitConfig().to_dict() for the fields read here.
        let c = BitConfig::from_json(&serde_json::json!({}), "config.json").unwrap();
        assert_eq!((c.model_type, c.layer_type.as_str(), c.global_padding, c.embedding_dynamic_padding), (None, "preactivation", None, false));
        assert_eq!((c.num_groups, c.depths, c.hidden_sizes), (32, vec![3, 4, 6, 3], vec![256, 512, 1024, 2048]));
        assert_eq!((c.embedding_size, c.output_stride, c.width_factor, c.hidden_act.as_str(), c.num_channels), (64, 32, 1, "relu", 3));
        assert_eq!((c.id2label, c.num_labels), (None, None));
    }

    #[test]
    fn preprocessor_fields_left_out_take_bit_image_processor_defaults() {
        // transformers 5.24 BitImageProcessor(): resample BICUBIC (3), which is refused here by
        // name; size {shortest_edge: 224}, crop_size 224 x 224, rescale 1/255, CLIP's mean and std.
        let err = PreprocessorConfig::from_json(&serde_json::json!({}), "p.json").unwrap_err().message;
        assert!(err.starts_with("p.json: unsupported resample = 3 "), "{err}");
        let p = PreprocessorConfig::from_json(&serde_json::json!({"resample": 2}), "p.json").unwrap();
        assert_eq!((p.shortest_edge, p.crop, p.rescale_factor), (224, 224, 1.0 / 255.0));
        assert_eq!((p.mean, p.std), ([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]));
        // Given as null, transformers refuses them when it preprocesses ("`size` and `resample`
        // must be specified..."): refused here at load.
        for field in ["size", "crop_size", "image_mean", "image_std"] {
            let err = PreprocessorConfig::from_json(&serde_json::json!({"resample": 2, field: null}), "p.json").unwrap_err().message;
            assert!(err.starts_with("p.json: not an image processor config"), "{field}: {err}");
        }
    }

    /// Changes `fields` in the bundled file and returns its verdict: Ok, or the field refused.
    fn verdict(bundled: &str, fields: Value) -> std::result::Result<(), String> {
        let mut json: Value = serde_json::from_str(bundled).unwrap();
        for (k, v) in fields.as_object().unwrap() {
            json[k] = v.clone();
        }
        let result = if bundled == BIT50_CONFIG_JSON {
            BitConfig::from_json(&json, "f.json").map(|_| ())
        } else {
            PreprocessorConfig::from_json(&json, "f.json").map(|_| ())
        };
        result.map_err(|e| {
            let field = e.message.strip_prefix("f.json: unsupported ").and_then(|m| m.split(' ').next());
            field.unwrap_or(&e.message).to_string()
        })
    }

    #[test]
    fn each_limit_is_where_its_message_says() {
        use serde_json::json;
        let config = |fields| verdict(BIT50_CONFIG_JSON, fields);
        let refused = |field: &str| Err(field.to_string());
        assert_eq!(config(json!({"depths": [], "hidden_sizes": []})), refused("depths"));
        assert_eq!(config(json!({"depths": [3, 4, 6]})), refused("depths"));
        assert_eq!(config(json!({"depths": [3, 0, 6, 3]})), refused("depths"));
        assert_eq!(config(json!({"num_groups": 0})), refused("num_groups"));
        assert_eq!(config(json!({"embedding_size": 0})), refused("embedding_size"));
        assert_eq!(config(json!({"embedding_size": 60})), refused("embedding_size"));
        assert_eq!(config(json!({"embedding_size": 65536, "num_groups": 8})), Ok(()));
        assert_eq!(config(json!({"embedding_size": 65544, "num_groups": 8})), refused("embedding_size"));
        assert_eq!(config(json!({"hidden_sizes": [0, 512, 1024, 2048]})), refused("hidden_sizes"));
        assert_eq!(config(json!({"hidden_sizes": [65536, 512, 1024, 2048]})), Ok(()));
        assert_eq!(config(json!({"hidden_sizes": [65544, 512, 1024, 2048], "num_groups": 8})), refused("hidden_sizes"));
        // torch's GroupNorm refuses channels that do not split into the groups: here a stage's
        // output (104 into 24) and, alone, its bottleneck (make_div(96 / 4) = 24 into 16).
        assert_eq!(config(json!({"embedding_size": 48, "num_groups": 24, "depths": [1], "hidden_sizes": [104]})), refused("num_groups"));
        assert_eq!(config(json!({"embedding_size": 48, "num_groups": 24, "depths": [1], "hidden_sizes": [96]})), Ok(()));
        assert_eq!(config(json!({"embedding_size": 64, "num_groups": 16, "depths": [1], "hidden_sizes": [96]})), refused("num_groups"));
        assert_eq!(config(json!({"id2label": {}, "num_labels": 0})), refused("id2label"));
        assert_eq!(config(json!({"id2label": null, "num_labels": 100_000})), Ok(()));
        assert_eq!(config(json!({"id2label": null, "num_labels": 100_001})), refused("id2label"));

        let processor = |fields| verdict(BIT50_PREPROCESSOR_JSON, fields);
        let sizes = |shortest: usize, crop: usize| json!({"size": {"shortest_edge": shortest}, "crop_size": {"height": crop, "width": crop}});
        assert_eq!(processor(sizes(8192, 4096)), Ok(()));
        assert_eq!(processor(sizes(512, 448)), Ok(()));
        assert_eq!(processor(sizes(1, 1)), Ok(()));
        assert_eq!(processor(sizes(8193, 4096)), refused("crop_size"));
        assert_eq!(processor(sizes(8192, 4097)), refused("crop_size"));
        assert_eq!(processor(sizes(8192, 4104)), refused("crop_size"));
        assert_eq!(processor(sizes(447, 448)), refused("crop_size"));
        assert_eq!(processor(sizes(448, 0)), refused("crop_size"));
        assert_eq!(processor(json!({"crop_size": {"height": 448, "width": 440}})), refused("crop_size"));
        assert_eq!(processor(json!({"size": {"height": 448, "width": 448}})), refused("size"));
        assert_eq!(processor(json!({"image_mean": [0.5, 0.5]})), refused("image_mean"));
        assert_eq!(processor(json!({"image_std": [0.5, 0.5, 1e39]})), refused("image_std"));
        assert_eq!(processor(json!({"image_std": [0.5, 0.0, 0.5]})), refused("image_std"));
        assert_eq!(processor(json!({"resample": 3})), refused("resample"));
        assert_eq!(processor(json!({"do_resize": false})), refused("do_resize"));
        assert_eq!(processor(json!({"do_center_crop": false})), refused("do_center_crop"));
        let p = |fields| {
            let mut json: Value = serde_json::from_str(BIT50_PREPROCESSOR_JSON).unwrap();
            json.as_object_mut().unwrap().extend(serde_json::from_value::<serde_json::Map<String, Value>>(fields).unwrap());
            PreprocessorConfig::from_json(&json, "f.json").unwrap()
        };
        let plain = p(json!({"do_rescale": false, "do_normalize": false}));
        assert_eq!((plain.rescale_factor, plain.mean, plain.std), (1.0, [0.0; 3], [1.0; 3]));
    }

    #[test]
    fn labels_and_widths_are_transformers() {
        // transformers 5.24: BitConfig(id2label={}, num_labels=5) has LABEL_0..LABEL_4, and
        // id2label {0: a, 2: c} makes num_labels 2 (index 2 is no output).
        let (c, _) = bit50_defaults();
        let with = |fields: Value| {
            let mut c = c.clone();
            c.as_object_mut().unwrap().extend(serde_json::from_value::<serde_json::Map<String, Value>>(fields).unwrap());
            BitConfig::from_json(&c, "config.json").unwrap()
        };
        assert_eq!(with(serde_json::json!({"id2label": {}, "num_labels": 5})).labels(), ["LABEL_0", "LABEL_1", "LABEL_2", "LABEL_3", "LABEL_4"]);
        assert_eq!(with(serde_json::json!({"id2label": {"0": "a", "2": "c"}})).labels(), ["a", "LABEL_1"]);
        assert_eq!(with(serde_json::json!({"id2label": null})).labels(), ["LABEL_0", "LABEL_1"]);
        // BiT-M R50x3's width_factor: transformers builds every stage 3x wide (its forward then
        // fails at bit.norm, so validate refuses it; the shapes are still transformers').
        let mut wide = with(serde_json::json!({}));
        wide.width_factor = 3;
        let shapes: Vec<_> = (0..4).map(|i| wide.stage(i)).map(|s| (s.cin, s.mid, s.out, s.stride)).collect();
        assert_eq!(shapes, [(64, 192, 768, 1), (768, 384, 1536, 2), (1536, 768, 3072, 2), (3072, 1536, 6144, 2)]);
    }

    #[test]
    fn make_div_is_transformers() {
        // transformers 5.24 modeling_bit.make_div on these values (at 16 / 0.9, 0.9 x value is 16 exactly).
        for (value, want) in [
            (0.0, 8),
            (6.0, 8),
            (10.0, 16),
            (11.0, 16),
            (18.0, 24),
            (34.0, 32),
            (44.0, 48),
            (64.0, 64),
            (66.0, 64),
            (1536.0, 1536),
            (17.77777777777778, 16),
            (35.55555555555556, 32),
        ] {
            assert_eq!(make_div(value), want, "make_div({value})");
        }
    }

    #[test]
    fn stage_strides_follow_transformers_encoder() {
        let (c, _) = bit50_defaults();
        for stages in [1, 4, 5, 70] {
            for output_stride in [0, 1, 4, 8, 16, 32, 64, 1 << 40, usize::MAX] {
                let mut cfg = BitConfig::from_json(&c, "config.json").unwrap();
                (cfg.depths, cfg.hidden_sizes, cfg.output_stride) = (vec![1; stages], vec![256; stages], output_stride);
                // BitEncoder: current_stride = 4; stride = 1 if stage 0 else 2, 1 once current_stride >= output_stride.
                let mut current_stride = 4u128;
                for i in 0..stages {
                    let stride = if i == 0 || current_stride >= output_stride as u128 { 1 } else { 2 };
                    current_stride *= stride as u128;
                    assert_eq!(cfg.stage(i).stride, stride, "stage {i} of {stages}, output_stride {output_stride}");
                }
            }
        }
    }

    #[test]
    fn paddle_form_config_is_accepted() {
        let (mut c, _) = bit50_defaults();
        c["label2id"] = Value::Null;
        c["out_features"] = Value::Null;
        c["paddlenlp_version"] = Value::from("2.8.1");
        c.as_object_mut().unwrap().remove("torch_dtype");
        assert!(BitConfig::from_json(&c, "config.json").is_ok());
    }
}
