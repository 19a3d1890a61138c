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

from conftest import ROOT, STATE, require, ssh
from lab_paths import INVENTORY, LAB_VARS
from test_sync import recap
from test_backup import config_problems

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


def assert_post_upgrade_steps_done(proc, node, ran):
    """The new release's optional indices and mimetype migrations (the stand-in's 33 brings a new index, every new
    major new mimetype migrations) were handled by upgrade.yml: the steps ran and changed something, and the setup
    checks report nothing pending (issue #20)."""
    for step in ran:
        if step.startswith("db:"):
            done = re.search(r"^changed: \[%s\] => \(item=occ %s\)" % (re.escape(node), re.escape(step)), proc.stdout, re.M)
        else:
            done = re.search(r"\(occ %s\)\] \*+\n(?:(?!TASK \[).*\n)*?changed: \[%s\]" % (re.escape(step), re.escape(node)),
                             proc.stdout)
        assert done, (step, proc.stdout[-4000:])
    r = sudo(node, "cd %s && sudo -u www-data php occ --no-warnings setupchecks --output=json" % WEBROOT)
    assert r.returncode in (0, 1), (node, r.stdout, r.stderr)
    pending = {cls: check["description"]
               for checks in json.loads(r.stdout.strip().splitlines()[-1]).values() for cls, check in checks.items()
               if check["severity"] != "success" and re.search(r"DatabaseHasMissing|MimeTypeMigration", cls)}
    assert pending == {}, (node, pending)


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
    require(all('"versionstring":"32.0.2"' in v.replace(" ", "") and '"installed":true' in v.replace(" ", "")
                for v in found.values()),
            "needs the cluster deployed at 32.0.2 (`python -m lab up --fresh && python -m lab deploy`): %s" % found)
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


def psql(host, sql, timeout=120):
    return sudo(host, "cd / && sudo -u postgres psql -XAtq -v ON_ERROR_STOP=1 -d nextcloud -c %s" % shlex.quote(sql),
                timeout=timeout)


# A database error in the middle of `occ upgrade`, after the schema migration has been recorded: the stand-in's updater
# writes core/lastupdatedat = '0' after it has inserted the new version's migration row and bumped the apps'
# installed_version (autocommit), so the database is left half upgraded, as a real failed migration leaves it.
BREAK_UPGRADE = """
CREATE FUNCTION upgrade_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.appid = 'core' AND NEW.configkey = 'lastupdatedat' AND NEW.configvalue = '0' THEN
    RAISE EXCEPTION 'upgrade-test: write refused by a test trigger';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER upgrade_test_refuse BEFORE INSERT OR UPDATE ON oc_appconfig
  FOR EACH ROW EXECUTE FUNCTION upgrade_test_refuse();
"""
UNBREAK_UPGRADE = ("DROP TRIGGER IF EXISTS upgrade_test_refuse ON oc_appconfig; "
                   "DROP FUNCTION IF EXISTS upgrade_test_refuse()")


def test_failed_occ_upgrade_points_every_node_back_and_says_how_to_restore(at_32, inventory):
    """`occ upgrade` fails half-way (a database error): every node serves 32.0.2 from its previous tree again, in
    maintenance mode with the timer stopped, and the message's own restore command and steps bring the cluster back."""
    nodes = at_32
    key = KEY + "-rollback"
    code, body = lb_get(inventory, "/probe.php?checks=db&write=%s" % key)
    assert code == 200, body
    db = primary(inventory)
    before = {n: sudo(n, "readlink %s" % WEBROOT).stdout.strip() for n in nodes}
    timers = [n for n in nodes if sudo(n, "systemctl is-enabled nextcloud-cron.timer").stdout.strip() == "enabled"]
    assert timers, "no web node runs the background job timer"
    assert all(sudo(n, "systemctl is-active nextcloud-cron.timer").stdout.strip() == "active" for n in timers)
    r = psql(db, BREAK_UPGRADE)
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        proc = upgrade("33.0.0", timeout=1200)
        out = re.sub(r"\s+", " ", proc.stdout)
        assert proc.returncode != 0, proc.stdout[-6000:]
        assert_no_secret(proc)
        assert "UPGRADE FAILED at 'Run the upgrade once for the cluster (occ upgrade)'" in out, proc.stdout[-6000:]
        assert "upgrade-test: write refused by a test trigger" in out, proc.stdout[-6000:]
        assert "Every web node points at its previous tree again" in out
        assert "maintenance mode stays ON" in out

        # every node is back on its previous tree and serves 32.0.2, in maintenance mode, the timer stopped
        for node in nodes:
            assert sudo(node, "readlink %s" % WEBROOT).stdout.strip() == before[node], node
            st = status(node)
            assert st["versionstring"] == "32.0.2" and st["installed"] is True, (node, st)
            assert st["maintenance"] is True, (node, st)
            assert sudo(node, "systemctl is-active nextcloud-cron.timer").stdout.strip() != "active", node
        # the database really is half upgraded: the new version's migration row was written before the failure
        r = psql(db, "SELECT count(*) FROM oc_migrations WHERE app = 'core' AND version LIKE '33.%'")
        assert r.stdout.strip() not in ("", "0"), r.stdout + r.stderr

        # the message names the dump on the primary and the command that restores it
        m = re.search(r"restore the database from the dump taken before it, on (\S+): (sudo -u postgres pg_restore "
                      r"--clean --if-exists --single-transaction --dbname=nextcloud (%s/nextcloud-32\.0\.2-to-33\.0\.0-"
                      r"\d{8}T\d{6}Z\.dump))" % re.escape(BACKUP_DIR), out)
        assert m, proc.stdout[-6000:]
        assert m.group(1) == db, (m.group(1), db)
        assert sudo(db, "test -s %s" % m.group(3)).returncode == 0, m.group(3)
        assert "maintenance:mode --off" in out and "nextcloud-cron.timer on %s" % ", ".join(timers) in out, out[-3000:]

        # follow the message: restore the dump, maintenance off on every node, the timer started again
        r = sudo(db, "cd / && " + m.group(2), timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        psql(db, UNBREAK_UPGRADE)  # the dump was taken with the trigger in place, the restore brought it back
        r = psql(db, "SELECT count(*) FROM oc_migrations WHERE app = 'core' AND version LIKE '33.%'")
        assert r.stdout.strip() == "0", r.stdout + r.stderr
        for node in nodes:
            r = sudo(node, "cd %s && sudo -u www-data php %s/occ --no-warnings maintenance:mode --off"
                     % (WEBROOT, WEBROOT))
            assert r.returncode == 0, (node, r.stdout, r.stderr)
        for node in timers:
            assert sudo(node, "systemctl start nextcloud-cron.timer").returncode == 0, node
    finally:
        psql(db, UNBREAK_UPGRADE)

    for node in nodes:
        st = status(node)
        assert st["versionstring"] == "32.0.2" and st["maintenance"] is False, (node, st)
        assert st["needsDbUpgrade"] is False, (node, st)
    code, body = lb_get(inventory, "/probe.php?checks=db,redis,datadir&read=%s" % key)
    assert code == 200 and json.loads(body)["read"]["found_row"] is True, body


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
    assert_post_upgrade_steps_done(proc, nodes[0], ["db:add-missing-indices", "maintenance:repair --include-expensive"])
    # config.php the same on every node and as the inventory says (occ wrote the master's node values into it)
    assert config_problems() == []

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
    assert_post_upgrade_steps_done(proc, inventory.group("webservers")[0], ["maintenance:repair --include-expensive"])
    for node in inventory.group("webservers"):
        st = status(node)
        assert st["versionstring"] == "34.0.0" and st["installed"] is True, (node, st)
        assert st["maintenance"] is False and st["needsDbUpgrade"] is False, (node, st)
    code, body = lb_get(inventory, "/probe.php?checks=db&read=%s" % key)
    assert code == 200 and json.loads(body)["read"]["found_row"] is True, body
