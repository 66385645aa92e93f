#!/usr/bin/env bash
# Prepares what a bare GPU server needs to run this project (for sessions that are lent one). A device
# call carries at most 64 MiB, so the pieces are separate folders, each carried only by the phase that
# needs it:
#   .device-kit/       Node, Dawn's dawn.node, Vulkan/GL loader packages (../shared/tools/device-prep.sh)
#                      plus the webgpu package's JavaScript (≈ 28 MiB)
#   .device-dist/      the built program without source maps or the browser bundle (≈ 1.3 MiB; dist/ with
#                      them is 5.7 MiB, which would not leave room for the rest)
#   .device-fixtures/  with --fixtures: the golden fixtures for `rdpp parity` (≈ 7.0 MiB)
#   .device-data/      with --data: the Keras teacher exported as f16 (≈ 16.6 MiB) and the tire category
#                      packed at 256² as JPEG q95 (≈ 7 MiB; scripts/pack-data.ts prints what that changes)
# With the tracked files (≈ 2.8 MiB) all four fit one call (≈ 62 MiB). Then, on the server (the device
# tool; scripts/device-check.sh says what each phase runs):
#   carry [".device-kit",".device-dist",".device-data",".device-fixtures"]  RDPP_PHASE=first bash scripts/device-check.sh
#   carry [".device-kit",".device-dist",".device-data"]      RDPP_PHASE=tire bash scripts/device-check.sh
#   carry [".device-kit",".device-dist",".device-fixtures"]  RDPP_PHASE=kernels bash scripts/device-check.sh
# Usage: bash scripts/device-kit.sh [--fixtures] [--data]
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
shared=${RDPP_SHARED:-../shared}
want_fixtures=0 want_data=0
for a in "$@"; do
  case $a in
  --fixtures) want_fixtures=1 ;;
  --data) want_data=1 ;;
  *) echo "device-kit: unknown option $a (use --fixtures and/or --data)" >&2; exit 2 ;;
  esac
done
[ -d node_modules/webgpu ] || npm ci
bash "$shared/tools/device-prep.sh"
rm -rf .device-kit/webgpu-js && mkdir -p .device-kit/webgpu-js
cp node_modules/webgpu/package.json node_modules/webgpu/index.js .device-kit/webgpu-js/
npm run build --silent
rm -rf .device-dist && mkdir -p .device-dist/chunks
cp dist/rdpp.js dist/train.js .device-dist/ && cp dist/chunks/*.js .device-dist/chunks/
if [ $want_fixtures = 1 ]; then
  rm -rf .device-fixtures && mkdir -p .device-fixtures/golden
  cp "$shared"/fixtures/golden/{ops,rd18,wrn50}.{json,safetensors} .device-fixtures/golden/
fi
if [ $want_data = 1 ]; then
  rm -rf .device-data && mkdir -p .device-data
  node dist/rdpp.js teacher export --teacher resnet50-keras --dtype f16 --out .device-data/keras-resnet50-f16.safetensors
  npx esbuild scripts/pack-data.ts --bundle --platform=node --format=esm --log-level=warning \
    --banner:js="import{createRequire as __cr}from'node:module';const require=__cr(import.meta.url);" \
    --outfile=.cache/pack-data.mjs
  node .cache/pack-data.mjs "$shared/datasets/mvtec3d-tire-half" tire .device-data --size 256 --format jpeg --quality 95
fi
du -sh .device-kit .device-dist .device-fixtures .device-data 2>/dev/null || true
