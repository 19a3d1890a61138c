"""The web nodes share their files (issue #20, docs/storage.md), whatever shared backend the lab was deployed with.

- Files PUT over WebDAV through the load balancer (HAProxy) are read back, byte for byte, from every web node
  directly (a GET on each node's own address): a cluster on `local` storage fails this, since each node would have
  only the files it wrote itself.
- site.yml asked for `nextcloud_storage_backend: local` while the webservers group has two or more hosts is refused
  by the preflight, with a message naming the shared backends, before any host changes.

Needs the cluster deployed (`python -m lab up && python -m lab deploy`; the lab deploys GlusterFS by default).
With a real Nextcloud and two-factor authentication enforced, WebDAV needs an app password instead of the admin's
password (`occ user:auth-tokens:add`): set NCHA_DAV_PASSWORD to it. The stand-in accepts the password.
"""
import base64
import hashlib
import http.client
import os
import shlex
import ssl
import time
import urllib.parse

import pytest
import yaml

from ha_helpers import DOMAIN, GROUPS, HOSTS, LAB_VARS, ROOT, playbook, recap_changed, sudo

LB = (GROUPS.get("haproxy") or [None])[0]
WEB = GROUPS.get("webservers", [])
CONFIG = "/var/www/nextcloud/config/config.php"
DATA = LAB_VARS.get("nextcloud_ha_data_dir", "/srv/nextcloud/data")


def _admin_user():
    """The admin the install created: the inventory's nextcloud_admin_user, else the nextcloud role's default."""
    if "nextcloud_admin_user" in LAB_VARS:
        return LAB_VARS["nextcloud_admin_user"]
    with open(os.path.join(ROOT, "roles", "nextcloud", "defaults", "main.yml")) as f:
        return yaml.safe_load(f)["nextcloud_admin_user"]


ADMIN = _admin_user()
PASSWORD = os.environ.get("NCHA_DAV_PASSWORD") or LAB_VARS["nextcloud_ha_admin_password"]
AUTH = "Basic " + base64.b64encode(("%s:%s" % (ADMIN, PASSWORD)).encode()).decode()


def dav(address, method, name, body=None, tls=True, timeout=30, auth=AUTH):
    """One WebDAV request on the admin's files to `address` (HTTPS: the load balancer; HTTP: a web node itself),
    with the cluster's public host name; returns (status, body)."""
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the lab's self-signed certificate
        conn = http.client.HTTPSConnection(address, 443, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(address, 80, timeout=timeout)
    path = "/remote.php/dav/files/%s/%s" % (urllib.parse.quote(ADMIN), urllib.parse.quote(name))
    try:
        conn.request(method, path, body=body, headers={"Host": DOMAIN, "Authorization": auth})
        res = conn.getresponse()
        return res.status, res.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def uploaded():
    """Several files of different sizes PUT through the load balancer; deleted again afterwards."""
    if LB is None or not WEB:
        pytest.fail("the lab's inventory has no load balancer or no web nodes")
    tag = "shared-%d-%d" % (os.getpid(), int(time.time()))
    files = {}
    for i, size in enumerate([0, 1, 4096, 300 * 1024, 2 * 1024 * 1024 + 17]):
        name = "%s %d.bin" % (tag, i)  # a space in the name: percent-encoded on the way
        files[name] = os.urandom(size)
    for name, content in files.items():
        status, body = dav(HOSTS[LB], "PUT", name, body=content)
        assert status == 201, (name, status, body[:500])
    yield files
    for name in files:
        dav(HOSTS[LB], "DELETE", name)


def test_files_put_through_the_load_balancer_are_read_back_from_every_web_node(uploaded):
    wrong = []
    for name, content in uploaded.items():
        for node in WEB:
            status, body = dav(HOSTS[node], "GET", name, tls=False)
            if status != 200 or body != content:
                wrong.append("%s from %s: HTTP %d, %d bytes (sha256 %s), expected %d bytes (sha256 %s)" % (
                    name, node, status, len(body), hashlib.sha256(body).hexdigest()[:12], len(content),
                    hashlib.sha256(content).hexdigest()[:12]))
    assert wrong == [], "\n".join(wrong)


def test_refused_local_storage_on_two_web_nodes_changes_nothing():
    if len(WEB) < 2:
        pytest.skip("one web node: local storage is allowed there")
    snapshot = "sha256sum %s; findmnt -n -o FSTYPE,SOURCE --mountpoint %s; stat -c %%Y %s" % (CONFIG, DATA, CONFIG)
    before = {node: sudo(node, snapshot).stdout for node in WEB}
    res = playbook("site.yml", ["-e", "nextcloud_storage_backend=local"], timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out[-3000:]
    # The message as one line: the YAML result format folds long lines and doubles the quotes of a quoted scalar.
    msg = " ".join(out.split()).replace("''", "'")
    assert "REFUSED: nextcloud_storage_backend is 'local' on %s," % ", ".join(WEB) in msg, out[-3000:]
    assert "the webservers group has %d hosts" % len(WEB) in msg, out[-3000:]
    refusal = msg.split("REFUSED: nextcloud_storage_backend")[1]
    for backend in ("glusterfs (", "s3 (", "nfs ("):
        assert backend in refusal, (backend, out[-3000:])
    assert "Nothing was changed." in refusal, out[-3000:]
    # Refused in the first play, on the controller: no cluster host was even reached, and nothing changed.
    changed = recap_changed(res.stdout)
    assert changed == {"localhost": 0}, changed
    assert {node: sudo(node, snapshot).stdout for node in WEB} == before


def test_an_app_password_made_the_way_make_lab_prints_it():
    """`make lab` tells a new user to make an app password with occ (two-factor authentication is enforced); one made
    that way writes through the load balancer, and the file is read back from the other web node."""
    if LB is None or len(WEB) < 2:
        pytest.fail("the lab's inventory has no load balancer or fewer than two web nodes")
    made = sudo(WEB[0], "cd /tmp && sudo -u www-data OC_PASS=%s php /var/www/nextcloud/occ user:auth-tokens:add "
                        "--password-from-env %s" % (shlex.quote(LAB_VARS["nextcloud_ha_admin_password"]), ADMIN))
    lines = made.stdout.splitlines()
    assert lines[0] == "app password:", made.stdout
    token_auth = "Basic " + base64.b64encode(("%s:%s" % (ADMIN, lines[1])).encode()).decode()
    name = "app-password-%d.txt" % os.getpid()
    status, body = dav(HOSTS[LB], "PUT", name, body=b"written with an app password", auth=token_auth)
    assert status == 201, (status, body[:500])
    try:
        assert dav(HOSTS[WEB[-1]], "GET", name, tls=False, auth=token_auth) == (200, b"written with an app password")
        wrong = "Basic " + base64.b64encode(("%s:%s" % (ADMIN, lines[1][:-1] + "#")).encode()).decode()
        assert dav(HOSTS[LB], "GET", name, auth=wrong)[0] == 401
    finally:
        dav(HOSTS[LB], "DELETE", name)
