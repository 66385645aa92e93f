#!/usr/bin/env bash
# Runs on a GPU server with .device-kit/ and dist/ carried (see scripts/device-kit.sh). One prepared
# sequence so a short lease is spent measuring, not typing; every result lands in $OUT (JSON + log).
#   RDPP_CHECK_QUICK=1   only the adapter report and the whole-step benchmarks
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
run info info --json
run train-wrn50 bench train --teacher wrn50 --batch 16 --image-size 256 --iters 5
run train-pairwise bench train --teacher wrn50 --batch 16 --image-size 256 --iters 3 --ssot pairwise
run infer bench infer --teacher wrn50 --batch 32 --image-size 256 --iters 5
if [ -z "${RDPP_CHECK_QUICK:-}" ]; then
  run kernels bench --iters 5
fi
tail -n 40 "$log"
