#!/bin/bash
# The GPU speed probes on a lent machine (the device tool), in one call.
#
#   tests/tools/gpu_probe.sh prepare [BASE_COMMIT]   # here: .probe/ and .gl/ to carry
#   then, through the device tool, carry [".gl", ".probe"] and run:
#   set -o pipefail; bash tests/tools/gpu_probe.sh run 2>&1 | tee $OUT/log
#
# `prepare` builds this tree's GPU test binary (and BASE_COMMIT's, if given, for a
# before/after in the same lease), writes the models' headers (tests/tools/gguf_shape_alike.py:
# 12 MB travels instead of 745 MB; the weights are made there, random, same types and
# shapes: speed does not depend on them) and fetches the Vulkan loader's packages. `run`
# checks the kernels against the CPU on that adapter, then times the models: decode per
# matmul workgroup shape, and GPU time per kernel from timestamp queries
# (probe_decode_profile in tests/gpu.rs). Both .probe/ and .gl/ are ignored by git.
set -e
cd "$(dirname "$0")/../.."
case "$1" in
prepare)
  grep -qx '/.probe/' .git/info/exclude 2>/dev/null || printf '/.gl/\n/.probe/\n' >>.git/info/exclude
  mkdir -p .probe .gl /tmp/amd64/partial
  py=target/llama-venv/bin/python
  [ -x "$py" ] || py=python3
  for m in gemma-3-270m-q4_k_m qwen2.5-coder-0.5b-instruct-q4_k_m; do
    "$py" tests/tools/gguf_shape_alike.py head "models/$m.gguf" ".probe/$m.head"
  done
  bin() { cargo test --release --test gpu --no-run --message-format=json 2>/dev/null | sed -n 's/.*"executable":"\([^"]*\/gpu-[^"]*\)".*/\1/p' | tail -1; }
  cp "$(bin)" .probe/gpu-new
  if [ -n "$2" ]; then
    rm -rf /tmp/probe-base && git worktree add -f /tmp/probe-base "$2"
    (cd /tmp/probe-base && CARGO_TARGET_DIR=/tmp/probe-base-target bin >/tmp/probe-base.path && cp "$(cat /tmp/probe-base.path)" "$OLDPWD/.probe/gpu-base")
  fi
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  apt-get $o update >/dev/null
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  du -sh .probe .gl
  ;;
run)
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export XDG_RUNTIME_DIR=/tmp
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv || true
  python3 tests/tools/gguf_shape_alike.py fill .probe/gemma-3-270m-q4_k_m.head /tmp/gemma.gguf
  python3 tests/tools/gguf_shape_alike.py fill .probe/qwen2.5-coder-0.5b-instruct-q4_k_m.head /tmp/qwen.gguf
  chmod +x .probe/gpu-*
  echo "== kernels against the CPU on this adapter"
  OUVERT_REQUIRE_GPU=1 .probe/gpu-new --test-threads=1 matmul_every fused_steps embedding attention_matches top_k 2>&1 | grep -E '^test |result|panicked' || true
  if [ -x .probe/gpu-base ]; then
    echo "== before: the base commit's probe_model_speed"
    OUVERT_MODEL=/tmp/gemma.gguf timeout 120 .probe/gpu-base --ignored --exact probe_model_speed --nocapture 2>&1 | grep -vE '^$|^running|^test ' || true
  fi
  echo "== probe_decode_profile"
  OUVERT_PROBE_MODELS=/tmp/gemma.gguf,/tmp/qwen.gguf OUVERT_PROBE_ROWS=${ROWS:-8,2,4,16,32,64} timeout 300 \
    .probe/gpu-new --ignored --exact probe_decode_profile --nocapture 2>&1 | grep -vE '^$|^running|^test '
  nvidia-smi --query-gpu=clocks.sm,clocks.mem --format=csv || true
  ;;
*)
  sed -n 2,13p "$0"
  exit 1
  ;;
esac
