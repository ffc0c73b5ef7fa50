#!/usr/bin/env python3
"""How each proxy's workers share the load, next to its p99: kip-gateway, nginx as
benches/gateway.py configures it, and nginx with `listen … reuseport`.

nginx's small-response p99 moves between runs with how its workers took wrk's 64 connections:
with one shared listening socket, one worker sometimes accepts all of them while the other
stays idle. The gateway spreads connections over its workers by a hash of the address pair, as
nginx does with `reuseport`; measuring against both tells the share of the connections apart
from the work per request. Each run prints the CPU ticks of every busy worker (a single
number: one worker did all the work).

Run:   python3 benches/gateway_workers.py        (builds nothing: uses target/gateway/kip-gateway)
Env:   BENCH_ROUNDS (6), BENCH_DURATION (5s), KIP_GATEWAY (another gateway binary)
Needs what benches/gateway.py needs (it installs nginx and wrk if missing).
"""
import os, signal, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway as bench  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "6"))
DURATION = os.environ.get("BENCH_DURATION", "5s")


def start_proxy(work, port, backend_port, ids, reuseport):
    os.makedirs(work, exist_ok=True)
    os.chmod(work, 0o755)
    conf = bench.proxy_conf(work, port, backend_port, ids)
    if reuseport:
        listen = f"listen 127.0.0.1:{port} backlog=4096"
        assert listen + ";" in conf, "proxy_conf's listen line changed"
        conf = conf.replace(listen + ";", listen + " reuseport;")
    return bench.start_nginx(conf, work, "proxy")


def main():
    bench.ensure_tools()
    bench.GATEWAY = os.environ.get("KIP_GATEWAY", bench.GATEWAY)
    if not os.path.exists(bench.GATEWAY):
        sys.exit(f"no {bench.GATEWAY}: run `cargo build --profile gateway -p kip-gateway` first")
    work = tempfile.mkdtemp(prefix="kip-gateway-workers-")
    os.chmod(work, 0o755)
    ids = bench.cluster_ids(bench.CLUSTERS)
    backend_port = bench.free_port()
    backend = bench.start_nginx(bench.backend_conf(work, backend_port), work, "backend")
    proxies, gateway = [], None
    try:
        targets = {}
        for name, reuseport in [("nginx", False), ("nginx-reuseport", True)]:
            port, dir_ = bench.free_port(), os.path.join(work, name)
            proxies.append((start_proxy(dir_, port, backend_port, ids, reuseport), dir_))
            targets[name] = (f"http://127.0.0.1:{port}", bench.nginx_workers(dir_))
        gateway, addrs = bench.start_gateway(work, ids, backend_port, "registry")
        targets = {"gateway": (f"http://{addrs['http']}", [gateway.pid]), **targets}
        for url, _ in targets.values():  # warm-up
            bench.wrk_run(url + "/small", 64, "2s")
        for r in range(ROUNDS):
            for name, (url, pids) in targets.items():
                before = bench.thread_ticks(pids)
                rps, p99, _ = bench.wrk_run(url + "/small", 64, DURATION)
                after = bench.thread_ticks(pids)
                spent = (t - before.get(k, 0) for k, t in after.items())
                busy = sorted((t for t in spent if t > 0), reverse=True)
                print(f"round {r + 1} {name:16} {rps:9,.0f} requests/s  p99 {p99:5.2f} ms  "
                      f"CPU ticks of busy workers {busy}", flush=True)
    finally:
        if gateway:
            gateway.send_signal(signal.SIGTERM)
            gateway.wait()
        for proc, dir_ in proxies:
            bench.stop_nginx(proc, dir_)
        bench.stop_nginx(backend, work)
    print(f"\nload average {os.getloadavg()[0]:.2f}; {ROUNDS} rounds of {DURATION}, 64 connections, /small")


if __name__ == "__main__":
    main()
