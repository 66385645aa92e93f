#!/usr/bin/env bash
# Installs what this project needs on a fresh machine, or says exactly what to run when it cannot.
#   scripts/setup.sh [--quiet] [--browser]
# - Node >= 20 and the npm packages (npm ci when node_modules is missing or stale).
# - A Vulkan driver for Dawn (the `webgpu` package): the NVIDIA ICD's GL dispatch libraries on a GPU
#   server, or Mesa lavapipe >= 24 on a machine without a GPU (Debian 12 needs bookworm-backports; its own
#   Mesa 22 is rejected by Dawn).
# - With --browser: Debian's Chromium, for the browser tests (Playwright drives the system browser; no
#   browser download).
# Idempotent and quick when everything is present, so `npm start` and `npm test` run it every time.
set -euo pipefail
quiet=0; browser=0
for a in "$@"; do case "$a" in --quiet) quiet=1 ;; --browser) browser=1 ;; *) echo "setup.sh: unknown option $a" >&2; exit 2 ;; esac; done
say() { [ "$quiet" = 1 ] || echo "setup: $*"; }
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "setup: Node.js >= 20 is required (found: $(node --version 2>/dev/null || echo none)). Install Node 20 LTS, then rerun." >&2
  exit 1
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund >/dev/null
fi

# ---- system packages (Debian/Ubuntu) ----
if [ "$(uname -s)" != Linux ]; then say "not Linux: skipping system packages (macOS/Windows use Metal/D3D12 through Dawn)"; exit 0; fi
if ! command -v dpkg-query >/dev/null; then say "not a Debian-like system: make sure a Vulkan driver is installed"; exit 0; fi

have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
version_of() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }
need=(); backports=0
nvidia_icd=$(ls /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json 2>/dev/null | head -n 1 || true)
if [ -n "$nvidia_icd" ] || [ -e /dev/nvidia0 ]; then
  for p in libvulkan1 libglvnd0 libegl1 libgl1 libglx0 libgles2 libopengl0; do have "$p" || need+=("$p"); done
else
  mesa=$(version_of mesa-vulkan-drivers)
  mesa_major=${mesa%%.*}; mesa_major=${mesa_major##*:}
  if [ -z "$mesa" ] || [ "${mesa_major:-0}" -lt 24 ]; then
    need+=(mesa-vulkan-drivers libvulkan1)
    if grep -qs 'VERSION_CODENAME=bookworm' /etc/os-release; then backports=1; fi
  fi
fi
if [ "$browser" = 1 ] && ! command -v chromium >/dev/null && [ ! -x /usr/bin/chromium ]; then need+=(chromium); fi
[ ${#need[@]} -eq 0 ] && exit 0

plan="apt-get update && apt-get install -y ${need[*]}"
if [ "$backports" = 1 ]; then
  plan="echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/bookworm-backports.list && apt-get update && apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1"
  rest=(); for p in "${need[@]}"; do case "$p" in mesa-vulkan-drivers|libvulkan1) ;; *) rest+=("$p") ;; esac; done
  [ ${#rest[@]} -gt 0 ] && plan="$plan && apt-get install -y ${rest[*]}"
fi
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then plan="sudo sh -c \"$plan\""; else
    echo "setup: missing system packages: ${need[*]}. Run as root:" >&2
    echo "  $plan" >&2
    exit 1
  fi
fi
echo "setup: installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! sh -c "$plan" >/tmp/rdpp-setup-apt.log 2>&1; then
  echo "setup: installing system packages failed (log: /tmp/rdpp-setup-apt.log). Command was:" >&2
  echo "  $plan" >&2
  tail -n 20 /tmp/rdpp-setup-apt.log >&2
  exit 1
fi
