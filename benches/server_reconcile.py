#!/usr/bin/env python3
"""`kip server` on a sandbox: how long from an App POSTed to the API to its Deployment existing
(the controller saw the App, ran lib/reconcile.rhai, which rendered and applied the objects),
p50/p90/p99 over N apps created one after another, and the same with 16 created at once.

A watch on Deployments, opened before the first App, timestamps each ADDED event as it
arrives; the client and the server share one machine, so both sides' work is in the number.

Run: cargo build --release --bin kip && python3 benches/server_reconcile.py
     (KIP=path/to/kip picks another binary; BENCH_APPS=200 the number of apps per run)
"""
import concurrent.futures, json, os, statistics, subprocess, sys, tempfile, threading, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIP = os.environ.get("KIP", os.path.join(ROOT, "target", "release", "kip"))
APPS = int(os.environ.get("BENCH_APPS", "200"))


def server_of(kubeconfig):
    for line in open(kubeconfig):
        line = line.strip()
        if line.startswith("server:"):
            return line.split(":", 1)[1].strip()
    sys.exit(f"no server in {kubeconfig}")


def post(server, path, obj):
    req = urllib.request.Request(server + path, data=json.dumps(obj).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as answer:
        answer.read()


def app(name):
    return {"apiVersion": "kipper.run/v1alpha1", "kind": "App", "metadata": {"name": name},
            "spec": {"image": "nginx:1.27", "port": 80}}


class Seen:
    """Deployments' ADDED events from one watch, with the time each arrived."""

    def __init__(self, server):
        self.times, self.lock = {}, threading.Lock()
        self.ready = threading.Event()
        threading.Thread(target=self.watch, args=(server,), daemon=True).start()
        self.ready.wait(10)

    def watch(self, server):
        url = server + "/apis/apps/v1/namespaces/default/deployments?watch=1&timeoutSeconds=3600"
        with urllib.request.urlopen(url) as stream:
            self.ready.set()
            for line in stream:
                event = json.loads(line)
                if event["type"] == "ADDED":
                    with self.lock:
                        self.times[event["object"]["metadata"]["name"]] = time.perf_counter()

    def wait_for(self, name, timeout=30):
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with self.lock:
                if name in self.times:
                    return self.times[name]
            time.sleep(0.0005)
        sys.exit(f"no Deployment {name} within {timeout}s")


def stats(ms):
    ms = sorted(ms)
    pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]
    return f"p50 {statistics.median(ms):.1f} ms, p90 {pick(0.9):.1f} ms, p99 {pick(0.99):.1f} ms (n={len(ms)})"


def main():
    home = tempfile.mkdtemp(prefix="kip-bench-server-")
    env = dict(os.environ, KIP_HOME=home, KIP_SANDBOX_RUNTIME="none")
    env.pop("KUBECONFIG", None)
    env.pop("KIP_SCRIPTS", None)
    subprocess.run([KIP, "sandbox", "up"], env=env, check=True, stdout=subprocess.DEVNULL)
    kubeconfig = os.path.join(home, "sandbox", "kubeconfig")
    env["KUBECONFIG"] = kubeconfig
    server = server_of(kubeconfig)
    proc = subprocess.Popen([KIP, "server", "--listen", "127.0.0.1:0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if "holding the lease" in line:
                break
        threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
        seen = Seen(server)
        path = "/apis/kipper.run/v1alpha1/namespaces/default/apps"
        # One warm-up app: the first reconcile compiles the scripts' modules.
        post(server, path, app("warmup"))
        seen.wait_for("warmup")
        one = []
        for i in range(APPS):
            name = f"one-{i}"
            start = time.perf_counter()
            post(server, path, app(name))
            one.append((seen.wait_for(name) - start) * 1000)
        print(f"one at a time: App applied -> Deployment exists: {stats(one)}")
        starts = {}

        def create(i):
            name = f"many-{i}"
            starts[name] = time.perf_counter()
            post(server, path, app(name))
            return name

        begun = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            names = list(pool.map(create, range(APPS)))
        many = [(seen.wait_for(n) - starts[n]) * 1000 for n in names]
        total = max(seen.wait_for(n) for n in names) - begun
        print(f"16 at a time: App applied -> Deployment exists: {stats(many)}; {APPS / total:.0f} apps/s")
    finally:
        proc.terminate()
        proc.wait()
        subprocess.run([KIP, "sandbox", "down"], env=env, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
