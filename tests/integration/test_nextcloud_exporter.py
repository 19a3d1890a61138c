"""Nextcloud's Prometheus exporter on the web nodes (issue #24): prometheus-nextcloud-exporter of role exporters reads
the node's own serverinfo API with the token the nextcloud role set, and serves /metrics on the node's cluster
address; the token is in no command line and in a file only root and the group prometheus read.

Read-only: runs on a lab deployed with a monitoring group (site.yml, or playbooks/monitoring.yml).
"""
import re

import pytest

from ha_helpers import GROUPS, HOSTS, LAB_VARS

WEB = GROUPS.get("webservers", [])
TOKEN = LAB_VARS.get("nextcloud_ha_serverinfo_token", "")
INFO = "http://127.0.0.1/ocs/v2.php/apps/serverinfo/api/v1/info?format=json"

pytestmark = pytest.mark.skipif(not GROUPS.get("monitoring"), reason="no monitoring group in this lab")


@pytest.mark.parametrize("web", WEB)
def test_the_exporter_reads_its_nodes_nextcloud(lab_host, web):
    metrics = lab_host(web).check_output("curl -fsS http://%s:9205/metrics" % HOSTS[web])
    assert re.search(r"^nextcloud_up 1$", metrics, re.M), [m for m in metrics.splitlines() if m.startswith("nextcloud_")]
    assert re.search(r'^nextcloud_system_info\{version="\d+\.\d+\.\d+\.\d+"\} 1$', metrics, re.M)
    assert re.search(r'^nextcloud_database_info\{type="pgsql",', metrics, re.M)
    assert re.search(r"^nextcloud_users_total [1-9]", metrics, re.M)
    listening = lab_host(web).check_output("ss -Htln 'sport = :9205'")
    assert [line.split()[3] for line in listening.splitlines()] == ["%s:9205" % HOSTS[web]]


@pytest.mark.parametrize("web", WEB)
def test_the_serverinfo_api_wants_the_token(lab_host, web):
    host = lab_host(web)
    assert host.check_output("curl -s -o /dev/null -w '%%{http_code}' '%s'" % INFO) == "401"
    assert host.check_output("curl -s -o /dev/null -w '%%{http_code}' -H 'NC-Token: wrong-%s' '%s'" % (TOKEN, INFO)) == "401"
    # the token from the exporter's own file, never on this command line either
    code = host.check_output("printf 'NC-Token: %%s\\n' \"$(cat /etc/prometheus-nextcloud-exporter.token)\" | "
                             "curl -s -o /dev/null -w '%%{http_code}' -H @- '%s'" % INFO)
    assert code == "200"


@pytest.mark.parametrize("web", WEB)
def test_the_token_stays_out_of_argv_and_world_readable_files(lab_host, web):
    host = lab_host(web)
    token_file = host.file("/etc/prometheus-nextcloud-exporter.token")
    assert (token_file.user, token_file.group, token_file.mode) == ("root", "prometheus", 0o640)
    assert token_file.content_string.strip() == TOKEN
    assert TOKEN not in host.check_output("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")
    assert TOKEN not in host.file("/etc/default/prometheus-nextcloud-exporter").content_string
    unit = host.check_output("systemctl show -p User,ExecStart prometheus-nextcloud-exporter")
    assert "User=prometheus" in unit and TOKEN not in unit
