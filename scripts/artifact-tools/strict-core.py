"""Strict validation (unknown fields are errors) of the Kubernetes core-type documents in the given files
against the Kubernetes OpenAPI schemas shipped by kubernetes-validate. CRD documents (Istio, Prometheus
Operator) are skipped here; validate-k8s.mjs covers them. Exit 1 if any document fails."""
import sys

import kubernetes_validate
import yaml

CRD_GROUPS = ("istio.io", "monitoring.coreos.com")
K8S = "1.33.0"
failed = checked = 0
for f in sys.argv[1:]:
    with open(f) as fh:
        docs = [d for d in yaml.safe_load_all(fh) if d]
    for d in docs:
        group = d.get("apiVersion", "").rpartition("/")[0]
        if group.endswith(CRD_GROUPS):
            continue
        checked += 1
        ident = f"{f}: {d.get('kind')}/{d.get('metadata', {}).get('name', '?')}"
        try:
            kubernetes_validate.validate(d, K8S, strict=True)
            print(f"ok   {ident} (strict, Kubernetes {K8S})")
        except Exception as e:  # ValidationError, SchemaNotFoundError, ...
            failed += 1
            msg = getattr(e, "message", None) or str(e)
            print(f"FAIL {ident}: {type(e).__name__}: {msg.splitlines()[0][:300]}")
print(f"{checked - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
