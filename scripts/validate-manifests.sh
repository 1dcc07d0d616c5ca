#!/usr/bin/env bash
# Validates every Kubernetes/Istio manifest under istio/ against the real schemas, twice:
#   1. kubernetes-models + @kubernetes-models/istio + @kubernetes-models/prometheus-operator (npm): the
#      JSON schemas generated from the Kubernetes OpenAPI spec and the Istio / Prometheus Operator CRDs
#      (types, enums, required fields, patterns);
#   2. kubernetes-validate --strict (PyPI) for Kubernetes core types: unknown fields are errors.
# Then: both kustomizations render (kubectl kustomize, when kubectl is installed) and the rendered
# output validates; no manifest is left out of a kustomization; the generated PrometheusRule matches
# monitoring/rules; the companion's ConfigMap TOML passes `dwcp-analyzer check`; and every manifest in
# istio/testdata/broken/ is REJECTED (proof that the validators bite).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/artifact-tools/ensure.sh
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
fail=0
step() { echo; echo "== $*"; }

mapfile -t FILES < <(find istio -name '*.yaml' ! -name kustomization.yaml ! -path '*/testdata/*' | sort)

step "schemas (kubernetes-models, Istio and Prometheus Operator CRDs): ${#FILES[@]} files"
node scripts/artifact-tools/validate-k8s.mjs "${FILES[@]}" || fail=1

step "strict Kubernetes core types (kubernetes-validate --strict)"
"$TOOLS_PY" scripts/artifact-tools/strict-core.py "${FILES[@]}" || fail=1

step "kustomizations"
for k in istio istio/gateway-only; do
  if command -v kubectl >/dev/null; then
    out=$TMP/$(echo "$k" | tr / _).yaml
    if kubectl kustomize "$k" > "$out"; then
      echo "ok   kubectl kustomize $k: $(grep -c '^kind:' "$out") objects"
      node scripts/artifact-tools/validate-k8s.mjs "$out" | tail -1 | sed 's/^/     rendered: /'
      node scripts/artifact-tools/validate-k8s.mjs "$out" >/dev/null || fail=1
    else
      echo "FAIL kubectl kustomize $k"; fail=1
    fi
  else
    echo "skip kubectl kustomize $k (kubectl not installed; the reference check below still runs)"
  fi
done
"$TOOLS_PY" - "${FILES[@]}" <<'PY' || fail=1
import os, sys, yaml
listed = set()
bad = 0
for root, _, files in os.walk("istio"):
    if "kustomization.yaml" in files:
        k = yaml.safe_load(open(os.path.join(root, "kustomization.yaml")))
        for r in k.get("resources", []):
            p = os.path.normpath(os.path.join(root, r))
            if not os.path.exists(p):
                print(f"FAIL {root}/kustomization.yaml: resource {r} does not exist"); bad = 1
            if os.path.isfile(p):
                listed.add(p)
for f in sys.argv[1:]:
    if os.path.normpath(f) not in listed:
        print(f"FAIL {f} is in no kustomization.yaml"); bad = 1
print("ok   every manifest is listed in a kustomization" if not bad else "FAIL kustomization references")
sys.exit(bad)
PY

step "PrometheusRule is generated from monitoring/rules"
"$TOOLS_PY" scripts/gen-prometheusrule.py --check || fail=1

step "companion config in the ConfigMap (dwcp-analyzer check)"
ANALYZER=${DWCP_ANALYZER_BIN:-target/release/dwcp-analyzer}
"$TOOLS_PY" -c 'import sys,yaml; print(yaml.safe_load(open("istio/companion/configmap.yaml"))["data"]["analyzer.toml"])' > "$TMP/analyzer.toml"
if [ -x "$ANALYZER" ]; then
  if DWCP_TOKEN=check-token-0123456789 "$ANALYZER" check --config "$TMP/analyzer.toml"; then
    echo "ok   istio/companion/configmap.yaml analyzer.toml accepted by $ANALYZER"
  else
    echo "FAIL istio/companion/configmap.yaml analyzer.toml refused"; fail=1
  fi
else
  echo "FAIL $ANALYZER not built (cargo build --release -p dwcp-analyzer)"; fail=1
fi

step "deliberately broken manifests must be rejected"
for f in istio/testdata/broken/*.yaml; do
  if node scripts/artifact-tools/validate-k8s.mjs "$f" > "$TMP/a" && "$TOOLS_PY" scripts/artifact-tools/strict-core.py "$f" > "$TMP/b"; then
    echo "FAIL $f was ACCEPTED: the validators do not check what they should"; fail=1
  else
    echo "ok   $f rejected: $(grep -h '^FAIL' "$TMP/a" "$TMP/b" | head -1 | sed 's/^FAIL [^:]*: [^:]*: //' | cut -c1-150)"
  fi
done

echo
[ $fail -eq 0 ] && echo "validate-manifests: all checks passed" || echo "validate-manifests: FAILED"
exit $fail
