#!/usr/bin/env python3
"""Pickles in the forms the weight readers must read, with what torch and Python read back (run by hand).

Run from the repository root with the environment of tools/requirements.txt:

    python tools/make_pickle_fixtures.py

It (re)writes, deterministically, under tests/fixtures/sources/pickles/:
  torch-forms.pt       torch.save of tensors as checkpoints hold them and as they can be: f64, f16 and bf16
                       storages, a transposed view, a strided slice at an offset, views sharing one storage,
                       an expanded tensor (stride 0), an empty and a 0-d tensor, an nn.Parameter, and 300
                       more tensors, so that the memo's keys pass 255 (LONG_BINPUT / LONG_BINGET);
  numpy-protocol{2,3,4}.pkl
                       pickle.dumps of a dict of numpy arrays (PaddlePaddle's .pdparams) at each protocol:
                       f2, f4, f8, big-endian f4, 0-d and empty arrays, and paddle's
                       StructuredToParameterName@@ entry (skipped by the reader);
  python2.pkl          the same array as Python 2 pickled it (strings and data as SHORT_BINSTRING);
  opcodes.pkl          a hand-written pickle of one array whose shape is built with LONG1, LONG4 and DUP,
                       and a skipped list built with APPENDS and LIST: opcodes Python reads that pickle.dumps does
                       not write;
  expected.json        {file: {name: {"shape": [...], "values": [...]}}} as torch.load / pickle.loads give
                       them, values as float32.
tests/converters.rs reads each file with the converter's reader and compares every value exactly.
"""
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "sources" / "pickles"


def as_expected(tensors):
    out = {}
    for name, t in tensors.items():
        a = t.detach().float().contiguous().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, dtype=np.float32)
        out[name] = {"shape": list(a.shape), "values": [float(v) for v in a.astype(np.float32).reshape(-1)]}
    return out


def torch_forms():
    g = torch.Generator().manual_seed(7)
    base = torch.randn(6, 10, generator=g)
    tensors = {
        "f32": torch.randn(3, 4, generator=g),
        "f64": torch.randn(5, dtype=torch.float64, generator=g),
        "f16": torch.randn(2, 3, generator=g).half(),
        "bf16": torch.randn(7, generator=g).bfloat16(),
        "base": base,
        "transposed": base.t(),
        "sliced": base[1:5, 2::3],
        "row": base[2],
        "expanded": torch.randn(3, 1, generator=g).expand(3, 4),
        "empty": torch.zeros(0, 3),
        "scalar": torch.tensor(2.5),
        "parameter": torch.nn.Parameter(torch.randn(2, 2, generator=g)),
    }
    for i in range(300):
        tensors[f"many.{i}"] = torch.full((1,), float(i))
    path = OUT / "torch-forms.pt"
    torch.save(tensors, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["transposed"].stride() == (1, 10) and loaded["sliced"].storage_offset() == 12
    assert loaded["expanded"].stride() == (1, 0)
    return as_expected(loaded)


def numpy_forms():
    rng = np.random.default_rng(11)
    arrays = {
        "f4": rng.standard_normal((3, 5)).astype("<f4"),
        "f2": rng.standard_normal((4,)).astype("<f2"),
        "f8": rng.standard_normal((2, 2, 2)).astype("<f8"),
        "big_endian": rng.standard_normal((6,)).astype(">f4"),
        "scalar": np.array(1.25, dtype="<f4"),
        "empty": np.zeros((0, 4), dtype="<f4"),
    }
    state = dict(arrays)
    state["StructuredToParameterName@@"] = {name: f"param_{i}" for i, name in enumerate(arrays)}
    expected = {}
    for protocol in (2, 3, 4):
        name = f"numpy-protocol{protocol}.pkl"
        data = pickle.dumps(state, protocol=protocol)
        (OUT / name).write_bytes(data)
        loaded = pickle.loads(data)
        expected[name] = as_expected({k: v for k, v in loaded.items() if k != "StructuredToParameterName@@"})
    return expected


def opcodes():
    # {"StructuredToParameterName@@": [1, 2, 3, [4]], "w": array of shape (2, 2) from 4 f4 values}
    values = np.array([0.5, -1.5, 2.25, 1e-3], dtype="<f4")
    p = b"\x80\x02}(" + b"X\x1b\x00\x00\x00StructuredToParameterName@@"
    p += b"](K\x01K\x02K\x03e" + b"(K\x04la"  # [1, 2, 3] by APPENDS, then [4] by LIST, APPENDed
    p += b"X\x01\x00\x00\x00w"
    p += b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R("
    # BUILD's state, (version, shape, dtype, fortran, data): the version as LONG4 1, the shape
    # (2, 2) as LONG1 2, DUP, TUPLE2.
    p += b"\x8b\x01\x00\x00\x00\x01" + b"\x8a\x01\x02" + b"2" + b"\x86"
    p += b"cnumpy\ndtype\nX\x02\x00\x00\x00f4\x89\x88\x87R(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    p += b"\x89C" + bytes([values.nbytes]) + values.tobytes() + b"tb"
    p += b"u."
    loaded = pickle.loads(p)
    assert loaded["StructuredToParameterName@@"] == [1, 2, 3, [4]] and loaded["w"].shape == (2, 2)
    (OUT / "opcodes.pkl").write_bytes(p)
    # Python 2's form: every string a SHORT_BINSTRING, the array's data too (Python 3 reads it with
    # encoding="latin1").
    p2 = b"\x80\x02}(" + b"U\x01w"
    p2 += b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R("
    p2 += b"K\x01K\x04\x85cnumpy\ndtype\nU\x02f4\x89\x88\x87R(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    p2 += b"\x89U" + bytes([values.nbytes]) + values.tobytes() + b"tb"
    p2 += b"u."
    python2 = pickle.loads(p2, encoding="latin1")
    (OUT / "python2.pkl").write_bytes(p2)
    return {"opcodes.pkl": as_expected({"w": loaded["w"]}), "python2.pkl": as_expected(python2)}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    expected = {"torch-forms.pt": torch_forms(), **numpy_forms(), **opcodes()}
    (OUT / "expected.json").write_text(json.dumps(expected, separators=(",", ":")) + "\n")
    for f, tensors in expected.items():
        print(f"{f}: {len(tensors)} tensors, {(OUT / f).stat().st_size} bytes")


if __name__ == "__main__":
    main()
