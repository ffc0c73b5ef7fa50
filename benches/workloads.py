#!/usr/bin/env python3
"""Real workloads in the sandbox, in one run on one warm sandbox (runtime podman):

1. Pod start with the image present: a pod created through the API until it is Ready, and until
   its nginx answers at the pod's address; beside it, `podman run` of the same image on the
   same network until it answers (the floor: what podman itself costs).
2. Requests/s and p99 (wrk, 1 thread, 16 keep-alive connections, small page) to the same nginx
   pod: straight to the pod's address, through the sandbox's ingress (Host routing, Service,
   Endpoints), and through the ingress and the instance-ID sidecar.

Run (root, podman; the images come from `kip sandbox image prepare`, cached in KIP_CONTAINERS):
    cargo build --release --bin kip -p kip -p kip-instance-id && python3 benches/workloads.py
KIP=path/to/kip picks another binary; BENCH_ROUNDS (10) the pod starts; BENCH_DURATION (8s)
each wrk run. Results go into BENCHMARKS.md by hand.
"""
import json, os, re, shutil, statistics, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIP = os.environ.get("KIP", os.path.join(ROOT, "target", "release", "kip"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "10"))
DURATION = os.environ.get("BENCH_DURATION", "8s")
STORE = os.environ.get("KIP_CONTAINERS", "/var/tmp/kip-test-containers")
IMAGE = "nginx:1.27"


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kip(env, *args):
    return subprocess.run([KIP, *args], env=env, check=True, capture_output=True, text=True).stdout


def api(address, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{address}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"{}")


def answers(ip, port=80):
    """Whether an HTTP server at ip:port answers 200, within a second (a raw socket: no
    library retries or proxies)."""
    import socket
    try:
        with socket.create_connection((ip, port), timeout=1) as conn:
            conn.settimeout(1)
            conn.sendall(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
            return conn.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def pod_start(address, i):
    """Milliseconds from create to Ready, and to the first answer of its nginx."""
    name = f"bench-{i}"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [{"name": "web", "image": IMAGE}]}}
    start = time.perf_counter()
    api(address, "POST", "/api/v1/namespaces/default/pods", pod)
    ready = answered = None
    got = {}
    deadline = start + 60
    while answered is None and time.perf_counter() < deadline:
        got = api(address, "GET", f"/api/v1/namespaces/default/pods/{name}")
        conds = got.get("status", {}).get("conditions", [])
        if ready is None and any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
            ready = (time.perf_counter() - start) * 1000
        ip = got.get("status", {}).get("podIP")
        if ip and answers(ip):
            answered = (time.perf_counter() - start) * 1000
        time.sleep(0.01)
    if ready is not None and answered is not None:
        api(address, "DELETE", f"/api/v1/namespaces/default/pods/{name}")
    if ready is None or answered is None:
        sys.exit(f"pod {name} never got ready or never answered: {json.dumps(got.get('status'))}")
    return ready, answered


def podman_start(network, i):
    """Milliseconds from `podman run -d` to the first answer, on the sandbox's pod network."""
    env = dict(os.environ, CONTAINERS_CONF=f"{STORE}/containers.conf",
               CONTAINERS_STORAGE_CONF=f"{STORE}/storage.conf")
    ip = f"10.42.{network}.{200 + i}"
    start = time.perf_counter()
    subprocess.run(["podman", "run", "-d", "--name", f"bench-floor-{i}", "--network", f"kip-{network}",
                    "--ip", ip, f"localhost/{IMAGE}"], env=env, check=True, capture_output=True)
    while not answers(ip):
        time.sleep(0.01)
    took = (time.perf_counter() - start) * 1000
    subprocess.run(["podman", "rm", "-f", "-t", "0", f"bench-floor-{i}"], env=env, capture_output=True)
    return took


def wrk(url, host):
    out = subprocess.run(["wrk", "-t1", "-c16", f"-d{DURATION}", "--latency", "-H", f"Host: {host}", url],
                         check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in out:
        sys.exit(f"wrk saw errors against {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    return rps, float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]


def main():
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")
    home = tempfile.mkdtemp(prefix="kip-bench-workloads-")
    ingress = free_port()
    env = dict(os.environ, KIP_HOME=home, KIP_CONTAINERS=STORE, NO_COLOR="1")
    env.pop("KIP_SCRIPTS", None)
    kip(env, "sandbox", "up", "--runtime", "podman", "--ingress-listen", f"127.0.0.1:{ingress}")
    env["KUBECONFIG"] = kip(env, "sandbox", "kubeconfig").strip()
    address = open(os.path.join(home, "sandbox", "address")).read().strip()
    network = int(open(os.path.join(home, "sandbox", "pod-network")).read().strip())
    try:
        kip(env, "sandbox", "image", "prepare", "nginx", "instance-id")
        pod_start(address, "warm")
        starts = [pod_start(address, i) for i in range(ROUNDS)]
        floors = [podman_start(network, i) for i in range(ROUNDS)]
        ready = statistics.median(s[0] for s in starts)
        answered = statistics.median(s[1] for s in starts)
        floor = statistics.median(floors)
        print(f"pod start, image present, {ROUNDS} pods (p50): Ready {ready:.0f} ms, "
              f"nginx answers {answered:.0f} ms; podman run alone {floor:.0f} ms "
              f"(ratio {answered / floor:.2f})")

        kip(env, "app", "deploy", "--name", "plain", "--image", IMAGE, "--port", "80", "--no-instance-header")
        kip(env, "app", "deploy", "--name", "marked", "--image", IMAGE, "--port", "80")
        pod = json.loads(subprocess.run(["kubectl", "get", "pods", "-l", "app.kubernetes.io/name=plain", "-o", "json"],
                                        env=env, check=True, capture_output=True, text=True).stdout)
        ip = pod["items"][0]["status"]["podIP"]
        direct = wrk(f"http://{ip}:80/", "plain-sandbox.localhost")
        through = wrk(f"http://127.0.0.1:{ingress}/", "plain-sandbox.localhost")
        sidecar = wrk(f"http://127.0.0.1:{ingress}/", "marked-sandbox.localhost")
        print(f"nginx pod, wrk -t1 -c16 -d{DURATION}:")
        print(f"  straight to the pod:          {direct[0]:8.0f} req/s, p99 {direct[1]:.2f} ms")
        print(f"  through the ingress:          {through[0]:8.0f} req/s, p99 {through[1]:.2f} ms "
              f"(ratio {through[0] / direct[0]:.2f})")
        print(f"  through ingress and sidecar:  {sidecar[0]:8.0f} req/s, p99 {sidecar[1]:.2f} ms "
              f"(ratio {sidecar[0] / direct[0]:.2f})")
    finally:
        subprocess.run([KIP, "sandbox", "down"], env=env, capture_output=True)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
