//! `bit50 convert` on every published form of the weights (fixtures written by
//! the real libraries: tools/make_source_fixtures.py), and on hostile files.

mod common;

use bit50::reference;
use bit50::weights::{self, sha256_hex};
use common::{expected_logits, fixtures, input, max_abs_diff, scratch};
use std::path::{Path, PathBuf};
use std::process::Command;

fn sources() -> PathBuf {
    fixtures().join("sources")
}

/// Runs `bit50 convert SRC --out OUT [extra]`: (success, stderr).
fn convert(src: &Path, out: &Path, extra: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_bit50"))
        .arg("convert")
        .arg(src)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stderr).to_string())
}

/// sha256 of every shard file of a converted folder, by file name.
fn shard_hashes(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".safetensors"))
        .map(|n| (n.clone(), sha256_hex(&std::fs::read(dir.join(&n)).unwrap())))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "{}: no shards", dir.display());
    v
}

/// Every published form of the tiny model, as a folder or a lone file.
const FORMS: [&str; 13] = [
    "paddlenlp",
    "paddlenlp/model_state.pdparams",
    "paddle-p2",
    "hf-bin",
    "hf-bin/pytorch_model.bin",
    "timm",
    "timm/model.safetensors",
    "timm/pytorch_model.bin",
    "bit-npz",
    "bit-npz/BiT-M-R50x1-tiny.npz",
    "bit-npz-deflated",
    "bit-npz-deflated/BiT-M-R50x1-tiny.npz",
    "../tiny/model.safetensors",
];

#[test]
fn every_source_converts_to_the_same_shards() {
    let dir = scratch("same-shards");
    for dtype in ["f32", "f16"] {
        let reference = dir.join(format!("reference-{dtype}"));
        let (ok, err) = convert(&fixtures().join("tiny"), &reference, &["--dtype", dtype]);
        assert!(ok, "{err}");
        let want = shard_hashes(&reference);
        for form in FORMS {
            let out = dir.join(format!("{}-{dtype}", form.replace(['/', '.'], "_")));
            let (ok, err) = convert(&sources().join(form), &out, &["--dtype", dtype]);
            assert!(ok, "{form}: {err}");
            assert_eq!(shard_hashes(&out), want, "{form} ({dtype}) gave different shards");
        }
    }
}

#[test]
fn converted_sources_classify_with_the_same_logits() {
    let dir = scratch("same-logits");
    let pixels = input("tiny", "uniform");
    let want = expected_logits("tiny", "uniform");
    for form in ["paddlenlp", "hf-bin", "timm/pytorch_model.bin", "bit-npz", "bit-npz-deflated"] {
        let out = dir.join(form.replace(['/', '.'], "_"));
        let (ok, err) = convert(&sources().join(form), &out, &[]);
        assert!(ok, "{form}: {err}");
        let model = weights::load_dir(&out).unwrap();
        let got = reference::forward(&model.network, &pixels).logits;
        assert!(max_abs_diff(&got, &want) < 1e-4, "{form}: logits differ from transformers'");
    }
    // PaddleNLP's config.json (label2id null, paddlenlp_version...) gives the same labels.
    let paddle = weights::load_dir(&dir.join("paddlenlp")).unwrap();
    assert_eq!(paddle.labels[3], "class 3");
}

/// Converting `src` fails with a message containing every one of `words`, and writes nothing.
fn refused(src: &Path, words: &[&str]) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = scratch(&format!("refused-{n}")).join("out");
    let (ok, err) = convert(src, &out, &[]);
    assert!(!ok, "{} was accepted", src.display());
    for w in words {
        assert!(err.contains(w), "{}: error {err:?} does not mention {w:?}", src.display());
    }
    assert_eq!(err.trim().lines().count(), 1, "error is not one line: {err:?}");
    assert!(!out.exists(), "{}: something was written", out.display());
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap()).unwrap().flatten().collect();
    assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");
    err
}

/// Writes `bytes` as `name` in a fresh folder beside the tiny config; returns the file.
fn hostile(case: &str, name: &str, bytes: &[u8]) -> PathBuf {
    let dir = scratch(&format!("hostile-{case}"));
    for f in ["config.json", "preprocessor_config.json"] {
        std::fs::copy(fixtures().join("tiny").join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join(name), bytes).unwrap();
    dir.join(name)
}

#[test]
fn a_pickle_that_calls_os_system_is_refused() {
    let _ = std::fs::remove_file("/tmp/bit50-pwned");
    refused(&sources().join("hostile/os-system.pdparams"), &["os-system.pdparams", "refusing global posix.system"]);
    assert!(!Path::new("/tmp/bit50-pwned").exists());
}

#[test]
fn a_pickle_with_an_unknown_global_is_refused() {
    refused(&sources().join("hostile/unknown-global.pdparams"), &["refusing global fractions.Fraction"]);
}

#[test]
fn an_npz_with_an_object_array_is_refused() {
    refused(&sources().join("hostile/object-array.npz"), &["object-array.npz", "weights.npy", "object array"]);
}

#[test]
fn truncated_files_of_every_kind_are_refused() {
    let files = [
        "paddlenlp/model_state.pdparams",
        "paddle-p2/model_state.pdparams",
        "hf-bin/pytorch_model.bin",
        "timm/model.safetensors",
        "bit-npz/BiT-M-R50x1-tiny.npz",
    ];
    for f in files {
        let bytes = std::fs::read(sources().join(f)).unwrap();
        let name = Path::new(f).file_name().unwrap().to_str().unwrap();
        for cut in [bytes.len() - 1, bytes.len() / 2, 4096, 64, 12] {
            let err = refused(&hostile("truncated", name, &bytes[..cut]), &[name]);
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}

/// A minimal stored-zip writer, to build archives with chosen (wrong) fields.
fn zip(entries: &[(&str, Vec<u8>)], size_delta: i64) -> Vec<u8> {
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for (name, data) in entries {
        let crc = crc32fast::hash(data);
        let size = (data.len() as i64 + size_delta) as u32;
        let offset = out.len() as u32;
        let header = |sig: &[u8], central_dir: bool| {
            let mut h = sig.to_vec();
            if central_dir {
                h.extend(20u16.to_le_bytes());
            }
            h.extend([20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            h.extend(crc.to_le_bytes());
            h.extend(size.to_le_bytes());
            h.extend(size.to_le_bytes());
            h.extend((name.len() as u16).to_le_bytes());
            h.extend(0u16.to_le_bytes());
            if central_dir {
                h.extend([0u8; 6]);
                h.extend(0u32.to_le_bytes());
                h.extend(offset.to_le_bytes());
            }
            h.extend(name.as_bytes());
            h
        };
        central.extend(header(b"PK\x01\x02", true));
        out.extend(header(b"PK\x03\x04", false));
        out.extend(data);
    }
    let cd_offset = out.len() as u32;
    out.extend(&central);
    out.extend(b"PK\x05\x06\0\0\0\0");
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

#[test]
fn the_zip_writer_of_these_tests_makes_archives_the_converter_reads() {
    // A good archive of one array passes the zip layer and fails on the missing tensors.
    let ok = zip(&[("resnet/group_norm/beta.npy", npy("<f4", "(2,)", &[0; 8]))], 0);
    refused(&hostile("zip-ok", "w.npz", &ok), &["missing tensors", "resnet/root_block/standardized_conv2d/kernel"]);
    // An archive with no data.pkl and not only .npy entries is neither form.
    let other = zip(&[("resnet/group_norm/beta.npy", npy("<f4", "(2,)", &[0; 8])), ("README", b"hi".to_vec())], 0);
    refused(&hostile("zip-other", "w.npz", &other), &["w.npz", "neither a torch checkpoint (data.pkl) nor a numpy .npz"]);
}

#[test]
fn a_zip_entry_with_a_wrong_size_is_refused() {
    let entry = npy("<f4", "(2,)", &[0; 8]);
    for delta in [4, -4, 1 << 20] {
        let bytes = zip(&[("resnet/group_norm/beta.npy", entry.clone())], delta);
        refused(&hostile("zip-size", "w.npz", &bytes), &["w.npz", "zip"]);
    }
    // The same in a torch checkpoint: the size of a storage record in the central directory.
    let mut bin = std::fs::read(sources().join("hf-bin/pytorch_model.bin")).unwrap();
    let name = b"pytorch_model/data/0";
    let cd = bin.windows(4).rposition(|w| w == b"PK\x05\x06").unwrap();
    let cd_start = u32::from_le_bytes(bin[cd + 16..cd + 20].try_into().unwrap()) as usize;
    let at = cd_start + bin[cd_start..].windows(name.len()).position(|w| w == name).unwrap() - 46;
    for field in [20, 24] {
        let size = u32::from_le_bytes(bin[at + field..at + field + 4].try_into().unwrap());
        bin[at + field..at + field + 4].copy_from_slice(&(size + 4).to_le_bytes());
    }
    refused(&hostile("zip-size-bin", "pytorch_model.bin", &bin), &["pytorch_model.bin", "pytorch_model/data/0"]);
}

#[test]
fn a_safetensors_header_pointing_past_the_end_is_refused() {
    let header = br#"{"bit.norm.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,4096]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    bytes.extend([0u8; 8]);
    refused(&hostile("st-past-end", "w.safetensors", &bytes), &["w.safetensors", "not a valid safetensors file"]);
    // A header length beyond the file.
    let mut bytes = (1u64 << 40).to_le_bytes().to_vec();
    bytes.extend(b"{}");
    refused(&hostile("st-header-len", "w.safetensors", &bytes), &["w.safetensors"]);
}

/// A protocol-2 pickle of {"bit.norm.bias": ndarray} with the given shape (LONG1 ints) and raw data.
fn numpy_pickle(shape: u64, data: &[u8]) -> Vec<u8> {
    let mut p = b"\x80\x02}X\x0d\x00\x00\x00bit.norm.bias".to_vec();
    p.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R");
    p.extend(b"(K\x01\x8a\x08");
    p.extend(shape.to_le_bytes());
    p.extend(b"\x85cnumpy\ndtype\nX\x02\x00\x00\x00f4\x89\x88\x87R");
    p.extend(b"(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89B");
    p.extend((data.len() as u32).to_le_bytes());
    p.extend(data);
    p.extend(b"tbs.");
    p
}

#[test]
fn a_shape_of_2_pow_40_elements_is_refused() {
    let n = 1u64 << 40;
    // The hand-written pickle itself is well formed: a 2-element array passes the reader.
    refused(&hostile("pickle-ok", "model_state.pdparams", &numpy_pickle(2, &[0; 8])), &["missing tensors"]);
    refused(&hostile("pickle-2e40", "model_state.pdparams", &numpy_pickle(n, &[0; 8])), &["bit.norm.bias", "[1099511627776]", "needs 4398046511104 bytes"]);
    let npz = zip(&[("resnet/group_norm/beta.npy", npy("<f4", "(1099511627776,)", &[0; 8]))], 0);
    refused(&hostile("npz-2e40", "w.npz", &npz), &["beta.npy", "[1099511627776]", "needs 4398046511104 bytes"]);
    let header = br#"{"bit.norm.bias":{"dtype":"F32","shape":[1099511627776],"data_offsets":[0,8]}}"#;
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend(header);
    st.extend([0u8; 8]);
    refused(&hostile("st-2e40", "w.safetensors", &st), &["w.safetensors", "not a valid safetensors file"]);
}

fn tiny_tensors() -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(sources().join("timm/model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors().into_iter().map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec())).collect()
}

fn safetensors_file(tensors: &[(String, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, s, d)| (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap()))
        .collect();
    safetensors::tensor::serialize(views, None).unwrap()
}

#[test]
fn missing_unexpected_and_misshapen_tensors_are_named() {
    let mut t = tiny_tensors();
    t.retain(|(n, _, _)| n != "stages.2.blocks.0.conv2.weight");
    t.push(("stages.9.blocks.0.conv2.weight".into(), vec![2], vec![0; 8]));
    refused(
        &hostile("names", "model.safetensors", &safetensors_file(&t)),
        &["missing tensors: stages.2.blocks.0.conv2.weight", "unexpected tensors: stages.9.blocks.0.conv2.weight"],
    );
    let mut t = tiny_tensors();
    let head = t.iter_mut().find(|(n, _, _)| n == "head.fc.weight").unwrap();
    head.1 = vec![10, 256];
    refused(
        &hostile("shape", "model.safetensors", &safetensors_file(&t)),
        &["tensor head.fc.weight has shape [10, 256], expected [10, 256, 1, 1]"],
    );
}

fn fetch_weights(dir: &Path, out: &Path) -> std::process::Output {
    Command::new("bash")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/fetch-weights.sh"))
        .arg("--dir")
        .arg(dir)
        .arg("--out")
        .arg(out)
        // Unreachable endpoints: the test never touches the network, online or not.
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("PADDLENLP_ENDPOINT", "http://127.0.0.1:9/paddlenlp")
        .env("CONNECT_TIMEOUT", "2")
        .env("BIT50", env!("CARGO_BIN_EXE_bit50"))
        .output()
        .unwrap()
}

#[test]
fn fetch_weights_offline_says_what_it_could_not_reach_and_fails() {
    let dir = scratch("fetch-offline");
    let o = fetch_weights(&dir.join("weights"), &dir.join("out"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("http://127.0.0.1:9/google/bit-50/resolve/main/config.json"), "{err}");
    assert!(err.contains("http://127.0.0.1:9/paddlenlp/google/bit-50/config.json"), "{err}");
    assert!(err.contains(&format!("put the files in {}", dir.join("weights").display())), "{err}");
    assert!(!dir.join("out").exists());
    assert_eq!(std::fs::read_dir(dir.join("weights")).unwrap().count(), 0, "partial downloads left behind");
}

#[test]
fn fetch_weights_converts_files_already_placed() {
    let dir = scratch("fetch-placed");
    let placed = dir.join("weights");
    std::fs::create_dir_all(&placed).unwrap();
    for f in ["config.json", "model_state.pdparams", "preprocessor_config.json"] {
        std::fs::copy(sources().join("paddlenlp").join(f), placed.join(f)).unwrap();
    }
    let o = fetch_weights(&placed, &dir.join("out"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let model = weights::load_dir(&dir.join("out")).unwrap();
    let got = reference::forward(&model.network, &input("tiny", "uniform")).logits;
    assert!(max_abs_diff(&got, &expected_logits("tiny", "uniform")) < 1e-2, "f16 weights moved the logits too far");
}

/// `--dtype int8`: a quarter of f32's bytes, and a shard whose scales are missing or do not
/// fit is refused by name (logit error: tests/parity.rs).
#[test]
fn int8_folders_are_a_quarter_of_f32_and_damaged_scales_are_refused() {
    let dir = scratch("int8");
    let size = |d: &Path| std::fs::read_dir(d).unwrap().flatten().map(|e| e.metadata().unwrap().len()).sum::<u64>();
    for dtype in ["f32", "int8"] {
        let (ok, err) = convert(&sources().join("timm"), &dir.join(dtype), &["--dtype", dtype]);
        assert!(ok, "{err}");
    }
    let (f32_bytes, int8_bytes) = (size(&dir.join("f32")), size(&dir.join("int8")));
    println!("tiny model: f32 {f32_bytes} bytes, int8 {int8_bytes} bytes");
    assert!(int8_bytes * 10 < f32_bytes * 3, "int8 {int8_bytes} bytes vs f32 {f32_bytes}");
    let model = weights::load_dir(&dir.join("int8")).unwrap();
    assert_eq!(model.network.stem.weight.len(), 16 * 3 * 7 * 7);

    let shard = dir.join("int8/weights-00000.safetensors");
    let bytes = std::fs::read(&shard).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let all: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> =
        st.tensors().into_iter().map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
    assert!(all.iter().any(|(n, d, _, _)| n == "bit.embedder.convolution.weight" && *d == safetensors::Dtype::I8));
    let write = |tensors: &[(String, safetensors::Dtype, Vec<usize>, Vec<u8>)]| {
        let views: Vec<_> = tensors
            .iter()
            .map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        safetensors::tensor::serialize(views, None).unwrap()
    };
    let stem_scale = "bit.embedder.convolution.weight.scale";
    let without: Vec<_> = all.iter().filter(|(n, ..)| n != stem_scale).cloned().collect();
    let read = |bytes: Vec<u8>| weights::read_safetensors(&bytes, "w.safetensors", &mut Default::default()).unwrap_err().to_string();
    let err = read(write(&without));
    assert!(err.contains("w.safetensors: int8 tensor bit.embedder.convolution.weight has no F32 bit.embedder.convolution.weight.scale"), "{err}");
    let short: Vec<_> = all
        .iter()
        .map(|(n, d, s, b)| if n == stem_scale { (n.clone(), *d, vec![2], b[..8].to_vec()) } else { (n.clone(), *d, s.clone(), b.clone()) })
        .collect();
    let err = read(write(&short));
    assert!(err.contains("has 2 values for 16 output channels"), "{err}");
}

/// The offset of `name`'s central directory record in a zip archive.
fn central_record(zip: &[u8], name: &str) -> usize {
    let eocd = zip.windows(4).rposition(|w| w == b"PK\x05\x06").unwrap();
    let cd_start = u32::from_le_bytes(zip[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
    cd_start + zip[cd_start..].windows(name.len()).position(|w| w == name.as_bytes()).unwrap() - 46
}

/// Where `name`'s data starts (after its local header) and how many bytes it takes.
fn entry_data(zip: &[u8], name: &str) -> (usize, usize) {
    let at = central_record(zip, name);
    let u16_at = |i: usize| u16::from_le_bytes(zip[i..i + 2].try_into().unwrap()) as usize;
    let u32_at = |i: usize| u32::from_le_bytes(zip[i..i + 4].try_into().unwrap()) as usize;
    let local = u32_at(at + 42);
    assert_eq!(&zip[local..local + 4], b"PK\x03\x04");
    (local + 30 + u16_at(local + 26) + u16_at(local + 28), u32_at(at + 20))
}

/// Nothing else notices a flipped byte inside a stored entry's data: its CRC-32 must.
#[test]
fn a_flipped_byte_in_a_stored_zip_entry_is_refused_for_its_crc() {
    let good = std::fs::read(sources().join("hf-bin/pytorch_model.bin")).unwrap();
    let name = "pytorch_model/data/0";
    let (start, len) = entry_data(&good, name);
    assert_eq!(u16::from_le_bytes(good[central_record(&good, name) + 10..][..2].try_into().unwrap()), 0, "a stored entry");
    for at in [start, start + len / 2, start + len - 1] {
        let mut bin = good.clone();
        bin[at] ^= 0x10;
        refused(&hostile("zip-crc", "pytorch_model.bin", &bin), &["pytorch_model.bin", name, "CRC-32", "does not match"]);
    }
}

const DEFLATED: &str = "bit-npz-deflated/BiT-M-R50x1-tiny.npz";
const ROOT_KERNEL: &str = "resnet/root_block/standardized_conv2d/kernel.npy";

/// numpy.savez_compressed's archive (every entry deflated, bit-npz-deflated/) converts to the
/// same shards as the stored one (every_source_converts_to_the_same_shards); here its inflate
/// path meets damage: a flipped byte in the compressed data, and sizes in the central
/// directory that lie (more than deflate can expand to, fewer bytes than the data inflates
/// to, more than it inflates to).
#[test]
fn a_deflated_npz_entry_that_is_damaged_or_lies_about_its_size_is_refused() {
    let good = std::fs::read(sources().join(DEFLATED)).unwrap();
    let at = central_record(&good, ROOT_KERNEL);
    assert_eq!(u16::from_le_bytes(good[at + 10..at + 12].try_into().unwrap()), 8, "a deflated entry");
    let (start, compressed) = entry_data(&good, ROOT_KERNEL);
    let size = u32::from_le_bytes(good[at + 24..at + 28].try_into().unwrap());
    println!("{ROOT_KERNEL}: {size} bytes deflated to {compressed}");
    let mut flipped = good.clone();
    flipped[start + compressed / 2] ^= 0x10;
    refused(&hostile("deflate-flip", "w.npz", &flipped), &["w.npz", ROOT_KERNEL]);
    let with_size = |claim: u32| {
        let mut bytes = good.clone();
        bytes[at + 24..at + 28].copy_from_slice(&claim.to_le_bytes());
        bytes
    };
    let bomb = compressed as u32 * 1032 + 65;
    refused(&hostile("deflate-bomb", "w.npz", &with_size(bomb)), &[ROOT_KERNEL, &format!("claims {bomb} bytes from {compressed} compressed")]);
    refused(&hostile("deflate-short", "w.npz", &with_size(size - 1)), &[ROOT_KERNEL, "cannot inflate"]);
    refused(&hostile("deflate-long", "w.npz", &with_size(size + 1)), &[ROOT_KERNEL, &format!("inflates to {size} bytes, claims {}", size + 1)]);
}

/// zip64 records (numpy.savez with zipfile's zip64 limits at 0: sizes and offsets in zip64
/// extra fields, the zip64 end of central directory): the arrays read back exactly as from
/// the plain archive; a zip64 end record without its signature is refused.
#[test]
fn a_zip64_npz_reads_as_the_plain_one() {
    use bit50::weights::{npz::read_npz, zip::Zip};
    let bytes = std::fs::read(sources().join("zip64/group-norm.npz")).unwrap();
    let zip = Zip::parse(&bytes, "group-norm.npz").unwrap();
    assert_eq!(zip.entries.len(), 2);
    assert!(zip.entries.iter().all(|e| e.size == 1152), "sizes from the zip64 extra fields");
    let tensors = read_npz(&zip, "group-norm.npz").unwrap();
    let plain = std::fs::read(sources().join("bit-npz/BiT-M-R50x1-tiny.npz")).unwrap();
    let all = read_npz(&Zip::parse(&plain, "plain").unwrap(), "plain").unwrap();
    for name in ["resnet/group_norm/beta", "resnet/group_norm/gamma"] {
        assert_eq!(tensors[name].data, all[name].data, "{name}");
        assert_eq!(tensors[name].shape, all[name].shape, "{name}");
    }
    // Through the converter: the zip layer passes; the model is incomplete.
    refused(&hostile("zip64", "w.npz", &bytes), &["missing tensors"]);
    let at = bytes.windows(4).rposition(|w| w == b"PK\x06\x06").unwrap();
    let mut broken = bytes.clone();
    broken[at + 3] = 0;
    refused(&hostile("zip64-broken", "w.npz", &broken), &["w.npz", "corrupt zip64 end of central directory"]);
}

/// Every form of tools/make_pickle_fixtures.py as the converter reads it: torch.save's storages
/// (f64, f16, bf16), views (transposed, sliced at an offset, sharing a storage, expanded with
/// stride 0), empty and 0-d tensors, memo keys past 255; numpy pickles at protocols 2 to 4; and
/// opcodes pickle.dumps does not write. Each shape and every value as torch.load and
/// pickle.loads give them.
#[test]
fn pickles_read_as_torch_and_python_read_them() {
    let expected = common::fixture_json("sources/pickles", "expected.json").unwrap();
    for (file, tensors) in expected.as_object().unwrap() {
        let bytes = std::fs::read(sources().join("pickles").join(file)).unwrap();
        let (_, got) = weights::convert::read_weights(&bytes, file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.len(), tensors.as_object().unwrap().len(), "{file}");
        for (name, want) in tensors.as_object().unwrap() {
            let t = got.get(name).unwrap_or_else(|| panic!("{file}: no {name}"));
            let shape: Vec<usize> = serde_json::from_value(want["shape"].clone()).unwrap();
            assert_eq!((&t.shape, &t.data), (&shape, &common::floats(&want["values"])), "{file}: {name}");
        }
    }
}
