#!/usr/bin/env bash
# Builds every release artifact into dist/release/:
#   dwcp_filter.wasm          the filter, size-optimised (wasm profile with opt-level "s", symbols stripped)
#   dwcp-analyzer, dwcp-demo-upstream   the companion and demo upstream (native, release)
#   oci/                      OCI image layout of the module (Istio's compat Wasm image), reproducible
#   istio/, monitoring/       manifests with the module's OCI reference and manifest digest filled in
#   dwcp-istio.yaml           `kubectl kustomize istio/` of the above (when kubectl is installed)
#   SHA256SUMS
# Env: DWCP_OCI_REPO (default registry.example.com/dwcp/dwcp-filter), DWCP_ANALYZER_IMAGE
# (default registry.example.com/dwcp/dwcp-analyzer:VERSION). Push: istio/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
REPO=${DWCP_OCI_REPO:-registry.example.com/dwcp/dwcp-filter}
IMAGE=${DWCP_ANALYZER_IMAGE:-registry.example.com/dwcp/dwcp-analyzer:$VERSION}
OUT=dist/release
ENVOY=${ENVOY_BIN:-$ROOT/.venv/bin/envoy}
rm -rf "$OUT"; mkdir -p "$OUT"

echo "== filter module (size-optimised)"
CARGO_PROFILE_WASM_OPT_LEVEL=s CARGO_PROFILE_WASM_STRIP=symbols \
  cargo build --quiet -p dwcp-filter --target wasm32-wasip1 --profile wasm --target-dir target/release-wasm
cp target/release-wasm/wasm32-wasip1/wasm/dwcp_filter.wasm "$OUT/dwcp_filter.wasm"
echo "module: $(stat -c %s "$OUT/dwcp_filter.wasm") bytes (dev build dist/dwcp_filter.wasm: $(stat -c %s dist/dwcp_filter.wasm 2>/dev/null || echo n/a))"
# The released module must load and accept the shipped config in a real Envoy.
mkdir -p "$OUT/.check/dist"; cp "$OUT/dwcp_filter.wasm" "$OUT/.check/dist/"
(cd "$OUT/.check" && "$ENVOY" --mode validate -c "$ROOT/envoy/envoy.yaml" --base-id $((RANDOM + 3000)) 2>&1 | grep -E "configured|OK$") 
rm -rf "$OUT/.check"

echo "== companion"
cargo build --quiet --release --locked -p dwcp-analyzer --bins
cp target/release/dwcp-analyzer target/release/dwcp-demo-upstream "$OUT/"

echo "== OCI image layout"
CARGO_TARGET_DIR=target/oci-pack cargo build --quiet --release --locked --manifest-path release/oci-pack/Cargo.toml
PACK=target/oci-pack/release/oci-pack
"$PACK" build --wasm "$OUT/dwcp_filter.wasm" --out "$OUT/oci" --tag "$VERSION" | tee "$OUT/oci-digests.txt"
DIGEST=$(sed -n 's/^manifest sha256:\([0-9a-f]\{64\}\)$/\1/p' "$OUT/oci-digests.txt")
AGAIN=$(mktemp -d); "$PACK" build --wasm "$OUT/dwcp_filter.wasm" --out "$AGAIN" --tag "$VERSION" > "$AGAIN.txt"
cmp -s "$OUT/oci-digests.txt" "$AGAIN.txt" || { echo "error: a second build gave another digest" >&2; exit 1; }
diff -r "$OUT/oci" "$AGAIN" >/dev/null || { echo "error: a second build differs byte-wise" >&2; exit 1; }
rm -rf "$AGAIN" "$AGAIN.txt"
"$PACK" verify --dir "$OUT/oci" --wasm "$OUT/dwcp_filter.wasm"

echo "== manifests (oci://$REPO:$VERSION, sha256 $DIGEST)"
cp -r istio monitoring "$OUT/"
rm -rf "$OUT/istio/testdata"
for f in $(grep -rl --include='*.yaml' '^kind: WasmPlugin' "$OUT/istio"); do
  sed -i -e "s|^  url: oci://.*|  url: oci://$REPO:$VERSION|" \
         -e "s|^  sha256: \"[0-9a-f]\{64\}\"|  sha256: \"$DIGEST\"|" "$f"
  grep -q "sha256: \"$DIGEST\"" "$f" || { echo "error: digest not filled in $f" >&2; exit 1; }
done
sed -i "s|^        image: .*dwcp-analyzer:.*|        image: $IMAGE|" "$OUT/istio/companion/deployment.yaml"
if command -v kubectl >/dev/null; then kubectl kustomize "$OUT/istio" > "$OUT/dwcp-istio.yaml"; fi

(cd "$OUT" && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum > SHA256SUMS)
echo "== dist/release"
ls -l "$OUT"
