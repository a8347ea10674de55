#!/usr/bin/env bash
# Prepares .device/ for a GPU machine without network: the Deno binary as an npm
# tarball and a DENO_DIR cache holding every module and npm package the checks
# import (scripts/device_check.sh runs with --cached-only there). Name .device
# in the device tool's `carry`. Prints the sizes; fails when .device/ reaches
# 60 MiB (what travels, the working tree included, must stay under 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .device
# The pinned Deno release, declared once in tools/package.json.
deno_version=$(node -p "require('./tools/package.json').devDependencies.deno")
tarball=".device/deno-linux-x64-glibc-${deno_version}.tgz"
if [ ! -f "$tarball" ]; then
  (cd .device && npm pack "@deno/linux-x64-glibc@${deno_version}" --silent >/dev/null)
fi
[ -f "$tarball" ] || {
  echo "device_prepare: npm pack did not give $tarball" >&2
  exit 1
}
# The pinned Deno (npm ci --prefix tools), else the one on PATH.
deno_bin="${DENO:-tools/node_modules/.bin/deno}"
[ -x "$deno_bin" ] || deno_bin="$(command -v deno)"
# The cache must not depend on a node_modules folder that will not travel.
# Rebuilt from scratch, so nothing stale (or a rehearsal's leftovers) travels.
rm -rf .device/deno_dir
DENO_DIR=.device/deno_dir "$deno_bin" cache --node-modules-dir=none \
  mod.ts tests/*_test.ts bench/*.ts examples/*.ts scripts/soak.ts \
  scripts/device_facts.ts scripts/device_probe.ts scripts/build_emulator.ts

mib() { echo $((($1 + 1048575) / 1048576)); }
device_bytes=$(du -sb .device | cut -f1)
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -n 1 | cut -f1)
du -sh .device/* | sed 's/^/  /'
echo ".device: $(mib "$device_bytes") MiB; with the working tree ($(mib "$tree_bytes") MiB), $(mib $((device_bytes + tree_bytes))) MiB travel (limit 64 MiB)"
if [ "$device_bytes" -ge $((60 * 1048576)) ]; then
  echo "device_prepare: .device/ is $(mib "$device_bytes") MiB, over 60 MiB: it would not travel with the working tree" >&2
  exit 1
fi
if [ $((device_bytes + tree_bytes)) -ge $((64 * 1048576)) ]; then
  echo "device_prepare: .device/ and the working tree together reach 64 MiB" >&2
  exit 1
fi
