#!/usr/bin/env python3
"""kip against kubectl on one warm sandbox: wall time and peak memory of `kip app list` and
`kubectl get deployments`, `kip --help` start-up, API requests per `kip app deploy`, and
deploying 100 apps from one `kip run` script.

Run: cargo build --release && python3 benches/cli.py   (results go into BENCHMARKS.md by hand)
"""
import os, re, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIP = os.path.join(ROOT, "target", "release", "kip")


def run(cmd, env, stdin=None):
    """Wall seconds and peak RSS (MB) of one process, through wait4."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode()
    if status != 0:
        sys.exit(f"{cmd} failed: {err}")
    return wall, usage.ru_maxrss / 1024, err


def series(cmd, env, n=15, before=None):
    walls, peaks = [], []
    for _ in range(n):
        if before:
            before()
        w, p, _ = run(cmd, env)
        walls.append(w * 1000)
        peaks.append(p)
    return statistics.median(walls), max(peaks)


def main():
    home = tempfile.mkdtemp()
    env = dict(os.environ, KIP_HOME=home, KIP_SANDBOX_RUNTIME="none", HOME=home)
    env.pop("KIP_SCRIPTS", None)
    subprocess.run([KIP, "sandbox", "up"], env=env, check=True, stdout=subprocess.DEVNULL)
    env["KUBECONFIG"] = os.path.join(home, "sandbox", "kubeconfig")
    cache = os.path.join(home, "kubectl-cache")
    try:
        counting = dict(env, RUST_LOG="kube_client::client::builder=debug", NO_COLOR="1")
        deploy = [KIP, "app", "deploy", "--name", "web", "--image", "nginx:1.27", "--port", "80"]
        first = run(deploy, counting)[2].count("requesting")
        again = run(deploy, counting)[2].count("requesting")

        for i in range(20):
            run([KIP, "app", "deploy", "--name", f"app-{i}", "--image", "nginx:1.27", "--port", "80"], env)
        subprocess.run(["kubectl", f"--cache-dir={cache}", "get", "deployments"], env=env, check=True, stdout=subprocess.DEVNULL)
        kip_list = series([KIP, "app", "list"], env)
        kubectl_list = series(["kubectl", f"--cache-dir={cache}", "get", "deployments", "-n", "default"], env)
        kip_help = series([KIP, "--help"], env, n=30)
        verbs_cache = os.path.join(home, "cache", "verbs.json")
        forget = lambda: os.path.exists(verbs_cache) and os.remove(verbs_cache)
        kip_help_cold = series([KIP, "--help"], env, n=30, before=forget)
        kip_list_cold = series([KIP, "app", "list"], env, before=forget)

        script = os.path.join(home, "hundred.rhai")
        with open(script, "w") as f:
            f.write('for i in 0..100 { kip::run("app deploy", #{ name: `bulk-${i}`, image: "nginx:1.27", port: 80, '
                    'replicas: 1, project: "default", environment: "", env: [] }); }\n')
        hundred, hundred_peak, _ = run([KIP, "run", script], env)
    finally:
        subprocess.run([KIP, "sandbox", "down"], env=env, stdout=subprocess.DEVNULL)

    print("| measurement | wall (p50) | peak memory |\n|---|---|---|")
    print(f"| `kip app list` (21 apps) | {kip_list[0]:.1f} ms | {kip_list[1]:.1f} MB |")
    print(f"| `kubectl get deployments -n default` (warm discovery cache) | {kubectl_list[0]:.1f} ms | {kubectl_list[1]:.1f} MB |")
    print(f"| `kip --help` | {kip_help[0]:.1f} ms | {kip_help[1]:.1f} MB |")
    print(f"| `kip --help`, no verb cache (compiles every script) | {kip_help_cold[0]:.1f} ms | {kip_help_cold[1]:.1f} MB |")
    print(f"| `kip app list`, no verb cache | {kip_list_cold[0]:.1f} ms | {kip_list_cold[1]:.1f} MB |")
    print(f"| `kip run`: deploy 100 apps | {hundred:.2f} s ({hundred * 10:.1f} ms per app) | {hundred_peak:.1f} MB |")
    print()
    print(f"API requests of `kip app deploy`: {first} on a fresh cluster (CRDs applied), {again} when it exists")
    print(f"kip ÷ kubectl, list wall time: {kip_list[0] / kubectl_list[0]:.2f}×")


main()
