"""S3 primary storage in the stand-in: with an `objectstore` block in config.php (as the collection writes it before
the install, docs/storage.md) the install, probe.php and WebDAV store files as objects `urn:oid:<fileid>` in the
bucket and not in the data directory.

The S3 server is s3_fake.FakeS3 on loopback, which checks every request's AWS Signature V4 with the collection's
own signer; with STANDIN_MOTO_SERVER=/path/to/moto_server the tests also run against moto's server mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass

import pytest

from s3_fake import FakeS3, list_objects, s3_request
from standin_support import ADMIN_PASS, Instance, as_user, free_port, start_web

KEY, SECRET, BUCKET = "AKIASTANDINTEST00001", "standin-test-secret", "nextcloud"


@dataclass
class S3:
    port: int
    key: str = KEY
    secret: str = SECRET
    bucket: str = BUCKET
    checks_signatures: bool = True  # moto started here runs without authentication

    def objects(self) -> dict[str, int]:
        return list_objects(self.port, self.key, self.secret, self.bucket)

    def get(self, name: str) -> bytes:
        code, body = s3_request(self.port, self.key, self.secret, "GET", "/%s/%s" % (self.bucket, name))
        assert code == 200, (name, code, body)
        return body


@pytest.fixture(params=["fake", "moto"])
def s3(request):
    if request.param == "fake":
        with FakeS3(KEY, SECRET, (BUCKET,)) as fake:
            yield S3(fake.port)
        return
    moto = os.environ.get("STANDIN_MOTO_SERVER")
    if not moto:
        pytest.skip("STANDIN_MOTO_SERVER (a moto_server executable) is not set")
    port = free_port()
    proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if s3_request(port, KEY, SECRET, "PUT", "/" + BUCKET)[0] == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        yield S3(port, checks_signatures=False)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def objectstore(s3: S3, **override) -> dict:
    """The block the collection writes (roles/nextcloud vars: _nextcloud_s3_objectstore)."""
    args = {"bucket": s3.bucket, "hostname": "127.0.0.1", "port": s3.port, "use_ssl": False, "region": "us-east-1",
            "use_path_style": True, "key": s3.key, "secret": s3.secret, "autocreate": False}
    args.update(override)
    return {"class": "\\OC\\Files\\ObjectStore\\S3", "arguments": args}


def write_config(inst: Instance, config: dict) -> None:
    script = ('$c = json_decode(getenv("NC_CONFIG"), true); '
              'file_put_contents("config/config.php", "<?php\\n\\$CONFIG = " . var_export($c, true) . ";\\n");')
    res = subprocess.run(as_user(["php", "-r", script]), cwd=inst.root, capture_output=True, text=True, timeout=30,
                         env={**os.environ, "NC_CONFIG": json.dumps(config)})
    assert res.returncode == 0, res.stderr


@pytest.fixture
def s3nc(fresh, s3) -> tuple[Instance, S3]:
    write_config(fresh, {"objectstore": objectstore(s3)})
    res = fresh.install()
    assert res.returncode == 0, res.stdout + res.stderr
    return fresh, s3


@pytest.fixture
def serve(s3nc):
    """serve() starts one more `php -S` for the installed S3 instance (several = several web nodes)."""
    started = []

    def factory():
        web = start_web(s3nc[0])
        started.append(web.proc)
        return web

    yield factory
    for proc in started:
        proc.terminate()
        proc.wait(timeout=5)


def skeleton_readme(inst: Instance) -> bytes:
    return (inst.root / "core" / "skeleton" / "Readme.md").read_bytes()


def test_install_writes_the_skeleton_as_objects_not_into_the_data_directory(s3nc):
    nc, s3 = s3nc
    fileid = nc.sql("SELECT fileid FROM oc_filecache WHERE path = 'files/Readme.md'")
    assert len(fileid) == 1, nc.sql("SELECT * FROM oc_filecache")
    objects = s3.objects()
    assert "urn:oid:%d" % fileid[0][0] in objects, objects
    assert all(name.startswith("urn:oid:") for name in objects), objects
    assert s3.get("urn:oid:%d" % fileid[0][0]) == skeleton_readme(nc)
    assert not (nc.data / "admin").exists()
    assert (nc.data / ".ncdata").is_file()
    assert nc.config()["objectstore"] == objectstore(s3)  # kept through the install


def test_install_without_objectstore_copies_the_skeleton_into_the_data_directory(nc):
    assert (nc.data / "admin" / "files" / "Readme.md").read_bytes() == skeleton_readme(nc)
    assert ("files/Readme.md",) in nc.sql("SELECT path FROM oc_filecache")


def test_skeletondirectory_empty_copies_nothing(fresh, s3):
    write_config(fresh, {"objectstore": objectstore(s3), "skeletondirectory": ""})
    assert fresh.install().returncode == 0
    assert s3.objects() == {}


def test_probe_write_is_an_object_read_back_through_another_server(s3nc, serve):
    nc, s3 = s3nc
    web1, web2 = serve(), serve()
    code, body = web1.json("/probe.php?checks=db&write=k1")
    assert code == 200 and body["write"]["ok"], body
    urn = body["write"]["object"]
    assert urn.startswith("urn:oid:") and urn in s3.objects()
    assert json.loads(s3.get(urn))["key"] == "k1"
    assert not (nc.data / "probe").exists()
    code, body = web2.json("/probe.php?checks=db&read=k1")
    assert code == 200 and body["read"]["found_file"] is True and body["read"]["file"]["key"] == "k1", body
    # the object is the only copy: gone from the bucket, the probe no longer finds the file
    s3_request(s3.port, s3.key, s3.secret, "DELETE", "/%s/%s" % (s3.bucket, urn))
    code, body = web2.json("/probe.php?checks=db&read=k1")
    assert body["read"]["found_row"] is True and body["read"]["found_file"] is False, body


def test_webdav_put_get_delete_are_objects(s3nc, serve):
    nc, s3 = s3nc
    web = serve()
    auth = ("admin", ADMIN_PASS)
    url = "/remote.php/dav/files/admin/hello.txt"
    assert web.request(url, "PUT", b"hello world", auth=auth)[0] == 201
    (fileid,), = nc.sql("SELECT fileid FROM oc_filecache WHERE path = 'files/hello.txt'")
    assert s3.get("urn:oid:%d" % fileid) == b"hello world"
    assert web.request(url, "PUT", b"second", auth=auth)[0] == 204
    assert s3.get("urn:oid:%d" % fileid) == b"second"  # same fileid, same object
    assert web.request(url, auth=auth)[:3:2] == (200, b"second")
    code, _, body = web.request("/remote.php/dav/files/admin/", "PROPFIND", headers={"Depth": "1"}, auth=auth)
    assert code == 207 and b"hello.txt" in body and b"Readme.md" in body, body
    assert web.request(url, "DELETE", auth=auth)[0] == 204
    assert "urn:oid:%d" % fileid not in s3.objects()
    assert web.request(url, auth=auth)[0] == 404
    assert web.request("/remote.php/dav/files/admin/sub", "MKCOL", auth=auth)[0] == 501
    assert not (nc.data / "admin").exists()


def test_wrong_secret_is_refused_by_the_server(s3nc, serve):
    nc, s3 = s3nc
    if not s3.checks_signatures:
        pytest.skip("this S3 server does not check signatures")
    before = s3.objects()
    config = nc.config()
    config["objectstore"]["arguments"]["secret"] = "not-the-secret"
    write_config(nc, config)
    code, body = serve().json("/probe.php?checks=db&write=k2")
    assert code == 503 and body["write"]["ok"] is False, body
    assert "HTTP 403" in body["write"]["error"], body
    assert s3.objects() == before


def test_unknown_objectstore_class_and_multibucket_are_refused(fresh, s3):
    block = objectstore(s3)
    block["class"] = "\\OC\\Files\\ObjectStore\\Swift"
    write_config(fresh, {"objectstore": block})
    res = fresh.install()
    assert res.returncode != 0 and "class \\OC\\Files\\ObjectStore\\Swift is not implemented" in res.stdout + res.stderr


def test_multibucket_is_refused(fresh, s3):
    write_config(fresh, {"objectstore_multibucket": objectstore(s3)})
    res = fresh.install()
    assert res.returncode != 0 and "objectstore_multibucket is not implemented" in res.stdout + res.stderr
