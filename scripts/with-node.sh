#!/usr/bin/env bash
# Runs a command with the project's Node.js (scripts/node-runtime.sh) first on PATH, so that npm,
# npx, tsx, mocha and every `node` they spawn run on it. Usage: bash scripts/with-node.sh <command…>
set -euo pipefail
bin=$(bash "$(dirname "$0")/node-runtime.sh")
export PATH="$bin:$PATH"
exec "$@"
