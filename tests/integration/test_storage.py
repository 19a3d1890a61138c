"""Shared storage (issue #8, docs/storage.md): GlusterFS on the web nodes, S3 primary storage, the backend guard.

The GlusterFS tests run on a lab deployed with the glusterfs backend, the S3 ones on a lab deployed with the s3
backend (its S3 server is moto's server mode on the lab's mirror host); the others run on either:

    LAB_NAME=mylab NCHA_STORAGE=glusterfs NCHA_S3=moto .venv/bin/python -m lab up   # or NCHA_STORAGE=s3
    LAB_NAME=mylab .venv/bin/python -m lab deploy
    LAB_NAME=mylab .venv/bin/pytest tests/integration/test_storage.py

(`NCHA_STORAGE` makes `lab up` write nextcloud_storage_backend into the lab's inventory; `NCHA_S3=moto`, implied
by `NCHA_STORAGE=s3`, starts the emulator.) On a lab with another backend the module skips itself.
"""
import hashlib
import html
import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "collections"))
from ansible_collections.nextcloud_ha.cluster.plugins.modules.s3_bucket_check import sign_v4  # noqa: E402
from ha_helpers import DOMAIN, GROUPS, HOSTS, INVENTORY, ROOT, container, playbook, recap_changed, sudo, wait_ssh

with open(os.path.join(INVENTORY, "hosts.yml")) as _f:
    _VARS = (yaml.safe_load(_f).get("all") or {}).get("vars") or {}
BACKEND = _VARS.get("nextcloud_storage_backend", "local")

pytestmark = pytest.mark.skipif(
    BACKEND not in ("glusterfs", "s3"),
    reason="the lab was not deployed with the glusterfs or s3 backend (NCHA_STORAGE=glusterfs python -m lab up)")
gluster = pytest.mark.skipif(BACKEND != "glusterfs", reason="the lab was not deployed with the glusterfs backend")
s3_backend = pytest.mark.skipif(BACKEND != "s3" or _VARS.get("lab_s3_emulator") != "moto",
                                reason="the lab was not deployed with the s3 backend (NCHA_STORAGE=s3)")

VOLUME = "nextcloud"
DATA = "/srv/nextcloud/data"
BRICK = "/srv/glusterfs/nextcloud/brick"
WEB = GROUPS.get("webservers", [])
LB = (GROUPS.get("haproxy") or [None])[0]
CONFIG = "/var/www/nextcloud/config/config.php"
SKELETON = "/var/www/nextcloud/core/skeleton"
FACT = "/etc/ansible/facts.d/nextcloud_storage.fact"


def http(url, host=None, timeout=20):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the lab's self-signed certificate
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as res:
            return res.status, json.loads(res.read().decode() or "null")
    except urllib.error.HTTPError as err:
        body = err.read().decode()
        try:
            return err.code, json.loads(body)
        except ValueError:
            return err.code, body


def node_probe(node, query):
    return http("http://%s/probe.php?%s" % (HOSTS[node], query), host=HOSTS[node])


def lb_probe(query):
    return http("https://%s/probe.php?%s" % (HOSTS[LB], query), host=DOMAIN)


def heal_pending():
    """Pending self-heal entries per brick, from `gluster volume heal VOL info` on the first web node."""
    out = sudo(WEB[0], "gluster volume heal %s info" % VOLUME).stdout
    counts = [int(line.split(":")[1]) for line in out.splitlines() if line.startswith("Number of entries:")
              and line.split(":")[1].strip().isdigit()]
    return counts, out


def state_snapshot():
    """What a refused run must leave alone: config.php, the fact file, the mounts and the units of every web node."""
    snap = {}
    for node in WEB:
        snap[node] = sudo(node, "sha256sum %s %s; findmnt -n -o FSTYPE,SOURCE --mountpoint %s; "
                                "ls /etc/systemd/system/*.mount 2>/dev/null; stat -c %%Y %s"
                          % (CONFIG, FACT, DATA, CONFIG)).stdout
    return snap


@gluster
def test_data_dir_is_the_gluster_volume_on_every_web_node():
    for node in WEB:
        res = sudo(node, "findmnt -n -o FSTYPE,SOURCE --mountpoint %s" % DATA)
        fstype, source = res.stdout.split()
        assert fstype == "fuse.glusterfs", (node, res.stdout)
        assert source.endswith(":/" + VOLUME), (node, res.stdout)
        state = sudo(node, "systemctl show -p ActiveState,UnitFileState srv-nextcloud-data.mount").stdout
        assert "ActiveState=active" in state and "UnitFileState=enabled" in state, (node, state)
        unit = sudo(node, "systemctl cat srv-nextcloud-data.mount").stdout
        others = [HOSTS[w] for w in WEB if HOSTS[w] != source.split(":")[0]]
        assert "backup-volfile-servers=" + ":".join(others) in unit and "Type=glusterfs" in unit, (node, unit)
        # The running FUSE client was given every peer as a volfile server.
        client = sudo(node, "ps -o args= -C glusterfs | grep -- '%s'" % DATA).stdout
        for peer in [source.split(":")[0]] + others:
            assert "--volfile-server=%s" % peer in client, (node, client)


@gluster
def test_volume_is_replicated_over_the_web_nodes_and_tuned():
    info = sudo(WEB[0], "gluster volume info %s" % VOLUME).stdout
    assert "Type: Replicate" in info and "Status: Started" in info, info
    assert "Number of Bricks: 1 x %d = %d" % (len(WEB), len(WEB)) in info, info
    for node in WEB:
        assert "%s:%s" % (HOSTS[node], BRICK) in info, (node, info)
    assert "network.ping-timeout: 10" in info and "performance.parallel-readdir: on" in info, info
    pool = sudo(WEB[0], "gluster pool list").stdout
    assert pool.count("Connected") == len(WEB), pool
    # Every brick listens inside the range the firewall opens between the peers (firewall_glusterfs_ports): a brick
    # on another port is unreachable once it restarts (GlusterFS 10 picks ports up to 60999 unless told otherwise).
    status = sudo(WEB[0], "gluster volume status %s --xml" % VOLUME).stdout
    ports = [int(p) for p in re.findall(r"<path>%s</path>.*?<port>(\d+)</port>" % re.escape(BRICK), status, re.S)]
    assert len(ports) == len(WEB) and all(49152 <= p <= 49251 for p in ports), (ports, status)
    for node in WEB:
        conf = sudo(node, "grep -E '^\\s*option (base|max)-port' /etc/glusterfs/glusterd.vol").stdout.split()
        assert conf == ["option", "base-port", "49152", "option", "max-port", "49251"], (node, conf)


@gluster
def test_php_fpm_and_apache_start_after_the_mount():
    for node in WEB:
        fpm = sudo(node, "systemctl list-unit-files --no-legend 'php*-fpm.service' | awk '{print $1}'").stdout.split()
        for service in ["apache2.service"] + fpm:
            show = sudo(node, "systemctl show -p RequiresMountsFor,After,Requires %s" % service).stdout
            requires = show.split("RequiresMountsFor=")[1].split("\n")[0].split()
            assert DATA in requires, (node, service, show)
            assert "srv-nextcloud-data.mount" in show.split("After=")[1].split("\n")[0], (node, service, show)


@gluster
def test_file_written_through_web1_is_read_through_web2():
    key = "storage-%d-%d" % (os.getpid(), int(time.time()))
    code, body = node_probe(WEB[0], "write=%s&checks=datadir" % key)
    assert code == 200 and body["write"]["ok"], body
    code, body = node_probe(WEB[1], "read=%s&checks=datadir" % key)
    assert body["read"]["found_file"] is True, body
    assert body["read"]["file"]["hostname"] == WEB[0], body
    for node in WEB:  # one copy per brick
        sudo(node, "test -s %s/probe/%s" % (BRICK, key))


def test_backend_recorded_at_install():
    for node in WEB:
        fact = json.loads(sudo(node, "cat %s" % FACT).stdout)
        assert fact == {"backend": BACKEND, "datadirectory": DATA}, (node, fact)


SWITCHES = {
    "to-nfs": ["playbooks/storage.yml", "-e", "nextcloud_storage_backend=nfs", "-e", "nfs_client_server=nas.invalid",
               "-e", "nfs_client_export=/export"],
    "to-local": ["playbooks/web.yml", "-e", "nextcloud_storage_backend=local"],
    "to-s3": ["playbooks/web.yml", "-e", "nextcloud_storage_backend=s3", "-e", "nextcloud_s3_hostname=s3.invalid",
              "-e", "nextcloud_s3_key=k", "-e", "nextcloud_s3_secret=s"],
    "to-glusterfs": ["playbooks/storage.yml", "-e", "nextcloud_storage_backend=glusterfs"],
    "to-another-bucket": ["playbooks/web.yml", "-e", "nextcloud_s3_bucket=another-bucket"],
}


@pytest.mark.parametrize("switch", sorted(SWITCHES))
def test_switching_the_backend_of_the_installed_cluster_is_refused_and_changes_nothing(switch):
    if switch == "to-" + BACKEND or (switch == "to-another-bucket" and BACKEND != "s3"):
        pytest.skip("not a switch on a %s lab" % BACKEND)
    extra = SWITCHES[switch]
    before = state_snapshot()
    res = playbook(extra[0].split("/")[1], extra[1:], timeout=900)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out[-3000:]
    assert "Nothing was changed" in out, out[-3000:]
    if switch == "to-another-bucket":
        assert "REFUSED: the installed instance on" in out and "bucket '%s'" % _VARS["nextcloud_s3_bucket"] in out
        assert "bucket 'another-bucket'" in out, out[-3000:]
    else:
        assert "REFUSED: Nextcloud is installed on" in out, out[-3000:]
        assert "with the storage backend '%s'" % BACKEND in out, out[-3000:]
    changed = recap_changed(res.stdout)
    assert changed and all(n == 0 for n in changed.values()), changed
    assert state_snapshot() == before


def test_second_converge_of_storage_and_web_changes_nothing():
    for name in ("storage.yml", "web.yml"):
        res = playbook(name, timeout=1200)
        assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
        changed = recap_changed(res.stdout)
        assert changed and all(n == 0 for n in changed.values()), (name, changed)


@gluster
def test_capacity_preflight_prints_the_figures_and_fails_below_the_threshold():
    res = playbook("storage.yml", ["-e", "nextcloud_storage_free_fail_gb=100000", "-e",
                                   "nextcloud_storage_free_warn_gb=100000"], timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "GiB free of" in out and "inodes free of" in out, out[-3000:]
    assert "below nextcloud_storage_free_fail_gb (100000)" in out, out[-3000:]
    assert all(n == 0 for n in recap_changed(res.stdout).values())


def s3_check(host, **overrides):
    """Run the s3_bucket_check module on a web node against the lab's S3 emulator; returns (rc, output)."""
    args = {"hostname": _VARS["nextcloud_s3_hostname"], "port": _VARS["nextcloud_s3_port"], "use_ssl": False,
            "use_path_style": True, "access_key": _VARS["nextcloud_ha_s3_key"],
            "secret_key": _VARS["nextcloud_ha_s3_secret"], "bucket": _VARS["nextcloud_s3_bucket"]}
    args.update(overrides)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_FORCE_COLOR="false")
    res = subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible"), host, "-i", INVENTORY, "-m",
                          "nextcloud_ha.cluster.s3_bucket_check", "-a", json.dumps(args)],
                         capture_output=True, text=True, timeout=180, cwd=ROOT, env=env)
    return res.returncode, res.stdout + res.stderr


s3_lab = pytest.mark.skipif(_VARS.get("lab_s3_emulator") != "moto",
                            reason="the lab runs no S3 emulator (NCHA_S3=moto python -m lab up)")


@s3_lab
def test_s3_preflight_fails_with_wrong_credentials():
    rc, out = s3_check(WEB[0], secret_key="not-the-secret", create=True)
    assert rc != 0 and "refused the credentials (HTTP 403)" in out, out
    rc, out = s3_check(WEB[0], access_key="AKIANOSUCHKEY0000000", create=True)
    assert rc != 0 and "refused the credentials" in out, out
    rc, out = s3_check(WEB[0], port=1, create=True)
    assert rc != 0 and "does not answer" in out, out


@s3_lab
def test_s3_preflight_passes_with_right_credentials_and_creates_the_bucket():
    bucket = "storage-test-%d" % int(time.time())
    rc, out = s3_check(WEB[0], bucket=bucket)
    assert rc != 0 and "does not exist" in out, out
    rc, out = s3_check(WEB[0], bucket=bucket, create=True)
    assert rc == 0 and re.search(r'created"?: true', out), out
    for node in WEB:  # every web node now finds it, and nothing changes
        rc, out = s3_check(node, bucket=bucket)
        assert rc == 0 and re.search(r'exists"?: true', out) and re.search(r'changed"?: false', out), (node, out)


def s3_get(path, query=()):
    """One signed request from this controller to the lab's S3 server (moto on the mirror host), path style."""
    host = "%s:%d" % (HOSTS[_VARS["nextcloud_s3_hostname"]], int(_VARS["nextcloud_s3_port"]))
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # sha256 of no payload
    headers = {"host": host, "x-amz-date": amz_date, "x-amz-content-sha256": empty}
    auth = sign_v4("GET", host, path, list(query), headers, empty, _VARS["nextcloud_ha_s3_key"],
                   _VARS["nextcloud_ha_s3_secret"], _VARS["nextcloud_s3_region"], amz_date)
    url = "http://%s%s%s" % (host, urllib.parse.quote(path, safe="/-_.~"),
                             "?" + urllib.parse.urlencode(list(query)) if query else "")
    req = urllib.request.Request(url, headers=dict(headers, Authorization=auth))
    with urllib.request.urlopen(req, timeout=20) as res:
        return res.read()


def bucket_objects():
    """{name: md5 of the content} of the lab's bucket, by ListObjectsV2 (one page: the bucket stays far below 1000
    objects). The ETag of an object stored by one PUT is the MD5 of its content; listing avoids signing object paths
    with ':' in them, which moto's server checks against the decoded path."""
    body = s3_get("/" + _VARS["nextcloud_s3_bucket"], [("list-type", "2")]).decode()
    assert "<IsTruncated>false</IsTruncated>" in body, body[:2000]
    return {key: html.unescape(etag).strip('"') for key, etag in
            re.findall(r"<Key>([^<]+)</Key>.*?<ETag>([^<]+)</ETag>", body, re.S)}


@s3_backend
def test_install_wrote_its_files_as_objects_into_the_bucket():
    objects = bucket_objects()
    assert objects and all(re.fullmatch(r"urn:oid:\d+", name) for name in objects), objects
    # the skeleton file the install copied into the admin's files (core/skeleton of the release on the web nodes)
    readme = sudo(WEB[0], "md5sum %s/Readme.md" % SKELETON).stdout.split()[0]
    assert readme in objects.values(), (readme, objects)
    for node in WEB:  # the data directory holds no user files: no admin folder, no Readme.md
        found = sudo(node, "find %s -name Readme.md -o -name files -type d" % DATA).stdout
        assert found.strip() == "", (node, found)
        assert "'objectstore'" in sudo(node, "grep -o \"'objectstore'\" %s" % CONFIG).stdout, node


@s3_backend
def test_file_written_through_web1_is_an_object_read_through_web2():
    key = "storage-s3-%d-%d" % (os.getpid(), int(time.time()))
    code, body = node_probe(WEB[0], "write=%s&checks=db" % key)
    assert code == 200 and body["write"]["ok"], body
    urn = body["write"]["object"]
    code, body = node_probe(WEB[1], "read=%s&checks=db" % key)
    assert body["read"]["found_file"] is True and body["read"]["file"]["hostname"] == WEB[0], body
    # the object in the bucket is what web2 read (probe.php stores json_encode(...) and a newline)
    content = json.dumps(body["read"]["file"], separators=(",", ":")) + "\n"
    objects = bucket_objects()
    assert objects.get(urn) == hashlib.md5(content.encode()).hexdigest(), (urn, content, objects)
    for node in WEB:
        assert sudo(node, "test -e %s/probe/%s" % (DATA, key), check=False).returncode != 0, node


@gluster
@pytest.mark.disruptive
def test_one_gluster_peer_down_cluster_serves_then_self_heals():
    """web2's container stops (glusterd, its brick and its web server with it): HAProxy keeps serving reads and
    writes from web1; when web2 is back, its mount returns and self-heal copies what it missed."""
    down = WEB[1]
    key_before = "storage-before-%d" % int(time.time())
    code, body = lb_probe("checks=none&write=%s" % key_before)
    assert code == 200, body
    container("stop", down)
    try:
        keys = []
        deadline = time.time() + 60
        ok = 0
        while time.time() < deadline and ok < 5:
            key = "storage-down-%d-%d" % (int(time.time() * 1000), ok)
            code, body = lb_probe("checks=none&write=%s" % key)
            if code == 200:
                assert body["hostname"] == WEB[0], body
                keys.append(key)
                ok += 1
            else:
                time.sleep(2)  # HAProxy marks web2 down within its health check interval
        assert ok == 5, "writes through HAProxy with %s down failed: %s %s" % (down, code, body)
        code, body = lb_probe("checks=datadir&read=%s" % key_before)
        assert code == 200 and body["read"]["found_file"] is True, body
    finally:
        container("start", down)
    wait_ssh(down)
    deadline = time.time() + 120
    while time.time() < deadline:
        res = sudo(down, "findmnt -n -o FSTYPE --mountpoint %s" % DATA, check=False)
        if res.stdout.strip() == "fuse.glusterfs":
            break
        time.sleep(2)
    assert res.stdout.strip() == "fuse.glusterfs", "the volume is not mounted again on %s" % down
    sudo(WEB[0], "gluster volume heal %s" % VOLUME, check=False)  # start an index heal now, not at the next crawl
    deadline = time.time() + 180
    while time.time() < deadline:
        counts, out = heal_pending()
        if len(counts) == len(WEB) and sum(counts) == 0:
            break
        time.sleep(3)
    assert len(counts) == len(WEB) and sum(counts) == 0, out
    for node in WEB:
        for key in keys:
            sudo(node, "test -s %s/probe/%s" % (BRICK, key))
    code, body = node_probe(down, "read=%s&checks=datadir" % keys[-1])
    assert code == 200 and body["read"]["found_file"] is True, body
