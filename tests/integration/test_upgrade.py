"""Rolling upgrade (issue #10): playbooks/upgrade.yml on the lab's deployed cluster, real state checked on the servers.

Needs the web tier deployed at the stand-in's 32.0.2 (`python -m lab deploy`); the lab mirror also serves the signed
stand-in releases 33.0.0 and 34.0.0. Order (file order; every test is disruptive, so they run last, in this order):
check mode and a refused major-version jump change nothing, then 32.0.2 -> 33.0.0 (status.php of every node, the
probe through HAProxy, a row and a file written before, the dump on the primary), a second run that changes
nothing, a refused downgrade, the web playbook accepting the cluster once nextcloud_version says 33.0.0, and
33.0.0 -> 34.0.0. The cluster is left WORKING AT 34.0.0 while the lab inventory still says 32.0.2: run site.yml
with -e nextcloud_version=34.0.0 (or recreate the lab) afterwards.
"""
import json
import os
import re
import shlex
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import ROOT, STATE, ssh
from lab_paths import INVENTORY, LAB_VARS
from test_sync import recap

pytestmark = pytest.mark.disruptive

WEBROOT = "/var/www/nextcloud"
BACKUP_DIR = "/var/backups/nextcloud-ha"
DOMAIN = LAB_VARS.get("nextcloud_ha_domain", "cloud.example.org")
SECRETS = [LAB_VARS[k] for k in ("nextcloud_ha_db_password", "nextcloud_ha_admin_password",
                                 "nextcloud_ha_redis_password") if LAB_VARS.get(k)]
# Delegated tasks: the lab's known_hosts lists every host by name and address (see test_sync.py).
SSH_ARGS = ["-e", "ansible_ssh_common_args='-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes'"
            % os.path.join(STATE, "known_hosts")]
LAB_TLS = ssl.create_default_context()
LAB_TLS.check_hostname = False
LAB_TLS.verify_mode = ssl.CERT_NONE
KEY = "upgrade-test-%d" % os.getpid()


def playbook(name, *extra, timeout=900):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_NOCOLOR="1")
    return subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", INVENTORY,
                           os.path.join(ROOT, "playbooks", name)] + SSH_ARGS + list(extra),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def upgrade(version, *extra, timeout=900):
    return playbook("upgrade.yml", "-e", "nextcloud_upgrade_version=%s" % version, *extra, timeout=timeout)


def sudo(host, cmd, timeout=120):
    return ssh(host, "sudo bash -c %s" % shlex.quote(cmd), timeout=timeout)


def status(host):
    r = sudo(host, "curl -sS -m 10 http://127.0.0.1/status.php")
    assert r.returncode == 0, (host, r.stderr)
    return json.loads(r.stdout)


def lb_get(inventory, path):
    lb = inventory.address(inventory.group("haproxy")[0])
    req = urllib.request.Request("https://%s%s" % (lb, path), headers={"Host": DOMAIN})
    try:
        with urllib.request.urlopen(req, timeout=20, context=LAB_TLS) as res:
            return res.status, res.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def primary(inventory):
    for host in inventory.group("postgres_primary") + inventory.group("postgres_standby"):
        r = sudo(host, "cd / && sudo -u postgres psql -XAtqc 'SELECT pg_is_in_recovery()'")
        if r.stdout.strip() == "f":
            return host
    pytest.fail("no PostgreSQL primary answers")


def snapshot(inventory):
    """What an upgrade changes: web root links, release folders, status.php, dumps, maintenance in config.php."""
    state = {}
    for node in inventory.group("webservers"):
        r = sudo(node, "readlink %s; ls -1d /var/www/nextcloud-*; systemctl is-active nextcloud-cron.timer || true"
                 % WEBROOT)
        state[node] = {"fs": r.stdout, "status": status(node)}
    db = primary(inventory)
    state[db] = sudo(db, "ls -1 %s 2>/dev/null || true" % BACKUP_DIR).stdout
    return state


def versions(inventory):
    return {node: status(node)["versionstring"] for node in inventory.group("webservers")}


def assert_no_secret(proc):
    for secret in SECRETS:
        assert secret not in proc.stdout and secret not in proc.stderr, "a secret appears in the output"


@pytest.fixture(scope="module")
def at_32(inventory):
    nodes = inventory.group("webservers")
    assert len(nodes) >= 2, "the lab needs two web nodes"
    found = {}
    for node in nodes:
        r = sudo(node, "curl -sS -m 10 http://127.0.0.1/status.php")
        found[node] = r.stdout.strip()
    if not all('"versionstring":"32.0.2"' in v.replace(" ", "") and '"installed":true' in v.replace(" ", "")
               for v in found.values()):
        pytest.skip("needs the cluster deployed at 32.0.2 (`python -m lab up --fresh && python -m lab deploy`): %s"
                    % found)
    return nodes


def test_check_mode_reports_the_upgrade_and_changes_nothing(at_32, inventory):
    before = snapshot(inventory)
    proc = upgrade("33.0.0", "--check", timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "would upgrade Nextcloud 32.0.2 to 33.0.0" in proc.stdout
    assert snapshot(inventory) == before


def test_skipping_a_major_version_is_refused_before_anything_changes(at_32, inventory):
    before = snapshot(inventory)
    proc = upgrade("34.0.0", timeout=600)
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "cannot be upgraded to 34.0.0 directly" in proc.stdout, proc.stdout[-3000:]
    assert "Nothing was changed" in proc.stdout
    assert snapshot(inventory) == before


def test_upgrade_32_to_33(at_32, inventory):
    nodes = at_32
    code, body = lb_get(inventory, "/probe.php?checks=db&write=%s" % KEY)
    assert code == 200, body
    db = primary(inventory)

    proc = upgrade("33.0.0", timeout=1200)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert_no_secret(proc)
    assert "occ upgrade" in proc.stdout

    for node in nodes:
        st = status(node)
        assert st["versionstring"] == "33.0.0" and st["installed"] is True, (node, st)
        assert st["maintenance"] is False and st["needsDbUpgrade"] is False, (node, st)
        link = sudo(node, "readlink %s" % WEBROOT).stdout.strip()
        assert link == "/var/www/nextcloud-33.0.0", (node, link)
        # the previous tree stays beside the new one, for a rollback
        assert sudo(node, "test -f /var/www/nextcloud-32.0.2/version.php").returncode == 0, node
        # each node kept its own values
        r = sudo(node, "grep -c %s %s/config/node.config.php" % (shlex.quote(inventory.address(node)), WEBROOT))
        assert r.stdout.strip() not in ("", "0"), (node, r.stdout, r.stderr)
    cron = inventory.group("webservers")[0]
    assert sudo(cron, "systemctl is-active nextcloud-cron.timer").stdout.strip() == "active"

    code, body = lb_get(inventory, "/probe.php?checks=db,redis,datadir&read=%s" % KEY)
    assert code == 200, body
    read = json.loads(body)["read"]
    assert read["found_row"] is True, read
    # the file is in the data directory of the node that wrote it (the lab's storage backend may be local)
    writer = read["row"]["hostname"]
    r = sudo(writer, "curl -sS -m 10 'http://127.0.0.1/probe.php?checks=none&read=%s'" % KEY)
    assert json.loads(r.stdout)["read"]["found_file"] is True, (writer, r.stdout)

    dumps = sudo(db, "ls -1 %s/" % BACKUP_DIR).stdout.split()
    ours = [d for d in dumps if re.match(r"^nextcloud-32\.0\.2-to-33\.0\.0-\d{8}T\d{6}Z\.dump$", d)]
    assert ours, dumps
    listing = sudo(db, "cd / && sudo -u postgres pg_restore --list %s/%s | grep -c 'TABLE DATA'"
                   % (BACKUP_DIR, ours[-1]))
    assert listing.returncode == 0 and int(listing.stdout.strip()) > 0, listing.stdout + listing.stderr
    mode = sudo(db, "stat -c '%%U %%a' %s" % BACKUP_DIR).stdout.strip()
    assert mode == "postgres 700", mode


def test_second_run_changes_nothing(inventory):
    if versions(inventory) != {n: "33.0.0" for n in inventory.group("webservers")}:
        pytest.skip("the cluster is not at 33.0.0 (the upgrade test did not pass)")
    proc = upgrade("33.0.0", timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    counts = recap(proc.stdout)
    assert counts and all(c["changed"] == 0 and c["failed"] == 0 for c in counts.values()), counts
    assert "nothing to upgrade" in proc.stdout


def test_downgrade_is_refused_before_anything_changes(inventory):
    if versions(inventory) != {n: "33.0.0" for n in inventory.group("webservers")}:
        pytest.skip("the cluster is not at 33.0.0 (the upgrade test did not pass)")
    before = snapshot(inventory)
    proc = upgrade("32.0.2", timeout=600)
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "Nextcloud does not support downgrades" in proc.stdout, proc.stdout[-3000:]
    assert snapshot(inventory) == before


def test_web_playbook_accepts_the_upgraded_cluster_once_the_inventory_says_so(inventory):
    if versions(inventory) != {n: "33.0.0" for n in inventory.group("webservers")}:
        pytest.skip("the cluster is not at 33.0.0 (the upgrade test did not pass)")
    # with the inventory's old version the role refuses, and points to upgrade.yml
    proc = playbook("web.yml", "--check", timeout=900)
    assert proc.returncode != 0
    assert "upgrade.yml" in proc.stdout, proc.stdout[-3000:]
    # with nextcloud_version set to the new release its preflight and state checks pass (check mode: bounded time on
    # a busy machine; the role's own tests cover what a real run writes)
    proc = playbook("web.yml", "--check", "-e", "nextcloud_version=33.0.0", timeout=1200)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "Check the installed version is the one asked for" in proc.stdout
    assert_no_secret(proc)
    for node in inventory.group("webservers"):
        st = status(node)
        assert st["versionstring"] == "33.0.0" and st["maintenance"] is False, (node, st)
        assert sudo(node, "readlink %s" % WEBROOT).stdout.strip() == "/var/www/nextcloud-33.0.0"


def test_upgrade_33_to_34_leaves_cluster_at_34(inventory):
    if versions(inventory) != {n: "33.0.0" for n in inventory.group("webservers")}:
        pytest.skip("the cluster is not at 33.0.0 (the upgrade test did not pass)")
    key = KEY + "-34"
    code, body = lb_get(inventory, "/probe.php?checks=db&write=%s" % key)
    assert code == 200, body
    proc = upgrade("34.0.0", timeout=1200)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    for node in inventory.group("webservers"):
        st = status(node)
        assert st["versionstring"] == "34.0.0" and st["installed"] is True, (node, st)
        assert st["maintenance"] is False and st["needsDbUpgrade"] is False, (node, st)
    code, body = lb_get(inventory, "/probe.php?checks=db&read=%s" % key)
    assert code == 200 and json.loads(body)["read"]["found_row"] is True, body
