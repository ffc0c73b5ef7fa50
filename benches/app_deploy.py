#!/usr/bin/env python3
"""`kip app deploy` of a new app, plain (--no-instance-header), with the instance-ID sidecar
(the default), and with the sidecar and a route group path (--route shop/api-N) plus a
redirect: wall time (p50) of the whole process and the API requests it makes, by method
(`kip -v` prints each). Interleaved rounds on one warm sandbox; every app is new.

Run: cargo build --release --bin kip && python3 benches/app_deploy.py
     (KIP=path/to/kip picks another binary; BENCH_ROUNDS=15 the rounds; results go into
     BENCHMARKS.md by hand)
"""
import collections, os, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIP = os.environ.get("KIP", os.path.join(ROOT, "target", "release", "kip"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))

CASES = {
    "plain (--no-instance-header)": lambda i: ["--no-instance-header"],
    "with the sidecar (default)": lambda i: [],
    "sidecar + route group + redirect": lambda i: ["--route", f"shop/api-{i}", "--redirect-from", f"r{i}.example.com"],
}


def deploy(env, name, extra):
    """Wall milliseconds of one `kip -v app deploy` and its requests by method (dry runs apart)."""
    cmd = [KIP, "-v", "app", "deploy", "--name", name, "--image", "nginx:1.27", "--port", "8080"] + extra
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        sys.exit(f"{cmd} failed: {done.stderr}")
    methods = collections.Counter()
    for line in done.stderr.splitlines():
        if "http.method=" not in line:
            continue
        method = line.split("http.method=")[1].split()[0]
        methods[method + (" (dry run)" if "dryRun=All" in line else "")] += 1
    return wall, methods


def main():
    home = tempfile.mkdtemp(prefix="kip-bench-deploy-")
    env = dict(os.environ, KIP_HOME=home, KIP_SANDBOX_RUNTIME="none", NO_COLOR="1")
    env.pop("KIP_SCRIPTS", None)
    subprocess.run([KIP, "sandbox", "up"], env=env, check=True, capture_output=True)
    kubeconfig = subprocess.run([KIP, "sandbox", "kubeconfig"], env=env, check=True, capture_output=True, text=True).stdout.strip()
    env["KUBECONFIG"] = kubeconfig
    try:
        deploy(env, "warm-up", [])
        walls = {case: [] for case in CASES}
        requests = {}
        for i in range(ROUNDS):
            for n, (case, extra) in enumerate(CASES.items()):
                wall, methods = deploy(env, f"app{n}-{i}", extra(i))
                walls[case].append(wall)
                requests[case] = methods
        print(f"kip app deploy of a new app, {ROUNDS} rounds (p50 wall, requests of the last round)")
        for case in CASES:
            shown = ", ".join(f"{m} {n}" for m, n in sorted(requests[case].items()))
            print(f"  {case}: p50 {statistics.median(walls[case]):.1f} ms; {sum(requests[case].values())} requests: {shown}")
    finally:
        subprocess.run([KIP, "sandbox", "down"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
