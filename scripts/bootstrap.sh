#!/usr/bin/env bash
# Install what the project needs on a fresh machine, idempotently:
#   - Debian packages (the reference tools and test peers), only those missing;
#   - uv, then the locked Python environment in .venv;
#   - the local control-plane binaries, built once from pinned Go modules into ~/.cache.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(docker-registry skopeo xorriso openssl mmdebstrap chromium util-linux)
# The real nodes of the local cluster (solutions dev cluster up --real-nodes): the container
# runtime, runc and the CNI plugins (docs/decisions/0005-real-nodes.md); iproute2 for the bridge,
# nftables for kube-proxy.
APT_PACKAGES+=(containerd runc containernetworking-plugins iproute2 iptables nftables)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing Debian packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
    exit 2
  fi
  echo "==> installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v uv >/dev/null 2>&1; then
  echo "==> installing uv"
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
  export PATH="$HOME/.local/bin:$PATH"
fi

echo "==> Python environment (uv sync --locked)"
# Bytecode compiled once, as an installed package has it: a shell with PYTHONDONTWRITEBYTECODE
# set would otherwise compile ~350 modules (~0.8 s) on every `solutions` command.
uv sync --locked --quiet --compile-bytecode
.venv/bin/python -m compileall -q src/metalk8s_solutions

echo "==> control-plane binaries (built once from Go modules, cached)"
.venv/bin/python -m metalk8s_solutions.testing.binaries >/dev/null
.venv/bin/python -c 'from metalk8s_solutions.testing.podtool import ensure_podtool; ensure_podtool()'
