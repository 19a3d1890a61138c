"""Point-in-time recovery (issue #25): playbooks/backup.yml and restore.yml on pgBackRest, through Patroni.

Needs the cluster deployed with a pgBackRest host (the lab's mon1, group `backup`). Disruptive, like the other
restore tests (tests/integration/test_backup.py): every restore re-initialises the PostgreSQL cluster.

1. Bad input is refused before anything changes (no confirmation, a target that does not parse, one before the end of
   the oldest backup, one in the future): the message says why, and no Patroni, PostgreSQL or config.php was
   touched (service start times, postmaster start times, file mtimes unchanged), maintenance mode stays off.
2. Point in time: a file written over WebDAV, then backup.yml (its set records the pgBackRest backup); rows A, the
   time noted from the database (SELECT now()), rows B; restore to that time: A is there, B is not, status.php
   answers through HAProxy, the file reads back over WebDAV, the leader is on a new timeline, every replica streams
   from it (a row written afterwards appears on it).
3. Latest: rows written continuously, every database host lost (Patroni and PostgreSQL killed, data directories
   removed); restore.yml without a target brings back every row committed up to the end of the archived WAL: the
   seconds of writes lost (the RPO) are reported, with archive_timeout set low for the test.
The figures go to tests/output/pitr.json.
"""
import base64
import http.client
import json
import os
import re
import shlex
import ssl
import subprocess
import threading
import time
import urllib.parse

import pytest

from conftest import require
from ha_helpers import DOMAIN, ENTRANCE, GROUPS, LAB_VARS, ROOT, sudo
from pg_helpers import (INVENTORY, PLAYBOOK, POSTGRES, SSH_CONFIG, bouncer_sql, cluster, leader, members, patch_config,
                        rest, sql, wait_for)

pytestmark = pytest.mark.disruptive

WEB = GROUPS.get("webservers", [])
BACKUP = (GROUPS.get("backup") or [None])[0]
BACKUP_DIR = "/var/backups/nextcloud-ha/pitr-sets-%d" % os.getpid()
TABLE = "pitr_probe"
TAG = "pitr-%d" % os.getpid()
ADMIN = LAB_VARS.get("nextcloud_admin_user", "admin")
AUTH = "Basic " + base64.b64encode(("%s:%s" % (ADMIN, LAB_VARS["nextcloud_ha_admin_password"])).encode()).decode()
SECRETS = [LAB_VARS[k] for k in ("nextcloud_ha_db_password", "nextcloud_ha_admin_password",
                                 "nextcloud_ha_pgbackrest_cipher_pass") if LAB_VARS.get(k)]
# archive_timeout while the latest-state test writes (the inventory's patroni_archive_timeout is back after it: the
# restore rebuilds Patroni's settings in etcd from the inventory)
TEST_ARCHIVE_TIMEOUT = 10
FIGURES = {}


def run_playbook(name, *extra, timeout=1500):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0")
    started = time.monotonic()
    proc = subprocess.run([PLAYBOOK, "-i", INVENTORY, os.path.join(ROOT, "playbooks", name),
                           "-e", "backup_dir=%s" % BACKUP_DIR] + list(extra),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    proc.took = round(time.monotonic() - started, 1)
    for secret in SECRETS:
        assert secret not in proc.stdout and secret not in proc.stderr, "a secret appears in the output"
    return proc


def one_line(text):
    return re.sub(r"\s+", " ", text).replace("''", "'")


def dav(method, name, body=None):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(ENTRANCE, 443, timeout=30, context=ctx)
    try:
        conn.request(method, "/remote.php/dav/files/%s/%s" % (urllib.parse.quote(ADMIN), urllib.parse.quote(name)),
                     body=body, headers={"Host": DOMAIN, "Authorization": AUTH})
        res = conn.getresponse()
        return res.status, res.read()
    finally:
        conn.close()


def status_php():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(ENTRANCE, 443, timeout=20, context=ctx)
    try:
        conn.request("GET", "/status.php", headers={"Host": DOMAIN})
        res = conn.getresponse()
        return res.status, json.loads(res.read().decode() or "{}")
    finally:
        conn.close()


def rows(prefix, host=None):
    """Tokens of TABLE starting with prefix: through PgBouncer (the leader), or on a database host directly."""
    query = "SELECT coalesce(string_agg(token, ' ' ORDER BY token), '') FROM %s WHERE token LIKE '%s%%'" % (TABLE, prefix)
    out = sql(host, query, db="nextcloud") if host else bouncer_sql(WEB[0], query)
    return set(out.split())


def insert(tokens):
    values = ",".join("('%s')" % t for t in tokens)
    bouncer_sql(WEB[0], "INSERT INTO %s (token) VALUES %s" % (TABLE, values))


def fingerprint_of_the_servers():
    """What must not change when a restore is refused: Patroni's and PostgreSQL's start times on every member,
    config.php's mtime on every web node, the data fingerprint."""
    out = {}
    for host in POSTGRES:
        out[host] = sudo(host, "systemctl show -p ActiveEnterTimestamp patroni; "
                               "sudo -u postgres psql -XAtqc 'SELECT pg_postmaster_start_time()'", check=False).stdout
    for node in WEB:
        out[node] = sudo(node, "stat -c %Y /var/www/nextcloud/config/config.php; cd /var/www/nextcloud && "
                               "sudo -u www-data php occ --no-warnings config:system:get data-fingerprint",
                         check=False).stdout
    return out


def replicas_stream():
    ms = members()
    lead = [n for n, m in ms.items() if m.get("role") == "leader"]
    reps = [n for n, m in ms.items() if m.get("role") in ("replica", "sync_standby", "quorum_standby")]
    if len(lead) != 1 or len(reps) != len(POSTGRES) - 1:
        return None
    if not all(ms[r].get("state") in ("running", "streaming") for r in reps):  # Patroni 3.0: running
        return None
    return lead[0], reps


def write_after_restore_reaches_the_replicas(token):
    insert([token])
    _, reps = replicas_stream()
    for rep in reps:
        assert wait_for(lambda: token in rows(token, host=rep), 60, interval=1), (rep, token)


def save_figures():
    out = os.path.join(ROOT, "tests", "output")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "pitr.json"), "w") as f:
        json.dump(FIGURES, f, indent=2, sort_keys=True)


@pytest.fixture(scope="module")
def backed_up():
    """A file over WebDAV, then backup.yml: the set this module restores from."""
    require(BACKUP is not None, "the lab has no backup group (pgBackRest host)")
    code, body = status_php()
    require(code == 200 and body.get("installed") is True,
            "needs the cluster deployed (`python -m lab deploy`): %s %s" % (code, body))
    assert wait_for(replicas_stream, 120, interval=2), cluster()
    bouncer_sql(WEB[0], "CREATE TABLE IF NOT EXISTS %s (id bigserial PRIMARY KEY, token text NOT NULL, "
                        "at timestamptz DEFAULT clock_timestamp())" % TABLE)
    content = ("written before the backup by %s\n" % TAG).encode()
    name = "%s.txt" % TAG
    status, body = dav("PUT", name, content)
    assert status in (201, 204), (status, body[:300])
    proc = run_playbook("backup.yml", "-e", "backup_retention=3", "-e", "backup_db_type=incr")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    sets = sudo(BACKUP, "ls -1 %s" % BACKUP_DIR).stdout.split()
    assert len(sets) == 1, sets
    manifest = json.loads(sudo(BACKUP, "cat %s/%s/manifest.json" % (BACKUP_DIR, sets[0])).stdout)
    FIGURES["backup"] = {"took_s": proc.took, "pgbackrest": manifest["pgbackrest"]}
    yield {"set": sets[0], "manifest": manifest, "file": name, "content": content}
    dav("DELETE", name)
    sudo(BACKUP, "rm -rf %s" % BACKUP_DIR)
    save_figures()


def test_the_set_records_its_pgbackrest_backup(backed_up):
    rec = backed_up["manifest"]["pgbackrest"]
    assert re.match(r"^[0-9]{8}-[0-9]{6}F(_[0-9]{8}-[0-9]{6}[DI])?$", rec["label"]), rec
    assert rec["type"] in ("incr", "full") and rec["wal_start"] <= rec["wal_stop"], rec
    assert int(rec["start"]) <= int(rec["stop"]) <= time.time(), rec
    # pgBackRest has it, and the set holds no dump by default
    info = json.loads(sudo(BACKUP, "cd / && sudo -u postgres pgbackrest --stanza=%s --output=json info"
                                   % LAB_VARS.get("nextcloud_ha_pgbackrest_stanza", "nextcloud-ha")).stdout)
    assert rec["label"] in [b["label"] for b in info[0]["backup"]]
    names = [f["name"] for f in backed_up["manifest"]["files"]]
    assert "config.tar.gz" in names and "database.dump" not in names, names


@pytest.mark.parametrize("extra, expected", [
    ([], "-e backup_restore_confirm=true"),
    (["-e", json.dumps({"restore_target_time": "yesterday at noon"}), "-e", "backup_restore_confirm=true"], "is not a time"),
    (["-e", json.dumps({"restore_target_time": "2000-01-01 00:00:00+00"}), "-e", "backup_restore_confirm=true"],
     "is not after the end of the oldest pgBackRest backup"),
    (["-e", json.dumps({"restore_target_time": "2099-01-01 00:00:00+00"}), "-e", "backup_restore_confirm=true"],
     "is in the future"),
], ids=["no-confirmation", "unparseable", "before-the-oldest-backup", "future"])
def test_bad_input_is_refused_and_changes_nothing(backed_up, extra, expected):
    if expected == "-e backup_restore_confirm=true":
        # a target the repository can restore to: only the missing confirmation refuses it
        extra = ["-e", json.dumps({"restore_target_time": db_now()})]
    before = fingerprint_of_the_servers()
    proc = run_playbook("restore.yml", *extra, timeout=600)
    out = one_line(proc.stdout)
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "REFUSED:" in out and expected in out and "Nothing was changed" in out, proc.stdout[-3000:]
    assert fingerprint_of_the_servers() == before
    code, body = status_php()
    assert code == 200 and body["maintenance"] is False, body


def db_now():
    return bouncer_sql(WEB[0], "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")


def test_restore_to_a_point_in_time(backed_up):
    before = cluster()
    timeline = max(m.get("timeline", 0) for m in before["members"])
    lead_before = leader()
    a = ["%s-A-%02d" % (TAG, i) for i in range(20)]
    b = ["%s-B-%02d" % (TAG, i) for i in range(20)]
    insert(a)
    time.sleep(1.5)
    target = db_now()
    time.sleep(1.5)
    insert(b)
    late_file = "%s-after.txt" % TAG
    assert dav("PUT", late_file, b"written after the target")[0] in (201, 204)
    assert rows(TAG + "-A") == set(a) and rows(TAG + "-B") == set(b)

    proc = run_playbook("restore.yml", "-e", json.dumps({"restore_target_time": target}), "-e", "backup_restore_confirm=true")
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
    took = re.search(r"Took ([0-9.]+) s from the start to every web node serving again, of which the PostgreSQL "
                     r"cluster ([0-9.]+) s \(its leader led after ([0-9.]+) s\)", one_line(proc.stdout))
    FIGURES["point_in_time"] = {"target": target, "playbook_s": proc.took, "rows_a": len(a), "rows_b": len(b),
                                "restore_s": took and float(took.group(1)), "postgres_s": took and float(took.group(2)),
                                "leader_s": took and float(took.group(3))}
    assert "PostgreSQL before:" in proc.stdout and "PostgreSQL after:" in proc.stdout

    assert rows(TAG + "-A") == set(a)
    assert rows(TAG + "-B") == set()
    code, body = status_php()
    assert code == 200 and body["installed"] is True and body["maintenance"] is False, body
    assert dav("GET", backed_up["file"]) == (200, backed_up["content"])
    assert dav("GET", late_file)[0] == 404
    # the cluster was re-initialised from the member that led, on a new timeline, and the replicas stream from it
    found = wait_for(replicas_stream, 180, interval=2)
    assert found, cluster()
    assert found[0] == lead_before, (found, lead_before)
    after = cluster()
    assert max(m.get("timeline", 0) for m in after["members"]) > timeline, (before, after)
    write_after_restore_reaches_the_replicas("%s-C-after" % TAG)
    # pgBackRest's recovery settings did not stay behind (a former leader rejoining as a replica would stop at them)
    for host in POSTGRES:
        assert sql(host, "SHOW recovery_target_time") == "", host
    # a backup of the restored timeline was taken
    assert "backed up in" in one_line(proc.stdout), proc.stdout[-3000:]


def test_restore_of_the_latest_state_after_losing_every_database_host(backed_up):
    """Rows committed continuously; every database host killed and its data directory removed; restore.yml without a
    target restores up to the end of the archived WAL. Reports the seconds of committed writes lost (RPO)."""
    assert wait_for(replicas_stream, 120, interval=2), cluster()
    patch_config({"postgresql": {"parameters": {"archive_timeout": TEST_ARCHIVE_TIMEOUT}}})
    assert wait_for(lambda: sql(leader(), "SHOW archive_timeout") == "%ds" % TEST_ARCHIVE_TIMEOUT, 30, interval=1)
    committed = []  # (token, commit epoch on the server)
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            i += 1
            token = "%s-L-%05d" % (TAG, i)
            try:
                res = bouncer_sql(WEB[0], "INSERT INTO %s (token) VALUES ('%s') RETURNING extract(epoch FROM "
                                          "clock_timestamp())" % (TABLE, token), check=False, timeout=10)
            except subprocess.TimeoutExpired:
                continue
            if res.returncode == 0 and res.stdout.strip():
                committed.append((token, float(res.stdout.strip())))
            time.sleep(0.2)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    time.sleep(25)
    data_dirs = {h: sql(h, "SHOW data_directory") for h in POSTGRES}
    # every database host lost at once: Patroni and PostgreSQL killed (SIGKILL), their data removed
    killers = [subprocess.Popen(["ssh", "-F", SSH_CONFIG, h,
                                 "sudo bash -c %s" % shlex.quote(
                                     "systemctl kill -s SIGKILL patroni; systemctl stop patroni; "
                                     "pkill -9 -u postgres -x postgres; rm -rf %s" % data_dirs[h])])
               for h in POSTGRES]
    for k in killers:
        k.wait(timeout=60)
    lost_at = time.time()
    time.sleep(3)
    stop.set()
    thread.join(30)
    last_committed = max(at for _, at in committed)
    assert wait_for(lambda: not any(rest_up(h) for h in POSTGRES), 30, interval=1)

    proc = run_playbook("restore.yml", "-e", "backup_restore_confirm=true")
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
    restored = rows(TAG + "-L")
    kept = [(t, at) for t, at in committed if t in restored]
    missing = [(t, at) for t, at in committed if t not in restored]
    # every committed row up to the end of the archive: what is missing is a tail, never a hole
    assert kept and all(at >= max(a for _, a in kept) for _, at in missing), (kept[-3:], missing[:3])
    rpo = round(last_committed - max(at for _, at in kept), 1) if missing else 0.0
    took = re.search(r"Took ([0-9.]+) s from the start to every web node serving again, of which the PostgreSQL "
                     r"cluster ([0-9.]+) s \(its leader led after ([0-9.]+) s\)", one_line(proc.stdout))
    FIGURES["latest_after_loss"] = {
        "archive_timeout_s": TEST_ARCHIVE_TIMEOUT, "committed": len(committed), "restored": len(kept),
        "lost_rows": len(missing), "lost_seconds_rpo": rpo, "playbook_s": proc.took,
        "restore_s": took and float(took.group(1)), "postgres_s": took and float(took.group(2)),
        "leader_s": took and float(took.group(3)), "loss_to_restore_start_s": round(time.time() - lost_at - proc.took, 1)}
    save_figures()
    assert rpo <= TEST_ARCHIVE_TIMEOUT + 5, FIGURES["latest_after_loss"]
    code, body = status_php()
    assert code == 200 and body["installed"] is True and body["maintenance"] is False, body
    assert wait_for(replicas_stream, 180, interval=2), cluster()
    write_after_restore_reaches_the_replicas("%s-D-after" % TAG)
    # the inventory's archive_timeout again (Patroni's settings in etcd were rebuilt from it)
    assert sql(leader(), "SHOW archive_timeout") != "%ds" % TEST_ARCHIVE_TIMEOUT


def rest_up(host):
    return rest(host, "/patroni", timeout=2)[0] is not None
