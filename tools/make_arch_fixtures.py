#!/usr/bin/env python3
"""Fixtures for BiT configurations other than google/bit-50's, as transformers builds them (run by hand, not in CI).

Run from the repository root with the pinned environment of tools/requirements.txt, after make_fixtures.py:

    python tools/make_arch_fixtures.py

It (re)writes, deterministically:
  tests/fixtures/narrow/{config.json,preprocessor_config.json,model.safetensors,expected.json}
      a narrow BiT: embedding_size 24, hidden_sizes [44, 72, 136, 264] (44 is rounded to 48 by transformers),
      depths [1, 2, 1, 1], num_groups 8 (3, 6, 9, 17, 33 ... channels per group), 10 labels, 64x64 input,
      seed 2. Weights committed (small), as for tiny.
  tests/fixtures/odd/{config.json,preprocessor_config.json,model.safetensors,expected.json}
      what else transformers runs: a stem width that is not a multiple of 8 (embedding_size 12), 4 groups (3
      channels each in the stem), 5 stages, output_stride 8 (stages 3-5 keep stride 1: transformers sets a dilation
      there that its pre-activation layer never passes to its convolutions), seed 5. Weights committed (small).
  tests/fixtures/r101/{config.json,preprocessor_config.json,expected.json}
      the BiT-R101x1 layout (depths [3, 4, 23, 3], default widths, embedding 64), 10 labels, 64x64 input, seed 3.
      Weights not committed: the Rust side regenerates them from the seed (per-tensor sha256 given).
  tests/fixtures/wide/{config.json,preprocessor_config.json,expected.json}
      BiT-R50x3. transformers' `width_factor=3` builds a model whose forward raises (see below), so the runnable
      model is the R50x3 layout written out with width_factor 1: embedding_size 192, hidden_sizes
      [768, 1536, 3072, 6144] (= timm resnetv2_50x3_bit / the original BiT R50x3: stem 64*3, stages 256*3 ..
      2048*3). 10 labels, 64x64 input, seed 4, weights regenerated (not committed). The width_factor=3 config is
      recorded too ("width_factor_3": channels, parameter shapes, the forward's exception).

Each expected.json has the schema of tests/fixtures/tiny/expected.json (generated_by, model, seed, input_seed,
image_size, num_parameters, tensor_sha256, generator_samples, inputs{uniform, photos: logits, top5, stats, cam,
...}) plus:
  "config":      the BitConfig fields that matter (also config.json where committed)
  "channels":    {"stem": C, "norm": C, "classifier_in": C, "stages": [{"in", "mid", "out", "depth", "stride",
                  "dilation", "hidden_size"}]} read from the model transformers built
  "parameters":  {name: shape} for every state-dict entry, in state-dict order
  "pil_crops":   where the photos' processor outputs are: tests/fixtures/tiny/pil (same 64/64 PIL processing;
                 the script checks every input_sha256 against tiny's)
preprocessor_config.json is tiny's (shortest_edge 64, crop 64) in every folder.
The weights are drawn by make_fixtures.gen_tensor (the same per-name recipe: these configs have no new tensor role).

Channel rules of transformers 5.24 models/bit/modeling_bit.py (checked below against the built modules):
  * make_div(v, divisor=8): new = max(8, int(v + 4) // 8 * 8); if new < 0.9 * v: new += 8.
  * stem width = config.embedding_size, as is: BitEmbeddings builds
    `WeightStandardizedConv2d(config.num_channels, config.embedding_size, kernel_size=7, stride=2, ...)`
    (no make_div, and width_factor does NOT scale it, unlike timm's make_div(64 * wf)).
  * stage i out width = make_div(hidden_sizes[i] * width_factor): BitEncoder._get_updated_hyperparameters
    `out_channels = make_div(current_hidden_size * config.width_factor)`; stage in width = the stem width for stage
    0, the previous stage's out width after (`prev_chs = config.embedding_size` ... `prev_chs = out_channels`).
  * bottleneck (mid) width = make_div(out * 0.25), from the ROUNDED out width: BitPreActivationBottleneckLayer
    `mid_channels = make_div(out_channels * bottle_ratio)` with bottle_ratio 0.25 (BitStage's default). So
    mid = out / 4 only when out / 4 is a multiple of 8 that make_div keeps; e.g. out 40 -> 10 -> 16, 72 -> 18 -> 24.
  * stride 1 for stage 0, 2 for the others (`stride = 1 if stage_idx == 0 else 2`), on layer 0 only, on conv2 and
    the projection, except once the stride so far (4 after the stem) has reached output_stride: then 1, and a
    dilation that BitPreActivationBottleneckLayer never passes to its convolutions (with 4 stages and
    output_stride 32, current_stride is 4, 4, 8, 16 before the stages: never reached).
  * the final norm and the classifier use hidden_sizes[-1] as is: BitModel
    `BitGroupNormActivation(config, num_channels=config.hidden_sizes[-1])`, BitForImageClassification
    `nn.Linear(config.hidden_sizes[-1], config.num_labels)`. The model runs only if make_div(hidden_sizes[-1] *
    width_factor) == hidden_sizes[-1]; any width_factor > 1 (or a last hidden size make_div changes) builds a model
    whose forward raises a RuntimeError in bit.norm (recorded under "transformers_rejects" in narrow/expected.json).
  * every GroupNorm has config.num_groups groups (BitGroupNormActivation: `super().__init__(config.num_groups,
    num_channels, ...)`), so num_groups must divide the stem width (norm1 of stage 0 layer 0), every stage out
    width and every mid width, or torch raises at construction.
Nothing is downloaded.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402  (the generator, run_model, JSON writers)
from transformers import BitConfig, BitForImageClassification  # noqa: E402
from transformers.models.bit.modeling_bit import make_div as hf_make_div  # noqa: E402

FIX = mf.FIX
PHOTOS = ["cat.png", "coffee.jpg", "rocket-exif.jpg", "astronaut-alpha.png", "camera-gray.png"]
SIZE = 64
INPUT_SEED = 101  # the tiny model's uniform input


def make_div(value, divisor=8):
    """transformers' make_div (modeling_bit.py), restated to check the built model against the rules."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def rule_channels(cfg):
    """Channel counts from the rules in the docstring (no model needed)."""
    stem = cfg.embedding_size
    prev, stages, current_stride = stem, [], 4
    for i, (depth, hidden) in enumerate(zip(cfg.depths, cfg.hidden_sizes)):
        out = make_div(hidden * cfg.width_factor)
        stride = 1 if i == 0 or current_stride >= cfg.output_stride else 2
        stages.append({"hidden_size": hidden, "in": prev, "mid": make_div(out * 0.25), "out": out, "depth": depth,
                       "stride": stride, "dilation": 1})
        prev, current_stride = out, current_stride * stride
    return {"stem": stem, "stages": stages, "norm": cfg.hidden_sizes[-1], "classifier_in": cfg.hidden_sizes[-1]}


def built_channels(model, cfg):
    """Channel counts read from the modules transformers built."""
    bit = model.bit
    stages = []
    for i, stage in enumerate(bit.encoder.stages):
        l0 = stage.layers[0]
        assert all(layer.conv2.dilation == (1, 1) for layer in stage.layers)
        assert all(layer.conv2.stride == (1, 1) for layer in list(stage.layers)[1:])
        assert l0.downsample.conv.stride == l0.conv2.stride and l0.conv1.stride == (1, 1)
        stages.append({
            "hidden_size": cfg.hidden_sizes[i],
            "in": l0.conv1.in_channels,
            "mid": l0.conv1.out_channels,
            "out": l0.conv3.out_channels,
            "depth": len(stage.layers),
            "stride": l0.conv2.stride[0],
            "dilation": l0.conv2.dilation[0],
        })
    return {
        "stem": bit.embedder.convolution.out_channels,
        "stages": stages,
        "norm": bit.norm.num_channels,
        "classifier_in": model.classifier[1].in_features,
    }


def make_config(**kw):
    return BitConfig(
        layer_type="preactivation",
        global_padding=None,
        embedding_dynamic_padding=False,
        num_labels=10,
        id2label={i: f"class {i}" for i in range(10)},
        label2id={f"class {i}": i for i in range(10)},
        architectures=["BitForImageClassification"],
        **kw,
    )


def config_fields(cfg):
    keys = ["embedding_size", "hidden_sizes", "depths", "num_groups", "width_factor", "layer_type", "global_padding",
            "embedding_dynamic_padding", "output_stride", "num_labels"]
    return {k: getattr(cfg, k) for k in keys}


def tiny_processor():
    proc = mf.PilProcessor.from_pretrained(FIX / "tiny")
    assert proc.size["shortest_edge"] == SIZE and proc.crop_size["height"] == SIZE and proc.resample == 2
    return proc


def evaluate(model, processor):
    """Like make_fixtures.evaluate, but the crops are tiny's (same processing): no new PNGs, inputs checked."""
    tiny = json.loads((FIX / "tiny" / "expected.json").read_text())["inputs"]
    model64 = copy.deepcopy(model).double().eval()
    x = mf.gen_input(INPUT_SEED, (1, 3, SIZE, SIZE))
    assert mf.sha256_f32(x) == tiny["uniform"]["input_sha256"]
    inputs = {"uniform": {"input_sha256": mf.sha256_f32(x), **mf.run_model(model, torch.from_numpy(x), model.config,
                                                                           model64)}}
    for name in PHOTOS:
        pv, resized = mf.preprocess(processor, mf.PHOTOS / name)
        assert pv.shape == (1, 3, SIZE, SIZE) and mf.sha256_f32(pv) == tiny[name]["input_sha256"], name
        inputs[name] = {"resized": resized, "input_sha256": mf.sha256_f32(pv),
                        **mf.run_model(model, torch.from_numpy(pv), model.config, model64)}
    del model64
    return inputs


def build(cfg, seed):
    model = BitForImageClassification(cfg).eval()
    channels = built_channels(model, cfg)
    assert channels == rule_channels(cfg), (channels, rule_channels(cfg))
    for v in [c for s in channels["stages"] for c in (s["out"] * 0.25, s["hidden_size"] * cfg.width_factor)]:
        assert hf_make_div(v) == make_div(v), v
    params = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert len(list(model.buffers())) == 0
    sd, hashes = mf.gen_state_dict(model, seed)
    model.load_state_dict(sd, strict=True)
    return model, channels, params, hashes


def result(name, desc, cfg, seed, model, channels, params, hashes, processor, extra=None, write_configs=True):
    out = FIX / name
    if write_configs:  # r101, wide: the config files only, the weights come from the seed
        model.config.save_pretrained(out)
        processor.save_pretrained(out)
    assert (out / "preprocessor_config.json").read_bytes() == (FIX / "tiny" / "preprocessor_config.json").read_bytes()
    saved = BitConfig.from_pretrained(out)
    assert config_fields(saved) == config_fields(cfg) and saved.id2label == cfg.id2label
    hashes = dict(hashes)
    hashes["input"] = mf.sha256_f32(mf.gen_input(INPUT_SEED, (1, 3, SIZE, SIZE)))
    gb = mf.versions()
    gb["script"] = "tools/make_arch_fixtures.py"
    res = {
        "generated_by": gb,
        "model": desc,
        "seed": seed,
        "input_seed": INPUT_SEED,
        "image_size": SIZE,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "config": config_fields(cfg),
        "channels": channels,
        "stage_sizes": mf.stage_sizes(SIZE, [st["stride"] for st in channels["stages"]]),
        "parameters": params,
        "tensor_sha256": hashes,
        "generator_samples": mf.generator_samples(seed, INPUT_SEED),
        "pil_crops": "tests/fixtures/tiny/pil",
        **(extra or {}),
        "inputs": evaluate(model, processor),
    }
    mf.write_compact_json(FIX / name / "expected.json", res)
    return res


def rejected(desc, fn):
    """What transformers does with a config it cannot run: the exception of construction or of the forward."""
    try:
        cfg = fn()
        model = BitForImageClassification(cfg).eval()
    except Exception as e:  # noqa: BLE001
        return {"config": desc, "stage": "construction", "exception": type(e).__name__, "message": str(e)}
    try:
        with torch.no_grad():
            model(pixel_values=torch.zeros(1, 3, SIZE, SIZE))
    except Exception as e:  # noqa: BLE001
        return {"config": desc, "stage": "forward", "exception": type(e).__name__, "message": str(e),
                "channels": built_channels(model, cfg)}
    raise AssertionError(f"transformers runs {desc}")


def make_narrow():
    seed, out = 2, FIX / "narrow"
    cfg = make_config(embedding_size=24, hidden_sizes=[44, 72, 136, 264], depths=[1, 2, 1, 1], num_groups=8)
    model, channels, params, hashes = build(cfg, seed)
    model.save_pretrained(out, safe_serialization=True)
    proc = tiny_processor()
    proc.save_pretrained(out)
    assert (out / "preprocessor_config.json").read_bytes() == (FIX / "tiny" / "preprocessor_config.json").read_bytes()
    assert (out / "model.safetensors").stat().st_size < 1_000_000
    model = BitForImageClassification.from_pretrained(out).eval()  # what a user of transformers gets
    for k, v in model.state_dict().items():
        assert mf.sha256_f32(v.numpy()) == hashes[k], k
    rejects = [
        rejected("width_factor 3, default hidden_sizes (norm and classifier stay 2048 wide; stage 4 is 6144)",
                 lambda: make_config(width_factor=3)),
        rejected("width_factor 2, embedding_size 24, hidden_sizes [40, 72, 136, 264], num_groups 8",
                 lambda: make_config(embedding_size=24, hidden_sizes=[40, 72, 136, 264], depths=[1, 1, 1, 1],
                                     num_groups=8, width_factor=2)),
        rejected("hidden_sizes[-1] 260 (make_div -> 264; norm stays 260)",
                 lambda: make_config(embedding_size=24, hidden_sizes=[40, 72, 136, 260], depths=[1, 1, 1, 1],
                                     num_groups=4)),
        rejected("num_groups 32 with embedding_size 24",
                 lambda: make_config(embedding_size=24, hidden_sizes=[64, 128, 256, 512], depths=[1, 1, 1, 1],
                                     num_groups=32)),
        rejected("num_groups 8 with embedding_size 20",
                 lambda: make_config(embedding_size=20, hidden_sizes=[40, 72, 136, 264], depths=[1, 1, 1, 1],
                                     num_groups=8)),
    ]
    return result("narrow", "narrow BiT (config.json, model.safetensors in this folder)", cfg, seed, model, channels,
                  params, hashes, proc, {"transformers_rejects": rejects}, write_configs=False)


def make_odd():
    seed, out = 5, FIX / "odd"
    cfg = make_config(embedding_size=12, hidden_sizes=[24, 40, 72, 136, 136], depths=[1, 1, 2, 1, 1], num_groups=4,
                      output_stride=8)
    model, channels, params, hashes = build(cfg, seed)
    assert [st["stride"] for st in channels["stages"]] == [1, 2, 1, 1, 1]
    model.save_pretrained(out, safe_serialization=True)
    proc = tiny_processor()
    proc.save_pretrained(out)
    assert (out / "preprocessor_config.json").read_bytes() == (FIX / "tiny" / "preprocessor_config.json").read_bytes()
    assert (out / "model.safetensors").stat().st_size < 1_000_000
    model = BitForImageClassification.from_pretrained(out).eval()
    for k, v in model.state_dict().items():
        assert mf.sha256_f32(v.numpy()) == hashes[k], k
    return result("odd", "odd BiT (config.json, model.safetensors in this folder)", cfg, seed, model, channels, params,
                  hashes, proc, write_configs=False)


def make_r101():
    seed = 3
    cfg = make_config(depths=[3, 4, 23, 3])
    assert cfg.hidden_sizes == [256, 512, 1024, 2048] and cfg.embedding_size == 64 and cfg.num_groups == 32
    model, channels, params, hashes = build(cfg, seed)
    return result("r101", "BiT-R101x1 layout, seeded weights (not saved)", cfg, seed, model, channels, params, hashes,
                  tiny_processor())


def make_wide():
    seed = 4
    # what width_factor=3 builds in transformers, and why it cannot run
    wf3 = make_config(width_factor=3)
    m3 = BitForImageClassification(wf3).eval()
    ch3 = built_channels(m3, wf3)
    assert ch3 == rule_channels(wf3)
    err = rejected("width_factor 3", lambda: wf3)
    width_factor_3 = {
        "config": config_fields(wf3),
        "channels": ch3,
        "parameters": {k: list(v.shape) for k, v in m3.state_dict().items()},
        "num_parameters": sum(p.numel() for p in m3.parameters()),
        "forward": {k: err[k] for k in ("stage", "exception", "message")},
        "note": "transformers scales the stage widths (make_div(h * 3)) but neither the stem (embedding_size) nor "
                "bit.norm / classifier (hidden_sizes[-1]): stage 4 outputs 6144 channels into a 2048-channel "
                "GroupNorm, so the forward raises. The runnable R50x3 below spells the widths out instead.",
    }
    del m3
    cfg = make_config(embedding_size=192, hidden_sizes=[768, 1536, 3072, 6144])
    model, channels, params, hashes = build(cfg, seed)
    return result("wide", "BiT-R50x3 layout (embedding 192, hidden_sizes 768..6144, width_factor 1), seeded weights "
                  "(not saved)", cfg, seed, model, channels, params, hashes, tiny_processor(),
                  {"width_factor_3": width_factor_3})


def main():
    os.chdir(mf.ROOT)
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    which = sys.argv[1:] or ["narrow", "odd", "r101", "wide"]
    for name in which:
        res = {"narrow": make_narrow, "odd": make_odd, "r101": make_r101, "wide": make_wide}[name]()
        print(f"== {name}: {res['num_parameters']} parameters, channels {json.dumps(res['channels'])}")
        for k, v in res["inputs"].items():
            print(f"  {k:20s} top5 {v['top5']}  logits[:3] {[round(z, 5) for z in v['logits'][:3]]}"
                  f"  f32-vs-f64 {v['logits_max_abs_err_vs_f64']:.2e}  cam {v['cam']['class']}")


if __name__ == "__main__":
    main()
