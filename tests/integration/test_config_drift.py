"""Config changes that reach every node (issue #10): playbooks/config.yml and its drift report, on the lab's cluster.

Needs the cluster deployed (`python -m lab deploy`). A key changed by hand on web2 (as an admin-panel change served
by web2 would) is named, with web2, by the check-mode drift report; a secret set there is named without its value;
config.yml puts the master's state back on web2 and the report is then clean; a second run changes nothing; a
setting given to config.yml reaches every web node. The cluster is left as it was (the setting is removed again).
"""
import json
import os
import re
import shlex
import subprocess

import pytest

from conftest import require
from ha_helpers import recap_changed
from lab_paths import INVENTORY, LAB_VARS, PLAYBOOK, ROOT, SSH_CONFIG

pytestmark = pytest.mark.disruptive

MASTER, NODE = "web1", "web2"
CONFIG = "/var/www/nextcloud/config/config.php"
OCC = "cd /var/www/nextcloud && sudo -u www-data php occ --no-warnings --no-interaction "
MAIL_SECRET = "drift-mail-secret-%d" % os.getpid()
SECRETS = [MAIL_SECRET] + [LAB_VARS[k] for k in ("nextcloud_ha_db_password", "nextcloud_ha_admin_password",
                                                 "nextcloud_ha_redis_password") if LAB_VARS.get(k)]


def sudo(host, command, timeout=120):
    return subprocess.run(["ssh", "-F", SSH_CONFIG, host, "sudo bash -c %s" % shlex.quote(command)],
                          capture_output=True, text=True, timeout=timeout)


def config_yml(*extra, timeout=1200):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([PLAYBOOK, "-i", INVENTORY, os.path.join(ROOT, "playbooks", "config.yml")] + list(extra),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    for secret in SECRETS:
        assert secret not in proc.stdout and secret not in proc.stderr, "a secret appears in the output"
    return proc


def settings(host):
    """config.php of the host as PHP reads it."""
    r = sudo(host, "php -r '$CONFIG = []; include $argv[1]; echo json_encode($CONFIG);' %s" % CONFIG)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def digest(host):
    return sudo(host, "sha256sum %s" % CONFIG).stdout.split()[0]


def drift_lines(output):
    """{(node, key, change)} of the drift report's lines ("web2: loglevel differs (master: 2, node: 0)")."""
    return set(re.findall(r"\b(web\d+): (\S+) (differs|missing|extra) \(", output))


@pytest.fixture(scope="module")
def cluster():
    r = sudo(MASTER, "curl -fsS -m 10 http://127.0.0.1/status.php")
    require(r.returncode == 0 and '"installed":true' in r.stdout.replace(" ", ""),
            "needs the cluster deployed (`python -m lab deploy`): %s" % (r.stdout or r.stderr))
    master = settings(MASTER)
    assert settings(NODE) == master, "the nodes differ before the test"
    return master


def test_clean_cluster_reports_no_drift(cluster):
    proc = config_yml("--check")
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    assert "No drift: the config.php of every web node matches %s." % MASTER in proc.stdout


def test_hand_change_on_one_node_is_reported_key_by_key(cluster):
    for cmd in ("config:system:set loglevel --value=0 --type=integer",
                "config:system:set mail_smtphost --value=smtp.drift.test",
                "config:system:set mail_smtppassword --value=%s" % MAIL_SECRET):
        r = sudo(NODE, OCC + cmd)
        assert r.returncode == 0, r.stdout + r.stderr
    before = digest(NODE)
    proc = config_yml("--check")
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    lines = drift_lines(proc.stdout)
    # occ writes the merged configuration into config.php, so web2's own trusted_domains (from node.config.php)
    # land there too, as they would with Nextcloud: a real difference the report must show as well.
    assert lines == {(NODE, "loglevel", "differs"), (NODE, "mail_smtphost", "extra"),
                     (NODE, "mail_smtppassword", "extra"), (NODE, "trusted_domains", "differs")}, lines
    assert "web2: loglevel differs (master: 2, node: 0)" in proc.stdout
    assert "smtp.drift.test" in proc.stdout
    assert "web2: mail_smtppassword extra (secret: value not shown)" in proc.stdout
    # check mode changed nothing on the node
    assert digest(NODE) == before
    assert settings(NODE)["loglevel"] == 0


def test_config_playbook_puts_the_master_state_on_every_node(cluster):
    proc = config_yml()
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert settings(NODE) == settings(MASTER) == cluster
    assert "No drift: the config.php of every web node matches %s." % MASTER in proc.stdout
    r = sudo(NODE, "curl -fsS -m 10 http://127.0.0.1/status.php")
    assert '"maintenance":false' in r.stdout.replace(" ", ""), r.stdout


def test_second_run_changes_nothing(cluster):
    proc = config_yml()
    assert proc.returncode == 0, proc.stdout[-5000:]
    changed = recap_changed(proc.stdout)
    assert changed and not any(changed.values()), changed


def test_a_setting_given_to_config_yml_reaches_every_node(cluster):
    proc = config_yml("-e", json.dumps({"nextcloud_config_extra": {"mail_domain": "drift.test"}}))
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert settings(MASTER).get("mail_domain") == "drift.test"
    assert settings(NODE).get("mail_domain") == "drift.test"
    # The key leaves the inventory: it is deleted on the master and config.yml carries that to the nodes.
    r = sudo(MASTER, OCC + "config:system:delete mail_domain")
    assert r.returncode == 0, r.stdout + r.stderr
    proc = config_yml()
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "mail_domain" not in settings(NODE)
    assert settings(NODE) == settings(MASTER) == cluster
