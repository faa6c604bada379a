#!/usr/bin/env bash
# Installs what temporal-postgres-ops needs on a fresh machine, and does nothing when it is all
# there: Node.js 24 LTS (when the machine's is older than 22.19), npm packages, the Temporal CLI (built with go
# install, v1.5.1), and PostgreSQL 15's server binaries, btrfs-progs and Ceph (mon, OSD, rbd, rbd-fuse). Called by
# `npm run demo`, `npm test` and .ci/run.
# The proxy serves CLI v1.9.1 too, but it does not build from there: its go.mod replaces the nested module
# github.com/temporalio/cli/cliext with ./cliext, which is in neither its module zip nor the proxy.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else say "need root for: $*"; return 1; fi; }

# Node.js: the machine's when it is 22.19+, else Node.js 24 LTS fetched once from the npm registry
# into ~/.cache/pgops/node/<version> (scripts/node-runtime.sh). Everything below runs on it.
node_bin=$(bash scripts/node-runtime.sh)
export PATH="$node_bin:$PATH"

# npm packages: install when node_modules is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)"
  # npm 11 can leave optional platform packages of @swc/core out of the lock file and then refuse
  # its own lock in `npm ci`; `npm install` honours the same locked versions.
  npm ci --no-audit --no-fund --loglevel=error 2>/dev/null || {
    say "npm ci refused the lock file; installing the same locked versions with npm install"
    npm install --no-audit --no-fund --loglevel=error
  }
fi

# Temporal CLI: on PATH, in $(go env GOPATH)/bin, or built now.
temporal_bin=""
if command -v temporal >/dev/null; then temporal_bin=$(command -v temporal)
elif command -v go >/dev/null && [ -x "$(go env GOPATH)/bin/temporal" ]; then temporal_bin="$(go env GOPATH)/bin/temporal"
fi
if [ -z "$temporal_bin" ]; then
  command -v go >/dev/null || { say "the Temporal CLI is missing and Go is not installed to build it"; exit 1; }
  say "building the Temporal CLI: go install github.com/temporalio/cli/cmd/temporal@v1.5.1 (a few minutes, once)"
  go install github.com/temporalio/cli/cmd/temporal@v1.5.1
fi

# PostgreSQL 15 server binaries (initdb, pg_ctl, pg_waldump...). Debian's package would create
# and start a "main" cluster on 5432: tell postgresql-common not to.
pg_bin="${PGOPS_PG_BIN:-/usr/lib/postgresql/15/bin}"
if [ ! -x "$pg_bin/initdb" ] || [ ! -x "$pg_bin/pg_ctl" ]; then
  say "installing PostgreSQL 15 server binaries (apt-get install postgresql-15)"
  as_root mkdir -p /etc/postgresql-common
  if [ ! -f /etc/postgresql-common/createcluster.conf ]; then echo 'create_main_cluster = false' | as_root tee /etc/postgresql-common/createcluster.conf >/dev/null; fi
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends postgresql-15 postgresql-client-15 >/dev/null
fi
# Storage for snapshot backups: btrfs (copy-on-write snapshots), and a real Ceph (one monitor and
# one memstore OSD, started by the tests) with rbd and rbd-fuse for PostgreSQL on an RBD image.
missing=()
for pair in btrfs:btrfs-progs ceph-mon:ceph-mon ceph-osd:ceph-osd rbd:ceph-common rbd-fuse:rbd-fuse fsfreeze:util-linux; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing storage tools: ${missing[*]} (apt-get)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's chromium for the Temporal UI test (driven by playwright-core; a test tool's own
# browser download does not work everywhere).
if ! command -v chromium >/dev/null; then
  say "installing chromium (apt-get) for the browser test of the Temporal UI"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  say "creating the postgres OS user (PostgreSQL refuses to run as root)"
  useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi
# With --kubernetes (npm test): the test cluster's Kubernetes, kwok, etcd and snapshot-controller
# (scripts/k8s/build.sh: about 16 min once, then cached under ~/.cache/pgops/k8s), and, as root,
# the real node's containerd and PostgreSQL image (without them its tests are skipped); and the
# self-hosted Temporal server of the production-shape tests (scripts/temporal-server/build.sh:
# about 3.5 min once, then cached under ~/.cache/pgops/temporal-server).
if [ "${1:-}" = --kubernetes ]; then
  bash scripts/temporal-server/build.sh
  bash scripts/k8s/build.sh
  if [ "$(id -u)" = 0 ]; then bash scripts/k8s/node-image.sh || say "the real node is not prepared: its tests will be skipped"; fi
fi
say "ready: node $(node --version) ($node_bin), temporal ${temporal_bin:-$(go env GOPATH)/bin/temporal}, PostgreSQL $("$pg_bin/pg_ctl" --version | awk '{print $3}')"
