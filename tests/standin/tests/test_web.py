"""status.php, index.php, remote.php (WebDAV) and probe.php through php -S on loopback."""

from __future__ import annotations

import json
import os

STATUS_PHP_KEYS = ["installed", "maintenance", "needsDbUpgrade", "version", "versionstring", "edition", "productname",
                   "extendedSupport"]


def test_status_php(nc, web_factory):
    web = web_factory()
    code, headers, body = web.request("/status.php")
    assert code == 200
    assert headers["Content-Type"] == "application/json"
    assert body == (b'{"installed":true,"maintenance":false,"needsDbUpgrade":false,"version":"32.0.2.2",'
                    b'"versionstring":"32.0.2","edition":"","productname":"Nextcloud","extendedSupport":false}')
    assert list(json.loads(body)) == STATUS_PHP_KEYS
    nc.occ("maintenance:mode", "--on")
    code, status = web.json("/status.php")
    assert code == 200 and status["maintenance"] is True


def test_status_php_not_installed(fresh):
    from standin_support import start_web

    web = start_web(fresh)
    try:
        code, status = web.json("/status.php")
        assert code == 200 and status["installed"] is False
    finally:
        web.proc.terminate()
        web.proc.wait(timeout=5)


def test_untrusted_host_is_refused(nc, web_factory):
    web = web_factory()
    code, _, body = web.request("/status.php", headers={"Host": "cloud.example.com"})
    assert (code, body) == (400, b'{"error": "Trusted domain error.", "code": 15}')
    code, _, body = web.request("/index.php/login", headers={"Host": "cloud.example.com"})
    assert code == 400 and b"Access through untrusted domain" in body
    nc.occ("config:system:set", "trusted_domains", "1", "--value=*.example.com")
    code, _, _ = web.request("/index.php/login", headers={"Host": "cloud.example.com:8443"})
    assert code == 200


def test_index_redirects_to_login(nc, web_factory):
    web = web_factory()
    code, headers, _ = web.request("/")
    assert code == 302 and headers["Location"] == "/index.php/login"
    code, _, body = web.request("/index.php/login")
    assert code == 200 and b"login" in body
    nc.occ("maintenance:mode", "--on")
    code, headers, _ = web.request("/index.php/login")
    assert code == 503 and headers["X-Nextcloud-Maintenance-Mode"] == "1"


def test_webdav(nc, web_factory):
    web = web_factory()
    auth = ("admin", "Adm1n-pass!")
    url = "/remote.php/dav/files/admin/hello.txt"
    assert web.request(url, "PUT", b"hello world", auth=auth)[0] == 201
    assert (nc.data / "admin" / "files" / "hello.txt").read_bytes() == b"hello world"
    assert web.request(url, "PUT", b"second", auth=auth)[0] == 204
    code, _, body = web.request(url, auth=auth)
    assert (code, body) == (200, b"second")
    assert web.request(url, auth=("admin", "wrong"))[0] == 401
    assert web.request(url)[0] == 401
    assert web.request("/remote.php/dav/files/admin/missing/x.txt", "PUT", b"x", auth=auth)[0] == 409
    assert web.request("/remote.php/dav/files/admin/sub", "MKCOL", auth=auth)[0] == 201
    assert web.request("/remote.php/dav/files/admin/sub/x.txt", "PUT", b"x", auth=auth)[0] == 201
    code, _, body = web.request("/remote.php/dav/files/admin/", "PROPFIND", headers={"Depth": "1"}, auth=auth)
    assert code == 207 and b"hello.txt" in body and b"sub/" in body
    assert ("files/hello.txt",) in nc.sql("SELECT path FROM oc_filecache")
    assert web.request(url, "DELETE", auth=auth)[0] == 204
    assert web.request(url, auth=auth)[0] == 404
    assert not (nc.data / "admin" / "files" / "hello.txt").exists()
    assert web.request("/remote.php/dav/files/admin/../../etc/passwd", auth=auth)[0] in (403, 404)
    nc.occ("maintenance:mode", "--on")
    assert web.request(url, auth=auth)[0] == 503


def test_webdav_with_an_app_password(nc, web_factory):
    # what `make lab` tells a new user to do, since two-factor authentication is enforced
    made = nc.occ("user:auth-tokens:add", "--password-from-env", "admin", env={"OC_PASS": "Adm1n-pass!"})
    lines = made.stdout.splitlines()
    assert made.returncode == 0 and lines[0] == "app password:" and len(lines[1]) == 72, made
    web = web_factory()
    url = "/remote.php/dav/files/admin/app.txt"
    assert web.request(url, "PUT", b"via app password", auth=("admin", lines[1]))[0] == 201
    assert web.request(url, auth=("admin", lines[1][:-1] + "#"))[0] == 401  # "#" is never in a token
    missing = nc.occ("user:auth-tokens:add", "--password-from-env", "admin", env={"OC_PASS": "", "NC_PASS": ""})
    assert (missing.returncode, missing.stdout) == (1, "--password-from-env given, but NC_PASS/OC_PASS is empty!\n")
    assert nc.occ("user:auth-tokens:add", "nobody").stdout == "Account does not exist\n"


def test_probe_with_sqlite_and_no_redis_or_apcu(nc, web_factory):
    web = web_factory("-d", "apc.enabled=0")
    code, probe = web.json("/probe.php")
    assert code == 503 and probe["ok"] is False
    assert probe["db"]["ok"] is True and probe["datadir"]["ok"] is True
    assert probe["redis"]["ok"] is False and "not configured" in probe["redis"]["error"]
    assert probe["apcu"]["ok"] is False
    for check in ("db", "redis", "apcu", "datadir"):
        assert set(probe[check]) == {"ok", "ms", "error"}
    assert probe["version"] == "32.0.2.2" and probe["instanceid"] == nc.config()["instanceid"]
    assert probe["hostname"] == os.uname().nodename
    code, probe = web.json("/probe.php?checks=db,datadir")
    assert code == 200 and probe["ok"] is True and "redis" not in probe
    nc.occ("config:system:set", "redis", "host", "--value=127.0.0.1")
    nc.occ("config:system:set", "redis", "port", "--value=1", "--type=integer")
    code, probe = web.json("/probe.php?checks=redis")
    assert code == 503 and probe["redis"]["ok"] is False and "RedisException" in probe["redis"]["error"]


def test_probe_write_and_read(nc, web_factory):
    web = web_factory()
    code, probe = web.json("/probe.php?checks=db,datadir&write=before-fault.1")
    assert code == 200 and probe["write"]["ok"] is True
    assert (nc.data / "probe" / "before-fault.1").exists()
    assert nc.sql("SELECT hostname FROM oc_standin_probe WHERE probe_key = 'before-fault.1'") == [(os.uname().nodename,)]
    code, probe = web.json("/probe.php?checks=db&read=before-fault.1")
    assert code == 200
    assert probe["read"]["found_row"] is True and probe["read"]["found_file"] is True
    code, probe = web.json("/probe.php?checks=db&read=never-written")
    assert probe["read"]["found_row"] is False and probe["read"]["found_file"] is False
    code, probe = web.json("/probe.php?write=../etc")
    assert code == 400 and probe["ok"] is False


def test_status_php_reports_broken_storage_and_database(nc, web_factory):
    web = web_factory()
    (nc.data / ".ncdata").rename(nc.data / ".ncdata.off")
    code, _, body = web.request("/status.php")
    assert code == 503 and b"Your data directory is invalid." in body
    (nc.data / ".ncdata.off").rename(nc.data / ".ncdata")
    assert web.request("/status.php")[0] == 200
    nc.occ("config:system:set", "dbname", "--value=elsewhere")  # SQLite: <datadirectory>/elsewhere.db does not exist
    os.chmod(nc.data, 0o550)
    try:
        code, _, body = web.request("/status.php")
    finally:
        os.chmod(nc.data, 0o770)
    assert (code, body) == (500, b"")
