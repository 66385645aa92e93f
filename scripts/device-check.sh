#!/usr/bin/env bash
# Runs on a GPU server with .device-kit/ and dist/ carried (see scripts/device-kit.sh). One prepared
# sequence so a short lease is spent measuring, not typing; every result lands in $OUT (JSON + log).
#   RDPP_CHECK_QUICK=1   only the adapter report and the whole-step benchmarks
#   RDPP_CHECK_SMALL=1   tiny shapes (a smoke test of this script on a CPU adapter)
set -uo pipefail
out=${OUT:-/tmp/rdpp-out}
mkdir -p "$out" node_modules/webgpu
cp .device-kit/webgpu-js/* node_modules/webgpu/
log="$out/device-check.log"
run() { # name, then the rdpp arguments; a failure is logged and the sequence goes on
  local name=$1; shift
  echo "== $name: rdpp $*" | tee -a "$log"
  local t0=$SECONDS
  bash .device-kit/device-run.sh node dist/rdpp.js "$@" >"$out/$name.json" 2>>"$log" || echo "!! $name failed" | tee -a "$log"
  echo "   $((SECONDS - t0)) s" | tee -a "$log"
}
if [ -n "${RDPP_CHECK_SMALL:-}" ]; then
  net=(--teacher resnet18 --image-size 64) train=(--batch 2 --iters 1) infer=(--batch 2 --iters 1) kernels=(--small --iters 1)
else
  net=(--teacher wrn50 --image-size 256) train=(--batch 16 --iters 5) infer=(--batch 32 --iters 5) kernels=(--iters 5)
fi
run info info --json
run train-official bench train "${net[@]}" "${train[@]}"
run train-pairwise bench train "${net[@]}" "${train[@]}" --ssot pairwise
run infer bench infer "${net[@]}" "${infer[@]}"
if [ -z "${RDPP_CHECK_QUICK:-}" ]; then
  run kernels bench "${kernels[@]}"
fi
tail -n 40 "$log"
