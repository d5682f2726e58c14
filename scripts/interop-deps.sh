#!/usr/bin/env bash
# Installs the third-party peers the interop suite (`npm run test:interop`)
# drives breakwater with, from Debian: curl, python3-requests, gunicorn,
# python3-httpbin, nginx-light, prometheus (which ships promtool),
# redis-server (the global rate limit's tests, SPEC §12),
# python3-prometheus-client (its OpenMetrics parser reads exemplars) and tmux
# (a real terminal for `breakwater top` and `breakwater tap`).
#
#   bash scripts/interop-deps.sh
#
# Idempotent: when every peer is already there it installs nothing. When one
# is missing and we are root with apt-get, it runs `apt-get update` once and
# installs the missing packages without recommends. Debian's maintainer
# scripts would start nginx, prometheus and redis-server as services; a policy-rc.d that
# refuses service starts is put in place for the duration of the install (and
# removed after, unless one was already there), so no daemon grabs a port. The
# suite starts its own instances on free loopback ports anyway.
#
# Prints the version of every peer at the end. Exits 1 when a peer is missing
# and cannot be installed (not root, no apt-get, or apt-get failed).
#
# NOTE: the peers' Python modules are Debian's, so the suite always runs
# /usr/bin/python3, never whatever `python3` comes first on PATH.
set -euo pipefail

PY=/usr/bin/python3

say() { printf '[interop-deps] %s\n' "$*"; }
die() { printf '[interop-deps] FAILED: %s\n' "$*" >&2; exit 1; }

have_py_module() { [[ -x "$PY" ]] && "$PY" -c "import $1" >/dev/null 2>&1; }

missing=()
command -v curl >/dev/null || missing+=(curl)
have_py_module requests || missing+=(python3-requests)
have_py_module gunicorn || missing+=(gunicorn)
have_py_module httpbin || missing+=(python3-httpbin)
have_py_module prometheus_client.openmetrics.parser || missing+=(python3-prometheus-client)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
command -v promtool >/dev/null || missing+=(prometheus)
command -v prometheus >/dev/null || [[ " ${missing[*]} " == *" prometheus "* ]] || missing+=(prometheus)
command -v redis-server >/dev/null || [[ -x /usr/bin/redis-server ]] || missing+=(redis-server)
command -v tmux >/dev/null || missing+=(tmux)

if ((${#missing[@]})); then
  [[ "$(id -u)" == 0 ]] || die "missing ${missing[*]}; run as root (or apt-get install them) to install"
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\n# interop-deps.sh: no service starts during the install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
  fi
  remove_policy() { if ((own_policy)); then rm -f "$policy"; fi; }
  trap remove_policy EXIT
  apt-get update -qq >/dev/null || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
  remove_policy
  trap - EXIT
fi

# Versions (and a last check that everything is really there).
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
say "curl: $(curl --version | head -n1)"
say "python: $("$PY" --version 2>&1)"
say "requests: $("$PY" -c 'import requests; print(requests.__version__)')"
say "gunicorn: $("$PY" -c 'import gunicorn; print(gunicorn.__version__)')"
say "httpbin: $("$PY" -c 'import importlib.metadata as m; print(m.version("httpbin"))' 2>/dev/null || echo present)"
say "prometheus_client: $("$PY" -c 'import importlib.metadata as m; print(m.version("prometheus_client"))' 2>/dev/null || echo present)"
say "nginx: $("$nginx_bin" -v 2>&1)"
say "promtool: $(promtool --version 2>&1 | head -n1)"
say "prometheus: $(prometheus --version 2>&1 | head -n1)"
say "redis-server: $(redis-server --version 2>&1 | head -n1)"
say "tmux: $(tmux -V)"
