//! BiT configurations other than google/bit-50's, as transformers builds them
//! (tools/make_arch_fixtures.py): narrow (widths that are not multiples of 32, bottlenecks
//! that make_div rounds up, 8 groups), odd (a 12-channel stem, 5 stages, output_stride 8),
//! r101 (depths 3, 4, 23, 3) and wide (R50x3's widths).
//! Each converts and classifies on the CPU path and on both GPU convolution kernels within
//! 1e-4 of transformers' logits. And a narrow model damaged in any of the ways the full-size
//! one is refused for is refused too, naming the tensor or the problem.

mod common;

use bit50::config::BitConfig;
use bit50::cpu::CpuNetwork;
use bit50::gpu::{ConvKernel, Features, Gpu, GpuNetwork, Precision, Variant, Want};
use bit50::model::{parameters, Model};
use bit50::weights::{self, convert, random, sha256_hex, Dtype};
use common::{compare_map, fixtures, floats, max_abs_diff, scratch, through_web_format, top5, PHOTOS};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const LOGIT_TOLERANCE: f32 = 1e-4;

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `bit50 ARGS`: (success, stderr).
fn bit50(args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_bit50")).args(args).output().unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stderr).to_string())
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A fixture folder: transformers' numbers, and the model converted and loaded back.
struct Fixture {
    name: &'static str,
    expected: Value,
    model: Model,
}

/// narrow and odd have transformers' own model.safetensors, converted by the CLI; r101 and wide are drawn
/// from their seed (checked tensor by tensor against the fixture script's hashes) and converted
/// in memory (the same conversion, without writing a GB of weights to disk first).
fn fixture(name: &'static str) -> Fixture {
    let dir = fixtures().join(name);
    let expected = read_json(&dir.join("expected.json"));
    let config = read_json(&dir.join("config.json"));
    let preprocessor = read_json(&dir.join("preprocessor_config.json"));
    let bit = BitConfig::from_json(&config, name).unwrap();
    // The parameters this engine expects are those of the model transformers built.
    let want: Vec<(String, Vec<usize>)> = expected["parameters"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(n, s)| (n.clone(), s.as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect()))
        .collect();
    let mut got: Vec<(String, Vec<usize>)> = parameters(&bit).into_iter().map(|p| (p.name, p.torch_shape)).collect();
    got.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got, want_sorted, "{name}: parameters differ from transformers'");
    let model = if dir.join("model.safetensors").exists() {
        let out = scratch(&format!("configs-{name}")).join("model");
        let (ok, err) = bit50(&["convert", path(&dir), "--out", path(&out)]);
        assert!(ok, "{name}: {err}");
        weights::load_dir(&out).unwrap()
    } else {
        let tensors = random::weights(&bit, expected["seed"].as_u64().unwrap());
        for (tensor, t) in &tensors {
            let want = expected["tensor_sha256"][tensor].as_str().unwrap();
            assert_eq!(sha256_hex(bytemuck::cast_slice(&t.data)), want, "{name}: generated {tensor} differs from the fixture script's");
        }
        through_web_format(convert::Source { name: name.into(), origin: name.into(), config, preprocessor, tensors }, Dtype::F32)
    };
    Fixture { name, expected, model }
}

impl Fixture {
    /// The seeded uniform input, or a photo as the PIL processor made it (tiny's crops: the
    /// same processing), checked against the input transformers ran.
    fn input(&self, input: &str) -> Vec<f32> {
        let pixels = if input == "uniform" {
            random::input(self.expected["input_seed"].as_u64().unwrap(), self.expected["image_size"].as_u64().unwrap() as usize)
        } else {
            let stem = input.rsplit_once('.').unwrap().0;
            let crop = image::open(fixtures().join("tiny/pil").join(format!("{stem}.png"))).unwrap().to_rgb8();
            bit50::preprocess::normalize(&crop, &self.model.preprocessor)
        };
        let want = self.expected["inputs"][input]["input_sha256"].as_str().unwrap();
        assert_eq!(sha256_hex(bytemuck::cast_slice(&pixels)), want, "{}: input {input} is not the one transformers ran", self.name);
        pixels
    }

    /// Asserts 1e-4 on every logit and the same top-5; returns the error.
    fn check_logits(&self, what: &str, input: &str, logits: &[f32]) -> f32 {
        let want = &self.expected["inputs"][input];
        let err = max_abs_diff(logits, &floats(&want["logits"]));
        assert!(err <= LOGIT_TOLERANCE, "{what} {} {input}: max logit error {err} > {LOGIT_TOLERANCE}", self.name);
        let top: Vec<usize> = want["top5"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
        assert_eq!(top5(logits), top, "{what} {} {input}: top-5", self.name);
        err
    }

    fn stats(&self, input: &str, map: &str) -> &Value {
        &self.expected["inputs"][input]["stats"][map]
    }

    /// The CPU path on every input: each stage's statistics, the pooled features and the logits.
    fn check_cpu(&self) -> f32 {
        let net = CpuNetwork::new(self.model.network.clone());
        let mut worst = 0.0f32;
        for input in inputs() {
            let out = net.forward(&self.input(input));
            let what = format!("cpu path {} {input}", self.name);
            compare_map(&format!("{what} stem"), &out.stem.data, self.stats(input, "stem")).unwrap();
            for (i, stage) in out.stages.iter().enumerate() {
                let map = format!("stage{}", i + 1);
                compare_map(&format!("{what} {map}"), &stage.data, self.stats(input, &map)).unwrap();
            }
            compare_map(&format!("{what} norm"), &out.norm.data, self.stats(input, "norm")).unwrap();
            compare_map(&format!("{what} pooled"), &out.pooled, self.stats(input, "pooled")).unwrap();
            worst = worst.max(self.check_logits("cpu path", input, &out.logits));
        }
        eprintln!("{}: cpu path ({}), max |logit - transformers| = {worst:.2e}", self.name, bit50::cpu::kernel_name());
        worst
    }

    /// One GPU convolution kernel, f32, on every input: the stem's and each stage's statistics,
    /// the pooled features and the logits.
    fn check_gpu(&self, conv: ConvKernel) -> f32 {
        let variant = Variant { conv, precision: Precision::F32, subgroups: false };
        let gpu = pollster::block_on(Gpu::new(Features::ALL)).expect("a GPU adapter (install mesa-vulkan-drivers for lavapipe)");
        let mut net = pollster::block_on(GpuNetwork::new(gpu, &self.model.network, variant, 1)).unwrap();
        assert_eq!(net.variant(), variant);
        let mut worst = 0.0f32;
        for input in inputs() {
            let what = format!("gpu {} {} {input}", variant.describe(), self.name);
            let out = pollster::block_on(net.run(&[&self.input(input)], Want { pooled: true, taps: true, ..Want::default() })).unwrap().remove(0);
            let taps = out.taps.as_ref().unwrap();
            compare_map(&format!("{what} stem"), &taps[0], self.stats(input, "stem")).unwrap();
            for (i, stage) in taps[1..].iter().enumerate() {
                let map = format!("stage{}", i + 1);
                compare_map(&format!("{what} {map}"), stage, self.stats(input, &map)).unwrap();
            }
            compare_map(&format!("{what} pooled"), out.pooled.as_ref().unwrap(), self.stats(input, "pooled")).unwrap();
            worst = worst.max(self.check_logits(&format!("gpu {}", variant.describe()), input, &out.logits));
        }
        eprintln!("{}: gpu {}, max |logit - transformers| = {worst:.2e}", self.name, variant.describe());
        worst
    }
}

fn inputs() -> Vec<&'static str> {
    std::iter::once("uniform").chain(PHOTOS).collect()
}

fn check_paths(name: &'static str) {
    let f = fixture(name);
    f.check_cpu();
    f.check_gpu(ConvKernel::Registers);
    f.check_gpu(ConvKernel::Tiled);
}

#[test]
fn narrow_converts_and_matches_transformers_on_cpu_and_gpu() {
    check_paths("narrow");
}

/// A stem width that is not a multiple of 8 (12: the GPU pads it), 3 channels per group in the
/// stem, 5 stages, output_stride 8 (the last three stages keep stride 1).
#[test]
fn odd_converts_and_matches_transformers_on_cpu_and_gpu() {
    check_paths("odd");
}

#[test]
fn r101_matches_transformers_on_cpu_and_gpu() {
    check_paths("r101");
}

/// R50x3: 211 million parameters, drawn, converted and run in about half a minute.
#[test]
fn wide_matches_transformers_on_cpu_and_gpu() {
    check_paths("wide");
}

/// The configs transformers builds but cannot run, or refuses to build (recorded in
/// narrow/expected.json with their exceptions), are refused here too, naming the field.
#[test]
fn what_transformers_refuses_is_refused() {
    let narrow = read_json(&fixtures().join("narrow/config.json"));
    let recorded = read_json(&fixtures().join("narrow/expected.json"))["transformers_rejects"].clone();
    let with = |fields: Value| {
        let mut c = narrow.clone();
        for key in ["embedding_size", "hidden_sizes", "depths", "num_groups", "width_factor"] {
            c.as_object_mut().unwrap().remove(key); // transformers' defaults unless given
        }
        for (k, v) in fields.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let cases = [
        ("width_factor 3, default hidden_sizes", with(serde_json::json!({"width_factor": 3})), "hidden_sizes"),
        (
            "width_factor 2, embedding_size 24",
            with(serde_json::json!({"width_factor": 2, "embedding_size": 24, "hidden_sizes": [40, 72, 136, 264], "depths": [1, 1, 1, 1], "num_groups": 8})),
            "hidden_sizes",
        ),
        (
            "hidden_sizes[-1] 260",
            with(serde_json::json!({"embedding_size": 24, "hidden_sizes": [40, 72, 136, 260], "depths": [1, 1, 1, 1], "num_groups": 4})),
            "hidden_sizes",
        ),
        (
            "num_groups 32 with embedding_size 24",
            with(serde_json::json!({"embedding_size": 24, "hidden_sizes": [64, 128, 256, 512], "depths": [1, 1, 1, 1], "num_groups": 32})),
            "embedding_size",
        ),
        (
            "num_groups 8 with embedding_size 20",
            with(serde_json::json!({"embedding_size": 20, "hidden_sizes": [40, 72, 136, 264], "depths": [1, 1, 1, 1], "num_groups": 8})),
            "embedding_size",
        ),
    ];
    assert_eq!(recorded.as_array().unwrap().len(), cases.len());
    for ((what, config, field), rejected) in cases.iter().zip(recorded.as_array().unwrap()) {
        assert!(rejected["config"].as_str().unwrap().starts_with(what), "{what}: the fixture records {}", rejected["config"]);
        let err = BitConfig::from_json(config, "config.json").unwrap_err().message;
        eprintln!("{what}: {err}\n  (transformers: {} at {})", rejected["message"], rejected["stage"]);
        assert!(err.starts_with(&format!("config.json: unsupported {field} = ")), "{what}: {err}");
    }
    // A width that make_div rounds (44 -> 48) is not refused: transformers builds it.
    let mut c = narrow.clone();
    c["hidden_sizes"] = serde_json::json!([44, 72, 136, 264]);
    assert!(BitConfig::from_json(&c, "config.json").is_ok());
}

// Damage. Every kind of damage the full-size model is refused for (tests/converters.rs,
// tests/cli.rs) is refused for the narrow model too, at the damage: in its tensors, in a
// pickle of them, in a converted folder. (Before narrow configs loaded, these copies were
// refused at their config, so the damage itself was never reached.)

/// narrow's tensors as transformers saved them, in file order.
fn narrow_tensors() -> Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(fixtures().join("narrow/model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors().into_iter().map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect()
}

fn safetensors_file(tensors: &[(String, safetensors::Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<_> = tensors.iter().map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap())).collect();
    safetensors::tensor::serialize(views, None).unwrap()
}

/// A folder holding narrow's config files and `file` with `bytes`.
fn narrow_copy(case: &str, file: &str, bytes: &[u8]) -> std::path::PathBuf {
    let dir = scratch(&format!("configs-damage-{case}"));
    for f in ["config.json", "preprocessor_config.json"] {
        std::fs::copy(fixtures().join("narrow").join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join(file), bytes).unwrap();
    dir
}

/// `bit50 ARGS` fails without a panic, with an error line holding every one of `words`.
fn refused(args: &[&str], words: &[&str]) -> String {
    let (ok, err) = bit50(args);
    assert!(!ok, "{args:?} was accepted");
    assert!(!err.contains("panicked"), "{err}");
    let line = err.lines().find(|l| l.starts_with("error: ") && !l.contains("XDG_RUNTIME_DIR")).unwrap_or_else(|| panic!("no error line: {err}"));
    for w in words {
        assert!(line.contains(w), "{args:?}: error {line:?} does not mention {w:?}");
    }
    eprintln!("refused: {line}");
    line.to_string()
}

/// Converting the damaged folder is refused with `words`, and writes nothing.
fn convert_refused(dir: &Path, words: &[&str]) -> String {
    let out = dir.with_extension("out");
    let err = refused(&["convert", path(dir), "--out", path(&out)], words);
    assert!(!out.exists(), "{}: written despite the damage", out.display());
    err
}

#[test]
fn narrow_tensors_damaged_in_a_safetensors_file_are_refused_by_name() {
    let good = narrow_tensors();
    let damaged = |case: &str, f: &dyn Fn(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>)| {
        let mut t = good.clone();
        f(&mut t);
        narrow_copy(case, "model.safetensors", &safetensors_file(&t))
    };
    let conv2 = "bit.encoder.stages.1.layers.1.conv2.weight";
    convert_refused(&damaged("missing", &|t| t.retain(|x| x.0 != conv2)), &["model.safetensors", &format!("missing tensors: {conv2}")]);
    let extra = "bit.encoder.stages.4.layers.0.conv1.weight";
    convert_refused(
        &damaged("unexpected", &|t| t.push((extra.into(), safetensors::Dtype::F32, vec![2], vec![0; 8]))),
        &["model.safetensors", &format!("unexpected tensors: {extra}")],
    );
    // The bottleneck width an engine assuming hidden / 4 would want: transformers has make_div's 16.
    let conv1 = "bit.encoder.stages.0.layers.0.conv1.weight";
    convert_refused(
        &damaged("shape", &|t| {
            let x = t.iter_mut().find(|x| x.0 == conv1).unwrap();
            x.2 = vec![12, 24, 1, 1];
            x.3.truncate(12 * 24 * 4);
        }),
        &["model.safetensors", &format!("tensor {conv1} has shape [12, 24, 1, 1], expected [16, 24, 1, 1]")],
    );
    convert_refused(
        &damaged("dtype", &|t| t.iter_mut().find(|x| x.0 == "bit.norm.bias").unwrap().1 = safetensors::Dtype::I32),
        &["model.safetensors", "tensor bit.norm.bias has dtype I32"],
    );
    convert_refused(
        &damaged("int8", &|t| {
            let x = t.iter_mut().find(|x| x.0 == "classifier.1.weight").unwrap();
            x.1 = safetensors::Dtype::I8;
            x.3.truncate(x.3.len() / 4);
        }),
        &["model.safetensors", "int8 tensor classifier.1.weight has no F32 classifier.1.weight.scale"],
    );
    convert_refused(
        &damaged("nan", &|t| t.iter_mut().find(|x| x.0 == "classifier.1.weight").unwrap().3[28..32].copy_from_slice(&f32::NAN.to_le_bytes())),
        &["model.safetensors", "tensor classifier.1.weight holds a non-finite value (NaN) at element 7"],
    );
    let bytes = safetensors_file(&good);
    for cut in [bytes.len() - 1, bytes.len() / 2, 4096, 64, 12] {
        convert_refused(&narrow_copy(&format!("cut-{cut}"), "model.safetensors", &bytes[..cut]), &["model.safetensors", "not a valid safetensors file"]);
    }
    // And undamaged, the same bytes convert.
    let ok = narrow_copy("intact", "model.safetensors", &bytes);
    let (converted, err) = bit50(&["convert", path(&ok), "--out", path(&ok.with_extension("out"))]);
    assert!(converted, "{err}");
}

/// PaddleNLP's form of narrow: `model_state.pdparams`, a protocol-2 pickle of numpy arrays
/// (as paddle.save writes it), `classifier.1.weight` stored `[in, out]` (spec §5).
fn pdparams(tensors: &[(String, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let mut p = b"\x80\x02}(".to_vec();
    for (name, shape, data) in tensors {
        p.push(b'X');
        p.extend((name.len() as u32).to_le_bytes());
        p.extend(name.as_bytes());
        p.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R(K\x01(");
        for &d in shape {
            p.extend(b"\x8a\x08");
            p.extend((d as u64).to_le_bytes());
        }
        p.extend(b"tcnumpy\ndtype\nX\x02\x00\x00\x00f4\x89\x88\x87R");
        p.extend(b"(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89B");
        p.extend((data.len() as u32).to_le_bytes());
        p.extend(data);
        p.extend(b"tb");
    }
    p.extend(b"u.");
    p
}

fn narrow_paddle_tensors() -> Vec<(String, Vec<usize>, Vec<u8>)> {
    narrow_tensors()
        .into_iter()
        .map(|(n, _, s, b)| {
            if n != "classifier.1.weight" {
                return (n, s, b);
            }
            let (rows, cols) = (s[0], s[1]);
            let mut t = vec![0u8; b.len()];
            for r in 0..rows {
                for c in 0..cols {
                    t[(c * rows + r) * 4..][..4].copy_from_slice(&b[(r * cols + c) * 4..][..4]);
                }
            }
            (n, vec![cols, rows], t)
        })
        .collect()
}

#[test]
fn narrow_tensors_damaged_in_a_pickle_are_refused_by_name() {
    let good = narrow_paddle_tensors();
    // Intact, the pickle converts to the very shards of transformers' safetensors file.
    let shards = |dir: &Path| -> Vec<Vec<u8>> {
        let mut names: Vec<_> =
            std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "safetensors")).collect();
        names.sort();
        names.iter().map(|p| std::fs::read(p).unwrap()).collect()
    };
    let intact = narrow_copy("pickle-intact", "model_state.pdparams", &pdparams(&good));
    let reference = scratch("configs-pickle-reference").join("out");
    for (src, out) in [(intact.clone(), intact.with_extension("out")), (fixtures().join("narrow"), reference.clone())] {
        let (ok, err) = bit50(&["convert", path(&src), "--out", path(&out)]);
        assert!(ok, "{err}");
    }
    assert_eq!(shards(&intact.with_extension("out")), shards(&reference), "the pickle converts to other shards than the safetensors file");

    let damaged = |case: &str, f: &dyn Fn(&mut Vec<(String, Vec<usize>, Vec<u8>)>)| {
        let mut t = good.clone();
        f(&mut t);
        narrow_copy(case, "model_state.pdparams", &pdparams(&t))
    };
    let conv3 = "bit.encoder.stages.2.layers.0.conv3.weight";
    convert_refused(&damaged("pickle-missing", &|t| t.retain(|x| x.0 != conv3)), &["model_state.pdparams", &format!("missing tensors: {conv3}")]);
    // The classifier the other way round, as transformers stores it: Paddle's is [in, out].
    convert_refused(
        &damaged("pickle-shape", &|t| {
            let x = t.iter_mut().find(|x| x.0 == "classifier.1.weight").unwrap();
            x.1 = vec![10, 264];
        }),
        &["model_state.pdparams", "tensor classifier.1.weight has shape [10, 264], expected [264, 10]"],
    );
    // An array whose bytes do not fill its shape.
    convert_refused(
        &damaged("pickle-short", &|t| t.iter_mut().find(|x| x.0 == conv3).unwrap().2.truncate(100)),
        &["model_state.pdparams", "bit.encoder.stages.2.layers.0.conv3.weight: shape [136, 32, 1, 1] of f4 needs 17408 bytes, the file holds 100"],
    );
    let bytes = pdparams(&good);
    for cut in [bytes.len() - 1, bytes.len() / 2, 4096, 64, 12] {
        convert_refused(&narrow_copy(&format!("pickle-cut-{cut}"), "model_state.pdparams", &bytes[..cut]), &["model_state.pdparams", "truncated"]);
    }
    // A pickle that would run code, among narrow's tensors.
    let mut hostile = pdparams(&good);
    hostile.truncate(hostile.len() - 2); // before SETITEMS and STOP
    hostile.extend(b"X\x04\x00\x00\x00evilcposix\nsystem\nX\x04\x00\x00\x00true\x85Ru.");
    convert_refused(&narrow_copy("pickle-global", "model_state.pdparams", &hostile), &["model_state.pdparams", "refusing global posix.system"]);
}

/// A converted narrow folder, its manifest and shard damaged after conversion.
#[test]
fn a_damaged_converted_narrow_folder_is_refused_by_name() {
    let dir = scratch("configs-damaged-folder");
    let converted = |dtype: &str| {
        let out = dir.join(format!("narrow-{dtype}"));
        let (ok, err) = bit50(&["convert", path(&fixtures().join("narrow")), "--out", path(&out), "--dtype", dtype]);
        assert!(ok, "{err}");
        out
    };
    let photo = fixtures().join("photos/cat.png");
    let classify = |model: &Path, words: &[&str]| refused(&["classify", "--cpu", "--model", path(model), path(&photo)], words);
    let f32_dir = converted("f32");
    let (ok, err) = bit50(&["classify", "--cpu", "--model", path(&f32_dir), path(&photo)]);
    assert!(ok, "{err}");
    let shard = f32_dir.join("weights-00000.safetensors");
    let manifest_path = f32_dir.join("manifest.json");
    let (bytes, manifest) = (std::fs::read(&shard).unwrap(), std::fs::read(&manifest_path).unwrap());
    let mut flipped = bytes.clone();
    *flipped.last_mut().unwrap() ^= 1;
    std::fs::write(&shard, &flipped).unwrap();
    classify(&f32_dir, &["weights-00000.safetensors", "does not match the manifest"]);
    std::fs::write(&shard, &bytes[..bytes.len() - 4]).unwrap();
    classify(&f32_dir, &["weights-00000.safetensors", "manifest says"]);
    std::fs::write(&shard, &bytes).unwrap();
    std::fs::write(&manifest_path, &manifest[..manifest.len() / 2]).unwrap();
    classify(&f32_dir, &["manifest.json", "not a bit50 manifest"]);
    // A manifest whose config no longer fits its tensors: the first one that differs is named.
    let mut m: Value = serde_json::from_slice(&manifest).unwrap();
    m["config"]["hidden_sizes"] = serde_json::json!([40, 72, 136, 264]);
    std::fs::write(&manifest_path, serde_json::to_vec(&m).unwrap()).unwrap();
    classify(&f32_dir, &["manifest.json", "tensor bit.encoder.stages.0.layers.0.downsample.conv.weight has shape [1, 1, 24, 48], expected [1, 1, 24, 40]"]);

    // int8: a shard whose scale is missing, with a manifest that vouches for it (so the damage is reached).
    let int8_dir = converted("int8");
    let shard = int8_dir.join("weights-00000.safetensors");
    let st_bytes = std::fs::read(&shard).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
    let scale = "bit.encoder.stages.3.layers.0.conv2.weight.scale";
    let kept: Vec<_> = st.tensors().into_iter().filter(|(n, _)| n != scale).map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
    assert!(kept.len() + 1 == st.tensors().len(), "{scale} is in the int8 shard");
    let damaged = safetensors_file(&kept);
    let mut m: Value = serde_json::from_slice(&std::fs::read(int8_dir.join("manifest.json")).unwrap()).unwrap();
    m["shards"][0]["bytes"] = damaged.len().into();
    m["shards"][0]["sha256"] = sha256_hex(&damaged).into();
    std::fs::write(&shard, &damaged).unwrap();
    std::fs::write(int8_dir.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    classify(&int8_dir, &["weights-00000.safetensors", &format!("int8 tensor bit.encoder.stages.3.layers.0.conv2.weight has no F32 {scale} beside it")]);
}
