#!/usr/bin/env bash
# Gets the real BiT-50 weights and converts them for the demo.
#
#   tools/fetch-weights.sh [--dir DIR] [--out OUT] [--dtype f16|f32]
#
# 1. If DIR (default weights/google-bit-50) already holds weights (files put there by
#    hand: a Hugging Face folder, a PaddleNLP folder, a timm checkpoint or the BiT .npz),
#    nothing is downloaded.
# 2. Otherwise it downloads google/bit-50 from the Hugging Face hub (config.json,
#    preprocessor_config.json, model.safetensors), checking model.safetensors against the
#    sha256 the hub lists; failing that, PaddleNLP's copy (config.json,
#    model_state.pdparams, preprocessor_config.json).
# 3. It converts DIR with `bit50 convert` into OUT (default www/models/bit-50, f16).
#
# Offline, it says what it could not reach and where to put the files, and exits 2.
# Environment: HF_ENDPOINT (default https://huggingface.co), PADDLENLP_ENDPOINT
# (default https://bj.bcebos.com/paddlenlp/models/community), BIT50 (the bit50 binary;
# default: target/release/bit50, else `cargo run --release`), CONNECT_TIMEOUT (s, default 15).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/weights/google-bit-50"
out="$root/www/models/bit-50"
dtype="f16"
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --dtype) dtype="$2"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "fetch-weights: unknown argument $1 (see --help)" >&2; exit 64 ;;
  esac
done

hf="${HF_ENDPOINT:-https://huggingface.co}"
paddle="${PADDLENLP_ENDPOINT:-https://bj.bcebos.com/paddlenlp/models/community}"
connect="${CONNECT_TIMEOUT:-15}"
repo="google/bit-50"
unreached=()

# curl that never hangs: bounded connect time, abort when the transfer stalls for a minute.
fetch() { # url dest
  curl --fail --location --silent --show-error --connect-timeout "$connect" \
    --speed-limit 1024 --speed-time 60 --retry 2 --retry-delay 2 \
    --output "$2.part" "$1" && mv "$2.part" "$2"
}

have_weights() {
  local f
  for f in "$dir"/model.safetensors "$dir"/pytorch_model.bin "$dir"/model_state.pdparams "$dir"/*.npz; do
    [ -f "$f" ] && return 0
  done
  return 1
}

downloaded=()
forget_downloads() { # a source failed midway: remove what this run fetched from it
  local f
  for f in "${downloaded[@]}"; do rm -f "$f"; done
  downloaded=()
}

# download BASE FILE...: each FILE from BASE/FILE into $dir, unless already there.
download() {
  local base="$1" f
  shift
  for f in "$@"; do
    [ -f "$dir/$f" ] && continue
    echo "downloading $base/$f"
    if ! fetch "$base/$f" "$dir/$f"; then
      unreached+=("$base/$f")
      rm -f "$dir/$f.part"
      return 1
    fi
    downloaded+=("$dir/$f")
  done
}

from_hf() {
  download "$hf/$repo/resolve/main" config.json preprocessor_config.json model.safetensors || return 1
  # The hub lists the sha256 of LFS files; check it when the API answers.
  local api want got
  if api="$(curl --fail --silent --connect-timeout "$connect" --max-time 60 "$hf/api/models/$repo?blobs=true")"; then
    want="$(printf '%s' "$api" | tr ',{}' '\n\n\n' | awk '/"rfilename":"model.safetensors"/{f=1} f&&/"sha256"/{sub(/.*"sha256":"/,""); sub(/".*/,""); print; exit}')"
    if [ -n "$want" ]; then
      got="$(sha256sum "$dir/model.safetensors" | cut -d' ' -f1)"
      if [ "$got" != "$want" ]; then
        echo "fetch-weights: $dir/model.safetensors has sha256 $got, the hub lists $want; deleting it" >&2
        rm -f "$dir/model.safetensors"
        exit 1
      fi
      echo "model.safetensors: sha256 matches the hub ($want)"
    else
      echo "note: the hub's listing has no sha256 for model.safetensors; not checked (the converter still checks every name and shape)"
    fi
  else
    echo "note: $hf/api/models/$repo did not answer; model.safetensors not checked against the hub's sha256 (the converter still checks every name and shape)"
  fi
}

from_paddle() {
  download "$paddle/$repo" config.json model_state.pdparams preprocessor_config.json
}

mkdir -p "$dir"
if have_weights; then
  echo "using the weights already in $dir"
else
  if ! from_hf; then
    forget_downloads # PaddleNLP's copy comes with its own config files
    if ! from_paddle; then
      forget_downloads
      {
        echo "fetch-weights: could not download the BiT-50 weights; unreachable:"
        printf '  %s\n' "${unreached[@]}"
        echo "Without internet access, put the files in $dir yourself, then run this again:"
        echo "  from https://huggingface.co/$repo: config.json, preprocessor_config.json, model.safetensors (or pytorch_model.bin)"
        echo "  or PaddleNLP's folder: config.json, model_state.pdparams, preprocessor_config.json"
        echo "  or timm's resnetv2_50x1_bit.goog_in21k_ft_in1k model.safetensors / pytorch_model.bin, or BiT-M-R50x1-ILSVRC2012.npz"
      } >&2
      exit 2
    fi
  fi
fi

if [ -n "${BIT50:-}" ]; then
  bit50=("$BIT50")
elif [ -x "$root/target/release/bit50" ]; then
  bit50=("$root/target/release/bit50")
else
  bit50=(cargo run --release --quiet --manifest-path "$root/Cargo.toml" --bin bit50 --)
fi
"${bit50[@]}" convert "$dir" --out "$out" --dtype "$dtype"
echo "the demo now serves $out"
