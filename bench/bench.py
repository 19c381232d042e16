#!/usr/bin/env python3
"""keyward's load benchmark (`make bench`).

Loads, side by side on this machine, each server pinned to CPU 0 and the load
generator (wrk, 32 connections) to CPU 1:
  - the ceiling: a bare actix-web GET /hello (examples/hello.rs, same actix-web);
  - keyward GET /v2/auth.whoami with a valid key;
  - keyward /v2/authz.check with a valid key (nginx form);
  - keyward GET /v2/auth.whoami with an unknown key;
  - keyward GET /v2/team.asset.list with an Asset Audit key over 1,000 assets;
on SQLite and, when reachable, PostgreSQL. Every keyward request is audited
before its answer. Prints requests/s, p50, p99, the ratio to the ceiling and
the server CPU time per request, each server's peak RSS, on PostgreSQL the
database's CPU time per request and, on SQLite, the slowest WAL fsync of each
scenario (warm-up included), which every answer of its groups waited for.

Then two bounds on the ratio to the ceiling: the best one CPU allows when each
answer waits for a durable SQLite row (the ceiling's CPU per request plus
SQLite's own floor per event, from bench/sqlite_floor.py), and the most
requests/s the machine's CPUs allow at the CPU per request measured on
PostgreSQL (keyward + database + wrk).
"""
import http.client, json, os, re, resource, shutil, signal, socket, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
KEYWARD = os.path.join(TARGET, "release", "keyward")
HELLO = os.path.join(TARGET, "release", "examples", "hello")
WARMUP = int(os.environ.get("BENCH_WARMUP_SECONDS", "2"))
DURATION = int(os.environ.get("BENCH_SECONDS", "8"))
CONNECTIONS = 32
PG_URL = os.environ.get("KEYWARD_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
SERVER_CPU, LOAD_CPU = "0", "1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, path, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited early with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"server on port {port} never became ready")


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def to_ms(value):
    m = re.match(r"([\d.]+)(us|ms|s)", value)
    n, unit = float(m.group(1)), m.group(2)
    return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n


def wrk(url, headers, seconds):
    cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = to_ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "p50": p50, "p99": p99, "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(0) if errors else None}


def process_cpu(pid):
    """A process's command name and the user + system CPU time it has used so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        head, tail = f.read().rsplit(")", 1)
    fields = tail.split()
    return head.split("(", 1)[1], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    return process_cpu(pid)[1]


def postgres_cpu_seconds():
    """User + system CPU time of every PostgreSQL server process on this machine."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            name, seconds = process_cpu(pid)
        except OSError:  # ended meanwhile
            continue
        if name == "postgres":
            total += seconds
    return total


def measure(url, headers, pid):
    wrk(url, headers, WARMUP)
    before, db_before = cpu_seconds(pid), postgres_cpu_seconds()
    load_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = wrk(url, headers, DURATION)
    load_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    requests = result["rps"] * DURATION
    # CPU per request: steadier than requests/s on a shared machine, and what
    # the ratio to the ceiling comes down to when the server's core is saturated.
    result["cpu_us"] = (cpu_seconds(pid) - before) / requests * 1e6
    # The database's and wrk's: on 2 CPUs, what the server's CPU does not bound, these do.
    result["db_cpu_us"] = (postgres_cpu_seconds() - db_before) / requests * 1e6
    load = (load_after.ru_utime + load_after.ru_stime) - (load_before.ru_utime + load_before.ru_stime)
    result["load_cpu_us"] = load / requests * 1e6
    return result


def fsync_buckets(port):
    """The WAL fsync histogram from /metrics: {upper bound in s: cumulative count} (SQLite only)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/metrics")
    out = {}
    for line in c.getresponse().read().decode().splitlines():
        m = re.match(r'keyward_audit_fsync_seconds_bucket\{le="([^"]+)"\} (\d+)', line)
        if m:
            out[float(m.group(1))] = int(m.group(2))
    return out


def slowest_fsync(before, after):
    """The slowest WAL fsync during a scenario, as the upper bound (ms) of its histogram bucket."""
    slowest, below = None, 0
    for bound in sorted(after):
        count = after[bound] - before.get(bound, 0)
        if count > below:
            slowest = bound
        below = count
    return None if slowest is None else slowest * 1000


class Api:
    def __init__(self, port):
        self.port = port

    def call(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body)
            h["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        payload = json.loads(r.read() or b"null")
        if r.status != 200:
            sys.exit(f"{method} {path}: {r.status} {payload}")
        return payload


def keyward_env(db_url, port, tmp):
    env = dict(os.environ)
    env.update({
        "KEYWARD_DATABASE_URL": db_url,
        "KEYWARD_LISTEN": f"127.0.0.1:{port}",
        "KEYWARD_KEY_PEPPER": "bench-pepper-0123456789abcdef0123456789",
        "KEYWARD_CONSOLE_JWT_SECRET": "bench-console-0123456789abcdef012345678",
        "KEYWARD_INGEST_TOKEN": "bench-ingest-0123456789abcdef0123456789",
        "KEYWARD_EXPORT_DIR": os.path.join(tmp, "exports"),
        "KEYWARD_LOG": "warn",
        # Limits off: the benchmark measures the service, not its 429s.
        "KEYWARD_RATE_LIMIT_READ_PER_MINUTE": "0",
        "KEYWARD_RATE_LIMIT_WRITE_PER_MINUTE": "0",
    })
    return env


def cli(env, *args):
    return subprocess.run([KEYWARD, *args], env=env, capture_output=True, text=True, check=True).stdout.strip()


def bench_keyward(backend, db_url, tmp):
    port = free_port()
    env = keyward_env(db_url, port, tmp)
    if backend == "postgresql":
        cli(env, "migrate")
    tenant = json.loads(cli(env, "tenant", "create", "--name", "Bench", "--owner-email", "owner@bench.example"))
    token = cli(env, "console-token", "--tenant", tenant["tenant_id"], "--member", tenant["owner_member_id"])
    proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, KEYWARD, "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "serve.log"), "w"))
    try:
        wait_ready(port, "/readyz", proc)
        api = Api(port)
        owner = {"Authorization": f"Bearer {token}"}
        keys = {}
        for kt in ["KEY_TYPE_SIEM", "KEY_TYPE_TEAM_ASSET_AUDIT"]:
            keys[kt] = api.call("POST", "/v2/enterprise.key.create", {"key_type": kt, "label": "bench"}, owner)["secret"]
        ingest = {"Authorization": "Bearer bench-ingest-0123456789abcdef0123456789"}
        for i in range(1000):
            api.call("POST", "/internal/v2/team.asset.upsert", {
                "tenant_id": tenant["tenant_id"], "asset_type": "ASSET_TYPE_FILE", "asset_id": f"a{i}",
                "asset_name": f"asset {i:04}", "owner_id": "owner", "shared_at": "2026-01-01T00:00:00Z",
                "permission": "SHARE_SCOPE_TEAM_ONLY"}, ingest)
        base = f"http://127.0.0.1:{port}"
        siem, audit = keys["KEY_TYPE_SIEM"], keys["KEY_TYPE_TEAM_ASSET_AUDIT"]
        def scenario(url, headers):
            before = fsync_buckets(port)
            result = measure(url, headers, proc.pid)
            # A stalled fsync holds every answer waiting for it: the p99's usual suspect on a shared disk.
            result["fsync_ms"] = slowest_fsync(before, fsync_buckets(port))
            return result

        results = {
            "whoami (valid key)": scenario(f"{base}/v2/auth.whoami", [f"X-API-Key: {siem}"]),
            "authz.check (valid key)": scenario(f"{base}/v2/authz.check", [
                f"X-API-Key: {audit}", "X-Original-Method: GET", "X-Original-URI: /v2/team.asset.list"]),
            "whoami (unknown key)": scenario(f"{base}/v2/auth.whoami", [f"X-API-Key: {UNKNOWN_KEY}"]),
            "team.asset.list (1,000 assets)": scenario(f"{base}/v2/team.asset.list?limit=100", [f"X-API-Key: {audit}"]),
        }
        return results, peak_rss_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def bench_hello():
    port = free_port()
    proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, HELLO], env={**os.environ, "HELLO_LISTEN": f"127.0.0.1:{port}"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, "/hello", proc)
        return measure(f"http://127.0.0.1:{port}/hello", [], proc.pid), peak_rss_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def pg_reachable():
    return subprocess.run(["pg_isready", "-q", "-d", PG_URL]).returncode == 0 if shutil.which("pg_isready") else False


def fresh_pg_db():
    name = f"keyward_bench_{os.getpid()}"
    for sql in [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"']:
        subprocess.run(["psql", f"{PG_URL}/postgres", "-qc", sql], check=True, capture_output=True)
    # Loopback: TLS would only add encryption on both ends of a local socket.
    return f"{PG_URL}/{name}?sslmode=disable", name


UNKNOWN_KEY = None


def main():
    global UNKNOWN_KEY
    UNKNOWN_KEY = subprocess.run([os.path.join(TARGET, "release", "examples", "new_key")],
                                 capture_output=True, text=True, check=True).stdout.strip()
    print(f"keyward benchmark: {CONNECTIONS} connections, {WARMUP}s warm-up + {DURATION}s per scenario, "
          f"server on CPU {SERVER_CPU}, wrk on CPU {LOAD_CPU}")
    print(f"machine: {os.cpu_count()} CPUs, {subprocess.run(['uname', '-srm'], capture_output=True, text=True).stdout.strip()}")
    ceiling, hello_rss = bench_hello()
    rows = [("ceiling: actix-web GET /hello", "-", ceiling, hello_rss)]
    backends = [("sqlite", None)]
    if pg_reachable():
        backends.append(("postgresql", "pg"))
    else:
        print("PostgreSQL not reachable: SQLite only")
    for backend, _ in backends:
        with tempfile.TemporaryDirectory() as tmp:
            if backend == "sqlite":
                url = f"sqlite://{tmp}/bench.db"
                pg_name = None
            else:
                url, pg_name = fresh_pg_db()
            results, rss = bench_keyward(backend, url, tmp)
            for name, r in results.items():
                rows.append((name, backend, r, rss))
            if pg_name:
                subprocess.run(["psql", f"{PG_URL}/postgres", "-qc", f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'],
                               capture_output=True)
    print()
    print(f"{'scenario':34} {'db':10} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'x ceiling':>10} "
          f"{'CPU us/req':>11} {'DB CPU us/req':>14} {'peak RSS MiB':>13} {'slowest fsync ms':>17}")
    for name, db, r, rss in rows:
        ratio = r["rps"] / ceiling["rps"]
        note = "" if name.startswith("ceiling") or "unknown" in name or r["non2xx"] == 0 else f"  ({r['non2xx']} non-2xx!)"
        if "unknown" in name and r["non2xx"] == 0:
            note = "  (expected 401s, got 2xx!)"
        fsync = "-" if r.get("fsync_ms") is None else f"<= {r['fsync_ms']:.1f}"
        db_cpu = f"{r['db_cpu_us']:.1f}" if db == "postgresql" else "-"
        print(f"{name:34} {db:10} {r['rps']:>10.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} {ratio:>10.2f} "
              f"{r['cpu_us']:>11.1f} {db_cpu:>14} {rss:>13.1f} {fsync:>17}{note}")
    sqlite_bound(ceiling["cpu_us"])
    for name, db, r, _ in rows:
        if db == "postgresql" and "valid key" in name:
            postgres_bound(name, r, ceiling)


def postgres_bound(name, r, ceiling):
    """The most requests/s this machine's CPUs allow at the CPU per request measured (server + database + wrk)."""
    cpus = os.cpu_count()
    total = r["cpu_us"] + r["db_cpu_us"] + r["load_cpu_us"]
    most = cpus / total * 1e6
    print(f"PostgreSQL, {name}: keyward {r['cpu_us']:.1f} + database {r['db_cpu_us']:.1f} + wrk "
          f"{r['load_cpu_us']:.1f} = {total:.1f} us of CPU per request; {cpus} CPUs allow at most "
          f"{most:,.0f} req/s, {most / ceiling['rps']:.2f}x the ceiling.")


def sqlite_bound(ceiling_cpu_us):
    """The best ratio a SQLite row per request allows here, from bench/sqlite_floor.py on the server's CPU."""
    out = subprocess.run(["taskset", "-c", SERVER_CPU, sys.executable, os.path.join(ROOT, "bench", "sqlite_floor.py")],
                         capture_output=True, text=True, check=True).stdout
    floor = float(re.search(r"floor\s+([\d.]+) us", out).group(1))
    # With the server's CPU saturated, the ratio is the ceiling's CPU per request over keyward's.
    print(f"\nSQLite's own floor for a durable event (bench/sqlite_floor.py): {floor:.1f} us of CPU; with the "
          f"ceiling's {ceiling_cpu_us:.1f} us per request, one CPU answering a request only after its event is a "
          f"committed, fsynced SQLite row reaches at most {ceiling_cpu_us / (ceiling_cpu_us + floor):.2f}x the ceiling.")


if __name__ == "__main__":
    main()
