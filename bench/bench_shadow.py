#!/usr/bin/env python3
"""make bench-shadow: user latency and Envoy CPU with the shadow on and off, alternating in one run.

Envoy runs with --concurrency 1 pinned to CPU 0; wrk, the demo upstreams and the companion on CPU 1.
For each upstream service time (DELAYS, ms, set on the stable and shadow upstreams alike) and each round,
the setups run in turn:
  off             our filter, rollout without a shadow cluster (nothing mirrored)
  dwcp shadow     our filter mirroring every GET to the shadow and comparing the answers
  dwcp + noise    the same with shadow.noise_copy (a second copy to stable)
  envoy mirror    our filter without shadow + Envoy's own request_mirror_policies (answer discarded):
                  what mirroring costs in Envoy itself, as a baseline
The load is one user (wrk -c1, sequential requests) so that latency is not queueing: each request sees
the work the previous request's side call left on the worker. Envoy CPU per request comes from
/proc/<pid>/stat. Medians over the rounds; the aim "p99 with shadow on within 10 % of off" is checked
per service time.
"""
import json, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_filter
from bench_filter import ENVOY, ROOT, STRIP, HEADER_ROUTES, free_port, wait_port, cluster, wasm_filter, proc_cpu, parse_wrk

ROUNDS = int(os.environ.get("ROUNDS", "3"))
DURATION = os.environ.get("DURATION", "5s")
DELAYS = [int(d) for d in os.environ.get("DELAYS", "0,1,5").split(",")]
# CONNS=1 (default): one sequential user, latency without queueing. CONNS=16 saturates Envoy's worker:
# CPU per request is then exact (no idle time in it), latency is queueing.
CONNS = os.environ.get("CONNS", "1")
# The Envoy config comes from bench_filter (its ports); the shadow upstream gets one more.
STABLE, ANALYZER, LISTEN, ADMIN = bench_filter.UP, bench_filter.ANALYZER, bench_filter.LISTEN, bench_filter.ADMIN
SHADOW = free_port()

MIRROR = """
                  request_mirror_policies:
                  - cluster: shadow
                    runtime_fraction: { default_value: { numerator: 100, denominator: HUNDRED } }"""

def config(filters, mirror=""):
    return bench_filter.config(filters, HEADER_ROUTES, route_extra=mirror, clusters_extra=cluster("shadow", SHADOW))

def control(port, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/_control", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"}, method="POST")
    urllib.request.urlopen(req, timeout=5).read()

def totals():
    req = urllib.request.Request(f"http://127.0.0.1:{ANALYZER}/v1/rollouts/demo", headers={"authorization": "Bearer dev-token"})
    t = json.loads(urllib.request.urlopen(req, timeout=5).read()).get("shadow_totals", {})
    return {k: t.get(k, 0) for k in ("compared", "mismatches", "skipped_in_flight", "side_call_failed")}

def main():
    for tool in ("wrk", "taskset"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is required (apt-get install wrk util-linux)")
    base = json.loads(re.search(r"value: \|\n(.*?)\n\s*- name:", open(os.path.join(ROOT, "envoy/envoy.yaml")).read(), re.S).group(1))
    base["explain"] = False
    def plugin(shadow, noise=False):
        p = json.loads(json.dumps(base))
        r = {"name": "demo", "hosts": ["*"], "path_prefix": "/"}
        if shadow:
            r["shadow_cluster"] = "shadow"
        if noise:
            r["noise_cluster"] = "stable"
            p["shadow"]["noise_copy"] = True
        p["rollouts"] = [r]
        return p
    wasm = os.path.join(ROOT, "dist/dwcp_filter.wasm")
    setups = [
        ("off", config(STRIP + wasm_filter(wasm, plugin(False)))),
        ("dwcp shadow", config(STRIP + wasm_filter(wasm, plugin(True)))),
        ("dwcp + noise", config(STRIP + wasm_filter(wasm, plugin(True, True)))),
        ("envoy mirror", config(STRIP + wasm_filter(wasm, plugin(False)), MIRROR)),
    ]
    # VARIANTS="name=/path/a.wasm,…": extra builds of the filter, mirroring like "dwcp shadow", same run.
    for spec in filter(None, os.environ.get("VARIANTS", "").split(",")):
        vname, vpath = spec.split("=", 1)
        setups.append((vname, config(STRIP + wasm_filter(vpath, plugin(True)))))
    tmp = tempfile.mkdtemp()
    procs = []
    try:
        bins = os.path.join(ROOT, "target/release")
        for name, port in (("stable", STABLE), ("shadow", SHADOW)):
            procs.append(subprocess.Popen(["taskset", "-c", "1", f"{bins}/dwcp-demo-upstream", "--name", name, "--listen", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        toml = os.path.join(tmp, "a.toml")
        # The rollout stays in its shadow phase for the whole run (every request mirrored).
        open(toml, "w").write(f'listen = "127.0.0.1:{ANALYZER}"\ndb = "{tmp}/a.db"\ntoken = "dev-token"\ntick_ms = 200\n[[rollout]]\nname = "demo"\nautostart = true\nphase_seconds = 86400\n')
        procs.append(subprocess.Popen(["taskset", "-c", "1", f"{bins}/dwcp-analyzer", "serve", "--config", toml], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(STABLE); wait_port(SHADOW); wait_port(ANALYZER)
        results = {(d, n): [] for d in DELAYS for n, _ in setups}
        for d in DELAYS:
            for port in (STABLE, SHADOW):
                control(port, {"delay_ms": d})
            for r in range(ROUNDS):
                order = setups if r % 2 == 0 else setups[::-1]
                for name, cfg in order:
                    path = os.path.join(tmp, "envoy.yaml"); open(path, "w").write(cfg)
                    envoy = subprocess.Popen(["taskset", "-c", "0", ENVOY, "-c", path, "--concurrency", "1", "--log-level", "error", "--base-id", str(ADMIN)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    try:
                        wait_port(LISTEN)
                        time.sleep(1.5)  # first sync with the companion: the shadow phase is routed
                        subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c1", "-d", "1s", f"http://127.0.0.1:{LISTEN}/items/1"], capture_output=True)
                        t0 = totals()
                        c0 = proc_cpu(envoy.pid)
                        out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c", CONNS, "-d", DURATION, "--latency", "-H", "x-user-id: user-42", f"http://127.0.0.1:{LISTEN}/items/1"], capture_output=True, text=True).stdout
                        c1 = proc_cpu(envoy.pid)
                        rps, total, p50, p99 = parse_wrk(out)
                        results[(d, name)].append((rps, p50, p99, (c1 - c0) / total * 1e6))
                        time.sleep(1.2)  # the last batch reaches the companion
                        t1 = totals()
                        shadow = " ".join(f"{k} +{t1[k] - t0[k]}" for k in t1 if t1[k] - t0[k])
                        print(f"service {d} ms round {r+1}/{ROUNDS} {name:<13} {rps:7.0f} req/s  p50 {p50:6.3f} ms  p99 {p99:6.3f} ms  {results[(d, name)][-1][3]:6.1f} us CPU/req  {total} requests  {shadow}", flush=True)
                    finally:
                        envoy.send_signal(signal.SIGTERM); envoy.wait()
                        time.sleep(0.3)
        print(f"\nmedians over {ROUNDS} interleaved rounds, wrk -c{CONNS} ({'one sequential user' if CONNS == '1' else 'saturating'}), Envoy --concurrency 1 on CPU 0:")
        print(f"{'service':>7} {'setup':<13} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'p99/off':>8} {'CPU us/req':>10} {'CPU/off':>8}")
        verdicts = []
        for d in DELAYS:
            med = {n: tuple(statistics.median(x[i] for x in results[(d, n)]) for i in range(4)) for n, _ in setups}
            off = med["off"]
            for n, (rps, p50, p99, cpu) in med.items():
                print(f"{d:>5} ms {n:<13} {rps:7.0f} {p50:7.3f} {p99:7.3f} {p99/off[2]:8.2f} {cpu:10.1f} {cpu/off[3]:8.2f}")
            ratio = med["dwcp shadow"][2] / off[2]
            extra = (med["dwcp shadow"][2] - off[2]) * 1000
            verdicts.append(f"service {d} ms: p99 shadow on / off = {ratio:.2f} (+{extra:.0f} us; Envoy's own mirror: "
                            f"{med['envoy mirror'][2] / off[2]:.2f}) -> aim <= 1.10 {'MET' if ratio <= 1.10 else 'MISSED'}")
        print()
        print("\n".join(verdicts))
    finally:
        for p in procs:
            p.terminate(); p.wait()
        shutil.rmtree(tmp, ignore_errors=True)

if __name__ == "__main__":
    main()
