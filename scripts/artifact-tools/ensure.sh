# Sourced by the artifact checks. Installs the pinned validators once into target/artifact-tools/
# (gitignored, reused until package-lock.json or requirements.txt change) and exports:
#   TOOLS_PY    python with PyYAML, check-jsonschema, kubernetes-validate
#   TOOLS_BIN   their console scripts
#   TOOLS_NODE  folder with node_modules (kubernetes-models, @kubernetes-models/istio, ...)
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
_T=$ROOT/target/artifact-tools
_SRC=$ROOT/scripts/artifact-tools
mkdir -p "$_T/node"
if ! cmp -s "$_SRC/requirements.txt" "$_T/venv/requirements.txt" 2>/dev/null; then
  echo "installing Python validators into $_T/venv" >&2
  rm -rf "$_T/venv"
  python3 -m venv "$_T/venv"
  "$_T/venv/bin/pip" install --quiet --disable-pip-version-check -r "$_SRC/requirements.txt"
  cp "$_SRC/requirements.txt" "$_T/venv/requirements.txt"
fi
if ! cmp -s "$_SRC/package-lock.json" "$_T/node/package-lock.json" 2>/dev/null || [ ! -d "$_T/node/node_modules" ]; then
  echo "installing npm validators into $_T/node" >&2
  cp "$_SRC/package.json" "$_SRC/package-lock.json" "$_T/node/"
  (cd "$_T/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
export TOOLS_PY=$_T/venv/bin/python TOOLS_BIN=$_T/venv/bin TOOLS_NODE=$_T/node
