#!/usr/bin/env bash
# Prepares .device/ for a GPU machine without network: the Deno binary as an npm
# tarball and a DENO_DIR cache holding every npm package the checks import.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .device
deno_version=2.9.6
tarball=".device/deno-linux-x64-glibc-${deno_version}.tgz"
if [ ! -f "$tarball" ]; then
  (cd .device && npm pack "@deno/linux-x64-glibc@${deno_version}" --silent >/dev/null)
  mv ".device/deno-linux-x64-glibc-${deno_version}.tgz" "$tarball" 2>/dev/null || true
fi
# The pinned Deno (npm ci --prefix tools), else the one on PATH.
deno_bin="${DENO:-tools/node_modules/.bin/deno}"
[ -x "$deno_bin" ] || deno_bin="$(command -v deno)"
# The cache must not depend on a node_modules folder that will not travel.
DENO_DIR=.device/deno_dir "$deno_bin" cache --node-modules-dir=none \
  mod.ts tests/*_test.ts bench/*.ts examples/*.ts scripts/soak.ts
du -sh .device
