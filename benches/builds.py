#!/usr/bin/env python3
"""Builds from git, in one run on one warm sandbox (runtime podman) with kip server beside it:

1. push → build Job created: a signed GitHub push delivered to kip server until the App's build
   Job exists in the API (target ≤ 1 s);
2. build time of a small app (nginx with one changed page): Job created → Complete; beside it,
   `buildah bud` of the same commit's checkout alone, the floor;
3. push → new version answering through the sandbox's ingress.

Run (root, podman, buildah, git; nginx from `kip sandbox image prepare nginx`, cached in
KIP_CONTAINERS):
    cargo build --release --bin kip && python3 benches/builds.py
KIP=path/to/kip picks another binary; BENCH_ROUNDS (5) the pushes. Results go into BENCHMARKS.md
by hand.
"""
import hashlib, hmac, json, os, re, shutil, socket, statistics, subprocess, sys, tempfile, time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIP = os.environ.get("KIP", os.path.join(ROOT, "target", "release", "kip"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
STORE = os.environ.get("KIP_CONTAINERS", "/var/tmp/kip-test-containers")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args, env=None, cwd=None):
    return subprocess.run(list(args), env=env, cwd=cwd, check=True, capture_output=True, text=True).stdout


def git(cwd, *args):
    return run("git", "-c", "user.name=Bench", "-c", "user.email=bench@example.invalid", *args, cwd=cwd).strip()


def api(address, path):
    with urllib.request.urlopen(f"http://{address}{path}", timeout=10) as resp:
        return json.loads(resp.read())


def answer(port, host):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.settimeout(2)
            conn.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
            return data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace").strip()
    except OSError:
        return ""


def push(server, secret, url, commit, delivery):
    body = json.dumps({
        "ref": "refs/heads/main", "after": commit, "before": "0" * 40,
        "repository": {"clone_url": url, "html_url": url, "ssh_url": url, "git_url": url, "url": url,
                       "full_name": "bench/app"},
        "head_commit": {"id": commit, "author": {"name": "Bench", "email": "bench@example.invalid"},
                        "added": [], "removed": [], "modified": ["Dockerfile"]},
        "commits": [],
    }).encode()
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    req = urllib.request.Request(f"http://{server}/hooks/github", data=body, method="POST", headers={
        "Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sig})
    with urllib.request.urlopen(req, timeout=20) as resp:
        said = resp.read().decode()
        if "accepted: build of" not in said:
            sys.exit(f"the push was not accepted: {said}")


def main():
    home = tempfile.mkdtemp(prefix="kip-bench-builds-")
    repos = os.path.join(home, "repos")
    os.makedirs(repos)
    ingress = free_port()
    env = dict(os.environ, KIP_HOME=home, KIP_CONTAINERS=STORE, NO_COLOR="1")
    env.pop("KIP_SCRIPTS", None)
    daemon_port = free_port()
    daemon = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1",
                               f"--port={daemon_port}", f"--base-path={repos}", repos],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = None
    try:
        bare = os.path.join(repos, "app.git")
        work = os.path.join(home, "work")
        run("git", "init", "-q", "--bare", "-b", "main", bare)
        run("git", "init", "-q", "-b", "main", work)
        git(work, "remote", "add", "origin", bare)

        def commit(version):
            with open(os.path.join(work, "Dockerfile"), "w") as f:
                f.write(f"FROM nginx:1.27\nRUN echo {version} > /usr/share/nginx/html/index.html\n")
            git(work, "add", "-A")
            git(work, "commit", "-q", "-m", version)
            git(work, "push", "-q", "origin", "HEAD:main")
            return git(work, "rev-parse", "HEAD")

        commit("v0")
        url = f"git://127.0.0.1:{daemon_port}/app.git"
        run(KIP, "sandbox", "up", "--runtime", "podman", "--ingress-listen", f"127.0.0.1:{ingress}", env=env)
        env["KUBECONFIG"] = run(KIP, "sandbox", "kubeconfig", env=env).strip()
        address = open(os.path.join(home, "sandbox", "address")).read().strip()
        run(KIP, "sandbox", "image", "prepare", "nginx", env=env)
        run(KIP, "app", "deploy", "--name", "app", "--git", url, "--port", "80", "--no-instance-header", env=env)
        said = run(KIP, "app", "webhook", "enable", "app", env=env)
        secret = re.search(r"Secret\s+(\S+)", said).group(1)
        server = subprocess.Popen([KIP, "server", "--listen", "127.0.0.1:0"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        first = server.stdout.readline()
        listen = re.search(r"http://(\S+)", first).group(1)
        # The first build warms the cache of the base image in the registry and the store.
        run(KIP, "app", "rebuild", "app", env=env)

        created, built, answered, floors = [], [], [], []
        for i in range(1, ROUNDS + 1):
            version = f"v{i}"
            sha = commit(version)
            jobs_before = {j["metadata"]["name"] for j in api(address, "/apis/batch/v1/namespaces/default/jobs")["items"]}
            start = time.perf_counter()
            push(listen, secret, url, sha, f"bench-{i}-{time.time()}")
            job = None
            while job is None:
                items = api(address, "/apis/batch/v1/namespaces/default/jobs")["items"]
                fresh = [j for j in items if j["metadata"]["name"] not in jobs_before]
                if fresh:
                    job = fresh[0]["metadata"]["name"]
                    created.append((time.perf_counter() - start) * 1000)
                elif time.perf_counter() - start > 30:
                    sys.exit("no build Job within 30 s of the push")
                else:
                    time.sleep(0.005)
            job_at = time.perf_counter()
            while True:
                j = api(address, f"/apis/batch/v1/namespaces/default/jobs/{job}")
                conds = {c["type"]: c["status"] for c in j.get("status", {}).get("conditions", [])}
                if conds.get("Complete") == "True":
                    built.append(time.perf_counter() - job_at)
                    break
                if conds.get("Failed") == "True" or time.perf_counter() - job_at > 600:
                    sys.exit(f"build {job} failed or took over 10 min: {json.dumps(j.get('status'))}")
                time.sleep(0.05)
            while answer(ingress, "app-sandbox.localhost") != version:
                if time.perf_counter() - start > 900:
                    sys.exit(f"{version} never answered")
                time.sleep(0.05)
            answered.append(time.perf_counter() - start)
            # The floor: buildah alone on a checkout of the same commit, same store.
            checkout = os.path.join(home, f"floor-{i}")
            run("git", "clone", "-q", "--depth", "1", f"file://{bare}", checkout)
            benv = dict(os.environ, CONTAINERS_CONF=f"{STORE}/containers.conf",
                        CONTAINERS_STORAGE_CONF=f"{STORE}/storage.conf")
            t = time.perf_counter()
            run("buildah", "--storage-driver", "vfs", "bud", "-q", "--pull=never", "-t", f"localhost/bench-floor:{i}",
                checkout, env=benv)
            floors.append(time.perf_counter() - t)
            run("buildah", "--storage-driver", "vfs", "rmi", f"localhost/bench-floor:{i}", env=benv)

        p50 = statistics.median
        print(f"{ROUNDS} pushes of a one-line change to an nginx app (p50, max):")
        print(f"  push → build Job created:      {p50(created):7.0f} ms, max {max(created):.0f} ms (target ≤ 1000 ms)")
        print(f"  build (Job created → Complete): {p50(built):7.1f} s, max {max(built):.1f} s; "
              f"buildah bud alone {p50(floors):.1f} s (ratio {p50(built) / p50(floors):.2f})")
        print(f"  push → new version answering:  {p50(answered):7.1f} s, max {max(answered):.1f} s")
    finally:
        if server is not None:
            server.kill()
        daemon.kill()
        subprocess.run([KIP, "sandbox", "down"], env=env, capture_output=True)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
