#!/usr/bin/env python3
"""The instance-ID sidecar's cost: the same backend reached directly and through the sidecar.

One nginx (1 worker, static files) stands in for the app on loopback; `kip-instance-id`
(release build) listens in front of it as it would in a pod. wrk measures, side by side in
alternating rounds, direct to nginx and through the sidecar:

- one connection, small response (13 bytes): the latency one request pays for the extra hop;
- 64 connections, small response: requests/s and the tail when the sidecar is saturated;
- 16 connections, 1 MiB response: streaming throughput.

Also measured: the sidecar's resident memory (VmRSS) idle, its peak (VmHWM) under that
load, with 512 keep-alive connections open (idle, after one request each) and with wrk on
512 connections; and its CPU time per request (utime + stime ÷ requests), which with the
pod's 50m CPU limit gives the request rate one sidecar can carry.

Run: python3 benches/instance_id.py     (installs nginx and wrk with apt-get if missing;
     BENCH_DURATION and BENCH_ROUNDS adjust it)
"""
import os, re, shutil, signal, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway as bench  # noqa: E402  (its nginx, wrk and port helpers)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
SIDECAR = os.path.join(TARGET, "release", "kip-instance-id")
DURATION = os.environ.get("BENCH_DURATION", "5s")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
POD = "web-7d9f8b6c5-x2x9q"
CASES = [("small, 1 connection", "/small", 1), ("small, 64 connections", "/small", 64),
         ("1 MiB, 16 connections", "/big", 16)]


def start_backend(work, port):
    os.makedirs(os.path.join(work, "www"), exist_ok=True)
    with open(os.path.join(work, "www", "small"), "w") as f:
        f.write("hello, world\n")
    with open(os.path.join(work, "www", "big"), "wb") as f:
        f.write(os.urandom(1 << 20))
    conf = os.path.join(work, "backend.conf")
    with open(conf, "w") as f:
        f.write(f"""
pid {work}/backend.pid;
error_log {work}/backend-error.log warn;
worker_processes 1;
worker_rlimit_nofile 65536;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  types {{ }}
  default_type application/octet-stream;
  server {{ listen 127.0.0.1:{port} backlog=4096; root {work}/www; }}
}}
""")
    subprocess.run([bench.nginx_bin(), "-c", conf, "-p", work], check=True)
    return conf


def start_sidecar(backend_port):
    env = dict(os.environ, POD_NAME=POD)
    proc = subprocess.Popen([SIDECAR, "--upstream-port", str(backend_port), "--listen-addr", "127.0.0.1",
                             "--listen-port", "0"],
                            stdout=subprocess.PIPE, text=True, env=env,
                            # A session of its own, as nginx gives itself when it daemonizes and
                            # as a container has: with autogroup scheduling a process left in
                            # this script's session would share one CPU share with wrk.
                            start_new_session=True)
    line = proc.stdout.readline()
    addr = re.search(r"listening on (\S+),", line).group(1)
    return proc, addr


def wrk(url, connections, duration=None):
    """One wrk run: requests/s, p50 and p99 in ms, requests completed."""
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration or DURATION}", "--latency", url],
                         check=True, capture_output=True, text=True).stdout
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out) or "Socket errors" in out:
        sys.exit(f"wrk saw errors against {url}:\n{out}")

    def pct(p):
        m = re.search(rf"\b{p}%\s+([\d.]+)(us|ms|s)\b", out)
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return rps, pct(50), pct(99), requests


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid):
    status = open(f"/proc/{pid}/status").read()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
    return rss, hwm


def open_connections(addr, n):
    """`n` keep-alive connections to the sidecar, each after one answered request, left open
    (so the sidecar holds `n` client connections and `n` connections to the backend)."""
    import socket
    host, port = addr.rsplit(":", 1)
    conns = [socket.create_connection((host, int(port))) for _ in range(n)]
    for conn in conns:
        conn.sendall(b"GET /small HTTP/1.1\r\nHost: bench\r\n\r\n")
    for conn in conns:
        conn.settimeout(10)
        got = b""
        while not got.endswith(b"hello, world\n"):
            chunk = conn.recv(4096)
            if not chunk:
                sys.exit("the sidecar closed a connection")
            got += chunk
    time.sleep(0.2)
    return conns


def main():
    bench.ensure_tools()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "kip-instance-id"], check=True, cwd=ROOT)
    work = tempfile.mkdtemp(prefix="kip-instance-id-bench-")
    os.chmod(work, 0o755)  # nginx's worker runs unprivileged and serves files from here
    backend_port = bench.free_port()
    backend = start_backend(work, backend_port)
    sidecar, addr = start_sidecar(backend_port)
    try:
        time.sleep(0.2)
        idle_rss, _ = memory_mb(sidecar.pid)
        targets = {"direct": f"http://127.0.0.1:{backend_port}", "sidecar": f"http://{addr}"}
        for base in targets.values():  # warm-up: connection pools, page cache
            wrk(base + "/small", 16, "1s")
        results, cpu = {}, {}
        for _ in range(ROUNDS):
            for case, path, conns in CASES:
                for name, base in targets.items():
                    before = cpu_seconds(sidecar.pid)
                    rps, p50, p99, requests = wrk(base + path, conns)
                    results.setdefault((case, name), []).append((rps, p50, p99))
                    if name == "sidecar":
                        cpu.setdefault(case, []).append((cpu_seconds(sidecar.pid) - before) / requests * 1e6)
        loaded_rss, loaded_hwm = memory_mb(sidecar.pid)
        before_open, _ = memory_mb(sidecar.pid)
        kept = open_connections(addr, 512)
        open_rss, _ = memory_mb(sidecar.pid)
        for conn in kept:
            conn.close()
        wrk(targets["sidecar"] + "/small", 512, "3s")
        many_rss, many_hwm = memory_mb(sidecar.pid)
        time.sleep(1)
        after_rss, _ = memory_mb(sidecar.pid)
    finally:
        sidecar.send_signal(signal.SIGTERM)
        try:
            sidecar.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sidecar.kill()
        subprocess.run([bench.nginx_bin(), "-c", backend, "-p", work, "-s", "quit"], stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        shutil.rmtree(work, ignore_errors=True)

    print(f"cpus: {os.cpu_count()}, load {open('/proc/loadavg').read().split()[0]} at the end, wrk -t1, "
          f"{DURATION} per run, median of {ROUNDS} alternating rounds")
    print("| case | direct req/s | sidecar req/s | ratio | direct p50 / p99 (ms) | sidecar p50 / p99 (ms) | added p50 / p99 (ms) | sidecar CPU per request |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for case, _path, _conns in CASES:
        med = {}
        for name in targets:
            runs = results[(case, name)]
            med[name] = tuple(statistics.median(r[i] for r in runs) for i in range(3))
        d, s = med["direct"], med["sidecar"]
        print(f"| {case} | {d[0]:,.0f} | {s[0]:,.0f} | {s[0] / d[0]:.2f}× | {d[1]:.3f} / {d[2]:.3f} | "
              f"{s[1]:.3f} / {s[2]:.3f} | {s[1] - d[1]:+.3f} / {s[2] - d[2]:+.3f} | "
              f"{statistics.median(cpu[case]):.1f} µs |")
    small_cpu = statistics.median(cpu["small, 64 connections"])
    print(f"sidecar memory: {idle_rss:.1f} MB idle; {loaded_rss:.1f} MB after the runs above, peak "
          f"{loaded_hwm:.1f} MB; 512 open keep-alive connections (each after one request): +{open_rss - before_open:.1f} MB "
          f"({(open_rss - before_open) * 1024 / 512:.0f} KB each); {many_hwm:.1f} MB peak with wrk on 512 connections; "
          f"{after_rss:.1f} MB a second later")
    print(f"at the 50m CPU limit: about {0.05 / (small_cpu / 1e6):,.0f} small requests/s per sidecar")


if __name__ == "__main__":
    main()
