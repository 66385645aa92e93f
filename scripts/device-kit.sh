#!/usr/bin/env bash
# Prepares what a bare GPU server needs to run this project (for sessions that are lent one):
#   .device-kit/   Node, Dawn's dawn.node, Vulkan/GL loader packages (../shared/tools/device-prep.sh)
#                  plus the webgpu package's JavaScript (its native binaries for other platforms stay here)
#   dist/          the built program
# Then, on the server (the device tool, carry [".device-kit", "dist"]):
#   bash scripts/device-check.sh            # writes every figure to $OUT
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
[ -d node_modules/webgpu ] || npm ci
bash "${RDPP_SHARED:-../shared}/tools/device-prep.sh"
rm -rf .device-kit/webgpu-js && mkdir -p .device-kit/webgpu-js
cp node_modules/webgpu/package.json node_modules/webgpu/index.js .device-kit/webgpu-js/
npm run build --silent
du -sh .device-kit dist
