#!/usr/bin/env python3
"""kip-gateway against nginx as the same reverse proxy, in one run, with the same load generator.

Both proxies forward to the same loopback backend (an nginx serving static files) with
keep-alive to it, route by the Host header through a table of 10,000 clusters, and set the
X-Forwarded-* headers. nginx is configured to stream like the gateway (no response or request
buffering). wrk measures requests/s and p99 for small responses (keep-alive) and 1 MiB bodies.
Also measured: the gateway's resident memory with 10,000 clusters, and routing cost against
registry size (examples/lookup.rs).

Run: python3 benches/gateway.py        (installs nginx and wrk with apt-get if missing)
"""
import os, re, shutil, signal, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
# The gateway's production profile (release + fat LTO, see Cargo.toml).
PROFILE = "gateway"
GATEWAY = os.path.join(TARGET, PROFILE, "kip-gateway")
CLUSTERS = 10_000
DURATION = os.environ.get("BENCH_DURATION", "8s")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
HOST = "hello-test-127-0-0-1.kipper.test"


def ensure_tools():
    missing = [pkg for pkg, exe in [("nginx", "nginx"), ("wrk", "wrk")]
               if not (shutil.which(exe) or os.path.exists(f"/usr/sbin/{exe}"))]
    if missing:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", "-q", "--no-install-recommends", *missing],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        # The package starts a system nginx on port 80; we run our own instances.
        subprocess.run(["service", "nginx", "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def nginx_bin():
    return shutil.which("nginx") or "/usr/sbin/nginx"


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nginx(conf_text, work, name):
    conf = os.path.join(work, f"{name}.conf")
    with open(conf, "w") as f:
        f.write(conf_text)
    subprocess.run([nginx_bin(), "-t", "-q", "-c", conf, "-p", work], check=True)
    subprocess.run([nginx_bin(), "-c", conf, "-p", work], check=True)
    return conf


def stop_nginx(conf, work):
    subprocess.run([nginx_bin(), "-c", conf, "-p", work, "-s", "quit"], stderr=subprocess.DEVNULL)


COMMON = """
pid {pid};
error_log {work}/{name}-error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 8192; }}
"""


def backend_conf(work, port):
    os.makedirs(os.path.join(work, "www"), exist_ok=True)
    with open(os.path.join(work, "www", "small"), "w") as f:
        f.write("hello, world\n")
    with open(os.path.join(work, "www", "big"), "wb") as f:
        f.write(os.urandom(1 << 20))
    return COMMON.format(pid=f"{work}/backend.pid", work=work, name="backend") + f"""
worker_processes 1;
http {{
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  types {{ }}
  default_type application/octet-stream;
  server {{ listen 127.0.0.1:{port} backlog=4096; root {work}/www; }}
}}
"""


def proxy_conf(work, port, backend_port, ids):
    mapping = "\n".join(f"    {i} backend;" for i in ids)
    return COMMON.format(pid=f"{work}/proxy.pid", work=work, name="proxy") + f"""
# As many workers as the gateway has threads (both default to one per CPU).
worker_processes {os.environ.get("GATEWAY_THREADS", "auto")};
http {{
  access_log off;
  keepalive_requests 1000000;
  map_hash_max_size 65536;
  map_hash_bucket_size 128;
  upstream backend {{ server 127.0.0.1:{backend_port}; keepalive 256; }}
  # The same routing as the gateway: the cluster id is the label's tail, looked up in a
  # table of {len(ids)} clusters; unknown clusters get 404.
  map $cluster $up {{
    default "";
{mapping}
  }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    server_name "~^(?:(?<app>.+)-)?(?<cluster>\\d{{1,3}}-\\d{{1,3}}-\\d{{1,3}}-\\d{{1,3}})\\.kipper\\.test$";
    location / {{
      if ($up = "") {{ return 404; }}
      proxy_pass http://$up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_buffering off;
      proxy_request_buffering off;
    }}
  }}
}}
"""


def cluster_ids(n):
    ids = ["127-0-0-1"]
    i = 0
    while len(ids) < n:
        ids.append(f"10-{i // 62500}-{(i // 250) % 250}-{i % 250}")
        i += 1
    return ids


def write_registry(path, ids, backend_port):
    import json
    token = "0" * 64
    clusters = [{"id": i, "address": f"127.0.0.1:{backend_port}" if i == "127-0-0-1" else f"10.0.{n % 250}.{n % 200 + 1}:443",
                 "tls": False, "token_sha256": token} for n, i in enumerate(ids)]
    with open(path, "w") as f:
        json.dump({"version": 1, "clusters": clusters}, f)


def start_gateway(work, ids, backend_port, name):
    registry = os.path.join(work, f"{name}.json")
    write_registry(registry, ids, backend_port)
    token = os.path.join(work, "admin-token")
    # Private: the gateway refuses a token file others can read.
    with os.fdopen(os.open(token, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write("bench-admin-token-0123456789abcdef\n")
    os.chmod(token, 0o600)
    # The clusters are on loopback and 10/8. By the environment twin, not the flag, so that
    # older builds (gateway_cpu.py compares them), which know neither, still start.
    env = dict(os.environ, KIP_GATEWAY_ALLOW_PRIVATE_CLUSTERS="true")
    proc = subprocess.Popen([GATEWAY, "--domain", "kipper.test", "--listen", "127.0.0.1:0",
                             "--admin-listen", "127.0.0.1:0", "--registry", registry,
                             "--admin-token-file", token, "--log", "warn",
                             *(["--threads", os.environ["GATEWAY_THREADS"]] if "GATEWAY_THREADS" in os.environ else [])],
                            stdout=subprocess.PIPE, text=True, env=env,
                            # In a session of its own, as nginx puts itself when it daemonizes and
                            # as a service runs. With the kernel's autogroup scheduling (on by
                            # default), a process left in this script's session shares one CPU
                            # share with wrk, while each nginx gets a share of its own.
                            start_new_session=True)
    addrs = {}
    for line in proc.stdout:
        words = line.split()
        if words[0] == "listening":
            addrs[words[1]] = words[2]
        elif words[0] == "ready":
            break
    return proc, addrs


def wrk_run(url, connections, duration=None, extra=()):
    """One wrk run: requests/s, p99 in ms and the number of requests completed."""
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration or DURATION}", "--latency",
                          "-H", f"Host: {HOST}", *extra, url],
                         check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        sys.exit(f"wrk saw errors against {url}:\n{out}")
    return rps, float(p99.group(1)) * scale, requests


def wrk(url, connections, extra=()):
    rps, p99, _requests = wrk_run(url, connections, extra=extra)
    return rps, p99


def thread_ticks(pids):
    """utime + stime (clock ticks) of every thread of `pids`, by (pid, thread id)."""
    ticks = {}
    for pid in pids:
        for task in os.listdir(f"/proc/{pid}/task"):
            fields = open(f"/proc/{pid}/task/{task}/stat").read().rsplit(")", 1)[1].split()
            ticks[(pid, task)] = int(fields[11]) + int(fields[12])
    return ticks


def nginx_workers(work):
    """The worker processes of the nginx whose pid file is `work`/proxy.pid."""
    master = open(os.path.join(work, "proxy.pid")).read().strip()
    children = subprocess.run(["pgrep", "-P", master], capture_output=True, text=True)
    return [int(pid) for pid in children.stdout.split()]


def rss_mb(pid):
    status = open(f"/proc/{pid}/status").read()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
    return rss, hwm


def main():
    ensure_tools()
    subprocess.run(["cargo", "build", "--profile", PROFILE, "-q", "-p", "kip-gateway", "--bin", "kip-gateway",
                    "--example", "lookup"], check=True, cwd=ROOT)
    work = tempfile.mkdtemp(prefix="kip-gateway-bench-")
    os.chmod(work, 0o755)  # nginx workers run as an unprivileged user and serve files from here
    backend_port, nginx_port = free_port(), free_port()
    ids = cluster_ids(CLUSTERS)
    backend = start_nginx(backend_conf(work, backend_port), work, "backend")
    try:
        proxy = start_nginx(proxy_conf(work, nginx_port, backend_port, ids), work, "proxy")
    except BaseException:
        stop_nginx(backend, work)
        raise
    gw, addrs = start_gateway(work, ids, backend_port, "registry")
    idle_rss = rss_mb(gw.pid)[0]
    try:
        targets = {"gateway": f"http://{addrs['http']}", "nginx": f"http://127.0.0.1:{nginx_port}"}
        for name, base in targets.items():  # warm-up: pools, caches
            wrk(base + "/small", 64)
        results = {}
        for _ in range(ROUNDS):
            for case, path, conns in [("small", "/small", 64), ("1MiB", "/big", 16)]:
                for name, base in targets.items():
                    results.setdefault((case, name), []).append(wrk(base + path, conns))
        loaded_rss, peak_rss = rss_mb(gw.pid)

        small_gw, small_addrs = start_gateway(work, ids[:10], backend_port, "small-registry")
        ten = statistics.median(wrk(f"http://{small_addrs['http']}/small", 64)[0] for _r in range(ROUNDS))
        small_gw.send_signal(signal.SIGTERM)
        small_gw.wait()
        big = statistics.median(r[0] for r in results[("small", "gateway")])

        lookup = subprocess.run([os.path.join(TARGET, PROFILE, "examples", "lookup")],
                                check=True, capture_output=True, text=True).stdout
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait()
        stop_nginx(proxy, work)
        stop_nginx(backend, work)
        time.sleep(0.5)
        shutil.rmtree(work, ignore_errors=True)

    print(f"cpus: {os.cpu_count()}, wrk -t1, {DURATION} per run, median of {ROUNDS} rounds, {CLUSTERS} clusters registered")
    print("| case | proxy | requests/s | p99 (ms) |")
    print("|---|---|---|---|")
    med = {}
    for (case, name), runs in results.items():
        rps = statistics.median(r[0] for r in runs)
        p99 = statistics.median(r[1] for r in runs)
        med[(case, name)] = (rps, p99)
        print(f"| {case} | {name} | {rps:,.0f} | {p99:.2f} |")
    for case in ["small", "1MiB"]:
        g, n = med[(case, "gateway")], med[(case, "nginx")]
        print(f"{case}: gateway/nginx requests/s ratio {g[0] / n[0]:.2f}; p99 ratio nginx/gateway {n[1] / g[1]:.2f} (>= 1.0 means the gateway is at least as good)")
    print(f"gateway RSS with {CLUSTERS} clusters: {idle_rss:.1f} MB idle, {loaded_rss:.1f} MB after load, {peak_rss:.1f} MB peak")
    print(f"gateway small requests/s with 10 clusters: {ten:,.0f}; with {CLUSTERS}: {big:,.0f}")
    print(lookup.strip())


if __name__ == "__main__":
    main()
