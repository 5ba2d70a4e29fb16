#!/usr/bin/env python3
"""Export a BiT model (Hugging Face folder) to ONNX for the browser benchmark's peer, ONNX Runtime Web.

    /work/venv/bin/python tools/export_onnx.py SRC [--out DIR] [--size N] [--match-f16] [--image PHOTO ...]

SRC is a Hugging Face folder that transformers.BitForImageClassification loads, e.g. the seeded
random weights of `bit50 random-model --out target/bench/bit50-seed0 --seed 0`.

What it writes into DIR (default www/models/onnx/<SRC name>/, git-ignored):
  model.onnx             opset 17, input `pixel_values` float32 [1, 3, N, N], output `logits` float32
                         [1, classes]; every weight-standardized convolution is a plain Conv whose
                         weights are the standardized ones (computed once here in float64, exactly as
                         `bit50 convert` does), so ORT runs no standardization at inference time.
  <photo>.pixels.f32     for each --image: the preprocessed input (transformers' PIL-path
                         BitImageProcessor with SRC's preprocessor_config.json), raw little-endian
                         float32, 1x3xNxN; <photo>.pixels.npy is the same tensor for
                         `bit50 classify --pixels`.
                         Each zero Pad before a MaxPool pads with -0.0 instead of 0.0 (identical
                         results) so that ORT Web's PadFusion cannot fold it into the MaxPool's
                         -inf padding (a wrong result in onnxruntime-web 1.30; see guard_pad_maxpool).
  reference.json         size, names, and per photo the logits of transformers (the original model)
                         and of onnxruntime (CPU) on model.onnx; read by www/bench.html.

--match-f16 rounds every parameter (after standardization) to float16 and back, as
`bit50 convert --dtype f16` stores them, so that the peer computes exactly what our f16 web model
computes and the logit comparison in the benchmark measures arithmetic, not weight rounding.

Checks (exits 1 if one fails), tolerance 1e-4 * max(1, max|logit|):
  1. the plain-conv torch model (pre-standardized f32 weights) against transformers' own model;
  2. onnxruntime (CPU) on model.onnx against the torch model it was exported from
     (with --match-f16: the rounded one). The difference to transformers is printed either way.

Needs torch, transformers (5.x or 4.x), onnx and onnxruntime: /work/venv/bin/pip install onnx onnxruntime
"""

import argparse
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import transformers
from transformers import BitForImageClassification
from transformers.models.bit import modeling_bit

try:  # transformers 5.x: the PIL/numpy path is its own class
    from transformers import BitImageProcessorPil as PilProcessor
except ImportError:  # transformers 4.x
    from transformers import BitImageProcessor as PilProcessor

ROOT = Path(__file__).resolve().parent.parent


def plain_forward(self, hidden_state):
    """WeightStandardizedConv2d.forward without the standardization (weights already standardized)."""
    if self.pad is not None:
        hidden_state = self.pad(hidden_state)
    return F.conv2d(hidden_state, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def prestandardize(model) -> int:
    """Replaces each WS conv's weight by its standardized version and makes it a plain conv."""
    n = 0
    for name, m in model.named_modules():
        if isinstance(m, modeling_bit.WeightStandardizedConv2d):
            w = m.weight.detach().to(torch.float64)
            flat = w.reshape(w.shape[0], -1)
            mean = flat.mean(dim=1, keepdim=True)
            var = ((flat - mean) ** 2).mean(dim=1, keepdim=True)  # biased, as batch_norm in training mode
            std = ((flat - mean) / torch.sqrt(var + m.eps)).reshape_as(w)
            if m.eps != 1e-8:
                print(f"note: {name} has eps {m.eps} (bit50 convert uses 1e-8)", file=sys.stderr)
            with torch.no_grad():
                m.weight.copy_(std.to(torch.float32))
            m.forward = types.MethodType(plain_forward, m)
            n += 1
    return n


def round_f16(model):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.float16).to(torch.float32))


def guard_pad_maxpool(path: Path) -> int:
    """Sets the value of each zero Pad that feeds a MaxPool to -0.0 (the same arithmetic).

    ONNX Runtime's PadFusion (onnxruntime-web 1.30, all optimization levels above 'disabled')
    folds Pad(constant 0) into the MaxPool's own padding, which pads with -inf: that changes the
    stem's max pool at the borders (logits off by ~3% on the tiny model). It folds only a value
    equal to +0.0 bit for bit; -0.0 is equal in every comparison and sum, so the model computes
    exactly the same and ORT keeps all its other optimizations.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    g = model.graph
    consumers = {}
    for node in g.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    constants = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
    inits = {t.name: t for t in g.initializer}
    neg_zero = numpy_helper.from_array(np.array(-0.0, dtype=np.float32))
    changed = 0
    for node in list(g.node):
        if node.op_type != "Pad" or not any(c.op_type == "MaxPool" for c in consumers.get(node.output[0], [])):
            continue
        mode = next((a.s for a in node.attribute if a.name == "mode"), b"constant")
        if mode != b"constant":
            continue
        value = node.input[2] if len(node.input) > 2 else ""
        if not value:  # no value given: 0.0
            neg_zero.name = f"{node.name or node.output[0]}_neg_zero"
            g.initializer.append(neg_zero)
            while len(node.input) < 3:
                node.input.append("")
            node.input[2] = neg_zero.name
        elif value in constants:
            attr = constants[value].attribute[0]
            assert float(numpy_helper.to_array(attr.t)) == 0.0, "a non-zero Pad before MaxPool"
            neg_zero.name = attr.t.name
            attr.t.CopyFrom(neg_zero)
        elif value in inits:
            assert float(numpy_helper.to_array(inits[value])) == 0.0, "a non-zero Pad before MaxPool"
            neg_zero.name = value
            inits[value].CopyFrom(neg_zero)
        else:
            raise SystemExit(f"Pad {node.name}: its value {value} is neither a Constant nor an initializer")
        changed += 1
    onnx.save(model, str(path))
    return changed


class Logits(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model(pixel_values=pixel_values).logits


def tol(ref: np.ndarray) -> float:
    return 1e-4 * max(1.0, float(np.abs(ref).max()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", type=Path, help="Hugging Face folder (config.json, model.safetensors, preprocessor_config.json)")
    ap.add_argument("--out", type=Path, help="output folder (default www/models/onnx/<SRC name>)")
    ap.add_argument("--size", type=int, help="input size N (default: the processor's crop size, 448 for BiT-50)")
    ap.add_argument("--match-f16", action="store_true", help="round parameters to float16 as `bit50 convert --dtype f16`")
    ap.add_argument("--image", action="append", default=[], type=Path, help="photo to preprocess (repeatable)")
    ap.add_argument("--opset", type=int, default=17)
    args = ap.parse_args()

    out = args.out or ROOT / "www" / "models" / "onnx" / args.src.resolve().name
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    model = BitForImageClassification.from_pretrained(args.src).eval()
    processor = PilProcessor.from_pretrained(args.src)
    size = args.size or int(processor.crop_size["height"])
    if args.size and args.size != processor.crop_size["height"]:
        processor.size = {"shortest_edge": size}
        processor.crop_size = {"height": size, "width": size}

    # Inputs: the photos, preprocessed; plus a seeded random tensor for the checks when none given.
    from PIL import Image

    inputs = {}
    for path in args.image:
        pv = processor(images=Image.open(path), return_tensors="np")["pixel_values"].astype(np.float32)
        assert pv.shape == (1, 3, size, size), pv.shape
        inputs[path.stem] = pv
    if not inputs:
        inputs["random"] = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)

    with torch.no_grad():
        ref = {k: model(pixel_values=torch.from_numpy(v)).logits.numpy() for k, v in inputs.items()}

    n = prestandardize(model)
    failed = False
    with torch.no_grad():
        for k, v in inputs.items():
            got = model(pixel_values=torch.from_numpy(v)).logits.numpy()
            d = float(np.abs(got - ref[k]).max())
            ok = d <= tol(ref[k])
            failed |= not ok
            print(f"check 1 {k}: pre-standardized torch vs transformers: max |diff| {d:.3g} ({'ok' if ok else 'FAILED'}, tol {tol(ref[k]):.3g})")
    if args.match_f16:
        round_f16(model)

    onnx_path = out / "model.onnx"
    example = torch.from_numpy(next(iter(inputs.values())))
    torch.onnx.export(
        Logits(model).eval(),
        (example,),
        str(onnx_path),
        input_names=["pixel_values"],
        output_names=["logits"],
        opset_version=args.opset,
        do_constant_folding=True,
        dynamo=False,
    )
    import onnx
    import onnxruntime as ort

    n_pads = guard_pad_maxpool(onnx_path)
    onnx.checker.check_model(str(onnx_path))
    ops = sorted({node.op_type for node in onnx.load(str(onnx_path)).graph.node})
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB, {n} convs pre-standardized, {n_pads} Pad->MaxPool given value -0.0, ops: {', '.join(ops)})")

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    report = {
        "generated_by": {"torch": torch.__version__, "transformers": transformers.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__},
        "source": str(args.src),
        "size": size,
        "match_f16": args.match_f16,
        "input": "pixel_values",
        "output": "logits",
        "model": "model.onnx",
        "images": {},
    }
    for k, v in inputs.items():
        with torch.no_grad():
            want = model(pixel_values=torch.from_numpy(v)).logits.numpy()
        got = sess.run(["logits"], {"pixel_values": v})[0]
        d = float(np.abs(got - want).max())
        ok = d <= tol(want)
        failed |= not ok
        dt = float(np.abs(got - ref[k]).max())
        print(f"check 2 {k}: onnxruntime vs exported torch model: max |diff| {d:.3g} ({'ok' if ok else 'FAILED'}); vs transformers: {dt:.3g}; top-1 {int(got.argmax())} (transformers {int(ref[k].argmax())})")
        entry = {"logits_transformers": ref[k][0].tolist(), "logits_onnxruntime": got[0].tolist()}
        if k != "random" or args.image:
            v.astype("<f4").tofile(out / f"{k}.pixels.f32")
            np.save(out / f"{k}.pixels.npy", v)
            entry["pixels"] = f"{k}.pixels.f32"
        report["images"][k] = entry
    (out / "reference.json").write_text(json.dumps(report))
    print(f"wrote {out / 'reference.json'}")
    if failed:
        print("FAILED: the exported model does not compute what transformers computes", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
