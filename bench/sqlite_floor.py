#!/usr/bin/env python3
"""What SQLite alone costs per durable audit event, outside keyward.

Applies keyward's own SQLite migrations to a fresh file, then appends events
the way the audit writer does: WAL, `synchronous = NORMAL`, a checkpoint every
250 pages, groups of G events (one transaction each: the rows plus the move of
the chain head), and an fdatasync of the WAL after each group (the writer's
WAL-sync thread). Pinned to one CPU, it prints the CPU time per event:

  - `engine`: the groups' transactions, minus what the same Python loop costs
    for the cheapest insert there is (20 columns into an in-memory table with
    no key or index), so that Python's own share is left out;
  - `fsync`: the fdatasync of the WAL, per event.

Their sum is a floor for a durable SQLite row per event, whatever the code
around it: keyward's answer needs all of it on the server's one CPU, on top
of actix-web's own cost per request (the ceiling of `make bench`).

  taskset -c 0 python3 bench/sqlite_floor.py      (G=30 by default: `make bench`'s group size)
"""
import glob, hashlib, os, sqlite3, sys, tempfile, time, uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GROUP = int(os.environ.get("G", "30"))
EVENTS = 60_000
COLUMNS = ("event_id, chain_id, seq, occurred_at, operation, outcome, reason, actor_type, actor_id, "
           "key_id, key_type, key_hint, request_id, client_ip, user_agent, status_code, metadata, payload, "
           "prev_hash, hash")
INSERT = f"INSERT INTO audit_events ({COLUMNS}) VALUES ({', '.join('?' * 20)})"


def uuid7(n):
    """A time-ordered event id, as keyward's (UUIDv7: milliseconds first). A
    random one (v4) would put each event at a random place in the unique index
    on event_id, a page written per event, and more than double the floor."""
    ms = int(time.time() * 1000)
    return ms.to_bytes(6, "big") + (0x7000 | (n >> 32 & 0xfff)).to_bytes(2, "big") + \
        (0x80000000 | (n & 0x3fffffff)).to_bytes(4, "big") + os.urandom(4)


def events(chain, key):
    """Rows like a valid-key whoami's event (sizes as keyward writes them)."""
    rows, prev = [], "0" * 64
    for seq in range(1, EVENTS + 1):
        h = hashlib.sha256(f"{prev}{seq}".encode()).hexdigest()
        rows.append((uuid7(seq), chain, seq, "2026-11-22 20:00:00.123456", "auth.whoami", "ALLOWED",
                     None, "API_KEY", key, key, "KEY_TYPE_SIEM", "kw_siem_…abcd", str(uuid.uuid4()), "127.0.0.1",
                     "wrk", 200, "{}", None, bytes.fromhex(prev), bytes.fromhex(h)))
        prev = h
    return rows


def durable_groups(path, rows, chain):
    c = sqlite3.connect(path, isolation_level=None)
    # The migrations' SQLite has unhex() (3.41); this Python's may be older.
    c.create_function("unhex", 1, lambda h: None if h is None else bytes.fromhex(h), deterministic=True)
    for pragma in ["journal_mode = WAL", "synchronous = NORMAL", "wal_autocheckpoint = 250"]:
        c.execute(f"PRAGMA {pragma}")
    for up in sorted(glob.glob(os.path.join(ROOT, "migrations", "sqlite", "*", "up.sql"))):
        c.executescript(open(up).read())
    c.execute("INSERT INTO audit_chains (chain_id, last_seq, last_hash) VALUES (?, 0, ?)", (chain, "0" * 64))
    wal = os.open(path + "-wal", os.O_RDONLY)
    engine = fsync = 0.0
    for start in range(0, len(rows), GROUP):
        group = rows[start:start + GROUP]
        t0 = time.process_time()
        c.execute("BEGIN IMMEDIATE")
        c.executemany(INSERT, group)
        c.execute("UPDATE audit_chains SET last_seq = ?, last_hash = ? WHERE chain_id = ?",
                  (group[-1][2], group[-1][19].hex(), chain))
        c.execute("COMMIT")
        t1 = time.process_time()
        os.fdatasync(wal)
        engine, fsync = engine + (t1 - t0), fsync + (time.process_time() - t1)
    os.close(wal)
    return engine, fsync


def python_share(rows):
    """The same loop for the cheapest insert: Python's binding, and SQLite's least."""
    c = sqlite3.connect(":memory:", isolation_level=None)
    c.execute(f"CREATE TABLE t ({COLUMNS})")
    plain = INSERT.replace("audit_events", "t")
    t0 = time.process_time()
    for start in range(0, len(rows), GROUP):
        c.execute("BEGIN")
        c.executemany(plain, rows[start:start + GROUP])
        c.execute("COMMIT")
    return time.process_time() - t0


def main():
    chain, key = str(uuid.uuid4()), str(uuid.uuid4())
    rows = events(chain, key)
    with tempfile.TemporaryDirectory() as tmp:
        engine, fsync = durable_groups(os.path.join(tmp, "floor.db"), rows, chain)
    base = python_share(rows)
    per = lambda s: s / EVENTS * 1e6
    print(f"SQLite {sqlite3.sqlite_version}, groups of {GROUP}, {EVENTS} events, CPU per event:")
    print(f"  groups' transactions {per(engine):5.1f} us, Python's share {per(base):5.1f} us")
    print(f"  engine {per(engine - base):5.1f} us + WAL fdatasync {per(fsync):4.1f} us = "
          f"floor {per(engine - base + fsync):5.1f} us per durable event")


if __name__ == "__main__":
    sys.exit(main())
