#!/usr/bin/env python3
"""Failover benchmark of the PostgreSQL pair on the lab (issue #4). Not a timed test: run it by hand.

    LAB_NAME=pglab .venv/bin/python tests/benchmarks/bench_failover.py

Measured in one run, side by side, on the lab as deployed by playbooks/postgres.yml (db1 primary, db2 standby):
1. pgbench TPS from web1 through PgBouncer (127.0.0.1:6432) and directly to the primary (:5432), with a new
   connection per transaction (-C, like PHP) and with persistent connections; the ratio is PgBouncer / direct.
2. Asynchronous mode: a writer commits one row per transaction through PgBouncer; db1's container is killed
   (podman stop -t 0); failover.yml promotes db2. Reported: seconds without a successful write, committed rows
   missing on the new primary. Then rejoin.yml turns db1 into a standby of db2 with synchronous mode on.
3. Synchronous mode: the same with db2 killed and db1 promoted; then rejoin.yml restores the lab's layout
   (db1 primary, db2 standby, asynchronous).
Load is bounded: pgbench runs PGBENCH_SECONDS (default 8) per measurement, writers run at most 150 s.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))

from pg_helpers import (DB_NAME, DB_PASSWORD, DB_USER, INVENTORY, bouncer_sql, container,  # noqa: E402
                        inventory_with, longest_write_gap, missing_tokens, playbook, podman, run_ssh, sql,
                        start_writer, wait_for, writer_results)

SECONDS = int(os.environ.get("PGBENCH_SECONDS", "8"))


def address(host):
    import yaml
    with open(os.path.join(INVENTORY, "hosts.yml")) as f:
        return yaml.safe_load(f)["all"]["hosts"][host]["ansible_host"]


PGBENCH = "/tmp/pgbench-root/usr/lib/postgresql/*/bin/pgbench"


def install_pgbench(web):
    """pgbench ships in Debian's server package: unpack that under /tmp on the web node (no server installed)."""
    script = ("ls %s >/dev/null 2>&1 && exit 0; v=$(ls /usr/lib/postgresql | sort -n | tail -1); cd /tmp && "
              "apt-get download -q postgresql-$v >/dev/null && dpkg -x /tmp/postgresql-${v}_*.deb /tmp/pgbench-root "
              "&& ls %s" % (PGBENCH, PGBENCH))
    res = run_ssh(web, script, timeout=300)
    if res.returncode != 0:
        raise RuntimeError("cannot unpack pgbench on %s: %s %s" % (web, res.stdout, res.stderr))


def pgbench(web, host, port, extra):
    cmd = ("PGPASSWORD='%s' %s -h %s -p %d -U %s -n -c 4 -j 2 -T %d %s %s 2>&1"
           % (DB_PASSWORD, PGBENCH, host, port, DB_USER, SECONDS, extra, DB_NAME))
    res = run_ssh(web, cmd, timeout=SECONDS * 10 + 60)
    for line in res.stdout.splitlines():
        if line.startswith("tps = "):
            return float(line.split()[2])
    raise RuntimeError("pgbench failed: %s" % res.stdout[-1500:])


def measure_pooling(primary):
    install_pgbench("web1")
    res = run_ssh("web1", "PGPASSWORD='%s' %s -h %s -U %s -i -s 2 -q %s 2>&1"
                  % (DB_PASSWORD, PGBENCH, address(primary), DB_USER, DB_NAME), timeout=300)
    if res.returncode != 0:
        raise RuntimeError("pgbench -i failed: %s" % res.stdout[-1500:])
    rows = []
    try:
        for label, extra in (("new connection per transaction (-C)", "-C"), ("persistent connections", "")):
            pooled = pgbench("web1", "127.0.0.1", 6432, extra)
            direct = pgbench("web1", address(primary), 5432, extra)
            rows.append((label, pooled, direct))
    finally:
        bouncer_sql("web1", "DROP TABLE IF EXISTS pgbench_accounts, pgbench_branches, pgbench_history, "
                            "pgbench_tellers")
    return rows


def failover(old, new, inv, prefix):
    writer = start_writer("web1", prefix, seconds=150)
    wait_for(lambda: int(sql(old, "SELECT count(*) FROM ha_probe WHERE token LIKE '%s-%%'" % prefix,
                             db=DB_NAME)) >= 20, timeout=60)
    podman("stop", "-t", "0", container(old))
    started = time.time()
    res = playbook("failover.yml", inventory=inv)
    took = time.time() - started
    if res.returncode != 0:
        raise RuntimeError("failover.yml failed:\n" + res.stdout[-3000:])
    committed, events = writer_results(writer)
    lost = missing_tokens(new, committed)
    podman("start", container(old))
    wait_for(lambda: run_ssh(old, "true", timeout=10).returncode == 0, timeout=90, interval=2)
    return {"gap": longest_write_gap(events), "committed": len(committed), "lost": len(lost), "playbook": took}


def main():
    bouncer_sql("web1", "CREATE TABLE IF NOT EXISTS ha_probe (id bigserial PRIMARY KEY, token text NOT NULL, "
                        "at timestamptz DEFAULT now())")
    run_tag = time.strftime("%H%M%S")
    pooling = measure_pooling("db1")

    asynchronous = failover("db1", "db2", INVENTORY, "async%s" % run_tag)
    swapped = inventory_with("db2", ["db1"])
    res = playbook("rejoin.yml", "-e", "postgres_primary_synchronous_replication=true", inventory=swapped)
    if res.returncode != 0:
        raise RuntimeError("rejoin.yml failed:\n" + res.stdout[-3000:])
    if sql("db2", "SHOW synchronous_standby_names") != "ANY 1 (nextcloud_ha_db1)":
        raise RuntimeError("synchronous mode is not on")

    synchronous = failover("db2", "db1", swapped, "sync%s" % run_tag)
    res = playbook("rejoin.yml", inventory=INVENTORY)
    if res.returncode != 0:
        raise RuntimeError("rejoin.yml failed:\n" + res.stdout[-3000:])

    print()
    print("PostgreSQL failover benchmark (lab %s, %s)" % (os.environ.get("LAB_NAME", "nchalab"),
                                                          time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
    print()
    print("| mode | rows committed by the writer | rows lost | seconds without a successful write | failover.yml run (s) |")
    print("|---|---|---|---|---|")
    for name, r in (("asynchronous", asynchronous), ("synchronous", synchronous)):
        print("| %s | %d | %d | %.1f | %.1f |" % (name, r["committed"], r["lost"], r["gap"], r["playbook"]))
    print()
    print("| pgbench, 4 clients, %d s each | TPS through PgBouncer | TPS direct | ratio PgBouncer / direct |" % SECONDS)
    print("|---|---|---|---|")
    for label, pooled, direct in pooling:
        print("| %s | %.1f | %.1f | %.2f |" % (label, pooled, direct, pooled / direct))
    return 0


if __name__ == "__main__":
    sys.exit(main())
