#!/usr/bin/env bash
# `make demo`: the main journey on the embedded default, narrated for a new user.
# It starts a local control plane and a local OCI registry (left running for you to explore),
# then shows that they work.  Later stages of the product grow this into the whole Solution
# journey: import -> activate -> environment -> deploy -> upgrade -> remove.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

STATE="${SOLUTIONS_DEMO_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/metalk8s-solutions/demo}"
CLUSTER="$STATE/cluster"
REGISTRY="$STATE/registry"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Starting a local Kubernetes control plane (etcd, kube-apiserver, controllers, scheduler, 2 KWOK nodes)"
solutions dev cluster up --nodes 2 --state-dir "$CLUSTER"
export KUBECONFIG="$CLUSTER/admin.kubeconfig"
KUBECTL="$(python -m metalk8s_solutions.testing.binaries | awk '$1=="kubectl"{print $2}')"

step "Starting a local OCI registry (docker-registry)"
solutions dev registry up --state-dir "$REGISTRY"
REG="$(solutions dev registry status --state-dir "$REGISTRY" -o json | python -c 'import json,sys; print(json.load(sys.stdin)["address"])')"

step "The cluster answers: nodes"
"$KUBECTL" get nodes -o wide

step "A Deployment becomes Available on the fake nodes"
"$KUBECTL" create namespace demo --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
"$KUBECTL" -n demo create deployment hello --image="$REG/demo/hello:1.0" --replicas=2 \
  --dry-run=client -o yaml | "$KUBECTL" apply -f -
"$KUBECTL" -n demo rollout status deployment/hello --timeout=60s
"$KUBECTL" -n demo get pods -o wide

step "The registry answers: push a small image with skopeo, read it back"
IMG="$(mktemp -d)"
trap 'rm -rf "$IMG"' EXIT
python - "$IMG" <<'PY'
import sys
from pathlib import Path
from metalk8s_solutions.testing.images import write_test_image
img = write_test_image(Path(sys.argv[1]), "hello:1.0", [{"hello.txt": b"hello from Solutions\n"}])
print("built", img.ref, img.manifest_digest)
PY
skopeo copy --quiet --preserve-digests --dest-tls-verify=false "oci:$IMG:hello:1.0" "docker://$REG/demo/hello:1.0"
skopeo inspect --tls-verify=false "docker://$REG/demo/hello:1.0" | python -c 'import json,sys; d=json.load(sys.stdin); print("registry has", d["Name"], d["Digest"])'

step "Done. Both are still running:"
cat <<TXT
  control plane:  solutions dev cluster status --state-dir $CLUSTER
                  export KUBECONFIG=$KUBECONFIG
                  kubectl: $KUBECTL
  registry:       http://$REG   (solutions dev registry status --state-dir $REGISTRY)
  stop both:      solutions dev cluster down --state-dir $CLUSTER
                  solutions dev registry down --state-dir $REGISTRY
  (solutions is in $PWD/.venv/bin)
TXT
