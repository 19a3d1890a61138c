"""Backup and restore (issue #10): playbooks/backup.yml and restore.yml on the lab's cluster, checked on the servers.

Since issue #25 the database is backed up with pgBackRest (tests/integration/test_pitr.py); this file keeps testing
the opt-in dump (backup_db_dump=true, restored with backup_restore_from_dump=true) and everything around it.

Needs the cluster deployed (`python -m lab deploy`). The lab's mirror host plays the backup server. A row and a file
written through HAProxy before the backup are deleted, then served again after the restore; a row written after the
backup is gone after it (the restore really went back to the set); without backup_restore_confirm=true the restore
is refused before anything changes. After the backup (occ maintenance:mode writes Nextcloud's merged configuration,
node.config.php's values included, into config.php) and after the restore (the set's config.php holds the values it
was taken with: a log level set by hand before the backup), config.php is the same on every web node and holds the
inventory's values, so that the next site.yml finds nothing to change. The set: a pg_dump taken on the replica Patroni
reports (never the inventory groups), the config and the data directories, mode 0700/0600, sha256 as in its
manifest; the restore writes into the leader Patroni names and the replica holds the restored rows; retention keeps
the newest sets; a set that does not exist is refused before anything changes. Last, with the leadership moved to the
other PostgreSQL host (a Patroni switchover), a backup dumps on the new replica, the former leader (issue #21).
"""
import json
import os
import re
import shlex
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import yaml

from lab_paths import INVENTORY, LAB_VARS, PLAYBOOK, ROOT, SSH_CONFIG
from conftest import Inventory, require
from pg_helpers import POSTGRES, healthy, leader, members, switchover

pytestmark = pytest.mark.disruptive

BACKUP_HOST = "mirror"
BACKUP_DIR = "/var/backups/nextcloud-ha/test-sets-%d" % os.getpid()
DOMAIN = LAB_VARS.get("nextcloud_ha_domain", "cloud.example.org")
KEY = "backup-test-%d" % os.getpid()
LATE_KEY = KEY + "-late"
SECRETS = [LAB_VARS[k] for k in ("nextcloud_ha_db_password", "nextcloud_ha_admin_password",
                                 "nextcloud_ha_redis_password") if LAB_VARS.get(k)]
TLS = ssl.create_default_context()
TLS.check_hostname = False
TLS.verify_mode = ssl.CERT_NONE
INV = Inventory(os.path.join(INVENTORY, "hosts.yml"))
WEB = INV.group("webservers")


def _storage_backend():
    with open(os.path.join(INVENTORY, "hosts.yml")) as f:
        inventory_vars = (yaml.safe_load(f)["all"].get("vars") or {})
    return inventory_vars.get("nextcloud_storage_backend", LAB_VARS.get("nextcloud_storage_backend", "local"))


BACKEND = _storage_backend()
# The web nodes whose data directory the set archives: each node's own (local), the master's view of the shared
# volume (glusterfs, nfs), none (s3): the backup role's _backup_data_nodes.
DATA_NODES = [] if BACKEND == "s3" else (WEB if BACKEND == "local" else WEB[:1])


def sudo(host, command, timeout=120):
    return subprocess.run(["ssh", "-F", SSH_CONFIG, host, "sudo bash -c %s" % shlex.quote(command)],
                          capture_output=True, text=True, timeout=timeout)


def playbook(name, *extra, timeout=1200):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([PLAYBOOK, "-i", INVENTORY, os.path.join(ROOT, "playbooks", name),
                           "-e", "backup_host=%s" % BACKUP_HOST, "-e", "backup_dir=%s" % BACKUP_DIR,
                           # the dump path (issue #10), kept opt-in beside pgBackRest (issue #25: test_pitr.py)
                           "-e", "backup_db_dump=true", "-e", "backup_restore_from_dump=true"] + list(extra),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    for secret in SECRETS:
        assert secret not in proc.stdout and secret not in proc.stderr, "a secret appears in the output"
    return proc


def lb_get(path):
    lb = INV.address(INV.group("haproxy")[0])
    req = urllib.request.Request("https://%s%s" % (lb, path), headers={"Host": DOMAIN})
    try:
        with urllib.request.urlopen(req, timeout=20, context=TLS) as res:
            return res.status, json.loads(res.read().decode())
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def read(key, writer=None):
    """The probe's read of `key`: the row through HAProxy, the file on the node that wrote it (local storage)."""
    code, body = lb_get("/probe.php?checks=none&read=%s" % key)
    assert code == 200, body
    result = {"row": body["read"]["found_row"]}
    if writer:
        r = sudo(writer, "curl -sS -m 10 -H 'Host: %s' 'http://127.0.0.1/probe.php?checks=none&read=%s'"
                 % (DOMAIN, key))
        result["file"] = json.loads(r.stdout)["read"]["found_file"]
    return result


def write(key):
    code, body = lb_get("/probe.php?checks=db&write=%s" % key)
    assert code == 200 and body["write"]["ok"], body
    return body["hostname"]


def primary():
    """The leader as Patroni says it (the one member whose GET /primary answers 200)."""
    return leader()


def running_replicas():
    """The members Patroni reports as running replicas (GET /cluster)."""
    return sorted(name for name, m in members().items()
                  if m.get("role") in ("replica", "sync_standby", "quorum_standby")
                  and m.get("state") in ("running", "streaming"))


def sets():
    r = sudo(BACKUP_HOST, "ls -1 %s 2>/dev/null || true" % BACKUP_DIR)
    return sorted(r.stdout.split())


def statuses():
    out = {}
    for node in WEB:
        r = sudo(node, "curl -sS -m 10 http://127.0.0.1/status.php")
        out[node] = json.loads(r.stdout)
    return out


# config.php keys the inventory sets that the test checks by value (the lab inventory's or the role's defaults)
EXPECTED = {
    "trusted_domains": [DOMAIN] + [d for d in LAB_VARS.get("nextcloud_ha_trusted_domains_extra", []) if d != DOMAIN],
    "loglevel": int(LAB_VARS.get("nextcloud_loglevel", 2)),
}
HAND_LOGLEVEL = 0 if EXPECTED["loglevel"] != 0 else 1


def config_php(node):
    """config.php of a node, as Nextcloud reads it (config.php only, not node.config.php). Holds secrets: never
    put it whole into an assertion message."""
    r = sudo(node, "php -r '$CONFIG = []; include \"/var/www/nextcloud/config/config.php\"; echo json_encode($CONFIG);'")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def config_problems():
    """Keys (names and the checked values only) in which the web nodes' config.php differ from each other or from
    the inventory."""
    configs = {node: config_php(node) for node in WEB}
    first = configs[WEB[0]]
    problems = []
    # the file as nc_sync compares it (size, mtime, mode, owner) and its bytes: else the next site.yml syncs it
    files = {node: sudo(node, "f=/var/www/nextcloud/config/config.php; stat -c '%s %Y %a %u %g' $f; "
                              "sha256sum < $f").stdout.split() for node in WEB}
    for node in WEB[1:]:
        if files[node] != files[WEB[0]]:
            problems.append("%s's config.php file is not %s's (size mtime mode uid gid sha256: %s / %s)"
                            % (node, WEB[0], " ".join(files[node][:5]), " ".join(files[WEB[0]][:5])))
    for node, conf in configs.items():
        differing = sorted(k for k in set(first) | set(conf) if first.get(k) != conf.get(k))
        if differing:
            problems.append("%s differs from %s in %s" % (node, WEB[0], ", ".join(differing)))
        for key, want in EXPECTED.items():
            if conf.get(key) != want:
                problems.append("%s: %s is %r, the inventory says %r" % (node, key, conf.get(key), want))
    return problems


def fingerprints():
    return {node: sudo(node, "cd /var/www/nextcloud && sudo -u www-data php occ --no-warnings "
                             "config:system:get data-fingerprint").stdout.strip() for node in WEB}


@pytest.fixture(scope="module")
def backed_up():
    r = sudo(WEB[0], "curl -fsS -m 10 http://127.0.0.1/status.php")
    require(r.returncode == 0 and '"installed":true' in r.stdout.replace(" ", ""),
            "needs the cluster deployed (`python -m lab deploy`): %s" % (r.stdout or r.stderr))
    healthy()
    replicas = running_replicas()
    writer = write(KEY)
    assert read(KEY, writer) == {"row": True, "file": True}
    # a value the inventory does not have, set by hand on every node: the set keeps it, the restore must not
    for node in WEB:
        r = sudo(node, "cd /var/www/nextcloud && sudo -u www-data php occ --no-warnings config:system:set loglevel "
                       "--type=integer --value=%d" % HAND_LOGLEVEL)
        assert r.returncode == 0, r.stdout + r.stderr
    proc = playbook("backup.yml", "-e", "backup_retention=2")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    found = sets()
    assert len(found) == 1, found
    yield {"writer": writer, "set": found[0], "output": proc.stdout, "replicas": replicas, "leader": leader()}
    sudo(BACKUP_HOST, "rm -rf %s" % BACKUP_DIR)


def test_set_holds_dump_from_a_replica_config_and_data(backed_up):
    path = "%s/%s" % (BACKUP_DIR, backed_up["set"])
    manifest = json.loads(sudo(BACKUP_HOST, "cat %s/manifest.json" % path).stdout)
    names = sorted(f["name"] for f in manifest["files"])
    assert names == sorted(["database.dump", "config.tar.gz"] + ["data-%s.tar.gz" % w for w in DATA_NODES]), names
    # dumped on a replica Patroni reported as running (the leader only when there is none)
    assert manifest["db_host"] in (backed_up["replicas"] or [backed_up["leader"]]), (manifest, backed_up["replicas"])
    assert manifest["nextcloud_version"] == statuses()[WEB[0]]["versionstring"]
    for f in manifest["files"]:
        r = sudo(BACKUP_HOST, "sha256sum %s/%s && stat -c '%%a' %s/%s" % (path, f["name"], path, f["name"]))
        assert r.stdout.split()[0] == f["sha256"] and r.stdout.split()[-1] == "600", (f, r.stdout)
    assert sudo(BACKUP_HOST, "stat -c '%%a' %s %s" % (BACKUP_DIR, path)).stdout.split() == ["700", "700"]
    # a custom-format dump (PGDMP magic) and config.php in the config archive
    assert sudo(BACKUP_HOST, "head -c 5 %s/database.dump" % path).stdout == "PGDMP"
    assert "./config.php" in sudo(BACKUP_HOST, "tar -tzf %s/config.tar.gz" % path).stdout.split()
    if DATA_NODES:
        data_node = backed_up["writer"] if BACKEND == "local" else DATA_NODES[0]
        files = sudo(BACKUP_HOST, "tar -tzf %s/data-%s.tar.gz" % (path, data_node)).stdout.split()
        assert "./probe/%s" % KEY in files
    # the set's config.php is the one taken (with the log level set by hand)
    r = sudo(BACKUP_HOST, "tar -xzOf %s/config.tar.gz ./config.php | grep -c \"'loglevel' => %d,\"" % (path, HAND_LOGLEVEL))
    assert r.stdout.strip() == "1", r.stdout + r.stderr


def test_backup_leaves_config_php_as_the_inventory_says(backed_up):
    assert config_problems() == []


def test_backup_leaves_the_cluster_serving_and_no_working_copies(backed_up):
    for node, st in statuses().items():
        assert st["installed"] is True and st["maintenance"] is False, (node, st)
    for host in WEB + POSTGRES:
        r = sudo(host, "ls -A /var/tmp/nextcloud-ha-backup 2>/dev/null || true")
        assert r.stdout.strip() == "", (host, r.stdout)


def test_restore_without_confirmation_is_refused(backed_up):
    before = fingerprints()
    proc = playbook("restore.yml")
    out = re.sub(r"\s+", " ", proc.stdout)
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "REFUSED: this restore would restore set %s's database.dump" % backed_up["set"] in out.replace("''", "'"), \
        proc.stdout[-3000:]
    assert "-e backup_restore_confirm=true" in out and "Nothing was changed" in out, proc.stdout[-3000:]
    assert fingerprints() == before
    for node, st in statuses().items():
        assert st["maintenance"] is False, (node, st)
    assert read(KEY, backed_up["writer"]) == {"row": True, "file": True}


def test_restore_brings_back_the_row_and_the_file(backed_up):
    writer = backed_up["writer"]
    late_writer = write(LATE_KEY)
    db = primary()
    r = sudo(db, "cd / && sudo -u postgres psql -XAtq -d nextcloud -c \"DELETE FROM oc_standin_probe WHERE "
                 "probe_key = '%s'\"" % KEY)
    assert r.returncode == 0, r.stderr
    r = sudo(writer, "d=$(php -r 'include \"/var/www/nextcloud/config/config.php\"; echo $CONFIG[\"datadirectory\"];')"
                     " && rm -f \"$d/probe/%s\"" % KEY)
    assert r.returncode == 0, r.stderr
    assert read(KEY, writer) == {"row": False, "file": False}
    before = fingerprints()

    proc = playbook("restore.yml", "-e", "backup_restore_confirm=true")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]

    assert read(KEY, writer) == {"row": True, "file": True}
    # the restore went back to the set: what was written after the backup is gone
    assert read(LATE_KEY, late_writer) == {"row": False, "file": False}
    after = fingerprints()
    assert len(set(after.values())) == 1 and list(after.values())[0] not in ("", list(before.values())[0]), after
    for node, st in statuses().items():
        assert st["installed"] is True and st["maintenance"] is False, (node, st)
    assert sudo(WEB[0], "systemctl is-active nextcloud-cron.timer").stdout.strip() == "active"
    # the restored config.php (log level set by hand, the master's node values merged in) was rewritten with the
    # inventory's cluster settings on every node
    assert config_problems() == []
    # pg_restore wrote into the leader; every replica received the restored rows by streaming
    query = "cd / && sudo -u postgres psql -XAtq -d nextcloud -c \"SELECT pg_is_in_recovery(), count(*) FROM " \
            "oc_standin_probe WHERE probe_key IN ('%s', '%s')\"" % (KEY, LATE_KEY)
    for replica in running_replicas():
        out = ""
        for _ in range(30):
            out = sudo(replica, query).stdout.strip()
            if out == "t|1":
                break
            time.sleep(1)
        assert out == "t|1", (replica, out)


def test_a_set_that_does_not_exist_is_refused(backed_up):
    proc = playbook("restore.yml", "-e", "backup_restore_set=20000101T000000Z", "-e", "backup_restore_confirm=true")
    assert proc.returncode != 0
    assert "there is no backup set" in proc.stdout and "20000101T000000Z" in proc.stdout, proc.stdout[-3000:]
    assert "Nothing was changed" in re.sub(r"\s+", " ", proc.stdout), proc.stdout[-3000:]
    for node, st in statuses().items():
        assert st["maintenance"] is False, (node, st)


def test_retention_keeps_the_newest_sets(backed_up):
    proc = playbook("backup.yml", "-e", "backup_retention=1", "-e", "backup_mode=online")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    found = sets()
    assert len(found) == 1 and found[0] > backed_up["set"], found


def test_backup_after_a_switchover_dumps_on_the_former_leader(backed_up):
    """The dump host comes from Patroni at every run: with the leadership moved, the former leader is the replica."""
    first = leader()
    other = [h for h in POSTGRES if h != first]
    if not other:
        pytest.skip("needs two PostgreSQL hosts")
    switchover(other[0])
    try:
        healthy()
        proc = playbook("backup.yml", "-e", "backup_retention=1", "-e", "backup_mode=online")
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
        found = sets()
        assert len(found) == 1, found
        manifest = json.loads(sudo(BACKUP_HOST, "cat %s/%s/manifest.json" % (BACKUP_DIR, found[0])).stdout)
        assert manifest["db_host"] == first, manifest
        assert sudo(BACKUP_HOST, "head -c 5 %s/%s/database.dump" % (BACKUP_DIR, found[0])).stdout == "PGDMP"
    finally:
        switchover(first)
        healthy()

