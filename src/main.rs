//! The `bit50` command: convert weights, classify images, benchmark — natively,
//! with the very same WGSL shaders the browser runs.

use bit50::config::{bit50_defaults, parse_json, BitConfig};
use bit50::cpu::CpuNetwork;
use bit50::gpu::{fastest_kernels, Gpu, GpuNetwork};
use bit50::model::Model;
use bit50::weights::{self, convert, random, Dtype};
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
  bit50 classify --model DIR [--top K] [--json] [--logits] [--embed] [--explain] [--cpu|--gpu] IMAGE...
  bit50 classify --model DIR [...] --pixels FILE.npy
      Top K classes per image (default 5), the time taken and what ran it. --json
      prints one object per line; --logits adds all logits; --embed the pooled
      features (as 'embedding'); --explain the class activation map of the top
      class (as 'heatmap': index, width, height, data); --pixels runs a stored
      1x3xHxW float32 tensor, skipping preprocessing. It runs on the GPU, or on
      the CPU path (the browser's fallback) where the only adapter is a CPU device
      (Mesa's lavapipe) or there is none; --gpu or --cpu decides instead.
  bit50 bench --model DIR [--runs N]
      Load time, first and warm latency, GFLOP/s and GPU memory; per-layer GPU
      time; the adapter's matmul peak; the CPU path's latency beside them.
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
    match command.as_str() {
        "convert" => cmd_convert(&Args::parse(rest, &["--out", "--dtype", "--max-shard-mb"], &[])?),
        "classify" => cmd_classify(&Args::parse(rest, &["--model", "--top", "--pixels"], &["--json", "--logits", "--embed", "--explain", "--cpu", "--gpu"])?),
        "bench" => cmd_bench(&Args::parse(rest, &["--model", "--runs"], &[])?),
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

/// Either the GPU network or the CPU path, behind one call.
enum Engine {
    Gpu(Box<GpuNetwork>),
    Cpu(CpuNetwork),
}

/// What `classify` runs on.
#[derive(PartialEq)]
enum Choice {
    /// The GPU; the CPU path when the only adapter is a CPU device (Mesa's lavapipe), where
    /// it is several times faster, or when there is no adapter at all.
    Auto,
    Gpu,
    Cpu,
}

impl Engine {
    fn new(model: &Model, choice: Choice) -> Result<Self> {
        let cpu = || Engine::Cpu(CpuNetwork::new(model.network.clone()));
        if choice == Choice::Cpu {
            return Ok(cpu());
        }
        match pollster::block_on(Gpu::new()) {
            Ok(gpu) if choice == Choice::Auto && gpu.adapter.device_type == wgpu::DeviceType::Cpu => Ok(cpu()),
            Ok(gpu) => Ok(Engine::Gpu(Box::new(open_network(gpu, model)?))),
            Err(_) if choice == Choice::Auto => Ok(cpu()),
            Err(e) => Err(e),
        }
    }

    /// "gpu" or "cpu path", for the output.
    fn name(&self) -> &'static str {
        match self {
            Engine::Gpu(_) => "gpu",
            Engine::Cpu(_) => "cpu path",
        }
    }

    /// The logits, and with `embed` the pooled features, with `explain` the class
    /// activation map of the most probable class.
    fn run(&mut self, model: &Model, pixels: &[f32], embed: bool, explain: bool) -> Result<Outputs> {
        let top1 = |logits: &[f32]| top_k(logits, &model.labels, 1)[0].index;
        match self {
            Engine::Gpu(net) => {
                let (logits, embedding) = if embed {
                    let (logits, pooled) = pollster::block_on(net.embed(pixels))?;
                    (logits, Some(pooled))
                } else {
                    (pollster::block_on(net.logits(pixels))?, None)
                };
                let heatmap = match explain {
                    true => Some((top1(&logits), pollster::block_on(net.explain(pixels, top1(&logits)))?.1)),
                    false => None,
                };
                Ok(Outputs { logits, embedding, heatmap })
            }
            Engine::Cpu(net) => {
                let out = net.forward(pixels);
                let class = top1(&out.logits);
                let heatmap = explain.then(|| (class, net.class_map(&out, class)));
                Ok(Outputs { embedding: embed.then(|| out.pooled.clone()), heatmap, logits: out.logits })
            }
        }
    }
}

/// What one image gave.
struct Outputs {
    logits: Vec<f32>,
    embedding: Option<Vec<f32>>,
    /// (class, row-major square map)
    heatmap: Option<(usize, Vec<f32>)>,
}

/// How to print results.
struct Printing<'a> {
    labels: &'a [String],
    k: usize,
    json: bool,
    logits: bool,
}

fn cmd_classify(args: &Args) -> Result<bool> {
    let model = weights::load_dir(Path::new(args.required("--model")?))?;
    let printing = Printing { labels: &model.labels, k: args.number("--top", 5)?.max(1), json: args.flag("--json"), logits: args.flag("--logits") };
    let (embed, explain) = (args.flag("--embed"), args.flag("--explain"));
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
    let choice = match (args.flag("--cpu"), args.flag("--gpu")) {
        (true, true) => bail!("classify takes --cpu or --gpu, not both"),
        (true, false) => Choice::Cpu,
        (false, true) => Choice::Gpu,
        (false, false) => Choice::Auto,
    };
    let mut engine = Engine::new(&model, choice)?;
    let inputs: Vec<String> = match &stored {
        Some((file, _)) => vec![file.clone()],
        None => args.positional.clone(),
    };
    let mut all_ok = true;
    for input in &inputs {
        let started = Instant::now();
        let result = match &stored {
            Some((_, values)) => engine.run(&model, values, embed, explain),
            None => preprocess::open(Path::new(input))
                .and_then(|img| engine.run(&model, &preprocess::preprocess(&img, &model.preprocessor), embed, explain)),
        };
        let ms = started.elapsed().as_secs_f64() * 1e3;
        match result {
            Ok(outputs) => print_prediction(input, &outputs, &printing, ms, engine.name()),
            Err(e) => {
                eprintln!("error: {e}");
                all_ok = false;
            }
        }
    }
    Ok(all_ok)
}

fn print_prediction(input: &str, out: &Outputs, printing: &Printing, ms: f64, engine: &str) {
    let top = top_k(&out.logits, printing.labels, printing.k);
    let side = out.heatmap.as_ref().map(|(_, map)| (map.len() as f64).sqrt() as usize).unwrap_or(0);
    if printing.json {
        let mut line = serde_json::json!({ "input": input, "top": top, "ms": (ms * 1000.0).round() / 1000.0, "engine": engine });
        if printing.logits {
            line["logits"] = serde_json::json!(out.logits);
        }
        if let Some(embedding) = &out.embedding {
            line["embedding"] = serde_json::json!(embedding);
        }
        if let Some((index, map)) = &out.heatmap {
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
    if let Some(embedding) = &out.embedding {
        say!("  embedding ({} values): [{}]", embedding.len(), list(embedding));
    }
    if let Some((index, map)) = &out.heatmap {
        say!("  heatmap of class {index} ({side}x{side}, row-major): [{}]", list(map));
    }
}

fn cmd_bench(args: &Args) -> Result<bool> {
    let runs = args.number("--runs", 10)?.max(1);
    let started = Instant::now();
    let model = weights::load_dir(Path::new(args.required("--model")?))?;
    let read = started.elapsed();
    let gpu = pollster::block_on(Gpu::new())?;
    let adapter = gpu.describe();
    let mut net = open_network(gpu, &model)?;
    let load = started.elapsed();
    let pixels = random::input(7, model.network.image_size);
    let first_started = Instant::now();
    pollster::block_on(net.logits(&pixels))?;
    let first = first_started.elapsed().as_secs_f64() * 1e3;
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            pollster::block_on(net.logits(&pixels)).map(|_| t.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_>>()?;
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let size = model.network.image_size;
    say!("model      {} ({size}x{size}, {} classes)", model.name, model.labels.len());
    say!("adapter    {adapter}, {:?} convolution kernels", net.kernels());
    say!("load       {:.0} ms (weights read and checked {:.0} ms)", load.as_secs_f64() * 1e3, read.as_secs_f64() * 1e3);
    say!("first      {first:.1} ms");
    say!("warm       {median:.1} ms median of {runs} (min {:.1}, max {:.1})", times[0], times[times.len() - 1]);
    let gflops = net.flops() / median / 1e6;
    say!("compute    {gflops:.2} GFLOP/s ({:.2} GFLOP per image, {} dispatches, 1 submit)", net.flops() / 1e9, net.dispatch_count());
    say!("gpu memory {:.1} MB in buffers", net.gpu.allocated_bytes() as f64 / 1e6);
    if let Some(layers) = pollster::block_on(net.profile(&pixels))? {
        let total: f64 = layers.iter().map(|(_, ms)| ms).sum();
        say!("per layer  (GPU timestamps, one run: {total:.1} ms)");
        for (kind, ms) in layers {
            say!("           {ms:>9.1} ms {:>5.1}%  {kind}", 100.0 * ms / total);
        }
    }
    // The same adapter's reachable peak: the convolution kernel as a plain 1024^3 matrix multiply.
    let clock = Instant::now();
    let shape = (32, 1024, 1024);
    let peak = pollster::block_on(bit50::gpu::matmul_gflops(&net.gpu, net.kernels(), shape, 1, 5, || clock.elapsed().as_secs_f64() * 1e3))?;
    say!("matmul     {peak:.2} GFLOP/s (1024x1024x1024, same kernel); network at {:.0}% of it", 100.0 * gflops / peak);
    // The CPU path (the browser's fallback, classify --cpu) on the same input, for comparison.
    let cpu = CpuNetwork::new(model.network.clone());
    let mut cpu_times: Vec<f64> = (0..runs.min(3))
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(cpu.forward(&pixels));
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    cpu_times.sort_by(f64::total_cmp);
    let cpu_ms = cpu_times[cpu_times.len() / 2];
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    say!("cpu path   {cpu_ms:.1} ms median of {} ({:.2} GFLOP/s, {threads} threads)", cpu_times.len(), net.flops() / cpu_ms / 1e6);
    Ok(true)
}

/// The network on `gpu`, with the convolution kernel that is faster there.
fn open_network(gpu: Gpu, model: &Model) -> Result<GpuNetwork> {
    let clock = Instant::now();
    let (kernels, _) = pollster::block_on(fastest_kernels(&gpu, false, || clock.elapsed().as_secs_f64() * 1e3))?;
    pollster::block_on(GpuNetwork::new(gpu, &model.network, kernels))
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
