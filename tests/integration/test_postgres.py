"""PostgreSQL primary + hot standby and PgBouncer on the lab (issue #4): real rows, real WAL, real servers.

Non-disruptive: every test leaves replication as it found it. Failover, rejoin and switchover are in
test_postgres_failover.py (disruptive, run last).
"""
import re
import time
import uuid

import pytest

from pg_helpers import (DB_NAME, DB_USER, bouncer_sql, inventory_with, playbook, recap, run_ssh, sql,
                        wait_for)

PRIMARY, STANDBY, WEB = "db1", "db2", "web1"
SLOT = "nextcloud_ha_db2"
ARCHIVE = "/var/lib/postgresql/wal_archive"


@pytest.fixture(scope="module", autouse=True)
def ha_table():
    bouncer_sql(WEB, "CREATE TABLE IF NOT EXISTS ha_probe (id bigserial PRIMARY KEY, token text NOT NULL, "
                     "at timestamptz DEFAULT now())")


def insert_token(web=WEB):
    token = uuid.uuid4().hex
    bouncer_sql(web, "INSERT INTO ha_probe (token) VALUES ('%s')" % token)
    return token


def on_standby(token, host=STANDBY):
    return sql(host, "SELECT count(*) FROM ha_probe WHERE token = '%s'" % token, db=DB_NAME) == "1"


def test_services_run_where_they_belong(lab_host):
    major = sql(PRIMARY, "SELECT current_setting('server_version_num')::int / 10000")
    expected = {"12": "15", "13": "17"}[lab_host(PRIMARY).system_info.release.split(".")[0]]
    assert major == expected, "Debian's PostgreSQL for this release"
    for host in (PRIMARY, STANDBY):
        assert lab_host(host).service("postgresql@%s-main" % major).is_running
        assert lab_host(host).service("postgresql@%s-main" % major).is_enabled
    for web in ("web1", "web2"):
        assert lab_host(web).service("pgbouncer").is_running
        listening = lab_host(web).check_output("ss -Htlnp 'sport = :6432'")
        assert "127.0.0.1:6432" in listening and "0.0.0.0:6432" not in listening, listening
        assert lab_host(web).package("postgresql-client").is_installed


def test_roles_and_settings():
    assert sql(PRIMARY, "SELECT pg_is_in_recovery()") == "f"
    assert sql(STANDBY, "SELECT pg_is_in_recovery()") == "t"
    settings = dict(line.split("|") for line in sql(PRIMARY, "SELECT name, setting FROM pg_settings WHERE name IN "
                                                    "('wal_level','wal_log_hints','archive_mode','hot_standby',"
                                                    "'password_encryption','max_slot_wal_keep_size')").splitlines())
    assert settings == {"wal_level": "replica", "wal_log_hints": "on", "archive_mode": "on", "hot_standby": "on",
                        "password_encryption": "scram-sha-256", "max_slot_wal_keep_size": "2048"}
    assert sql(STANDBY, "SHOW hot_standby_feedback") == "on"
    owner, encoding = sql(PRIMARY, "SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding) FROM pg_database "
                                   "WHERE datname = '%s'" % DB_NAME).split("|")
    assert (owner, encoding) == (DB_USER, "UTF8")
    assert sql(PRIMARY, "SELECT rolreplication FROM pg_roles WHERE rolname = 'replicator'") == "t"
    assert sql(PRIMARY, "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'nextcloud'") == "t"


def test_hba_allows_only_web_nodes_and_replication(inventory):
    rules = sql(PRIMARY, "SELECT type, array_to_string(database, ','), array_to_string(user_name, ','), "
                         "coalesce(address, ''), auth_method FROM pg_hba_file_rules").splitlines()
    web = {inventory.address(h) for h in inventory.group("webservers")}
    dbs = {inventory.address(h) for h in ("db1", "db2")}
    for rule in rules:
        kind, database, user, address, method = rule.split("|")
        if kind == "local":
            assert (database, user, method) == ("all", "postgres", "peer"), rule
        elif database == DB_NAME:
            assert (user, method) == (DB_USER, "scram-sha-256") and address in web, rule
        else:
            assert database in ("replication", "postgres") and user == "replicator", rule
            assert method == "scram-sha-256" and address in dbs, rule
    # Real connections: the Nextcloud role directly from a web node works, another database does not,
    # and a host that is no web node (lb1 has no client; use db2 as a non-web client) is refused.
    assert bouncer_sql(WEB, "SELECT 1", host=inventory.address(PRIMARY), port=5432) == "1"
    res = run_ssh(WEB, "PGPASSWORD=x psql -XAtq -h %s -U %s -d postgres -c 'SELECT 1'" % (inventory.address(PRIMARY),
                                                                                         DB_USER))
    assert res.returncode != 0 and "no pg_hba.conf entry" in res.stderr, res.stderr
    res = run_ssh(STANDBY, "PGPASSWORD=x psql -XAtq -h %s -U %s -d %s -c 'SELECT 1'" % (
        inventory.address(PRIMARY), DB_USER, DB_NAME))
    assert res.returncode != 0 and "no pg_hba.conf entry" in res.stderr, res.stderr


def test_row_through_pgbouncer_reaches_standby_within_5s():
    token = insert_token()
    start = time.monotonic()
    assert wait_for(lambda: on_standby(token), timeout=5, interval=0.2), "row not on the standby within 5 s"
    assert time.monotonic() - start <= 5.5


def test_standby_is_read_only_and_answers_queries():
    assert int(sql(STANDBY, "SELECT count(*) FROM ha_probe", db=DB_NAME)) >= 1
    res = sql(STANDBY, "INSERT INTO ha_probe (token) VALUES ('x')", db=DB_NAME, check=False)
    assert res.returncode != 0 and "read-only transaction" in res.stderr


def test_streaming_through_an_active_slot():
    assert sql(PRIMARY, "SELECT state, sync_state FROM pg_stat_replication WHERE application_name = '%s'"
               % SLOT).split("|")[0] == "streaming"
    assert sql(PRIMARY, "SELECT active, slot_type FROM pg_replication_slots WHERE slot_name = '%s'" % SLOT) \
        == "t|physical"
    assert sql(STANDBY, "SELECT status, slot_name FROM pg_stat_wal_receiver") == "streaming|%s" % SLOT


def test_switched_segment_lands_in_the_standby_archive(lab_host):
    # Count from now: an earlier failover may have left failures from shipping to a dead node (retried since).
    sql(PRIMARY, "SELECT pg_stat_reset_shared('archiver')")
    insert_token()
    segment = sql(PRIMARY, "SELECT pg_walfile_name(pg_switch_wal())")
    assert re.fullmatch(r"[0-9A-F]{24}", segment)
    archived = wait_for(lambda: lab_host(STANDBY).file("%s/%s" % (ARCHIVE, segment)).exists, timeout=30)
    assert archived, "segment %s not in the standby's archive" % segment
    f = lab_host(STANDBY).file("%s/%s" % (ARCHIVE, segment))
    assert f.size == 16 * 1024 * 1024 and f.user == "postgres" and f.mode == 0o600
    assert wait_for(lambda: sql(PRIMARY, "SELECT last_archived_wal >= '%s' FROM pg_stat_archiver" % segment) == "t",
                    timeout=10)
    assert sql(PRIMARY, "SELECT failed_count, archived_count > 0 FROM pg_stat_archiver") == "0|t"


def test_wal_shipping_key_can_only_store_wal(inventory):
    key = "-i /var/lib/postgresql/.ssh/id_nextcloud_ha_wal -o BatchMode=yes"
    res = run_ssh(PRIMARY, "sudo -u postgres ssh %s postgres@%s id </dev/null" % (key, inventory.address(STANDBY)))
    assert res.returncode != 0 and "uid=" not in res.stdout and "refused" in res.stderr, (res.stdout, res.stderr)
    # A name that is not a WAL file name makes the archive_command fail non-zero (PostgreSQL then retries).
    res = run_ssh(PRIMARY, "sudo -u postgres /usr/local/lib/nextcloud-ha/wal-ship /etc/hostname not-a-wal-file")
    assert res.returncode != 0 and "failed" in res.stderr
    # A different file under an archived segment's name is refused too.
    existing = sql(STANDBY, "SELECT name FROM pg_ls_dir('%s') AS name WHERE name ~ '^[0-9A-F]{24}$' LIMIT 1" % ARCHIVE)
    if existing:
        res = run_ssh(PRIMARY, "sudo -u postgres /usr/local/lib/nextcloud-ha/wal-ship /etc/hostname %s" % existing)
        assert res.returncode != 0


def test_standby_catches_up_from_the_archive_without_streaming():
    """Cut streaming (walreceiver stopped), write and switch WAL: the row arrives through restore_command."""
    sql(STANDBY, "ALTER SYSTEM SET primary_conninfo = ''")
    sql(STANDBY, "SELECT pg_reload_conf()")
    try:
        assert wait_for(lambda: sql(STANDBY, "SELECT count(*) FROM pg_stat_wal_receiver") == "0", timeout=20)
        token = insert_token()
        sql(PRIMARY, "SELECT pg_switch_wal()")
        assert wait_for(lambda: on_standby(token), timeout=40, interval=1), "standby did not replay from the archive"
        assert sql(STANDBY, "SELECT count(*) FROM pg_stat_wal_receiver") == "0", "streaming was not cut"
    finally:
        sql(STANDBY, "ALTER SYSTEM RESET primary_conninfo")
        sql(STANDBY, "SELECT pg_reload_conf()")
    assert wait_for(lambda: sql(STANDBY, "SELECT status FROM pg_stat_wal_receiver") == "streaming", timeout=30)


def test_second_converge_changes_nothing_and_keeps_the_standby():
    ident = sql(STANDBY, "SELECT system_identifier FROM pg_control_system()")
    timeline = sql(STANDBY, "SELECT received_tli FROM pg_stat_wal_receiver")
    started = sql(STANDBY, "SELECT pg_postmaster_start_time()")
    res = playbook("postgres.yml")
    assert res.returncode == 0, res.stdout[-3000:]
    for host, counts in recap(res.stdout).items():
        assert counts["changed"] == 0 and counts["failed"] == 0, (host, counts, res.stdout[-3000:])
    assert sql(STANDBY, "SELECT system_identifier FROM pg_control_system()") == ident
    assert sql(STANDBY, "SELECT received_tli FROM pg_stat_wal_receiver") == timeline
    assert sql(STANDBY, "SELECT pg_postmaster_start_time()") == started


def test_missing_password_fails_in_preflight_before_any_change():
    res = playbook("postgres.yml", "-e", "nextcloud_ha_db_password=")
    assert res.returncode != 0
    assert "nextcloud_ha_db_password" in res.stdout and "Nothing was changed" in res.stdout
    assert all(c["changed"] == 0 for c in recap(res.stdout).values()), res.stdout[-2000:]


def test_two_primaries_fail_in_preflight_before_any_change():
    inv = inventory_with(["db1", "db2"], [])
    res = playbook("postgres.yml", inventory=inv)
    assert res.returncode != 0
    assert "postgres_primary must hold exactly one host" in res.stdout, res.stdout[-2000:]
    assert all(c["changed"] == 0 for c in recap(res.stdout).values()), res.stdout[-2000:]
