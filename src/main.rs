//! The `bit50` command: convert weights, classify images, benchmark — natively,
//! with the very same WGSL shaders the browser runs.

use bit50::config::{bit50_defaults, parse_json, BitConfig};
use bit50::engine::{Backend, Engine, Options};
use bit50::gpu::{ConvKernel, Gpu, Outputs, Precision, Want};
use bit50::head::{self, Head, ModelRef, TrainingSet};
use bit50::model::{Dtype, Model};
use bit50::weights::{self, convert, random};
use bit50::{bail, preprocess, top_k, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

const USAGE: &str = "\
bit50 — the BiT-50 image classifier (google/bit-50) on WebGPU

USAGE:
  bit50 convert SRC --out DIR [--dtype f32|f16|int8] [--max-shard-mb N]
      SRC: a model folder or a lone weights file, in any published form:
      Hugging Face (model.safetensors, pytorch_model.bin), PaddleNLP
      (model_state.pdparams), timm (safetensors or .bin) or the original BiT
      .npz. Without a config.json beside it, google/bit-50's config and
      preprocessing are assumed. Writes the web weight folder.
  bit50 classify --model DIR [--top K] [--json] [--logits] [--embed] [--explain] [--cpu|--gpu]
                 [--batch N] [--precision f32|f16|f16-arithmetic] [--kernel registers|tiled]
                 [--threads N] [--cpu-kernel K] [--head HEAD.json] IMAGE...
  bit50 classify --model DIR [...] --pixels FILE.npy
      Top K classes per image (default 5), the time taken and what ran it. --json
      prints one object per line; --logits adds all logits; --embed the pooled
      features (as 'embedding'); --explain the class activation map of the top
      class (as 'heatmap': index, width, height, data); --pixels runs a stored
      1x3xHxW float32 tensor, skipping preprocessing. It runs on whichever of the
      GPU and the CPU path (the browser's fallback) measures faster at load: the GPU
      on a real one, the CPU path on a CPU device (Mesa's lavapipe) or without an
      adapter; --gpu or --cpu decides instead. On the GPU, up to --batch images
      (default 8) go through in one submission; --precision and --kernel choose the
      GPU kernels (default: timed at load; f16 where the adapter has shader-f16 and
      the weights were stored in f16 or int8). The CPU path uses every core, or
      --threads N, and the widest micro-kernel the processor has (avx512, avx2,
      neon, else portable), or --cpu-kernel K. --head adds your own classes (a head from bit50 fit or the web
      page) with their probabilities, as 'custom' with --json.
  bit50 fit --model DIR --class LABEL=FILES --class LABEL=FILES... [--l2 X] [--flips]
            --out HEAD.json [--cpu|--gpu] [--batch N] [--threads N] [--cpu-kernel K]
      Teaches the model your own classes: a linear head (multinomial logistic
      regression, L2-penalised) on its pooled features, from a few example photos
      per class. FILES: image files and folders (their .jpg, .jpeg, .png, .webp,
      .gif and .bmp files), separated by commas. --l2: the penalty, mean
      cross-entropy + l2/2 ||W||^2 (default 1/n over the n training views,
      scikit-learn's C = 1); --flips: each photo's mirror image too. Prints the
      training accuracy and a leave-one-out estimate (up to 200 photos); writes
      the head file the web page and the JavaScript API also read.
  bit50 bench --model DIR [--runs N] [--batch N] [--json] [--cpu|--gpu] [--precision P] [--kernel K]
              [--threads N] [--cpu-kernel K]
      Load time, first and warm latency, images per second, GFLOP/s and GPU memory;
      per-layer GPU time; the adapter's matmul peak; the CPU path's latency beside
      them. --json prints one object per configuration measured (each GPU kernel
      and precision, and the CPU path): adapter, backend, kernel, dtype, batch,
      first_ms, warm_ms, images_per_s, gpu_memory_mb.
  bit50 random-model --out DIR [--seed N] [--like FOLDER]
      Writes a Hugging Face folder with seeded random weights in google/bit-50's
      layout (or FOLDER's config.json and preprocessor_config.json), for tests
      and for demos without the real weights.
";

/// `println!` that ends the program quietly once stdout is closed (piped into `head`, say),
/// instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

fn main() {
    // Mesa's device-select layer warns on stderr where no display is around, though nothing
    // failed; users and scripts read that as an error.
    if std::env::var_os("NODEVICE_SELECT").is_none() {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

/// Parsed `--flag value` options and positional arguments.
struct Args {
    positional: Vec<String>,
    options: Vec<(String, Option<String>)>,
}

impl Args {
    fn parse(args: &[String], with_value: &[&str], switches: &[&str]) -> Result<Self> {
        let mut parsed = Args { positional: vec![], options: vec![] };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if with_value.contains(&a.as_str()) {
                let v = it.next().context(|| format!("{a} needs a value"))?;
                parsed.options.push((a.clone(), Some(v.clone())));
            } else if switches.contains(&a.as_str()) {
                parsed.options.push((a.clone(), None));
            } else if a.starts_with("--") {
                bail!("unknown option {a}\n\n{USAGE}");
            } else {
                parsed.positional.push(a.clone());
            }
        }
        Ok(parsed)
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.options.iter().rev().find(|(n, _)| n == name).and_then(|(_, v)| v.as_deref())
    }

    /// Every value of an option given more than once.
    fn values(&self, name: &str) -> Vec<&str> {
        self.options.iter().filter(|(n, _)| n == name).filter_map(|(_, v)| v.as_deref()).collect()
    }

    fn flag(&self, name: &str) -> bool {
        self.options.iter().any(|(n, _)| n == name)
    }

    fn number(&self, name: &str, default: usize) -> Result<usize> {
        match self.value(name) {
            None => Ok(default),
            Some(v) => v.parse().context(|| format!("{name} {v:?}: expected a whole number")),
        }
    }

    fn required(&self, name: &str) -> Result<&str> {
        self.value(name).context(|| format!("{name} is required\n\n{USAGE}"))
    }
}

fn run(args: &[String]) -> Result<bool> {
    let Some(command) = args.first() else {
        say!("{USAGE}");
        return Ok(true);
    };
    let rest = &args[1..];
    if rest.iter().any(|a| a == "-h" || a == "--help") {
        say!("{USAGE}");
        return Ok(true);
    }
    match command.as_str() {
        "convert" => cmd_convert(&Args::parse(rest, &["--out", "--dtype", "--max-shard-mb"], &[])?),
        "classify" => cmd_classify(&Args::parse(
            rest,
            &["--model", "--top", "--pixels", "--batch", "--precision", "--kernel", "--threads", "--cpu-kernel", "--head"],
            &["--json", "--logits", "--embed", "--explain", "--cpu", "--gpu"],
        )?),
        "fit" => cmd_fit(&Args::parse(rest, &["--model", "--class", "--l2", "--out", "--batch", "--threads", "--cpu-kernel"], &["--flips", "--cpu", "--gpu"])?),
        "bench" => cmd_bench(&Args::parse(rest, &["--model", "--runs", "--batch", "--precision", "--kernel", "--threads", "--cpu-kernel"], &["--json", "--cpu", "--gpu"])?),
        "random-model" => cmd_random_model(&Args::parse(rest, &["--out", "--seed", "--like"], &[])?),
        "-h" | "--help" | "help" => {
            say!("{USAGE}");
            Ok(true)
        }
        other => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
}

fn cmd_convert(args: &Args) -> Result<bool> {
    let [src] = args.positional.as_slice() else {
        bail!("convert takes one source (a model folder or a weights file)\n\n{USAGE}");
    };
    let out = PathBuf::from(args.required("--out")?);
    let dtype: Dtype = args.value("--dtype").unwrap_or("f32").parse()?;
    let max_mb = args.number("--max-shard-mb", weights::DEFAULT_MAX_SHARD_BYTES >> 20)?;
    if max_mb == 0 || max_mb > 1024 {
        bail!("--max-shard-mb {max_mb}: expected 1 to 1024");
    }
    let started = Instant::now();
    let source = convert::read_source(Path::new(src))?;
    let (manifest, files) = convert::convert(source, dtype, max_mb << 20)?;
    weights::write_dir(&out, &manifest, &files)?;
    let bytes: u64 = manifest.shards.iter().map(|s| s.bytes).sum();
    say!(
        "wrote {} ({} shard{}, {:.1} MB, {}) in {:.1} s",
        out.display(),
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        bytes as f64 / 1e6,
        serde_json::to_value(dtype).expect("serializes").as_str().unwrap_or("?"),
        started.elapsed().as_secs_f64()
    );
    Ok(true)
}

/// How to print results.
struct Printing<'a> {
    labels: &'a [String],
    k: usize,
    json: bool,
    logits: bool,
    /// Your own classes, and whether to print the embedding (asked for, or only needed by the head).
    head: Option<&'a Head>,
    embedding: bool,
}

fn cmd_classify(args: &Args) -> Result<bool> {
    let model = weights::load_dir(Path::new(args.required("--model")?))?;
    let head = args.value("--head").map(|file| read_head(file, &model)).transpose()?;
    let printing = Printing { labels: &model.labels, k: args.number("--top", 5)?.max(1), json: args.flag("--json"), logits: args.flag("--logits"), head: head.as_ref(), embedding: args.flag("--embed") };
    let want = Want { pooled: args.flag("--embed") || head.is_some(), class_map: args.flag("--explain").then_some(None), taps: false };
    let pixels_file = args.value("--pixels");
    if pixels_file.is_some() != args.positional.is_empty() {
        bail!("classify takes either images or --pixels FILE.npy\n\n{USAGE}");
    }
    // Check every input before the (slow) engine starts, so a typo costs nothing.
    let size = model.network.image_size;
    let stored = match pixels_file {
        Some(file) => {
            let bytes = std::fs::read(file).context(|| format!("{file}: cannot read"))?;
            let (shape, values) = bit50::weights::npy::read(&bytes, file)?;
            if shape != [1, 3, size, size] {
                bail!("{file}: shape {shape:?}, this model takes [1, 3, {size}, {size}]");
            }
            Some((file.to_string(), values))
        }
        None => None,
    };
    let mut options = engine_options(args)?;
    options.batch = args.number("--batch", 8)?.clamp(1, 256);
    let mut engine = open_engine(&model, &options)?;
    let inputs: Vec<String> = match &stored {
        Some((file, _)) => vec![file.clone()],
        None => args.positional.clone(),
    };
    let mut all_ok = true;
    // Up to a batch of images at a time: decoded, then run in one submission.
    for chunk in inputs.chunks(engine.batch()) {
        let mut ready = Vec::new();
        for input in chunk {
            let started = Instant::now();
            let pixels = match &stored {
                Some((_, values)) => Ok(values.clone()),
                None => preprocess::open(Path::new(input)).map(|img| preprocess::preprocess(&img, &model.preprocessor)),
            };
            match pixels {
                Ok(p) => ready.push((input, p, started.elapsed().as_secs_f64() * 1e3)),
                Err(e) => {
                    eprintln!("error: {e}");
                    all_ok = false;
                }
            }
        }
        if ready.is_empty() {
            continue;
        }
        let started = Instant::now();
        let images: Vec<&[f32]> = ready.iter().map(|(_, p, _)| p.as_slice()).collect();
        let outputs = pollster::block_on(engine.run(&images, want))?;
        // Each image's time: its own decoding, and its share of the batch.
        let share = started.elapsed().as_secs_f64() * 1e3 / ready.len() as f64;
        for ((input, _, decode_ms), out) in ready.iter().zip(&outputs) {
            print_prediction(input, out, &printing, decode_ms + share, engine.backend());
        }
    }
    Ok(all_ok)
}

/// A head file, checked against the model it is to be used with.
fn read_head(file: &str, model: &Model) -> Result<Head> {
    let bytes = std::fs::read(file).context(|| format!("{file}: cannot read"))?;
    let head = Head::parse(&bytes, file)?;
    head.check_model(&model_ref(model), model.network.features(), file)?;
    Ok(head)
}

fn model_ref(model: &Model) -> ModelRef {
    ModelRef { name: model.name.clone(), sha256: model.sha256.clone() }
}

/// Image files a head learns from: `--class LABEL=FILES`.
const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "webp", "gif", "bmp"];

/// `--class LABEL=a.jpg,b.png,folder`: the label and its files (a folder's image files, sorted).
fn class_files(spec: &str) -> Result<(String, Vec<PathBuf>)> {
    let Some((label, list)) = spec.split_once('=') else {
        bail!(BadInput, "--class {spec:?}: expected LABEL=FILES (image files or folders, separated by commas)");
    };
    let mut files = Vec::new();
    for item in list.split(',').filter(|s| !s.is_empty()) {
        let path = Path::new(item);
        if path.is_dir() {
            let entries = std::fs::read_dir(path).context(|| format!("{item}: cannot read the folder"))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())))
                .collect();
            if found.is_empty() {
                bail!(BadInput, "--class {label}: the folder {item} holds no image files ({})", IMAGE_EXTENSIONS.join(", "));
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(path.to_path_buf());
        }
    }
    if files.is_empty() {
        bail!(BadInput, "the class {label:?} has no examples: give image files or a folder after {label}=");
    }
    Ok((label.to_string(), files))
}

fn cmd_fit(args: &Args) -> Result<bool> {
    if !args.positional.is_empty() {
        bail!("fit takes its photos from --class LABEL=FILES, not {:?}\n\n{USAGE}", args.positional[0]);
    }
    let model = weights::load_dir(Path::new(args.required("--model")?))?;
    let out = PathBuf::from(args.required("--out")?);
    let l2 = match args.value("--l2") {
        None => None,
        Some(v) => Some(v.parse::<f64>().ok().filter(|x| x.is_finite()).context(|| format!("--l2 {v:?}: expected a number"))?),
    };
    let flips = args.flag("--flips");
    // Everything that can be checked is, before the (slow) engine starts.
    let specs = args.values("--class");
    let (labels, files): (Vec<String>, Vec<Vec<PathBuf>>) = specs.iter().map(|s| class_files(s)).collect::<Result<Vec<_>>>()?.into_iter().unzip();
    if labels.len() < 2 {
        bail!(BadInput, "a head needs at least two classes to tell apart: give --class LABEL=FILES twice or more (got {})", labels.len());
    }
    head::check_labels(&labels, bit50::ErrorKind::BadInput, "--class: ")?;
    let examples: usize = files.iter().map(Vec::len).sum();
    let views = examples * if flips { 2 } else { 1 };
    if views > head::MAX_VIEWS {
        bail!(BadInput, "{examples} photos{}: a head trains on at most {} (or {} with --flips)", if flips { " with their mirror images" } else { "" }, head::MAX_VIEWS, head::MAX_VIEWS / 2);
    }
    for file in files.iter().flatten() {
        check_image_file(file)?;
    }
    let mut options = engine_options(args)?;
    options.batch = args.number("--batch", 8)?.clamp(1, 256);
    let started = Instant::now();
    let mut engine = open_engine(&model, &options)?;
    let size = model.network.image_size;
    let mut set = TrainingSet::new(model.network.features());
    let all: Vec<(usize, &PathBuf)> = files.iter().enumerate().flat_map(|(class, f)| f.iter().map(move |p| (class, p))).collect();
    // A batch of photos at a time (with their mirror images): only their features are kept.
    let per = if flips { 2 } else { 1 };
    for chunk in all.chunks((engine.batch() / per).max(1)) {
        let mut inputs = Vec::new();
        for (_, file) in chunk {
            let pixels = preprocess::preprocess(&preprocess::open(file)?, &model.preprocessor);
            let mirror = flips.then(|| preprocess::mirror(&pixels, size));
            inputs.push(pixels);
            inputs.extend(mirror);
        }
        let images: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
        let outputs = pollster::block_on(engine.run(&images, Want { pooled: true, ..Want::default() }))?;
        for ((class, _), views) in chunk.iter().zip(outputs.chunks(per)) {
            // The photo, then its mirror image.
            let features: Vec<&[f32]> = views.iter().map(|o| o.pooled.as_deref().expect("asked for")).collect();
            set.push(*class, &features)?;
        }
    }
    let features_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let trained = head::train(&labels, &set, &head::Options { l2, flips, loo: true }, &model_ref(&model))?;
    let train_ms = started.elapsed().as_secs_f64() * 1e3;
    let text = trained.to_json();
    write_atomically(&out, text.as_bytes())?;
    let t = trained.training.as_ref().expect("a trained head says how");
    let counts: Vec<String> = labels.iter().zip(&t.examples).map(|(l, n)| format!("{l} {n}")).collect();
    let pct = |a: usize, b: usize| format!("{:.1}% ({a}/{b})", 100.0 * a as f64 / b as f64);
    say!("examples   {} ({examples} photos{})", counts.join(", "), if flips { format!(", {views} views with their mirror images") } else { String::new() });
    say!("features   of {views} views in {features_s:.2} s, the model's load included ({}, {} features each)", if engine.backend() == "gpu" { "gpu" } else { "cpu path" }, set.features());
    say!("trained    {train_ms:.1} ms: {} L-BFGS iterations, gradient {:.1e}, l2 {:.4e}{}", t.iterations, t.gradient, t.l2, if l2.is_none() { " (1/n)" } else { "" });
    say!("training   {} right", pct(t.train_correct, examples));
    match t.loo {
        Some(loo) => say!("leave-one-out {} right (each photo classified by a head trained without it{})", pct(loo.correct, loo.counted), if loo.counted < examples { "; photos alone in their class are not counted" } else { "" }),
        None if examples > head::MAX_LOO_EXAMPLES => say!("leave-one-out not estimated: over {} photos (it trains once per photo)", head::MAX_LOO_EXAMPLES),
        None => say!("leave-one-out not estimated: every class has a single photo (give a class two or more)"),
    }
    say!("wrote      {} ({} classes, {:.0} KB)", out.display(), labels.len(), text.len() as f64 / 1024.0);
    Ok(true)
}

/// A file's first bytes say whether it is an image at all (decoding finds damage later).
fn check_image_file(file: &Path) -> Result<()> {
    use std::io::Read;
    let name = file.display();
    let mut head = Vec::new();
    std::fs::File::open(file).and_then(|f| f.take(64).read_to_end(&mut head)).context(|| format!("{name}: cannot read"))?;
    if head.is_empty() {
        bail!(NotImage, "{name}: empty file, not an image");
    }
    if image::guess_format(&head).is_err() {
        bail!(NotImage, "{name}: not an image (expected JPEG, PNG, WebP, GIF or BMP)");
    }
    Ok(())
}

/// Writes through a temporary file beside `path`, so a failure never leaves half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.display();
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).context(|| format!("{name}: cannot write"))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        bit50::Error::from(format!("{name}: cannot write ({e})"))
    })
}

/// `--cpu`, `--gpu`, `--precision`, `--kernel` as engine options; `--threads` and
/// `--cpu-kernel` for the CPU path.
fn engine_options(args: &Args) -> Result<Options> {
    if let Some(n) = args.value("--threads") {
        let n: usize = n.parse().ok().filter(|&n| (1..=1024).contains(&n)).context(|| format!("--threads {n:?}: expected 1 to 1024"))?;
        bit50::parallel::set_threads(n);
    }
    if let Some(name) = args.value("--cpu-kernel") {
        bit50::cpu::set_kernel(bit50::cpu::Kernel::parse(name)?)?;
    }
    let backend = match (args.flag("--cpu"), args.flag("--gpu")) {
        (true, true) => bail!("--cpu or --gpu, not both"),
        (true, false) => Backend::Cpu,
        (false, true) => Backend::Gpu,
        (false, false) => Backend::Auto,
    };
    let precision = args.value("--precision").map(Precision::parse).transpose()?;
    let conv = match args.value("--kernel") {
        None => None,
        Some("registers") => Some(ConvKernel::Registers),
        Some("tiled") => Some(ConvKernel::Tiled),
        Some(other) => bail!("--kernel {other:?}: expected registers or tiled"),
    };
    Ok(Options { backend, precision, conv, ..Options::default() })
}

fn open_engine(model: &Model, options: &Options) -> Result<Engine> {
    let clock = Instant::now();
    pollster::block_on(Engine::open(model.network.clone(), model.stored, options, |_| {}, || clock.elapsed().as_secs_f64() * 1e3, |_| {}))
}

fn print_prediction(input: &str, out: &Outputs, printing: &Printing, ms: f64, backend: &str) {
    let engine = if backend == "gpu" { "gpu" } else { "cpu path" };
    let top = top_k(&out.logits, printing.labels, printing.k);
    let side = out.class_map.as_ref().map(|(_, map)| (map.len() as f64).sqrt() as usize).unwrap_or(0);
    if printing.json {
        let mut line = serde_json::json!({ "input": input, "top": top, "ms": (ms * 1000.0).round() / 1000.0, "engine": engine });
        if printing.logits {
            line["logits"] = serde_json::json!(out.logits);
        }
        if let (Some(head), Some(features)) = (printing.head, &out.pooled) {
            line["custom"] = serde_json::json!(head.classify(features));
        }
        if let Some(embedding) = out.pooled.as_ref().filter(|_| printing.embedding) {
            line["embedding"] = serde_json::json!(embedding);
        }
        if let Some((index, map)) = &out.class_map {
            line["heatmap"] = serde_json::json!({ "index": index, "width": side, "height": side, "data": map });
        }
        say!("{line}");
        return;
    }
    say!("{input}  ({ms:.1} ms, {engine})");
    for p in &top {
        say!("  {:>5}  {:6.2}%  logit {:>9.4}  {}", p.index, p.prob * 100.0, p.logit, p.label);
    }
    let list = |values: &[f32]| values.iter().map(|x| format!("{x}")).collect::<Vec<_>>().join(", ");
    if printing.logits {
        say!("  logits: [{}]", list(&out.logits));
    }
    if let (Some(head), Some(features)) = (printing.head, &out.pooled) {
        say!("  your classes:");
        for p in head.classify(features) {
            say!("  {:>5}  {:6.2}%  {}", p.index, p.prob * 100.0, p.label);
        }
    }
    if let Some(embedding) = out.pooled.as_ref().filter(|_| printing.embedding) {
        say!("  embedding ({} values): [{}]", embedding.len(), list(embedding));
    }
    if let Some((index, map)) = &out.class_map {
        say!("  heatmap of class {index} ({side}x{side}, row-major): [{}]", list(map));
    }
}

/// Latencies of one engine on a batch: the first run, then `runs` more.
struct Timing {
    first_ms: f64,
    /// Sorted.
    warm_ms: Vec<f64>,
}

impl Timing {
    fn measure(engine: &mut Engine, images: &[&[f32]], runs: usize) -> Result<Self> {
        let mut once = || -> Result<f64> {
            let t = Instant::now();
            pollster::block_on(engine.run(images, Want::default()))?;
            Ok(t.elapsed().as_secs_f64() * 1e3)
        };
        let first_ms = once()?;
        let mut warm_ms = (0..runs).map(|_| once()).collect::<Result<Vec<_>>>()?;
        warm_ms.sort_by(f64::total_cmp);
        Ok(Timing { first_ms, warm_ms })
    }

    fn median(&self) -> f64 {
        self.warm_ms[self.warm_ms.len() / 2]
    }
}

fn cmd_bench(args: &Args) -> Result<bool> {
    let runs = args.number("--runs", 10)?.max(1);
    let batch = args.number("--batch", 1)?.clamp(1, 1024);
    let started = Instant::now();
    let model = weights::load_dir(Path::new(args.required("--model")?))?;
    let read = started.elapsed();
    let options = Options { batch, ..engine_options(args)? };
    let size = model.network.image_size;
    let inputs: Vec<Vec<f32>> = (0..batch).map(|i| random::input(7 + i as u64, size)).collect();
    let images: Vec<&[f32]> = inputs.iter().map(|p| p.as_slice()).collect();
    if args.flag("--json") {
        return bench_json(&model, &options, &images, runs);
    }
    say!("model      {} ({size}x{size}, {} classes, {:?} weights)", model.name, model.labels.len(), model.stored);
    if options.backend != Backend::Cpu {
        let mut engine = open_engine(&model, &Options { backend: Backend::Gpu, ..options.clone() })?;
        let load = started.elapsed();
        let timing = Timing::measure(&mut engine, &images, runs)?;
        let net = engine.gpu().expect("the GPU was asked for");
        let median = timing.median();
        say!("adapter    {}, {} convolution kernels", net.gpu.describe(), net.variant().describe());
        say!("load       {:.0} ms (weights read and checked {:.0} ms)", load.as_secs_f64() * 1e3, read.as_secs_f64() * 1e3);
        say!("first      {:.1} ms (batch of {batch})", timing.first_ms);
        say!("warm       {median:.1} ms median of {runs} (min {:.1}, max {:.1})", timing.warm_ms[0], timing.warm_ms[runs - 1]);
        if net.capacity() < batch {
            say!("batch      {batch} images, {} per submission (the adapter's storage binding limit)", net.capacity());
        }
        say!("throughput {:.2} images/s", batch as f64 / median * 1e3);
        let gflops = batch as f64 * net.flops() / median / 1e6;
        say!("compute    {gflops:.2} GFLOP/s ({:.2} GFLOP per image, {} dispatches, 1 submit)", net.flops() / 1e9, net.dispatch_count());
        say!("gpu memory {:.1} MB in buffers", net.gpu.allocated_bytes() as f64 / 1e6);
        if let Some(layers) = pollster::block_on(engine.profile(images[0]))? {
            let total: f64 = layers.iter().map(|(_, ms)| ms).sum();
            say!("per layer  (GPU timestamps, one image: {total:.1} ms)");
            for (kind, ms) in layers {
                say!("           {ms:>9.1} ms {:>5.1}%  {kind}", 100.0 * ms / total);
            }
        }
        // The same adapter's reachable peak: the convolution kernel as a plain 1024^3 matrix multiply.
        let net = engine.gpu().expect("the GPU was asked for");
        let clock = Instant::now();
        let peak = pollster::block_on(bit50::gpu::matmul_gflops(&net.gpu, net.variant(), (32, 1024, 1024), 1, 5, || clock.elapsed().as_secs_f64() * 1e3))?;
        say!("matmul     {peak:.2} GFLOP/s (1024x1024x1024, same kernel); network at {:.0}% of it", 100.0 * gflops / peak);
    }
    if options.backend != Backend::Gpu {
        // The CPU path (the browser's fallback, classify --cpu) on the same input.
        let mut cpu = open_engine(&model, &Options { backend: Backend::Cpu, batch: 1, ..options.clone() })?;
        let timing = Timing::measure(&mut cpu, &images[..1], runs.min(3))?;
        let ms = timing.median();
        say!(
            "cpu path   {ms:.1} ms median of {} ({:.2} GFLOP/s, {} threads, {} kernel)",
            timing.warm_ms.len(),
            model.network.flops() / ms / 1e6,
            bit50::parallel::threads(),
            bit50::cpu::kernel_name()
        );
    }
    Ok(true)
}

/// `bench --json`: one object per configuration measured (each GPU kernel and precision the
/// adapter runs, unless --kernel or --precision choose; the CPU path), one per line.
fn bench_json(model: &Model, options: &Options, images: &[&[f32]], runs: usize) -> Result<bool> {
    let mut configurations = Vec::new();
    if options.backend != Backend::Cpu {
        let features = pollster::block_on(Gpu::new(options.features))?.features;
        let precisions: Vec<Precision> = match options.precision {
            Some(p) => vec![p],
            None if features.f16 => vec![Precision::F32, Precision::F16, Precision::F16Arithmetic],
            None => vec![Precision::F32],
        };
        let convs = options.conv.map_or(vec![ConvKernel::Registers, ConvKernel::Tiled], |c| vec![c]);
        for conv in convs {
            for &precision in &precisions {
                configurations.push(Options { backend: Backend::Gpu, conv: Some(conv), precision: Some(precision), ..options.clone() });
            }
        }
    }
    if options.backend != Backend::Gpu {
        configurations.push(Options { backend: Backend::Cpu, ..options.clone() });
    }
    for config in configurations {
        let started = Instant::now();
        let mut engine = open_engine(model, &config)?;
        let load_ms = started.elapsed().as_secs_f64() * 1e3;
        let timing = Timing::measure(&mut engine, images, runs)?;
        let warm_ms = timing.median();
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        let line = match engine.gpu() {
            Some(net) => serde_json::json!({
                "adapter": net.gpu.describe(), "backend": "gpu", "kernel": net.variant().conv.name(),
                "dtype": net.variant().precision.name(), "subgroups": net.variant().subgroups,
                "batch": images.len(), "per_submission": net.capacity(),
                "load_ms": round(load_ms), "first_ms": round(timing.first_ms), "warm_ms": round(warm_ms),
                "images_per_s": round(images.len() as f64 / warm_ms * 1e3),
                "gpu_memory_mb": round(net.gpu.allocated_bytes() as f64 / 1e6),
            }),
            None => serde_json::json!({
                "adapter": format!("CPU, {} thread{}", bit50::parallel::threads(), if bit50::parallel::threads() == 1 { "" } else { "s" }), "backend": "cpu", "kernel": bit50::cpu::kernel_name(),
                "dtype": "f32", "batch": images.len(), "load_ms": round(load_ms), "first_ms": round(timing.first_ms),
                "warm_ms": round(warm_ms), "images_per_s": round(images.len() as f64 / warm_ms * 1e3), "gpu_memory_mb": null,
            }),
        };
        say!("{line}");
    }
    Ok(true)
}

fn cmd_random_model(args: &Args) -> Result<bool> {
    let out = PathBuf::from(args.required("--out")?);
    let seed = args.number("--seed", 0)? as u64;
    let (mut config, preprocessor) = match args.value("--like") {
        None => bit50_defaults(),
        Some(folder) => {
            let read = |file: &str| -> Result<serde_json::Value> {
                let p = Path::new(folder).join(file);
                let text = std::fs::read_to_string(&p).context(|| format!("{}: cannot read", p.display()))?;
                parse_json(&text, &p.display().to_string())
            };
            (read("config.json")?, read("preprocessor_config.json")?)
        }
    };
    let parsed = BitConfig::from_json(&config, "config.json")?;
    // Marks the model untrained all the way to the page (transformers ignores the extra key).
    config[weights::RANDOM_SEED_KEY] = seed.into();
    random::write_hf_folder(&out, &config, &preprocessor, &random::weights(&parsed, seed))?;
    say!("wrote {} (seeded random weights, seed {seed})", out.display());
    Ok(true)
}
