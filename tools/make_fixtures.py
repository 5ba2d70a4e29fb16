#!/usr/bin/env python3
"""Generate the committed test fixtures of the bit50 crate (run by hand, not in CI).

Run from the repository root with the pinned environment of tools/requirements.txt:

    python tools/make_fixtures.py

It (re)writes, deterministically:
  assets/google-bit-50/config.json, preprocessor_config.json   google/bit-50's published config files
  tests/fixtures/photos/*                                       small test photos from scikit-image's data
  tests/fixtures/tiny/{config.json,model.safetensors,preprocessor_config.json}
                                                                a tiny BiT (seeded weights, seed 1), 64x64 input
  tests/fixtures/tiny/pil/*.png, *.npy                          the PIL-path processor's output per photo
  tests/fixtures/tiny/expected.json                             HF transformers' logits and intermediate stats
  tests/fixtures/full/pil/*.png, expected.json                  the same for google/bit-50's architecture with
                                                                seeded weights (seed 0, not saved: the Rust side
                                                                regenerates them), 448x448 input
  tests/fixtures/full224/, full200/                             the same seeded google/bit-50 (seed 0) at input 224
                                                                and 200 (odd stage sizes 50, 25, 13, 7), with their
                                                                preprocessor_config.json (shortest_edge = crop = size)
                                                                and pil/*.png crops; same expected.json schema

Every input entry of expected.json ("uniform" and each photo) also holds "cam": the class activation map of its
top-1 class, einsum('chw,c->hw', BitModel.last_hidden_state[0], classifier.1.weight[class]) computed by torch on
transformers' own last_hidden_state (after the final GroupNorm+ReLU, bit.norm), with fields
  class, height, width, bias (= classifier.1.bias[class]), logit (= logits[class]), data (h*w floats, row-major),
  mean_plus_bias_minus_logit (mean(data) + bias - logit, in float64: float32 rounding only),
  data_max_abs_err_vs_f64 (the same map from a float64 run of the model: the float32 noise floor).

The weights come from a counter-based generator (splitmix64 finalizer over an FNV-1a stream key per tensor
name) that the Rust side reimplements bit for bit; expected.json holds a sha256 per generated tensor to prove it.
Nothing is downloaded: google/bit-50's real weights are not used.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never touch the hub
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import copy
import hashlib
import importlib.metadata
import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

import PIL
import safetensors
import skimage
import skimage.data
import transformers
from transformers import BitConfig, BitForImageClassification
from transformers.image_utils import load_image

try:  # transformers 5.x: the PIL/numpy path is its own class; BitImageProcessor is the torchvision backend
    from transformers import BitImageProcessorPil as PilProcessor
except ImportError:  # transformers 4.x: BitImageProcessor is the PIL/numpy path
    from transformers import BitImageProcessor as PilProcessor

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets" / "google-bit-50"
FIX = ROOT / "tests" / "fixtures"
PHOTOS = FIX / "photos"

MASK = (1 << 64) - 1
GAMMA = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
CHUNK = 1 << 20  # elements per vectorized block

# ----------------------------------------------------------------------------------------------------------------
# Deterministic generator (mirrored bit for bit by the Rust test code)


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & MASK
    return h


def stream(seed: int, name: str) -> int:
    return (seed ^ fnv1a64(name.encode("utf-8"))) & MASK


def mix(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * M1
    z = (z ^ (z >> np.uint64(27))) * M2
    return z ^ (z >> np.uint64(31))


def uniform_at(s: int, idx: np.ndarray) -> np.ndarray:
    """uniform(s, i) for a uint64 array of i: float64 in [0, 1), multiples of 2^-24."""
    z = np.uint64(s) + (idx + np.uint64(1)) * GAMMA
    return (mix(z) >> np.uint64(40)).astype(np.float64) * (2.0**-24)


def uniforms(s: int, count: int) -> np.ndarray:
    out = np.empty(count, dtype=np.float64)
    for start in range(0, count, CHUNK):
        stop = min(count, start + CHUNK)
        out[start:stop] = uniform_at(s, np.arange(start, stop, dtype=np.uint64))
    return out


def normals(s: int, count: int) -> np.ndarray:
    """normal(s, i) = (0.0 + u[12i] + ... + u[12i+11]) - 6.0, summed in that order, float64."""
    out = np.empty(count, dtype=np.float64)
    for start in range(0, count, CHUNK):
        stop = min(count, start + CHUNK)
        base = np.arange(start, stop, dtype=np.uint64) * np.uint64(12)
        acc = np.zeros(stop - start, dtype=np.float64)
        for k in range(12):
            acc = acc + uniform_at(s, base + np.uint64(k))
        out[start:stop] = acc - 6.0
    return out


def gen_tensor(seed: int, name: str, shape) -> np.ndarray:
    """float32 tensor for one state-dict entry (rules of the brief / spec §8)."""
    count = int(np.prod(shape))
    n = normals(stream(seed, name), count).reshape(shape)
    leaf = name.split(".")
    if name.endswith("weight") and len(shape) == 4:  # every conv
        fan_in = shape[1] * shape[2] * shape[3]
        v = math.sqrt(2.0 / fan_in) * n
    elif name == "classifier.1.weight":
        rows, cols = shape
        acc = np.zeros(rows, dtype=np.float64)
        for c in range(cols):  # sequential sum, column order (not np.mean's pairwise sum)
            acc = acc + n[:, c]
        m = acc / cols
        v = 0.2 * (n - m[:, None])
    elif name == "classifier.1.bias":
        v = 0.01 * n
    elif leaf[-2] in ("norm1", "norm2", "norm") and leaf[-1] in ("weight", "bias"):
        v = 1.0 + 0.1 * n if leaf[-1] == "weight" else 0.1 * n
    elif leaf[-2] == "norm3":
        v = 0.1 * (1.0 + 0.1 * n) if leaf[-1] == "weight" else 0.01 * n
    else:
        raise ValueError(f"no generation rule for {name} {shape}")
    return np.ascontiguousarray(v.astype(np.float32))


def gen_input(seed: int, shape) -> np.ndarray:
    u = uniforms(stream(seed, "input"), int(np.prod(shape)))
    return (2.0 * u - 1.0).astype(np.float32).reshape(shape)


def sha256_f32(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype="<f4").tobytes()).hexdigest()


def gen_state_dict(model, seed):
    sd, hashes = {}, {}
    for name, p in model.state_dict().items():
        a = gen_tensor(seed, name, tuple(p.shape))
        sd[name] = torch.from_numpy(a)
        hashes[name] = sha256_f32(a)
    return sd, hashes


def f32(v) -> float:
    """A float32 value as the Python float of its shortest round-trip decimal (json writes e.g. 0.15523641)."""
    x = np.float32(v)
    assert np.isfinite(x)
    d = float(str(x))
    assert np.float32(d) == x
    return d


def g17(x) -> str:
    return "%.17g" % float(x)


def generator_samples(seed, input_seed):
    name = "bit.embedder.convolution.weight"
    s = stream(seed, name)
    n = normals(s, 4)
    si = stream(input_seed, "input")
    return {
        "fnv1a64(" + name + ")": "0x%016x" % fnv1a64(name.encode()),
        "stream(seed, " + name + ")": "0x%016x" % s,
        "uniform(stream, 0..4)": [g17(v) for v in uniforms(s, 4)],
        "normal(stream, 0..4)": [g17(v) for v in n],
        name + "[0..4] float64": [g17(v) for v in math.sqrt(2.0 / 147) * n],
        name + "[0..4] float32": [g17(np.float32(v)) for v in math.sqrt(2.0 / 147) * n],
        "stream(input_seed, input)": "0x%016x" % si,
        "input[0..4] float32": [g17(v) for v in gen_input(input_seed, (4,))],
    }


# ----------------------------------------------------------------------------------------------------------------
# Configs


def imagenet_labels():
    from timm.data import ImageNetInfo  # here, not at the top: timm needs torchvision, which the image fixtures don't

    info = ImageNetInfo()  # timm/data/_info/imagenet_synsets.txt + imagenet_synset_to_lemma.txt
    labels = [info.index_to_description(i) for i in range(1000)]
    assert labels[0] == "tench, Tinca tinca"
    assert labels[281] == "tabby, tabby cat" and labels[282] == "tiger cat"
    assert labels[134] == labels[517] == "crane"
    assert labels[999] == "toilet tissue, toilet paper, bathroom tissue"
    return labels


def write_json(path: Path, obj, sort_keys=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n")


def compact_json(o, ind=0) -> str:
    """Indented JSON with every list of numbers/strings on one line (keeps expected.json small)."""
    pad = "  " * (ind + 1)
    if isinstance(o, dict) and o:
        items = [pad + json.dumps(str(k)) + ": " + compact_json(v, ind + 1) for k, v in o.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * ind + "}"
    if isinstance(o, list) and any(isinstance(v, (dict, list)) for v in o):
        return "[\n" + ",\n".join(pad + compact_json(v, ind + 1) for v in o) + "\n" + "  " * ind + "]"
    return json.dumps(o, separators=(",", ":"), allow_nan=False)


def write_compact_json(path: Path, obj):
    text = compact_json(obj) + "\n"
    assert json.loads(text) == obj
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_full_assets():
    """google/bit-50's config.json and preprocessor_config.json in the hub's form (spec §1, §6)."""
    labels = imagenet_labels()
    id2label = {str(i): l for i, l in enumerate(labels)}
    label2id = {l: i for i, l in enumerate(labels)}  # as the converter builds it: "crane" -> 517 (999 keys)
    config = {
        "architectures": ["BitForImageClassification"],
        "conv_layer": "std_conv",
        "depths": [3, 4, 6, 3],
        "drop_path_rate": 0.0,
        "embedding_dynamic_padding": False,
        "embedding_size": 64,
        "global_padding": None,
        "hidden_act": "relu",
        "hidden_sizes": [256, 512, 1024, 2048],
        "id2label": id2label,
        "label2id": label2id,
        "layer_type": "preactivation",
        "model_type": "bit",
        "num_channels": 3,
        "num_groups": 32,
        "out_features": ["stage4"],
        "out_indices": [4],
        "output_stride": 32,
        "stage_names": ["stem", "stage1", "stage2", "stage3", "stage4"],
        "torch_dtype": "float32",
        "width_factor": 1,
    }
    pre = {
        "crop_size": {"height": 448, "width": 448},
        "do_center_crop": True,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "BitImageProcessor",
        "image_std": [0.5, 0.5, 0.5],
        "resample": 2,
        "rescale_factor": 0.00392156862745098,
        "size": {"shortest_edge": 448},
    }
    write_json(ASSETS / "config.json", config)
    write_json(ASSETS / "preprocessor_config.json", pre)


# ----------------------------------------------------------------------------------------------------------------
# Photos


def save_bytes(path: Path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def write_photos():
    d = skimage.data
    save_bytes(PHOTOS / "cat.png", encode(Image.fromarray(d.chelsea()), "PNG"))
    save_bytes(PHOTOS / "coffee.jpg", encode(Image.fromarray(d.coffee()), "JPEG", quality=90))

    upright = Image.fromarray(d.rocket())
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # 90° counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    save_bytes(PHOTOS / "rocket-exif.jpg", encode(stored, "JPEG", quality=90, exif=exif.tobytes()))
    with Image.open(PHOTOS / "rocket-exif.jpg") as im:
        assert im.getexif().get(0x0112) == 6
        assert im.size == (upright.height, upright.width), im.size
        fixed = np.asarray(ImageOps.exif_transpose(im).convert("RGB"), dtype=np.float64)
    ref = np.asarray(upright, dtype=np.float64)
    assert fixed.shape == ref.shape, (fixed.shape, ref.shape)
    err_ok = np.abs(fixed - ref).mean()
    err_flip = np.abs(fixed - ref[::-1, ::-1]).mean()
    assert err_ok < 3.0 and err_flip > 5 * err_ok, (err_ok, err_flip)

    # the low bit of each colour is dropped to keep the RGBA PNG under 400 KB (512x512 is kept: a real downscale)
    astro = d.astronaut() & np.uint8(0xFE)
    h, w, _ = astro.shape
    alpha = np.round(np.linspace(255.0, 30.0, w)).astype(np.uint8)[None, :].repeat(h, axis=0)
    save_bytes(PHOTOS / "astronaut-alpha.png", encode(Image.fromarray(np.dstack([astro, alpha]), "RGBA"), "PNG"))

    save_bytes(PHOTOS / "camera-gray.png", encode(Image.fromarray(d.camera(), "L"), "PNG"))

    for p in sorted(PHOTOS.iterdir()):
        assert p.stat().st_size < 400_000, (p, p.stat().st_size)
    return ["cat.png", "coffee.jpg", "rocket-exif.jpg", "astronaut-alpha.png", "camera-gray.png"]


# ----------------------------------------------------------------------------------------------------------------
# Reference runs


def stats(t: torch.Tensor, with_values=False):
    a = t.detach().cpu().numpy().astype(np.float32)
    flat = a.reshape(-1)
    a64 = flat.astype(np.float64)
    out = {
        "shape": list(a.shape),
        "mean": float(a64.mean()),
        "std": float(a64.std()),  # population
        "absmax": float(np.abs(a64).max()),
        "sample": [f32(v) for v in flat[:16]],
    }
    if with_values:
        out["values"] = [f32(v) for v in flat]
    return out


def built_channels(model):
    """(stem width, [stage out widths]) as transformers built them (make_div, width_factor; see make_arch_fixtures.py)."""
    stem = model.bit.embedder.convolution.out_channels
    outs = [stage.layers[0].conv3.out_channels for stage in model.bit.encoder.stages]
    return stem, outs


def stage_sizes(size: int, strides=(1, 2, 2, 2)):
    """Spatial sizes [stem, stage1..] for an input of size x size (any size, not only multiples of 32):
    conv 7x7/2 pad 3 -> ceil(s/2); zero pad 1 + max pool 3x3/2 -> floor((s+2-3)/2)+1 = ceil(s/2);
    a stage of stride 2 (3x3/2 pad 1 and the 1x1/2 projection) -> ceil(s/2)."""
    s = (size - 1) // 2 + 1
    s = (s - 1) // 2 + 1
    out = [s]
    for stride in strides:
        s = (s - 1) // stride + 1
        out.append(s)
    return out


def class_activation_map(last_hidden_state, weight, cls):
    """CAM of class cls: einsum('chw,c->hw', last_hidden_state[0], classifier.weight[cls]).

    last_hidden_state is BitModel's output field of that name: modeling_bit.py (transformers 5.24) BitModel.forward
    does `last_hidden_state = encoder_outputs[0]; last_hidden_state = self.norm(last_hidden_state)` with
    self.norm = BitGroupNormActivation(hidden_sizes[-1]) (GroupNorm + ReLU, layer_type "preactivation"), and pools
    that same tensor (`pooled_output = self.pooler(last_hidden_state)`). So mean over (h, w) of the map plus
    classifier.1.bias[cls] is logits[cls]."""
    return torch.einsum("chw,c->hw", last_hidden_state[0], weight[cls])


def run_model(model, x: torch.Tensor, cfg, model64):
    x = x.contiguous()  # NCHW-contiguous: a channels-last input takes another conv path (logits move ~5e-5)
    captured = {}
    hooks = [
        getattr(model.bit, k).register_forward_hook(lambda m, i, o, k=k: captured.__setitem__(k, o))
        for k in ("embedder", "norm", "pooler")
    ]
    hooks.append(model.bit.register_forward_hook(lambda m, i, o: captured.__setitem__("bit", o)))
    try:
        with torch.no_grad():
            out = model(pixel_values=x, output_hidden_states=True, return_dict=True)
    finally:
        for h in hooks:
            h.remove()
    captured["pooled"] = captured.pop("pooler")
    hs = out.hidden_states
    n, _, hgt, wid = x.shape
    assert hgt == wid, x.shape
    stem_ch, outs = built_channels(model)
    assert len(hs) == len(outs) + 1, len(hs)
    sizes = stage_sizes(hgt, [stage.layers[0].conv2.stride[0] for stage in model.bit.encoder.stages])
    # hidden_states[0] is the input of stage 1 = the embedder output (conv 7x7/2, pad, max pool 3x3/2)
    assert tuple(hs[0].shape) == (n, stem_ch, sizes[0], sizes[0]), hs[0].shape
    assert torch.equal(hs[0], captured["embedder"])
    for k in range(len(outs)):  # hidden_states[k + 1] = output of stage k + 1
        assert tuple(hs[k + 1].shape) == (n, outs[k], sizes[k + 1], sizes[k + 1]), hs[k + 1].shape
    logits = out.logits[0]
    captured64 = {}
    hook64 = model64.bit.register_forward_hook(lambda m, i, o: captured64.__setitem__("bit", o))
    try:
        with torch.no_grad():
            logits64 = model64(pixel_values=x.double()).logits[0]
    finally:
        hook64.remove()
    res = {
        # float32 noise floor: how far these float32 logits are from a float64 run of the same model and input
        "logits_max_abs_err_vs_f64": float((logits.double() - logits64).abs().max()),
        "logits": [f32(v) for v in logits],
        "top5": [int(i) for i in torch.topk(logits, 5).indices],
        "stats": {
            "stem": stats(hs[0]),
            **{f"stage{k}": stats(hs[k]) for k in range(1, len(hs))},
            "norm": stats(captured["norm"]),
            "pooled": stats(captured["pooled"], with_values=True),
        },
    }
    # consistency: classifier on the pooled features
    w = model.classifier[1].weight.detach()
    b = model.classifier[1].bias.detach()
    again = captured["pooled"].flatten(1) @ w.T + b
    assert torch.allclose(again[0], logits, atol=1e-5)

    # class activation map of the top-1 class, from BitModel's own last_hidden_state
    lhs = captured["bit"].last_hidden_state
    assert torch.equal(lhs, captured["norm"])  # last_hidden_state is the bit.norm (GroupNorm+ReLU) output
    cls = res["top5"][0]
    assert cls == int(torch.argmax(logits))
    cam = class_activation_map(lhs, w, cls)
    lhs64 = captured64["bit"].last_hidden_state
    w64 = model64.classifier[1].weight.detach()
    cam64 = class_activation_map(lhs64, w64, cls)
    h, wd = cam.shape
    assert (h, wd) == (sizes[4], sizes[4])
    mean_plus_bias = float(cam.double().mean() + b[cls].double())
    assert abs(mean_plus_bias - float(logits[cls])) < 1e-5 * max(1.0, abs(float(logits[cls]))), (
        mean_plus_bias, float(logits[cls]))
    res["cam"] = {
        "class": cls,
        "height": int(h),
        "width": int(wd),
        "bias": f32(b[cls]),
        "logit": f32(logits[cls]),
        "mean_plus_bias_minus_logit": mean_plus_bias - float(logits[cls]),
        "data_max_abs_err_vs_f64": float((cam.double() - cam64).abs().max()),
        "data": [f32(v) for v in cam.reshape(-1)],
    }
    return res


def preprocess(processor, path: Path):
    sizes = []
    orig_resize = processor.resize

    def resize(*a, **kw):
        out = orig_resize(*a, **kw)
        sizes.append((int(out.shape[-1]), int(out.shape[-2])))  # CHW -> [w, h]
        return out

    processor.resize = resize
    try:
        pv = processor(images=load_image(str(path)), return_tensors="np")["pixel_values"]
    finally:
        del processor.resize
    assert len(sizes) == 1 and pv.dtype == np.float32 and pv.shape[:2] == (1, 3), (sizes, pv.dtype, pv.shape)
    return pv, list(sizes[0])


def write_pil_png(pv: np.ndarray, path: Path):
    x = pv[0].astype(np.float64)
    k = np.round((x * 0.5 + 0.5) * 255.0)
    assert k.min() >= 0 and k.max() <= 255
    assert np.abs(x - (k / 255.0 - 0.5) / 0.5).max() < 1e-6
    img = Image.fromarray(k.astype(np.uint8).transpose(1, 2, 0), "RGB")
    save_bytes(path, encode(img, "PNG"))


def versions():
    return {
        "script": "tools/make_fixtures.py",
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "timm": importlib.metadata.version("timm"),
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "scikit-image": skimage.__version__,
        "safetensors": safetensors.__version__,
        "processor_class": PilProcessor.__name__,
        "torch_threads": torch.get_num_threads(),
        "float_format": "logits/sample/values: float32, as the shortest decimal that round-trips to it; "
        "mean/std(population)/absmax: float64 over the float32 tensor; shapes NCHW; sample = first 16 of "
        "the C-order flattening; stem = hidden_states[0] (embedder output), stageK = hidden_states[K], "
        "norm = bit.norm output (GroupNorm+ReLU), pooled = bit.pooler output; resized = [w, h] before the crop",
    }


def evaluate(model, processor, out_dir: Path, photos, input_seed, size, save_npy):
    cfg = model.config
    model64 = copy.deepcopy(model).double().eval()
    inputs = {}
    x = gen_input(input_seed, (1, 3, size, size))
    inputs["uniform"] = {"input_sha256": sha256_f32(x), **run_model(model, torch.from_numpy(x), cfg, model64)}
    for name in photos:
        pv, resized = preprocess(processor, PHOTOS / name)
        assert pv.shape == (1, 3, size, size), pv.shape
        stem = Path(name).stem
        write_pil_png(pv, out_dir / "pil" / f"{stem}.png")
        if save_npy:
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(pv, dtype="<f4"))
            save_bytes(out_dir / "pil" / f"{stem}.npy", buf.getvalue())
        inputs[name] = {
            "resized": resized,
            "input_sha256": sha256_f32(pv),
            **run_model(model, torch.from_numpy(pv), cfg, model64),
        }
    return inputs


def make_tiny(photos):
    seed, input_seed, size = 1, 101, 64
    out = FIX / "tiny"
    cfg = BitConfig(
        layer_type="preactivation",
        global_padding=None,
        embedding_dynamic_padding=False,
        num_groups=8,
        depths=[1, 1, 1, 1],
        hidden_sizes=[32, 64, 128, 256],
        embedding_size=16,
        num_labels=10,
        id2label={i: f"class {i}" for i in range(10)},
        label2id={f"class {i}": i for i in range(10)},
        architectures=["BitForImageClassification"],
    )
    model = BitForImageClassification(cfg).eval()
    sd, hashes = gen_state_dict(model, seed)
    model.load_state_dict(sd, strict=True)
    model.save_pretrained(out, safe_serialization=True)
    proc = PilProcessor(
        do_convert_rgb=True,
        do_resize=True,
        size={"shortest_edge": size},
        resample=2,
        do_center_crop=True,
        crop_size={"height": size, "width": size},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    proc.save_pretrained(out)

    # evaluate what a user of transformers gets from the saved folder
    model = BitForImageClassification.from_pretrained(out).eval()
    for k, v in model.state_dict().items():
        assert sha256_f32(v.numpy()) == hashes[k], k
    processor = PilProcessor.from_pretrained(out)
    hashes["input"] = sha256_f32(gen_input(input_seed, (1, 3, size, size)))
    res = {
        "generated_by": versions(),
        "model": "tiny",
        "seed": seed,
        "input_seed": input_seed,
        "image_size": size,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "tensor_sha256": hashes,
        "generator_samples": generator_samples(seed, input_seed),
        "inputs": evaluate(model, processor, out, photos, input_seed, size, save_npy=True),
    }
    write_compact_json(out / "expected.json", res)
    return res


def make_full(photos, size=448, name="full"):
    """google/bit-50's architecture with seeded weights (seed 0) at input size x size: `full` is the published
    448; `full224` and `full200` are the same weights at 224 and at 200 (200 -> stem 100 -> pool 50 -> stages
    50, 25, 13, 7: odd sizes, so every stride-2 layer rounds up), with the processor's size and crop set to that
    size (their preprocessor_config.json is written beside expected.json)."""
    seed, input_seed = 0, 200
    out = FIX / name
    cfg = BitConfig.from_pretrained(ASSETS)
    assert cfg.num_labels == 1000 and cfg.id2label[281] == "tabby, tabby cat"
    model = BitForImageClassification(cfg).eval()
    nparams = sum(p.numel() for p in model.parameters())
    assert nparams == 25_549_352, nparams
    assert len(model.state_dict()) == 153 and len(list(model.buffers())) == 0
    sd, hashes = gen_state_dict(model, seed)
    model.load_state_dict(sd, strict=True)
    processor = PilProcessor.from_pretrained(ASSETS)
    assert processor.size["shortest_edge"] == 448 and processor.resample == 2
    if size != 448:
        PilProcessor.from_pretrained(
            ASSETS, size={"shortest_edge": size}, crop_size={"height": size, "width": size}
        ).save_pretrained(out)
        processor = PilProcessor.from_pretrained(out)
        assert processor.size["shortest_edge"] == size and processor.crop_size["height"] == size
        assert processor.resample == 2 and list(processor.image_mean) == [0.5, 0.5, 0.5]
    hashes["input"] = sha256_f32(gen_input(input_seed, (1, 3, size, size)))
    model_desc = "google/bit-50 architecture, seeded weights (not saved)"
    if size != 448:
        model_desc += f"; {size}x{size} input, preprocessor_config.json in this folder"
    res = {
        "generated_by": versions(),
        "model": model_desc,
        "seed": seed,
        "input_seed": input_seed,
        "image_size": size,
        "num_parameters": nparams,
        "tensor_sha256": hashes,
        "generator_samples": generator_samples(seed, input_seed),
        "inputs": evaluate(model, processor, out, photos, input_seed, size, save_npy=False),
    }
    if size != 448:
        res["stage_sizes"] = stage_sizes(size)
    write_compact_json(out / "expected.json", res)
    return res


def main():
    os.chdir(ROOT)
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    write_full_assets()
    photos = write_photos()
    makers = (
        ("tiny", make_tiny),
        ("full", make_full),
        ("full224", lambda p: make_full(p, 224, "full224")),
        ("full200", lambda p: make_full(p, 200, "full200")),
    )
    for name, fn in makers:
        res = fn(photos)
        print(f"== {name}: {res['num_parameters']} parameters")
        for k, v in res["inputs"].items():
            print(f"  {k:20s} top5 {v['top5']}  logits[:3] {[round(z, 5) for z in v['logits'][:3]]}"
                  f"  f32-vs-f64 {v['logits_max_abs_err_vs_f64']:.2e}"
                  + (f"  resized {v['resized']}" if "resized" in v else ""))
        print("  samples:", json.dumps(res["generator_samples"]))


if __name__ == "__main__":
    main()
