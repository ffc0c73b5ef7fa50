#!/usr/bin/env python3
"""Push webhook deliveries per second through `kip server` against a sandbox: signed GitHub
pushes (the fixture tests/fixtures/webhooks/github-push.json, each with a new delivery id),
every one accepted, so each costs what a real one does: the HMAC, listing the Apps, reading the
webhook Secret of each App of the repository, the status write of the build request and the
note of the delivery on the Secret.

The sandbox holds BENCH_APPS apps (default 50), one of them (`web`) with its webhook enabled
for the pushed repository: the others are candidates the server must look past. Deliveries go
from BENCH_CLIENTS threads (default 4), each on its own keep-alive connection, for
BENCH_SECONDS (default 20) after a warm-up of 2 s.

Run: cargo build --release --bin kip && python3 benches/webhooks.py
     (KIP=path/to/kip picks another binary; results go into BENCHMARKS.md by hand)
"""
import hashlib, hmac, http.client, json, os, re, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIP = os.environ.get("KIP", os.path.join(ROOT, "target", "release", "kip"))
APPS = int(os.environ.get("BENCH_APPS", "50"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "4"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "20"))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "webhooks", "github-push.json")


def kip(env, *args):
    done = subprocess.run([KIP, *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        sys.exit(f"kip {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def deliver(conn, body, secret, delivery):
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    conn.request("POST", "/hooks/github", body=body, headers={
        "Content-Type": "application/json", "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": signature,
    })
    answer = conn.getresponse()
    return answer.status, answer.read().decode()


def client(address, body, secret, index, stop, results):
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    n = 0
    while not stop.is_set():
        n += 1
        start = time.perf_counter()
        status, text = deliver(conn, body, secret, f"bench-{index}-{n}")
        elapsed = time.perf_counter() - start
        if status != 200:
            sys.exit(f"delivery refused: {status} {text}")
        results.append((time.perf_counter(), elapsed))


def main():
    home = tempfile.mkdtemp()
    env = dict(os.environ, KIP_HOME=home, KIP_SANDBOX_RUNTIME="none", HOME=home, NO_COLOR="1")
    env.pop("KIP_SCRIPTS", None)
    env.pop("RUST_LOG", None)
    subprocess.run([KIP, "sandbox", "up"], env=env, check=True, stdout=subprocess.DEVNULL)
    env["KUBECONFIG"] = os.path.join(home, "sandbox", "kubeconfig")
    server = None
    try:
        for i in range(APPS):
            name = "web" if i == 0 else f"app-{i}"
            kip(env, "app", "deploy", "--name", name, "--image", "nginx:1.27", "--port", "80")
            if i > 0:
                # Other repositories: looked at, not verified.
                kip(env, "app", "webhook", "enable", name, "--repo", f"https://github.com/acme/repo-{i}.git")
        enabled = kip(env, "app", "webhook", "enable", "web", "--repo", "https://github.com/acme/shop.git")
        secret = re.search(r"Secret +([0-9a-f]{64})", enabled).group(1)
        server = subprocess.Popen([KIP, "server", "--listen", "127.0.0.1:0"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
        address = server.stdout.readline().strip().rsplit("http://", 1)[1]
        # The server prints a line per push: read them so its pipe never fills.
        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()
        body = json.dumps(json.load(open(FIXTURE))).encode()
        stop, results = threading.Event(), []
        threads = [threading.Thread(target=client, args=(address, body, secret, i, stop, results))
                   for i in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(2)
        start, skip = time.perf_counter(), len(results)
        time.sleep(SECONDS)
        stop.set()
        for t in threads:
            t.join()
        window = [r for r in results[skip:] if r[0] <= start + SECONDS]
        latencies = sorted(e * 1000 for _, e in window)
        rate = len(window) / SECONDS
        p99 = latencies[int(len(latencies) * 0.99)]
        print(f"{APPS} apps, {CLIENTS} clients, {SECONDS:.0f} s: {len(window)} deliveries accepted, "
              f"{rate:.0f}/s, latency p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms")
        build = json.loads(subprocess.run(["kubectl", "get", "app", "web", "-o", "json"], env=env,
                                          capture_output=True, text=True, check=True).stdout)["status"]
        print(f"last build request: {build}", file=sys.stderr)
    finally:
        if server:
            server.terminate()
            server.wait()
        subprocess.run([KIP, "sandbox", "down"], env=env, stdout=subprocess.DEVNULL)


main()
