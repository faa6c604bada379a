#!/usr/bin/env bash
# Builds the pg-ops worker image without a container engine or a registry: what deploy/Dockerfile
# describes, as a `docker save` archive that the test harness imports into the real node's
# containerd (`ctr images import`). Three layers:
#   1. the node image's root file system (Debian bookworm with postgresql-15: pg_waldump, pg_dump);
#   2. the Node.js binary that runs this script (the project's supported runtime);
#   3. /app: package.json, the compiled dist/ with its prebuilt workflow bundle (`npm run build`)
#      and the production dependencies (`npm ci --omit=dev`, cached by lockfile and Node version).
# Usage: bash scripts/k8s/worker-image.sh [output.tar]   (default: $PGOPS_K8S_CACHE/node/worker-image.tar)
# Needs `bash scripts/k8s/node-image.sh` first. The image is tagged docker.io/library/temporal-postgres-ops:<version>.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="${PGOPS_K8S_CACHE:-$HOME/.cache/pgops/k8s}/node"
base="$cache/postgres-image-2.tar"
out="${1:-$cache/worker-image.tar}"
say() { printf '[worker-image] %s\n' "$*" >&2; }

[ -f "$base" ] || {
  say "missing $base: run \`bash scripts/k8s/node-image.sh\` first"
  exit 1
}
node_bin="$(readlink -f "$(command -v node)")"
node_version="$(node -p process.version)"
version="$(node -p "require('$root/package.json').version")"

work="$(mktemp -d /tmp/pgops-worker-image-XXXXXX)"
trap 'rm -rf "$work"' EXIT

say "compiling (npm run build)"
(cd "$root" && npm run -s build >"$work/build.log" 2>&1) || {
  cat "$work/build.log" >&2
  exit 1
}

deps_key="$( (cat "$root/package-lock.json"; echo "$node_version") | sha256sum | cut -c1-16)"
deps="$cache/worker-deps-$deps_key"
if [ ! -d "$deps/node_modules" ]; then
  say "production dependencies (npm ci --omit=dev) into $deps"
  rm -rf "$deps.tmp" && mkdir -p "$deps.tmp"
  cp "$root/package.json" "$root/package-lock.json" "$deps.tmp/"
  # as in setup.sh: npm 11 may refuse its own lock in `npm ci` (optional @swc/core platform
  # packages); `npm install` honours the same locked versions.
  (cd "$deps.tmp" && { npm ci --omit=dev --no-audit --no-fund --loglevel=error >/dev/null 2>&1 ||
    npm install --omit=dev --no-audit --no-fund --loglevel=error >/dev/null; })
  # The Temporal core bridge ships a native library for every platform; the image runs one.
  find "$deps.tmp/node_modules/@temporalio/core-bridge/releases" -mindepth 1 -maxdepth 1 \
    ! -name x86_64-unknown-linux-gnu -exec rm -rf {} +
  rm -rf "$deps.tmp/node_modules/@temporalio/core-bridge/sdk-core"
  rm -rf "$deps" && mv "$deps.tmp" "$deps"
fi

say "layers"
mkdir -p "$work/image" "$work/runtime/usr/local/bin" "$work/app/app"
tar -xf "$base" -C "$work/image" layer.tar
mv "$work/image/layer.tar" "$work/image/base.tar"
cp "$node_bin" "$work/runtime/usr/local/bin/node"
tar --numeric-owner --owner=0 --group=0 -C "$work/runtime" -cf "$work/image/runtime.tar" .
cp -r "$root/package.json" "$root/dist" "$deps/node_modules" "$work/app/app/"
tar --numeric-owner --owner=0 --group=0 -C "$work/app" -cf "$work/image/app.tar" .

cd "$work/image"
ids=()
for layer in base runtime app; do ids+=("\"sha256:$(sha256sum "$layer.tar" | cut -d' ' -f1)\""); done
cat >config.json <<EOF
{"architecture":"amd64","os":"linux","config":{"User":"1000:1000","WorkingDir":"/app","Env":["PATH=/usr/local/bin:/usr/lib/postgresql/15/bin:/usr/sbin:/usr/bin:/sbin:/bin","NODE_ENV=production","PGOPS_PG_BIN=/usr/lib/postgresql/15/bin","HOME=/tmp"],"Cmd":["node","dist/worker.js"]},"rootfs":{"type":"layers","diff_ids":[$(
  IFS=,
  echo "${ids[*]}"
)]}}
EOF
echo "[{\"Config\":\"config.json\",\"RepoTags\":[\"docker.io/library/temporal-postgres-ops:$version\"],\"Layers\":[\"base.tar\",\"runtime.tar\",\"app.tar\"]}]" >manifest.json
mkdir -p "$(dirname "$out")"
tar -cf "$out.tmp" manifest.json config.json base.tar runtime.tar app.tar
mv "$out.tmp" "$out"
say "image ready: $out (temporal-postgres-ops:$version, Node $node_version)"
