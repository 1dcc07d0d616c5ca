#!/usr/bin/env python3
"""make bench-filter: Envoy CPU per request with and without the filter, alternating in one run.

Envoy runs with --concurrency 1 pinned to CPU 0; wrk (and the demo upstream) on CPU 1. Each round runs
the setups in turn: no filter; native header routing; a no-op wasm filter (the price of the wasm hop);
the minimal routing-and-accounting wasm filter (reads the request headers once, sets one header, reads
the response status and duration at log: the honest floor); our filter. Envoy CPU
per request comes from /proc/<pid>/stat (utime+stime) over the wrk run. Medians over the rounds, and
each ratio to the no-filter run, are printed. The machine is noisy: compare within this run only.
ONLY="minimal filter,dwcp filter" ROUNDS=15 runs just the pair the target is about (more rounds, same time).
"""
import json, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENVOY = os.environ.get("ENVOY_BIN", os.path.join(ROOT, ".venv/bin/envoy"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
DURATION = os.environ.get("DURATION", "8s")
CONNS = os.environ.get("CONNS", "16")
TICKS = os.sysconf("SC_CLK_TCK")

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def wait_port(port, timeout=20):
    t = time.time()
    while time.time() - t < timeout:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close(); return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} never opened")

UP, ANALYZER, LISTEN, ADMIN = free_port(), free_port(), free_port(), free_port()

def cluster(name, port):
    return f"""
  - name: {name}
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: {name}
      endpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }} }} ] }} ]"""

def wasm_filter(path, config):
    cfg = json.dumps(config).replace("'", "''")
    return f"""
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: dwcp
                root_id: dwcp
                failure_policy: FAIL_RELOAD
                vm_config:
                  vm_id: dwcp
                  runtime: envoy.wasm.runtime.v8
                  code: {{ local: {{ filename: {path} }} }}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{cfg}'"""

STRIP = """
          - name: envoy.filters.http.header_mutation
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation
              mutations:
                request_mutations:
                - remove: x-dwcp-track"""

HEADER_ROUTES = """
              - match: { prefix: "/", headers: [ { name: x-dwcp-track, string_match: { exact: canary } } ] }
                route: { cluster: canary }"""

def config(filters, header_routes, route_extra="", clusters_extra=""):
    """Envoy config: one listener, `filters` before the router, `header_routes` before the default route
    to stable (`route_extra` is appended to that route, e.g. a mirror policy), clusters stable, canary,
    dwcp_companion plus `clusters_extra`."""
    return f"""
admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {ADMIN} }} }} }}
stats_config:
  stats_tags:
  - {{ tag_name: rollout, regex: "(_rollout=\\\\.=(.+?);\\\\.;)" }}
  - {{ tag_name: track, regex: "(_track=\\\\.=(.+?);\\\\.;)" }}
  - {{ tag_name: segment, regex: "(_segment=\\\\.=(.+?);\\\\.;)" }}
  - {{ tag_name: le, regex: "(_le=\\\\.=(.+?);\\\\.;)" }}
  - {{ tag_name: event, regex: "(_event=\\\\.=(.+?);\\\\.;)" }}
static_resources:
  listeners:
  - name: ingress
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {LISTEN} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: app
              domains: ["*"]
              routes:{header_routes}
              - match: {{ prefix: "/" }}
                route:
                  cluster: stable{route_extra}
          http_filters:{filters}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:{cluster("stable", UP)}{cluster("canary", UP)}{cluster("dwcp_companion", ANALYZER)}{clusters_extra}
"""

def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / TICKS

def parse_wrk(out):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    def lat(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", out)
        v, u = float(m.group(1)), m.group(2)
        return v / 1000 if u == "us" else v if u == "ms" else v * 1000
    return rps, total, lat("50"), lat("99")

def main():
    for tool in ("wrk", "taskset"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is required (apt-get install wrk util-linux)")
    plugin = json.loads(re.search(r"value: \|\n(.*?)\n\s*- name:", open(os.path.join(ROOT, "envoy/envoy.yaml")).read(), re.S).group(1))
    plugin["explain"] = False
    tmp = tempfile.mkdtemp()
    procs = []
    try:
        bins = os.path.join(ROOT, "target/release")
        procs.append(subprocess.Popen(["taskset", "-c", "1", f"{bins}/dwcp-demo-upstream", "--name", "stable", "--listen", f"127.0.0.1:{UP}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        toml = os.path.join(tmp, "a.toml")
        open(toml, "w").write(f'listen = "127.0.0.1:{ANALYZER}"\ndb = "{tmp}/a.db"\ntoken = "dev-token"\n[[rollout]]\nname = "demo"\nautostart = true\nskip_shadow = true\nphase_seconds = 86400\n')
        procs.append(subprocess.Popen(["taskset", "-c", "1", f"{bins}/dwcp-analyzer", "serve", "--config", toml], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(UP); wait_port(ANALYZER)
        setups = [
            ("no filter", config("", "")),
            ("native header routing", config(STRIP, HEADER_ROUTES)),
            ("no-op wasm filter", config(wasm_filter(os.path.join(ROOT, "dist/noop_filter.wasm"), {}), "")),
            ("minimal filter", config(STRIP + wasm_filter(os.path.join(ROOT, "dist/minimal_filter.wasm"), {}), HEADER_ROUTES)),
            ("dwcp filter", config(STRIP + wasm_filter(os.path.join(ROOT, "dist/dwcp_filter.wasm"), plugin), HEADER_ROUTES)),
        ]
        # VARIANTS="name=/path/a.wasm,other=/path/b.wasm": compare extra builds of the filter in the same run.
        for spec in filter(None, os.environ.get("VARIANTS", "").split(",")):
            vname, vpath = spec.split("=", 1)
            setups.append((vname, config(STRIP + wasm_filter(vpath, plugin), HEADER_ROUTES)))
        # ONLY="minimal filter,dwcp filter": run just these setups (more rounds in the same time); the
        # no-filter baseline always runs.
        only = set(filter(None, os.environ.get("ONLY", "").split(","))) | {"no filter"}
        if len(only) > 1:
            setups = [(n, c) for n, c in setups if n in only]
        results = {name: [] for name, _ in setups}
        for r in range(ROUNDS):
            for name, cfg in setups:
                path = os.path.join(tmp, "envoy.yaml"); open(path, "w").write(cfg)
                envoy = subprocess.Popen(["taskset", "-c", "0", ENVOY, "-c", path, "--concurrency", "1", "--log-level", "error", "--base-id", str(ADMIN)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    wait_port(LISTEN)
                    time.sleep(1.5)  # first sync with the companion
                    subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c", CONNS, "-d", "1s", "-H", "x-user-id: warm", f"http://127.0.0.1:{LISTEN}/"], capture_output=True)
                    c0 = proc_cpu(envoy.pid)
                    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c", CONNS, "-d", DURATION, "--latency", "-H", "x-user-id: user-42", "-H", "x-user-tier: premium", f"http://127.0.0.1:{LISTEN}/"], capture_output=True, text=True).stdout
                    c1 = proc_cpu(envoy.pid)
                    rps, total, p50, p99 = parse_wrk(out)
                    results[name].append((rps, p50, p99, (c1 - c0) / total * 1e6))
                    print(f"round {r+1}/{ROUNDS} {name:<24} {rps:9.0f} req/s  p50 {p50:6.3f} ms  p99 {p99:6.3f} ms  {results[name][-1][3]:6.1f} us CPU/req", flush=True)
                finally:
                    envoy.send_signal(signal.SIGTERM); envoy.wait()
                    time.sleep(0.3)
        med = {n: tuple(statistics.median(x[i] for x in v) for i in range(4)) for n, v in results.items()}
        base = med["no filter"]
        print(f"\nmedians over {ROUNDS} interleaved rounds (Envoy --concurrency 1 on CPU 0, wrk -c{CONNS} on CPU 1):")
        print(f"{'setup':<24} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11} {'CPU ratio':>10} {'req/s ratio':>12}")
        for n, (rps, p50, p99, cpu) in med.items():
            print(f"{n:<24} {rps:9.0f} {p50:8.3f} {p99:8.3f} {cpu:11.1f} {cpu/base[3]:10.2f} {rps/base[0]:12.2f}")
        if "no-op wasm filter" in med:
            noop = med["dwcp filter"][3] / med["no-op wasm filter"][3]
            print(f"\ndwcp filter CPU per request / no-op wasm filter: {noop:.2f} (the wasm hop; informational)")
        per_round = [d[3] / m[3] for d, m in zip(results["dwcp filter"], results["minimal filter"])]
        ratio = statistics.median(per_round)
        print(f"dwcp filter CPU per request / minimal filter, per round: {' '.join(f'{x:.3f}' for x in per_round)}")
        print(f"  ratio of the medians: {med['dwcp filter'][3] / med['minimal filter'][3]:.3f}")
        print(f"dwcp filter CPU per request / minimal filter (median of rounds): {ratio:.3f} (target <= 1.05: {'MET' if ratio <= 1.05 else 'MISSED'})")
        print(f"module size: {os.path.getsize(os.path.join(ROOT, 'dist/dwcp_filter.wasm'))} bytes")
    finally:
        for p in procs:
            p.terminate(); p.wait()
        shutil.rmtree(tmp, ignore_errors=True)

if __name__ == "__main__":
    main()
