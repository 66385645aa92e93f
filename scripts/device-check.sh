#!/usr/bin/env bash
# Runs on a GPU server with the kit carried (see scripts/device-kit.sh). Prepared phases, so a short lease
# is spent measuring, not typing. A lease is 15 minutes of device time in all (machine starts included),
# a call at most 10 minutes, and a call returns at most 8 files: so every phase writes its log
# ($OUT/device-<phase>.log) and ONE tarball ($OUT/results-<phase>.tgz: every JSON, table and run folder),
# re-packed after each step so a call cut short still returns what it measured, and no phase runs past
# RDPP_BUDGET seconds (default 540; give the call timeout_s ≥ RDPP_BUDGET + 40).
#   RDPP_PHASE=first   the first call of a lease: adapter report; a WRN50-2 256² f32 training step at batch
#                      16; the tire run (issue 13) with all but RDPP_FIRST_RESERVE seconds (resumed by
#                      RDPP_PHASE=tire on the warm machine); then the rest of issue 12's figures (inference
#                      at batch 32 and 1, f32 then --precision f16 with tensor cores where they pass their
#                      check and race) and f32 parity on the carried fixtures. Carry .device-kit,
#                      .device-dist, .device-data, .device-fixtures (62 MiB).
#   RDPP_PHASE=check   adapter report, parity on the carried fixtures (.device-fixtures), whole step and
#                      inference benchmarks, profiles with GPU time per program
#   RDPP_PHASE=tire    the real-data run: node dist/train.js on .device-data/tire (packed by
#                      scripts/device-kit.sh --data) with the exported Keras teacher, 256², 100 epochs,
#                      --eval-every 10, stopped at the budget and resumed by the next call (the run folder
#                      runs/tire256 stays on a warm machine: 30 s after a call); first `rdpp tune` for that
#                      network (RDPP_TUNE_SECONDS, default 120; or the table carried in .device-data)
#   RDPP_PHASE=demo    `rdpp demo --full` (256², the built-in procedural dataset, generated on the machine)
#                      with the exported Keras teacher from .device-data, stopped at the budget; its report
#                      (HTML, SVG, metrics, log) without the checkpoints
#   RDPP_PHASE=kernels every conv shape of the WRN50-2 and Keras networks with every GEMM tile (`rdpp tune`:
#                      the tables come back as tiles-*.table.json), whole steps with those tables, with
#                      GEMM_TILE=auto, without the forward split-K and without vec4 loads, the same steps with
#                      --precision f16 (and rd18 parity in f16 when fixtures are carried) on tensor cores
#                      (RDPP_ALLOW_UNSAFE_APIS=1) and on the SIMT kernel, f32 parity on every carried
#                      fixture, every kernel benchmark (longer than one call: what fits the budget, in order)
#   RDPP_PHASE=precision  issue 12's accuracy criterion (f16 training within 0.5 points of f32): tire at
#                      RDPP_ACC_SIZE (256) for RDPP_ACC_EPOCHS (10) epochs in f32 and in --precision f16
#                      (tensor cores where they pass), one pair per seed (RDPP_ACC_SEEDS, 111 112 …) while
#                      the budget lasts, then `rdpp compare` (mean paired difference, 95 % interval, verdict):
#                      precision-compare.json and the runs' train.jsonl. Carry .device-kit, .device-dist, .device-data
#   RDPP_CHECK_SMALL=1 tiny shapes (a smoke test of this script on a CPU adapter)
set -uo pipefail
phase=${RDPP_PHASE:-check}
out=${OUT:-/tmp/rdpp-out}
# every result goes to $res (outside $OUT) and, after each step, into ONE tarball in $OUT: a device call
# returns at most 8 files
res=/tmp/rdpp-results-$phase
rm -rf "$res" && mkdir -p "$res" "$out"
log="$out/device-$phase.log"
pack() { tar czf "$out/.results-$phase.tgz" -C "$res" . 2>/dev/null && mv "$out/.results-$phase.tgz" "$out/results-$phase.tgz"; }
# RDPP_KIT=0 runs the commands directly (a smoke test of this script on a machine that has node)
if [ "${RDPP_KIT:-1}" != 0 ]; then
  mkdir -p node_modules/webgpu && cp .device-kit/webgpu-js/* node_modules/webgpu/
  # the program without source maps or the browser bundle (scripts/device-kit.sh), to fit the 64 MiB carry
  if [ -d .device-dist ]; then rm -rf dist && cp -r .device-dist dist; fi
  # install the kit once (debs, node, dawn.node; what device-run.sh does before every command), then run
  # every command with its environment instead of unpacking it again each time
  bash .device-kit/device-run.sh true 2>&1 | tee -a "$log"
  export PATH=/tmp/nodebin:$PATH
  [ -f /usr/share/vulkan/icd.d/nvidia_icd.json ] || export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
t_start=$SECONDS
# RDPP_BUDGET: the seconds this call may use (leave the device tool's timeout_s a margin); later steps
# that no longer fit are skipped, and said so
budget=${RDPP_BUDGET:-540}
left() { echo $((budget - (SECONDS - t_start))); }
room() { # seconds a step needs at least
  if [ "$(left)" -lt "$1" ]; then echo "-- skipped for time: $2 (needs $1 s, $(left) s left)" | tee -a "$log"; return 1; fi
}
run() { # name, then the rdpp arguments; a failure (or a hang: RDPP_RUN_TIMEOUT, default 240 s) is logged and
  # the sequence goes on
  local name=$1; shift
  room 20 "$name" || return 0
  local limit=${RDPP_RUN_TIMEOUT:-240}
  [ "$limit" -gt "$(left)" ] && limit=$(left)
  echo "== $name: rdpp $*" | tee -a "$log"
  local t0=$SECONDS
  timeout -s KILL "$limit" node dist/rdpp.js "$@" >"$res/$name.json" 2>>"$log" || echo "!! $name failed" | tee -a "$log"
  echo "   $((SECONDS - t0)) s" | tee -a "$log"
  pack
}
run_folder() { # name, run folder, deadline in seconds, then the command: asked to stop at the deadline
  # (SIGTERM: training finishes its epoch and writes its checkpoints, so the next call resumes from there)
  # and killed 60 s later; its output in the log, then the folder without checkpoints (nor a generated
  # dataset) as <name>-run.tgz
  local name=$1 folder=$2 deadline=$(($3 - 60)) t0=$SECONDS
  shift 3
  [ "$deadline" -lt 10 ] && deadline=10
  echo "== $name: $* (stopped after $deadline s)" | tee -a "$log"
  timeout -s TERM -k 60 "$deadline" "$@" >>"$log" 2>&1
  echo "   exit $? after $((SECONDS - t0)) s" | tee -a "$log"
  tar czf "$res/$name-run.tgz" --exclude='*.safetensors' --exclude='*.tmp-*' --exclude="$folder/data" "$folder" 2>/dev/null
  pack
}
tire_run() { # the real-data run of issue 13 in at most $1 seconds (tuning included), resumed if a run is there
  local t0=$SECONDS deadline=$1 table= size=256
  [ -n "${RDPP_CHECK_SMALL:-}" ] && size=64
  # the GEMM tiles of this network on this GPU: a table carried in .device-data (copy there the one an
  # earlier call returned), or kept in runs/ on a warm machine, else `rdpp tune` now (at most
  # RDPP_TUNE_SECONDS, default 120 in the tire phase, 0 in the first: taken from the run's deadline) for
  # the training batch and the evaluations' (train's at 16, rdpp test's at 8), timing for three quarters
  # of that (--budget: the largest GEMMs first, the table keeps what was timed; the rest is start-up and
  # margin, then a hard stop); the table also comes back in the results
  for f in .device-data/tiles-keras-f32.table.json runs/tiles-keras-f32.table.json; do
    # only a table made on this adapter (rdpp refuses another's: info fails with it)
    [ -z "$table" ] && [ -f "$f" ] && RDPP_TILE_TABLE=$f node dist/rdpp.js info >/dev/null 2>>"$log" && table=$f
  done
  local tune=${RDPP_TUNE_SECONDS:-$2}
  # a resumed run keeps the kernels it started with: no tuning in the middle of it
  [ -f runs/tire256/last.safetensors ] && [ -z "${RDPP_TUNE_SECONDS:-}" ] && tune=0
  if [ -z "$table" ] && [ "$tune" != 0 ]; then
    echo "== tune (at most $tune s)" | tee -a "$log"
    mkdir -p runs
    if timeout -s KILL "$tune" node dist/rdpp.js tune --teacher resnet50-keras \
      --image-size $size --batch 16 --infer-batches 8,16 --iters 3 --budget $((tune * 3 / 4)) \
      --table runs/tiles-keras-f32.table.json \
      >>"$log" 2>&1; then table=runs/tiles-keras-f32.table.json; else echo "!! tune failed or ran out of time" | tee -a "$log"; fi
    echo "   $((SECONDS - t0)) s" | tee -a "$log"
  fi
  if [ -n "$table" ]; then
    export RDPP_TILE_TABLE=$table
    cp "$table" "$res/"
  fi
  # the user's command, plus the teacher file an offline server needs and the test curve every 10 epochs
  local args=(--data .device-data --category tire --image-size $size --epochs "${RDPP_EPOCHS:-100}"
    --teacher resnet50-keras=.device-data/keras-resnet50-f16.safetensors --eval-every 10 --out runs/tire256)
  [ -f runs/tire256/last.safetensors ] && args+=(--resume)
  run_folder tire runs/tire256 $((deadline - (SECONDS - t0))) node dist/train.js "${args[@]}"
  unset RDPP_TILE_TABLE
}
if [ -n "${RDPP_CHECK_SMALL:-}" ]; then
  net=(--teacher resnet18 --image-size 64) train=(--batch 2 --iters 1) infer32=(--batch 2 --iters 1) infer1=(--batch 1 --iters 1)
else
  net=(--teacher wrn50 --image-size 256) train=(--batch 16 --iters 5) infer32=(--batch 32 --iters 10) infer1=(--batch 1 --iters 20)
fi

case "$phase" in
first)
  # the first call of a lease (15 minutes of device time in all): what issues 12 and 13 need, under
  # RDPP_BUDGET seconds. The adapter; one f32 training step of WRN50-2 (the figure everything else is
  # weighed by); the tire run of issue 13 (the longest and the one that cannot be split over machines: a
  # checkpoint stays on the warm machine only), leaving RDPP_FIRST_RESERVE seconds (default 150) for the
  # rest of issue 12's figures (inference at batch 32 and 1 in f32, then the step and inference under
  # --precision f16 with tensor cores where they pass their check and race) and f32 parity on every carried
  # fixture. An unfinished tire run is resumed by RDPP_PHASE=tire on the warm machine (call again at once).
  run info info --json
  run train-f32 bench train "${net[@]}" "${train[@]}" --ssot off
  if room 60 tire; then tire_run $(($(left) - ${RDPP_FIRST_RESERVE:-150})) 0; fi
  run infer-b32-f32 bench infer "${net[@]}" "${infer32[@]}"
  run infer-b1-f32 bench infer "${net[@]}" "${infer1[@]}"
  RDPP_ALLOW_UNSAFE_APIS=1 run train-f16 bench train "${net[@]}" "${train[@]}" --ssot off --precision f16
  RDPP_ALLOW_UNSAFE_APIS=1 run infer-b32-f16 bench infer "${net[@]}" "${infer32[@]}" --precision f16
  RDPP_ALLOW_UNSAFE_APIS=1 run infer-b1-f16 bench infer "${net[@]}" "${infer1[@]}" --precision f16
  for f in .device-fixtures/golden/ops.json .device-fixtures/golden/rd18.json .device-fixtures/golden/wrn50.json; do
    [ -f "$f" ] && run "parity-$(basename "$f" .json)" parity "$f" --json
  done
  ;;
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
  tire_run $(($(left) - 15)) 120
  ;;
demo)
  size=--full
  [ -n "${RDPP_CHECK_SMALL:-}" ] && size=--small
  run_folder demo runs/demo $(($(left) - 15)) node dist/rdpp.js demo "$size" --out runs/demo \
    --teacher resnet50-keras=.device-data/keras-resnet50-f16.safetensors
  ;;
precision)
  # One run per precision cannot decide 0.5 points: float32 against float32 with other summation orders
  # moved image AUROC by up to 3.6 points on tire at 64² (bench/results/tire-cpu-lavapipe/README.md). So
  # pairs of runs with the same seed, f32 then f16, as many as the budget allows (a pair is assumed to take
  # 120 s until the first is timed), the runs' test metrics after their last epoch compared by `rdpp
  # compare` after each pair
  acc_size=${RDPP_ACC_SIZE:-256} acc_epochs=${RDPP_ACC_EPOCHS:-10} acc_extra=()
  [ -n "${RDPP_CHECK_SMALL:-}" ] && acc_size=32 acc_epochs=1 acc_extra=(--max-train 16)
  mkdir -p runs/precision
  pair=120
  for seed in ${RDPP_ACC_SEEDS:-111 112 113 114 115 116 117 118 119 120 121 122}; do
    room $((pair + 20)) "the pair of runs with seed $seed" || break
    t0=$SECONDS
    for p in f32 f16; do
      echo "== precision $p, seed $seed: tire at $acc_size² for $acc_epochs epochs" | tee -a "$log"
      RDPP_ALLOW_UNSAFE_APIS=1 timeout -s KILL $(($(left) - 5)) node dist/train.js --data .device-data \
        --category tire --image-size "$acc_size" --epochs "$acc_epochs" --seed "$seed" --precision $p \
        --teacher resnet50-keras=.device-data/keras-resnet50-f16.safetensors --eval-every "$acc_epochs" --no-eval \
        --save-every 60 --overwrite --out "runs/precision/$p-$seed" "${acc_extra[@]}" >>"$log" 2>&1 ||
        echo "!! precision $p seed $seed failed" | tee -a "$log"
    done
    pair=$((SECONDS - t0))
    echo "   pair $seed: $pair s" | tee -a "$log"
    node dist/rdpp.js compare runs/precision/*-* --out "$res/precision-compare.json" 2>&1 | tee -a "$log"
    tar czf "$res/precision-runs.tgz" runs/precision/*/train.jsonl 2>/dev/null
    pack
  done
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
  # training steps replayed from captured graphs (the default, as in train-dawn-default below) against every
  # step recorded op by op: record_ms_per_step is what the ops' JavaScript costs a step on this host, and
  # pipelined_ms_per_step whether it bounds the step (the f16 target is 75 ms)
  RDPP_TRAIN_GRAPH_CAPTURE=0 run train-eager bench train "${net[@]}" "${train[@]}" --ssot off
  RDPP_TRAIN_GRAPH_CAPTURE=0 RDPP_ALLOW_UNSAFE_APIS=1 run train-f16-eager bench train "${net[@]}" "${train[@]}" --ssot off --precision f16
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
    "${tiles[@]}" --table "$res/tiles-wrn50-f32.table.json" --out "$res/tune-wrn50-timings.json"
  run tune-keras tune --teacher resnet50-keras --image-size "${net[3]}" --batch "${train[1]}" \
    --infer-batches "${infer1[1]},${infer32[1]}" "${tiles[@]}" --table "$res/tiles-keras-f32.table.json" \
    --out "$res/tune-keras-timings.json"
  RDPP_TILE_TABLE="$res/tiles-wrn50-f32.table.json" run train-tuned bench train "${net[@]}" "${train[@]}" --ssot off
  RDPP_TILE_TABLE="$res/tiles-wrn50-f32.table.json" run infer-b32-tuned bench infer "${net[@]}" "${infer32[@]}"
  RDPP_TILE_TABLE="$res/tiles-wrn50-f32.table.json" run infer-b1-tuned bench infer "${net[@]}" "${infer1[@]}"
  RDPP_TILE_TABLE="$res/tiles-keras-f32.table.json" run train-keras-tuned bench train --teacher resnet50-keras \
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
