#!/usr/bin/env bash
# Runs on a GPU server with .device-kit/ and dist/ carried (see scripts/device-kit.sh). Prepared phases,
# so a short lease is spent measuring, not typing; every result lands in $OUT (JSON, logs, one .tgz).
#   RDPP_PHASE=check   (default) adapter report, parity on the carried fixtures (.device-fixtures), whole
#                      step and inference benchmarks, profiles with GPU time per program
#   RDPP_PHASE=tire    the real-data run: node dist/train.js on .device-data/tire (packed by
#                      scripts/device-kit.sh --data) with the exported Keras teacher, 256², 100 epochs,
#                      --eval-every 10, stopped at RDPP_DEADLINE seconds and resumed by the next call
#                      (the run folder runs/tire256 stays on a warm machine); then rdpp's evaluation;
#                      first `rdpp tune` for that network (or the table carried in .device-data)
#   RDPP_PHASE=demo    `rdpp demo --full` (256², the built-in procedural dataset, generated on the machine)
#                      with the exported Keras teacher from .device-data, stopped at RDPP_DEADLINE seconds;
#                      its report (HTML, SVG, metrics, log) without the checkpoints in demo-run.tgz
#   RDPP_PHASE=kernels every conv shape of the WRN50-2 and Keras networks with every GEMM tile (`rdpp tune`:
#                      the tables come back as tiles-*.table.json), whole steps with those tables, with
#                      GEMM_TILE=auto, without the forward split-K and without vec4 loads, the same steps with
#                      --precision f16 (and rd18 parity in f16 when fixtures are carried) on tensor cores
#                      (RDPP_ALLOW_UNSAFE_APIS=1) and on the SIMT kernel, f32 parity on every carried
#                      fixture, every kernel benchmark
#   RDPP_CHECK_SMALL=1 tiny shapes (a smoke test of this script on a CPU adapter)
set -uo pipefail
out=${OUT:-/tmp/rdpp-out}
mkdir -p "$out"
if [ "${RDPP_KIT:-1}" != 0 ]; then mkdir -p node_modules/webgpu && cp .device-kit/webgpu-js/* node_modules/webgpu/; fi
log="$out/device-${RDPP_PHASE:-check}.log"
# RDPP_KIT=0 runs the commands directly (a smoke test of this script on a machine that has node)
kit() { if [ "${RDPP_KIT:-1}" = 0 ]; then "$@"; else bash .device-kit/device-run.sh "$@"; fi; }
run() { # name, then the rdpp arguments; a failure is logged and the sequence goes on
  local name=$1; shift
  echo "== $name: rdpp $*" | tee -a "$log"
  local t0=$SECONDS
  kit node dist/rdpp.js "$@" >"$out/$name.json" 2>>"$log" || echo "!! $name failed" | tee -a "$log"
  echo "   $((SECONDS - t0)) s" | tee -a "$log"
}
run_folder() { # name, run folder, then the command: stopped at RDPP_DEADLINE seconds (default 480), its
  # output in the log, then the folder without checkpoints (nor a generated dataset) as $out/<name>-run.tgz
  local name=$1 folder=$2; shift 2
  local deadline=${RDPP_DEADLINE:-480} t0=$SECONDS
  echo "== $name: $* (stopped after $deadline s)" | tee -a "$log"
  kit timeout -s KILL "$deadline" "$@" >>"$log" 2>&1
  echo "   exit $? after $((SECONDS - t0)) s" | tee -a "$log"
  tar czf "$out/$name-run.tgz" --exclude='*.safetensors' --exclude='*.tmp-*' --exclude="$folder/data" "$folder" 2>/dev/null
}
if [ -n "${RDPP_CHECK_SMALL:-}" ]; then
  net=(--teacher resnet18 --image-size 64) train=(--batch 2 --iters 1) infer32=(--batch 2 --iters 1) infer1=(--batch 1 --iters 1)
else
  net=(--teacher wrn50 --image-size 256) train=(--batch 16 --iters 5) infer32=(--batch 32 --iters 10) infer1=(--batch 1 --iters 20)
fi

case "${RDPP_PHASE:-check}" in
check)
  run info info --json
  for f in .device-fixtures/golden/ops.json .device-fixtures/golden/rd18.json .device-fixtures/golden/wrn50.json; do
    [ -f "$f" ] && run "parity-$(basename "$f" .json)" parity "$f" --json
  done
  run train-official bench train "${net[@]}" "${train[@]}"
  run train-off bench train "${net[@]}" "${train[@]}" --ssot off
  run infer-b32 bench infer "${net[@]}" "${infer32[@]}"
  run infer-b1 bench infer "${net[@]}" "${infer1[@]}"
  run train-keras bench train --teacher resnet50-keras --image-size "${net[3]}" "${train[@]}" --ssot off
  run profile-train profile train "${net[@]}" --batch "${train[1]}" --iters 2 --json
  run profile-infer-b1 profile infer "${net[@]}" --batch 1 --iters 5 --json
  run profile-infer-b32 profile infer "${net[@]}" --batch "${infer32[1]}" --iters 2 --json
  ;;
tire)
  # the GEMM tiles of this network on this GPU: a table carried in .device-data (copy there the one an
  # earlier call returned), or kept in runs/ on a warm machine, else `rdpp tune` now (at most
  # RDPP_TUNE_SECONDS, default 120, taken from the run's deadline; 0 skips it) for the training batch and
  # the evaluations' (train's at 16, rdpp test's at 8), timing for three quarters of that (--budget: the
  # largest GEMMs first, the table keeps what was timed; the rest is start-up and margin, then a hard stop);
  # the table also comes back in $OUT
  t0=$SECONDS
  table=
  for f in .device-data/tiles-keras-f32.table.json runs/tiles-keras-f32.table.json; do
    # only a table made on this adapter (rdpp refuses another's: info fails with it)
    [ -z "$table" ] && [ -f "$f" ] && RDPP_TILE_TABLE=$f kit node dist/rdpp.js info >/dev/null 2>>"$log" && table=$f
  done
  if [ -z "$table" ] && [ "${RDPP_TUNE_SECONDS:-120}" != 0 ]; then
    echo "== tune (at most ${RDPP_TUNE_SECONDS:-120} s)" | tee -a "$log"
    mkdir -p runs
    if kit timeout -s KILL "${RDPP_TUNE_SECONDS:-120}" node dist/rdpp.js tune --teacher resnet50-keras \
      --image-size 256 --batch 16 --infer-batches 8,16 --iters 3 --budget $((${RDPP_TUNE_SECONDS:-120} * 3 / 4)) \
      --table runs/tiles-keras-f32.table.json \
      >>"$log" 2>&1; then table=runs/tiles-keras-f32.table.json; else echo "!! tune failed or ran out of time" | tee -a "$log"; fi
    echo "   $((SECONDS - t0)) s" | tee -a "$log"
  fi
  if [ -n "$table" ]; then
    export RDPP_TILE_TABLE=$table
    cp "$table" "$out/"
  fi
  export RDPP_DEADLINE=$((${RDPP_DEADLINE:-480} - (SECONDS - t0)))
  # the user's command, plus the teacher file an offline server needs and the test curve every 10 epochs
  args=(--data .device-data --category tire --image-size 256 --epochs "${RDPP_EPOCHS:-100}"
    --teacher resnet50-keras=.device-data/keras-resnet50-f16.safetensors --eval-every 10 --out runs/tire256)
  [ -f runs/tire256/last.safetensors ] && args+=(--resume)
  run_folder tire runs/tire256 node dist/train.js "${args[@]}"
  ;;
demo)
  size=--full
  [ -n "${RDPP_CHECK_SMALL:-}" ] && size=--small
  run_folder demo runs/demo node dist/rdpp.js demo "$size" --out runs/demo \
    --teacher resnet50-keras=.device-data/keras-resnet50-f16.safetensors
  ;;
kernels)
  # tensor cores first (the newest, never yet run on a GPU): --precision f16 with Dawn's unsafe APIs on, so
  # the device offers chromium-experimental-subgroup-matrix. The first run is what a user gets (GEMM_MMA=auto:
  # its "mma" says whether they passed the check against the SIMT f16 kernel and won the speed race, with
  # both timings); the others force them (GEMM_MMA=on: used whenever the check passes) to measure them even
  # where the race keeps the SIMT kernel; rd18 parity in f16 on them
  RDPP_ALLOW_UNSAFE_APIS=1 run infer-b1-f16-auto bench infer "${net[@]}" "${infer1[@]}" --precision f16
  export RDPP_GEMM_MMA=on
  RDPP_ALLOW_UNSAFE_APIS=1 run train-f16-mma bench train "${net[@]}" "${train[@]}" --ssot off --precision f16
  RDPP_ALLOW_UNSAFE_APIS=1 run infer-b32-f16-mma bench infer "${net[@]}" "${infer32[@]}" --precision f16
  RDPP_ALLOW_UNSAFE_APIS=1 run infer-b1-f16-mma bench infer "${net[@]}" "${infer1[@]}" --precision f16
  RDPP_ALLOW_UNSAFE_APIS=1 run shapes-wrn50-f16-mma bench shapes "${net[@]}" --precision f16 --iters 3
  [ -f .device-fixtures/golden/rd18.json ] && RDPP_ALLOW_UNSAFE_APIS=1 run parity-rd18-f16-mma parity .device-fixtures/golden/rd18.json --precision f16 --json
  unset RDPP_GEMM_MMA
  # Dawn's skip_validation (CPU per dispatch) and disable_robustness (no bounds clamps in the shaders)
  # against the defaults, each pair back to back on the warm machine; f32 parity on the ops with both on
  run infer-b1-dawn-default bench infer "${net[@]}" "${infer1[@]}"
  RDPP_DAWN_SKIP_VALIDATION=1 RDPP_DAWN_DISABLE_ROBUSTNESS=1 run infer-b1-dawn-fast bench infer "${net[@]}" "${infer1[@]}"
  # batches replayed from captured graphs (engine/graph.ts, the default, as in infer-b1-dawn-default) against
  # every batch recorded op by op: what the ops' JavaScript costs a batch-1 inference on this host
  RDPP_GRAPH_CAPTURE=0 run infer-b1-eager bench infer "${net[@]}" "${infer1[@]}"
  RDPP_GRAPH_CAPTURE=0 run infer-b1-f16-eager bench infer "${net[@]}" "${infer1[@]}" --precision f16
  run train-dawn-default bench train "${net[@]}" "${train[@]}" --ssot off
  RDPP_DAWN_SKIP_VALIDATION=1 RDPP_DAWN_DISABLE_ROBUSTNESS=1 run train-dawn-fast bench train "${net[@]}" "${train[@]}" --ssot off
  RDPP_DAWN_SKIP_VALIDATION=1 run infer-b1-dawn-novalidation bench infer "${net[@]}" "${infer1[@]}"
  RDPP_DAWN_SKIP_VALIDATION=1 RDPP_DAWN_DISABLE_ROBUSTNESS=1 run infer-b1-f16-dawn-fast bench infer "${net[@]}" "${infer1[@]}" --precision f16
  [ -f .device-fixtures/golden/ops.json ] && RDPP_DAWN_SKIP_VALIDATION=1 RDPP_DAWN_DISABLE_ROBUSTNESS=1 run parity-ops-dawn-fast parity .device-fixtures/golden/ops.json --json
  # float32 parity on this GPU (issue 12: every fixture passes in f32 on the H200 too), when fixtures are carried
  for f in .device-fixtures/golden/ops.json .device-fixtures/golden/rd18.json .device-fixtures/golden/wrn50.json; do
    [ -f "$f" ] && run "parity-$(basename "$f" .json)" parity "$f" --json
  done
  # every conv shape with every GEMM tile: `rdpp tune` keeps the fastest per GEMM in a table (written to
  # $OUT, so it comes back; its JSON has every timing), then whole steps with the tuned table, with the
  # rule GEMM_TILE=auto, and with the default tile; batch-1 inference without the forward split-K
  # (each tune at most RDPP_TUNE_BUDGET seconds of timing, default 120: the largest GEMMs first)
  tiles=(--iters 3 --precision f32 --budget "${RDPP_TUNE_BUDGET:-120}")
  run tune-wrn50 tune "${net[@]}" --batch "${train[1]}" --infer-batches "${infer1[1]},${infer32[1]}" \
    "${tiles[@]}" --table "$out/tiles-wrn50-f32.table.json" --out "$out/tune-wrn50-timings.json"
  run tune-keras tune --teacher resnet50-keras --image-size "${net[3]}" --batch "${train[1]}" \
    --infer-batches "${infer1[1]},${infer32[1]}" "${tiles[@]}" --table "$out/tiles-keras-f32.table.json" \
    --out "$out/tune-keras-timings.json"
  RDPP_TILE_TABLE="$out/tiles-wrn50-f32.table.json" run train-tuned bench train "${net[@]}" "${train[@]}" --ssot off
  RDPP_TILE_TABLE="$out/tiles-wrn50-f32.table.json" run infer-b32-tuned bench infer "${net[@]}" "${infer32[@]}"
  RDPP_TILE_TABLE="$out/tiles-wrn50-f32.table.json" run infer-b1-tuned bench infer "${net[@]}" "${infer1[@]}"
  RDPP_TILE_TABLE="$out/tiles-keras-f32.table.json" run train-keras-tuned bench train --teacher resnet50-keras \
    --image-size "${net[3]}" "${train[@]}" --ssot off
  RDPP_GEMM_TILE=auto run train-auto bench train "${net[@]}" "${train[@]}" --ssot off
  run train-default bench train "${net[@]}" "${train[@]}" --ssot off
  RDPP_GEMM_TILE=auto run infer-b32-auto bench infer "${net[@]}" "${infer32[@]}"
  RDPP_GEMM_TILE=auto run infer-b1-auto bench infer "${net[@]}" "${infer1[@]}"
  RDPP_CONV_FWD_SPLIT_K=0 run infer-b1-nosplit bench infer "${net[@]}" "${infer1[@]}"
  # batch-1 latency against how soon the GPU gets work: a submit every 32 / 128 (default) / 1000 dispatches
  RDPP_DISPATCHES_PER_SUBMIT=32 run infer-b1-submit32 bench infer "${net[@]}" "${infer1[@]}"
  RDPP_DISPATCHES_PER_SUBMIT=1000 run infer-b1-submit1000 bench infer "${net[@]}" "${infer1[@]}"
  # norms in three passes each way against the default single pass where a group fits one item
  RDPP_NORM_SINGLE_PASS=0 run train-norm3 bench train "${net[@]}" "${train[@]}" --ssot off
  RDPP_NORM_SINGLE_PASS=0 run infer-b1-norm3 bench infer "${net[@]}" "${infer1[@]}"
  # element-by-element operand loads against the default vec4 loads (GEMM_VEC4; the same bits either way)
  RDPP_GEMM_VEC4=0 run train-novec4 bench train "${net[@]}" "${train[@]}" --ssot off
  RDPP_GEMM_VEC4=0 run infer-b32-novec4 bench infer "${net[@]}" "${infer32[@]}"
  # f16 GEMM operands on the SIMT kernel (no unsafe APIs: no subgroup matrices) on the same steps, and its parity
  run train-f16 bench train "${net[@]}" "${train[@]}" --ssot off --precision f16
  run infer-b32-f16 bench infer "${net[@]}" "${infer32[@]}" --precision f16
  run infer-b1-f16 bench infer "${net[@]}" "${infer1[@]}" --precision f16
  [ -f .device-fixtures/golden/rd18.json ] && run parity-rd18-f16 parity .device-fixtures/golden/rd18.json --precision f16 --json
  [ -f .device-fixtures/golden/wrn50.json ] && run parity-wrn50-f16 parity .device-fixtures/golden/wrn50.json --precision f16 --json
  # f16 operands with the student's training activations in f32 (F16_TRAIN_STORAGE=0) against the default
  RDPP_F16_TRAIN_STORAGE=0 run train-f16-f32trainstorage bench train "${net[@]}" "${train[@]}" --ssot off --precision f16
  # f16 operands with the teacher's activations in f32 (F16_STORAGE=0) against the default f16 storage
  RDPP_F16_STORAGE=0 run train-f16-f32storage bench train "${net[@]}" "${train[@]}" --ssot off --precision f16
  RDPP_F16_STORAGE=0 run infer-b32-f16-f32storage bench infer "${net[@]}" "${infer32[@]}" --precision f16
  kernels=(--iters 5)
  [ -n "${RDPP_CHECK_SMALL:-}" ] && kernels=(--iters 1 --small)
  run kernels bench "${kernels[@]}"
  ;;
esac
tail -n 60 "$log"
