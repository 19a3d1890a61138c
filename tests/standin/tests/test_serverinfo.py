"""The serverinfo app's API (issue #24) through php -S on loopback, and occ config:app:set / config:app:get of its
token, as a real Nextcloud 32 answers them (apps/serverinfo/lib/Controller/ApiController.php, OCS v2 responses).

With STANDIN_NEXTCLOUD_EXPORTER=/path/to/prometheus-nextcloud-exporter (Debian's binary, e.g. unpacked with
`apt-get download prometheus-nextcloud-exporter` and `dpkg-deb -x`) the exporter itself scrapes the stand-in.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from standin_support import ADMIN_PASS, free_port

TOKEN = "serverinfo-token-0123456789abcdef"
INFO = "/ocs/v2.php/apps/serverinfo/api/v1/info"
# What nextcloud-exporter 0.6 reads (serverinfo/serverinfo.go), by path in "data".
EXPORTER_FIELDS = {
    ("nextcloud", "system"): {"version": str, "theme": str, "enable_avatars": str, "enable_previews": str,
                              "memcache.local": str, "memcache.distributed": str, "memcache.locking": str,
                              "filelocking.enabled": str, "debug": str, "freespace": int},
    ("nextcloud", "storage"): {"num_users": int, "num_files": int, "num_storages": int, "num_storages_local": int,
                               "num_storages_home": int, "num_storages_other": int},
    ("nextcloud", "shares"): {"num_shares": int, "num_shares_user": int, "num_shares_groups": int,
                              "num_shares_link": int, "num_shares_link_no_password": int, "num_shares_mail": int,
                              "num_shares_room": int, "num_fed_shares_sent": int, "num_fed_shares_received": int},
    ("server", "php"): {"version": str, "memory_limit": int, "max_execution_time": int, "upload_max_filesize": int},
    ("server", "database"): {"type": str, "version": str, "size": str},
    ("activeUsers",): {"last5minutes": int, "last1hour": int, "last24hours": int},
}


def set_token(nc, token=TOKEN):
    return nc.occ("config:app:set", "serverinfo", "token", "--value=" + token)


def info(web, token=TOKEN, query="?format=json", headers=None):
    headers = dict({"NC-Token": token} if token is not None else {}, **(headers or {}))
    code, hdrs, body = web.request(INFO + query, headers=headers)
    return code, hdrs, body


def test_config_app_set_and_get_print_what_nextcloud_prints(nc):
    got = nc.occ("config:app:get", "serverinfo", "token")
    assert (got.returncode, got.stdout) == (1, "")
    result = set_token(nc)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ("Config value 'token' for app 'serverinfo' is now set to '%s', stored as mixed in fast cache\n"
                             % TOKEN)
    got = nc.occ("config:app:get", "serverinfo", "token")
    assert (got.returncode, got.stdout) == (0, TOKEN + "\n")
    again = set_token(nc)
    assert (again.returncode, again.stdout) == (0, "Config value were not updated\n")
    masked = nc.occ("config:app:set", "serverinfo", "token", "--value=other-token-0123456789", "--sensitive")
    assert masked.stdout == "Config value 'token' for app 'serverinfo' is now set to '<sensitive>', stored as mixed in fast cache\n"
    missing = nc.occ("config:app:set", "serverinfo", "nothing", "--value=x", "--update-only")
    assert (missing.returncode, missing.stdout) == (1, "Config value nothing for app serverinfo not updated, as it has not been set before.\n")


def test_serverinfo_is_shipped_and_enabled_by_default(nc):
    listed = json.loads(nc.occ("app:list", "--output=json").stdout.splitlines()[-1])
    assert "serverinfo" in listed["enabled"]
    info_xml = ET.parse(nc.root / "apps" / "serverinfo" / "appinfo" / "info.xml").getroot()
    assert (info_xml.findtext("id"), info_xml.findtext("version")) == ("serverinfo", "4.0.0")


def test_401_without_or_with_a_wrong_token(nc, web_factory):
    web = web_factory()
    for token in (None, "", "wrong-token-0123456789"):
        code, headers, body = info(web, token)
        assert code == 401, (token, body)
        assert headers["Content-Type"] == "application/json; charset=utf-8"
        assert json.loads(body) == {"ocs": {"meta": {"status": "failure", "statuscode": 997, "message": ""}, "data": []}}
    # a token set: still 401 for a wrong one, and for an empty stored token nothing matches
    set_token(nc)
    assert info(web, "wrong-token-0123456789")[0] == 401
    assert info(web, TOKEN[:-1])[0] == 401
    assert info(web, None)[0] == 401


def test_the_token_gives_the_document_the_exporter_parses(nc, web_factory):
    set_token(nc)
    web = web_factory()
    # a file over WebDAV: one more filecache row, a recorded login
    code, _, _ = web.request("/remote.php/dav/files/admin/metrics.txt", method="PUT", data=b"x", auth=("admin", ADMIN_PASS))
    assert code == 201
    code, headers, body = info(web)
    assert code == 200, body
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    doc = json.loads(body)
    assert doc["ocs"]["meta"] == {"status": "ok", "statuscode": 200, "message": "OK"}
    data = doc["ocs"]["data"]
    assert list(data) == ["nextcloud", "server", "activeUsers"]
    assert list(data["nextcloud"]) == ["system", "storage", "shares"]
    assert list(data["server"]) == ["webserver", "php", "fpm", "database"]
    for path, fields in EXPORTER_FIELDS.items():
        node = data
        for key in path:
            node = node[key]
        for name, kind in fields.items():
            assert isinstance(node[name], kind), (path, name, node[name])
    system = data["nextcloud"]["system"]
    assert system["version"] == "32.0.2.2"
    assert system["filelocking.enabled"] == "yes" and system["debug"] == "no"
    assert "apps" not in system and "update" not in system  # skipApps, skipUpdate default to true
    storage = data["nextcloud"]["storage"]
    files = nc.sql("SELECT COUNT(*) FROM oc_filecache")[0][0]
    assert files >= 2  # the skeleton's Readme.md and metrics.txt
    assert (storage["num_users"], storage["num_files"], storage["num_storages"]) == (1, files, 1)
    assert data["activeUsers"]["last5minutes"] == data["activeUsers"]["last24hours"] == 1
    database = data["server"]["database"]
    assert database["type"] == "sqlite3"
    assert re.match(r"^\d+\.\d+\.\d+$", database["version"]), database
    assert int(database["size"]) == (nc.data / "owncloud.db").stat().st_size
    assert data["server"]["php"]["version"].count(".") == 2
    with_apps = json.loads(info(web, query="?format=json&skipApps=false&skipUpdate=false")[2])["ocs"]["data"]
    assert with_apps["nextcloud"]["system"]["apps"]["num_installed"] >= 4
    assert with_apps["nextcloud"]["system"]["update"]["available"] is False


def test_a_second_user_counts_once_logged_in(nc, web_factory):
    set_token(nc)
    web = web_factory()
    created = nc.occ("user:auth-tokens:add", "--password-from-env", "admin", env={"OC_PASS": ADMIN_PASS})
    assert created.returncode == 0, created.stdout + created.stderr
    old = int(time.time()) - 7200
    nc.sql("UPDATE oc_preferences SET configvalue = ? WHERE userid = 'admin'", (str(old),))
    active = json.loads(info(web)[2])["ocs"]["data"]["activeUsers"]
    assert (active["last5minutes"], active["last1hour"], active["last24hours"]) == (0, 0, 1)


def test_xml_unless_json_is_asked_for(nc, web_factory):
    set_token(nc)
    web = web_factory()
    code, headers, body = info(web, query="")
    assert code == 200 and headers["Content-Type"] == "application/xml; charset=utf-8"
    root = ET.fromstring(body)
    assert root.tag == "ocs" and root.findtext("meta/status") == "ok"
    assert root.findtext("data/nextcloud/system/version") == "32.0.2.2"
    code, headers, body = info(web, query="", headers={"Accept": "application/json"})
    assert code == 200 and json.loads(body)["ocs"]["meta"]["statuscode"] == 200


def test_an_administrator_may_read_it_without_the_token(nc, web_factory):
    web = web_factory()
    code, _, body = web.request(INFO + "?format=json", auth=("admin", ADMIN_PASS))
    assert code == 200, body
    code, _, _ = web.request(INFO + "?format=json", auth=("admin", "wrong"))
    assert code == 401


def test_other_routes_methods_states(nc, web_factory):
    set_token(nc)
    web = web_factory()
    code, _, body = web.request("/ocs/v2.php/apps/serverinfo/api/v1/nothing?format=json", headers={"NC-Token": TOKEN})
    assert code == 404 and json.loads(body)["ocs"]["meta"]["statuscode"] == 998
    code, _, _ = web.request(INFO, method="POST", data=b"", headers={"NC-Token": TOKEN})
    assert code == 405
    code, _, body = info(web, headers={"Host": "cloud.example.com"})
    assert code == 400
    assert nc.occ("app:disable", "serverinfo").returncode == 0
    assert info(web)[0] == 404
    assert nc.occ("app:enable", "serverinfo").returncode == 0
    assert info(web)[0] == 200
    nc.occ("maintenance:mode", "--on")
    code, headers, body = info(web)
    assert code == 503 and headers["X-Nextcloud-Maintenance-Mode"] == "1"
    assert json.loads(body)["ocs"]["meta"] == {"status": "failure", "statuscode": 503, "message": "Service unavailable"}


EXPORTER = os.environ.get("STANDIN_NEXTCLOUD_EXPORTER") or (
    "/usr/bin/prometheus-nextcloud-exporter" if Path("/usr/bin/prometheus-nextcloud-exporter").exists() else "")


@pytest.mark.skipif(not EXPORTER, reason="Debian's prometheus-nextcloud-exporter is not here (STANDIN_NEXTCLOUD_EXPORTER)")
def test_debians_exporter_reads_the_stand_in(nc, web_factory, workdir):
    """The exporter, its token from a file (NEXTCLOUD_AUTH_TOKEN=@file), scrapes the stand-in: nextcloud_up 1 and
    the stand-in's numbers; with a wrong token, nextcloud_up 0 and an auth error counted."""
    set_token(nc)
    web = web_factory()
    results = {}
    for name, token in (("good", TOKEN), ("bad", "wrong-token-0123456789")):
        token_file = Path(workdir) / ("token-" + name)
        token_file.write_text(token + "\n")
        port = free_port()
        env = {"PATH": os.environ.get("PATH", ""), "NEXTCLOUD_SERVER": web.base_url,
               "NEXTCLOUD_AUTH_TOKEN": "@" + str(token_file), "NEXTCLOUD_LISTEN_ADDRESS": "127.0.0.1:%d" % port}
        proc = subprocess.Popen([EXPORTER], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as resp:
                        results[name] = resp.read().decode()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(timeout=5)
    good = results["good"]
    assert re.search(r"^nextcloud_up 1$", good, re.M), good
    assert re.search(r"^nextcloud_users_total 1$", good, re.M), good
    files = nc.sql("SELECT COUNT(*) FROM oc_filecache")[0][0]
    assert re.search(r"^nextcloud_files_total %d$" % files, good, re.M), good
    assert re.search(r'^nextcloud_system_info\{.*version="32\.0\.2\.2".*\} 1$', good, re.M), good
    assert re.search(r'^nextcloud_database_info\{.*type="sqlite3".*\} 1$', good, re.M), good
    assert re.search(r'^nextcloud_active_users_daily_total 1$', good, re.M), good
    bad = results["bad"]
    assert re.search(r"^nextcloud_up 0$", bad, re.M), bad
    assert re.search(r'^nextcloud_scrape_errors_total\{cause="auth"\} [1-9]', bad, re.M), bad
