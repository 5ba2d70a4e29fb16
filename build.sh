#!/usr/bin/env bash
# Builds and serves the web app, and runs every test.
#
#   ./build.sh            build the wasm into www/pkg/ (release, wasm-bindgen --target web, wasm-opt)
#   ./build.sh serve      build, make sure a model is in www/models/, serve www/ on 127.0.0.1
#                         (PORT, default 8050; the real weights when they can be fetched,
#                         else a seeded random model that the page labels untrained)
#   ./build.sh test       cargo test, cargo check for wasm32, the NEON kernel under qemu-aarch64,
#                         the wasm builds, the browser tests
#   ./build.sh weights    tools/fetch-weights.sh (the real google/bit-50 weights)
#   ./build.sh mutants [module...]
#                         cargo-mutants over preprocess, config, model, cpu, neon, readers, weights
#                         (or the modules named), each with the tests that cover it; hours, not
#                         CI. Reports go to target/mutants-out/<module>[/<shard>]/mutants.out/
#
# It installs what is missing: the wasm32 rustup target, Rust nightly's rust-src (the threaded
# wasm builds), the wasm-bindgen-cli matching Cargo.lock, the node packages (playwright-core,
# binaryen's wasm-opt) and, as root, Debian's chromium, mesa-vulkan-drivers (lavapipe),
# gcc-aarch64-linux-gnu and qemu-user (the NEON kernel's tests). Debian's own binaryen is never used: its wasm-opt 108 writes wasm
# that fails in the browser.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
export NODEVICE_SELECT=1

say() { printf '\033[1mbuild.sh:\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

need_rust_target() {
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    say "adding the rustup target wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
  fi
}

# Threads in WebAssembly need the standard library rebuilt with atomics: Rust nightly's build-std.
need_nightly() {
  rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
  rustup component list --toolchain nightly --installed | grep -q '^rust-src' || rustup component add rust-src --toolchain nightly
  rustup target list --toolchain nightly --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown --toolchain nightly
}

need_wasm_bindgen() {
  local want have
  want="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
  [ -n "$want" ] || die "no wasm-bindgen in Cargo.lock"
  have="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
  if [ "$have" != "$want" ]; then
    say "installing wasm-bindgen-cli $want (found: ${have:-none})"
    cargo install wasm-bindgen-cli --version "$want"
  fi
}

need_node_packages() {
  local need=()
  command -v node >/dev/null || need+=(nodejs)
  command -v npm >/dev/null || need+=(npm)
  apt_install "${need[@]}"
  if [ ! -x node_modules/.bin/wasm-opt ] || [ ! -d node_modules/playwright-core ]; then
    say "installing node packages (npm ci)"
    npm ci --no-audit --no-fund
  fi
}

chromium_path() {
  for c in "${CHROMIUM:-}" /usr/lib/chromium/chromium /usr/bin/chromium; do
    [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return 0; }
  done
  return 1
}

# Debian's packages the tests need: Chromium for the browser tests, Mesa's lavapipe (Vulkan on
# the CPU) for the GPU tests natively and in Chromium's compatibility mode (cross_arm64 adds the
# Arm64 C toolchain and qemu-aarch64 for the CPU path's NEON kernel).
need_test_packages() {
  local need=()
  chromium_path >/dev/null || need+=(chromium)
  [ -f /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || need+=(mesa-vulkan-drivers)
  ldconfig -p 2>/dev/null | grep -q libvulkan.so.1 || need+=(libvulkan1)
  apt_install "${need[@]}"
}

apt_install() {
  [ $# -eq 0 ] && return
  if [ "$(id -u)" = 0 ]; then
    say "installing Debian's $*"
    (DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"; }) >&2
  else
    die "missing: $*: run 'apt-get install -y $*' as root"
  fi
}

build_wasm() {
  need_rust_target
  need_nightly
  need_wasm_bindgen
  need_node_packages
  local target_dir
  target_dir="$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
  rm -rf www/pkg.tmp && mkdir -p www/pkg.tmp
  # Four builds of the same code: WebAssembly SIMD (every current browser) or SIMD with the
  # relaxed-SIMD fused multiply-add (Chromium since 114, among others: the CPU path's matrix
  # products 1.2-1.3x faster); each single-threaded, and threaded (atomics and shared memory,
  # for cross-origin-isolated pages; the standard library rebuilt by nightly's build-std).
  # The worker loads the one the browser and the page allow.
  local simd="+simd128" relaxed="+simd128,+relaxed-simd"
  local threads="-C target-feature=+atomics,+bulk-memory,+mutable-globals -C link-arg=--shared-memory -C link-arg=--max-memory=1073741824 -C link-arg=--import-memory -C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base"
  local build name features extra
  for build in single:$simd single-relaxed:$relaxed threads:$simd threads-relaxed:$relaxed; do
    name="${build%%:*}" features="${build#*:}"
    say "building the wasm: $name (release, in $target_dir/wasm-$name)"
    if [ "${name#threads}" != "$name" ]; then
      RUSTFLAGS="-C target-feature=$features $threads" CARGO_TARGET_DIR="$target_dir/wasm-$name" \
        nice cargo +nightly build --release --target wasm32-unknown-unknown --lib -Z build-std=panic_abort,std
    else
      RUSTFLAGS="-C target-feature=$features" CARGO_TARGET_DIR="$target_dir/wasm-$name" \
        nice cargo build --release --target wasm32-unknown-unknown --lib
    fi
    wasm-bindgen --target web --no-typescript --out-dir "www/pkg.tmp/$name" "$target_dir/wasm-$name/wasm32-unknown-unknown/release/bit50.wasm"
  done
  # One JavaScript glue file serves each pair of modules: they must import and export the same.
  cmp -s www/pkg.tmp/single/bit50.js www/pkg.tmp/single-relaxed/bit50.js || die "the two single-threaded wasm builds need different JavaScript glue"
  cmp -s www/pkg.tmp/threads/bit50.js www/pkg.tmp/threads-relaxed/bit50.js || die "the two threaded wasm builds need different JavaScript glue"
  say "optimizing with wasm-opt $(node_modules/.bin/wasm-opt --version | awk '{print $3}')"
  local opt=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
    --enable-mutable-globals --enable-reference-types --enable-multivalue --enable-simd)
  mkdir -p www/pkg.tmp/out/threads
  nice node_modules/.bin/wasm-opt -O3 "${opt[@]}" www/pkg.tmp/single/bit50_bg.wasm -o www/pkg.tmp/out/bit50_bg.wasm
  nice node_modules/.bin/wasm-opt -O3 "${opt[@]}" --enable-relaxed-simd www/pkg.tmp/single-relaxed/bit50_bg.wasm -o www/pkg.tmp/out/bit50_relaxed_bg.wasm
  nice node_modules/.bin/wasm-opt -O3 "${opt[@]}" --enable-threads www/pkg.tmp/threads/bit50_bg.wasm -o www/pkg.tmp/out/threads/bit50_bg.wasm
  nice node_modules/.bin/wasm-opt -O3 "${opt[@]}" --enable-threads --enable-relaxed-simd www/pkg.tmp/threads-relaxed/bit50_bg.wasm -o www/pkg.tmp/out/threads/bit50_relaxed_bg.wasm
  cp www/pkg.tmp/single/bit50.js www/pkg.tmp/out/
  cp www/pkg.tmp/threads/bit50.js www/pkg.tmp/out/threads/
  rm -rf www/pkg && mv www/pkg.tmp/out www/pkg && rm -rf www/pkg.tmp
  # The page's sample photos: the test photos (scikit-image's data).
  mkdir -p www/samples && cp tests/fixtures/photos/* www/samples/
  node tools/write-sw-shell.mjs >&2
  say "www/pkg: $(cd www/pkg && du -k bit50_bg.wasm bit50_relaxed_bg.wasm threads/*.wasm | awk '{printf "%s %s KiB, ", $2, $1}')"
}

# The NEON micro-kernel (src/cpu/gemm.rs) is only compiled for Arm64: build the CPU kernels'
# tests for it and run them under qemu-aarch64 (the tiny model and the odd sizes: a few minutes).
cross_arm64() {
  local need=()
  command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
  command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
  apt_install "${need[@]}"
  rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
  export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
}

test_arm64() {
  [ "$(uname -m)" = x86_64 ] || return 0 # on Arm64 itself, cargo test already ran it natively
  (cross_arm64 && nice cargo test --release --target aarch64-unknown-linux-gnu --test cpu_kernels -- tiny odd_sizes lacks widest)
}

native_cli() {
  if [ ! -x target/release/bit50 ] || [ -n "$(find src shaders Cargo.toml -newer target/release/bit50 -print -quit)" ]; then
    say "building the native CLI"
    nice cargo build --release --bin bit50 >&2 || return 1
  fi
  echo "$root/target/release/bit50"
}

# The site's model list, so that pages choose their default without probing for files.
write_model_index() {
  printf '{"default": "%s/"}\n' "$1" > www/models/index.json
}

ensure_model() {
  if [ -f www/models/bit-50/manifest.json ] || { [ -x tools/fetch-weights.sh ] && BIT50="$(native_cli)" tools/fetch-weights.sh; }; then
    say "model: www/models/bit-50 (real weights)"
    write_model_index bit-50
    return
  fi
  if [ ! -f www/models/bit-50-random/manifest.json ]; then
    say "the real weights cannot be fetched: making a seeded random model (the page labels it untrained)"
    local cli tmp
    cli="$(native_cli)" || die "the native CLI does not build"
    tmp="$(mktemp -d)"
    "$cli" random-model --out "$tmp/bit-50-random"
    "$cli" convert "$tmp/bit-50-random" --out www/models/bit-50-random --dtype f16
    rm -rf "$tmp"
  fi
  say "model: www/models/bit-50-random (seeded random weights: untrained)"
  write_model_index bit-50-random
}

ensure_tiny_model() {
  if [ ! -f www/models/tiny/manifest.json ] || [ tests/fixtures/tiny/model.safetensors -nt www/models/tiny/manifest.json ]; then
    local cli
    cli="$(native_cli)" || die "the native CLI does not build"
    "$cli" convert tests/fixtures/tiny --out www/models/tiny
  fi
}

cmd="${1:-build}"
case "$cmd" in
  build|"")
    build_wasm
    ;;
  serve)
    build_wasm
    ensure_model
    ensure_tiny_model
    node tools/write-sw-shell.mjs >&2
    exec node tools/serve.mjs --root www --port "${PORT:-8050}"
    ;;
  test)
    status=0
    need_test_packages
    say "cargo test"
    nice cargo test || status=1
    say "cargo check --target wasm32-unknown-unknown --lib"
    need_rust_target
    nice cargo check --target wasm32-unknown-unknown --lib || status=1
    say "the CPU path's NEON kernel, under qemu-aarch64"
    test_arm64 || status=1
    build_wasm || exit 1
    cli="$(native_cli)" || die "the native CLI does not build"
    ensure_tiny_model
    say "browser tests (node --test tests/browser/*.test.mjs)"
    CHROMIUM="$(chromium_path)" BIT50="$cli" node --test --test-concurrency=1 tests/browser/*.test.mjs || status=1
    [ "$status" = 0 ] && say "all tests passed" || say "some tests FAILED"
    exit "$status"
    ;;
  mutants)
    command -v cargo-mutants >/dev/null || cargo install --locked cargo-mutants
    # Each module with the fast tests that exercise it (the GPU and the full-size batch runs are
    # left out: they test the same code slower). The crate builds at opt-level 1 (profile
    # mutants), so a mutant costs seconds to build.
    skip=(-- -- --skip gpu --skip f16 --skip subgroup --skip tiled --skip a_batch --skip embed)
    # weights/ is two runs: the file readers, whose tests compare every value read with what
    # torch and numpy read (no forward pass needed), and the rest, which the parity runs cover.
    # neon: the NEON kernel and gemm.rs's Arm64 arms, compiled only there, built for Arm64 and
    # tested under qemu-aarch64 (the CPU path's unit tests and the tiny model).
    declare -A files=(
      [preprocess]=src/preprocess.rs [config]=src/config.rs [model]=src/model.rs
      [cpu]='src/cpu/*.rs' [neon]=src/cpu/gemm.rs [readers]='src/weights/{pickle,zip,npy,npz}.rs'
      [weights]='src/weights/{mod,convert,random}.rs')
    declare -A tests=(
      [preprocess]="--lib --test preprocess"
      [config]="--lib --test converters --test parity"
      [model]="--lib --test parity"
      [cpu]="--lib --test cpu_kernels"
      [neon]="--lib --test cpu_kernels"
      [readers]="--lib --test converters --test fuzz_readers"
      [weights]="--lib --test converters --test fuzz_readers --test head --test parity")
    # model, weights: the tiny model's parity covers their code; the full-size runs add minutes,
    # not cases.
    declare -A names=([model]="--skip _full" [weights]="--skip _full" [neon]="cpu:: tiny lacks widest")
    declare -A only=([neon]="--re neon|Neon --cargo-arg=--target=aarch64-unknown-linux-gnu")
    modules=("${@:2}")
    [ ${#modules[@]} -gt 0 ] || modules=(preprocess config model cpu neon readers weights)
    # MUTANTS_ARGS="--shard K/N --sharding round-robin" runs one shard, reported apart.
    shard="$(grep -oE -- '--shard [0-9]+/[0-9]+' <<<"${MUTANTS_ARGS:-}" | sed -E 's#--shard ([0-9]+)/([0-9]+)#shard-\1-of-\2#' || true)"
    status=0
    for m in "${modules[@]}"; do
      [ -n "${files[$m]:-}" ] || die "unknown module $m (preprocess, config, model, cpu, neon, readers, weights)"
      [ "$m" != neon ] || cross_arm64
      say "cargo mutants: $m (${files[$m]})"
      out="target/mutants-out/$m${shard:+/$shard}"
      mkdir -p "$out"
      args=()
      for a in ${tests[$m]}; do args+=(--cargo-test-arg="$a"); done
      CARGO_TARGET_DIR="$root/target/mutants" nice cargo mutants --file "${files[$m]}" --profile mutants \
        --copy-target false --jobs 1 --timeout 240 --output "$out" \
        ${only[$m]:-} ${MUTANTS_ARGS:-} "${args[@]}" "${skip[@]}" ${names[$m]:-} || status=1
    done
    exit "$status"
    ;;
  weights)
    [ -x tools/fetch-weights.sh ] || die "tools/fetch-weights.sh is not there yet"
    BIT50="$(native_cli)" exec tools/fetch-weights.sh "${@:2}"
    ;;
  -h|--help|help)
    sed -n '2,19p' "$0"
    ;;
  *)
    die "unknown command $cmd (build, serve, test, weights, mutants)"
    ;;
esac
