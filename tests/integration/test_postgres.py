"""PostgreSQL under Patroni with etcd, and PgBouncer on the web nodes (issues #4, #21): real rows, real WAL, real
servers.

Every host of the `postgres` group is a Patroni member; who leads is asked of Patroni (GET /primary, patronictl),
never of the inventory groups. Non-disruptive: every test leaves the cluster as it found it. Failover, switchover
and reinit are in test_postgres_failover.py, the failure scenarios under load in test_reliability.py, bad input in
test_patroni.py.
"""
import hashlib
import json
import os
import re
import uuid

import pytest
import yaml

from pg_helpers import (DB_NAME, DB_USER, GROUPS, LAB_VARS, PATRONI_CONFIG, POSTGRES, ROOT, WEBSERVERS,
                        address, bouncer_sql, dynamic_config, ensure_probe_table, inventory_with, leader, leaders, members,
                        playbook, recap, rest, run_ssh, sql, wait_for)

WEB = (WEBSERVERS or [None])[0]


def role_default(name):
    """A default of roles/patroni (what the inventory gets when it does not set the variable)."""
    with open(os.path.join(ROOT, "roles", "patroni", "defaults", "main.yml")) as f:
        return yaml.safe_load(f)[name]


def wanted(name):
    """The value the lab's inventory asks for: its group_vars, else the role's default."""
    return LAB_VARS[name] if name in LAB_VARS else role_default(name)


@pytest.fixture(scope="module")
def lead():
    if len(POSTGRES) < 1 or not WEB:
        pytest.skip("no postgres or web hosts in the inventory")
    ensure_probe_table(WEB)
    return leader()


@pytest.fixture(scope="module")
def replicas(lead):
    return [h for h in POSTGRES if h != lead]


def insert_token(web=WEB):
    token = uuid.uuid4().hex
    bouncer_sql(web, "INSERT INTO ha_probe (token) VALUES ('%s')" % token)
    return token


def has_token(host, token):
    return sql(host, "SELECT count(*) FROM ha_probe WHERE token = '%s'" % token, db=DB_NAME, check=False
               ).stdout.strip() == "1"


def pg_major(lab_host, host):
    return {"12": "15", "13": "17"}[lab_host(host).system_info.release.split(".")[0]]


def test_every_postgres_host_is_a_member_and_exactly_one_leads(lead):
    """patronictl (as root and as postgres, on every member) and the REST API agree: one leader, the rest replicas."""
    for host in POSTGRES:
        for prefix in ("sudo", "sudo -u postgres"):
            res = run_ssh(host, "%s patronictl -c %s list -f json" % (prefix, PATRONI_CONFIG), timeout=60)
            assert res.returncode == 0, (host, prefix, res.stderr)
            listed = {m["Member"]: m for m in json.loads(res.stdout)}
            assert set(listed) == set(POSTGRES), (host, listed)
            assert [m for m, v in listed.items() if v["Role"] == "Leader"] == [lead], listed
            for name, m in listed.items():
                assert m["State"] in ("running", "streaming"), m
                if name != lead:
                    assert m["Role"] in ("Replica", "Sync Standby", "Quorum Standby"), m
    assert leaders() == [lead]
    api = members()
    assert set(api) == set(POSTGRES)
    assert [n for n, m in api.items() if m["role"] in ("leader", "master")] == [lead], api
    assert {m["host"] for m in api.values()} == {address(h) for h in POSTGRES}, api


def test_patroni_runs_postgresql_and_the_debian_unit_is_off(lab_host, lead):
    major = pg_major(lab_host, lead)
    assert sql(lead, "SELECT current_setting('server_version_num')::int / 10000") == major, \
        "Debian's PostgreSQL for this release"
    for host in POSTGRES:
        node = lab_host(host)
        assert node.service("patroni").is_running and node.service("patroni").is_enabled, host
        debian = "postgresql@%s-main" % major
        state = node.run("systemctl is-enabled %s" % debian).stdout.strip()
        assert state in ("disabled", "masked"), (host, debian, state)
        assert not node.service(debian).is_running, (host, debian)
        # The postmaster runs in patroni.service (Patroni starts it detached, so its parent is init).
        directory = sql(host, "SHOW data_directory")
        assert directory == "/var/lib/postgresql/%s/main" % major, (host, directory)
        pid = node.check_output("head -n 1 %s/postmaster.pid" % directory).strip()
        cgroup = node.check_output("cat /proc/%s/cgroup" % pid)
        assert "/patroni.service" in cgroup, (host, cgroup)


def test_pgbouncer_on_every_web_node_reaches_the_leader(lab_host, lead):
    for web in WEBSERVERS:
        assert lab_host(web).service("pgbouncer").is_running
        listening = lab_host(web).check_output("ss -Htlnp 'sport = :6432'")
        assert "127.0.0.1:6432" in listening and "0.0.0.0:6432" not in listening, listening
        assert lab_host(web).package("postgresql-client").is_installed
        assert bouncer_sql(web, "SELECT inet_server_addr(), pg_is_in_recovery()") == "%s|f" % address(lead)


def test_replicas_stream_and_catch_up_with_a_write_through_pgbouncer(lead, replicas):
    if not replicas:
        pytest.skip("no replica in the inventory")
    streaming = sql(lead, "SELECT application_name, state FROM pg_stat_replication").splitlines()
    assert sorted(streaming) == sorted("%s|streaming" % h for h in replicas), streaming
    token = insert_token()
    lsn = sql(lead, "SELECT pg_current_wal_lsn()")
    for host in replicas:
        assert sql(host, "SELECT pg_is_in_recovery()") == "t"
        assert sql(host, "SELECT status, sender_host FROM pg_stat_wal_receiver") == "streaming|%s" % address(lead)
        assert wait_for(lambda h=host: has_token(h, token), timeout=5, interval=0.2), "row not on %s in 5 s" % host
        assert sql(host, "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '%s') >= 0" % lsn) == "t", host
    # Patroni's own figure (GET /cluster), refreshed every loop_wait seconds.
    assert wait_for(lambda: all(members()[h].get("lag") in (0, "0") for h in replicas), timeout=20, interval=1), \
        members()


def test_replicas_are_read_only(replicas):
    for host in replicas:
        res = sql(host, "INSERT INTO ha_probe (token) VALUES ('x')", db=DB_NAME, check=False)
        assert res.returncode != 0 and "read-only transaction" in res.stderr, res.stderr


def test_dynamic_configuration_matches_the_inventory(lead):
    config = dynamic_config()
    assert config.get("synchronous_mode", False) is bool(wanted("patroni_synchronous_mode")), config
    assert config.get("synchronous_mode_strict", False) is bool(wanted("patroni_synchronous_mode_strict")), config
    assert config.get("failsafe_mode", False) is bool(wanted("patroni_failsafe_mode")), config
    for key in ("ttl", "loop_wait", "retry_timeout", "maximum_lag_on_failover"):
        assert int(config[key]) == int(wanted("patroni_" + key)), (key, config)
    assert config["postgresql"]["use_pg_rewind"] is True and config["postgresql"]["use_slots"] is True, config
    names = sql(lead, "SHOW synchronous_standby_names")
    assert bool(names) is bool(wanted("patroni_synchronous_mode")), names
    # What Patroni holds is what every member runs.
    parameters = config["postgresql"]["parameters"]
    for name in ("wal_level", "wal_log_hints", "archive_mode", "hot_standby", "password_encryption"):
        assert name in parameters, (name, parameters)
    for host in POSTGRES:
        for name, value in parameters.items():
            # As shown (256MB, on) or in the parameter's base unit (archive_timeout 60 is shown as 1min).
            running = sql(host, "SELECT current_setting(name) || '|' || setting FROM pg_settings WHERE name = '%s'"
                          % name).lower().split("|")
            expected = ("on" if value else "off") if isinstance(value, bool) else str(value)
            assert expected.lower() in running, (host, name, running, value)
        assert sql(host, "SHOW wal_log_hints") == "on"  # what pg_rewind needs


def test_nextcloud_role_and_database(lead):
    owner, encoding = sql(lead, "SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding) FROM pg_database "
                                "WHERE datname = '%s'" % DB_NAME).split("|")
    assert (owner, encoding) == (DB_USER, "UTF8")
    assert sql(lead, "SELECT rolreplication FROM pg_roles WHERE rolname = 'replicator'") == "t"
    assert sql(lead, "SELECT rolpassword LIKE 'SCRAM-SHA-256$%%' FROM pg_authid WHERE rolname = '%s'"
               % DB_USER) == "t"


def test_listen_addresses_and_hba_as_configured(lab_host, lead, replicas):
    web = {address(h) for h in WEBSERVERS}
    dbs = {address(h) for h in POSTGRES}
    for host in POSTGRES:
        listening = lab_host(host).check_output("ss -Htln 'sport = :5432'")
        assert "127.0.0.1:5432" in listening and "%s:5432" % address(host) in listening, listening
        assert "0.0.0.0:5432" not in listening and "*:5432" not in listening, listening
        api = lab_host(host).check_output("ss -Htln 'sport = :8008'")
        assert "%s:8008" % address(host) in api and "0.0.0.0:8008" not in api, api
        rules = set(sql(host, "SELECT type, array_to_string(database, ','), array_to_string(user_name, ','), "
                              "coalesce(address, ''), coalesce(netmask, ''), auth_method "
                              "FROM pg_hba_file_rules").splitlines())
        expected = {"local|all|postgres|||peer"}
        expected |= {"host|%s|%s|%s|255.255.255.255|scram-sha-256" % (DB_NAME, DB_USER, a) for a in web}
        expected |= {"host|%s|replicator|%s|255.255.255.255|scram-sha-256" % (db, a)
                     for a in dbs for db in ("replication", "postgres")}
        # Patroni's own replication connection to its member (local_replication_address) may come over loopback.
        loopback = {"host|replication|replicator|127.0.0.1|255.255.255.255|scram-sha-256"}
        if GROUPS.get("monitoring"):
            # The postgres exporter connects over the local socket as the `prometheus` role (pg_monitor), by peer.
            expected.add("local|postgres|prometheus|||peer")
        assert expected <= rules <= expected | loopback, (host, sorted(rules ^ expected))
    # Real connections: the Nextcloud role from a web node straight to the leader works; another database does
    # not; a host that is no web node (a replica) is refused.
    assert bouncer_sql(WEB, "SELECT 1", host=address(lead), port=5432) == "1"
    res = run_ssh(WEB, "PGPASSWORD=x psql -XAtq -h %s -U %s -d postgres -c 'SELECT 1'" % (address(lead), DB_USER))
    assert res.returncode != 0 and "no pg_hba.conf entry" in res.stderr, res.stderr
    for host in replicas:
        res = run_ssh(host, "PGPASSWORD=x psql -XAtq -h %s -U %s -d %s -c 'SELECT 1'"
                      % (address(lead), DB_USER, DB_NAME))
        assert res.returncode != 0 and "no pg_hba.conf entry" in res.stderr, res.stderr


def test_patroni_opens_its_local_replication_connection():
    """Patroni asks its own member for the timeline over a replication connection to the first listen address
    (127.0.0.1) as the replication user, to decide whether a demoted leader needs pg_rewind: refused, a leader
    demoted while it ran (cut off from the network) never rejoins (the reliability suite's network cut)."""
    password = LAB_VARS["nextcloud_ha_replication_password"]
    for host in POSTGRES:
        res = run_ssh(host, "PGPASSWORD=%s psql -XAtq 'host=127.0.0.1 port=5432 user=replicator dbname=postgres "
                            "replication=1' -c IDENTIFY_SYSTEM" % password)
        if res.returncode != 0:  # (no assert on res: its repr would print the password)
            pytest.fail("%s refuses Patroni's local replication connection: %s" % (host, res.stderr.strip()))
        assert res.stdout.split("|")[0] == sql(host, "SELECT system_identifier FROM pg_control_system()"), res.stdout


def test_rest_api_reads_freely_and_refuses_unsafe_requests_without_auth(lead):
    for host in POSTGRES:
        status, body = rest(host, "/cluster")
        assert status == 200 and {m["name"] for m in body["members"]} == set(POSTGRES), (status, body)
        assert rest(host, "/config")[0] == 200
        # Harmless bodies should the API wrongly accept them: a restart only if one is pending (none is), the ttl
        # it already has.
        status, _ = rest(host, "/restart", method="POST", body={"restart_pending": True})
        assert status == 401, "POST /restart without credentials on %s answered %s" % (host, status)
        status, _ = rest(host, "/config", method="PATCH", body={"ttl": int(dynamic_config()["ttl"])})
        assert status == 401, "PATCH /config without credentials on %s answered %s" % (host, status)
    # A wrong password is refused too (and the lock's ttl is untouched).
    import base64
    import urllib.error
    import urllib.request
    req = urllib.request.Request("http://%s:8008/restart" % address(lead), method="POST",
                                 data=b'{"restart_pending": true}')
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", "Basic " + base64.b64encode(b"patroni:wrong").decode())
    try:
        urllib.request.urlopen(req, timeout=5)
        status = 200
    except urllib.error.HTTPError as err:
        status = err.code
    assert status == 401
    assert int(dynamic_config()["ttl"]) == int(wanted("patroni_ttl"))


def test_second_converge_changes_nothing_and_restarts_no_member(lead, replicas):
    ident = {h: sql(h, "SELECT system_identifier FROM pg_control_system()") for h in POSTGRES}
    started = {h: sql(h, "SELECT pg_postmaster_start_time()") for h in POSTGRES}
    patroni_pid = {h: run_ssh(h, "systemctl show -p MainPID --value patroni").stdout.strip() for h in POSTGRES}
    config = {h: hashlib.sha256(run_ssh(h, "sudo cat %s" % PATRONI_CONFIG).stdout.encode()).hexdigest()
              for h in POSTGRES}
    res = playbook("postgres.yml")
    assert res.returncode == 0, res.stdout[-3000:]
    for host, counts in recap(res.stdout).items():
        assert counts["changed"] == 0 and counts["failed"] == 0, (host, counts, res.stdout[-3000:])
    assert leader() == lead
    for h in POSTGRES:
        assert sql(h, "SELECT system_identifier FROM pg_control_system()") == ident[h]
        assert sql(h, "SELECT pg_postmaster_start_time()") == started[h], "%s restarted" % h
        assert run_ssh(h, "systemctl show -p MainPID --value patroni").stdout.strip() == patroni_pid[h]
        assert hashlib.sha256(run_ssh(h, "sudo cat %s" % PATRONI_CONFIG).stdout.encode()).hexdigest() == config[h]
    if replicas:
        assert sql(replicas[0], "SELECT status FROM pg_stat_wal_receiver") == "streaming"


def test_missing_db_password_fails_in_preflight_before_any_change():
    res = playbook("postgres.yml", "-e", "nextcloud_ha_db_password=")
    assert res.returncode != 0
    assert "nextcloud_ha_db_password" in res.stdout and "Nothing was changed" in res.stdout, res.stdout[-2000:]
    assert all(c["changed"] == 0 for c in recap(res.stdout).values()), res.stdout[-2000:]


def test_two_bootstrap_hosts_fail_in_preflight_before_any_change():
    inv = inventory_with(POSTGRES[:2], POSTGRES[2:])
    res = playbook("postgres.yml", inventory=inv, timeout=600)
    assert res.returncode != 0
    assert "postgres_primary must hold exactly one host" in res.stdout, res.stdout[-2000:]
    assert all(c["changed"] == 0 for c in recap(res.stdout).values()), res.stdout[-2000:]
