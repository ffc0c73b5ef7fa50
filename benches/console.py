#!/usr/bin/env python3
"""The web console's page weight and time to first byte, in one run on one sandbox
(runtime none), side by side with the command line reading the same things.

For each page (dashboard, projects, an environment, an app): the HTML's bytes (and gzipped),
and the time to first byte over BENCH_ROUNDS requests (median, p95) with a signed-in session
(the console token's; and, last column, a cluster user's: a ServiceAccount bound to
cluster-admin, so each request also asks the cluster who its token is and RBAC is evaluated);
beside it, the wall time of the verb(s) the page runs, as `kip … -o json` processes, and of
`kubectl get` of the same kind. The static files (htmx, css, js) are weighed once (browsers
cache them for an hour).

Run:
    cargo build --release --bin kip && python3 benches/console.py
KIP=path/to/kip picks another binary; BENCH_ROUNDS (30) the requests per page. Results go into
BENCHMARKS.md by hand.
"""
import gzip, http.client, os, re, socket, statistics, subprocess, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIP = os.environ.get("KIP", os.path.join(ROOT, "target", "release", "kip"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "30"))
TOKEN = "bench-console-token-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(address, path, cookie=None, gzip_ok=False):
    """(seconds until the status line and headers arrived, status, headers, body)"""
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Cookie": cookie} if cookie else {}
    if gzip_ok:
        headers["Accept-Encoding"] = "gzip"
    start = time.perf_counter()
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    ttfb = time.perf_counter() - start
    body = resp.read()
    conn.close()
    return ttfb, resp.status, dict(resp.getheaders()), body


def sign_in_with(address, token):
    """The session cookie of signing in through the form with `token`."""
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    body = "token=" + token + "&next=%2F"
    conn.request("POST", "/login", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Origin": f"http://{address}"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert resp.status == 303, resp.status
    return resp.getheader("set-cookie").split(";")[0]


def timed(cmd, env):
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def stats(samples):
    samples = sorted(samples)
    return statistics.median(samples) * 1000, samples[int(len(samples) * 0.95) - 1] * 1000


def main():
    home = tempfile.mkdtemp(prefix="kip-bench-console-")
    env = dict(os.environ, KIP_HOME=home, KIP_CONSOLE_TOKEN=TOKEN)
    env.pop("KIP_SCRIPTS", None)
    subprocess.run([KIP, "sandbox", "up"], env=env, check=True, capture_output=True)
    env["KUBECONFIG"] = os.path.join(home, "sandbox", "kubeconfig")
    kip = lambda *a: subprocess.run([KIP, *a], env=env, check=True, capture_output=True, text=True).stdout
    kip("project", "create", "shop", "--environments", "test,acc,prod")
    for i in range(5):
        kip("app", "deploy", "--name", f"web{i}", "--image", "nginx:1.27", "--port", "80",
            "--project", "shop", "--environment", "test")
    kip("app", "env", "set", "web0", "A=1", "B=2", "--project", "shop", "--environment", "test")
    address = f"127.0.0.1:{free_port()}"
    console = subprocess.Popen([KIP, "console", "--listen", address], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(300):
            try:
                get(address, "/healthz")
                break
            except OSError:
                time.sleep(0.05)
        _, status, headers, _ = get(address, f"/login?token={TOKEN}")
        cookie = headers["set-cookie"].split(";")[0]
        kubectl = lambda *a: subprocess.run(["kubectl", *a], env=env, check=True, capture_output=True, text=True).stdout
        kubectl("create", "serviceaccount", "bench", "-n", "default")
        kubectl("create", "clusterrolebinding", "bench-admin", "--clusterrole=cluster-admin",
                "--serviceaccount=default:bench")
        user_cookie = sign_in_with(address, kubectl("create", "token", "bench", "-n", "default").strip())
        where = ["--project", "shop", "--environment", "test"]
        pages = [
            ("dashboard", "/", [["project", "list", "-o", "json"], ["app", "list", "-A", "-o", "json"]],
             [["get", "projects.kipper.run", "-o", "json"], ["get", "apps.kipper.run", "-A", "-o", "json"]]),
            ("projects", "/projects", [["project", "list", "-o", "json"]],
             [["get", "projects.kipper.run", "-o", "json"]]),
            ("environment", "/projects/shop/test",
             [["project", "list", "-o", "json"], ["app", "list", *where, "-o", "json"], ["service", "list", *where, "-o", "json"]],
             [["get", "apps.kipper.run", "-n", "shop-test", "-o", "json"]]),
            ("app (env tab)", "/projects/shop/test/apps/web0?tab=env",
             [["app", "list", *where, "-o", "json"], ["app", "env", "list", "web0", *where, "-o", "json"], ["project", "list", "-o", "json"]],
             [["get", "configmap", "web0-env", "-n", "shop-test", "-o", "json"]]),
        ]
        print(f"{'page':16} {'html B':>7} {'gzip B':>7} {'TTFB p50':>9} {'p95':>7} {'kip verbs':>10} {'ratio':>6} {'kubectl':>8} {'as user':>8}")
        for name, path, verbs, kubectl in pages:
            samples, size, zipped = [], 0, 0
            for _ in range(ROUNDS):
                ttfb, status, _, body = get(address, path, cookie)
                assert status == 200, (path, status, body[:300])
                samples.append(ttfb)
                size, zipped = len(body), len(gzip.compress(body))
            p50, p95 = stats(samples)
            as_user = []
            for _ in range(ROUNDS):
                ttfb, status, _, body = get(address, path, user_cookie)
                assert status == 200, (path, status, body[:300])
                as_user.append(ttfb)
            user_p50, _ = stats(as_user)
            cli = statistics.median(sum(timed([KIP, *v], env) for v in verbs) for _ in range(5)) * 1000
            kc = statistics.median(sum(timed(["kubectl", *k], env) for k in kubectl) for _ in range(5)) * 1000
            print(f"{name:16} {size:7} {zipped:7} {p50:7.1f}ms {p95:5.1f}ms {cli:8.1f}ms {p50 / cli:6.2f} {kc:6.1f}ms {user_p50:6.1f}ms")
        total, total_sent = 0, 0
        for asset in ["htmx.min.js", "console.js", "console.css"]:
            _, status, _, body = get(address, f"/assets/{asset}")
            _, status_gz, headers, sent = get(address, f"/assets/{asset}", gzip_ok=True)
            assert status == 200 and status_gz == 200 and headers.get("content-encoding") == "gzip"
            total += len(body)
            total_sent += len(sent)
            print(f"asset {asset:14} {len(body):7} B, sent gzipped {len(sent):6} B")
        print(f"assets in all        {total:7} B, sent gzipped {total_sent:6} B")
    finally:
        console.terminate()
        console.wait()
        subprocess.run([KIP, "sandbox", "down"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
