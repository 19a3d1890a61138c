"""pgBackRest on the lab (issue #25): the repository on the backup host, WAL archived to it by the leader and read
back by the replicas, backups from the standby, replicas built from the repository, the timers, the ssh keys.

Everything is read on the servers: pg_stat_archiver on the leader, the repository's files on the backup host,
`pgbackrest info` and `check` as pgBackRest itself answers them, Patroni's log of a replica it rebuilt.
"""
import hashlib
import json
import re
import subprocess
import time
import uuid

import pytest

from conftest import require
from pg_helpers import (DB_NAME, GROUPS, LAB_VARS, POSTGRES, address, bouncer_sql, ensure_probe_table, leader,
                        playbook, recap, rest, run_ssh, sql, wait_for)

BACKUP = (GROUPS.get("backup") or [None])[0]
STANZA = LAB_VARS.get("nextcloud_ha_pgbackrest_stanza", "nextcloud-ha")
WEB = (GROUPS.get("webservers") or [None])[0]
REPO = "/var/lib/pgbackrest"


def pgbackrest(host, *args, timeout=300):
    """pgbackrest --stanza=STANZA ARGS as postgres on host; returns the CompletedProcess."""
    return run_ssh(host, "sudo -u postgres pgbackrest --stanza=%s %s" % (STANZA, " ".join(args)), timeout=timeout)


def info():
    res = pgbackrest(BACKUP, "--output=json", "info", timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)[0]


@pytest.fixture(scope="module")
def lead():
    require(BACKUP and POSTGRES and WEB, "the lab with a backup host, PostgreSQL hosts and web nodes")
    ensure_probe_table(WEB)
    return leader()


@pytest.fixture(scope="module")
def replicas(lead):
    return [h for h in POSTGRES if h != lead]


def test_stanza_is_ok_and_check_passes_end_to_end(lead):
    stanza = info()
    assert stanza["name"] == STANZA and stanza["status"]["code"] == 0, stanza["status"]
    assert stanza["cipher"] == "aes-256-cbc", stanza.get("cipher")
    # check: a WAL switch on the leader must reach the repository; run where pgBackRest runs its backups.
    res = pgbackrest(BACKUP, "check", timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "check command end: completed successfully" in res.stdout, res.stdout


def test_a_switched_segment_reaches_the_encrypted_repository(lead):
    before = sql(lead, "SELECT archived_count, failed_count FROM pg_stat_archiver").split("|")
    bouncer_sql(WEB, "INSERT INTO ha_probe (token) VALUES ('%s')" % uuid.uuid4().hex)
    segment = sql(lead, "SELECT pg_walfile_name(pg_switch_wal())")
    assert re.fullmatch(r"[0-9A-F]{24}", segment)
    assert wait_for(lambda: sql(lead, "SELECT last_archived_wal >= '%s' FROM pg_stat_archiver" % segment) == "t",
                    timeout=60), sql(lead, "SELECT * FROM pg_stat_archiver")
    after = sql(lead, "SELECT archived_count, failed_count FROM pg_stat_archiver").split("|")
    assert int(after[0]) > int(before[0]), (before, after)
    assert int(after[1]) == int(before[1]), "archive_command failed meanwhile: %s -> %s" % (before, after)
    # In the repository on the backup host, as pgBackRest stores it: SEGMENT-<sha1>[.zst], encrypted (no zstd magic).
    listing = run_ssh(BACKUP, "sudo find %s/archive/%s -name '%s-*' -printf '%%p %%u %%m\\n'" % (REPO, STANZA, segment))
    assert listing.returncode == 0 and listing.stdout.strip(), (segment, listing.stdout, listing.stderr)
    path, owner, mode = listing.stdout.split()[:3]
    assert owner == "postgres" and mode == "640", listing.stdout
    head = run_ssh(BACKUP, "sudo head -c 8 %s | od -An -tx1" % path).stdout.split()
    assert head[:8] == ["53", "61", "6c", "74", "65", "64", "5f", "5f"], (
        "not encrypted (OpenSSL's 'Salted__' header expected): %s" % head)
    # No member keeps a WAL archive of its own any more (the WAL shipping of earlier versions is gone).
    for host in POSTGRES:
        res = run_ssh(host, "test -e /var/lib/postgresql/wal_archive || test -e /usr/local/lib/nextcloud-ha/wal-ship")
        assert res.returncode == 1, "old WAL shipping left on %s" % host


def test_a_replica_restore_command_reads_a_segment_back_from_the_repository(lead, replicas):
    if not replicas:
        pytest.skip("no replica in the inventory")
    bouncer_sql(WEB, "INSERT INTO ha_probe (token) VALUES ('%s')" % uuid.uuid4().hex)
    segment = sql(lead, "SELECT pg_walfile_name(pg_switch_wal())")
    assert wait_for(lambda: sql(lead, "SELECT last_archived_wal >= '%s' FROM pg_stat_archiver" % segment) == "t",
                    timeout=60)
    original = run_ssh(lead, "sudo sh -c 'sha256sum /var/lib/postgresql/*/main/pg_wal/%s'" % segment)
    assert original.returncode == 0, "%s already recycled on %s: %s" % (segment, lead, original.stderr)
    for host in replicas:
        command = sql(host, "SHOW restore_command")
        assert "archive-get" in command, command
        target = "/tmp/restore-test-%s" % uuid.uuid4().hex
        run = command.replace("%f", segment).replace("%p", target)
        res = run_ssh(host, "sudo -u postgres sh -c %s && sudo sha256sum %s && sudo rm -f %s" % (
            json.dumps(run), target, target), timeout=120)
        assert res.returncode == 0, (command, res.stderr)
        assert res.stdout.splitlines()[-1].split()[0] == original.stdout.split()[0], (res.stdout, original.stdout)


def test_the_first_full_backup_exists_and_a_timer_backup_is_taken_from_the_standby(lead, replicas):
    backups = info()["backup"]
    assert any(b["type"] == "full" for b in backups), backups
    # The timers of the default schedule are active, with a next run.
    timers = run_ssh(BACKUP, "systemctl show -p ActiveState -p NextElapseUSecRealtime "
                             "nextcloud-ha-pgbackrest-full.timer nextcloud-ha-pgbackrest-incr.timer")
    assert timers.stdout.count("ActiveState=active") == 2, timers.stdout
    assert "NextElapseUSecRealtime=\n" not in timers.stdout + "\n", timers.stdout
    # The service the timers start, run now: an incremental backup, from the standby when one runs.
    started = time.time()
    res = run_ssh(BACKUP, "sudo systemctl start nextcloud-ha-pgbackrest@incr.service", timeout=600)
    assert res.returncode == 0, res.stderr
    journal = run_ssh(BACKUP, "sudo journalctl -q -o cat -u nextcloud-ha-pgbackrest@incr.service --since=@%d"
                      % int(started - 1)).stdout
    assert "backup command end: completed successfully" in journal, journal[-3000:]
    if replicas:
        assert "wait for replay on the standby" in journal, journal[-3000:]
    newest = info()["backup"][-1]
    assert newest["type"] == "incr" and newest["timestamp"]["stop"] >= int(started) - 5, newest


def test_the_ssh_keys_are_accepted_only_from_the_other_side(lead, tmp_path):
    """The backup host's key logs in to a member from the backup host, and is refused from any other address."""
    res = run_ssh(BACKUP, "sudo -u postgres ssh %s true" % address(lead))
    assert res.returncode == 0, res.stderr
    # The same private key from the controller (the lab's trusted address, which reaches ssh): refused by from="...".
    private = run_ssh(BACKUP, "sudo cat /var/lib/postgresql/.ssh/id_nextcloud_ha_pgbackrest").stdout
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    key = tmp_path / "key"
    key.write_text(private)
    key.chmod(0o600)
    res = subprocess.run(["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                          "-o", "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10",
                          "-F", "/dev/null", "postgres@%s" % address(lead), "true"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "Permission denied" in res.stderr, (res.returncode, res.stderr)


def test_reinit_builds_the_replica_from_the_repository(lead, replicas):
    """patronictl reinit: Patroni's first create_replica_method, pgbackrest restore, builds the replica."""
    if not replicas:
        pytest.skip("no replica in the inventory")
    replica = replicas[-1]
    since = run_ssh(replica, "date +%s").stdout.strip()
    res = run_ssh(replica, "sudo -u postgres patronictl -c /etc/patroni/config.yml reinit --force --wait %s %s"
                  % (json.dumps(rest(lead, "/patroni")[1]["patroni"]["scope"]), replica), timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    log = run_ssh(replica, "sudo journalctl -q -o cat -u patroni --since=@%s" % since).stdout
    assert "replica has been created using pgbackrest" in log, log[-3000:]
    token = uuid.uuid4().hex
    bouncer_sql(WEB, "INSERT INTO ha_probe (token) VALUES ('%s')" % token)
    assert wait_for(lambda: sql(replica, "SELECT count(*) FROM ha_probe WHERE token = '%s'" % token, db=DB_NAME,
                                check=False).stdout.strip() == "1", timeout=120), "%s does not replay" % replica


def test_a_short_cipher_pass_is_refused_before_any_change():
    require(BACKUP, "the lab with a backup host")
    mtime = run_ssh(BACKUP, "sudo stat -c %Y /etc/pgbackrest.conf").stdout.strip()
    res = playbook("site.yml", "-e", "nextcloud_ha_pgbackrest_cipher_pass=short", timeout=600)
    flat = " ".join(res.stdout.split())
    assert res.returncode != 0, res.stdout[-3000:]
    assert "set nextcloud_ha_pgbackrest_cipher_pass to a key of 20 or more characters" in flat, res.stdout[-3000:]
    assert set(recap(res.stdout)) == {"localhost"}, res.stdout[-3000:]
    assert run_ssh(BACKUP, "sudo stat -c %Y /etc/pgbackrest.conf").stdout.strip() == mtime


def test_config_files_hold_the_key_on_the_backup_host_only(lead):
    digest = hashlib.sha256(LAB_VARS["nextcloud_ha_pgbackrest_cipher_pass"].encode()).hexdigest()
    for host in POSTGRES + [BACKUP]:
        res = run_ssh(host, "sudo stat -c '%U %G %a' /etc/pgbackrest.conf && sudo grep -c '^repo1-cipher-pass=' "
                            "/etc/pgbackrest.conf; sudo sed -n 's/^repo1-cipher-pass=//p' /etc/pgbackrest.conf "
                            "| tr -d '\\n' | sha256sum")
        lines = res.stdout.split("\n")
        assert lines[0] == "postgres postgres 640", (host, res.stdout)
        if host == BACKUP:
            assert lines[1] == "1" and lines[2].split()[0] == digest, host
        else:
            assert lines[1] == "0", host
