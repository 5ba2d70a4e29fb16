#!/usr/bin/env python3
"""Writes tests/fixtures/sources/: the tiny BiT of tests/fixtures/tiny in every
published form, each written by the library that publishes it, plus a few
hostile files for the converter's safety tests.

  paddlenlp/       PaddleNLP 2.8.1 save_pretrained (config.json + model_state.pdparams)
  paddle-p2/       paddle.save(protocol=2), numpy module renamed numpy._core (as numpy>=2 writes it)
  hf-bin/          torch.save(state_dict) -> pytorch_model.bin (torch's zip format)
  timm/            timm save_for_hf: model.safetensors + pytorch_model.bin with timm's names
  bit-npz/         numpy.savez with the original Big Transfer names (HWIO kernels)
  bit-npz-deflated/ the same by numpy.savez_compressed (deflated entries: the inflate path)
  zip64/           numpy.savez of the final GroupNorm's two arrays, every record in zip64 form
                   (zipfile's zip64 limits lowered to 0 while it writes)
  hostile/         pickles that call os.system / an unknown global, an npz with an object array

Every folder except hostile/ carries the tiny model's config.json and
preprocessor_config.json (PaddleNLP's own config.json in paddlenlp/).

Run with the project venv (torch, timm, numpy, safetensors, paddlepaddle, paddlenlp):
  /work/venv/bin/python tools/make_source_fixtures.py
PaddleNLP 2.8.1 does not import beside transformers 5 / datasets 5 (huggingface_hub
and pyarrow versions): its package __init__s are bypassed and the few missing
names stubbed, so BitForImageClassification and save_pretrained are PaddleNLP's own.
The script checks that every form computes the same logits as transformers.
"""
import json
import os
import pickle
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests/fixtures/tiny"
OUT = ROOT / "tests/fixtures/sources"


def tiny_state():
    return load_file(str(TINY / "model.safetensors"))


def with_configs(folder: Path, config=True):
    folder.mkdir(parents=True, exist_ok=True)
    if config:
        shutil.copy(TINY / "config.json", folder / "config.json")
    shutil.copy(TINY / "preprocessor_config.json", folder / "preprocessor_config.json")


def hf_logits(x):
    from transformers import BitForImageClassification

    model = BitForImageClassification.from_pretrained(str(TINY)).eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).logits.numpy()


def import_paddlenlp_bit():
    import importlib
    import re

    import huggingface_hub

    if not hasattr(huggingface_hub, "repo_type_and_id_from_hf_id"):
        huggingface_hub.repo_type_and_id_from_hf_id = lambda *a, **k: (None, None, None)
    root = Path(importlib.util.find_spec("paddlenlp").origin).parent
    for name, path in [("paddlenlp", root), ("paddlenlp.transformers", root / "transformers"), ("paddlenlp.datasets", root / "datasets")]:
        m = types.ModuleType(name)
        m.__path__ = [str(path)]
        sys.modules[name] = m
    sys.modules["paddlenlp"].__version__ = "2.8.1"
    for _ in range(30):
        try:
            from paddlenlp.transformers.bit.configuration import BitConfig
            from paddlenlp.transformers.bit.modeling import BitForImageClassification

            return BitConfig, BitForImageClassification
        except ImportError as e:
            m = re.match(r"cannot import name '(\w+)' from '([\w\.]+)'", str(e))
            if not m:
                raise
            setattr(importlib.import_module(m.group(2)), m.group(1), type(m.group(1), (), {}))
            for k in list(sys.modules):
                if k.startswith("paddlenlp.") and k not in ("paddlenlp.transformers", "paddlenlp.datasets"):
                    del sys.modules[k]
    raise RuntimeError("cannot import PaddleNLP's BiT")


def paddle_forms(state, x, expected):
    import paddle

    BitConfig, BitForImageClassification = import_paddlenlp_bit()
    hf_config = json.loads((TINY / "config.json").read_text())
    keep = ["depths", "hidden_sizes", "embedding_size", "num_groups", "layer_type", "global_padding",
            "embedding_dynamic_padding", "output_stride", "width_factor", "hidden_act", "drop_path_rate",
            "num_channels", "id2label", "stage_names", "architectures", "model_type"]
    config = BitConfig(**{k: hf_config[k] for k in keep if k in hf_config})
    model = BitForImageClassification(config)
    params = {k: (v.T.copy() if k == "classifier.1.weight" else v) for k, v in state.items()}
    missing, unexpected = model.set_state_dict(params)
    assert not missing and not unexpected, (missing, unexpected)
    model.eval()
    got = model(paddle.to_tensor(x))
    got = (got[0] if isinstance(got, (tuple, list)) else getattr(got, "logits", got)).numpy()
    assert np.abs(got - expected).max() < 1e-4, np.abs(got - expected).max()

    folder = OUT / "paddlenlp"
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(str(folder))
    shutil.copy(TINY / "preprocessor_config.json", folder / "preprocessor_config.json")
    assert (folder / "model_state.pdparams").exists(), list(folder.iterdir())

    for protocol in (2,):
        folder = OUT / f"paddle-p{protocol}"
        shutil.rmtree(folder, ignore_errors=True)
        with_configs(folder)
        paddle.save(model.state_dict(), str(folder / "model_state.pdparams"), protocol=protocol)
        if protocol == 2:
            # numpy>=2 writes numpy._core.multiarray; protocol 2 names globals in text, so this is the exact rewrite.
            p = folder / "model_state.pdparams"
            data = p.read_bytes()
            assert b"numpy.core.multiarray\n" in data
            p.write_bytes(data.replace(b"numpy.core.multiarray\n", b"numpy._core.multiarray\n"))


def timm_model():
    from functools import partial

    from timm.layers import GroupNormAct, StdConv2d
    from timm.models.resnetv2 import ResNetV2

    c = json.loads((TINY / "config.json").read_text())
    return ResNetV2(
        layers=c["depths"], channels=tuple(c["hidden_sizes"]), num_classes=len(c["id2label"]), stem_chs=c["embedding_size"],
        stem_type="fixed", conv_layer=partial(StdConv2d, eps=1e-8), norm_layer=partial(GroupNormAct, num_groups=c["num_groups"]),
    ).eval()


def hf_to_timm(name):
    if name == "bit.embedder.convolution.weight":
        return "stem.conv.weight"
    if name.startswith("bit.encoder.stages."):
        return "stages." + name[len("bit.encoder.stages."):].replace(".layers.", ".blocks.", 1)
    if name.startswith("bit."):
        return name[4:]
    return name.replace("classifier.1.", "head.fc.")


def timm_form(state, x, expected):
    from timm.models._hub import save_for_hf

    model = timm_model()
    sd = {}
    for k, v in state.items():
        t = torch.from_numpy(v)
        sd[hf_to_timm(k)] = t[:, :, None, None] if k == "classifier.1.weight" else t
    model.load_state_dict(sd, strict=True)
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    assert np.abs(got - expected).max() < 1e-4, np.abs(got - expected).max()
    tmp = OUT / "timm.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.pretrained_cfg = {"architecture": "resnetv2_tiny_bit", "num_classes": model.num_classes, "input_size": (3, 64, 64),
                            "interpolation": "bilinear", "mean": (0.5,) * 3, "std": (0.5,) * 3, "crop_pct": 1.0}
    save_for_hf(model, str(tmp), safe_serialization="both")
    folder = OUT / "timm"
    shutil.rmtree(folder, ignore_errors=True)
    with_configs(folder)
    # timm's own config.json names the architecture; the tiny model is no published one,
    # so the folder carries the tiny BiT config instead (a real timm folder is recognised).
    shutil.move(str(tmp / "model.safetensors"), folder / "model.safetensors")
    shutil.move(str(tmp / "pytorch_model.bin"), folder / "pytorch_model.bin")
    shutil.rmtree(tmp)


def hf_bin_form():
    from transformers import BitForImageClassification

    model = BitForImageClassification.from_pretrained(str(TINY))
    folder = OUT / "hf-bin"
    shutil.rmtree(folder, ignore_errors=True)
    with_configs(folder)
    # transformers 5 saves safetensors only; pytorch_model.bin is what it used to write: torch.save(state_dict).
    torch.save(model.state_dict(), folder / "pytorch_model.bin")


def hf_to_bit(name, v):
    """Original Big Transfer names and TensorFlow layouts (timm's _load_weights, inverted)."""
    hwio = lambda w: np.ascontiguousarray(w.transpose(2, 3, 1, 0))
    if name == "bit.embedder.convolution.weight":
        return "resnet/root_block/standardized_conv2d/kernel", hwio(v)
    if name == "bit.norm.weight":
        return "resnet/group_norm/gamma", v
    if name == "bit.norm.bias":
        return "resnet/group_norm/beta", v
    if name == "classifier.1.weight":
        return "resnet/head/conv2d/kernel", np.ascontiguousarray(v.T[None, None])
    if name == "classifier.1.bias":
        return "resnet/head/conv2d/bias", v
    _, _, _, i, _, j, leaf = name.split(".", 6)
    unit = f"resnet/block{int(i) + 1}/unit{int(j) + 1:02d}/"
    leaves = {
        "downsample.conv.weight": "a/proj/standardized_conv2d/kernel", "conv1.weight": "a/standardized_conv2d/kernel",
        "conv2.weight": "b/standardized_conv2d/kernel", "conv3.weight": "c/standardized_conv2d/kernel",
        "norm1.weight": "a/group_norm/gamma", "norm1.bias": "a/group_norm/beta", "norm2.weight": "b/group_norm/gamma",
        "norm2.bias": "b/group_norm/beta", "norm3.weight": "c/group_norm/gamma", "norm3.bias": "c/group_norm/beta",
    }
    return unit + leaves[leaf], (hwio(v) if v.ndim == 4 else v)


def bit_npz_form(state, x, expected):
    arrays = dict(hf_to_bit(k, v) for k, v in state.items())
    folder = OUT / "bit-npz"
    shutil.rmtree(folder, ignore_errors=True)
    with_configs(folder)
    np.savez(folder / "BiT-M-R50x1-tiny.npz", **arrays)
    # Check the layout the way timm reads the original release (resnetv2._load_weights).
    from timm.models.resnetv2 import _load_weights

    model = timm_model()
    with torch.no_grad():
        _load_weights(model, str(folder / "BiT-M-R50x1-tiny.npz"))
        got = model(torch.from_numpy(x)).numpy()
    assert np.abs(got - expected).max() < 1e-4, np.abs(got - expected).max()


def deflated_and_zip64_forms(state):
    import zipfile

    arrays = dict(hf_to_bit(k, v) for k, v in state.items())
    folder = OUT / "bit-npz-deflated"
    shutil.rmtree(folder, ignore_errors=True)
    with_configs(folder)
    np.savez_compressed(folder / "BiT-M-R50x1-tiny.npz", **arrays)
    with zipfile.ZipFile(folder / "BiT-M-R50x1-tiny.npz") as z:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in z.infolist())
    folder = OUT / "zip64"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    small = {k: v for k, v in arrays.items() if k.startswith("resnet/group_norm/")}
    assert len(small) == 2
    limits = zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT
    zipfile.ZIP64_LIMIT = zipfile.ZIP_FILECOUNT_LIMIT = 0
    try:
        np.savez(folder / "group-norm.npz", **small)
    finally:
        zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = limits
    data = (folder / "group-norm.npz").read_bytes()
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data  # zip64 end record and locator
    with np.load(folder / "group-norm.npz") as z:
        assert all(np.array_equal(z[k], v) for k, v in small.items())


class _System:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/bit50-pwned",))


def hostile_forms(state):
    folder = OUT / "hostile"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    small = {"bit.norm.bias": state["bit.norm.bias"]}
    (folder / "os-system.pdparams").write_bytes(pickle.dumps({"bit.norm.bias": _System()}, protocol=4))
    import fractions

    (folder / "unknown-global.pdparams").write_bytes(pickle.dumps({**small, "x": fractions.Fraction(1, 3)}, protocol=2))
    np.savez(folder / "object-array.npz", weights=np.array([{"a": 1}, None], dtype=object))


def main():
    state = tiny_state()
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)
    expected = hf_logits(x)
    hf_bin_form()
    timm_form(state, x, expected)
    bit_npz_form(state, x, expected)
    deflated_and_zip64_forms(state)
    hostile_forms(state)
    paddle_forms(state, x, expected)
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            print(f"{p.stat().st_size:>8}  {p.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
