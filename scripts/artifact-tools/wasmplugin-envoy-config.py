"""Builds an Envoy config that loads a WasmPlugin's pluginConfig into the real filter.

  python wasmplugin-envoy-config.py WASMPLUGIN.yaml [--envoy envoy/envoy.yaml] [--break]

Reads spec.pluginConfig, serialises it the way istiod does (google.protobuf.Struct -> protojson: every
number is a double, printed without a fraction when it is whole), and puts it into the `configuration`
StringValue of the dwcp wasm filter in a copy of envoy/envoy.yaml, printed to stdout. The clusters the
pluginConfig names (Istio's outbound|… names for the companion and the shadow subset) are added as
copies of the local dwcp_companion and shadow clusters, so the config also runs, not only validates.
--break adds an unknown field: the filter must then refuse the config (a check that the check works).
"""
import argparse
import copy
import json
import sys

import yaml


def protojson(v):
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        f = float(v)
        return int(f) if f.is_integer() and abs(f) < 1e21 else f
    if isinstance(v, list):
        return [protojson(x) for x in v]
    return {k: protojson(x) for k, x in v.items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("wasmplugin")
    ap.add_argument("--envoy", default="envoy/envoy.yaml")
    ap.add_argument("--break", dest="breakit", action="store_true")
    ap.add_argument("--test-panic", dest="test_panic", action="store_true")
    a = ap.parse_args()
    plugins = [d for d in yaml.safe_load_all(open(a.wasmplugin)) if d and d.get("kind") == "WasmPlugin"]
    if len(plugins) != 1:
        print(f"{a.wasmplugin}: expected one WasmPlugin, found {len(plugins)}", file=sys.stderr)
        return 2
    pc = protojson(plugins[0]["spec"].get("pluginConfig") or {})
    if a.breakit:
        pc["not_a_field"] = True
    if a.test_panic:
        pc["test_panic_header"] = "x-test-crash"
    env = yaml.safe_load(open(a.envoy))
    found = 0
    for lst in env["static_resources"]["listeners"]:
        for chain in lst["filter_chains"]:
            for f in chain["filters"]:
                for hf in f.get("typed_config", {}).get("http_filters", []):
                    cfg = hf.get("typed_config", {}).get("config", {})
                    if hf["name"] == "envoy.filters.http.wasm" and cfg.get("root_id") == "dwcp":
                        cfg["configuration"]["value"] = json.dumps(pc, separators=(",", ":"))
                        found += 1
    if found != 1:
        print(f"{a.envoy}: expected one dwcp wasm filter, found {found}", file=sys.stderr)
        return 2
    clusters = env["static_resources"]["clusters"]
    by_name = {c["name"]: c for c in clusters}
    wanted = {pc.get("companion", {}).get("cluster"): "dwcp_companion"}
    for r in pc.get("rollouts", []):
        if r.get("shadow_cluster"):
            wanted[r["shadow_cluster"]] = "shadow"
    for name, like in wanted.items():
        if name and name not in by_name and like in by_name:
            c = copy.deepcopy(by_name[like])
            c["name"] = name
            c["load_assignment"]["cluster_name"] = name
            clusters.append(c)
    yaml.safe_dump(env, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
