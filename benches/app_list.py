#!/usr/bin/env python3
"""`kip app list` against `kubectl get deployments` and `kubectl get apps.kipper.run` at 10,
1,000 and 10,000 apps in one namespace of one warm sandbox: wall time (p50) and peak RSS of
each whole process, measured in interleaved rounds.

The apps are made as `kip app deploy` makes them (an App and its Deployment, replicas 1, so the
sandbox's controllers add a ReplicaSet and a Pod each), but POSTed straight to the API, 16 at a
time: 10,000 runs of `kip app deploy` would take an hour. No Service or Ingress: neither
command reads them. Filling 10,000 takes the sandbox about 25-30 minutes: its controllers slow
down as a namespace fills (adopting orphans scans the namespace's ReplicaSets and Pods).

Run: cargo build --release --bin kip && python3 benches/app_list.py
     (KIP=path/to/kip picks another binary; BENCH_SIZES=10,1000 other sizes; BENCH_HOME=DIR
     reuses the kip home of an earlier run, whose apps stay in the sandbox's data, and only adds
     what is missing; results go into BENCHMARKS.md by hand)
"""
import concurrent.futures, json, os, statistics, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIP = os.environ.get("KIP", os.path.join(ROOT, "target", "release", "kip"))
SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "10,1000,10000").split(",")]
ROUNDS = {10: 15, 1000: 9, 10000: 5}


def run(cmd, env):
    """Wall milliseconds and peak RSS (MB) of one process, through wait4; its stdout."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - start) * 1000
    if status != 0:
        sys.exit(f"{cmd} failed: {err.decode()}")
    return wall, usage.ru_maxrss / 1024, out


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


def create_app(server, i):
    name = f"app-{i}"
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "kipper",
              "kipper.run/project": "default", "kipper.run/environment": "default"}
    post(server, "/apis/kipper.run/v1alpha1/namespaces/default/apps", {
        "apiVersion": "kipper.run/v1alpha1", "kind": "App",
        "metadata": {"name": name, "labels": labels},
        "spec": {"image": "nginx:1.27", "port": 80, "replicas": 1, "project": "default", "environment": "",
                 "route": {"host": f"{name}-sandbox.localhost", "path": "/"}, "source": {"kind": "image"}, "env": []},
    })
    post(server, "/apis/apps/v1/namespaces/default/deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": name, "image": "nginx:1.27",
                                                       "ports": [{"containerPort": 80}]}]}}},
    })


def wait_idle(home, most=120):
    """Until the sandbox's controllers have settled: under a fifth of a core for 3 s, or `most`
    seconds (a sandbox restarted on 10,000 apps re-reconciles them for about 7 minutes)."""
    pid = open(os.path.join(home, "sandbox", "sandbox.pid")).read().strip()
    ticks = lambda: sum(int(x) for x in open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[11:13])
    deadline = time.time() + most
    while time.time() < deadline:
        before = ticks()
        time.sleep(3)
        if ticks() - before < 0.2 * 3 * os.sysconf("SC_CLK_TCK"):
            return


def ready_count(env):
    script = 'k8s::select("apps/v1", "Deployment", "default", #{r: "status.readyReplicas"}).filter(|d| d.r == 1).len()'
    return int(run([KIP, "eval", script], env)[2])


def main():
    home = os.environ.get("BENCH_HOME") or tempfile.mkdtemp()
    print(f"kip home: {home}", file=sys.stderr)
    env = dict(os.environ, KIP_HOME=home, KIP_SANDBOX_RUNTIME="none", HOME=home, NO_COLOR="1")
    env.pop("KIP_SCRIPTS", None)
    env.pop("RUST_LOG", None)
    subprocess.run([KIP, "sandbox", "up"], env=env, check=True, stdout=subprocess.DEVNULL)
    env["KUBECONFIG"] = os.path.join(home, "sandbox", "kubeconfig")
    server = server_of(env["KUBECONFIG"])
    cache = os.path.join(home, "kubectl-cache")
    kubectl = ["kubectl", f"--cache-dir={cache}"]
    commands = [
        ("kip app list", [KIP, "app", "list"]),
        ("kubectl get deploy", kubectl + ["get", "deployments", "-n", "default"]),
        ("kubectl get apps.kipper.run", kubectl + ["get", "apps.kipper.run", "-n", "default"]),
    ]
    results = {}
    try:
        # The CRDs and the first app, as the verb makes them.
        run([KIP, "app", "deploy", "--name", "app-0", "--image", "nginx:1.27", "--port", "80"], env)
        have = len(run([KIP, "app", "list"], env)[2].splitlines()) - 1
        wait_idle(home, 900)
        for size in SIZES:
            if size < have:
                print(f"skipping {size} apps: the sandbox holds {have}", file=sys.stderr)
                continue
            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda i: create_app(server, i), range(have, size)))
            have = max(have, size)
            while ready_count(env) < size:
                time.sleep(5)
            wait_idle(home)
            print(f"{size} apps created and rolled out in {time.perf_counter() - start:.1f} s", file=sys.stderr)
            lines = len(run(commands[0][1], env)[2].splitlines())
            if lines != size + 1:
                sys.exit(f"kip app list printed {lines} lines for {size} apps")
            for _, cmd in commands:
                run(cmd, env)  # warm: kubectl's discovery cache, the page cache
            samples = {name: [] for name, _ in commands}
            for _ in range(ROUNDS.get(size, 5)):
                for name, cmd in commands:
                    samples[name].append(run(cmd, env)[:2])
            results[size] = {name: (statistics.median(w for w, _ in s), max(p for _, p in s))
                             for name, s in samples.items()}
    finally:
        subprocess.run([KIP, "sandbox", "down"], env=env, stdout=subprocess.DEVNULL)

    print("| apps | `kip app list` | `kubectl get deploy` | `kubectl get apps.kipper.run` | kip ÷ kubectl get deploy |")
    print("|---:|---|---|---|---:|")
    for size, r in results.items():
        cells = [f"{r[name][0]:.1f} ms, {r[name][1]:.1f} MB" for name, _ in commands]
        ratio = r["kip app list"][0] / r["kubectl get deploy"][0]
        print(f"| {size:,} | {' | '.join(cells)} | {ratio:.3f}× |")


main()
