//! The `bit50` command end to end: convert, classify photo files on the GPU and CPU
//! (same top-5 as transformers, for the tiny and the full-size model), and every kind
//! of bad input: a non-zero exit, one line naming the file and the problem, no panic,
//! nothing half-written, and good inputs in the same run still answered.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn photo(name: &str) -> String {
    fixtures().join("photos").join(name).to_str().unwrap().to_string()
}

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn check_photos(model: &str, dir: &Path, cpu: bool) {
    let mut args = vec!["classify".to_string(), "--model".into(), path(dir).into(), "--json".into(), "--logits".into()];
    args.push(if cpu { "--cpu" } else { "--gpu" }.into());
    args.extend(PHOTOS.iter().map(|p| photo(p)));
    let run = bit50(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(run.ok, "{}", run.stderr);
    let lines = json_lines(&run.stdout);
    assert_eq!(lines.len(), PHOTOS.len());
    for (line, name) in lines.iter().zip(PHOTOS) {
        assert_eq!(line["input"], photo(name));
        assert_eq!(line["engine"], if cpu { "cpu path" } else { "gpu" });
        let top: Vec<usize> = line["top"].as_array().unwrap().iter().map(|t| t["index"].as_u64().unwrap() as usize).collect();
        assert_eq!(top, expected_top5(model, name), "{model} {name}: top-5 from the file");
        assert!(line["ms"].as_f64().unwrap() > 0.0);
        let err = max_abs_diff(&floats(&line["logits"]), &expected_logits(model, name));
        println!("{model} {name} ({}): max |logit - transformers| from the file = {err:.2e}", if cpu { "cpu" } else { "gpu" });
        // Preprocessing is bit-exact with PIL, so files meet the same 1e-4 as stored inputs.
        assert!(err < 1e-4, "{model} {name}: logit error {err}");
    }
}

#[test]
fn photo_files_give_transformers_top5_tiny_gpu_and_cpu() {
    check_photos("tiny", converted_tiny(), false);
    check_photos("tiny", converted_tiny(), true);
}

#[test]
fn photo_files_give_transformers_top5_full_size() {
    let dir = scratch("cli-full");
    let run = bit50(&["random-model", "--out", path(&dir.join("hf")), "--seed", "0"]);
    assert!(run.ok, "{}", run.stderr);
    let run = bit50(&["convert", path(&dir.join("hf")), "--out", path(&dir.join("web"))]);
    assert!(run.ok, "{}", run.stderr);
    let shards = std::fs::read_dir(dir.join("web")).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".safetensors")).count();
    assert!(shards >= 4, "102 MB in shards of at most 32 MiB");
    for entry in std::fs::read_dir(dir.join("web")).unwrap() {
        assert!(entry.unwrap().metadata().unwrap().len() <= 32 << 20);
    }
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("web/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["untrained"], true, "random-model's weights are marked untrained for the page");
    check_photos("full", &dir.join("web"), false);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stored_pixels_and_text_output() {
    let dir = scratch("cli-pixels");
    let npy = dir.join("uniform.npy");
    std::fs::write(&npy, bit50::weights::npy::write_f32(&[1, 3, 64, 64], &uniform_input("tiny"))).unwrap();
    let run = bit50(&["classify", "--model", path(converted_tiny()), "--json", "--logits", "--pixels", path(&npy)]);
    assert!(run.ok, "{}", run.stderr);
    let line = &json_lines(&run.stdout)[0];
    assert!(max_abs_diff(&floats(&line["logits"]), &expected_logits("tiny", "uniform")) < 1e-4);
    let manifest: Value = serde_json::from_slice(&std::fs::read(converted_tiny().join("manifest.json")).unwrap()).unwrap();
    assert!(manifest.get("untrained").is_none(), "a converted model is not marked untrained");
    let run = bit50(&["classify", "--model", path(converted_tiny()), "--top", "3", &photo("cat.png")]);
    assert!(run.ok);
    assert!(run.stdout.contains(" ms, ") && run.stdout.lines().count() == 4, "{}", run.stdout);
    // Without --gpu or --cpu, the faster path measured at load runs: on a CPU device (lavapipe,
    // here and in CI) the CPU path, 5x faster.
    let gpu = pollster::block_on(bit50::gpu::Gpu::new(bit50::gpu::Features::ALL)).expect("a GPU adapter (install mesa-vulkan-drivers for lavapipe)");
    let engine = if gpu.is_cpu() { "cpu path" } else { "gpu" };
    assert!(run.stdout.contains(&format!(" ms, {engine})")), "{}: {}", gpu.describe(), run.stdout);
    assert!(!bit50(&["classify", "--model", path(converted_tiny()), "--cpu", "--gpu", &photo("cat.png")]).ok);
}

/// A failure: non-zero exit, one "error: FILE: problem" line, no panic.
fn assert_refused(run: &Run, file: &str, problem: &str) {
    assert!(!run.ok, "accepted: {}", run.stdout);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {}", run.stderr);
    assert!(lines[0].starts_with("error: ") && lines[0].contains(file) && lines[0].contains(problem), "{}", lines[0]);
}

fn bad_image(name: &str, bytes: &[u8]) -> String {
    let p = scratch(&format!("cli-bad-{name}")).join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_string()
}

fn classify(file: &str) -> Run {
    bit50(&["classify", "--model", path(converted_tiny()), file])
}

#[test]
fn bad_images_are_refused_with_a_named_reason() {
    let missing = fixtures().join("photos/no-such-photo.jpg");
    assert_refused(&classify(path(&missing)), "no-such-photo.jpg", "cannot read");
    let text = bad_image("notes.jpg", b"this is not a picture\n");
    assert_refused(&classify(&text), &text, "not an image");
    let empty = bad_image("empty.png", b"");
    assert_refused(&classify(&empty), &empty, "empty file");
    let jpeg = std::fs::read(photo("coffee.jpg")).unwrap();
    let truncated = bad_image("truncated.jpg", &jpeg[..jpeg.len() / 2]);
    assert_refused(&classify(&truncated), &truncated, "truncated JPEG");
    // A BMP header claiming 20000x20000 pixels: refused from the header, nothing allocated.
    let mut bmp = b"BM".to_vec();
    bmp.extend(54u32.to_le_bytes().iter().chain(&[0; 4]).chain(&54u32.to_le_bytes()));
    bmp.extend(40u32.to_le_bytes().iter().chain(&20000i32.to_le_bytes()).chain(&20000i32.to_le_bytes()));
    bmp.extend(1u16.to_le_bytes().iter().chain(&24u16.to_le_bytes()).chain(&[0; 24]));
    let huge = bad_image("huge.bmp", &bmp);
    assert_refused(&classify(&huge), &huge, "over the limit of 64000000 pixels");
}

#[test]
fn one_pixel_and_thin_images_are_classified() {
    // What transformers' processor takes (resize the short side, centre crop), bit50 takes too.
    let files: Vec<String> =
        ["1x1.png", "3x100.png", "1000x3.png"].iter().map(|f| fixtures().join("images/src").join(f).to_str().unwrap().to_string()).collect();
    let mut args = vec!["classify", "--model", path(converted_tiny()), "--json", "--cpu"];
    args.extend(files.iter().map(String::as_str));
    let run = bit50(&args);
    assert!(run.ok, "{}", run.stderr);
    let lines = json_lines(&run.stdout);
    assert_eq!(lines.iter().map(|l| l["input"].as_str().unwrap()).collect::<Vec<_>>(), files);
    assert!(lines.iter().all(|l| l["top"].as_array().unwrap().len() == 5), "{}", run.stdout);
}

#[test]
fn one_bad_image_does_not_lose_the_others() {
    let text = bad_image("not-a-photo.png", b"hello");
    let run = bit50(&["classify", "--model", path(converted_tiny()), "--json", &photo("cat.png"), &text, &photo("coffee.jpg")]);
    assert!(!run.ok);
    assert_eq!(json_lines(&run.stdout).len(), 2, "both good photos answered");
    assert!(run.stderr.contains("not-a-photo.png: not an image"), "{}", run.stderr);
}

/// A copy of the converted tiny model to damage.
fn model_copy(name: &str) -> PathBuf {
    let dir = scratch(name);
    for entry in std::fs::read_dir(converted_tiny()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    dir
}

#[test]
fn a_corrupt_manifest_is_refused() {
    let dir = model_copy("cli-manifest");
    std::fs::write(dir.join("manifest.json"), b"{\"format\": \"bit50-web\", \"shards\": [").unwrap();
    let run = bit50(&["classify", "--model", path(&dir), &photo("cat.png")]);
    assert_refused(&run, "manifest.json", "not a bit50 manifest");
}

#[test]
fn a_shard_with_the_wrong_checksum_is_refused() {
    let dir = model_copy("cli-shard");
    let shard = dir.join("weights-00000.safetensors");
    let mut bytes = std::fs::read(&shard).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&shard, bytes).unwrap();
    let run = bit50(&["classify", "--model", path(&dir), &photo("cat.png")]);
    assert_refused(&run, "weights-00000.safetensors", "does not match the manifest");
}

#[test]
fn an_unsupported_config_is_refused_and_nothing_is_written() {
    let dir = scratch("cli-config");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    for f in ["model.safetensors", "preprocessor_config.json"] {
        std::fs::copy(fixtures().join("tiny").join(f), src.join(f)).unwrap();
    }
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(fixtures().join("tiny/config.json")).unwrap()).unwrap();
    config["global_padding"] = "SAME".into();
    std::fs::write(src.join("config.json"), config.to_string()).unwrap();
    let out = dir.join("out");
    let run = bit50(&["convert", path(&src), "--out", path(&out)]);
    assert_refused(&run, "unsupported global_padding = \"SAME\"", "static symmetric padding");
    assert!(!out.exists(), "no output folder after a failed conversion");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary folder left behind");
}

#[test]
fn embed_and_explain_outputs_agree_between_gpu_and_cpu() {
    let run = |cpu: bool| {
        let mut args = vec!["classify", "--model", path(converted_tiny()), "--json", "--embed", "--explain"];
        args.push(if cpu { "--cpu" } else { "--gpu" });
        let cat = photo("cat.png");
        args.push(&cat);
        let run = bit50(&args);
        assert!(run.ok, "{}", run.stderr);
        json_lines(&run.stdout).remove(0)
    };
    let (gpu, cpu) = (run(false), run(true));
    let embedding = floats(&gpu["embedding"]);
    assert_eq!(embedding.len(), 256, "the tiny model's pooled features");
    assert!(max_abs_diff(&embedding, &floats(&cpu["embedding"])) < 1e-5);
    assert_eq!(gpu["heatmap"]["index"], expected_top5("tiny", "cat.png")[0]);
    assert_eq!((gpu["heatmap"]["width"].as_u64(), gpu["heatmap"]["height"].as_u64()), (Some(2), Some(2)), "64 px in, 2x2 out");
    assert!(max_abs_diff(&floats(&gpu["heatmap"]["data"]), &floats(&cpu["heatmap"]["data"])) < 1e-4);
}

/// `bench` reports every figure the performance section quotes, and its figures agree with
/// each other (the numbers themselves are for benchmarks, not tests). The arithmetic relations
/// allow only the rounding of the printed digits and must hold in every run; the relations
/// between timings have generous factors and, since these machines are shared (another test's
/// bench running beside this one made the CPU path's median 6x its first run), must hold in
/// one of three runs:
/// - GFLOP/s is the network's FLOPs over the warm median (GPU) or the CPU path's median;
/// - throughput is the batch over the warm median; the median lies between min and max;
/// - warm is at most 2x first (measured on lavapipe: first 7.7-8.5 ms, warm 3.4-4.0 ms);
/// - the per-layer GPU times add up to their total, their percentages to 100, and the total
///   is within a factor of 2.5 of the warm median (measured: 1.1x-1.4x; timestamps between
///   dispatches slow lavapipe down, the warm run also uploads and reads back).
#[test]
fn bench_reports_every_figure() {
    in_one_of_three_runs(check_bench_text);
}

/// Timing relations on a shared machine: `run` must return Ok once in three tries.
fn in_one_of_three_runs(run: fn() -> Result<(), String>) {
    let mut misses = Vec::new();
    while let Err(e) = run() {
        misses.push(e);
        assert!(misses.len() < 3, "timings disagree in three runs: {misses:?}");
    }
}

/// Asserts the arithmetic; returns how the timings disagree, if they do.
fn check_bench_text() -> Result<(), String> {
    let run = bit50(&["bench", "--model", path(converted_tiny()), "--runs", "5"]);
    assert!(run.ok, "{}", run.stderr);
    let out = &run.stdout;
    for line in ["model ", "adapter ", "convolution kernels", "load ", "first ", "warm ", "compute ", "gpu memory ", "per layer ", "matmul ", "cpu path "] {
        assert!(out.contains(line), "no '{line}' in:\n{out}");
    }
    let flops = bit50::weights::load_dir(converted_tiny()).unwrap().network.flops();
    let line = |prefix: &str| out.lines().find(|l| l.starts_with(prefix)).unwrap();
    // The number just before `unit` in `text` (a word of its own or behind '(').
    let before = |text: &str, unit: &str| -> f64 {
        let at = text.find(unit).unwrap_or_else(|| panic!("no '{unit}' in {text}"));
        text[..at].split(['(', ' ']).rfind(|w| !w.is_empty()).unwrap().parse().unwrap()
    };
    let after = |text: &str, word: &str| -> f64 {
        let at = text.find(word).unwrap_or_else(|| panic!("no '{word}' in {text}")) + word.len();
        text[at..].trim_start().split([',', ')', ' ']).next().unwrap().parse().unwrap()
    };
    // `got` (printed to `digits` decimals) equals f(x) for some x within x's printed rounding
    // (f decreasing in x).
    let agrees = |got: f64, digits: i32, f: &dyn Fn(f64) -> f64, x: f64, x_digits: i32| {
        let (eg, ex) = (0.5 * 10f64.powi(-digits), 0.5 * 10f64.powi(-x_digits));
        got + eg >= f(x + ex) && got - eg <= f(x - ex)
    };
    let (first, warm) = (before(line("first "), " ms"), before(line("warm "), " ms"));
    let (min, max) = (after(line("warm "), "(min"), after(line("warm "), "max"));
    assert!(min <= warm && warm <= max, "warm median {warm} outside min {min}, max {max}");
    assert!(warm > 0.0, "{out}");
    let gflops = before(line("compute "), "GFLOP/s");
    assert!(agrees(gflops, 2, &|ms| flops / ms / 1e6, warm, 1), "compute {gflops} GFLOP/s, but {flops} FLOP in {warm} ms is {}", flops / warm / 1e6);
    let throughput = before(line("throughput "), "images/s");
    assert!(agrees(throughput, 2, &|ms| 1e3 / ms, warm, 1), "throughput {throughput} images/s at {warm} ms an image");
    let cpu = line("cpu path ");
    let (cpu_ms, cpu_gflops) = (before(cpu, " ms median"), before(cpu, "GFLOP/s"));
    assert!(agrees(cpu_gflops, 2, &|ms| flops / ms / 1e6, cpu_ms, 1), "cpu path {cpu_gflops} GFLOP/s in {cpu_ms} ms");
    // Per layer: "  1.6 ms  33.2%  conv 7x7" rows up to the matmul line.
    let total = before(line("per layer "), " ms)");
    let rows: Vec<(f64, f64)> = out
        .lines()
        .skip_while(|l| !l.starts_with("per layer "))
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .map(|l| (before(l, " ms"), before(l, "%")))
        .collect();
    assert!(rows.len() >= 8, "every kind of dispatch: {out}");
    let n = rows.len() as f64;
    let (sum, percent) = rows.iter().fold((0.0, 0.0), |(s, p), r| (s + r.0, p + r.1));
    assert!((sum - total).abs() <= 0.05 * (n + 1.0) + 1e-9, "per-layer times add up to {sum}, total {total}");
    assert!((percent - 100.0).abs() <= 0.05 * n + 1e-9, "per-layer percentages add up to {percent}");
    assert!(gflops > 0.0 && before(line("matmul "), "GFLOP/s") > 0.0, "{out}");
    if warm > 2.0 * first || total < warm / 2.5 || total > 2.5 * warm {
        return Err(format!("first {first} ms, warm {warm} ms, per-layer total {total} ms"));
    }
    Ok(())
}

/// `bench --json`, a batch of 2: for every configuration, images per second is the batch over
/// the warm median (to the printed 3 decimals), in every run; and warm is at most 2x first, in
/// one of three runs (see above).
#[test]
fn bench_json_figures_agree() {
    in_one_of_three_runs(check_bench_json);
}

fn check_bench_json() -> Result<(), String> {
    let run = bit50(&["bench", "--model", path(converted_tiny()), "--runs", "5", "--batch", "2", "--json"]);
    assert!(run.ok, "{}", run.stderr);
    let lines = json_lines(&run.stdout);
    assert!(lines.iter().any(|l| l["backend"] == "gpu") && lines.last().unwrap()["backend"] == "cpu", "{}", run.stdout);
    let mut slow = Vec::new();
    for l in &lines {
        let f = |k: &str| l[k].as_f64().unwrap_or_else(|| panic!("no {k} in {l}"));
        let (first, warm, rate) = (f("first_ms"), f("warm_ms"), f("images_per_s"));
        assert_eq!(l["batch"], 2, "{l}");
        let (lo, hi) = (2e3 / (warm + 5e-4), 2e3 / (warm - 5e-4));
        assert!(rate + 5e-4 >= lo && rate - 5e-4 <= hi, "{l}: {rate} images/s is not 2 images in {warm} ms");
        assert!(warm > 0.0 && f("load_ms") > 0.0, "{l}");
        if warm > 2.0 * first {
            slow.push(format!("{} {} {}: first {first} ms, warm {warm} ms", l["backend"], l["kernel"], l["dtype"]));
        }
    }
    if slow.is_empty() {
        Ok(())
    } else {
        Err(slow.join("; "))
    }
}

#[test]
fn help_after_any_command_prints_the_usage() {
    for command in ["classify", "bench", "convert", "fit", "random-model"] {
        let run = bit50(&[command, "--help"]);
        assert!(run.ok, "{command} --help: {}", run.stderr);
        assert!(run.stdout.contains("USAGE:") && run.stderr.is_empty(), "{command} --help: {:?} {:?}", run.stdout, run.stderr);
    }
}

/// `--cpu-kernel` forces a micro-kernel: the portable one gives the same logits as the one
/// chosen by feature detection (within rounding), `bench --json` names it, and a kernel the
/// processor lacks, or a name that is none, is refused in words.
#[test]
fn cpu_kernel_is_chosen_by_flag_and_named_by_bench() {
    let classify = |extra: &[&str]| {
        let mut args = vec!["classify", "--model", path(converted_tiny()), "--cpu", "--json", "--logits"];
        args.extend_from_slice(extra);
        let cat = photo("cat.png");
        args.push(&cat);
        let run = bit50(&args);
        assert!(run.ok, "{extra:?}: {}", run.stderr);
        floats(&json_lines(&run.stdout)[0]["logits"])
    };
    let detected = classify(&[]);
    let portable = classify(&["--cpu-kernel", "portable"]);
    assert!(max_abs_diff(&detected, &portable) < 1e-5, "{}", max_abs_diff(&detected, &portable));

    let run = bit50(&["bench", "--model", path(converted_tiny()), "--cpu", "--json", "--runs", "1", "--cpu-kernel", "portable"]);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(json_lines(&run.stdout)[0]["kernel"], "portable", "{}", run.stdout);

    let run = bit50(&["classify", "--model", path(converted_tiny()), "--cpu-kernel", "sse9", &photo("cat.png")]);
    assert!(!run.ok && run.stderr.contains("\"sse9\"") && run.stderr.contains("expected portable, avx2, avx512 or neon"), "{}", run.stderr);
    let missing = if cfg!(target_arch = "x86_64") { "neon" } else { "avx2" };
    let run = bit50(&["bench", "--model", path(converted_tiny()), "--cpu-kernel", missing]);
    assert!(!run.ok && run.stderr.contains(&format!("cannot run the {missing} CPU kernel")), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

/// `random-model --like FOLDER` takes FOLDER's config and preprocessing; `convert --max-shard-mb`
/// splits the weights into shards each within the limit, and the model classifies exactly as
/// the same weights in one shard do. The model: the tiny one widened to 3.5 MB (no tensor over
/// 1 MiB, so that every shard can keep the limit).
#[test]
fn random_model_like_and_max_shard_mb() {
    let dir = scratch("cli-shards");
    let like = dir.join("like");
    std::fs::create_dir_all(&like).unwrap();
    let (mut config, preprocessor) = configs("tiny");
    config["hidden_sizes"] = serde_json::json!([64, 128, 256, 512]);
    config["depths"] = serde_json::json!([1, 1, 2, 2]);
    config["embedding_size"] = 32.into();
    std::fs::write(like.join("config.json"), config.to_string()).unwrap();
    std::fs::write(like.join("preprocessor_config.json"), preprocessor.to_string()).unwrap();
    let hf = dir.join("hf");
    let run = bit50(&["random-model", "--out", path(&hf), "--seed", "3", "--like", path(&like)]);
    assert!(run.ok, "{}", run.stderr);
    let read = |p: PathBuf| -> Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let written = read(hf.join("config.json"));
    for key in ["hidden_sizes", "depths", "embedding_size", "num_groups", "id2label", "label2id"] {
        assert_eq!(written[key], config[key], "random-model --like: {key}");
    }
    assert_eq!(read(hf.join("preprocessor_config.json")), preprocessor);
    let missing = dir.join("no-such-folder");
    let run = bit50(&["random-model", "--out", path(&dir.join("x")), "--like", path(&missing)]);
    assert_refused(&run, "no-such-folder/config.json", "cannot read");

    let (one, many) = (dir.join("one"), dir.join("many"));
    assert!(bit50(&["convert", path(&hf), "--out", path(&one)]).ok);
    let run = bit50(&["convert", path(&hf), "--out", path(&many), "--max-shard-mb", "1"]);
    assert!(run.ok, "{}", run.stderr);
    let shards = |d: &Path| -> Vec<u64> {
        let manifest = read(d.join("manifest.json"));
        manifest["shards"].as_array().unwrap().iter().map(|s| std::fs::metadata(d.join(s["file"].as_str().unwrap())).unwrap().len()).collect()
    };
    let (sizes_one, sizes_many) = (shards(&one), shards(&many));
    println!("one shard: {sizes_one:?}; --max-shard-mb 1: {sizes_many:?}");
    assert_eq!(sizes_one.len(), 1);
    assert!(sizes_many.len() >= 3, "{sizes_many:?}");
    assert!(sizes_many.iter().all(|&b| b <= 1 << 20), "a shard over 1 MiB: {sizes_many:?}");
    assert!(sizes_many.iter().sum::<u64>() > 2 << 20);
    let logits = |d: &Path, engine: &str| {
        let run = bit50(&["classify", "--model", path(d), engine, "--json", "--logits", &photo("cat.png")]);
        assert!(run.ok, "{}", run.stderr);
        floats(&json_lines(&run.stdout)[0]["logits"])
    };
    for engine in ["--cpu", "--gpu"] {
        assert_eq!(logits(&one, engine), logits(&many, engine), "{engine}: the sharded model classifies differently");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// WebP and GIF files classify as the same pixels in a PNG do: cat.png written as lossless
/// WebP, and as GIF (256 colours, so compared with the GIF's own pixels saved as PNG).
#[test]
fn webp_and_gif_photos() {
    let dir = scratch("cli-formats");
    let cat = image::open(photo("cat.png")).unwrap();
    let save = |name: &str, img: &image::DynamicImage, format| {
        let p = dir.join(name);
        img.save_with_format(&p, format).unwrap();
        p.to_str().unwrap().to_string()
    };
    let webp = save("cat.webp", &cat, image::ImageFormat::WebP);
    let gif = save("cat.gif", &image::DynamicImage::ImageRgba8(cat.to_rgba8()), image::ImageFormat::Gif);
    let gif_pixels = image::open(&gif).unwrap();
    assert_ne!(gif_pixels.to_rgb8(), cat.to_rgb8(), "the GIF's palette changes pixels");
    let gif_png = save("cat-from-gif.png", &gif_pixels, image::ImageFormat::Png);
    let run = bit50(&["classify", "--model", path(converted_tiny()), "--cpu", "--json", "--logits", &photo("cat.png"), &webp, &gif, &gif_png]);
    assert!(run.ok, "{}", run.stderr);
    let lines = json_lines(&run.stdout);
    let logits: Vec<Vec<f32>> = lines.iter().map(|l| floats(&l["logits"])).collect();
    assert_eq!(logits[1], logits[0], "WebP (lossless) and PNG of the same photo");
    assert_eq!(logits[2], logits[3], "GIF and PNG of the same pixels");
    assert_eq!(top5(&logits[1]), expected_top5("tiny", "cat.png"));
    println!("gif vs png top-5: {:?} vs {:?}", top5(&logits[2]), top5(&logits[0]));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Output into a closed pipe (`bit50 classify ... | head -0`): the command stops quietly, no
/// panic, no error, in every output mode.
#[test]
fn a_closed_stdout_ends_quietly() {
    for extra in [&["--json", "--logits"][..], &[][..], &["--explain"][..]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader); // closed before the command writes anything
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bit50"));
        cmd.args(["classify", "--model", path(converted_tiny()), "--cpu"]).args(extra);
        cmd.args(PHOTOS.iter().map(|p| photo(p))).env("NODEVICE_SELECT", "1");
        let out = cmd.stdout(writer).stderr(std::process::Stdio::piped()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{extra:?}: {:?}, {stderr}", out.status);
        assert!(stderr.trim().is_empty(), "{extra:?}: {stderr}");
    }
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out =
        Command::new(env!("CARGO_BIN_EXE_bit50")).args(["bench", "--model", path(converted_tiny()), "--cpu", "--runs", "1"]).stdout(writer).output().unwrap();
    assert!(out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("panicked"), "bench: {:?}", out);
}
