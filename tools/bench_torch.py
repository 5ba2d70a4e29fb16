#!/usr/bin/env python3
"""PyTorch's side of tools/gpu-bench.sh: transformers' BitForImageClassification on the same
seeded weights, timed on the GPU (or the CPU where there is none), and its logits for one input.

    python tools/bench_torch.py MODEL_FOLDER --out DIR [--batches 1,32] [--runs 10] [--compile]

MODEL_FOLDER is a Hugging Face folder (`bit50 random-model` writes one: google/bit-50's config
with seeded weights). Writes into DIR:
  input.npy        a seeded 1x3xSxS float32 input in [-1, 1] (S: the model's crop size)
  torch.json       {"device", "torch", "transformers", "logits_f32": [...], "runs": [{"who",
                   "batch", "ms", "images_per_s"}]}: "eager f32" (TF32 off), "eager default"
                   (PyTorch's default, TF32 in convolutions on NVIDIA GPUs), "compiled" (with
                   --compile: torch.compile, default mode)
Times are medians of --runs runs after warm-up, each awaited (torch.cuda.synchronize).
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import BitForImageClassification


def timed(model, x, runs, sync):
    with torch.inference_mode():
        for _ in range(3):
            model(pixel_values=x)
        sync()
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            model(pixel_values=x)
            sync()
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    model = BitForImageClassification.from_pretrained(args.model).eval().to(device)
    size = json.loads((args.model / "preprocessor_config.json").read_text())["crop_size"]["height"]

    rng = np.random.default_rng(7)
    x1 = rng.uniform(-1, 1, size=(1, 3, size, size)).astype(np.float32)
    np.save(args.out / "input.npy", x1)

    def tf32(on):
        torch.backends.cudnn.allow_tf32 = on
        torch.backends.cuda.matmul.allow_tf32 = on

    default_tf32 = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    tf32(False)
    with torch.inference_mode():
        logits = model(pixel_values=torch.from_numpy(x1).to(device)).logits[0].double().cpu().numpy()

    runs = []
    for batch in [int(b) for b in args.batches.split(",")]:
        x = torch.from_numpy(np.repeat(x1, batch, axis=0)).to(device)
        configs = [("eager f32", False), ("eager default", None)]
        if args.compile:
            configs.append(("compiled", None))
        for who, tf in configs:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = (tf, tf) if tf is not None else default_tf32
            m = torch.compile(model) if who == "compiled" else model
            ms = timed(m, x, args.runs, sync)
            runs.append({"who": f"PyTorch {who}", "batch": batch, "ms": ms, "images_per_s": batch / ms * 1e3})
            print(f"PyTorch {who:14s} batch {batch:3d}: {ms:9.3f} ms, {batch / ms * 1e3:9.2f} images/s", flush=True)

    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    report = {"device": name, "torch": torch.__version__, "transformers": transformers.__version__, "logits_f32": logits.tolist(), "runs": runs}
    (args.out / "torch.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
