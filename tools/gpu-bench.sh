#!/usr/bin/env bash
# bit50 on a real GPU against PyTorch on the same GPU, in one command (about 2-5 minutes on an
# NVIDIA H200; it must end within 10). Without a GPU it runs the same against whatever adapter
# wgpu finds (lavapipe) and PyTorch on the CPU, which says nothing about GPUs.
#
#   tools/gpu-bench.sh [--out DIR] [--size 448] [--batches 1,32] [--runs 10] [--compile]
#
# It builds nothing: BIT50 is the bit50 binary (default target/release/bit50, built on an x86-64
# machine and carried along), PYTHON a python with torch and transformers (default python3).
# Where the machine has no Vulkan loader and the folder .gl/ holds Debian's loader packages
# (libvulkan1 and friends, fetched with `apt-get download`), they are unpacked into / first
# (as root), and the NVIDIA driver's ICD is used where one is installed.
#
# What it does, each on the same seeded full-size model (`bit50 random-model --seed 0`, f32):
#   1. `bit50 bench --gpu --json` at each batch size: every convolution kernel and precision the
#      adapter runs (registers/tiled x f32/f16/f16-arithmetic), subgroups where it has them;
#   2. transformers' BitForImageClassification in PyTorch (tools/bench_torch.py): eager f32 (TF32
#      off), eager with PyTorch's defaults (TF32 convolutions), and with --compile torch.compile;
#   3. our logits on the GPU, per kernel and precision, against PyTorch's f32 logits on one input.
# Output: a table (who, batch, ms, images/s, ratio to PyTorch eager) on stdout and in
# DIR/gpu-bench.md, and everything measured in DIR/gpu-bench.json.
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/gpu-bench size=448 batches=1,32 runs=10 compile=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --batches) batches="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --compile) compile=--compile; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "gpu-bench: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
BIT50="${BIT50:-target/release/bit50}"
PYTHON="${PYTHON:-python3}"
[ -x "$BIT50" ] || { echo "gpu-bench: no bit50 binary at $BIT50 (cargo build --release, or set BIT50)" >&2; exit 2; }
mkdir -p "$out"
export NODEVICE_SELECT=1

# The Vulkan loader, where the machine lacks it.
if ! ldconfig -p 2>/dev/null | grep -q libvulkan.so.1 && ls .gl/*.deb >/dev/null 2>&1; then
  echo "gpu-bench: unpacking the Vulkan loader from .gl/" >&2
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$nvidia_icd" ]; then export VK_DRIVER_FILES="$nvidia_icd"; fi

echo "gpu-bench: $(uname -m), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out/gpu-bench.log"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$out/gpu-bench.log"

# The seeded full-size model at the chosen input size, in f32 (the f16 kernels narrow it).
work="$out/model"
rm -rf "$work" && mkdir -p "$work/like"
cp assets/google-bit-50/config.json "$work/like/"
"$PYTHON" - "$size" assets/google-bit-50/preprocessor_config.json "$work/like/preprocessor_config.json" <<'EOF'
import json, sys
size, src, dst = int(sys.argv[1]), sys.argv[2], sys.argv[3]
p = json.load(open(src))
p["size"] = {"shortest_edge": size}
p["crop_size"] = {"height": size, "width": size}
json.dump(p, open(dst, "w"))
EOF
"$BIT50" random-model --out "$work/hf" --seed 0 --like "$work/like"
"$BIT50" convert "$work/hf" --out "$work/f32" --dtype f32

# PyTorch first: it writes the input our logits are compared on.
"$PYTHON" tools/bench_torch.py "$work/hf" --out "$out" --batches "$batches" --runs "$runs" $compile | tee -a "$out/gpu-bench.log"

: > "$out/ours.jsonl"
for b in ${batches//,/ }; do
  "$BIT50" bench --model "$work/f32" --gpu --json --batch "$b" --runs "$runs" | tee -a "$out/ours.jsonl"
done
# Where the time goes, per kind of layer (timestamp queries), with the kernels chosen at load.
"$BIT50" bench --model "$work/f32" --gpu --runs 3 | tee -a "$out/gpu-bench.log"
: > "$out/logits.jsonl"
for kernel in registers tiled; do
  for precision in f32 f16 f16-arithmetic; do
    if line=$("$BIT50" classify --model "$work/f32" --gpu --kernel "$kernel" --precision "$precision" --pixels "$out/input.npy" --json --logits 2>/dev/null); then
      printf '{"kernel": "%s", "precision": "%s", "result": %s}\n' "$kernel" "$precision" "$line" >> "$out/logits.jsonl"
    fi
  done
done

"$PYTHON" - "$out" "$size" <<'EOF'
import json, sys
out, size = sys.argv[1], int(sys.argv[2])
torch = json.load(open(f"{out}/torch.json"))
ours = [json.loads(l) for l in open(f"{out}/ours.jsonl") if l.strip()]
logits = [json.loads(l) for l in open(f"{out}/logits.jsonl") if l.strip()]
eager = {r["batch"]: r for r in torch["runs"] if r["who"] == "PyTorch eager f32"}
rows = [(r["who"], r["batch"], r["ms"], r["images_per_s"]) for r in torch["runs"]]
for r in ours:
    sub = ", subgroups" if r.get("subgroups") else ""
    rows.append((f"bit50 {r['kernel']}, {r['dtype']}{sub}", r["batch"], r["warm_ms"], r["images_per_s"]))
adapter = ours[0]["adapter"] if ours else "?"
lines = [f"GPU: {torch['device']} (PyTorch {torch['torch']}, transformers {torch['transformers']}); bit50 on {adapter}; input {size}x{size}", "",
         "| who | batch | ms | images/s | time / PyTorch eager f32 |", "|---|---|---|---|---|"]
for who, batch, ms, ips in sorted(rows, key=lambda r: (r[1], r[2])):
    ratio = ms / eager[batch]["ms"] if batch in eager else float("nan")
    lines.append(f"| {who} | {batch} | {ms:.3f} | {ips:.1f} | {ratio:.2f} |")
lines += ["", "Logits on one input, against PyTorch eager f32 (max |difference|):"]
ref = torch["logits_f32"]
errors = {}
for l in logits:
    got = l["result"]["logits"]
    err = max(abs(a - b) for a, b in zip(got, ref))
    errors[f"{l['kernel']}, {l['precision']}"] = err
    bound = " (within 1e-4)" if l["precision"] == "f32" and err <= 1e-4 else (" (OVER 1e-4)" if l["precision"] == "f32" else "")
    lines.append(f"- {l['kernel']}, {l['precision']}: {err:.2e}{bound}")
best = lambda b: min((r for r in ours if r["batch"] == b), key=lambda r: r["warm_ms"], default=None)
lines.append("")
if 1 in eager and best(1):
    b1 = best(1)
    lines.append(f"Goal, batch 1: {b1['warm_ms']:.3f} ms ({b1['kernel']}, {b1['dtype']}) vs PyTorch eager {eager[1]['ms']:.3f} ms: "
                 f"{'met' if b1['warm_ms'] <= eager[1]['ms'] else 'missed'}; under 3 ms at 448: {'met' if size == 448 and b1['warm_ms'] <= 3 else 'missed'}")
big = max(eager) if eager else None
if big and big > 1 and best(big):
    bb = best(big)
    lines.append(f"Goal, batch {big}: {bb['images_per_s']:.1f} images/s vs PyTorch eager {eager[big]['images_per_s']:.1f}: "
                 f"{'met' if bb['images_per_s'] >= eager[big]['images_per_s'] / 2 else 'missed'} (at least half)")
text = "\n".join(lines)
print(text)
open(f"{out}/gpu-bench.md", "w").write(text + "\n")
json.dump({"torch": torch, "ours": ours, "logit_errors": errors}, open(f"{out}/gpu-bench.json", "w"), indent=1)
EOF
