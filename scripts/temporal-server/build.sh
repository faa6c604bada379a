#!/usr/bin/env bash
# Builds the self-hosted Temporal server the production-shape tests run (go.temporal.io/server: the
# `server` binary and its SQL schema tool `sql`), once, and caches them by version under
# $HOME/.cache/pgops/temporal-server/<version>/bin. Idempotent: it does nothing when both are there.
# Called by scripts/setup.sh --kubernetes (npm test) and by `npm run temporal:cluster`.
#
# The module declares a Go newer than Debian's, so the build names the toolchain the Go module proxy
# serves (GOTOOLCHAIN, about 76 MB once). About 3.5 minutes on a fresh 2-core machine.
# See ../shared/design/temporal-server.md and docs/temporal-cluster.md.
set -euo pipefail

TEMPORAL_SERVER_VERSION="${PGOPS_TEMPORAL_SERVER_VERSION:-v1.32.2}"
TOOLCHAIN="${PGOPS_TEMPORAL_GOTOOLCHAIN:-go1.27.3}"
bin="${PGOPS_TEMPORAL_SERVER_CACHE:-$HOME/.cache/pgops/temporal-server}/$TEMPORAL_SERVER_VERSION/bin"

say() { printf '[temporal-server-build] %s\n' "$*" >&2; }

if [ -x "$bin/server" ] && [ -x "$bin/sql" ]; then
  say "cached in $bin"
  exit 0
fi
command -v go >/dev/null || { say "Go is required to build the Temporal server"; exit 1; }
say "building go.temporal.io/server $TEMPORAL_SERVER_VERSION (server and sql) into $bin, about 3.5 min once"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One package at a time: the machine has 2 cores and is shared.
for cmd in server tools/sql; do
  GOTOOLCHAIN="$TOOLCHAIN" GOFLAGS="${GOFLAGS:+$GOFLAGS }-p=1" CGO_ENABLED=0 GOBIN="$work" \
    go install "go.temporal.io/server/cmd/$cmd@$TEMPORAL_SERVER_VERSION"
done
mkdir -p "$bin"
# Moved into place last, so that a killed build leaves no half a cache.
mv "$work/sql" "$bin/sql"
mv "$work/server" "$bin/server"
say "built: $("$bin/server" --version 2>&1 | head -1)"
