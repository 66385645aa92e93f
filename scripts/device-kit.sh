#!/usr/bin/env bash
# Prepares what a bare GPU server needs to run this project (for sessions that are lent one). A device
# call carries at most 64 MiB, so the pieces are separate folders, each carried only by the phase that
# needs it:
#   .device-kit/       Node, Dawn's dawn.node, Vulkan/GL loader packages (../shared/tools/device-prep.sh)
#                      plus the webgpu package's JavaScript (≈ 29 MB)
#   dist/              the built program (≈ 4.5 MB)
#   .device-fixtures/  with --fixtures: the golden fixtures for `rdpp parity` (≈ 7.4 MB)
#   .device-data/      with --data: the Keras teacher exported as f16 (≈ 17 MB) and the tire category
#                      packed at 256² as JPEG q95 (≈ 7 MB; scripts/pack-data.ts prints what that changes)
# Then, on the server (the device tool):
#   carry [".device-kit","dist",".device-fixtures"]  bash scripts/device-check.sh              (check)
#   carry [".device-kit","dist",".device-data"]      RDPP_PHASE=tire bash scripts/device-check.sh
#   carry [".device-kit","dist",".device-data"]      RDPP_PHASE=demo bash scripts/device-check.sh
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
du -sh .device-kit dist .device-fixtures .device-data 2>/dev/null || true
