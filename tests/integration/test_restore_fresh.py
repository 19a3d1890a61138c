"""Restore from scratch (issue #10): a backup set put back onto newly created, blank hosts, checked on the servers.

Needs the cluster deployed (`python -m lab deploy`); takes about as long as a deploy (it makes one). Steps:

1. a probe row and a probe file written through HAProxy, then playbooks/backup.yml with the set kept on the
   controller (`backup_host=localhost`, a temporary folder): `python -m lab up --fresh` recreates every container of
   the lab, the mirror host too, so a set kept on a lab host would not survive;
2. `python -m lab up --fresh` (new, blank containers), `python -m lab deploy` (site.yml: a new, empty Nextcloud with
   its own instanceid, without the probe row);
3. playbooks/restore.yml -e backup_restore_confirm=true from the controller's set;
4. checks: occ maintenance:data-fingerprint ran and every node has the new fingerprint; the instance is the backed-up
   one (instanceid); the row and the file written before the backup are served through HAProxy; every PostgreSQL
   replica Patroni reports has the restored row (streamed from the leader the restore wrote to); every node out of
   maintenance, the
   background job timer active; a second site.yml run (no restore) changes nothing.

The steps' output is written to lab/.state/<LAB_NAME>/restore-fresh-<step>.log while they run.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import Inventory, require
from ha_helpers import recap_changed
from lab_paths import INVENTORY, LAB_NAME, LAB_VARS, PLAYBOOK, ROOT, STATE
from pg_helpers import healthy, leader, sql
from test_backup import fingerprints, lb_get, read, statuses, sudo
from test_scale import changed_tasks

pytestmark = pytest.mark.disruptive

DOMAIN = LAB_VARS.get("nextcloud_ha_domain", "cloud.example.org")
KEY = "restore-fresh-%d" % os.getpid()
SECRETS = [LAB_VARS[k] for k in ("nextcloud_ha_db_password", "nextcloud_ha_admin_password",
                                 "nextcloud_ha_redis_password") if LAB_VARS.get(k)]
CLUSTER_GROUPS = ("haproxy", "webservers", "redis", "etcd", "postgres_primary", "postgres_standby")
OCC = "cd /var/www/nextcloud && sudo -u www-data php occ --no-warnings "


def inv():
    return Inventory(os.path.join(INVENTORY, "hosts.yml"))


def web():
    return inv().group("webservers")


def logged(step, cmd, env, timeout):
    """Run cmd with its output in lab/.state/<lab>/restore-fresh-<step>.log (followable); returns (rc, output)."""
    path = os.path.join(STATE, "restore-fresh-%s.log" % step)
    with open(path, "w") as log:
        # stdin: not the test's (ansible-playbook refuses a non-blocking stdin, which `lab up`'s ssh can leave behind)
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout)
    with open(path) as log:
        out = log.read()
    for secret in SECRETS:
        assert secret not in out, "a secret appears in the output of %s" % step
    return proc.returncode, out


def ansible_env():
    return dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
                ANSIBLE_NOCOLOR="1")


def playbook(step, path, *extra, timeout=3600):
    return logged(step, [PLAYBOOK, "-i", INVENTORY, os.path.join(ROOT, path)] + list(extra), ansible_env(), timeout)


def lab(step, *args, timeout=3600):
    env = dict(os.environ, LAB_NAME=LAB_NAME, LAB_NEXTCLOUD="standin")
    return logged(step, [os.path.join(ROOT, ".venv", "bin", "python"), "-m", "lab"] + list(args), env, timeout)






def occ_get(node, key):
    return sudo(node, OCC + "config:system:get %s" % key).stdout.strip()




def container_ids():
    ids = {}
    for host in inv().hosts:
        r = subprocess.run(["podman", "inspect", "--type", "container", "--format", "{{.Id}}",
                            "%s-%s" % (LAB_NAME, host)], capture_output=True, text=True)
        ids[host] = r.stdout.strip()
    return ids


def task_results(output, name_start):
    """The result lines (ok:/changed:/failed:/skipping:) of the tasks whose name starts with name_start."""
    out, inside = [], False
    for line in output.splitlines():
        if line.startswith("TASK ["):
            name = re.match(r"TASK \[(.*)\]", line).group(1).split(" : ", 1)[-1]
            inside = name.startswith(name_start)
        elif inside and re.match(r"^(ok|changed|failed|fatal|skipping):", line):
            out.append(line)
    return out


@pytest.fixture(scope="module")
def restored():
    master = web()[0]
    r = sudo(master, "curl -fsS -m 10 http://127.0.0.1/status.php")
    require(r.returncode == 0 and '"installed":true' in r.stdout.replace(" ", ""),
            "needs the cluster deployed (`LAB_NAME=%s python -m lab deploy`): %s"
            % (LAB_NAME, (r.stdout or r.stderr).strip()))
    missing = [g for g in CLUSTER_GROUPS if not inv().group(g)]
    require(not missing, "the lab's inventory has no hosts in %s" % ", ".join(missing))
    sets_dir = tempfile.mkdtemp(prefix="restore-fresh-sets-")  # mode 0700; the set holds config.php's secrets
    # `lab up --fresh` recreates the pgBackRest host too: the set carries a dump and is restored from it (issue #25)
    on_controller = ["-e", "backup_host=localhost", "-e", "backup_dir=%s" % sets_dir, "-e", "backup_db_dump=true",
                     "-e", "backup_restore_from_dump=true"]
    try:
        code, body = lb_get("/probe.php?checks=db&write=%s" % KEY)
        assert code == 200 and body["write"]["ok"], body
        writer = body["hostname"]
        assert read(KEY, writer) == {"row": True, "file": True}
        old = {"instanceid": occ_get(master, "instanceid"), "ids": container_ids()}

        rc, out = playbook("backup", "playbooks/backup.yml", *on_controller)
        assert rc == 0, out[-6000:]
        sets = sorted(os.listdir(sets_dir))
        assert len(sets) == 1, sets

        rc, out = lab("up", "up", "--fresh", timeout=900)
        assert rc == 0, out[-4000:]
        blank = {"ids": container_ids(), "status": sudo(master, "test -e /var/www/nextcloud/occ; echo $?").stdout}

        t0 = time.time()
        rc, out = lab("deploy", "deploy")
        assert rc == 0, out[-6000:]
        deployed = {"instanceid": occ_get(master, "instanceid"), "read": read(KEY, writer),
                    "fingerprints": fingerprints(), "seconds": time.time() - t0}

        rc, out = playbook("restore", "playbooks/restore.yml", *on_controller, "-e", "backup_restore_confirm=true")
        assert rc == 0, out[-6000:]
        yield {"writer": writer, "set": sets[0], "old": old, "blank": blank, "deployed": deployed,
               "restore_output": out}
    finally:
        shutil.rmtree(sets_dir, ignore_errors=True)


def test_every_host_was_recreated_blank_and_deployed_empty(restored):
    old, blank, deployed = restored["old"], restored["blank"], restored["deployed"]
    for host, cid in old["ids"].items():
        assert cid and blank["ids"][host] and blank["ids"][host] != cid, (host, cid, blank["ids"].get(host))
    # right after `up --fresh` the master had no Nextcloud at all
    assert blank["status"].strip() == "1", blank
    # site.yml made a new instance: another instanceid, no probe row, no probe file
    assert deployed["instanceid"] and deployed["instanceid"] != old["instanceid"], (deployed, old)
    assert deployed["read"] == {"row": False, "file": False}, deployed


def test_restore_ran_the_data_fingerprint(restored):
    lines = task_results(restored["restore_output"], "Tell the clients the data was restored")
    assert lines and all(line.startswith("changed:") for line in lines), lines
    after = fingerprints()
    values = set(after.values())
    assert len(values) == 1 and "" not in values, after
    assert values.isdisjoint(restored["deployed"]["fingerprints"].values()), (after, restored["deployed"])


def test_the_instance_is_the_backed_up_one(restored):
    for node in web():
        assert occ_get(node, "instanceid") == restored["old"]["instanceid"], node


def test_row_and_file_written_before_the_backup_are_served(restored):
    assert read(KEY, restored["writer"]) == {"row": True, "file": True}


def test_the_replicas_stream_the_restored_database(restored):
    """The restore wrote into the leader Patroni names; every other member is a replica that streams from it and
    holds the restored row."""
    members = healthy()
    lead = leader()
    replicas = sorted(n for n in members if n != lead)
    assert replicas, members
    query = "SELECT pg_is_in_recovery(), count(*) FROM oc_standin_probe WHERE probe_key = '%s'" % KEY
    for replica in replicas:
        out = ""
        for _ in range(30):
            out = sql(replica, query, db="nextcloud")
            if out == "t|1":
                break
            time.sleep(2)
        assert out == "t|1", (replica, out)
    assert sql(lead, query, db="nextcloud") == "f|1"
    assert int(sql(lead, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")) == len(replicas)


def test_every_node_serves_again(restored):
    for node, st in statuses().items():
        assert st.get("installed") is True and st.get("maintenance") is False, (node, st)
    timers = [sudo(n, "systemctl is-active nextcloud-cron.timer").stdout.strip() for n in web()]
    assert timers.count("active") == 1, timers
    for host in web() + inv().group("postgres_primary") + inv().group("postgres_standby"):
        r = sudo(host, "ls -A /var/tmp/nextcloud-ha-backup 2>/dev/null || true")
        assert r.stdout.strip() == "", (host, r.stdout)


def test_a_second_site_run_changes_nothing(restored):
    rc, out = playbook("site2", "site.yml")
    assert rc == 0, out[-6000:]
    recap = [line for line in out.splitlines() if " : ok=" in line]
    print("\n".join(["second site.yml run after the restore:"] + recap))
    changed = recap_changed(out)
    assert changed and not any(changed.values()), "\n".join(
        recap + changed_tasks(out))

