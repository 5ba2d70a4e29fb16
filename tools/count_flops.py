#!/usr/bin/env python3
"""What torch counts for each fixture model: FLOPs and the convolutions in execution order (run by hand).

Run from the repository root with the environment of tools/requirements.txt:

    python tools/count_flops.py

It (re)writes tests/fixtures/flops.json: for each folder of tests/fixtures with a config.json and
preprocessor_config.json, and for google/bit-50's bundled config at 448, 224 and 200,

  "size":  the crop the network runs at,
  "flops": torch.utils.flop_counter.FlopCounterMode's total for one image through transformers'
           BitForImageClassification (the convolutions and the classifier's addmm, 2 per multiply-add;
           GroupNorm, pooling and the weight standardization are not counted),
  "convs": every nn.Conv2d in the order the forward pass calls it: [k, stride, in, out].

model.rs's tests compare `Network::flops` and `Network::convs` with these. The weights do not
matter (transformers' own initialisation, seed 0).
"""
import json
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import BitConfig, BitForImageClassification

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def count(config_path, size):
    torch.manual_seed(0)
    model = BitForImageClassification(BitConfig.from_json_file(config_path)).eval()
    convs = []
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(
                lambda m, i, o: convs.append([m.kernel_size[0], m.stride[0], m.in_channels, m.out_channels])
            )
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, size, size))
    return {"size": size, "flops": counter.get_total_flops(), "convs": convs}


def main():
    out = {}
    bundled = ROOT / "assets" / "google-bit-50" / "config.json"
    for size in (448, 224, 200):
        out[f"google-bit-50@{size}"] = count(bundled, size)
    for folder in sorted(FIXTURES.iterdir()):
        config, pre = folder / "config.json", folder / "preprocessor_config.json"
        if config.exists() and pre.exists():
            size = json.loads(pre.read_text())["crop_size"]["height"]
            out[folder.name] = count(config, size)
    (FIXTURES / "flops.json").write_text(json.dumps(out, separators=(",", ":")) + "\n")
    for name, v in out.items():
        print(f"{name}: {v['size']} px, {v['flops'] / 1e9:.3f} GFLOP, {len(v['convs'])} convolutions")


if __name__ == "__main__":
    main()
