#!/usr/bin/env python3
"""`kip tunnel` against a direct loopback connection and `kubectl port-forward`, in one run.

A sandbox (`kip sandbox serve`, its own KIP_HOME) stands in for the cluster. Two kip Services
with one-replica StatefulSets have pods whose `sandbox.kipper.run/forward` annotation names real
loopback servers: a throwaway PostgreSQL (`db`, port 5432) and a tiny Python byte source/sink
(`blob`, port 9000). The same servers are then reached three ways:

  direct   127.0.0.1:<server port>
  kip      `kip tunnel NAME --local-port P`   (WebSocket v4.channel.k8s.io through the sandbox)
  kubectl  `kubectl port-forward pod/NAME-0 P:PORT`  (SPDY through the sandbox)
  relays   two chained `socat` TCP relays (client → relay → relay → server): the same number of
           extra processes and hops as the tunnel (kip, then the sandbox), copying bytes and
           nothing else, as a floor for any design with two relays (skipped without socat)

Measured, ROUNDS rounds (the order of the three paths rotates each round), medians reported:
  - pgbench select-only (`pgbench -S -c CLIENTS -j 2 -T SECONDS`): tps and average latency;
  - pgbench's default TPC-B-like workload (`pgbench -c CLIENTS -j 2 -T SECONDS`, five
    statements in a transaction, the server does more per round trip): tps;
  - 100 MB from the server to the client (download) and 100 MB from the client to the server
    (upload), MB/s, each a fresh connection (the tunnel's stream set-up is included).

Build first (this script builds nothing):
    cargo build --release --bin kip
    python3 benches/tunnel.py

Environment: CARGO_TARGET_DIR (where `release/kip` is), KIP_BIN (another kip binary), BENCH_ROUNDS (3), BENCH_SECONDS (10),
BENCH_CLIENTS (4), BENCH_MB (100). Needs pgbench and a PostgreSQL server
(`apt-get install -y postgresql postgresql-contrib`), kubectl; as root the server runs as the
`postgres` user.
"""
import glob, os, pwd, re, shutil, signal, socket, statistics, subprocess, sys, tempfile
import threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
KIP = os.environ.get("KIP_BIN", os.path.join(TARGET, "release", "kip"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "4"))
MB = int(os.environ.get("BENCH_MB", "100"))
USER, PASSWORD = "skipper", "kip-bench-Pa55"
PATHS = ["direct", "kip", "kubectl"] + (["relays"] if shutil.which("socat") else [])

procs = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(p.split("/")[4]))
    if not found:
        sys.exit("no PostgreSQL server: apt-get install -y postgresql postgresql-contrib")
    return os.path.dirname(found[-1])


def pgbench():
    exe = shutil.which("pgbench") or os.path.join(pg_bin(), "pgbench")
    if not os.path.exists(exe):
        sys.exit("no pgbench: apt-get install -y postgresql-contrib")
    return exe


# --- the stand-in servers ---------------------------------------------------------------------

def start_postgres(work):
    """A throwaway PostgreSQL on loopback; as root it runs as the `postgres` user."""
    bin_dir = pg_bin()
    owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    d = os.path.join(work, "pg")
    os.mkdir(d, 0o700)
    pwfile = os.path.join(d, "pwfile")
    with open(pwfile, "w") as f:
        f.write(PASSWORD)
    if owner:
        for p in (d, pwfile):
            os.chown(p, owner.pw_uid, owner.pw_gid)

    def as_owner():
        if owner:
            os.setgid(owner.pw_gid)
            os.setuid(owner.pw_uid)

    env = dict(os.environ, LC_ALL="C")
    env.pop("PGDATA", None)
    subprocess.run([os.path.join(bin_dir, "initdb"), "-D", os.path.join(d, "data"), "-U", USER,
                    "-E", "UTF8", "--no-sync", "--no-instructions", f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256", "--auth-local=trust"],
                   check=True, env=env, preexec_fn=as_owner, stdout=subprocess.DEVNULL)
    port = free_port()
    log = open(os.path.join(d, "server.log"), "w")
    proc = subprocess.Popen([os.path.join(bin_dir, "postgres"), "-D", os.path.join(d, "data"),
                             "-p", str(port), "-k", d, "-c", "listen_addresses=127.0.0.1",
                             "-c", "fsync=off", "-c", "max_connections=50"],
                            env=env, preexec_fn=as_owner, stdout=subprocess.DEVNULL, stderr=log)
    procs.append(proc)
    env = pg_env()
    for _ in range(600):
        if subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", USER, "-d", "postgres",
                           "-c", "SELECT 1"], env=env, capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    else:
        sys.exit("postgres never accepted a connection")
    subprocess.run([pgbench(), "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", str(port),
                    "-U", USER, "postgres"], env=env, check=True, capture_output=True)
    return port


def pg_env():
    return dict(os.environ, PGPASSWORD=PASSWORD, PGCONNECT_TIMEOUT="10")


def start_blob_server():
    """A byte source/sink: `D` + 8-byte size sends that many bytes; `U` + 8-byte size reads them
    and answers one byte."""
    chunk = b"\xa5" * (1 << 20)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)

    def handle(conn):
        with conn:
            head = b""
            while len(head) < 9:
                more = conn.recv(9 - len(head))
                if not more:
                    return
                head += more
            size = int.from_bytes(head[1:], "big")
            if head[:1] == b"D":
                while size > 0:
                    n = min(size, len(chunk))
                    conn.sendall(chunk[:n])
                    size -= n
                # Wait for the client to close, so nothing is cut off.
                conn.recv(1)
            else:
                while size > 0:
                    got = conn.recv(min(size, 1 << 20))
                    if not got:
                        return
                    size -= len(got)
                conn.sendall(b"k")
                conn.recv(1)

    def serve():
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1]


def transfer(port, direction, size):
    """Seconds to move `size` bytes through 127.0.0.1:port, connect included."""
    chunk = b"\x5a" * (1 << 20)
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(direction + size.to_bytes(8, "big"))
        if direction == b"D":
            left = size
            buf = bytearray(1 << 20)
            while left > 0:
                n = s.recv_into(buf, min(left, len(buf)))
                if n == 0:
                    raise RuntimeError(f"download through port {port} ended {left} bytes short")
                left -= n
        else:
            left = size
            while left > 0:
                n = min(left, len(chunk))
                s.sendall(chunk[:n])
                left -= n
            if s.recv(1) != b"k":
                raise RuntimeError(f"upload through port {port} not acknowledged")
        elapsed = time.perf_counter() - start
    return elapsed


# --- the sandbox and the two tunnels ----------------------------------------------------------

def start_sandbox(home):
    proc = subprocess.Popen([KIP, "sandbox", "serve"], env=dict(os.environ, KIP_HOME=home),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    procs.append(proc)
    first = proc.stdout.readline()
    if "Sandbox listening on" not in first:
        sys.exit(f"unexpected first line from kip sandbox serve: {first!r}")
    return os.path.join(home, "sandbox", "kubeconfig")


def kip_env(home, kubeconfig):
    env = dict(os.environ, KIP_HOME=home, KUBECONFIG=kubeconfig, NO_COLOR="1")
    env.pop("KIP_SCRIPTS", None)
    return env


def stand_in(env, name, kind, port, backend):
    manifest = f"""apiVersion: kipper.run/v1alpha1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{type: {kind}, version: "1", storage: 1Gi, port: {port}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: {name}, namespace: default}}
spec:
  serviceName: {name}
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}}}
      annotations: {{sandbox.kipper.run/forward: "{port}=127.0.0.1:{backend}"}}
    spec:
      containers: [{{name: main, image: "{kind}:latest", ports: [{{containerPort: {port}}}]}}]
"""
    subprocess.run(["kubectl", "apply", "-f", "-"], input=manifest, text=True, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    for _ in range(600):
        out = subprocess.run(["kubectl", "get", "pod", f"{name}-0", "-o",
                              "jsonpath={.status.phase}"], env=env, capture_output=True, text=True)
        if out.stdout == "Running":
            return
        time.sleep(0.05)
    sys.exit(f"pod {name}-0 never ran")


def start_and_wait(argv, env, wanted):
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    procs.append(proc)
    while True:
        line = proc.stdout.readline()
        if not line:
            sys.exit(f"{argv} ended before saying {wanted!r}: {proc.stderr.read()}")
        if wanted in line:
            # Keep draining stdout so the process never blocks on a full pipe.
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc


def kip_tunnel(env, name, local):
    return start_and_wait([KIP, "tunnel", name, "--local-port", str(local)], env,
                          "Press Ctrl+C to close")


def socat_relays(local, server):
    """Two chained socat relays from `local` to `server`, TCP_NODELAY on every hop."""
    middle = free_port()
    for listen, to in [(middle, server), (local, middle)]:
        proc = subprocess.Popen(["socat", f"TCP-LISTEN:{listen},bind=127.0.0.1,reuseaddr,fork,nodelay",
                                 f"TCP:127.0.0.1:{to},nodelay"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        procs.append(proc)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", listen)).close()
                break
            except OSError:
                time.sleep(0.02)


def kubectl_forward(env, name, local, port):
    return start_and_wait(["kubectl", "port-forward", f"pod/{name}-0", f"{local}:{port}"], env,
                          "Forwarding from")


# --- measurements -----------------------------------------------------------------------------

def run_pgbench(port, workload=("-S",)):
    """pgbench through `port`: select-only (`-S`) unless told otherwise, `()` being pgbench's
    default TPC-B-like read/write transaction."""
    out = subprocess.run([pgbench(), "-n", *workload, "-c", str(CLIENTS), "-j", "2", "-T", str(SECONDS),
                          "-h", "127.0.0.1", "-p", str(port), "-U", USER, "postgres"],
                         env=pg_env(), capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"pgbench through port {port} failed: {out.stderr}")
    tps = float(re.search(r"tps = ([\d.]+)", out.stdout).group(1))
    lat = float(re.search(r"latency average = ([\d.]+) ms", out.stdout).group(1))
    return tps, lat


def load_average():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main():
    if not os.path.exists(KIP):
        sys.exit(f"no {KIP}: run `cargo build --release --bin kip` first")
    work = tempfile.mkdtemp(prefix="kip-tunnel-bench-")
    os.chmod(work, 0o755)
    try:
        run(work)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGINT if p.args[:2] == [KIP, "tunnel"] else signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


def run(work):
    home = os.path.join(work, "home")
    os.mkdir(home)
    print(f"load average at start: {load_average()}", flush=True)
    pg_port = start_postgres(work)
    blob_port = start_blob_server()
    kubeconfig = start_sandbox(home)
    env = kip_env(home, kubeconfig)
    # Any kip verb applies kip's CRDs.
    subprocess.run([KIP, "app", "list"], env=env, check=True, stdout=subprocess.DEVNULL,
                   cwd=home)
    stand_in(env, "db", "postgres", 5432, pg_port)
    stand_in(env, "blob", "minio", 9000, blob_port)
    ports = {
        ("db", "direct"): pg_port, ("blob", "direct"): blob_port,
        ("db", "kip"): free_port(), ("blob", "kip"): free_port(),
        ("db", "kubectl"): free_port(), ("blob", "kubectl"): free_port(),
        ("db", "relays"): free_port(), ("blob", "relays"): free_port(),
    }
    kip_tunnel(env, "db", ports[("db", "kip")])
    kip_tunnel(env, "blob", ports[("blob", "kip")])
    kubectl_forward(env, "db", ports[("db", "kubectl")], 5432)
    kubectl_forward(env, "blob", ports[("blob", "kubectl")], 9000)
    if "relays" in PATHS:
        socat_relays(ports[("db", "relays")], pg_port)
        socat_relays(ports[("blob", "relays")], blob_port)

    size = MB * 1_000_000
    results = {(m, p): [] for m in ("tps", "lat", "tpcb", "down", "up") for p in PATHS}
    # Warm-up: one connection and a little traffic through every path.
    for path in PATHS:
        transfer(ports[("blob", path)], b"D", 1_000_000)
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(ports[("db", path)]), "-U", USER,
                        "-d", "postgres", "-c", "SELECT 1"], env=pg_env(), check=True,
                       capture_output=True)
    for r in range(ROUNDS):
        order = PATHS[r % len(PATHS):] + PATHS[:r % len(PATHS)]
        for path in order:
            tps, lat = run_pgbench(ports[("db", path)])
            results[("tps", path)].append(tps)
            results[("lat", path)].append(lat)
            tpcb, _lat = run_pgbench(ports[("db", path)], workload=())
            results[("tpcb", path)].append(tpcb)
            down = size / 1e6 / transfer(ports[("blob", path)], b"D", size)
            up = size / 1e6 / transfer(ports[("blob", path)], b"U", size)
            results[("down", path)].append(down)
            results[("up", path)].append(up)
            print(f"round {r + 1} {path:8} pgbench -S {tps:9.0f} tps {lat:7.3f} ms   "
                  f"TPC-B {tpcb:7.0f} tps   "
                  f"download {down:7.1f} MB/s   upload {up:7.1f} MB/s", flush=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    print()
    print(f"load average at end: {load_average()}; {os.cpu_count()} CPUs; "
          f"{ROUNDS} rounds, medians; pgbench [-S] -c {CLIENTS} -j 2 -T {SECONDS}; {MB} MB transfers")
    print()
    relays = "relays" in PATHS
    print("| measure | direct | kip tunnel | kubectl port-forward | kip ÷ direct | kip ÷ kubectl |"
          + (" two socat relays | relays ÷ direct |" if relays else ""))
    print("|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if relays else ""))
    rows = [("pgbench -S tps", "tps", "{:,.0f}", False),
            ("pgbench latency avg (ms)", "lat", "{:.3f}", True),
            ("pgbench TPC-B (default workload) tps", "tpcb", "{:,.0f}", False),
            (f"{MB} MB download (MB/s)", "down", "{:,.1f}", False),
            (f"{MB} MB upload (MB/s)", "up", "{:,.1f}", False)]
    for label, key, fmt, lower_better in rows:
        d, k, c = med[(key, "direct")], med[(key, "kip")], med[(key, "kubectl")]
        # For latency the ratio is still kip's throughput-like figure: direct ÷ kip.
        rd = d / k if lower_better else k / d
        rc = c / k if lower_better else k / c
        line = (f"| {label} | {fmt.format(d)} | {fmt.format(k)} | {fmt.format(c)} | "
                f"{rd:.2f}× | {rc:.2f}× |")
        if relays:
            x = med[(key, "relays")]
            line += f" {fmt.format(x)} | {(d / x if lower_better else x / d):.2f}× |"
        print(line)
    print()
    print("(For latency the ratios are inverted — direct ÷ kip, kubectl ÷ kip — so above 1 is "
          "better for kip in every row.)")


if __name__ == "__main__":
    main()
