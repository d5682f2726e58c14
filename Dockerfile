# breakwater container image.
#
#   podman build -t breakwater .        (or docker build)
#   podman run --rm -p 9901:9901 -e BREAKWATER_ADMIN_TOKEN="$(openssl rand -hex 32)" breakwater
#   podman run --rm -e BREAKWATER_ADMIN_TOKEN=0123456789abcdef breakwater validate /etc/breakwater/breakwater.yaml
# (the default config binds the admin API to 0.0.0.0, which requires admin.token
# from $BREAKWATER_ADMIN_TOKEN)
#
# Two stages: `build` compiles TypeScript with the dev dependencies; `runtime`
# holds only the production dependencies and the compiled dist/, so neither
# the compiler nor the test tooling ships. scripts/test-container.sh builds and
# runs this file unchanged.

# Node 24 LTS on Debian bookworm, slim variant. Overridable so a mirror or a
# pinned digest can be used: --build-arg BASE=registry.example/node@sha256:...
ARG BASE=node:24-bookworm-slim

FROM ${BASE} AS build
WORKDIR /src
# Manifests first: the dependency layer is reused while only src/ changes.
# --ignore-scripts skips our own `prepare` (src/ is not copied yet); no
# dependency needs an install script. The build runs explicitly below.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM ${BASE} AS runtime
WORKDIR /app
# jemalloc, preloaded below in place of glibc's malloc. Linked at a path that
# does not depend on the architecture's library directory.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libjemalloc2 \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s "$(dpkg -L libjemalloc2 | grep '/libjemalloc\.so\.2$')" /usr/local/lib/libjemalloc.so.2
# Production dependencies only, from the same lockfile; no install scripts run
# in the image that ships.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force
COPY --from=build /src/dist ./dist
# The default config: the same file the Kubernetes example ships as its
# ConfigMap; its admin listener binds 0.0.0.0:9901 so probes and scrapes from
# outside the container reach it. Mount a directory over /etc/breakwater (not
# a single file) to replace it: breakwater watches the directory and reloads.
COPY deploy/breakwater.yaml /etc/breakwater/breakwater.yaml

ENV NODE_ENV=production \
    BREAKWATER_CONFIG=/etc/breakwater/breakwater.yaml
# Heap sizing for a small sidecar (deploy/deployment.yaml limits it to 192Mi):
# - max-old-space-size=128 (MiB) caps the long-lived heap well under that
#   limit, leaving room for the young generation, code and socket buffers,
#   so V8 collects harder instead of the kernel OOM-killing the pod;
# - max-semi-space-size=4 (MiB): under load the young generation is what
#   grows RSS (Node's default lets it reach 64 MiB); 4 MiB semi-spaces cut peak
#   RSS by ~40 MiB;
# - jemalloc with one arena and no decay delay (MALLOC_CONF): freed native
#   memory (V8's compiler zones, socket buffers) goes back to the kernel at
#   once instead of staying in malloc's free lists; under load that takes
#   peak private memory from ~62 to ~45 MiB for ~3 % more CPU per request;
# - MALLOC_ARENA_MAX=1 only matters if jemalloc is missing (a rebuilt image
#   without it): then glibc's malloc runs with one arena instead of one per
#   thread, ~12 MiB less than its default.
# Together: ~45 MiB private / ~108 MiB resident instead of ~110 / ~165 under
# load, for ~13 % more CPU per request (bench/README.md, "Memory").
# Override NODE_OPTIONS in the pod spec when the memory limit changes.
# `npm run bench` measures these settings in its "as shipped" row.
ENV NODE_OPTIONS="--max-old-space-size=128 --max-semi-space-size=4" \
    LD_PRELOAD=/usr/local/lib/libjemalloc.so.2 \
    MALLOC_CONF="narenas:1,dirty_decay_ms:0,muzzy_decay_ms:0" \
    MALLOC_ARENA_MAX=1

# The official image's unprivileged `node` user, by number: Kubernetes can
# only prove runAsNonRoot for a numeric USER. The app's files stay root-owned,
# so the process cannot rewrite its own code.
USER 1000:1000

# 9901: admin (/healthz, /readyz, /metrics); 15001/15002: the example
# listeners (bound to the pod's loopback in deploy/breakwater.yaml).
EXPOSE 9901 15001 15002

# SIGTERM starts the drain (/readyz fails, in-flight requests finish, exit 0).
STOPSIGNAL SIGTERM
# Exec form: node is PID 1 and receives SIGTERM itself (no shell in between).
# breakwater installs handlers for SIGTERM, SIGINT and SIGHUP and starts no
# child processes, so it needs no init process to forward signals or reap.
ENTRYPOINT ["node", "/app/dist/cli.js"]
