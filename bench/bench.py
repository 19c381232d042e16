#!/usr/bin/env python3
"""keyward's load benchmark (`make bench`).

Loads, side by side on this machine, each server pinned to CPU 0 and the load
generator (wrk, 32 connections) to CPU 1:
  - the ceiling: a bare actix-web GET /hello (examples/hello.rs, same actix-web);
  - keyward GET /v2/auth.whoami with a valid key;
  - keyward /v2/authz.check with a valid key (nginx form);
  - keyward GET /v2/auth.whoami with an unknown key (from 127.0.0.1, like all
    wrk load; the refusal budget per client address is off in these
    scenarios, KEYWARD_REFUSALS_PER_MINUTE=0, so it measures a lookup and a
    durable refusal event per request, not the budget);
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

Last, per backend, the flood scenario, on a fresh server over the same database
with the refusal budget per client address at its default (600 a minute):
  - flood alone, first (the database's growth is all the flood's): wrk as
    below for 10 s with no other caller;
  - quiet run: a valid caller (a python process on CPU 1, 4 keep-alive
    connections from source address 127.0.0.2, one request at a time on each)
    sends GET /v2/auth.whoami with a valid SIEM key for 10 s;
  - flood run: the same valid caller for 10 s while wrk (32 connections from
    127.0.0.1, also on CPU 1) sends GET /v2/auth.whoami at full speed with a
    different bad key each request (its Lua script, FLOOD_LUA below, rotates
    plain junk, kw_siem_ keys with a bad checksum and well-formed keys never
    issued, and counts the answers by status);
  - the database's growth over the flood run (1 s after its end): on SQLite
    the sizes of bench.db + -wal + -shm and, steadier, page_count x
    page_size; on PostgreSQL pg_database_size. Audit rows are counted per
    client address, and the valid caller's share of the growth (its rows times
    the bytes per row of the quiet run) is taken off to leave the flood's.
Its table: the valid caller's req/s, p50 and p99 (quiet and flood), the
flood's req/s and its answers by status, the growth (B and MB) and the p99
ratio flood/quiet; then the targets "flood's growth under 1 MB" and "valid
caller p99 within 2x of the quiet run", PASS or FAIL.

BENCH_ONLY=flood runs only the flood scenario (no ceiling, no bounds);
BENCH_ONLY=log only the verifiable log at scale (bench/log_scale.py, which a
full run ends with); BENCH_ONLY=hot only the ceiling and whoami with a valid key, per backend (for
comparing builds: CARGO_TARGET_DIR points at the build to load);
BENCH_FLOOD_SECONDS sets the length of its quiet and flood runs (10);
BENCH_CONNECTIONS wrk's connections (32), for the ceiling and every scenario.
"""
import http.client, json, math, os, re, resource, shutil, signal, socket, sqlite3, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
KEYWARD = os.path.join(TARGET, "release", "keyward")
HELLO = os.path.join(TARGET, "release", "examples", "hello")
WARMUP = int(os.environ.get("BENCH_WARMUP_SECONDS", "2"))
DURATION = int(os.environ.get("BENCH_SECONDS", "8"))
# wrk's connections for every scenario and the ceiling (BENCH_CONNECTIONS: 32).
# Each answer waits for its event's group to be durable, so throughput at a
# fixed number of connections is bound by the group's latency as much as by CPU.
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
PG_URL = os.environ.get("KEYWARD_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
SERVER_CPU, LOAD_CPU = "0", "1"
ONLY = os.environ.get("BENCH_ONLY", "")
FLOOD_SECONDS = int(os.environ.get("BENCH_FLOOD_SECONDS", "10"))
VALID_SOURCE, VALID_CONNECTIONS = "127.0.0.2", 4


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


_CHECKPOINT_KEY = []


def checkpoint_key():
    """One checkpoint signing key for every run (PostgreSQL needs one given)."""
    if not _CHECKPOINT_KEY:
        out = subprocess.run([KEYWARD, "audit", "new-checkpoint-key", "--name", "keyward.bench"],
                             capture_output=True, text=True)
        # A build from before signed checkpoints has no such command and needs no key.
        _CHECKPOINT_KEY.append(out.stdout.strip() if out.returncode == 0 else "")
    return _CHECKPOINT_KEY[0]


def keyward_env(db_url, port, tmp, refusal_budget=False):
    env = dict(os.environ)
    if checkpoint_key():
        env["KEYWARD_CHECKPOINT_KEY"] = checkpoint_key()
    env.update({
        "KEYWARD_DATABASE_URL": db_url,
        "KEYWARD_LISTEN": f"127.0.0.1:{port}",
        "KEYWARD_KEY_PEPPER": "bench-pepper-0123456789abcdef0123456789",
        "KEYWARD_CONSOLE_JWT_SECRET": "bench-console-0123456789abcdef012345678",
        "KEYWARD_INGEST_TOKEN": "bench-ingest-0123456789abcdef0123456789",
        "KEYWARD_EXPORT_DIR": os.path.join(tmp, "exports"),
        "KEYWARD_LOG": "warn",
        # Limits off: the benchmark measures the service, not its 429s. The flood
        # scenario keeps the refusal budget per client address at its default.
        "KEYWARD_RATE_LIMIT_READ_PER_MINUTE": "0",
        "KEYWARD_RATE_LIMIT_WRITE_PER_MINUTE": "0",
    })
    if not refusal_budget:
        env["KEYWARD_REFUSALS_PER_MINUTE"] = "0"
    return env


def cli(env, *args):
    return subprocess.run([KEYWARD, *args], env=env, capture_output=True, text=True, check=True).stdout.strip()


def start_keyward(backend, db_url, tmp, name="Bench", email="owner@bench.example", refusal_budget=False):
    """Creates a tenant, starts `keyward serve` on SERVER_CPU: (process, port, tenant, owner's headers)."""
    port = free_port()
    env = keyward_env(db_url, port, tmp, refusal_budget)
    if backend == "postgresql":
        cli(env, "migrate")
    tenant = json.loads(cli(env, "tenant", "create", "--name", name, "--owner-email", email))
    token = cli(env, "console-token", "--tenant", tenant["tenant_id"], "--member", tenant["owner_member_id"])
    proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, KEYWARD, "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "serve.log"), "a"))
    return proc, port, tenant, {"Authorization": f"Bearer {token}"}


def create_keys(api, owner, key_types):
    return {kt: api.call("POST", "/v2/enterprise.key.create", {"key_type": kt, "label": "bench"}, owner)["secret"]
            for kt in key_types}


def stop(proc):
    """Ends a process this script started, if it is still running: SIGTERM, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def bench_keyward(backend, db_url, tmp):
    proc, port, tenant, owner = start_keyward(backend, db_url, tmp)
    try:
        wait_ready(port, "/readyz", proc)
        api = Api(port)
        keys = create_keys(api, owner, ["KEY_TYPE_SIEM", "KEY_TYPE_TEAM_ASSET_AUDIT"])
        ingest = {"Authorization": "Bearer bench-ingest-0123456789abcdef0123456789"}
        for i in range(0 if ONLY == "hot" else 1000):
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

        results = {"whoami (valid key)": scenario(f"{base}/v2/auth.whoami", [f"X-API-Key: {siem}"])}
        if ONLY == "hot":
            return results, peak_rss_mib(proc.pid)
        results |= {
            "authz.check (valid key)": scenario(f"{base}/v2/authz.check", [
                f"X-API-Key: {audit}", "X-Original-Method: GET", "X-Original-URI: /v2/team.asset.list"]),
            # From 127.0.0.1, like all wrk load: under a refusal budget per client address this would measure
            # refusals answered over budget (429 up front, no database work); keyward_env turns the budget
            # off here (the flood scenario measures it), so this measures lookups of an unknown key.
            "whoami (unknown key)": scenario(f"{base}/v2/auth.whoami", [f"X-API-Key: {UNKNOWN_KEY}"]),
            "team.asset.list (1,000 assets)": scenario(f"{base}/v2/team.asset.list?limit=100", [f"X-API-Key: {audit}"]),
        }
        return results, peak_rss_mib(proc.pid)
    finally:
        stop(proc)


# wrk's script for the flood: a different bad X-API-Key on every request, in turn plain junk
# (malformed), a kw_siem_ key whose checksum does not match, and a well-formed key (CRC32
# checksum right, as domain/key_format.rs) that was never issued, which reaches the key lookup.
# Answers are counted by status in each thread and printed by done() as "status <code> <count>".
FLOOD_LUA = r"""
local bit = require("bit")
local B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
local JUNK = B62 .. "-_.~!*+/=:"
local CRC = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if bit.band(c, 1) == 1 then c = bit.bxor(bit.rshift(c, 1), 0xEDB88320) else c = bit.rshift(c, 1) end
  end
  CRC[i] = c
end
local function crc32(s)
  local c = bit.bnot(0)
  for i = 1, #s do
    c = bit.bxor(CRC[bit.band(bit.bxor(c, s:byte(i)), 0xFF)], bit.rshift(c, 8))
  end
  c = bit.bnot(c)
  if c < 0 then c = c + 4294967296 end
  return c
end
local function pick(alphabet, n)
  local t = {}
  for i = 1, n do
    local k = math.random(#alphabet)
    t[i] = alphabet:sub(k, k)
  end
  return table.concat(t)
end
local function base62_fixed(n, width)
  local t = {}
  for i = width, 1, -1 do
    local d = n % 62
    t[i] = B62:sub(d + 1, d + 1)
    n = math.floor(n / 62)
  end
  return table.concat(t)
end

local threads = {}
function setup(thread) table.insert(threads, thread) end

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  counts = {}
  sent = 0
end

function request()
  sent = sent + 1
  local kind, key = sent % 3
  if kind == 0 then
    key = pick(JUNK, math.random(1, 60))
  elseif kind == 1 then
    key = "kw_siem_" .. pick(B62, 33)
  else
    local body = "kw_siem_" .. pick(B62, 27)
    key = body .. base62_fixed(crc32(body), 6)
  end
  return wrk.format("GET", nil, { ["X-API-Key"] = key })
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts") or {}) do total[status] = (total[status] or 0) + n end
  end
  for status, n in pairs(total) do io.write(string.format("status %d %d\n", status, n)) end
end
"""


def percentile(sorted_values, q):
    """Nearest rank."""
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def valid_caller_main(port, seconds):
    """The flood scenario's valid caller (its own process, pinned by the caller to LOAD_CPU): VALID_CONNECTIONS
    keep-alive connections from VALID_SOURCE, each sending GET /v2/auth.whoami one at a time (closed loop).
    Prints "ready" once connected, starts on a line on stdin, prints its figures as one JSON line."""
    key = os.environ["KEYWARD_BENCH_VALID_KEY"]
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(VALID_SOURCE, 0))
             for _ in range(VALID_CONNECTIONS)]
    for c in conns:
        c.connect()
    print("ready", flush=True)
    sys.stdin.readline()
    latencies = [[] for _ in conns]
    statuses = [{} for _ in conns]
    start = time.perf_counter()
    deadline = start + seconds

    def loop(i):
        c = conns[i]
        while True:
            t0 = time.perf_counter()
            if t0 >= deadline:
                return
            try:
                c.request("GET", "/v2/auth.whoami", headers={"X-API-Key": key})
                r = c.getresponse()
                r.read()
                status = str(r.status)
            except (OSError, http.client.HTTPException) as e:
                # Counted, and its time too: a request the caller waited for and did not get.
                status = type(e).__name__
                c.close()  # reconnects (from VALID_SOURCE) on the next request
            latencies[i].append(time.perf_counter() - t0)
            statuses[i][status] = statuses[i].get(status, 0) + 1

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(len(conns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 30)
    elapsed = time.perf_counter() - start
    all_ms = sorted(x * 1000 for lat in latencies for x in lat)
    total = {}
    for st in statuses:
        for k, v in st.items():
            total[k] = total.get(k, 0) + v
    print(json.dumps({"requests": len(all_ms), "rps": len(all_ms) / elapsed, "p50": percentile(all_ms, 0.5),
                      "p99": percentile(all_ms, 0.99), "statuses": total}), flush=True)


def start_valid_caller(port, key, seconds):
    proc = subprocess.Popen(["taskset", "-c", LOAD_CPU, sys.executable, os.path.abspath(__file__),
                             "--valid-caller", str(port), str(seconds)],
                            env={**os.environ, "KEYWARD_BENCH_VALID_KEY": key},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the valid caller did not connect")
    except BaseException:
        stop(proc)
        raise
    return proc


def go(proc):
    proc.stdin.write("go\n")
    proc.stdin.flush()


def valid_caller_result(proc, seconds):
    out, _ = proc.communicate(timeout=seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"the valid caller exited with {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def valid_caller(port, key, seconds):
    proc = start_valid_caller(port, key, seconds)
    try:
        go(proc)
        return valid_caller_result(proc, seconds)
    finally:
        stop(proc)


def flood_result(out):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    statuses = {int(m.group(1)): int(m.group(2)) for m in re.finditer(r"^status (\d+) (\d+)$", out, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "statuses": statuses, "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(0) if errors else None}


def db_snapshot(backend, db):
    """Sizes and audit rows per client address and reason, db being the SQLite file or the PostgreSQL URL."""
    rows = {}
    if backend == "sqlite":
        files = sum(os.path.getsize(db + suffix) for suffix in ["", "-wal", "-shm"] if os.path.exists(db + suffix))
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            pages = con.execute("PRAGMA page_count").fetchone()[0] * con.execute("PRAGMA page_size").fetchone()[0]
            for ip, reason, n in con.execute(
                    "SELECT coalesce(client_ip, '-'), coalesce(reason, '-'), count(*) FROM audit_events GROUP BY 1, 2"):
                rows[(ip, reason)] = n
        finally:
            con.close()
        return {"files": files, "size": pages, "rows": rows}

    def psql(sql):
        return subprocess.run(["psql", "-X", "-At", "-F", "\t", "-d", db, "-c", sql],
                              capture_output=True, text=True, check=True).stdout
    size = int(psql("SELECT pg_database_size(current_database())").strip())
    for line in psql("SELECT coalesce(client_ip, '-'), coalesce(reason, '-'), count(*) FROM audit_events "
                     "GROUP BY 1, 2").splitlines():
        ip, reason, n = line.split("\t")
        rows[(ip, reason)] = int(n)
    return {"files": size, "size": size, "rows": rows}


def rows_added(before, after, ip=None):
    """Audit rows added between two snapshots, from one client address or all, by reason."""
    out = {}
    for (row_ip, reason), n in after["rows"].items():
        if ip is None or row_ip == ip:
            d = n - before["rows"].get((row_ip, reason), 0)
            if d:
                out[reason] = out.get(reason, 0) + d
    return out


def bench_flood(backend, db_url, db, tmp):
    """The flood scenario on a fresh server over the database at db_url (db: what db_snapshot reads)."""
    proc, port, _, owner = start_keyward(backend, db_url, tmp, name="Bench flood", email="flood@bench.example",
                                         refusal_budget=True)
    lua = os.path.join(tmp, "flood.lua")
    with open(lua, "w") as f:
        f.write(FLOOD_LUA)
    caller = flooder = None
    try:
        wait_ready(port, "/readyz", proc)
        key = create_keys(Api(port), owner, ["KEY_TYPE_SIEM"])["KEY_TYPE_SIEM"]
        valid_caller(port, key, 1)  # warm-up
        # The flood alone first, on a fresh budget: the database's growth is all its own.
        a0 = db_snapshot(backend, db)
        alone = subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{FLOOD_SECONDS}s",
                                "-s", lua, f"http://127.0.0.1:{port}/v2/auth.whoami"],
                               capture_output=True, text=True, timeout=FLOOD_SECONDS + 60)
        if alone.returncode != 0:
            raise RuntimeError(f"wrk exited with {alone.returncode}: {alone.stderr.strip()}")
        alone_flood = flood_result(alone.stdout)
        time.sleep(1)
        a1 = db_snapshot(backend, db)
        s0 = db_snapshot(backend, db)
        quiet = valid_caller(port, key, FLOOD_SECONDS)
        time.sleep(1)
        s1 = db_snapshot(backend, db)
        caller = start_valid_caller(port, key, FLOOD_SECONDS)
        flooder = subprocess.Popen(["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{FLOOD_SECONDS}s",
                                    "-s", lua, f"http://127.0.0.1:{port}/v2/auth.whoami"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        go(caller)
        flooded = valid_caller_result(caller, FLOOD_SECONDS)
        out, err = flooder.communicate(timeout=FLOOD_SECONDS + 60)
        if flooder.returncode != 0:
            raise RuntimeError(f"wrk exited with {flooder.returncode}: {err.strip()}")
        flood = flood_result(out)
        time.sleep(1)
        s2 = db_snapshot(backend, db)
    finally:
        stop(flooder)
        stop(caller)
        stop(proc)
    quiet_rows = sum(rows_added(s0, s1).values())
    # The valid caller's own events are part of the flood run's growth: take them off at the quiet run's bytes per row.
    per_row = (s1["size"] - s0["size"]) / quiet_rows if quiet_rows else 0.0
    valid_rows = sum(rows_added(s1, s2, VALID_SOURCE).values())
    growth = s2["size"] - s1["size"]
    return {"quiet": quiet, "flooded": flooded, "flood": flood, "files": s2["files"] - s1["files"], "growth": growth,
            "valid_rows": valid_rows, "per_row": per_row, "valid_share": valid_rows * per_row,
            "net": max(0.0, growth - valid_rows * per_row), "flood_rows": rows_added(s1, s2, "127.0.0.1"),
            "all_rows": sum(rows_added(s1, s2).values()),
            "alone": alone_flood, "alone_growth": a1["size"] - a0["size"], "alone_files": a1["files"] - a0["files"],
            "alone_rows": rows_added(a0, a1)}


def print_flood(backend, f):
    mb = 1024 * 1024
    q, v, fl = f["quiet"], f["flooded"], f["flood"]
    ratio = v["p99"] / q["p99"]
    print(f"\nflood, {backend}: {FLOOD_SECONDS}s per run; valid caller: {VALID_CONNECTIONS} keep-alive connections "
          f"from {VALID_SOURCE}, closed loop; flood: wrk, {CONNECTIONS} connections from 127.0.0.1, a bad key per "
          f"request; both on CPU {LOAD_CPU}")
    print(f"{'':28} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}  answers")

    def shares(counts):
        total = sum(counts.values()) or 1
        return ", ".join(f"{k}: {n / total:.1%}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    print(f"{'valid caller, quiet':28} {q['rps']:>10.0f} {q['p50']:>8.2f} {q['p99']:>8.2f}  {shares(q['statuses'])}")
    print(f"{'valid caller, flood':28} {v['rps']:>10.0f} {v['p50']:>8.2f} {v['p99']:>8.2f}  {shares(v['statuses'])}")
    errors = f"  ({fl['socket_errors']})" if fl["socket_errors"] else ""
    print(f"{'flood (bad keys)':28} {fl['rps']:>10.0f} {'-':>8} {'-':>8}  {shares(fl['statuses'])}"
          f" (wrk: {fl['non2xx']} non-2xx){errors}")
    print(f"valid caller's p99, flood / quiet: {ratio:.2f}x")
    flood_requests = sum(fl["statuses"].values())
    flood_rows = sum(f["flood_rows"].values())
    reasons = ", ".join(f"{r} {n}" for r, n in sorted(f["flood_rows"].items(), key=lambda kv: -kv[1]))
    print(f"audit rows added in the flood run: {f['all_rows']}: {flood_rows} from 127.0.0.1 "
          f"({flood_rows / max(flood_requests, 1):.3f} per flood answer; {reasons or 'none'}), "
          f"{f['valid_rows']} from {VALID_SOURCE}")
    if backend == "sqlite":
        print(f"files bench.db + -wal + -shm grew {f['files']:,} B ({f['files'] / mb:.2f} MB); pages "
              f"(page_count x page_size) {f['growth']:,} B ({f['growth'] / mb:.2f} MB)")
    else:
        print(f"pg_database_size grew {f['growth']:,} B ({f['growth'] / mb:.2f} MB)")
    print(f"valid caller's share: {f['valid_rows']} rows x {f['per_row']:.0f} B (quiet run's bytes per row) = "
          f"{f['valid_share']:,.0f} B; the flood's: {f['net']:,.0f} B ({f['net'] / mb:.2f} MB)")
    al = f["alone"]
    alone_rows = ", ".join(f"{r} {n}" for r, n in sorted(f["alone_rows"].items(), key=lambda kv: -kv[1]))
    print(f"flood alone (first, on a fresh budget): {al['rps']:.0f} req/s, {shares(al['statuses'])}; "
          f"audit rows {sum(f['alone_rows'].values())} ({alone_rows or 'none'}); database grew "
          f"{f['alone_growth']:,} B ({f['alone_growth'] / mb:.2f} MB)")
    print(f"target: flood's growth under 1 MB (flood alone):  {'PASS' if f['alone_growth'] < mb else 'FAIL'} "
          f"({f['alone_growth'] / mb:.2f} MB)")
    print(f"target: valid caller p99 within 2x of the quiet run: {'PASS' if ratio <= 2 else 'FAIL'} ({ratio:.2f}x)")


def bench_hello():
    port = free_port()
    proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, HELLO], env={**os.environ, "HELLO_LISTEN": f"127.0.0.1:{port}"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, "/hello", proc)
        return measure(f"http://127.0.0.1:{port}/hello", [], proc.pid), peak_rss_mib(proc.pid)
    finally:
        stop(proc)


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
    if ONLY not in ("", "flood", "hot", "log"):
        sys.exit(f"BENCH_ONLY={ONLY}: only BENCH_ONLY=flood, hot or log is known")
    if ONLY == "log":
        import log_scale
        sys.exit(log_scale.main())
    flood_only = ONLY == "flood"
    if not flood_only:
        UNKNOWN_KEY = subprocess.run([os.path.join(TARGET, "release", "examples", "new_key")],
                                     capture_output=True, text=True, check=True).stdout.strip()
    if flood_only:
        print(f"keyward benchmark, BENCH_ONLY=flood: {FLOOD_SECONDS}s quiet + {FLOOD_SECONDS}s flood per backend, "
              f"server on CPU {SERVER_CPU}, load on CPU {LOAD_CPU}")
    else:
        print(f"keyward benchmark: {CONNECTIONS} connections, {WARMUP}s warm-up + {DURATION}s per scenario, "
              f"server on CPU {SERVER_CPU}, wrk on CPU {LOAD_CPU}")
    print(f"machine: {os.cpu_count()} CPUs, {subprocess.run(['uname', '-srm'], capture_output=True, text=True).stdout.strip()}")
    if not flood_only:
        ceiling, hello_rss = bench_hello()
        rows = [("ceiling: actix-web GET /hello", "-", ceiling, hello_rss)]
    floods = []
    backends = [("sqlite", None)]
    if pg_reachable():
        backends.append(("postgresql", "pg"))
    else:
        print("PostgreSQL not reachable: SQLite only")
    for backend, _ in backends:
        with tempfile.TemporaryDirectory() as tmp:
            if backend == "sqlite":
                url = f"sqlite://{tmp}/bench.db"
                db, pg_name = os.path.join(tmp, "bench.db"), None
            else:
                url, pg_name = fresh_pg_db()
                db = url
            try:
                if not flood_only:
                    results, rss = bench_keyward(backend, url, tmp)
                    for name, r in results.items():
                        rows.append((name, backend, r, rss))
                if ONLY != "hot":
                    floods.append((backend, bench_flood(backend, url, db, tmp)))
            finally:
                if pg_name:
                    subprocess.run(["psql", f"{PG_URL}/postgres", "-qc", f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'],
                                   capture_output=True)
    if not flood_only:
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
        floor = sqlite_bound(ceiling["cpu_us"])
        for name, db, r, _ in rows:
            if db == "sqlite" and not name.startswith("ceiling") and "unknown" not in name:
                own = r["cpu_us"] - ceiling["cpu_us"] - floor
                print(f"SQLite, {name}: keyward's own CPU {own:.1f} us a request (its {r['cpu_us']:.1f} us, less "
                      f"the ceiling's {ceiling['cpu_us']:.1f} and SQLite's floor of {floor:.1f}).")
        for name, db, r, _ in rows:
            if db == "postgresql" and "valid key" in name:
                postgres_bound(name, r, ceiling)
    for backend, f in floods:
        print_flood(backend, f)
    if ONLY == "":
        import log_scale
        log_scale.main()


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
    return floor


if __name__ == "__main__":
    if sys.argv[1:2] == ["--valid-caller"]:
        valid_caller_main(int(sys.argv[2]), float(sys.argv[3]))
    else:
        main()
