#!/usr/bin/env python3
"""pgBackRest against pg_dump -Fc, under load (issue #25). Not a timed test: run it by hand on a deployed lab.

    LAB_NAME=nchalab .venv/bin/python tests/benchmarks/bench_pgbackrest.py

Measured in one run, side by side, on the lab as site.yml deployed it, while the reliability suite's load runs
through HAProxy (BENCH_RATE requests per second, default 25: the login page and the probe, which writes a row
through PgBouncer and a file on every request):
1. The Nextcloud database grown by a table of BENCH_MB megabytes (default 200; md5 text, about half of it
   compressible), dropped again at the end.
2. Alternately, ROUNDS times (default 2; the median kept): a pgBackRest full backup the way the timers take it
   (`systemctl start nextcloud-ha-pgbackrest@full.service` on the backup host: from the standby), an incremental
   one after 10 % more rows, and `pg_dump -Fc` of the Nextcloud database on the replica (what backup.yml took
   before pgBackRest), each timed from start to end.
Reported per method: seconds, the size it keeps (pgBackRest: the repository's size of the backup, compressed and
encrypted; pg_dump: the dump file), the database size it covers, requests and failed requests of the load while it
ran, and the ratios pgBackRest / pg_dump. A full backup covers the whole cluster (every database); the dump one
database. Load is bounded (loadgen's limits; each method at most 30 minutes).
"""
import json
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))

import loadgen  # noqa: E402
from ha_helpers import DOMAIN, ENTRANCE, GROUPS, allowed_addresses, workload_urls  # noqa: E402
from pg_helpers import DB_NAME, POSTGRES, leader, run_ssh, sql  # noqa: E402

MB = int(os.environ.get("BENCH_MB", "200"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
RATE = int(os.environ.get("BENCH_RATE", "25"))
BACKUP = (GROUPS.get("backup") or [None])[0]
STANZA = os.environ.get("NCHA_PGBACKREST_STANZA", "nextcloud-ha")
TABLE = "bench_pgbackrest"
ROW_BYTES = 512  # 16 md5 strings of 32 characters


class Load:
    """The reliability suite's load through HAProxy for as long as the `with` block runs."""

    def __init__(self):
        self.stop = threading.Event()
        self.run = None

    def __enter__(self):
        def body():
            self.run = loadgen.run(workload_urls("https://%s" % ENTRANCE), rate=RATE, duration=0,
                                   allowed=allowed_addresses(), host_header=DOMAIN, threads=12, until=self.stop)
        self.thread = threading.Thread(target=body, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(loadgen.MAX_DURATION + 120)
        return False


def ssh(host, command, timeout=1800):
    res = run_ssh(host, command, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError("%s on %s failed (%d): %s %s" % (command, host, res.returncode, res.stdout, res.stderr))
    return res.stdout


def grow(lead, rows):
    sql(lead, "CREATE TABLE IF NOT EXISTS %s (id bigserial PRIMARY KEY, payload text)" % TABLE, db=DB_NAME)
    sql(lead, "INSERT INTO %s (payload) SELECT repeat(md5(random()::text), 16) FROM generate_series(1, %d)"
        % (TABLE, rows), db=DB_NAME, timeout=1800)


def newest_backup():
    stanza = json.loads(ssh(BACKUP, "sudo -u postgres pgbackrest --stanza=%s --output=json info" % STANZA))[0]
    return stanza["backup"][-1]


def timed(label, action):
    """Run action() under the load; returns (seconds, what action returned, requests, failed requests)."""
    with Load() as load:
        time.sleep(2)
        start = time.monotonic()
        value = action()
        seconds = time.monotonic() - start
        time.sleep(2)
    print("  %-22s %7.1f s  %d requests, %d failed" % (label, seconds, load.run.total, len(load.run.failed)))
    return seconds, value, load.run.total, len(load.run.failed)


def pgbackrest(kind):
    def action():
        ssh(BACKUP, "sudo systemctl start nextcloud-ha-pgbackrest@%s.service" % kind)
        backup = newest_backup()
        assert backup["type"] == kind, backup
        return backup["info"]["repository"]["delta"], backup["info"]["size"]
    return action


def pg_dump(replica):
    def action():
        out = ssh(replica, "sudo -u postgres pg_dump -Fc -f /tmp/bench.dump %s && sudo stat -c %%s /tmp/bench.dump "
                           "&& sudo rm -f /tmp/bench.dump" % DB_NAME)
        size = int(out.split()[-1])
        return size, int(sql(replica, "SELECT pg_database_size('%s')" % DB_NAME))
    return action


def main():
    if not BACKUP or not POSTGRES:
        sys.exit("bench_pgbackrest: no backup host or PostgreSQL hosts in the lab's inventory (LAB_NAME?)")
    lead = leader()
    replica = next((h for h in POSTGRES if h != lead), lead)
    rows = MB * 1024 * 1024 // ROW_BYTES
    print("growing %s.%s by %d MB (%d rows) on %s" % (DB_NAME, TABLE, MB, rows, lead))
    grow(lead, rows)
    results = {"full": [], "incr": [], "dump": []}
    try:
        for number in range(ROUNDS):
            print("round %d of %d" % (number + 1, ROUNDS))
            results["full"].append(timed("pgbackrest full", pgbackrest("full")))
            grow(lead, rows // 10)
            results["incr"].append(timed("pgbackrest incr", pgbackrest("incr")))
            results["dump"].append(timed("pg_dump -Fc (replica)", pg_dump(replica)))
    finally:
        sql(lead, "DROP TABLE IF EXISTS %s" % TABLE, db=DB_NAME)
    print()
    print("pgBackRest against pg_dump -Fc, %d rounds (medians), under %d requests/s through HAProxy" % (ROUNDS, RATE))
    print("%-24s %9s %12s %14s %9s %7s %10s %10s" % ("method", "seconds", "kept_MB", "covers_MB", "requests",
                                                     "failed", "time_ratio", "size_ratio"))
    dump_s = statistics.median(r[0] for r in results["dump"])
    dump_mb = statistics.median(r[1][0] for r in results["dump"]) / 1e6
    for name, label in (("full", "pgbackrest full"), ("incr", "pgbackrest incr"), ("dump", "pg_dump -Fc (replica)")):
        seconds = statistics.median(r[0] for r in results[name])
        kept = statistics.median(r[1][0] for r in results[name]) / 1e6
        covers = statistics.median(r[1][1] for r in results[name]) / 1e6
        requests = sum(r[2] for r in results[name])
        failed = sum(r[3] for r in results[name])
        print("%-24s %9.1f %12.1f %14.1f %9d %7d %10.2f %10.2f" % (label, seconds, kept, covers, requests, failed,
                                                                   seconds / dump_s, kept / dump_mb))


if __name__ == "__main__":
    main()
