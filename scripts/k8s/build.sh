#!/usr/bin/env bash
# Builds the Kubernetes parts the tests run, once, and caches them by version under
# $HOME/.cache/pgops/k8s/<version>/bin: kube-apiserver, kube-controller-manager, kube-scheduler and
# kubelet from k8s.io/kubernetes' Go modules, kwok, and etcd from Debian's etcd-server package.
# Idempotent: it does nothing when the binaries are there. Called by scripts/setup.sh.
#
# `go install k8s.io/kubernetes/cmd/...@version` is refused (kubernetes' go.mod has replace
# directives pointing at ./staging), so the commands are built from a throwaway module that
# requires k8s.io/kubernetes and replaces every staging module by its published v0.x version.
# See ../shared/design/real-kubernetes.md. About 10 minutes on a fresh 2-core machine.
set -euo pipefail

K8S_VERSION=v1.33.13
STAGING_VERSION=v0.33.13
KWOK_VERSION=v0.7.0
SNAPSHOTTER_VERSION=v8.7.0
cache="${PGOPS_K8S_CACHE:-$HOME/.cache/pgops/k8s}/$K8S_VERSION"
bin="$cache/bin"
k8s_commands=(kube-apiserver kube-controller-manager kube-scheduler kubelet)

say() { printf '[k8s-build] %s\n' "$*" >&2; }
have() { [ -x "$bin/$1" ]; }
# One go build at a time and one package at a time: the machine has 2 cores and is shared.
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-p=1"
export CGO_ENABLED=0

mkdir -p "$bin"
crds="$cache/crds"
kwok_crds=(portforwards clusterportforwards execs clusterexecs)
# The group-snapshot CRDs too: without them the snapshot-controller waits 30 s for them at start.
snapshot_crds=(snapshot.storage.k8s.io_volumesnapshot{classes,contents,s} groupsnapshot.storage.k8s.io_volumegroupsnapshot{classes,contents,s})
missing=()
for c in "${k8s_commands[@]}" kwok etcd; do have "$c" || missing+=("$c"); done
# Optional: if it did not build once, the tests run without it (and say so) until the marker goes.
have snapshot-controller || [ -f "$bin/snapshot-controller.failed" ] || missing+=(snapshot-controller)
for k in "${kwok_crds[@]}"; do [ -f "$crds/kwok/kwok.x-k8s.io_$k.yaml" ] || { missing+=(kwok-crds); break; }; done
for k in "${snapshot_crds[@]}"; do [ -f "$crds/snapshot/$k.yaml" ] || { missing+=(snapshot-crds); break; }; done
if [ ${#missing[@]} -eq 0 ]; then
  say "cached in $bin"
  exit 0
fi
command -v go >/dev/null || { say "Go is required to build ${missing[*]}"; exit 1; }
say "building ${missing[*]} into $bin"

# etcd: Debian's etcd-server (3.4, which kube-apiserver 1.33 accepts). The package is only
# downloaded and unpacked, not installed, so no system etcd service is created or started.
if ! have etcd; then
  work=$(mktemp -d)
  (cd "$work" && apt-get download -qq etcd-server >/dev/null 2>&1) || {
    (command -v sudo >/dev/null && sudo apt-get update -qq) || apt-get update -qq
    (cd "$work" && apt-get download -qq etcd-server)
  }
  dpkg-deb -x "$work"/etcd-server_*.deb "$work/root"
  install -m 0755 "$work/root/usr/bin/etcd" "$bin/etcd.tmp" && mv "$bin/etcd.tmp" "$bin/etcd"
  rm -rf "$work"
  say "etcd $("$bin/etcd" --version | head -1)"
fi

# Kubernetes commands from the throwaway module.
need_k8s=0
for c in "${k8s_commands[@]}"; do have "$c" || need_k8s=1; done
if [ "$need_k8s" = 1 ]; then
  mod="$cache/module"
  mkdir -p "$mod"
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
  [ -f "$gomod" ] || { say "could not download k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
  {
    echo "module pgops.local/k8sbuild"
    echo
    # The same language version and GODEBUG defaults as kubernetes' own build.
    grep -E '^(go|godebug) ' "$gomod"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    # Every `k8s.io/X => ./staging/src/k8s.io/X` of kubernetes' go.mod becomes `=> k8s.io/X v0.x`.
    sed -n 's#^\s*\(k8s\.io/[A-Za-z0-9._/-]*\) => \./staging/.*#replace \1 => \1 '"$STAGING_VERSION"'#p' "$gomod"
  } >"$mod/go.mod"
  say "$(grep -c '^replace' "$mod/go.mod") staging modules replaced by their $STAGING_VERSION releases"
  (cd "$mod" && go get "k8s.io/kubernetes@$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" "k8s.io/kubernetes/cmd/kube-controller-manager@$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kube-scheduler@$K8S_VERSION" "k8s.io/kubernetes/cmd/kubelet@$K8S_VERSION")
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=33 -X $pkg.gitTreeState=clean"
  done
  for c in "${k8s_commands[@]}"; do
    have "$c" && continue
    start=$SECONDS
    (cd "$mod" && go build -trimpath -ldflags "$ldflags" -o "$bin/$c.tmp" "k8s.io/kubernetes/cmd/$c")
    mv "$bin/$c.tmp" "$bin/$c"
    say "$c built in $((SECONDS - start)) s"
  done
fi

# kwok has no replace directives: go install works, into a private GOBIN.
if ! have kwok; then
  start=$SECONDS
  GOBIN="$cache/gobin" go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  mv "$cache/gobin/kwok" "$bin/kwok"
  rmdir "$cache/gobin" 2>/dev/null || true
  say "kwok built in $((SECONDS - start)) s"
fi

# kwok's PortForward/Exec CRDs, from the same module: the harness installs them in the cluster.
mkdir -p "$crds/kwok"
kwok_dir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",\?$/\1/p')
for k in "${kwok_crds[@]}"; do
  install -m 0644 "$kwok_dir/kustomize/crd/bases/kwok.x-k8s.io_$k.yaml" "$crds/kwok/"
done
# VolumeSnapshot CRDs, as the external-snapshotter client module ships them (no CSI driver is
# available through the module proxy: the tests play the CSI side themselves).
mkdir -p "$crds/snapshot"
client_dir=$(go mod download -json "github.com/kubernetes-csi/external-snapshotter/client/v8@$SNAPSHOTTER_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",\?$/\1/p')
for k in "${snapshot_crds[@]}"; do
  install -m 0644 "$client_dir/config/crd/$k.yaml" "$crds/snapshot/"
done

# The snapshot-controller: its go.mod has replace directives too, so it is built from a
# throwaway module that repeats them (./client becomes the published client module).
if ! have snapshot-controller && [ ! -f "$bin/snapshot-controller.failed" ]; then
  start=$SECONDS
  snap_dir=$(go mod download -json "github.com/kubernetes-csi/external-snapshotter/v8@$SNAPSHOTTER_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",\?$/\1/p')
  mod="$cache/snapshot-module"
  mkdir -p "$mod"
  {
    echo "module pgops.local/snapshotbuild"
    echo
    grep -E '^go ' "$snap_dir/go.mod"
    echo
    echo "require github.com/kubernetes-csi/external-snapshotter/v8 $SNAPSHOTTER_VERSION"
    echo
    sed -n 's#^replace github.com/kubernetes-csi/external-snapshotter/client/v8 => ./client#replace github.com/kubernetes-csi/external-snapshotter/client/v8 => github.com/kubernetes-csi/external-snapshotter/client/v8 '"$SNAPSHOTTER_VERSION"'#p; /^replace .* => \./d; s#^replace \(.* => [^ ]* v[^ ]*\)$#replace \1#p' "$snap_dir/go.mod" | sort -u
  } >"$mod/go.mod"
  if (cd "$mod" && go get "github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller@$SNAPSHOTTER_VERSION" \
    && go build -trimpath -ldflags "-s -w" -o "$bin/snapshot-controller.tmp" github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller); then
    mv "$bin/snapshot-controller.tmp" "$bin/snapshot-controller"
  else
    touch "$bin/snapshot-controller.failed"
    say "the snapshot-controller did not build: the VolumeSnapshot tests will be skipped (remove $bin/snapshot-controller.failed to try again)"
  fi
  say "snapshot-controller step: $((SECONDS - start)) s"
fi
say "ready in $bin"
