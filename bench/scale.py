#!/usr/bin/env python3
"""The audit log's queries at scale (`make bench-scale`).

For SQLite and then PostgreSQL:
  1. seeds one tenant's chain with SCALE_EVENTS events (10,000,000) through
     the writer's own group commit, without HTTP (examples/seed_scale.rs: a
     mix where every filter has something rare and something common to find);
  2. reports the database's bytes per event (SQLite: the file after a WAL
     checkpoint; PostgreSQL: the table with its indexes and TOAST);
  3. serves it (server on CPU 0, this script on CPU 1) and times the first
     page (100 events) of each filter of enterprise.audit.list and of the SIEM
     feed's time window, one request at a time, REPEAT times each: p50 and max
     in ms, with how many events the page held.
Target: every first page under 50 ms on a 10,000,000-event chain.
"""
import http.client, json, os, socket, sqlite3, subprocess, sys, tempfile, time, urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
KEYWARD = os.path.join(TARGET, "release", "keyward")
SEED = os.path.join(TARGET, "release", "examples", "seed_scale")
EVENTS = int(os.environ.get("BENCH_SCALE_EVENTS", "10000000"))
BACKENDS = os.environ.get("BENCH_SCALE_BACKENDS", "sqlite,postgresql").split(",")
PG_URL = os.environ.get("KEYWARD_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
REPEAT = 15
PAGE = 100
TARGET_MS = 50
SERVER_CPU, LOAD_CPU = "0", "1"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def env_for(db_url, port, key, tmp):
    env = dict(os.environ)
    env.update({
        "KEYWARD_DATABASE_URL": db_url,
        "KEYWARD_LISTEN": f"127.0.0.1:{port}",
        "KEYWARD_CHECKPOINT_KEY": key,
        "KEYWARD_CONSOLE_JWT_SECRET": "bench-console-0123456789abcdef012345678",
        "KEYWARD_KEY_PEPPER": "bench-pepper-0123456789abcdef0123456789",
        # The background verifier would read the whole chain while the queries are timed.
        "KEYWARD_VERIFY_INTERVAL_MS": "86400000",
        "KEYWARD_RETENTION_INTERVAL_MS": "604800000",
        "KEYWARD_EXPORT_DIR": os.path.join(tmp, "exports"),
        "KEYWARD_LOG": "warn",
        "KEYWARD_RATE_LIMIT_READ_PER_MINUTE": "0",
        "KEYWARD_RATE_LIMIT_WRITE_PER_MINUTE": "0",
    })
    return env


def call(conn, method, path, headers, body=None):
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={**headers, "Content-Type": "application/json"})
    r = conn.getresponse()
    data = json.loads(r.read())
    if r.status != 200:
        raise SystemExit(f"{method} {path}: {r.status} {data}")
    return data


def iso(t):
    """A stored timestamp ('2026-11-30 20:01:02.123456') as RFC 3339."""
    return t.replace(" ", "T") + ("" if "." in t else ".000000") + "Z"


def bytes_per_event(backend, db_url, db_file, events):
    if backend == "sqlite":
        c = sqlite3.connect(db_file)
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        c.close()
        return os.path.getsize(db_file) / events, {}
    out = subprocess.run(["psql", db_url, "-Atc",
                          "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                          "WHERE c.relname = 'audit_events' OR c.oid IN "
                          "(SELECT indexrelid FROM pg_index WHERE indrelid = 'audit_events'::regclass)"],
                         capture_output=True, text=True, check=True).stdout
    sizes = {n: int(s) for n, s in (l.split("|") for l in out.split())}
    return sizes.pop("audit_events") / events, {n: s / events for n, s in sizes.items()}


def times_at(backend, db_url, db_file, tenant, seqs):
    sql = ("SELECT seq, occurred_at FROM audit_events WHERE chain_id = '%s' AND seq IN (%s)"
           % (tenant, ",".join(str(s) for s in seqs)))
    if backend == "sqlite":
        rows = sqlite3.connect(db_file).execute(sql).fetchall()
    else:
        out = subprocess.run(["psql", db_url, "-Atc", sql], capture_output=True, text=True, check=True).stdout
        rows = [l.split("|") for l in out.split("\n") if l]
    return {int(s): iso(str(t)) for s, t in rows}


def run(backend, tmp):
    key = subprocess.run([KEYWARD, "audit", "new-checkpoint-key", "--name", "keyward.bench"],
                         capture_output=True, text=True, check=True).stdout.strip()
    db_file = os.path.join(tmp, "scale.db")
    if backend == "sqlite":
        db_url = f"sqlite://{db_file}"
    else:
        pg_name = f"keyward_scale_{os.getpid()}"
        for sql in [f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)', f'CREATE DATABASE "{pg_name}"']:
            subprocess.run(["psql", f"{PG_URL}/postgres", "-qc", sql], check=True, capture_output=True)
        db_url = f"{PG_URL}/{pg_name}"
    port = free_port()
    env = env_for(db_url, port, key, tmp)
    started = time.perf_counter()
    out = subprocess.run([SEED, db_url, str(EVENTS)], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"seed_scale: {out.stderr}")
    seeded = time.perf_counter() - started
    tenant, owner = out.stdout.split()
    size = EVENTS + 1
    if backend == "postgresql":
        subprocess.run(["psql", db_url, "-qc", "VACUUM ANALYZE audit_events"], check=True, capture_output=True)
    per_event, per_index = bytes_per_event(backend, db_url, db_file, size)
    t = times_at(backend, db_url, db_file, tenant, [1000, size // 2, size // 2 + 500, size - 100])
    token = subprocess.run([KEYWARD, "console-token", "--tenant", tenant, "--member", owner], env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    owner_h = {"Authorization": f"Bearer {token}"}
    server = subprocess.Popen(["taskset", "-c", SERVER_CPU, KEYWARD, "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, f"{backend}.log"), "w"))
    rows = []
    try:
        deadline = time.time() + 120
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                siem = call(conn, "POST", "/v2/enterprise.key.create",
                            owner_h, {"key_type": "KEY_TYPE_SIEM", "label": "bench"})["secret"]
                break
            except (OSError, http.client.HTTPException):
                if time.time() > deadline:
                    raise SystemExit("keyward did not answer within 120 s")
                time.sleep(0.2)
        q = urllib.parse.quote
        mid, mid2, early, late = t[size // 2], t[size // 2 + 500], t[1000], t[size - 100]
        cases = [
            ("operation=enterprise.key.create (1 in 100,000)", "operation=enterprise.key.create"),
            ("operation=auth.whoami (1 in 2)", "operation=auth.whoami"),
            ("operation=team.user.create (none)", "operation=team.user.create"),
            ("key_id=k_rare (1 in 1,000,000)", "key_id=k_rare"),
            ("key_id=k_0007 (1 in 1,000)", "key_id=k_0007"),
            ("key_id=k_none (none)", "key_id=k_none"),
            ("actor_id=owner (1 in 100,000)", f"actor_id={owner}"),
            ("outcome=DENIED (1 in 50,000)", "outcome=DENIED"),
            ("outcome=ALLOWED (almost all)", "outcome=ALLOWED"),
            ("since=middle&until=+500 events", f"since={q(mid)}&until={q(mid2)}"),
            ("since=last 100 events", f"since={q(late)}"),
            ("until=first 1,000 events", f"until={q(early)}"),
            ("since/until in 2001 (none)", "since=2001-01-01T00:00:00Z&until=2001-01-02T00:00:00Z"),
        ]
        paths = [(f"audit.list {name}", f"/v2/enterprise.audit.list?limit={PAGE}&{query}", owner_h)
                 for name, query in cases]
        siem_h = {"X-API-Key": siem}
        paths += [
            ("SIEM feed since=middle&until=+500", f"/v2/enterprise.compliance.event.list?limit={PAGE}"
             f"&since={q(mid)}&until={q(mid2)}", siem_h),
            ("SIEM feed since=last 100 events", f"/v2/enterprise.compliance.event.list?limit={PAGE}"
             f"&since={q(late)}", siem_h),
        ]
        for name, path, headers in paths:
            call(conn, "GET", path, headers)  # warm
            ms = []
            for _ in range(REPEAT):
                started = time.perf_counter()
                body = call(conn, "GET", path, headers)
                ms.append((time.perf_counter() - started) * 1000)
            ms.sort()
            rows.append((name, len(body.get("events", [])), ms[len(ms) // 2], ms[-1]))
    finally:
        server.terminate()
        server.wait()
        if backend == "postgresql":
            subprocess.run(["psql", f"{PG_URL}/postgres", "-qc", f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'],
                           capture_output=True)
    return seeded, size, per_event, per_index, rows


def main():
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    failed = False
    for backend in BACKENDS:
        with tempfile.TemporaryDirectory() as tmp:
            seeded, size, per_event, per_index, rows = run(backend, tmp)
        print(f"\n{backend}: one chain of {size:,} events, seeded in {seeded:.0f} s "
              f"({size / seeded:,.0f} events/s); {per_event:,.0f} bytes an event")
        for index, b in sorted(per_index.items()):
            print(f"    of which {index}: {b:,.1f} bytes an event")
        print(f"{'first page of (' + str(PAGE) + ' at most)':52} {'events':>6} {'p50 ms':>8} {'max ms':>8}  target < {TARGET_MS} ms")
        for name, n, p50, worst in rows:
            mark = "" if worst < TARGET_MS else "  OVER"
            failed |= worst >= TARGET_MS
            print(f"{name:52} {n:6d} {p50:8.2f} {worst:8.2f}{mark}")
        sys.stdout.flush()
    print(f"\nmachine: {os.cpu_count()} cores, server pinned to CPU {SERVER_CPU}, client to CPU {LOAD_CPU}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
