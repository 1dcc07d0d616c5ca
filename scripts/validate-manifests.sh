#!/usr/bin/env bash
# Validates every Kubernetes/Istio manifest under istio/ against the real schemas, twice:
#   1. kubernetes-models + @kubernetes-models/istio + @kubernetes-models/prometheus-operator (npm): the
#      JSON schemas generated from the Kubernetes OpenAPI spec and the Istio / Prometheus Operator CRDs
#      (types, enums, required fields, patterns);
#   2. kubernetes-validate --strict (PyPI) for Kubernetes core types: unknown fields are errors.
# Then: both kustomizations render (kubectl kustomize; kubectl from scripts/artifact-tools/requirements.txt,
# required under CI) and the rendered output validates; no manifest is left out of a kustomization; the generated PrometheusRule matches
# monitoring/rules; the companion's ConfigMap TOML passes `dwcp-analyzer check`; and every manifest in
# istio/testdata/broken/ is REJECTED with the error text its `# expect:` lines name (proof that the
# validators bite, and for the right reason; a crash or an empty folder fails).
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

step "kustomizations (kubectl kustomize)"
# kubectl comes from scripts/artifact-tools/requirements.txt; without it the render check FAILS under
# CI and is skipped loudly elsewhere (need_tool, ensure.sh).
rc=0; need_tool "kubectl (kubectl kustomize)" "$TOOLS_KUBECTL" || rc=$?
[ $rc -eq 1 ] && fail=1
if [ $rc -eq 0 ]; then
  for k in istio istio/gateway-only; do
    out=$TMP/$(echo "$k" | tr / _).yaml
    if "$TOOLS_KUBECTL" kustomize "$k" > "$out"; then
      n=$(grep -c '^kind:' "$out" || true)
      if [ "$n" -eq 0 ]; then echo "FAIL kubectl kustomize $k rendered no objects"; fail=1; continue; fi
      echo "ok   kubectl kustomize $k: $n objects"
      node scripts/artifact-tools/validate-k8s.mjs "$out" > "$TMP/r" || { cat "$TMP/r"; fail=1; }
      tail -1 "$TMP/r" | sed 's/^/     rendered: /'
    else
      echo "FAIL kubectl kustomize $k"; fail=1
    fi
  done
  # The renderer bites: a kustomization naming a resource that does not exist must not render.
  mkdir -p "$TMP/kbad"
  cp istio/wasmplugin-sidecar.yaml "$TMP/kbad/"
  printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- wasmplugin-sidecar.yaml\n- missing.yaml\n' \
    > "$TMP/kbad/kustomization.yaml"
  if "$TOOLS_KUBECTL" kustomize "$TMP/kbad" > /dev/null 2> "$TMP/kbad.err"; then
    echo "FAIL kubectl kustomize rendered a kustomization with a missing resource"; fail=1
  elif grep -q "accumulating resources.*missing.yaml.*no such file or directory" "$TMP/kbad.err"; then
    echo "ok   kubectl kustomize refuses a missing resource: $(grep -m1 -o 'missing.yaml.*' "$TMP/kbad.err" | cut -c1-120)"
  else
    echo "FAIL kubectl kustomize failed on a missing resource, but not for that reason:"; head -3 "$TMP/kbad.err"; fail=1
  fi
fi
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
  if DWCP_TELEMETRY_TOKEN=check-telemetry-0123456789 DWCP_OPERATOR_TOKEN=check-operator-0123456789 DWCP_READ_TOKEN=check-read-0123456789abc "$ANALYZER" check --config "$TMP/analyzer.toml"; then
    echo "ok   istio/companion/configmap.yaml analyzer.toml accepted by $ANALYZER"
  else
    echo "FAIL istio/companion/configmap.yaml analyzer.toml refused"; fail=1
  fi
else
  echo "FAIL $ANALYZER not built (cargo build --release -p dwcp-analyzer)"; fail=1
fi

step "deliberately broken manifests must be rejected, each for the reason its '# expect:' lines give"
shopt -s nullglob
BROKEN=(istio/testdata/broken/*.yaml)
shopt -u nullglob
[ ${#BROKEN[@]} -gt 0 ] || { echo "FAIL no manifests in istio/testdata/broken/: nothing proves the validators bite"; fail=1; }
for f in "${BROKEN[@]}"; do
  mapfile -t WANT < <(sed -n 's/^# expect: //p' "$f")
  if [ ${#WANT[@]} -eq 0 ]; then echo "FAIL $f has no '# expect: <error text>' line"; fail=1; continue; fi
  ra=0; node scripts/artifact-tools/validate-k8s.mjs "$f" > "$TMP/a" 2>&1 || ra=$?
  rb=0; "$TOOLS_PY" scripts/artifact-tools/strict-core.py "$f" > "$TMP/b" 2>&1 || rb=$?
  if [ $ra -eq 0 ] && [ $rb -eq 0 ]; then
    echo "FAIL $f was ACCEPTED: the validators do not check what they should"; fail=1; continue
  fi
  grep -h '^FAIL' "$TMP/a" "$TMP/b" > "$TMP/why" || true
  missing=0
  for w in "${WANT[@]}"; do
    grep -qF -- "$w" "$TMP/why" || { echo "FAIL $f rejected, but not with: $w"; missing=1; }
  done
  if [ $missing -eq 0 ]; then
    echo "ok   $f rejected: $(printf '%s; ' "${WANT[@]}" | sed 's/; $//' | cut -c1-160)"
  else
    echo "     what the validators said (exit $ra, $rb):"; cat "$TMP/a" "$TMP/b" | grep -v '^ok' | head -6 | sed 's/^/     /'; fail=1
  fi
done

echo
[ $fail -eq 0 ] && echo "validate-manifests: all checks passed" || echo "validate-manifests: FAILED"
exit $fail
