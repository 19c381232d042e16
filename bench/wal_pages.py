#!/usr/bin/env python3
"""Which pages each audit group's commit writes to the WAL (SQLite).

Serves keyward on a fresh SQLite file (as `make bench` does: server on CPU 0),
loads whoami with a valid key (wrk, 32 connections), stops the server for a
moment mid-load to copy the database and its WAL, then reads the WAL's frame
headers: the frames of each commit, each page put down to its b-tree and kind
(leaf or interior) with SQLite's `dbstat`. Prints the frames per commit, by
b-tree, averaged over the commits the copied WAL holds (since its last restart).

  python3 bench/wal_pages.py        (after `cargo build --release`)
"""
import collections, os, shutil, signal, sqlite3, struct, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def copy_under_load(tmp, out):
    proc, port, _tenant, owner = bench.start_keyward("sqlite", f"sqlite://{tmp}/bench.db", tmp)
    try:
        bench.wait_ready(port, "/readyz", proc)
        key = bench.create_keys(bench.Api(port), owner, ["KEY_TYPE_SIEM"])["KEY_TYPE_SIEM"]
        url, header = f"http://127.0.0.1:{port}/v2/auth.whoami", f"X-API-Key: {key}"
        bench.wrk(url, [header], 3)
        load = subprocess.Popen(["taskset", "-c", bench.LOAD_CPU, "wrk", "-t1", "-c32", "-d3s", "-H", header, url],
                                stdout=subprocess.DEVNULL)
        time.sleep(1.5)
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            for name in ("bench.db", "bench.db-wal"):
                shutil.copy(os.path.join(tmp, name), os.path.join(out, name))
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        load.wait()
    finally:
        bench.stop(proc)


def commits(wal):
    """The page numbers of each commit's frames, in order."""
    data = open(wal, "rb").read()
    _magic, _version, page_size, _seq, salt1, salt2 = struct.unpack(">IIIIII", data[:24])
    found, current, at = [], [], 32
    while at + 24 + page_size <= len(data):
        page, size_after_commit, s1, s2 = struct.unpack(">IIII", data[at:at + 16])
        if (s1, s2) != (salt1, salt2):
            break  # frames of an earlier generation of the WAL
        current.append(page)
        if size_after_commit:
            found.append(current)
            current = []
        at += 24 + page_size
    return page_size, found


def main():
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as out:
        copy_under_load(tmp, out)
        page_size, groups = commits(os.path.join(out, "bench.db-wal"))
        db = sqlite3.connect(f"file:{os.path.join(out, 'bench.db')}?mode=ro", uri=True)
        where = {page: (name, kind) for name, kind, page in db.execute("SELECT name, pagetype, pageno FROM dbstat")}
        groups = groups[1:-1] or groups  # the first and last may be cut by the copy
        tally = collections.Counter(where.get(page, ("?", "?")) for group in groups for page in group)
        print(f"page size {page_size}; {len(groups)} commits; "
              f"{sum(tally.values()) / max(len(groups), 1):.1f} WAL frames a commit")
        for (name, kind), n in tally.most_common():
            print(f"  {n / len(groups):6.2f}  {name} ({kind})")


if __name__ == "__main__":
    sys.exit(main())
