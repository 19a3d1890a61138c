"""Codebase replication (issue #7): real state on the lab's web nodes after playbooks/sync.yml.

With the web tier deployed (playbooks/web.yml, HAProxy), the tests use the real Nextcloud tree and check
/status.php and requests through HAProxy. Without it (the base lab), they build a synthetic tree shaped like the
nextcloud role's (versioned folder + web root symlink, www-data, 0750/0640) on web1 and run the role with the
health check off; the HAProxy test is skipped then, with the reason.
"""
import json
import os
import re
import shlex
import subprocess
import ssl
import threading
import time
import urllib.request

import pytest

from conftest import LAB_NAME, ROOT, STATE, require, ssh
from ha_helpers import DOMAIN, kill_export_tar
from lab_paths import INVENTORY

# The lab's load balancer has a self-signed certificate.
LAB_TLS = ssl.create_default_context()
LAB_TLS.check_hostname = False
LAB_TLS.verify_mode = ssl.CERT_NONE

# The lab inventory pins host keys with HostKeyAlias={{ inventory_hostname }}, which names the wrong host for
# delegated tasks (the role delegates to the master, the nodes and the load balancers). The lab's known_hosts
# lists every host by name and address, so strict checking still holds without the alias.
SSH_ARGS = ["-e", "ansible_ssh_common_args='-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes'"
            % os.path.join(STATE, "known_hosts")]
MASTER, NODE = "web1", "web2"
WEBROOT = "/var/www/nextcloud"
APP = WEBROOT + "/apps/synctest%d" % os.getpid()      # new on every test run


def playbook(*extra, check=True, timeout=900):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", INVENTORY,
                           os.path.join(ROOT, "playbooks", "sync.yml")] + SSH_ARGS + list(extra),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail("sync.yml failed:\n%s\n%s" % (proc.stdout[-6000:], proc.stderr[-2000:]))
    return proc


def recap(output):
    """{host: {'changed': n, 'failed': n, ...}} from the PLAY RECAP."""
    out = {}
    for m in re.finditer(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output, re.M):
        out[m.group(1)] = {"ok": int(m.group(2)), "changed": int(m.group(3)), "failed": int(m.group(5))}
    return out


def sudo(host, cmd, timeout=120):
    r = ssh(host, "sudo bash -c %s" % shlex.quote(cmd), timeout=timeout)
    return r


def digest(host, path):
    """What the manifest compares, for the whole tree except node-local paths."""
    cmd = ("cd %s/ && find . -mindepth 1 \\( -path ./data -o -path ./config/node.config.php \\) -prune -o "
           "-printf '%%P %%y %%m %%U %%G %%s %%T@\\n' | awk '{ if ($2==\"d\") {$6=0;$7=0} else {split($7,a,\".\");$7=a[1]} print }'"
           " | sort | sha256sum" % path)
    r = sudo(host, cmd)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()[0]


@pytest.fixture(scope="module")
def web_tier(inventory):
    """True when Nextcloud answers on web1; else a synthetic tree is set up on web1."""
    r = sudo(MASTER, "curl -fsS -m 5 http://127.0.0.1/status.php")
    if r.returncode == 0 and '"installed":true' in r.stdout.replace(" ", ""):
        return True
    script = r"""
set -e
id www-data >/dev/null
if [ ! -e /var/www/nextcloud ]; then
  mkdir -p /var/www/nextcloud-32.0.2/config /var/www/nextcloud-32.0.2/core/js /var/www/nextcloud-32.0.2/apps/files/lib
  for i in $(seq 1 300); do head -c $((i * 97)) /dev/urandom > /var/www/nextcloud-32.0.2/core/js/f$i.js; done
  echo '<?php // files app' > /var/www/nextcloud-32.0.2/apps/files/lib/App.php
  printf '%s\n' '<?php' '$CONFIG = array (' "  'trusted_domains' => " '  array (' "    0 => 'cloud.example.org'," "    1 => 'web1'," '  ),' "  'installed' => true," ');' > /var/www/nextcloud-32.0.2/config/config.php
  chown -R www-data:www-data /var/www/nextcloud-32.0.2
  find /var/www/nextcloud-32.0.2 -type d -exec chmod 0750 {} +
  find /var/www/nextcloud-32.0.2 -type f -exec chmod 0640 {} +
  ln -s nextcloud-32.0.2 /var/www/nextcloud
fi
"""
    r = sudo(MASTER, script)
    assert r.returncode == 0, r.stderr
    # web2 as the nextcloud role leaves it before the first sync: the versioned folder and the symlink
    r = sudo(NODE, "if [ ! -L /var/www/nextcloud ]; then rm -rf /var/www/nextcloud /var/www/nextcloud.previous; "
                   "mkdir -p /var/www/nextcloud-32.0.2 && chown www-data:www-data /var/www/nextcloud-32.0.2 && "
                   "ln -s nextcloud-32.0.2 /var/www/nextcloud; fi")
    assert r.returncode == 0, r.stderr
    return False


@pytest.fixture(scope="module")
def extra(web_tier):
    return [] if web_tier else ["-e", "nc_sync_health_check=false"]


@pytest.fixture(scope="module")
def synced(extra):
    """A first sync, so that every test starts from web2 == web1."""
    playbook(*extra)
    return True


def test_app_and_config_change_on_master_appear_on_node(synced, extra, lab_host, inventory):
    sudo(MASTER, "mkdir -p %s/lib %s/appinfo && head -c 200000 /dev/urandom > %s/lib/Big.php && "
                 "echo '<info><id>synctest</id></info>' > %s/appinfo/info.xml && chown -R www-data:www-data %s && "
                 "chmod 0640 %s/lib/Big.php" % ((APP,) * 6))
    # a config change made on the master only, like LDAP set up in the admin panel
    r = sudo(MASTER, "php -r 1 2>/dev/null; sed -i \"s/^);/  'ldap_sync_marker' => 'set-on-web1-%d',\\n);/\" %s/config/config.php"
             % (os.getpid(), WEBROOT))
    assert r.returncode == 0
    assert digest(MASTER, WEBROOT) != digest(NODE, WEBROOT)
    out = playbook(*extra).stdout
    assert recap(out)[MASTER]["failed"] == 0
    node = lab_host(NODE)
    big = node.file(APP + "/lib/Big.php")
    assert big.exists and big.user == "www-data" and big.mode == 0o640
    assert big.sha256sum == lab_host(MASTER).file(APP + "/lib/Big.php").sha256sum
    assert "set-on-web1-%d" % os.getpid() in node.file(WEBROOT + "/config/config.php").content_string
    assert digest(MASTER, WEBROOT) == digest(NODE, WEBROOT)
    # the node's own values: its address in trusted_domains, in the node-local config file
    node_conf = node.file(WEBROOT + "/config/node.config.php")
    assert node_conf.exists and inventory.address(NODE) in node_conf.content_string
    assert inventory.address(NODE) not in lab_host(MASTER).file(WEBROOT + "/config/config.php").content_string
    # the web root symlink stays; the old tree is kept beside the real folder
    assert node.file(WEBROOT).is_symlink
    real = node.check_output("readlink -f %s" % WEBROOT)
    assert node.file(real + ".previous").is_directory
    assert not node.file(real + ".previous/apps/synctest%d" % os.getpid()).exists


def test_second_sync_changes_nothing(synced, extra, lab_host):
    before = lab_host(NODE).check_output("stat -c %%i %s/config/config.php" % WEBROOT)
    out = playbook(*extra).stdout
    rc = recap(out)
    assert rc and all(v["changed"] == 0 and v["failed"] == 0 for v in rc.values()), out[-3000:]
    assert lab_host(NODE).check_output("stat -c %%i %s/config/config.php" % WEBROOT) == before


def test_check_mode_reports_a_pending_change_and_changes_nothing(synced, extra):
    # a new mtime on every run (a fixed date is no change at all once an earlier run synced it)
    stamp = "@%d" % (978307200 + int(time.time()) % 86400 * 7 + os.getpid() % 7)
    sudo(MASTER, "touch -d %s %s/index.php 2>/dev/null || (echo x > %s/index.php; "
                 "chown www-data:www-data %s/index.php; touch -d %s %s/index.php)"
         % (stamp, WEBROOT, WEBROOT, WEBROOT, stamp, WEBROOT))
    before = digest(NODE, WEBROOT)
    out = playbook(*extra, "--check", "--diff").stdout
    assert "~ index.php" in out or "+ index.php" in out
    assert digest(NODE, WEBROOT) == before
    playbook(*extra)
    assert digest(MASTER, WEBROOT) == digest(NODE, WEBROOT)


def test_bad_input_fails_clearly_and_leaves_node_alone(synced, extra):
    before = digest(NODE, WEBROOT)
    out = playbook(*extra, "-e", "nc_sync_src_path=/var/www/does-not-exist", check=False)
    assert out.returncode == 0 and "Nothing to replicate" in out.stdout      # no tree on the master: nothing to do
    out = playbook(*extra, "-e", "nc_sync_dest_path=/", check=False)
    assert out.returncode != 0 and "nc_sync needs" in out.stdout
    out = playbook(*extra, "-e", "nc_sync_master_address=192.0.2.1", "-e", "nc_sync_master=web1", check=False)
    assert out.returncode != 0 and "cannot reach the master" in out.stdout
    assert digest(NODE, WEBROOT) == before
    playbook(*extra)       # the pinned host key is filed under the real address again


def test_a_key_the_master_rejects(synced, extra):
    """A node whose key is not (or no longer) authorized gets a clear error and keeps its tree."""
    before = digest(NODE, WEBROOT)
    r = sudo(NODE, "ssh-keygen -q -t ed25519 -N '' -f /root/rejected_key <<< y >/dev/null 2>&1; echo")
    assert r.returncode == 0
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    args = json.dumps({"src_host": "web1", "src_path": WEBROOT, "dest_path": WEBROOT, "ssh_key": "/root/rejected_key",
                       "known_hosts": "/etc/nextcloud-sync/known_hosts", "exclude": ["data/", "config/node.config.php"]})
    proc = subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible"), "-i", INVENTORY, NODE, "-b", "-m",
                           "nextcloud_ha.cluster.codebase_sync", "-a", args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "rejected the sync key" in proc.stdout
    assert digest(NODE, WEBROOT) == before


def test_export_key_is_restricted_on_the_master(synced, lab_host, inventory):
    keys = lab_host(MASTER).file("/var/lib/nextcloud-sync/.ssh/authorized_keys")
    assert keys.user == "root" and keys.mode == 0o644
    lines = [l for l in keys.content_string.splitlines() if l and not l.startswith("#")]
    assert len(lines) == len(inventory.group("webservers")) - 1
    for line in lines:
        assert line.startswith('restrict,from="') and 'command="/usr/bin/python3 ' in line
    # the key cannot run anything but the export: a shell command is answered by the export program's usage error
    r = sudo(NODE, "ssh -i /etc/nextcloud-sync/id_ed25519 -o BatchMode=yes -o StrictHostKeyChecking=yes "
                   "-o UserKnownHostsFile=/etc/nextcloud-sync/known_hosts ncsync@%s id" % inventory.address(MASTER))
    assert r.returncode == 64 and "uid=" not in r.stdout
    # the host key is pinned, not ignored
    known = lab_host(NODE).file("/etc/nextcloud-sync/known_hosts").content_string
    assert lab_host(MASTER).file("/etc/ssh/ssh_host_ed25519_key.pub").content_string.split()[1] in known


def _haproxy_up(inventory):
    lbs = inventory.group("haproxy")
    if not lbs:
        return None
    r = sudo(lbs[0], "test -S /run/haproxy/admin.sock")
    return lbs[0] if r.returncode == 0 else None


def test_rolling_sync_under_load_fails_no_request(synced, extra, inventory, web_tier):
    if not inventory.group("haproxy"):
        pytest.skip("no load balancer in the lab's inventory")
    lb = _haproxy_up(inventory)
    require(web_tier and lb is not None,
            "needs the web tier and HAProxy (playbooks/web.yml, haproxy.yml) deployed in lab %s" % LAB_NAME)
    url = "https://%s/status.php" % inventory.address(lb)
    sudo(MASTER, "echo '<?php // %d' > %s/lib/synctest-marker.php && chown www-data:www-data %s/lib/synctest-marker.php"
         % (time.time(), WEBROOT, WEBROOT))
    results = []
    stop = threading.Event()

    def load():
        deadline = time.time() + 240                 # bounded: at most 4 minutes, about 10 requests a second
        while not stop.is_set() and time.time() < deadline and len(results) < 2400:
            try:
                request = urllib.request.Request(url, headers={"Host": DOMAIN})
                with urllib.request.urlopen(request, timeout=10, context=LAB_TLS) as resp:
                    results.append(resp.status)
            except Exception as e:         # noqa: BLE001 - every failure counts
                results.append(repr(e))
            time.sleep(0.1)

    t = threading.Thread(target=load)
    t.start()
    try:
        time.sleep(2)
        out = playbook(*extra).stdout
    finally:
        stop.set()
        t.join()
    assert "Drain the node in HAProxy" in out
    failed = [r for r in results if r != 200]
    assert len(results) > 20 and not failed, "%d of %d requests failed: %s" % (len(failed), len(results), failed[:5])
    assert digest(MASTER, WEBROOT) == digest(NODE, WEBROOT)


@pytest.mark.disruptive
def test_transfer_killed_half_way_leaves_old_tree_then_next_sync_completes(synced, extra, lab_host, web_tier):
    """Kill the export on the master in the middle of the stream: web2 keeps serving its old tree."""
    before = digest(NODE, WEBROOT)
    # a large new file, so that the stream takes a few seconds
    # (in a folder of its own: the real tree, or the lab's stand-in release, need not have core/js)
    r = sudo(MASTER, "mkdir -p %s/synctest-huge && head -c 300000000 /dev/urandom > %s/synctest-huge/huge.js && "
                     "chown -R www-data:www-data %s/synctest-huge" % (WEBROOT, WEBROOT, WEBROOT), timeout=300)
    assert r.returncode == 0, r.stderr
    proc = subprocess.Popen([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", INVENTORY,
                             os.path.join(ROOT, "playbooks", "sync.yml")] + SSH_ARGS + list(extra),
                            cwd=ROOT, env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg")),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # the export's tar-list stream on the master, killed once its tar has read 50 MB of the 300 MB file
    read = kill_export_tar(MASTER, 50000000)
    killed = read is not None
    if killed:
        print("killed the export's tar after it had read %d bytes" % read)
    out, _ = proc.communicate(timeout=600)
    assert killed, "the transfer finished before it could be killed:\n" + out[-3000:]
    assert proc.returncode != 0
    assert digest(NODE, WEBROOT) == before
    assert not lab_host(NODE).file(WEBROOT + "/synctest-huge/huge.js").exists
    assert lab_host(NODE).run("ls -d /var/www/.nextcloud-*.codebase_sync-staging").rc != 0
    if web_tier:
        assert '"installed":true' in sudo(NODE, "curl -fsS http://127.0.0.1/status.php").stdout.replace(" ", "")
    # the next sync completes
    playbook(*extra)
    assert digest(MASTER, WEBROOT) == digest(NODE, WEBROOT)
    sudo(MASTER, "rm -rf %s/synctest-huge" % WEBROOT)
    playbook(*extra)
