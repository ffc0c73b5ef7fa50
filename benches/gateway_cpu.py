#!/usr/bin/env python3
"""CPU per proxied request: kip-gateway builds side by side with nginx, interleaved rounds.

On a shared machine requests/s moves by ±20% between runs; the CPU a proxy spends per request
(utime + stime of its threads from /proc, divided by the requests wrk completed) is steadier.
Each named build runs next to the same nginx proxy and backend as in benches/gateway.py (same
configuration, 10,000 clusters), and every round measures each of them in turn.

Run:   python3 benches/gateway_cpu.py before=/tmp/kip-gateway-old after=target/gateway/kip-gateway
Env:   BENCH_ROUNDS (5), BENCH_DURATION (6s), BENCH_CONNECTIONS (64), BENCH_PATH (/small)
Needs what benches/gateway.py needs (it installs nginx and wrk if missing).
"""
import os, signal, statistics, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway as bench  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
DURATION = os.environ.get("BENCH_DURATION", "6s")
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
PATH = os.environ.get("BENCH_PATH", "/small")


def cpu_ticks(pids):
    return sum(bench.thread_ticks(pids).values())


def measure(url, pids):
    before = cpu_ticks(pids)
    rps, p99, requests = bench.wrk_run(url + PATH, CONNECTIONS, DURATION)
    ticks = cpu_ticks(pids) - before
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    return rps, p99, ticks * tick_us / requests


def main():
    builds = dict(arg.split("=", 1) for arg in sys.argv[1:])
    if not builds:
        sys.exit(__doc__)
    bench.ensure_tools()
    work = tempfile.mkdtemp(prefix="kip-gateway-cpu-")
    os.chmod(work, 0o755)
    backend_port, nginx_port = bench.free_port(), bench.free_port()
    ids = bench.cluster_ids(bench.CLUSTERS)
    backend = bench.start_nginx(bench.backend_conf(work, backend_port), work, "backend")
    proxy = bench.start_nginx(bench.proxy_conf(work, nginx_port, backend_port, ids), work, "proxy")
    gateways = []
    try:
        targets = {}
        for name, binary in builds.items():
            bench.GATEWAY = binary
            proc, addrs = bench.start_gateway(work, ids, backend_port, f"registry-{name}")
            gateways.append(proc)
            targets[name] = (f"http://{addrs['http']}", [proc.pid])
        targets["nginx"] = (f"http://127.0.0.1:{nginx_port}", bench.nginx_workers(work))
        for url, _ in targets.values():  # warm-up
            bench.wrk(url + PATH, CONNECTIONS)
        results = {name: [] for name in targets}
        for r in range(ROUNDS):
            for name, (url, pids) in targets.items():
                rps, p99, cpu = measure(url, pids)
                results[name].append((rps, p99, cpu))
                print(f"round {r + 1} {name:12} {rps:9.0f} requests/s  p99 {p99:6.2f} ms  "
                      f"{cpu:6.2f} µs CPU/request", flush=True)
    finally:
        for proc in gateways:
            proc.send_signal(signal.SIGTERM)
            proc.wait()
        bench.stop_nginx(proxy, work)
        bench.stop_nginx(backend, work)
    print(f"\nload average {os.getloadavg()[0]:.2f}; {ROUNDS} rounds of {DURATION}, medians, "
          f"{CONNECTIONS} connections, {PATH}")
    nginx_rps = statistics.median(x[0] for x in results["nginx"])
    nginx_p99 = statistics.median(x[1] for x in results["nginx"])
    print("| proxy | requests/s (÷ nginx) | p99 ms (nginx ÷ it) | µs CPU / request |")
    print("|---|---|---|---|")
    for name, runs in results.items():
        rps = statistics.median(x[0] for x in runs)
        p99 = statistics.median(x[1] for x in runs)
        cpu = statistics.median(x[2] for x in runs)
        print(f"| {name} | {rps:,.0f} ({rps / nginx_rps:.2f}×) | {p99:.2f} ({nginx_p99 / p99:.2f}×) "
              f"| {cpu:.1f} |")


if __name__ == "__main__":
    main()
