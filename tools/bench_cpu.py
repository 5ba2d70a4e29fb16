#!/usr/bin/env python3
"""The native CPU path against its peers, on the same model and input, at 1 and 2 threads (issue #14).

    /work/venv/bin/python tools/bench_cpu.py --hf SRC --web DIR --onnx MODEL.onnx
                          [--bit50 target/release/bit50] [--threads 1,2] [--runs 10] [--rounds 2]

SRC is a Hugging Face folder (`bit50 random-model --out SRC --seed 0`), DIR the same weights
converted by `bit50 convert SRC --out DIR` (f32), MODEL.onnx the same weights exported by
`tools/export_onnx.py SRC` (f32: without --match-f16). Each measurement is one process run:

  ours         `bit50 bench --cpu --json --threads N` (warm median, one image)
  onnxruntime  the CPU execution provider, intra_op_num_threads N, inter_op 1, all graph optimizations
  pytorch      transformers' BitForImageClassification, eager, torch.set_num_threads(N), inference_mode

Rounds interleave the three so that a change of load hits all of them. Prints a markdown table
(medians in ms, each round, and ours / onnxruntime), the load average before and after, and the
largest logit difference between onnxruntime and PyTorch on the shared input (a check that both
ran the same model).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def timed(fn, runs):
    for _ in range(2):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def input_tensor(size):
    import numpy as np

    return np.random.default_rng(0).uniform(-1, 1, (1, 3, size, size)).astype(np.float32)


def one_ort(args):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(args.onnx, options, providers=["CPUExecutionProvider"])
    size = session.get_inputs()[0].shape[-1]
    x = input_tensor(size)
    logits = session.run(None, {"pixel_values": x})[0][0]
    ms = timed(lambda: session.run(None, {"pixel_values": x}), args.runs)
    return {"ms": ms, "logits": logits.tolist(), "version": ort.__version__}


def one_torch(args):
    import torch
    from transformers import BitForImageClassification

    torch.set_num_threads(args.threads)
    model = BitForImageClassification.from_pretrained(args.hf).eval()
    size = json.loads((Path(args.hf) / "preprocessor_config.json").read_text())["crop_size"]["height"]
    x = torch.from_numpy(input_tensor(size))
    with torch.inference_mode():
        logits = model(pixel_values=x).logits[0]
        ms = timed(lambda: model(pixel_values=x), args.runs)
    return {"ms": ms, "logits": logits.tolist(), "version": torch.__version__}


def one_ours(args, threads):
    out = subprocess.run(
        [args.bit50, "bench", "--model", args.web, "--cpu", "--json", "--threads", str(threads), "--runs", str(args.runs)],
        check=True, capture_output=True, text=True, env={**os.environ, "NODEVICE_SELECT": "1"},
    ).stdout
    line = json.loads(out.strip().splitlines()[-1])
    return {"ms": line["warm_ms"], "kernel": line["kernel"]}


def one_python(args, who, threads):
    cmd = [sys.executable, __file__, "--one", who, "--threads", str(threads), "--runs", str(args.runs),
           "--hf", args.hf, "--onnx", args.onnx, "--web", args.web]
    # Each peer gets its threads from its own setting, not from OpenMP's defaults.
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hf", required=True)
    p.add_argument("--web", required=True)
    p.add_argument("--onnx", required=True)
    p.add_argument("--bit50", default="target/release/bit50")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--one", choices=["ort", "torch"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        args.threads = int(args.threads)
        print(json.dumps(one_ort(args) if args.one == "ort" else one_torch(args)))
        return

    load_before = os.getloadavg()
    threads = [int(t) for t in args.threads.split(",")]
    results = {}  # (who, threads) -> [ms per round]
    extra = {}
    for r in range(args.rounds):
        for n in threads:
            ours = one_ours(args, n)
            ort = one_python(args, "ort", n)
            pt = one_python(args, "torch", n)
            extra.update(kernel=ours["kernel"], ort=ort["version"], torch=pt["version"])
            extra["ort_vs_torch"] = max(abs(a - b) for a, b in zip(ort["logits"], pt["logits"]))
            for who, res in (("ours", ours), ("onnxruntime", ort), ("pytorch", pt)):
                results.setdefault((who, n), []).append(res["ms"])
            print(f"round {r + 1}, {n} thread(s): ours {ours['ms']:.0f} ms, onnxruntime {ort['ms']:.0f} ms, "
                  f"pytorch {pt['ms']:.0f} ms", file=sys.stderr)
    load_after = os.getloadavg()

    print(f"ours: kernel {extra['kernel']}; onnxruntime {extra['ort']}; torch {extra['torch']}; "
          f"{args.runs} runs a measurement, median; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
          f"max |logit(onnxruntime) - logit(pytorch)| {extra['ort_vs_torch']:.2e}")
    print()
    print("| threads | ours (ms) | onnxruntime (ms) | PyTorch eager (ms) | ours / onnxruntime |")
    print("|---|---|---|---|---|")
    for n in threads:
        cell = lambda who: " / ".join(f"{ms:.0f}" for ms in results[(who, n)])
        ratio = " / ".join(f"{a / b:.2f}" for a, b in zip(results[("ours", n)], results[("onnxruntime", n)]))
        print(f"| {n} | {cell('ours')} | {cell('onnxruntime')} | {cell('pytorch')} | {ratio} |")


if __name__ == "__main__":
    main()
