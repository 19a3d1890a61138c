#!/usr/bin/env python3
"""Failover benchmark of PostgreSQL on Patroni + etcd (issues #4, #21). Not a timed test: run it by hand.

    LAB_NAME=rel .venv/bin/python tests/benchmarks/bench_failover.py

Measured in one run, side by side, on the lab as site.yml deployed it (who leads is asked of Patroni):
1. For each of Patroni's modes, asynchronous and synchronous (switched with PATCH /config, restored at the end):
   a writer commits one row per transaction through PgBouncer on the first web node (a new psql connection each,
   like PHP); (a) the leader's container is killed (podman kill: no clean shutdown, its leader lock must expire),
   Patroni promotes a replica by itself, the old leader is started again and rejoins; (b) a planned switchover with
   patronictl back to it. Reported: seconds without a successful write (longest gap between two successful writes)
   and committed rows missing on the leader afterwards.
2. pgbench TPS from the first web node through PgBouncer (127.0.0.1:6432), through the local HAProxy alone
   (127.0.0.1:5433, PgBouncer's own upstream) and directly to the leader (:5432), with a new connection per
   transaction (-C, as PHP without persistent connections) and with persistent connections; the runs alternate
   (two rounds, the median kept) so that the machine's load drifts the same way for each; with the CPU seconds
   PgBouncer, the local HAProxy and pgbench spent on the web node per 1000 transactions (the web node has the
   same two cores as everything else), and PgBouncer's pool settings. The ratio is PgBouncer / direct.
Load is bounded: pgbench runs PGBENCH_SECONDS (default 8) per measurement, writers at most 180 s.
"""
import os
import shlex
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))

from pg_helpers import (DB_NAME, DB_PASSWORD, DB_USER, POSTGRES, WEBSERVERS, address, bouncer_sql,  # noqa: E402
                        container, dynamic_config, ensure_probe_table, healthy, leader, leaders, longest_write_gap,
                        missing_tokens, patronictl, podman, run_ssh, set_synchronous_mode, start_writer, sync_standbys,
                        wait_for,
                        writer_results)

SECONDS = int(os.environ.get("PGBENCH_SECONDS", "8"))
WEB = WEBSERVERS[0] if WEBSERVERS else "web1"
PGBENCH = "/tmp/pgbench-root/usr/lib/postgresql/*/bin/pgbench"
PROXY_PORT = 5433  # local_proxy_postgres_port: PgBouncer's upstream on the web node


def install_pgbench(web):
    """pgbench ships in Debian's server package: unpack that under /tmp on the web node (no server installed)."""
    script = ("ls %s >/dev/null 2>&1 && exit 0; v=$(ls /usr/lib/postgresql | sort -n | tail -1); cd /tmp && "
              "apt-get download -q postgresql-$v >/dev/null && dpkg -x /tmp/postgresql-${v}_*.deb /tmp/pgbench-root "
              "&& ls %s" % (PGBENCH, PGBENCH))
    res = run_ssh(web, script, timeout=300)
    if res.returncode != 0:
        raise RuntimeError("cannot unpack pgbench on %s: %s %s" % (web, res.stdout, res.stderr))


CPU = ("for p in $(pgrep -x pgbouncer) $(pgrep -x haproxy); do "
       "echo $(cat /proc/$p/comm) $(awk '{print $14 + $15}' /proc/$p/stat); done; getconf CLK_TCK")


def cpu_ticks(web):
    """({process name: CPU ticks (user + system)} of PgBouncer and HAProxy (the web node's local proxy) on `web`,
    ticks per second)."""
    per, hz = {}, 100.0
    for line in run_ssh(web, "sudo bash -c %s" % shlex.quote(CPU)).stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            per[parts[0]] = per.get(parts[0], 0) + int(parts[1])
        elif len(parts) == 1 and parts[0].isdigit():
            hz = float(parts[0])
    return per, hz


def seconds_of(field):
    """'1m2.345s' (bash's `times`) -> 62.345."""
    minutes, _, rest = field.rstrip("s").partition("m")
    return float(minutes) * 60 + float(rest)


def pgbench(web, host, port, extra):
    """One pgbench run; returns (TPS, transactions, {process: CPU seconds} of PgBouncer, the local HAProxy and
    pgbench itself on `web` during the run)."""
    cmd = ("PGPASSWORD=%s %s -h %s -p %d -U %s -n -c 4 -j 2 -T %d %s %s 2>&1; times"
           % (shlex.quote(DB_PASSWORD), PGBENCH, host, port, DB_USER, SECONDS, extra, DB_NAME))
    before, _ = cpu_ticks(web)
    res = run_ssh(web, "bash -c %s" % shlex.quote(cmd), timeout=SECONDS * 10 + 60)
    after, hz = cpu_ticks(web)
    tps = txns = None
    lines = res.stdout.splitlines()
    for line in lines:
        if line.startswith("tps = "):
            tps = float(line.split()[2])
        elif line.startswith("number of transactions actually processed:"):
            txns = int(line.split(":")[1].split("/")[0])
    if tps is None:
        raise RuntimeError("pgbench failed: %s" % res.stdout[-1500:])
    cpu = {name: (after.get(name, 0) - before.get(name, 0)) / hz for name in set(after) | set(before)}
    children = lines[-1].split() if lines else []
    if len(children) == 2:  # `times`: the shell's children (pgbench), user and system
        cpu["pgbench"] = seconds_of(children[0]) + seconds_of(children[1])
    return tps, txns, cpu


def measure_pooling(lead):
    install_pgbench(WEB)
    res = run_ssh(WEB, "PGPASSWORD='%s' %s -h %s -U %s -i -s 2 -q %s 2>&1"
                  % (DB_PASSWORD, PGBENCH, address(lead), DB_USER, DB_NAME), timeout=300)
    if res.returncode != 0:
        raise RuntimeError("pgbench -i failed: %s" % res.stdout[-1500:])
    targets = (("PgBouncer", "127.0.0.1", 6432), ("local HAProxy", "127.0.0.1", PROXY_PORT),
               ("direct", address(lead), 5432))
    rows = []
    try:
        for label, extra in (("new connection per transaction (-C)", "-C"), ("persistent connections", "")):
            runs = {name: [] for name, _, _ in targets}
            for _ in range(2):
                for name, host, port in targets:
                    runs[name].append(pgbench(WEB, host, port, extra))
            row = {"label": label}
            for name in runs:
                row[name] = statistics.median(r[0] for r in runs[name])
                txns = sum(r[1] or 0 for r in runs[name]) or 1
                cpu = {}
                for r in runs[name]:
                    for proc, secs in r[2].items():
                        cpu[proc] = cpu.get(proc, 0.0) + secs
                row[name + " cpu"] = {proc: round(secs * 1000.0 / txns, 3) for proc, secs in cpu.items()}
            rows.append(row)
    finally:
        bouncer_sql(WEB, "DROP TABLE IF EXISTS pgbench_accounts, pgbench_branches, pgbench_history, "
                         "pgbench_tellers")
    return rows


def pool_settings(web):
    res = run_ssh(web, "sudo grep -E '^(pool_mode|default_pool_size|server_reset_query|auth_type)' "
                       "/etc/pgbouncer/pgbouncer.ini")
    return dict(line.split(" = ", 1) for line in res.stdout.splitlines() if " = " in line)


def rows_of(host, prefix):
    return int(bouncer_sql(WEB, "SELECT count(*) FROM ha_probe WHERE token LIKE '%s-%%'" % prefix)) if host else 0


def killed_leader(prefix):
    """The leader's container killed under the writer; returns the figures once the old leader has rejoined."""
    old = leader()
    writer = start_writer(WEB, prefix, seconds=180)
    wait_for(lambda: rows_of(old, prefix) >= 20, timeout=60)
    podman("kill", container(old))
    killed = time.time()
    new = wait_for(lambda: (lambda ls: ls[0] if len(ls) == 1 and ls[0] != old else None)(leaders(timeout=1)),
                   90, interval=0.5)
    promoted = time.time() - killed
    time.sleep(10)
    writer.terminate()
    committed, events = writer_results(writer, timeout=60)
    lost = missing_tokens(new or leader(), committed)
    began = time.time()
    podman("start", container(old))
    wait_for(lambda: run_ssh(old, "true", timeout=10).returncode == 0, timeout=120, interval=2)
    healthy(240)
    return {"event": "failover (container %s killed)" % old, "committed": len(committed), "lost": len(lost),
            "gap": longest_write_gap(events), "leader_after": promoted if new else None, "new": new,
            "rejoin": time.time() - began}


def planned_switchover(prefix):
    """patronictl switchover to the other member under the writer."""
    old = leader()
    target = [h for h in POSTGRES if h != old][0]
    option = "--leader" if "--leader" in patronictl(old, "switchover --help").stdout else "--master"
    # In synchronous mode Patroni switches over only to the synchronous standby: wait until the target is it.
    if dynamic_config().get("synchronous_mode"):
        wait_for(lambda: target in sync_standbys(), 90, interval=1)
    writer = start_writer(WEB, prefix, seconds=180)
    wait_for(lambda: rows_of(old, prefix) >= 20, timeout=60)
    began = time.time()
    res = patronictl(old, "switchover %s %s --candidate %s --force" % (option, old, target), timeout=120)
    if "failed" in (res.stdout + res.stderr).lower():
        print("patronictl switchover: %s %s" % (res.stdout.strip(), res.stderr.strip()), file=sys.stderr)
    done = wait_for(lambda: leaders(timeout=1) == [target], 90, interval=0.5)
    took = time.time() - began
    time.sleep(8)
    writer.terminate()
    committed, events = writer_results(writer, timeout=60)
    lost = missing_tokens(target, committed)
    healthy(240)
    return {"event": "switchover %s -> %s (patronictl)" % (old, target), "committed": len(committed),
            "lost": len(lost), "gap": longest_write_gap(events), "leader_after": took if done else None,
            "new": target, "rejoin": 0.0}


def main():
    ensure_probe_table(WEB)
    healthy(120)
    first = leader()
    config = dynamic_config()
    tag = time.strftime("%H%M%S")
    settings = pool_settings(WEB)
    pooling = measure_pooling(first)
    events = []
    original = bool(config.get("synchronous_mode", False))
    try:
        for mode in (False, True):
            set_synchronous_mode(mode)
            name = "synchronous" if mode else "asynchronous"
            for kind, run in (("failover", killed_leader), ("switchover", planned_switchover)):
                figures = run("%s%s%s" % (kind[:4], name[:4], tag))
                figures["mode"] = name
                events.append(figures)
    finally:
        set_synchronous_mode(original)
        if leader() != first:
            planned_switchover("back%s" % tag)

    print()
    print("PostgreSQL on Patroni + etcd: failover benchmark (lab %s, %s)" % (
        os.environ.get("LAB_NAME", "nchalab"), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
    print("Patroni: ttl %s, loop_wait %s, retry_timeout %s, maximum_lag_on_failover %s bytes" % (
        config.get("ttl"), config.get("loop_wait"), config.get("retry_timeout"),
        config.get("maximum_lag_on_failover")))
    print()
    print("| event | mode | rows committed | rows lost | seconds without a successful write "
          "| new leader after (s) | old leader streaming again, from its container's start (s) |")
    print("|---|---|---|---|---|---|---|")
    for e in events:
        print("| %s | %s | %d | %d | %.1f | %s | %s |" % (
            e["event"], e["mode"], e["committed"], e["lost"], e["gap"],
            "%.1f" % e["leader_after"] if e["leader_after"] is not None else "none",
            "%.0f" % e["rejoin"] if e["event"].startswith("failover") else "-"))
    print()
    print("PgBouncer on %s: %s" % (WEB, ", ".join("%s = %s" % kv for kv in sorted(settings.items()))))
    print()
    print("| pgbench, 4 clients, -j 2, %d s, median of 2 | TPS PgBouncer (6432) | TPS local HAProxy (%d) "
          "| TPS direct (5432) | ratio PgBouncer / direct | ratio HAProxy / direct "
          "| CPU ms per 1000 tx on %s (PgBouncer path) |" % (SECONDS, PROXY_PORT, WEB))
    print("|---|---|---|---|---|---|---|")
    for row in pooling:
        print("| %s | %.1f | %.1f | %.1f | %.2f | %.2f | %s |" % (
            row["label"], row["PgBouncer"], row["local HAProxy"], row["direct"], row["PgBouncer"] / row["direct"],
            row["local HAProxy"] / row["direct"],
            ", ".join("%s %.0f" % (k, v * 1000) for k, v in sorted(row["PgBouncer cpu"].items()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
