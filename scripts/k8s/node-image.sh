#!/usr/bin/env bash
# Opt-in: prepares the real kubelet node of the test cluster. Installs containerd, runc and the
# CNI plugins from Debian's packages, and builds a PostgreSQL 15 container image without a
# registry: a Debian bookworm root file system (debootstrap) with postgresql-15 (and ceph-common,
# so that the same image serves as the test's Rook-toolbox-like pod), packed as a
# `docker save` archive the harness imports into its own containerd. The image's default command
# sleeps, so the same image also serves as the pod sandbox (tagged registry.k8s.io/pause:3.10).
# Cached under $HOME/.cache/pgops/k8s/node; about a minute. Needs root.
set -euo pipefail

node="${PGOPS_K8S_CACHE:-$HOME/.cache/pgops/k8s}/node"
image="$node/postgres-image-2.tar" # -2: with ceph-common (the toolbox pod)
say() { printf '[k8s-node] %s\n' "$*" >&2; }

missing=()
for pair in containerd:containerd runc:runc ctr:containerd debootstrap:debootstrap; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
fi
if [ -f "$image" ]; then
  say "image cached: $image"
  exit 0
fi

rm -rf "$node/rootfs" "$node/image"
mkdir -p "$node/image"
say "debootstrap bookworm with postgresql-15 into $node/rootfs"
debootstrap --variant=minbase --include=postgresql-15,procps,ceph-common bookworm "$node/rootfs" http://deb.debian.org/debian >"$node/debootstrap.log"
rm -rf "$node/rootfs/var/cache/apt/archives/"*.deb "$node/rootfs/var/lib/apt/lists/"* \
  "$node/rootfs/usr/share/doc" "$node/rootfs/usr/share/man" "$node/rootfs/usr/share/locale"

cd "$node/image"
tar --numeric-owner -C "$node/rootfs" -cf layer.tar .
digest=$(sha256sum layer.tar | cut -d' ' -f1)
cat >config.json <<EOF
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/sleep","infinity"]},"rootfs":{"type":"layers","diff_ids":["sha256:$digest"]}}
EOF
echo '[{"Config":"config.json","RepoTags":["docker.io/pgops/postgres:15","registry.k8s.io/pause:3.10"],"Layers":["layer.tar"]}]' >manifest.json
tar -cf "$image.tmp" manifest.json config.json layer.tar
mv "$image.tmp" "$image"
rm -rf "$node/image" "$node/rootfs"
say "image ready: $image"
