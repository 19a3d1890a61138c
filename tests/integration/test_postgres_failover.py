"""Failover, fencing, rejoin and switchover of PostgreSQL on the lab (issue #4). Disruptive, in this order:

1. synchronous mode on; a writer commits rows through PgBouncer; the primary db1's container is killed;
   failover.yml promotes db2: writes through PgBouncer succeed again and every committed row is on db2;
2. db1 comes back: its fence guard refuses to start it as a second primary;
3. rejoin.yml (groups swapped) rewinds db1 into a standby of db2, which receives rows written after the failover;
4. switchover.yml moves the primary back to db1 under a writer: no committed row is lost, db2 follows db1.
The cluster ends as the lab inventory describes it (db1 primary, db2 standby, asynchronous).
"""
import time

import pytest

from pg_helpers import (bouncer_sql, container, inventory_with, longest_write_gap, missing_tokens, playbook,
                        podman, run_ssh, sql, start_writer, wait_for, writer_results)

pytestmark = pytest.mark.disruptive

STATE = {}


def streaming_from(standby):
    return sql(standby, "SELECT status || '|' || sender_host FROM pg_stat_wal_receiver")


def test_failover_in_sync_mode_keeps_every_committed_row(inventory):
    bouncer_sql("web1", "CREATE TABLE IF NOT EXISTS ha_probe (id bigserial PRIMARY KEY, token text NOT NULL, "
                        "at timestamptz DEFAULT now())")
    res = playbook("postgres.yml", "--limit", "db1", "-e", "postgres_primary_synchronous_replication=true")
    assert res.returncode == 0, res.stdout[-3000:]
    assert sql("db1", "SHOW synchronous_standby_names") == "ANY 1 (nextcloud_ha_db2)"
    assert sql("db1", "SELECT sync_state FROM pg_stat_replication") == "quorum"

    writer = start_writer("web1", "failover", seconds=240)
    assert wait_for(lambda: int(sql("db1", "SELECT count(*) FROM ha_probe WHERE token LIKE 'failover-%'",
                                    db="nextcloud")) >= 20, timeout=60)
    assert podman("stop", "-t", "0", container("db1")).returncode == 0
    stopped = time.time()
    res = playbook("failover.yml")
    assert res.returncode == 0, res.stdout[-4000:]
    assert "Promoted db2" in res.stdout and "Took" in res.stdout
    assert sql("db2", "SELECT pg_is_in_recovery()") == "f"
    # Writes through PgBouncer work again, pointed at db2.
    assert wait_for(lambda: bouncer_sql("web2", "SELECT inet_server_addr()", check=False).stdout.strip()
                    == inventory.address("db2"), timeout=30)
    finished = time.time()
    # web1's PgBouncer may still be closing the writer's sessions to the dead primary: retry for 30 s.
    STATE["after_failover"] = wait_for(lambda: bouncer_sql(
        "web1", "INSERT INTO ha_probe (token) VALUES ('after-failover') RETURNING token", check=False).stdout.strip(),
        timeout=30, interval=1)
    assert STATE["after_failover"] == "after-failover", "no write through web1's PgBouncer after the failover"
    committed, events = writer_results(writer)
    # The writer is bounded (240 s); on a loaded machine failover.yml may outlast it. When it ran past the
    # failover, it must have written again.
    if events and events[-1][0] > finished:
        assert any(ok and at > stopped for at, ok in events), "no successful write after the failover"
    assert missing_tokens("db2", committed) == [], "committed rows lost in synchronous mode"
    STATE["gap"] = longest_write_gap(events)


def test_returning_old_primary_is_fenced(lab_host):
    major = sql("db2", "SELECT current_setting('server_version_num')::int / 10000")
    assert podman("start", container("db1")).returncode == 0
    assert wait_for(lambda: run_ssh("db1", "true", timeout=10).returncode == 0, timeout=90, interval=2)
    # Its guard refused to start it as a second primary and marked it.
    assert wait_for(lambda: run_ssh("db1", "systemctl is-failed postgresql@%s-main" % major).stdout.strip() == "failed",
                    timeout=60, interval=2)
    assert not lab_host("db1").service("postgresql@%s-main" % major).is_running
    assert lab_host("db1").file("/var/lib/postgresql/%s/NEXTCLOUD_HA_FENCED" % major).exists
    assert sql("db2", "SELECT pg_is_in_recovery()") == "f"


def test_rejoin_turns_the_old_primary_into_a_standby(inventory):
    inv = inventory_with("db2", ["db1"])
    STATE["swapped"] = inv
    res = playbook("rejoin.yml", inventory=inv)
    assert res.returncode == 0, res.stdout[-4000:]
    assert "pg_rewind" in res.stdout
    assert sql("db1", "SELECT pg_is_in_recovery()") == "t"
    assert streaming_from("db1") == "streaming|%s" % inventory.address("db2")
    assert sql("db2", "SELECT active FROM pg_replication_slots WHERE slot_name = 'nextcloud_ha_db1'") == "t"
    assert missing_tokens("db1", ["after-failover"]) == []
    token = bouncer_sql("web2", "INSERT INTO ha_probe (token) VALUES ('after-rejoin') RETURNING token")
    assert wait_for(lambda: missing_tokens("db1", [token]) == [], timeout=5, interval=0.2)
    assert sql("db1", "SELECT system_identifier FROM pg_control_system()") == \
        sql("db2", "SELECT system_identifier FROM pg_control_system()")


def test_switchover_back_loses_no_committed_row(inventory):
    inv = STATE.get("swapped") or inventory_with("db2", ["db1"])
    writer = start_writer("web1", "switchover", seconds=90)
    assert wait_for(lambda: int(sql("db2", "SELECT count(*) FROM ha_probe WHERE token LIKE 'switchover-%'",
                                    db="nextcloud")) >= 10, timeout=60)
    res = playbook("switchover.yml", "-e", "switchover_target=db1", inventory=inv)
    assert res.returncode == 0, res.stdout[-4000:]
    assert "Promoted db1" in res.stdout
    committed, events = writer_results(writer)
    assert committed, "the writer committed nothing"
    assert sql("db1", "SELECT pg_is_in_recovery()") == "f"
    assert sql("db2", "SELECT pg_is_in_recovery()") == "t"
    assert missing_tokens("db1", committed) == [], "committed rows lost in the switchover"
    assert wait_for(lambda: streaming_from("db2") == "streaming|%s" % inventory.address("db1"), timeout=30)
    assert bouncer_sql("web2", "SELECT inet_server_addr()") == inventory.address("db1")
    token = bouncer_sql("web1", "INSERT INTO ha_probe (token) VALUES ('after-switchover') RETURNING token")
    assert wait_for(lambda: missing_tokens("db2", [token]) == [], timeout=5, interval=0.2)


def wal_targets(host):
    return run_ssh(host, "grep -v '^#' /etc/nextcloud-ha/wal-targets").stdout.split()


def shipping_keys(host):
    out = run_ssh(host, "sudo cat /var/lib/postgresql/.ssh/authorized_keys").stdout
    return sorted(line.split()[-4] for line in out.splitlines() if "nextcloud-ha WAL shipping" in line)


def test_nothing_stale_after_failover_rejoin_and_switchover(inventory):
    # A slot nobody uses keeps WAL on the primary up to max_slot_wal_keep_size: the primary holds exactly the
    # standby's slot, in use, and the standby holds none (they are dropped when a node follows).
    assert wait_for(lambda: sql("db1", "SELECT string_agg(slot_name || '|' || slot_type || '|' || active::text, ',') "
                                       "FROM pg_replication_slots") == "nextcloud_ha_db2|physical|true", timeout=30)
    assert sql("db2", "SELECT count(*) FROM pg_replication_slots") == "0"
    # WAL shipping goes to the other node only, and each node accepts the shipping key of the other node only.
    assert wal_targets("db1") == [inventory.address("db2"), "db2"]
    assert wal_targets("db2") == [inventory.address("db1"), "db1"]
    assert shipping_keys("db1") == ["postgres@db2"]
    assert shipping_keys("db2") == ["postgres@db1"]
    # The new primary's archive_command ships to db2's archive: a switched segment is archived.
    before = int(sql("db1", "SELECT archived_count FROM pg_stat_archiver"))
    bouncer_sql("web1", "INSERT INTO ha_probe (token) VALUES ('archive-check')")
    sql("db1", "SELECT pg_switch_wal()")
    assert wait_for(lambda: int(sql("db1", "SELECT archived_count FROM pg_stat_archiver")) > before, timeout=30)
